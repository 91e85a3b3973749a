//! The hostile-input campaign: escape sequences, C1 controls, bidi overrides and
//! huge strings from incident sources, requesters and plugins never reach a
//! terminal through the CLI; parsers take arbitrary input without panicking.

use crate::support;

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use support::pty;
use support::*;

/// Terminal attacks: OSC 52 clipboard write, OSC 8 link, title change, cursor
/// position query, CSI via C1, bidi override, BEL.
const NASTY: &str = "\u{1b}]52;c;cm0gLXJmIH4=\u{7}\u{1b}]8;;http://evil.example\u{1b}\\link\u{1b}]8;;\u{1b}\\\u{1b}]0;pwned\u{7}\u{1b}[6n\u{9b}31m\u{202e}gnp.exe\u{7}";

/// A TOML basic string, controls escaped as \uXXXX so the file carries them.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn assert_clean(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(!bytes.contains(&0x1b), "{what}: raw ESC in output");
    assert!(!bytes.contains(&0x07), "{what}: raw BEL in output");
    for bad in ['\u{9b}', '\u{9d}', '\u{202e}', '\u{2066}'] {
        assert!(!text.contains(bad), "{what}: {:?} in output", bad);
    }
}

#[test]
fn no_cli_output_carries_terminal_control_sequences() {
    let (tmp, cfg) = demo_dir();
    let huge = "A".repeat(100_000);
    std::fs::write(
        tmp.path().join("incidents.toml"),
        format!(
            "[[incidents]]\nid = \"INC-1\"\ntitle = {}\nseverity = {}\nurl = {}\n\n[[incidents]]\nid = \"INC-2\"\ntitle = \"{huge}\"\nseverity = \"SEV2\"\n",
            toml_str(&format!("DB {NASTY} down")),
            toml_str(&format!("SEV1{NASTY}")),
            toml_str(&format!("https://x/{NASTY}")),
        ),
    )
    .unwrap();
    // A plugin whose error message is an attack too.
    std::fs::write(
        tmp.path().join("plugins/exec-plugin.sh"),
        "#!/bin/sh\nprintf 'target down \\033]52;c;ZXZpbA==\\007\\033[2J\\302\\233' >&2\nexit 1\n",
    )
    .unwrap();
    let reason = format!("primary read-only {NASTY} {}", "x".repeat(3000));
    let run = |who: Option<&str>, args: &[&str]| {
        let o = bg(&cfg, who, args);
        assert_clean(&format!("{args:?} stdout"), &o.stdout);
        assert_clean(&format!("{args:?} stderr"), &o.stderr);
        o
    };
    let o = run(None, &["incidents"]);
    assert!(stdout(&o).contains("DB"), "{}", stdout(&o));
    assert!(stdout(&o).contains('…'), "the 100 KB title is truncated");
    assert!(stdout(&o).len() < 5_000);
    run(None, &["--json", "incidents"]);
    run(None, &["roles"]);
    run(
        Some("alice"),
        &[
            "request",
            "--incident",
            "INC-1",
            "--role",
            "k8s-cluster-admin",
            "--condition",
            "production outage",
            "--reason",
            &reason,
        ],
    );
    run(
        Some("alice"),
        &[
            "request",
            "--incident",
            "INC-1",
            "--role",
            "payments-api-operator",
            "--condition",
            "production outage",
            "--reason",
            &reason,
        ],
    );
    run(Some("bob"), &["approve", "REQ-1", "--comment", NASTY]);
    run(Some("bob"), &["approve", "REQ-2"]);
    run(Some("alice"), &["status", "REQ-1"]);
    run(None, &["status", "--all"]);
    run(None, &["--json", "status", "REQ-1"]);
    let o = run(Some("alice"), &["--json", "activate", "REQ-2"]);
    assert!(stderr(&o).contains("target down"), "{}", stderr(&o));
    run(Some("alice"), &["status", "REQ-2"]);
    run(Some("carol"), &["deny", "REQ-1", "--reason", NASTY]);
    run(Some("alice"), &["status", "REQ-1"]);
    run(None, &["audit", "export"]);
    run(None, &["audit", "export", "--format", "ocsf"]);
    run(None, &["audit", "verify"]);
    run(None, &["sweep"]);
    // An unknown request id or ticket is echoed back sanitised.
    run(
        Some("alice"),
        &[
            "request",
            "--ticket",
            &format!("INC-{NASTY}"),
            "--role",
            "k8s-cluster-admin",
            "--condition",
            "production outage",
            "--reason",
            "r",
        ],
    );
    run(
        Some("alice"),
        &[
            "request",
            "--incident",
            NASTY,
            "--role",
            "k8s-cluster-admin",
            "--condition",
            "production outage",
            "--reason",
            "r",
        ],
    );
}

