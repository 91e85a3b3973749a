//! The CLI end to end: the real binary, real processes, a real store file.

use crate::support;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use support::*;

/// Help, times, what ends access, the demo directory: the CLI speaks the console's way.
mod speaks;

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn full_walk_from_request_to_certification() {
    let (tmp, cfg) = demo_dir();
    let r = ok_json(bg(
        &cfg,
        Some("alice"),
        &[&["--json"], REQUEST_DBA].concat(),
    ));
    assert_eq!(r["request"]["id"], 1);
    assert_eq!(r["request"]["state"], "pending");
    let a = ok_json(bg(
        &cfg,
        Some("bob"),
        &["--json", "approve", "REQ-1", "--comment", "go"],
    ));
    assert_eq!(a["request"]["state"], "pending");
    let a = ok_json(bg(&cfg, Some("carol"), &["--json", "approve", "1"]));
    assert_eq!(a["request"]["state"], "approved");

    let act = ok_json(bg(&cfg, Some("alice"), &["--json", "activate", "REQ-1"]));
    assert_eq!(act["request"]["state"], "active");
    let password = act["credential"]["password"].as_str().unwrap().to_string();
    assert_eq!(password.len(), 32);
    assert!(act["request"]["remaining_seconds"].as_i64().unwrap() > 890);
    assert_eq!(demo_leases(tmp.path()).len(), 1);

    let st = bg(&cfg, None, &["status", "REQ-1"]);
    assert!(
        stdout(&st).contains("remaining:  00:14:5"),
        "{}",
        stdout(&st)
    );

    let rv = ok_json(bg(
        &cfg,
        Some("alice"),
        &["--json", "revoke", "REQ-1", "--reason", "replica promoted"],
    ));
    assert_eq!(rv["request"]["state"], "ended");
    assert!(demo_leases(tmp.path()).is_empty());

    let review = tmp.path().join("review.toml");
    std::fs::write(&review, "actions_taken = \"promoted replica\"\nsystems_touched = \"db-1\"\naccess_necessary = true\ncredentials_copied = false\nfollow_ups = \"automate\"\n").unwrap();
    let rw = ok_json(bg(
        &cfg,
        Some("alice"),
        &[
            "--json",
            "review",
            "REQ-1",
            "--file",
            review.to_str().unwrap(),
        ],
    ));
    assert_eq!(rw["request"]["state"], "reviewed");
    assert_eq!(
        rw["request"]["review"]["answers"]["actions_taken"],
        "promoted replica"
    );

    let locked = ok_json(bg(&cfg, None, &["--json", "roles"]));
    let dba = locked["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "prod-db-emergency-dba")
        .unwrap()
        .clone();
    assert_eq!(
        dba["lock_reason"],
        "awaiting certification of REQ-1 by @security"
    );

    assert_eq!(code(&bg(&cfg, Some("alice"), &["certify", "REQ-1"])), 3);
    let c = ok_json(bg(
        &cfg,
        Some("dave"),
        &["--json", "certify", "REQ-1", "--comment", "ok"],
    ));
    assert_eq!(c["request"]["state"], "certified");

    let v = ok_json(bg(&cfg, None, &["--json", "audit", "verify"]));
    assert_eq!(v["ok"], true);
    // Nine transitions, plus alice's refused attempt to certify her own review.
    assert_eq!(v["verified_events"], 10);
    let roles = ok_json(bg(&cfg, None, &["--json", "roles"]));
    assert!(roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["lock_reason"].is_null()));

    // Nothing on disk holds the credential: store, WAL, target, alerts, export.
    let export = bg(&cfg, None, &["audit", "export"]);
    assert!(!stdout(&export).contains(&password));
    assert_eq!(stdout(&export).lines().count(), 10);
    assert!(stdout(&export).contains("policy.refused"));
    for entry in walk(tmp.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(32).any(|w| w == password.as_bytes()),
            "credential in {}",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn request_wait_activates_when_approvers_act_from_other_processes() {
    let (_tmp, cfg) = demo_dir();
    let child = Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .arg("--config")
        .arg(&cfg)
        .args(["--as", "alice", "--json"])
        .args(REQUEST_DBA)
        .args(["--wait", "--wait-timeout", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the request exists, then approve from two other "terminals".
    // Generous: on a loaded machine the waiting process can take a while to start.
    let started = std::time::Instant::now();
    let mut child = child;
    while code(&bg(&cfg, None, &["status", "REQ-1"])) != 0 {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the request never appeared; the waiting process said: {}{}",
                stdout(&out),
                stderr(&out)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = bg(&cfg, Some("bob"), &["approve", "REQ-1"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(code(&bg(&cfg, Some("dave"), &["approve", "REQ-1"])), 0);
    let out = child.wait_with_output().unwrap();
    let v = ok_json(out);
    assert_eq!(v["request"]["state"], "active");
    assert_eq!(v["credential"]["username"], "bg_req_1");
}

#[test]
fn exit_codes_are_as_documented() {
    let (tmp, cfg) = demo_dir();
    // 3: refused by policy.
    let o = bg(&cfg, Some("carol"), REQUEST_DBA);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("may not request"));
    // 2: usage (unknown request id, bad duration).
    assert_eq!(code(&bg(&cfg, Some("bob"), &["approve", "REQ-99"])), 2);
    // A malformed id is clap's usage error, naming both spellings; nothing ran.
    for bad in ["REQ-x", "0", "-3", "banana"] {
        let o = bg(&cfg, Some("bob"), &["approve", "--", bad]);
        assert_eq!(code(&o), 2, "{bad}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("write it as REQ-12 or 12"),
            "{bad}: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("<ID>"), "{}", stderr(&o));
    }
    assert_eq!(
        code(&bg(
            &cfg,
            Some("alice"),
            &[REQUEST_DBA, &["--ttl", "soon"]].concat()
        )),
        2
    );
    // Zero is no TTL, as in the console and the config.
    let o = bg(
        &cfg,
        Some("alice"),
        &[REQUEST_DBA, &["--ttl", "0"]].concat(),
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--ttl `0` is not a duration"),
        "{}",
        stderr(&o)
    );
    // 5: still pending when --wait gives up.
    let o = bg(
        &cfg,
        Some("alice"),
        &[REQUEST_K8S, &["--json", "--wait", "--wait-timeout", "1s"]].concat(),
    );
    assert_eq!(code(&o), 5, "{}", stderr(&o));
    // 4: backend failure (a plugin that exits non-zero).
    let plugin = tmp.path().join("plugins/exec-plugin.sh");
    std::fs::write(&plugin, "#!/bin/sh\necho 'target API down' >&2\nexit 1\n").unwrap();
    let req = [&["--json"], REQUEST_DBA].concat();
    let mut req = req.clone();
    req[5] = "payments-api-operator";
    let id = ok_json(bg(&cfg, Some("alice"), &req))["request"]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    ok_json(bg(&cfg, Some("bob"), &["--json", "approve", &id]));
    let o = bg(&cfg, Some("alice"), &["--json", "activate", &id]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("target API down"));
    let st = ok_json(bg(&cfg, None, &["--json", "status", &id]));
    assert_eq!(
        st["request"]["state"], "revoking",
        "a failed grant is revoked before it is marked failed"
    );
    // 6: a broken audit chain.
    let db = rusqlite::Connection::open(tmp.path().join("breakglass.sqlite")).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE seq = 2;",
    )
    .unwrap();
    let o = bg(&cfg, None, &["audit", "verify"]);
    assert_eq!(code(&o), 6);
    assert!(stdout(&o).contains("BROKEN at event #2"), "{}", stdout(&o));
    // --help documents them.
    assert!(stdout(&bg(&cfg, None, &["--help"])).contains("3 refused by policy"));
}

#[test]
fn audit_verify_names_deleted_and_reordered_events() {
    let (tmp, cfg) = demo_dir();
    ok_json(bg(
        &cfg,
        Some("alice"),
        &[&["--json"], REQUEST_DBA].concat(),
    ));
    ok_json(bg(&cfg, Some("bob"), &["--json", "approve", "1"]));
    ok_json(bg(&cfg, Some("carol"), &["--json", "approve", "1"]));
    ok_json(bg(&cfg, Some("alice"), &["--json", "cancel", "1"]));
    let db = rusqlite::Connection::open(tmp.path().join("breakglass.sqlite")).unwrap();
    // The append-only trigger stops casual edits...
    assert!(db.execute("DELETE FROM audit WHERE seq = 2", []).is_err());
    // ...and the chain catches deliberate ones.
    db.execute_batch("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 2;")
        .unwrap();
    let o = bg(&cfg, None, &["--json", "audit", "verify"]);
    assert_eq!(code(&o), 6);
    assert_eq!(json(&o)["broken"]["seq"], 3);
    assert!(json(&o)["broken"]["reason"]
        .as_str()
        .unwrap()
        .contains("deleted or reordered"));
}

#[test]
fn config_check_lists_every_problem_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bg.toml");
    std::fs::write(
        tmp.path().join("policy.toml"),
        r#"[groups]
leads = ["carol"]

[[roles]]
name = "db"
backend = "nope"
default_ttl = "45m"
max_ttl = "30m"
min_ttl = "50m"
conditions = ["outage"]
ticket_pattern = "INC-[0-9]+"
requesters = ["alice", "@ghosts"]
approvers = ["@leads"]
approvals_required = 2
certifiers = ["alice"]
"#,
    )
    .unwrap();
    std::fs::write(
        &cfg,
        "policy = \"policy.toml\"\n\n[backends.demo]\nkind = \"demo\"\n",
    )
    .unwrap();
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    let pfile = tmp.path().join("policy.toml").display().to_string();
    for (line, needle) in [
        (
            6,
            "backend \"nope\" is not defined; define [backends.nope] or use one of: demo",
        ),
        (7, "default_ttl 45m is longer than max_ttl 30m"),
        (9, "min_ttl 50m is longer than default_ttl 45m"),
        (11, "write \"^INC-[0-9]+$\""),
        (12, "group \"ghosts\" is not defined"),
        (13, "only 1 other approver(s) exist for 2 required"),
        (15, "nobody else can certify it"),
    ] {
        let want = format!("{pfile}:{line}: ");
        assert!(
            err.lines()
                .any(|l| l.starts_with(&want) && l.contains(needle)),
            "missing `{want}...{needle}` in:\n{err}"
        );
    }
    // A syntax error names its line too.
    std::fs::write(&cfg, "[store\nkind = 1\n").unwrap();
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("bg.toml:1:"), "{}", stderr(&o));
    // Unknown keys say what is accepted.
    std::fs::write(&cfg, "[backends.demo]\nkind = \"demo\"\ncolour = \"red\"\n").unwrap();
    let o = bg(&cfg, None, &["config", "check"]);
    assert!(
        stderr(&o).contains(":3: unknown field `colour`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn init_writes_a_valid_starter_and_never_overwrites_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("conf/breakglass.toml");
    assert_eq!(code(&bg(&cfg, None, &["init"])), 0);
    assert_eq!(mode(&cfg), 0o600, "the policy is its owner's alone");
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(code(&o), 0, "the starter config is valid: {}", stderr(&o));
    assert!(stdout(&o).contains("no [broker]"), "{}", stdout(&o));
    // Its commented [broker] section, uncommented, makes it a broker's config.
    let starter = std::fs::read_to_string(&cfg).unwrap();
    let broker: String = starter
        .lines()
        .map(|l| match l {
            "# [broker]" => "[broker]".to_string(),
            l if l.starts_with("# socket = ") || l.starts_with("# group = ") => l[2..].to_string(),
            l => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(
        broker, starter,
        "the starter has a commented [broker] section"
    );
    std::fs::write(&cfg, format!("{broker}\n")).unwrap();
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("people's commands go to it at /run/breakglass/broker.sock, where members of group breakglass-users may connect"),
        "{}",
        stdout(&o)
    );
    std::fs::write(&cfg, "# mine\n").unwrap();
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let o = bg(&cfg, None, &["init"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--force"));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "# mine\n");
    assert_eq!(code(&bg(&cfg, None, &["init", "--force"])), 0);
    assert!(std::fs::read_to_string(&cfg).unwrap().contains("[[roles]]"));
    assert_eq!(mode(&cfg), 0o600, "--force narrows a 0644 file");
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn audit_export_files_are_their_owners_alone() {
    let (tmp, cfg) = demo_dir();
    ok_json(bg(
        &cfg,
        Some("alice"),
        &[&["--json"], REQUEST_K8S].concat(),
    ));
    for format in ["jsonl", "ocsf"] {
        let out = tmp.path().join(format!("export.{format}"));
        let o = bg(
            &cfg,
            None,
            &[
                "audit",
                "export",
                "--format",
                format,
                "--output",
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(mode(&out), 0o600, "{format}");
        assert!(std::fs::read_to_string(&out)
            .unwrap()
            .contains("deploy pipeline wedged"));
    }
}

#[test]
fn config_check_refuses_credentials_in_any_url() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = production_like(tmp.path());
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        r#"
[backends.api]
kind = "http"
url = "https://u:HTTPPW@access.example.com/breakglass"
secret_env = "S"

[backends.vault]
kind = "vault"
addr = "https://u:VAULTPW@vault.example.com:8200"

[[alerts.sinks]]
kind = "webhook"
url = "https://soc.example.com/hook?token=HOOKPW"

[[incident_sources]]
name = "status"
kind = "http"
url = "https://status.example.com/api?limit=5&api_key=SRCPW"
fields = { id = "id", title = "title", status = "status" }
"#,
    );
    std::fs::write(&cfg, &text).unwrap();
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
    let out = format!("{}{}", stdout(&o), stderr(&o));
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (needle, place) in [
        ("HTTPPW", "user info"),
        ("VAULTPW", "user info"),
        ("HOOKPW", "query parameter \"token\""),
        ("SRCPW", "query parameter \"api_key\""),
    ] {
        let line = format!(":{}:", line_of(needle));
        assert!(
            out.lines().any(|l| l.contains(&line)
                && l.contains("credentials never go in a URL")
                && l.contains(place)),
            "no refusal at {line} naming {place}:\n{out}"
        );
        assert!(
            !out.contains(needle),
            "the secret {needle} was echoed:\n{out}"
        );
    }
}

/// A non-demo config where anyone may request, on the demo backend.
fn production_like(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = dir.join("prod.toml");
    std::fs::write(
        &cfg,
        r#"[store]
kind = "sqlite"
path = "store.sqlite"

[backends.demo]
kind = "demo"

[[roles]]
name = "ops"
backend = "demo"
default_ttl = "5m"
max_ttl = "10m"
conditions = ["outage"]
ticket_pattern = "^INC-[0-9]+$"
requesters = ["*"]
approvers = ["*"]
certifiers = ["*"]
"#,
    )
    .unwrap();
    cfg
}

#[test]
fn identity_is_the_os_account_outside_demo_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = production_like(tmp.path());
    let o = bg(&cfg, Some("alice"), &["roles"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--as is only accepted in demo mode"));
    // $USER is not identity.
    let o = bg_env(
        &cfg,
        None,
        &[
            "--json",
            "request",
            "--ticket",
            "INC-1",
            "--role",
            "ops",
            "--condition",
            "outage",
            "--reason",
            "r",
        ],
        &[("USER", "mallory"), ("LOGNAME", "mallory")],
    );
    let v = ok_json(o);
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    assert_eq!(v["request"]["requester"], me.as_str());
    assert_ne!(me, "mallory");
    // And the OS user cannot approve their own request.
    let o = bg(&cfg, None, &["approve", "REQ-1"]);
    assert_eq!(code(&o), 3);
}

#[test]
fn credentials_are_not_printed_into_pipes_and_not_logged() {
    let (_tmp, cfg) = demo_dir();
    ok_json(bg(
        &cfg,
        Some("alice"),
        &[&["--json"], REQUEST_K8S].concat(),
    ));
    ok_json(bg(&cfg, Some("bob"), &["--json", "approve", "1"]));
    let o = bg_env(
        &cfg,
        Some("alice"),
        &["activate", "1"],
        &[("BREAKGLASS_LOG", "trace")],
    );
    // Refused before granting: the credential would have been lost.
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!stdout(&o).contains("password"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("stdout is not a terminal") && stderr(&o).contains("--json"),
        "{}",
        stderr(&o)
    );
    let st = ok_json(bg(&cfg, None, &["--json", "status", "1"]));
    assert_eq!(st["request"]["state"], "approved");
    // `request --wait` would activate too: refused the same way, before filing.
    let o = bg(&cfg, Some("alice"), &[REQUEST_K8S, &["--wait"]].concat());
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing was granted"), "{}", stderr(&o));
    // With --json automation gets it; the store holds the lease, not the credential.
    let o = bg_env(
        &cfg,
        Some("alice"),
        &["--json", "activate", "1"],
        &[("BREAKGLASS_LOG", "trace")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("password"), "{}", stderr(&o));
    let st = ok_json(bg(&cfg, None, &["--json", "status", "1"]));
    assert_eq!(st["request"]["state"], "active");
    assert!(!st.to_string().contains("password"));
}

#[test]
fn concurrent_sweepers_revoke_an_expired_grant_exactly_once() {
    let (tmp, cfg) = demo_dir();
    ok_json(bg(
        &cfg,
        Some("alice"),
        &[REQUEST_K8S, &["--json", "--ttl", "1s"]].concat(),
    ));
    ok_json(bg(&cfg, Some("bob"), &["--json", "approve", "1"]));
    ok_json(bg(&cfg, Some("alice"), &["--json", "activate", "1"]));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_breakglass"))
                .arg("--config")
                .arg(&cfg)
                .arg("sweep")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let actions = audit_actions(tmp.path());
    let count = |a: &str| actions.iter().filter(|(_, x)| x == a).count();
    assert_eq!(count("revoke.started"), 1, "{actions:?}");
    assert_eq!(count("revoke.confirmed"), 1, "{actions:?}");
    assert!(demo_leases(tmp.path()).is_empty());
    assert_eq!(
        ok_json(bg(&cfg, None, &["--json", "status", "1"]))["request"]["state"],
        "ended"
    );
}

#[test]
fn racing_revokers_produce_one_transition() {
    let (tmp, cfg) = demo_dir();
    activated(&cfg, REQUEST_K8S);
    let children: Vec<_> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|who| {
            Command::new(env!("CARGO_BIN_EXE_breakglass"))
                .arg("--config")
                .arg(&cfg)
                .args(["--as", who, "revoke", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap())
        .collect();
    // Everyone sees access ended (idempotent), but only one transition happened.
    assert!(codes.iter().all(|c| *c == 0 || *c == 3), "{codes:?}");
    let actions = audit_actions(tmp.path());
    assert_eq!(
        actions
            .iter()
            .filter(|(_, a)| a == "revoke.started")
            .count(),
        1
    );
    assert_eq!(
        actions
            .iter()
            .filter(|(_, a)| a == "revoke.confirmed")
            .count(),
        1
    );
    assert_eq!(
        ok_json(bg(&cfg, None, &["--json", "audit", "verify"]))["ok"],
        true
    );
}

#[test]
fn hostile_incident_titles_are_sanitised_before_printing() {
    let (tmp, cfg) = demo_dir();
    std::fs::write(
        tmp.path().join("incidents.toml"),
        "[[incidents]]\nid = \"INC-1\"\ntitle = \"DB down\\u001b]0;pwned\\u0007\\u001b[2J\\u001b[31m now\"\nseverity = \"SEV1\"\n",
    )
    .unwrap();
    let o = bg(&cfg, None, &["incidents"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("DB down now"), "{}", stdout(&o));
    assert!(!o.stdout.iter().any(|b| *b == 0x1b || *b == 0x07));
}

#[test]
fn the_demo_command_prepares_a_working_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let o = Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args(["demo", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("DEMO"));
    let cfg = dir.join("breakglass.toml");
    let roles = ok_json(bg(&cfg, None, &["--json", "roles"]));
    assert!(roles["roles"].as_array().unwrap().len() >= 4);
    let inc = ok_json(bg(&cfg, None, &["--json", "incidents"]));
    assert_eq!(
        inc["incidents"].as_array().unwrap().len(),
        3,
        "resolved incidents are not listed"
    );
    // The exec plugin role works end to end through a real child process.
    let mut req = [&["--json"], REQUEST_DBA].concat();
    req[5] = "payments-api-operator";
    ok_json(bg(&cfg, Some("alice"), &req));
    ok_json(bg(&cfg, Some("bob"), &["--json", "approve", "1"]));
    let act = ok_json(bg(&cfg, Some("alice"), &["--json", "activate", "1"]));
    assert!(act["request"]["grant"]["lease_id"]
        .as_str()
        .unwrap()
        .starts_with("lease-REQ-1-"));
    assert_eq!(
        std::fs::read_dir(dir.join("plugin-state")).unwrap().count(),
        1
    );
    ok_json(bg(&cfg, Some("alice"), &["--json", "revoke", "1"]));
    assert_eq!(
        std::fs::read_dir(dir.join("plugin-state")).unwrap().count(),
        0
    );
    // A daemon sweeps until told to stop, and stops cleanly on SIGTERM.
    let mut d = Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .arg("--config")
        .arg(&cfg)
        .args(["daemon", "--interval", "1s"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = d.wait().unwrap();
    assert_eq!(st.code(), Some(0), "signal: {:?}", st.signal());
}

/// Runs the binary with stdout a pipe nobody reads (`| head` that already quit).
fn into_closed_pipe(
    cfg: &std::path::Path,
    who: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let mut c = Command::new(env!("CARGO_BIN_EXE_breakglass"));
    c.arg("--config").arg(cfg);
    if let Some(w) = who {
        c.args(["--as", w]);
    }
    c.args(args)
        .env_remove("BREAKGLASS_FAILPOINT")
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn no_subcommand_panics_into_a_closed_pipe() {
    let (tmp, cfg) = demo_dir();
    let review = tmp.path().join("review.toml");
    std::fs::write(&review, "actions_taken = \"a\"\nsystems_touched = \"b\"\naccess_necessary = true\ncredentials_copied = false\n").unwrap();
    let review = review.to_str().unwrap();
    let export = tmp.path().join("export.jsonl");
    let export = export.to_str().unwrap();
    let request = [&["--json"], REQUEST_K8S].concat();
    let mut request2 = request.clone();
    request2[3] = "CHG-78";
    let key = tmp.path().join("checkpoint.key");
    let key = key.to_str().unwrap();
    let evidence = tmp.path().join("evidence");
    let evidence = evidence.to_str().unwrap();
    let man = tmp.path().join("man1");
    let man = man.to_str().unwrap();
    // In lifecycle order, so each step has something to act on and print.
    let steps: Vec<(Option<&str>, Vec<&str>)> = vec![
        (None, vec!["incidents"]),
        (None, vec!["--json", "incidents"]),
        (None, vec!["roles"]),
        (None, vec!["config", "check"]),
        (Some("alice"), request.clone()),
        (Some("bob"), vec!["approve", "REQ-1"]),
        (Some("alice"), vec!["--json", "activate", "REQ-1"]),
        (None, vec!["status", "--all"]),
        (None, vec!["--json", "status", "REQ-1"]),
        (
            Some("alice"),
            vec!["extend", "REQ-1", "--by", "5m", "--reason", "more"],
        ),
        (Some("alice"), vec!["revoke", "REQ-1"]),
        (Some("alice"), vec!["review", "REQ-1", "--file", review]),
        (Some("dave"), vec!["certify", "REQ-1", "--comment", "ok"]),
        (None, vec!["sweep"]),
        (None, vec!["audit", "verify"]),
        (None, vec!["audit", "export"]),
        (None, vec!["audit", "export", "--format", "ocsf"]),
        (None, vec!["audit", "keygen", "--out", key]),
        (None, vec!["evidence", "REQ-1", "--output", evidence]),
        (None, vec!["evidence", "verify", evidence]),
        (Some("alice"), request2.clone()),
        (Some("bob"), vec!["deny", "REQ-2", "--reason", "no"]),
        (Some("alice"), request2.clone()),
        (Some("alice"), vec!["cancel", "REQ-3"]),
        (None, vec!["--json", "roles"]),
        (None, vec!["--json", "config", "check"]),
        (None, vec!["--help"]),
        (None, vec!["status", "--help"]),
        (None, vec!["--version"]),
        (None, vec!["completions", "bash"]),
        (None, vec!["man", "--dir", man]),
    ];
    for (who, args) in &steps {
        let o = into_closed_pipe(&cfg, *who, args);
        let err = stderr(&o);
        assert!(
            !err.contains("panicked") && o.status.code() != Some(101),
            "{args:?} panicked into a closed pipe: {:?}\n{err}",
            o.status
        );
        assert!(
            !err.contains("Broken pipe") && o.status.code() == Some(0),
            "{args:?} into a closed pipe: {:?}\n{err}",
            o.status
        );
    }
    // The setup commands too: a starter config and a demo walk.
    let fresh = tmp.path().join("fresh");
    let starter = fresh.join("breakglass.toml");
    let demo = tmp.path().join("demo2");
    for (path, args) in [
        (&starter, vec!["init"]),
        (
            &starter,
            vec!["demo", "--no-console", "--dir", demo.to_str().unwrap()],
        ),
    ] {
        let o = into_closed_pipe(path, None, &args);
        assert!(
            o.status.code() == Some(0) && !stderr(&o).contains("panicked"),
            "{args:?} into a closed pipe: {:?}\n{}",
            o.status,
            stderr(&o)
        );
    }
    assert!(starter.exists() && demo.join("breakglass.toml").exists());
    // Each step did its work although nobody read it: REQ-1 went the whole way.
    let st = ok_json(bg(&cfg, None, &["--json", "status", "REQ-1"]));
    assert_eq!(st["request"]["state"], "certified", "{st}");
    assert_eq!(
        code(&bg(&cfg, None, &["audit", "export", "--output", export])),
        0
    );
}

/// What someone with write access to the SQLite store does: marks REQ-`id`
/// approved by `by` in the row alone, with no event.
fn hand_approve(dir: &std::path::Path, id: i64, by: &str) {
    let db = rusqlite::Connection::open(dir.join("breakglass.sqlite")).unwrap();
    let data: String = db
        .query_row("SELECT data FROM requests WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    let mut req: serde_json::Value = serde_json::from_str(&data).unwrap();
    req["approvals"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"by": by, "at": chrono::Utc::now()}));
    req["state"] = "approved".into();
    req["version"] = (req["version"].as_i64().unwrap() + 1).into();
    db.execute(
        "UPDATE requests SET data = ?2, state = 'approved', version = version + 1 WHERE id = ?1",
        rusqlite::params![id, req.to_string()],
    )
    .unwrap();
}

#[test]
fn a_hand_edited_approval_grants_nothing_and_audit_verify_names_it() {
    let (tmp, cfg) = demo_dir();
    ok_json(bg(
        &cfg,
        Some("alice"),
        &[&["--json"], REQUEST_K8S].concat(),
    ));
    hand_approve(tmp.path(), 1, "bob");
    let st = ok_json(bg(&cfg, None, &["--json", "status", "REQ-1"]));
    assert_eq!(st["request"]["state"], "approved");
    let o = bg(&cfg, Some("alice"), &["--json", "activate", "REQ-1"]);
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("the approval by bob has no request.approved event by bob"),
        "{}",
        stderr(&o)
    );
    assert!(demo_leases(tmp.path()).is_empty());
    let o = bg(&cfg, None, &["audit", "verify"]);
    assert_eq!(code(&o), 6, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("REQ-1: the approval by bob has no request.approved event by bob"),
        "{}",
        stdout(&o)
    );
    // A real approval by bob on a new request still grants.
    let mut other = REQUEST_K8S.to_vec();
    other[2] = "CHG-78";
    ok_json(bg(&cfg, Some("alice"), &[&["--json"], &other[..]].concat()));
    ok_json(bg(&cfg, Some("bob"), &["--json", "approve", "REQ-2"]));
    let a = ok_json(bg(&cfg, Some("alice"), &["--json", "activate", "REQ-2"]));
    assert_eq!(a["request"]["state"], "active", "{a}");
}
