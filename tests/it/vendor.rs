//! Vendor roles: identity on the request, a TTL ceiling, a recorded shell under
//! a real pseudo-terminal, recordings in the audit chain, replay before certify.

use crate::support;

use breakglass::domain::vendor::VendorInfo;
use breakglass::domain::RefusalKind;
use breakglass::engine::Decision;
use breakglass::engine::Error;
use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

/// The demo plus the vendor role, certified by dave (a certifier).
fn demo_with(extra: &str) -> (tempfile::TempDir, PathBuf) {
    let (tmp, cfg) = uncertified_demo_with(extra);
    let o = bg(
        &cfg,
        Some("dave"),
        &[
            "roles",
            "recertify",
            VENDOR,
            "--comment",
            "vendor list reviewed",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    (tmp, cfg)
}

fn uncertified_demo_with(extra: &str) -> (tempfile::TempDir, PathBuf) {
    let (tmp, cfg) = demo_dir();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&vendor_role(extra));
    std::fs::write(&cfg, text).unwrap();
    (tmp, cfg)
}

fn vendor_info() -> VendorInfo {
    VendorInfo {
        name: "Vera Vendor".into(),
        company: "DB Corp".into(),
    }
}

fn request_args(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = vec![
        "request",
        "--incident",
        "INC-1042",
        "--role",
        VENDOR,
        "--condition",
        "production outage",
        "--reason",
        "vendor must inspect the replication slot",
    ];
    v.extend_from_slice(extra);
    v
}

/// alice files a vendor request, bob approves; returns the request id.
fn approved(cfg: &Path, ttl: Option<&'static str>) -> String {
    let mut extra = vec![
        "--vendor-name",
        "Vera Vendor",
        "--vendor-company",
        "DB Corp",
        "--json",
    ];
    if let Some(t) = ttl {
        extra.extend(["--ttl", t]);
    }
    let r = ok_json(bg(cfg, Some("alice"), &request_args(&extra)));
    assert_eq!(r["request"]["vendor"]["company"], "DB Corp");
    let id = format!("REQ-{}", r["request"]["id"]);
    ok_json(bg(cfg, Some("bob"), &["approve", &id, "--json"]));
    id
}

/// `breakglass shell ID` under a real PTY.
struct Session {
    raw: Arc<Mutex<Vec<u8>>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Session {
    fn start(cfg: &Path, id: &str) -> Session {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 80,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(BIN);
        cmd.arg("--config");
        cmd.arg(cfg);
        cmd.args(["--as", "alice", "shell", id]);
        cmd.env("SHELL", "/bin/sh");
        cmd.env("TERM", "xterm-256color");
        cmd.env("PS1", "$ ");
        cmd.env_remove("BREAKGLASS_FAILPOINT");
        cmd.env_remove("BREAKGLASS_CONFIG");
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let raw = Arc::new(Mutex::new(Vec::new()));
        let mut reader = pair.master.try_clone_reader().unwrap();
        {
            let raw = raw.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    raw.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        let writer = pair.master.take_writer().unwrap();
        Session {
            raw,
            writer,
            child,
            _master: pair.master,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw.lock().unwrap()).into_owned()
    }

    fn wait_for(&self, what: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.text().contains(what) {
            assert!(
                Instant::now() < deadline,
                "`{what}` never appeared; saw:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_line(&mut self, s: &str) {
        self.writer.write_all(s.as_bytes()).unwrap();
        self.writer.write_all(b"\r").unwrap();
        self.writer.flush().unwrap();
    }

    fn wait_exit(&mut self, secs: u64) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the reader drain.
                std::thread::sleep(Duration::from_millis(200));
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "shell did not exit; saw:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn cast_of(dir: &Path, id: &str) -> PathBuf {
    dir.join("recordings").join(format!("{id}.cast"))
}

/// Parses an asciicast v2 file: its header and events.
fn parse_cast(path: &Path) -> (serde_json::Value, Vec<(f64, String, String)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let events = lines
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v[0].as_f64().unwrap(),
                v[1].as_str().unwrap().to_string(),
                v[2].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (header, events)
}

#[test]
fn vendor_fields_are_required_and_the_ttl_ceiling_is_enforced_in_config() {
    let (tmp, cfg) = demo_with("");
    // Missing vendor identity: refused with a clear message.
    let o = bg(&cfg, Some("alice"), &request_args(&[]));
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("--vendor-name"), "{}", stderr(&o));
    let o = bg(
        &cfg,
        Some("alice"),
        &request_args(&["--vendor-name", "Vera", "--vendor-company", " "]),
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("--vendor-company"), "{}", stderr(&o));
    // Vendor names are stored clean.
    let r = ok_json(bg(
        &cfg,
        Some("alice"),
        &request_args(&[
            "--vendor-name",
            "Vera\x1b]52;c;aGk=\x07 Vendor",
            "--vendor-company",
            "DB Corp",
            "--json",
        ]),
    ));
    assert!(!r["request"]["vendor"]["name"]
        .as_str()
        .unwrap()
        .contains('\x1b'));
    drop(tmp);

    // max_ttl above the vendor ceiling (default 1h) is a config problem with a line.
    let (_tmp, cfg) = demo_dir();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&vendor_role("").replace("max_ttl = \"30m\"", "max_ttl = \"2h\""));
    std::fs::write(&cfg, &text).unwrap();
    let line = text.lines().position(|l| l == "max_ttl = \"2h\"").unwrap() + 1;
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(o.status.code(), Some(2));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        all.contains(&format!(":{line}")) && all.contains("vendor_max_ttl"),
        "{all}"
    );
    // A raised ceiling makes it valid.
    text = text.replace("vendor = true", "vendor = true\nvendor_max_ttl = \"2h\"");
    std::fs::write(&cfg, &text).unwrap();
    assert_eq!(bg(&cfg, None, &["config", "check"]).status.code(), Some(0));

    // recertify_every must be a duration, and only on vendor roles.
    let bad = text.replace(
        "vendor = true",
        "vendor = true\nrecertify_every = \"quarterly\"",
    );
    std::fs::write(&cfg, &bad).unwrap();
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("recertify_every = \"quarterly\" is not a duration"),
        "{}",
        stderr(&o)
    );
    let bad = text.replace(
        "name = \"iam-breakglass-admin\"",
        "name = \"iam-breakglass-admin\"\nrecertify_every = \"90d\"",
    );
    std::fs::write(&cfg, &bad).unwrap();
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("recertify_every needs vendor = true"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_vendor_shell_runs_recorded_under_a_pty_and_certify_needs_a_replay() {
    let (tmp, cfg) = demo_with("");
    let id = approved(&cfg, None);
    // activate refuses vendor roles and points to `shell`.
    let o = bg(&cfg, Some("alice"), &["--json", "activate", &id]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("breakglass shell"), "{}", stderr(&o));

    let mut s = Session::start(&cfg, &id);
    s.wait_for("session recorded to", 30);
    std::thread::sleep(Duration::from_millis(300));
    s.type_line("echo $BREAKGLASS_PASSWORD | wc -c; echo hello-from-vendor");
    s.wait_for("\nhello-from-vendor", 10);
    s.type_line("echo PW=$BREAKGLASS_PASSWORD=");
    s.wait_for("PW=", 10);
    s.type_line("exit");
    let status = s.wait_exit(30);
    assert!(status.success(), "{}", s.text());
    let seen = s.text();
    let pw = regex::Regex::new(r"\nPW=([^=\s]+)=")
        .unwrap()
        .captures(&seen)
        .map(|c| c[1].to_string())
        .unwrap_or_else(|| panic!("no password printed: {seen}"));
    assert!(pw.len() >= 16, "{pw}");

    // The recording: asciicast v2, output only.
    let cast = cast_of(tmp.path(), &id);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cast).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (header, events) = parse_cast(&cast);
    assert_eq!(header["version"], 2);
    assert_eq!(header["width"], 80);
    assert_eq!(header["height"], 24);
    assert!(header["timestamp"].as_i64().unwrap() > 0);
    assert_eq!(header["env"]["SHELL"], "/bin/sh");
    assert!(!header.to_string().contains(&pw));
    assert!(events.iter().all(|e| e.1 == "o"), "input was recorded");
    let output: String = events.iter().map(|e| e.2.as_str()).collect();
    assert!(output.contains("hello-from-vendor"));
    assert!(events.windows(2).all(|w| w[0].0 <= w[1].0));

    // The credential is nowhere on disk but where the shell printed it.
    for f in ["breakglass.sqlite", "alerts.jsonl"] {
        let p = tmp.path().join(f);
        if p.exists() {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes.windows(pw.len()).any(|w| w == pw.as_bytes()),
                "password found in {f}"
            );
        }
    }
    // Access was revoked when the shell ended; the hash is audited.
    let st = ok_json(bg(&cfg, Some("alice"), &["status", &id, "--json"]));
    assert_eq!(st["request"]["state"], "ended", "{st}");
    let acts: Vec<String> = audit_actions(tmp.path()).into_iter().map(|a| a.1).collect();
    assert!(acts.contains(&"session.recorded".to_string()), "{acts:?}");
    assert_eq!(bg(&cfg, None, &["audit", "verify"]).status.code(), Some(0));

    // Review, then certify: refused before a replay, allowed after.
    let o = bg(
        &cfg,
        Some("alice"),
        &[
            "review",
            &id,
            "--actions-taken",
            "vendor inspected slots",
            "--systems-touched",
            "db-1",
            "--access-necessary",
            "yes",
            "--credentials-copied",
            "no",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = bg(&cfg, Some("dave"), &["certify", &id]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains(&format!("breakglass replay {id}")),
        "{}",
        stderr(&o)
    );
    let o = bg(&cfg, Some("dave"), &["replay", &id, "--speed", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("hello-from-vendor"));
    let o = bg(&cfg, Some("dave"), &["certify", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let acts: Vec<String> = audit_actions(tmp.path()).into_iter().map(|a| a.1).collect();
    assert!(acts.contains(&"session.replayed".to_string()));

    // Tampering with the recording breaks `audit verify`, naming the event.
    let mut text = std::fs::read_to_string(&cast).unwrap();
    text = text.replace("hello-from-vendor", "hello-from-nobody");
    std::fs::write(&cast, text).unwrap();
    let o = bg(&cfg, None, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(6));
    assert!(stdout(&o).contains("session.recorded"), "{}", stdout(&o));
    std::fs::remove_file(&cast).unwrap();
    let o = bg(&cfg, None, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(6));
    assert!(stdout(&o).contains("missing"), "{}", stdout(&o));
}

#[test]
fn input_is_recorded_only_when_the_role_asks() {
    let (tmp, cfg) = demo_with("record_input = true");
    let id = approved(&cfg, None);
    let mut s = Session::start(&cfg, &id);
    s.wait_for("session recorded to", 30);
    std::thread::sleep(Duration::from_millis(300));
    s.type_line("echo typed-by-vendor");
    s.wait_for("\ntyped-by-vendor", 10);
    s.type_line("exit");
    assert!(s.wait_exit(30).success());
    let (_, events) = parse_cast(&cast_of(tmp.path(), &id));
    let input: String = events
        .iter()
        .filter(|e| e.1 == "i")
        .map(|e| e.2.as_str())
        .collect();
    assert!(input.contains("echo typed-by-vendor"), "{events:?}");
}

#[test]
fn the_session_ends_by_itself_when_the_grant_expires() {
    let (tmp, cfg) = demo_with("");
    let id = approved(&cfg, Some("3s"));
    let mut s = Session::start(&cfg, &id);
    s.wait_for("session recorded to", 30);
    // The shell stays idle; the grant runs out.
    let started = Instant::now();
    s.wait_exit(30);
    assert!(started.elapsed() < Duration::from_secs(20));
    let seen = s.text();
    assert!(seen.contains("access expired"), "{seen}");
    let st = ok_json(bg(&cfg, Some("alice"), &["status", &id, "--json"]));
    assert_eq!(st["request"]["state"], "ended", "{st}");
    let (_, events) = parse_cast(&cast_of(tmp.path(), &id));
    assert!(events.iter().any(|e| e.2.contains("access expired")));
    assert_eq!(bg(&cfg, None, &["audit", "verify"]).status.code(), Some(0));
}

#[test]
fn roles_lists_vendor_certification_and_recertify_unlocks_from_the_cli() {
    let (_tmp, cfg) = uncertified_demo_with("");
    let role_of = |who: &'static str| {
        let v = ok_json(bg(&cfg, Some(who), &["roles", "--json"]));
        v["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == VENDOR)
            .cloned()
            .unwrap()
    };
    let r = role_of("alice");
    assert_eq!(
        (r["vendor"].as_bool(), r["certified"].is_null()),
        (Some(true), true)
    );
    assert!(r["lock_reason"]
        .as_str()
        .unwrap()
        .contains("never been certified"));
    let o = bg(&cfg, Some("alice"), &["roles"]);
    assert!(
        stdout(&o).contains("vendor role: never certified"),
        "{}",
        stdout(&o)
    );

    // Requests are refused (locked: exit 3) and say who can unlock it and how.
    let o = bg(
        &cfg,
        Some("alice"),
        &request_args(&["--vendor-name", "V", "--vendor-company", "C"]),
    );
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(
        err.contains("never been certified") && err.contains("breakglass roles recertify"),
        "{err}"
    );

    // Only a certifier recertifies, and the refusal is audited.
    let o = bg(
        &cfg,
        Some("bob"),
        &["roles", "recertify", VENDOR, "--comment", "ok"],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("may not recertify"), "{}", stderr(&o));
    let o = bg(
        &cfg,
        Some("dave"),
        &["roles", "recertify", DBA, "--comment", "ok"],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "not a vendor role: {}",
        stderr(&o)
    );

    let out = ok_json(bg(
        &cfg,
        Some("dave"),
        &[
            "roles",
            "recertify",
            VENDOR,
            "--comment",
            "vendor contract and list reviewed",
            "--json",
        ],
    ));
    assert_eq!(out["certification"]["by"], "dave");
    let r = role_of("alice");
    assert_eq!(r["certified"]["by"], "dave");
    assert!(r["lock_reason"].is_null(), "{r}");
    let o = bg(&cfg, Some("alice"), &["roles"]);
    assert!(
        stdout(&o).contains("vendor role: certified by dave on"),
        "{}",
        stdout(&o)
    );
    let id = approved(&cfg, None);
    // Whoever looks at it sees who the outside party is.
    let o = bg(&cfg, Some("bob"), &["status", &id]);
    assert!(
        stdout(&o).contains("vendor:     Vera Vendor (DB Corp)"),
        "{}",
        stdout(&o)
    );

    let o = bg(&cfg, Some("dave"), &["audit", "export"]);
    let actions: Vec<(String, String)> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("role.recertified".into(), "dave".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("policy.refused".into(), "bob".into())),
        "{actions:?}"
    );
    let o = bg(&cfg, None, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // dave leaves the certifiers: his recertification no longer vouches.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let vendor_at = text.find(&format!("name = \"{VENDOR}\"")).unwrap();
    let (head, tail) = text.split_at(vendor_at);
    let tail = tail.replacen(
        "certifiers = [\"@security\"]",
        "certifiers = [\"carol\"]",
        1,
    );
    std::fs::write(&cfg, format!("{head}{tail}")).unwrap();
    let r = role_of("alice");
    assert!(
        r["lock_reason"]
            .as_str()
            .unwrap()
            .contains("dave, who is no longer one of its certifiers"),
        "{r}"
    );
}

#[tokio::test]
async fn a_vendor_role_locks_again_when_its_certification_lapses() {
    let h = harness_edited(
        |text| text.push_str(&vendor_role("recertify_every = \"30d\"")),
        |_| {},
    );
    let ask = || {
        h.engine
            .request_vendor("alice", input(VENDOR, inc("INC-1042")), Some(vendor_info()))
    };
    let locked = |e: Error, needle: &str| match e {
        Error::Locked { reason, .. } => assert!(reason.contains(needle), "{reason}"),
        other => panic!("expected a lock, got {other:?}"),
    };
    locked(ask().await.unwrap_err(), "never been certified");
    match h
        .engine
        .recertify_role("dave", VENDOR, "  ")
        .await
        .unwrap_err()
    {
        Error::Refused(f) => assert_eq!(f.kind, RefusalKind::Input),
        other => panic!("{other:?}"),
    }
    let c = h
        .engine
        .recertify_role("dave", VENDOR, "contract renewed; vendor list reviewed")
        .await
        .unwrap();
    assert_eq!(c.due - c.at, chrono::Duration::days(30));
    let r = ask().await.unwrap();
    h.engine
        .decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();

    // 30 days on, the approved request cannot be turned into access, and no new
    // request can be filed, until a certifier looks again.
    h.clock.advance(chrono::Duration::days(30));
    locked(
        h.engine
            .activate_for_shell("alice", r.id)
            .await
            .unwrap_err(),
        "lapsed",
    );
    locked(ask().await.unwrap_err(), "lapsed");
    let view = h.engine.roles(Some("alice")).await.unwrap();
    let v = view.iter().find(|v| v.name == VENDOR).unwrap();
    assert!(v.lock_reason.as_deref().unwrap().contains("lapsed"));
    assert!(h.leases().is_empty(), "nothing was granted");

    h.engine
        .recertify_role("dave", VENDOR, "second quarterly review")
        .await
        .unwrap();
    let r = ask().await.unwrap();
    assert_eq!(r.role, VENDOR);
    assert_eq!(h.alerts_of_kind("recertification"), 2);
    let (n, broken) = h.engine.verify_audit().await.unwrap();
    assert!(broken.is_none() && n > 0);
}

#[test]
fn kind_vendor_is_the_same_as_vendor_true() {
    let (_tmp, cfg) = demo_dir();
    let base = std::fs::read_to_string(&cfg).unwrap();
    let with = |role: String| {
        std::fs::write(&cfg, format!("{base}{role}")).unwrap();
        bg(&cfg, None, &["config", "check"])
    };
    let o = with(vendor_role("").replace("vendor = true", "kind = \"vendor\""));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let roles = ok_json(bg(&cfg, Some("alice"), &["roles", "--json"]));
    let v = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == VENDOR)
        .cloned()
        .unwrap();
    assert_eq!(v["vendor"], true, "{v}");

    let o = with(vendor_role("").replace("vendor = true", "kind = \"vip\""));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("kind = \"vip\" is not a role kind"),
        "{}",
        stderr(&o)
    );
    let o = with(vendor_role("kind = \"vendor\"").replace("vendor = true", "vendor = false"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("contradicts"), "{}", stderr(&o));
}