// ---------------------------------------------------------------------------
// The same campaign with the real binary on a pseudo-terminal. On a terminal
// the CLI behaves differently (the credential is printed, clap colours its
// errors), so pipes alone cannot show what reaches a person's screen. Every
// byte the binary writes to the PTY is scanned (support::pty::scan): only
// printable text, \t, \n and \r may appear. Not even SGR: the CLI's own
// output has no colour; on a terminal only clap's usage errors and
// tracing-subscriber's log lines are coloured, and no run here produces
// either, so an SGR would be echoed text (ESC[8m hides what follows).
// ---------------------------------------------------------------------------

/// The hostile exec plugin for the PTY runs. A grant for `REQ-2` fails with an
/// attack (and 100 KB) on stderr; other grants succeed with a hostile lease id
/// and message (the credential is benign here: see
/// `credential_fields_from_a_plugin_reach_a_terminal_clean`). The first three
/// revokes of `REQ-3` fail with an attack; extend is refused with one;
/// anything else fails with one.
const HOSTILE_PLUGIN: &str = r#"#!/bin/sh
dir=$(dirname "$0")
IFS= read -r line || true
nasty='\033[8m\033]52;c;ZXZpbA==\007\033]8;;http://evil.example\033\\link\033]8;;\033\\\033]0;pwned\007\033[6n\033[2J\033P+q544e\033\\\302\23331m\233\342\200\256gnp.exe\007'
huge() { head -c 100000 /dev/zero | tr '\0' B; }
case "$line" in
*'"op":"grant"'*)
    case "$line" in
    *'"request_id":"REQ-2"'*)
        printf "grant refused $nasty " >&2
        huge >&2
        exit 1
        ;;
    esac
    printf '{"ok":true,"lease_id":"lease\\u001b]0;pwned\\u0007\\u009b2J\\u202e-%s","message":"\\u001b]52;c;ZXZpbA==\\u0007"' "$$"
    printf ',"credential":{"username":"bg_user","password":"pw%s"}}\n' "$$"
    ;;
*'"op":"revoke"'*)
    case "$line" in *'"request_id":"REQ-3"'*) ;; *) printf '{"ok":true}\n'; exit 0 ;; esac
    printf x >>"$dir/revoke-failures"
    if [ "$(wc -c <"$dir/revoke-failures")" -le 3 ]; then
        printf "revoke failed $nasty " >&2
        huge >&2
        exit 1
    fi
    printf '{"ok":true}\n'
    ;;
*'"op":"extend"'*)
    printf '{"ok":false,"error":"extend refused \\u001b]52;c;ZXZpbA==\\u0007\\u009b2J\\u202e %s"}\n' "$(huge)"
    ;;
*)
    printf "unsupported $nasty" >&2
    exit 2
    ;;
esac
"#;

/// Runs commands under a PTY and collects what should not have reached it.
#[derive(Default)]
struct PtyCheck {
    runs: usize,
    failures: Vec<String>,
}

impl PtyCheck {
    /// `breakglass ARGS` under a PTY; records anything in the raw bytes a
    /// terminal would act on, a 100 KB string that went through whole (a run
    /// of more than 600 of one uppercase letter: the attacks carry runs of A,
    /// B and C) and more than 64 KiB of output (for `audit export`, an event
    /// line over 8 KiB).
    fn run(&mut self, cfg: &Path, who: Option<&str>, args: &[&str]) -> pty::PtyRun {
        let o = pty::bg_pty(cfg, who, args);
        self.runs += 1;
        let shown: Vec<String> = args
            .iter()
            .map(|a| format!("{:?}", a.chars().take(40).collect::<String>()))
            .collect();
        let label = format!("--as {} {}", who.unwrap_or("-"), shown.join(" "));
        let scan = pty::scan(&o.raw, pty::Allow { sgr: false });
        for v in scan.violations.iter().take(5) {
            self.failures
                .push(format!("[{label}] byte {}: {}", v.at, v.what));
        }
        if scan.violations.len() > 5 {
            self.failures.push(format!(
                "[{label}] ... {} violations in all",
                scan.violations.len()
            ));
        }
        let (byte, run) = scan.longest_run;
        if run > 600 && byte.is_ascii_uppercase() {
            self.failures.push(format!(
                "[{label}] a run of {run} {:?}: a huge string was not truncated",
                byte as char
            ));
        }
        // `audit export` writes the whole log, one event a line, and grows with
        // every event: there a huge string shows as one huge line.
        if args.starts_with(&["audit", "export"]) {
            if let Some(l) = o.raw.split(|b| *b == b'\n').find(|l| l.len() > 8 * 1024) {
                self.failures
                    .push(format!("[{label}] an event of {} bytes", l.len()));
            }
        } else if o.raw.len() > 64 * 1024 {
            self.failures
                .push(format!("[{label}] {} bytes of output", o.raw.len()));
        }
        o
    }

    #[track_caller]
    fn assert_clean(&self) {
        assert!(
            self.failures.is_empty(),
            "terminal control sequences reached the terminal ({} runs):\n{}",
            self.runs,
            self.failures.join("\n")
        );
    }
}

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn request_args(role: &str, incident: &str, reason: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "request",
        "--incident",
        incident,
        "--role",
        role,
        "--condition",
        "production outage",
        "--reason",
        reason,
    ]
    .map(String::from)
    .to_vec();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// The first `REQ-n` an output names.
fn req_id(o: &pty::PtyRun) -> String {
    let t = o.text();
    regex::Regex::new(r"REQ-[0-9]+")
        .unwrap()
        .find(&t)
        .unwrap_or_else(|| panic!("no request id in: {t}"))
        .as_str()
        .to_string()
}

/// The demo with hostile incidents (NASTY, a 100 KB title) and the hostile
/// plugin behind payments-api-operator (which may be extended once).
fn hostile_demo() -> (tempfile::TempDir, PathBuf) {
    let (tmp, cfg) = demo_dir();
    let dir = tmp.path();
    let huge_a = "A".repeat(100_000);
    std::fs::write(
        dir.join("incidents.toml"),
        format!(
            "[[incidents]]\nid = \"INC-1\"\ntitle = {}\nseverity = {}\nurl = {}\n\n[[incidents]]\nid = \"INC-2\"\ntitle = \"{huge_a}\"\nseverity = \"SEV2\"\n",
            toml_str(&format!("DB {NASTY}\u{1b}[8m\u{1b}[30;40m down")),
            toml_str(&format!("SEV1{NASTY}")),
            toml_str(&format!("https://x/{NASTY}")),
        ),
    )
    .unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "max_ttl = \"45m\"",
        "max_ttl = \"45m\"\nmax_extensions = 1",
        1,
    );
    std::fs::write(&cfg, text + &vendor_role("")).unwrap();
    std::fs::write(dir.join("plugins/exec-plugin.sh"), HOSTILE_PLUGIN).unwrap();
    (tmp, cfg)
}

/// Adds a second incident source, broken in a hostile way: its parse error
/// quotes an attack and 100 KB of `C` back.
fn add_broken_source(cfg: &Path) {
    let dir = cfg.parent().unwrap();
    let status = format!("{NASTY}{}", "C".repeat(100_000));
    std::fs::write(
        dir.join("hostile-incidents.json"),
        serde_json::json!({"incidents": [{"id": "X", "title": "t", "status": status}]}).to_string(),
    )
    .unwrap();
    let text = std::fs::read_to_string(cfg).unwrap().replacen(
        "[backends.demo]",
        "[[incident_sources]]\nname = \"hostile-feed\"\nkind = \"file\"\npath = \"hostile-incidents.json\"\n\n[backends.demo]",
        1,
    );
    std::fs::write(cfg, text).unwrap();
}

#[test]
fn no_cli_output_on_a_terminal_carries_terminal_control_sequences() {
    let (tmp, cfg) = hostile_demo();
    let dir = tmp.path();
    let reason = format!("primary read-only {NASTY} {}", "x".repeat(3000));
    let huge_c = format!("{NASTY}{}", "C".repeat(100_000));
    let mut c = PtyCheck::default();

    // Refusals that echo what was asked for (k8s-cluster-admin is still free).
    // With every source readable: an unknown incident next to a broken source
    // is `an_unknown_incident_is_refused_clean_on_a_terminal_when_a_source_is_broken`.
    for (flag, value) in [
        ("--ticket", format!("INC-{NASTY}")),
        ("--ticket", huge_c.clone()),
        ("--incident", NASTY.to_string()),
        ("--incident", huge_c.clone()),
    ] {
        let mut v = request_args(K8S, "", "r", &[]);
        v[1] = flag.into();
        v[2] = value;
        let o = c.run(&cfg, Some("alice"), &argv(&v));
        assert_ne!(o.code, 0, "{}", o.text());
    }
    let v = request_args(K8S, NASTY, "r", &["--non-interactive", "--json"]);
    let o = c.run(&cfg, Some("alice"), &argv(&v));
    assert!(o.text().contains("\"error\""), "{}", o.text());

    // Incidents (one source now broken in a hostile way) and roles.
    add_broken_source(&cfg);
    let o = c.run(&cfg, None, &["incidents"]);
    let t = o.text();
    // (The 100 KB title's truncation is checked by `PtyCheck::run`.)
    assert!(t.contains("DB") && t.contains("INC-2"), "{t}");
    assert!(t.contains("hostile-feed is unavailable"), "{t}");
    c.run(&cfg, None, &["--json", "incidents"]);
    c.run(&cfg, Some("alice"), &["roles"]);
    c.run(&cfg, Some("alice"), &["--json", "roles"]);

    // REQ-1 on the demo backend: the whole lifecycle with hostile text everywhere.
    let o = c.run(
        &cfg,
        Some("alice"),
        &argv(&request_args(K8S, "INC-1", &reason, &[])),
    );
    let r1 = req_id(&o);
    c.run(&cfg, Some("bob"), &["approve", &r1, "--print-statement"]);
    c.run(&cfg, Some("bob"), &["approve", &r1, "--comment", NASTY]);
    let o = c.run(&cfg, Some("alice"), &["activate", &r1]);
    assert!(
        o.text().contains("credential (shown once"),
        "on a terminal the credential is printed: {}",
        o.text()
    );
    c.run(
        &cfg,
        Some("alice"),
        &["extend", &r1, "--by", "5m", "--reason", NASTY],
    );
    c.run(&cfg, Some("alice"), &["status", &r1]);
    c.run(&cfg, Some("alice"), &["roles"]);
    c.run(&cfg, Some("alice"), &["revoke", &r1, "--reason", NASTY]);
    let answer = format!("did things {NASTY}");
    let review = |id: &str| -> Vec<String> {
        [
            "review",
            id,
            "--actions-taken",
            &answer,
            "--systems-touched",
            &answer,
            "--access-necessary",
            "yes",
            "--credentials-copied",
            "yes",
            "--credentials-copied-where",
            &answer,
            "--follow-ups",
            &answer,
        ]
        .map(String::from)
        .to_vec()
    };
    c.run(&cfg, Some("alice"), &argv(&review(&r1)));
    c.run(&cfg, Some("dave"), &["certify", &r1, "--print-statement"]);
    c.run(
        &cfg,
        Some("dave"),
        &["certify", &r1, "--reject", "--comment", NASTY],
    );
    c.run(&cfg, Some("alice"), &["status", &r1]);
    c.run(&cfg, Some("alice"), &argv(&review(&r1)));
    c.run(&cfg, Some("dave"), &["certify", &r1, "--comment", NASTY]);
    c.run(&cfg, Some("alice"), &["status", &r1]);
    c.run(&cfg, None, &["--json", "status", &r1]);

    // REQ-2 on the hostile plugin: the grant fails with an attack.
    let o = c.run(
        &cfg,
        Some("alice"),
        &argv(&request_args(PLUGIN_ROLE, "INC-1", &reason, &[])),
    );
    let r2 = req_id(&o);
    c.run(&cfg, Some("bob"), &["--json", "approve", &r2]);
    let o = c.run(&cfg, Some("alice"), &["activate", &r2]);
    assert!(o.text().contains("grant refused"), "{}", o.text());
    c.run(&cfg, Some("alice"), &["status", &r2]);

    // REQ-3 on the hostile plugin: granted with a hostile lease id; extend is
    // refused with an attack; revoking fails with one (three times: the revoke,
    // then two sweeps), the next command's recovery completes it.
    let o = c.run(
        &cfg,
        Some("alice"),
        &argv(&request_args(PLUGIN_ROLE, "INC-1", &reason, &["--json"])),
    );
    let r3 = format!(
        "REQ-{}",
        serde_json::from_str::<serde_json::Value>(&o.text()).unwrap()["request"]["id"]
    );
    c.run(&cfg, Some("bob"), &["approve", &r3]);
    let o = c.run(&cfg, Some("alice"), &["activate", &r3]);
    assert!(o.text().contains("credential (shown once"), "{}", o.text());
    let o = c.run(
        &cfg,
        Some("alice"),
        &["extend", &r3, "--by", "5m", "--reason", "more"],
    );
    assert!(o.text().contains("extend refused"), "{}", o.text());
    let o = c.run(&cfg, Some("alice"), &["revoke", &r3]);
    assert!(o.text().contains("revoke failed"), "{}", o.text());
    let o = c.run(&cfg, None, &["sweep"]);
    assert!(o.text().contains("revoke failed"), "{}", o.text());
    c.run(&cfg, None, &["--json", "sweep"]);
    let o = c.run(&cfg, Some("alice"), &["status", &r3]);
    assert!(o.text().contains("completed on retry"), "{}", o.text());
    c.run(&cfg, None, &["--json", "status", &r3]);

    // REQ-4 denied with an attack; REQ-5 cancelled; REQ-6 waited on; REQ-7 from
    // automation.
    let o = c.run(
        &cfg,
        Some("alice"),
        &argv(&request_args(DBA, "INC-1", &reason, &[])),
    );
    let r4 = req_id(&o);
    c.run(&cfg, Some("carol"), &["deny", &r4, "--reason", NASTY]);
    c.run(&cfg, Some("alice"), &["status", &r4]);
    let o = c.run(
        &cfg,
        Some("alice"),
        &argv(&request_args(DBA, "INC-1", &reason, &[])),
    );
    let r5 = req_id(&o);
    c.run(&cfg, Some("alice"), &["cancel", &r5]);
    let o = c.run(
        &cfg,
        Some("alice"),
        &argv(&request_args(
            DBA,
            "INC-1",
            &reason,
            &["--wait", "--wait-timeout", "1s"],
        )),
    );
    assert_eq!(o.code, 5, "{}", o.text());
    c.run(
        &cfg,
        Some("alice"),
        &argv(&request_args(
            DBA,
            "INC-1",
            &reason,
            &["--non-interactive", "--json"],
        )),
    );

    // A vendor role: recertified with an attack as the comment, then
    // requested for a vendor whose name and company are attacks.
    let comment = format!("reviewed {NASTY}");
    let o = c.run(
        &cfg,
        Some("dave"),
        &["roles", "recertify", VENDOR, "--comment", &comment],
    );
    assert!(o.text().contains("recertified"), "{}", o.text());
    c.run(
        &cfg,
        Some("dave"),
        &[
            "--json",
            "roles",
            "recertify",
            VENDOR,
            "--comment",
            &comment,
        ],
    );
    let vendor = format!("Vera {NASTY}");
    let o = c.run(
        &cfg,
        Some("alice"),
        &argv(&request_args(
            VENDOR,
            "INC-1",
            &reason,
            &["--vendor-name", &vendor, "--vendor-company", &vendor],
        )),
    );
    assert_eq!(o.code, 0, "{}", o.text());
    let r8 = req_id(&o);
    c.run(&cfg, Some("alice"), &["status", &r8]);
    c.run(&cfg, None, &["--json", "status", &r8]);
    c.run(&cfg, Some("alice"), &["roles"]);

    // Lists, the audit trail, and a hostile checkpoint (text form; the JSON
    // form is `a_hostile_checkpoint_is_echoed_clean_on_a_terminal`).
    c.run(&cfg, Some("alice"), &["status"]);
    c.run(&cfg, None, &["status", "--all"]);
    c.run(&cfg, None, &["--json", "status", "--all"]);
    c.run(&cfg, None, &["audit", "verify"]);
    c.run(&cfg, None, &["--json", "audit", "verify"]);
    c.run(&cfg, None, &["audit", "export"]);
    c.run(&cfg, None, &["audit", "export", "--format", "ocsf"]);
    let cp = hostile_checkpoint(dir);
    let key = "11".repeat(32);
    let o = c.run(
        &cfg,
        None,
        &[
            "audit",
            "verify",
            "--checkpoint",
            cp.to_str().unwrap(),
            "--public-key",
            &key,
        ],
    );
    assert!(o.text().contains("checkpoint FAILED"), "{}", o.text());

    eprintln!("{} commands run under a pty", c.runs);
    c.assert_clean();
}

fn hostile_checkpoint(dir: &Path) -> PathBuf {
    let cp = dir.join("hostile-checkpoint.json");
    std::fs::write(
        &cp,
        serde_json::json!({"tree_size": 1, "head": NASTY, "at": NASTY, "key_id": NASTY, "signature": NASTY})
            .to_string(),
    )
    .unwrap();
    cp
}

/// Was a leak: on a terminal `activate` printed the credential's fields as the
/// backend returned them (`output::credential`), so a plugin can retitle the
/// window or write the clipboard. Pipes never see this: the credential is only
/// printed to a terminal.
#[test]
fn credential_fields_from_a_plugin_reach_a_terminal_clean() {
    let (tmp, cfg) = demo_dir();
    std::fs::write(
        tmp.path().join("plugins/exec-plugin.sh"),
        r#"#!/bin/sh
IFS= read -r line || true
case "$line" in
*'"op":"grant"'*)
    printf '{"ok":true,"lease_id":"l-%s","credential":{"user\\u001b]0;pwned\\u0007name":"pw\\u001b]52;c;ZXZpbA==\\u0007\\u009b6n\\u202egnp"}}\n' "$$"
    ;;
*) printf '{"ok":true}\n' ;;
esac
"#,
    )
    .unwrap();
    let mut c = PtyCheck::default();
    for json in [false, true] {
        let o = c.run(
            &cfg,
            Some("alice"),
            &argv(&request_args(PLUGIN_ROLE, "INC-1042", "r", &[])),
        );
        let id = req_id(&o);
        c.run(&cfg, Some("bob"), &["approve", &id]);
        let mut v = vec!["activate", id.as_str()];
        if json {
            v.insert(0, "--json");
        }
        let o = c.run(&cfg, Some("alice"), &v);
        assert!(
            o.text().contains("name") && o.text().contains("gnp"),
            "the credential is printed: {}",
            o.text()
        );
        // Unlock the role for the next round.
        c.run(&cfg, Some("alice"), &["revoke", &id]);
        let o = c.run(
            &cfg,
            Some("alice"),
            &[
                "review",
                &id,
                "--actions-taken",
                "a",
                "--systems-touched",
                "b",
                "--access-necessary",
                "yes",
                "--credentials-copied",
                "no",
            ],
        );
        assert_eq!(o.code, 0, "{}", o.text());
        let o = c.run(&cfg, Some("dave"), &["certify", &id]);
        assert_eq!(o.code, 0, "{}", o.text());
    }
    c.assert_clean();
}

/// Was a leak: an incident id no source has, while another source fails to
/// parse, is refused with that source's error (`Error::Source`) unsanitised:
/// the file source's parse error quotes the file (an attack and 100 KB), in
/// text and in the `--non-interactive --json` error document.
#[test]
fn an_unknown_incident_is_refused_clean_on_a_terminal_when_a_source_is_broken() {
    let (_tmp, cfg) = demo_dir();
    add_broken_source(&cfg);
    let mut c = PtyCheck::default();
    for extra in [&[][..], &["--non-interactive", "--json"]] {
        let o = c.run(
            &cfg,
            Some("alice"),
            &argv(&request_args(K8S, "INC-404", "r", extra)),
        );
        assert_ne!(o.code, 0, "{}", o.text());
    }
    c.assert_clean();
}

/// Was a leak: `--json audit verify --checkpoint FILE` echoed the file's
/// fields; serde_json escapes ESC and BEL but not C1 controls or bidi marks.
#[test]
fn a_hostile_checkpoint_is_echoed_clean_on_a_terminal() {
    let (tmp, cfg) = demo_dir();
    let cp = hostile_checkpoint(tmp.path());
    let key = "11".repeat(32);
    let mut c = PtyCheck::default();
    let args = [
        "--json",
        "audit",
        "verify",
        "--checkpoint",
        cp.to_str().unwrap(),
        "--public-key",
        &key,
    ];
    let o = c.run(&cfg, None, &args);
    assert_eq!(o.code, 6, "{}", o.text());
    c.assert_clean();
}

/// The scanner itself: each attack in NASTY is found (and named), SGR is let
/// through only when allowed, text and line endings pass.
#[test]
fn the_pty_scanner_finds_every_kind_of_control() {
    let clean = "REQ-1 ok: naïve café ✓ 日本\r\n\ttab\n".as_bytes();
    assert!(pty::scan(clean, pty::Allow { sgr: false })
        .violations
        .is_empty());
    let sgr = b"\x1b[1m\x1b[31merror:\x1b[0m \x1b[38;5;196mx\x1b[38:2::1:2:3m\x1b[m";
    let s = pty::scan(sgr, pty::Allow { sgr: true });
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(s.sgr, 6);
    assert_eq!(
        pty::scan(sgr, pty::Allow { sgr: false }).violations.len(),
        6
    );

    let kinds = |b: &[u8]| -> Vec<String> {
        pty::scan(b, pty::Allow { sgr: true })
            .violations
            .into_iter()
            .map(|v| v.what.split([' ', '(']).next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        kinds(NASTY.as_bytes()),
        ["OSC", "OSC", "OSC", "OSC", "CSI", "C1", "bidi", "BEL"],
        "{:?}",
        pty::scan(NASTY.as_bytes(), pty::Allow { sgr: true }).violations
    );
    for (bytes, kind) in [
        (&b"\x1b[2J"[..], "CSI"),
        (b"\x1b[?1049h", "CSI"),
        (b"\x1b[6n", "CSI"),
        (b"\x1b[1 q", "CSI"),
        (b"\x1b[31", "malformed"),
        (b"\x1bP+q544e\x1b\\", "DCS"),
        (b"\x1b_x\x1b\\", "APC"),
        (b"\x1b^x\x07", "PM"),
        (b"\x1bXx\x1b\\", "SOS"),
        (b"\x1bc", "escape"),
        (b"\x1b(0", "escape"),
        (b"\x1b", "lone"),
        (b"\x9b6n", "raw"),
        (b"\x9d0;t\x07", "raw"),
        (b"\xc2\x9d0;t", "C1"),
        (b"\xe2\x81\xa6x", "bidi"),
        (b"\xe2\x80\x8f", "bidi"),
        (b"\x08", "C0"),
        (b"\x7f", "C0"),
        (b"\xff", "invalid"),
    ] {
        let k = kinds(bytes);
        assert_eq!(
            k.first().map(String::as_str),
            Some(kind),
            "{bytes:?}: {k:?}"
        );
    }
    // A 100 KB run is measured.
    assert_eq!(
        pty::scan(&[b'A'; 1000], pty::Allow { sgr: false }).longest_run,
        (b'A', 1000)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sanitised_text_has_no_controls_and_respects_its_length(s in any::<String>(), max in 1usize..200) {
        for out in [breakglass::sanitize::line(&s, max), breakglass::sanitize::text(&s, max)] {
            prop_assert!(out.chars().filter(|c| *c != '\n').all(|c| !c.is_control()));
            let bidi = out.contains('\u{202e}') || out.contains('\u{2066}');
            prop_assert!(!bidi, "bidi control left in {:?}", out);
            prop_assert!(out.chars().count() <= max + 1);
        }
        prop_assert!(!breakglass::sanitize::line(&s, max).contains('\n'));
    }

    #[test]
    fn replayed_recordings_never_act_on_the_reviewers_terminal(
        parts in prop::collection::vec(prop_oneof![
            ".{0,12}",
            Just("\u{1b}]52;c;ZXZpbA==\u{7}".to_string()),
            Just("\u{1b}]0;title\u{1b}\\".to_string()),
            Just("\u{1b}[6n".to_string()),
            Just("\u{1b}[c".to_string()),
            Just("\u{9b}5n".to_string()),
            Just("\u{1b}P+q544e\u{1b}\\".to_string()),
            Just("\u{1b}[31m".to_string()),
            Just("\u{1b}".to_string()),
            Just("\u{1b}[".to_string()),
        ], 0..12),
    ) {
        let mut f = breakglass::sanitize::ReplayFilter::default();
        let out: String = parts.iter().map(|p| f.feed(p)).collect();
        prop_assert!(!out.contains("\u{1b}]") && !out.contains("\u{1b}P"), "string sequence kept: {:?}", out);
        prop_assert!(!out.contains("\u{1b}[6n") && !out.contains("\u{1b}[c"), "answerback kept: {:?}", out);
        prop_assert!(!out.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)), "C1 kept: {:?}", out);
    }

    #[test]
    fn the_config_parser_takes_any_text(s in "(\\[\\[?[a-z.]{0,12}\\]\\]?\n|[a-z_]{1,10} = (\"[^\"\n]{0,20}\"|[0-9]{1,4}|\\[\\]|true)\n|.{0,30}\n){0,12}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        // Either a config or problems; never a panic.
        let _ = breakglass::config::load_str(&s, &path);
    }

    #[test]
    fn the_incident_file_parser_takes_any_json(v in arb_json()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.json");
        std::fs::write(&path, serde_json::json!({"incidents": [v.clone(), {"id": v.clone(), "title": v}]}).to_string()).unwrap();
        let src = breakglass::incident::file::FileSource::new("f".into(), path);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _ = rt.block_on(breakglass::incident::IncidentSource::list_open(&src));
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every string of a JSON document, keys included.
fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

/// What a SOC tool sees after decoding the JSON: no control character but
/// newline, no bidi or invisible character, nothing over the stored cap.
fn assert_decoded_clean(what: &str, doc: &serde_json::Value) {
    let mut all = vec![];
    strings(doc, &mut all);
    for s in all {
        let bad = s.chars().find(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200b}'..='\u{200f}' | '\u{feff}' | '\u{2028}' | '\u{2029}')
        });
        assert!(bad.is_none(), "{what}: {bad:?} in {s:?}");
        assert!(
            s.chars().count() <= 20_001,
            "{what}: a {}-character string",
            s.len()
        );
    }
}

#[test]
fn what_people_typed_is_cleaned_and_capped_in_the_audit_trail_exports_and_alerts() {
    let (tmp, cfg) = demo_dir();
    let hostile = format!("{NASTY}\u{85}\u{2066}x\u{2069}\u{200b}\u{feff}\u{2028}");
    let huge = format!("{hostile}{}", "c".repeat(100_000));
    let request = |condition: &str, reason: &str| {
        bg(
            &cfg,
            Some("alice"),
            &[
                "--json",
                "request",
                "--ticket",
                "CHG-77",
                "--role",
                "k8s-cluster-admin",
                "--condition",
                condition,
                "--reason",
                reason,
            ],
        )
    };
    // Refused: the refusal quotes the condition as typed.
    let o = request(&huge, "r");
    assert_eq!(o.status.code().unwrap_or(-1), 3, "{}", stderr(&o));
    let o = request(&hostile, "r");
    assert_ne!(o.status.code().unwrap_or(-1), 0);
    // Accepted, with hostile words in every free-text field on the way.
    ok_json(request(
        "failed automation path",
        &format!("reason {hostile}"),
    ));
    ok_json(bg(
        &cfg,
        Some("bob"),
        &["--json", "approve", "REQ-1", "--comment", &hostile],
    ));
    ok_json(bg(&cfg, Some("alice"), &["--json", "activate", "REQ-1"]));
    ok_json(bg(
        &cfg,
        Some("alice"),
        &[
            "--json", "extend", "REQ-1", "--by", "1m", "--reason", &hostile,
        ],
    ));
    ok_json(bg(
        &cfg,
        Some("alice"),
        &["--json", "revoke", "REQ-1", "--reason", &hostile],
    ));
    ok_json(bg(
        &cfg,
        Some("alice"),
        &[
            "--json",
            "review",
            "REQ-1",
            "--actions-taken",
            &hostile,
            "--systems-touched",
            &hostile,
            "--access-necessary",
            "yes",
            "--credentials-copied",
            "no",
            "--follow-ups",
            &hostile,
        ],
    ));
    ok_json(bg(
        &cfg,
        Some("dave"),
        &["--json", "certify", "REQ-1", "--comment", &hostile],
    ));

    let refusals = audit_actions(tmp.path());
    assert!(!refusals.is_empty());
    for format in ["jsonl", "ocsf"] {
        let o = bg(&cfg, None, &["audit", "export", "--format", format]);
        assert_eq!(o.status.code().unwrap_or(-1), 0, "{}", stderr(&o));
        let text = stdout(&o);
        let mut refused = 0;
        for line in text.lines() {
            let doc: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_decoded_clean(&format!("audit export {format}"), &doc);
            if line.contains("policy.refused") {
                refused += 1;
                assert!(line.len() < 10_000, "a refusal of {} bytes", line.len());
            }
        }
        assert!(refused >= 2, "{format}: {refused} refusals in\n{text}");
    }
    let alerts = std::fs::read_to_string(tmp.path().join("alerts.jsonl")).unwrap();
    let mut kinds = vec![];
    for line in alerts.lines() {
        let doc: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_decoded_clean("alerts.jsonl", &doc);
        kinds.push(doc["kind"].as_str().unwrap_or_default().to_string());
    }
    assert!(kinds.iter().any(|k| k == "refusal"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "activation"), "{kinds:?}");
}

#[test]
fn clap_errors_do_not_echo_raw_arguments() {
    let (_tmp, cfg) = demo_dir();
    let hostile = format!("x{NASTY}\u{85}\u{2066}");
    for args in [
        vec!["audit", "export", "--format", hostile.as_str()],
        vec!["store", "migrate", "--to", hostile.as_str()],
        vec![hostile.as_str()],
        vec!["status", "--no-such-flag", hostile.as_str()],
        vec!["approve", hostile.as_str()],
    ] {
        let o = bg(&cfg, None, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert_clean(&format!("{args:?} stderr"), &o.stderr);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains('\u{85}'), "{err:?}");
        assert!(err.contains("error:"), "clap's message is kept: {err}");
    }
    // Help still goes to stdout, exit 0.
    let o = bg(&cfg, None, &["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Usage"));
}
