//! `breakglass evidence`: one request's bundle, from a real lifecycle (signed
//! approvals with real SSH keys, a checkpoint key, a vendor session recorded
//! under a real pseudo-terminal), verified offline by `breakglass evidence
//! verify` and by the independent `docs/verify-audit.py`; every kind of
//! tampering is named by both.

use crate::support;

use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

/// Text as hostile as a person can type it.
const HOSTILE: &str = "vendor \"must\" \\ look \u{1b}[31mred\u{1b}[0m \u{1b}]52;c;aGk=\u{7} \u{202e}evil\u{202c} é 😀 \u{2028} \u{85}\nline two";

struct Demo {
    tmp: tempfile::TempDir,
    cfg: PathBuf,
    public: String,
}

impl Demo {
    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn key(&self, who: &str) -> String {
        self.dir().join("keys").join(who).display().to_string()
    }

    /// The binary with no SSH key to fall back on (HOME is the temp dir, no agent).
    fn run(&self, who: Option<&str>, args: &[&str]) -> Output {
        bg_no_ssh_key(&self.cfg, self.dir(), who, args)
    }

    fn ok(&self, who: Option<&str>, args: &[&str]) -> serde_json::Value {
        ok_json(self.run(who, &[&["--json"], args].concat()))
    }

    /// `breakglass shell` under a real PTY, running one command; waits for it.
    fn shell(&self, id: &str, command: &str) {
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
        cmd.arg(&self.cfg);
        cmd.args(["--as", "alice", "shell", id, "--command", command]);
        cmd.env("TERM", "xterm-256color");
        cmd.env("HOME", self.dir());
        cmd.env_remove("BREAKGLASS_FAILPOINT");
        cmd.env_remove("BREAKGLASS_CONFIG");
        let mut child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "shell did not exit: {}",
                String::from_utf8_lossy(&seen.lock().unwrap())
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            status.success(),
            "{}",
            String::from_utf8_lossy(&seen.lock().unwrap())
        );
    }

    fn evidence(&self, id: &str, out: &Path) -> Output {
        self.run(None, &["evidence", id, "--output", out.to_str().unwrap()])
    }
}

/// The demo with the vendor role; with `signed`, SSH keys for bob, carol and
/// dave and `approval_signing = "ssh"`; with `checkpoints`, a checkpoint key.
fn demo(signed: bool, checkpoints: bool) -> Demo {
    let (tmp, cfg) = demo_dir();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&vendor_role(""));
    if signed {
        let keys = tmp.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        let mut signers = String::from("# principal  key\n");
        for who in ["bob", "carol", "dave"] {
            keygen(&keys.join(who), who);
            let public = std::fs::read_to_string(keys.join(format!("{who}.pub"))).unwrap();
            signers.push_str(&format!("{who} {public}"));
        }
        std::fs::write(tmp.path().join("allowed_signers"), signers).unwrap();
        text = format!("approval_signing = \"ssh\"\nallowed_signers = \"allowed_signers\"\n{text}");
    }
    let mut public = String::new();
    if checkpoints {
        let key = tmp.path().join("checkpoint.key");
        let o = bg(
            &cfg,
            None,
            &["audit", "keygen", "--out", key.to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        public = stdout(&o).trim().to_string();
        text.push_str(&format!(
            "\n[audit]\ncheckpoint_key_file = \"{}\"\n",
            key.display()
        ));
    }
    std::fs::write(&cfg, text).unwrap();
    Demo { tmp, cfg, public }
}

/// A vendor request through its whole life with signed decisions, another
/// request's events interleaved: requested (hostile reason), approved (signed),
/// a recorded session, reviewed, replayed, certified (signed). Returns the
/// written bundle's path.
fn full_lifecycle() -> (Demo, PathBuf) {
    let d = demo(true, true);
    d.ok(
        Some("dave"),
        &[
            "roles",
            "recertify",
            VENDOR,
            "--comment",
            "vendor list reviewed",
            "--ssh-key",
            &d.key("dave"),
        ],
    );
    let r = d.ok(
        Some("alice"),
        &[
            "request",
            "--incident",
            "INC-1042",
            "--role",
            VENDOR,
            "--condition",
            "production outage",
            "--reason",
            HOSTILE,
            "--vendor-name",
            "Vera Vendor",
            "--vendor-company",
            "DB Corp",
        ],
    );
    assert_eq!(r["request"]["id"], 1);
    // REQ-2's events fall between REQ-1's: the bundle carries them for the chain.
    d.ok(Some("alice"), REQUEST_DBA);
    d.ok(
        Some("bob"),
        &[
            "approve",
            "REQ-1",
            "--comment",
            HOSTILE,
            "--ssh-key",
            &d.key("bob"),
        ],
    );
    d.shell("REQ-1", "echo hello-from-vendor");
    d.ok(
        Some("alice"),
        &[
            "review",
            "REQ-1",
            "--actions-taken",
            HOSTILE,
            "--systems-touched",
            "db-1",
            "--access-necessary",
            "yes",
            "--credentials-copied",
            "no",
        ],
    );
    let o = d.run(Some("dave"), &["replay", "REQ-1", "--speed", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    d.ok(
        Some("dave"),
        &[
            "certify",
            "REQ-1",
            "--comment",
            "session matches the review",
            "--ssh-key",
            &d.key("dave"),
        ],
    );
    let out = d.dir().join("evidence-REQ-1");
    let o = d.evidence("REQ-1", &out);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    (d, out)
}

/// Runs the independent verifier; python3 and `cryptography` missing fail the
/// test (scripts/test installs both).
fn script(args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/verify-audit.py");
    let probe = Command::new("python3")
        .args([
            "-c",
            "import cryptography.hazmat.primitives.asymmetric.ed25519",
        ])
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed ({e}): apt-get install -y python3"));
    assert!(
        probe.status.success(),
        "the Python package `cryptography` is needed: apt-get install -y python3-cryptography\n{}",
        stderr(&probe)
    );
    Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .unwrap()
}

fn py_verify(dir: &Path, public: Option<&str>) -> Output {
    let mut a = vec!["--evidence", dir.to_str().unwrap()];
    if let Some(k) = public {
        a.extend(["--public-key", k]);
    }
    script(&a)
}

fn bg_verify(dir: &Path, public: Option<&str>) -> Output {
    // No --config and no config in reach: verify needs neither.
    let mut c = Command::new(BIN);
    c.args(["evidence", "verify"]).arg(dir);
    if let Some(k) = public {
        c.args(["--public-key", k]);
    }
    c.env_remove("BREAKGLASS_CONFIG")
        .env("HOME", dir.parent().unwrap())
        .env("XDG_CONFIG_HOME", dir.parent().unwrap().join("no-config"));
    c.output().unwrap()
}

fn all(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// A copy of the bundle to tamper with.
fn copy(bundle: &Path, name: &str) -> PathBuf {
    let to = bundle.parent().unwrap().join(name);
    let o = Command::new("cp")
        .arg("-a")
        .arg(bundle)
        .arg(&to)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    to
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Rewrites the manifest's entry for `name` to match the file, as a forger
/// who knows the format would.
fn rehash(dir: &Path, name: &str) {
    let p = dir.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join(name)).unwrap();
    m["files"][name] = serde_json::json!({"sha256": sha256(&bytes), "bytes": bytes.len()});
    std::fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}

fn drop_from_manifest(dir: &Path, name: &str) {
    let p = dir.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    m["files"].as_object_mut().unwrap().remove(name);
    std::fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}

fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn set_lines(dir: &Path, ls: &[String]) {
    std::fs::write(dir.join("events.jsonl"), format!("{}\n", ls.join("\n"))).unwrap();
}

/// Both verifiers refuse `dir` and each names what broke.
fn both_fail(dir: &Path, public: &str, bg_says: &str, py_says: &str) {
    let o = bg_verify(dir, Some(public));
    assert_eq!(
        o.status.code(),
        Some(6),
        "breakglass accepted it: {}",
        all(&o)
    );
    assert!(
        stdout(&o).contains(bg_says),
        "breakglass should say `{bg_says}`: {}",
        all(&o)
    );
    let o = py_verify(dir, Some(public));
    assert_eq!(
        o.status.code(),
        Some(1),
        "verify-audit.py accepted it: {}",
        all(&o)
    );
    assert!(
        stdout(&o).contains(py_says),
        "verify-audit.py should say `{py_says}`: {}",
        all(&o)
    );
}

fn is_terminal_hostile(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

#[test]
fn a_full_lifecycle_bundle_verifies_with_both_verifiers() {
    let (d, out) = full_lifecycle();

    // Private: the directory 0700, every file 0600.
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let mut names = vec![];
    for sub in ["", "signatures", "recordings"] {
        for e in std::fs::read_dir(out.join(sub)).unwrap() {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            if e.file_type().unwrap().is_dir() {
                assert_eq!(mode, 0o700, "{:?}", e.path());
            } else {
                assert_eq!(mode, 0o600, "{:?}", e.path());
                names.push(e.path().strip_prefix(&out).unwrap().display().to_string());
            }
        }
    }
    names.sort();
    for want in [
        "allowed_signers",
        "checkpoint-key.pub",
        "checkpoint.json",
        "events.jsonl",
        "manifest.json",
        "summary.txt",
    ] {
        assert!(names.contains(&want.to_string()), "{want} in {names:?}");
    }
    // Two signed decisions (bob's approval, dave's certification), one recording.
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".sig")).count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".statement")).count(),
        2
    );
    assert_eq!(names.iter().filter(|n| n.ends_with(".cast")).count(), 1);
    assert_eq!(
        std::fs::read_to_string(out.join("checkpoint-key.pub"))
            .unwrap()
            .trim(),
        d.public
    );

    // The run of events: from REQ-1's creation, with REQ-2's in between, to
    // REQ-1's last event, which the checkpoint signs.
    let events: Vec<serde_json::Value> = lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["action"], "request.created");
    assert_eq!(events[0]["request_id"], 1);
    assert!(
        events.iter().any(|e| e["request_id"] == 2),
        "REQ-2's events are in the run"
    );
    let last = events.last().unwrap();
    assert_eq!(last["request_id"], 1);
    let cp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(cp["tree_size"], last["seq"]);
    assert_eq!(cp["head"], last["hash"]);

    // The summary tells the story, clean of anything that acts on a terminal.
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    for want in [
        "EVIDENCE FOR REQ-1",
        "Requested by: alice",
        "Incident:     INC-1042",
        "Condition:    production outage",
        "Vendor:       Vera Vendor (DB Corp)",
        "Approved by bob",
        "signed by bob",
        "ACCESS BEGAN at",
        "ACCESS ENDED at",
        "the target confirmed the revocation",
        "Session recorded at",
        "Recording replayed by dave",
        "Review submitted by alice",
        "REVIEW CERTIFIED by dave",
        "signed by dave",
        "vendor \"must\" \\ look red",
        "ssh-keygen -Y verify -n breakglass -f allowed_signers -I 'bob'",
        "a signed checkpoint",
    ] {
        assert!(summary.contains(want), "summary lacks `{want}`:\n{summary}");
    }
    assert!(!summary.contains("NOT COVERED"), "{summary}");
    let mine: Vec<String> = events
        .iter()
        .filter(|e| e["request_id"] == 1)
        .map(|e| format!("#{}", e["seq"]))
        .collect();
    assert!(
        summary.contains(&mine.join(", ")),
        "the summary names REQ-1's events: {summary}"
    );
    let bad: Vec<char> = summary
        .chars()
        .filter(|c| is_terminal_hostile(*c))
        .collect();
    assert!(bad.is_empty(), "control characters in the summary: {bad:?}");

    // Both verifiers accept it, pinned to the key the auditor trusts.
    let o = bg_verify(&out, Some(&d.public));
    assert_eq!(o.status.code(), Some(0), "{}", all(&o));
    let s = stdout(&o);
    for want in [
        "OK: 10 files match manifest.json",
        "2 signature(s) verify",
        "1 recording(s) match",
        "summary.txt says what the events say",
    ] {
        assert!(s.contains(want), "`{want}` in {s}");
    }
    assert!(
        s.contains(&format!("covers the log's first {} events", last["seq"])),
        "{s}"
    );
    let o = py_verify(&out, Some(&d.public));
    assert_eq!(o.status.code(), Some(0), "{}", all(&o));
    assert!(stdout(&o).contains("2 signature(s) verify"), "{}", all(&o));
    // Without a pinned key both say what that proves.
    assert!(stdout(&bg_verify(&out, None)).contains("pass --public-key"));
    assert!(stdout(&py_verify(&out, None)).contains("pass --public-key"));
    // The whole store's export verifies too, session.replayed's fractional speed included.
    let export = d.dir().join("audit.jsonl");
    let o = d.run(
        None,
        &["audit", "export", "--output", export.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", all(&o));
    assert!(std::fs::read_to_string(&export)
        .unwrap()
        .contains("\"speed\":0.0"));
    let o = script(&[export.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", all(&o));
    // JSON for tools.
    let o = Command::new(BIN)
        .args(["--json", "evidence", "verify"])
        .arg(&out)
        .output()
        .unwrap();
    let v = ok_json(o);
    assert_eq!(v["ok"], true);
    assert_eq!(v["report"]["signatures"], 2);
    assert_eq!(v["report"]["checkpoint"]["status"], "verified");

    // The documented ssh-keygen command verifies a statement by hand.
    let approval = events
        .iter()
        .find(|e| e["action"] == "request.approved" && e["request_id"] == 1)
        .unwrap();
    let seq = approval["seq"].as_i64().unwrap();
    let statement = std::fs::read(out.join(format!("signatures/seq-{seq}.statement"))).unwrap();
    let signed_at = approval["detail"]["signature"]["signed_at"]
        .as_str()
        .unwrap();
    let t = chrono::DateTime::parse_from_rfc3339(signed_at).unwrap();
    let mut c = Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-n",
            "breakglass",
            "-f",
            "allowed_signers",
            "-I",
            "bob",
            "-s",
        ])
        .arg(format!("signatures/seq-{seq}.sig"))
        .arg("-O")
        .arg(format!("verify-time={}", t.format("%Y%m%d%H%M%SZ")))
        .current_dir(&out)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(&statement).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", all(&o));
    // allowed_signers holds only the lines used: bob's and dave's, not carol's.
    let signers = std::fs::read_to_string(out.join("allowed_signers")).unwrap();
    assert!(
        signers.contains(" bob\n") && signers.contains(" dave\n"),
        "{signers}"
    );
    assert!(!signers.contains("carol"), "{signers}");

    // A bundle is never written over a non-empty directory.
    let o = d.evidence("REQ-1", &out);
    assert_eq!(o.status.code(), Some(2), "{}", all(&o));
    assert!(stderr(&o).contains("not empty"), "{}", all(&o));
    assert_eq!(bg_verify(&out, Some(&d.public)).status.code(), Some(0));
    // A recording gone since it was audited breaks the log's check: no bundle.
    let cast = d.dir().join("recordings").join("REQ-1.cast");
    std::fs::rename(&cast, d.dir().join("moved.cast")).unwrap();
    let o = d.evidence("REQ-1", &d.dir().join("after-loss"));
    assert_eq!(o.status.code(), Some(6), "{}", all(&o));
    assert!(stderr(&o).contains("recording"), "{}", all(&o));
    assert!(!d.dir().join("after-loss").exists());
    std::fs::rename(d.dir().join("moved.cast"), &cast).unwrap();
    let o = d.evidence("REQ-99", &d.dir().join("nothing"));
    assert_eq!(o.status.code(), Some(2), "{}", all(&o));
    assert!(!d.dir().join("nothing").exists());
}

#[test]
fn tampering_is_named_by_both_verifiers() {
    let (d, out) = full_lifecycle();
    let key = d.public.as_str();
    let events = lines(&out);
    let find = |action: &str| {
        events
            .iter()
            .position(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["action"] == action && v["request_id"] == 1
            })
            .unwrap()
    };
    let approval = find("request.approved");
    let approval_seq = serde_json::from_str::<serde_json::Value>(&events[approval]).unwrap()["seq"]
        .as_i64()
        .unwrap();

    // One byte of an event, with and without fixing the manifest up.
    let t = copy(&out, "edited");
    let mut ls = events.clone();
    ls[approval] = ls[approval].replace("\"actor\":\"bob\"", "\"actor\":\"bop\"");
    set_lines(&t, &ls);
    both_fail(
        &t,
        key,
        "was altered after it was written",
        "hash does not match",
    );
    rehash(&t, "events.jsonl");
    both_fail(
        &t,
        key,
        "was altered after it was written",
        "hash does not match",
    );

    // Every single byte of the approval event, flipped: the library verifier
    // catches each; the script a sample of them.
    let line_start: usize = events[..approval].iter().map(|l| l.len() + 1).sum();
    let original = std::fs::read(out.join("events.jsonl")).unwrap();
    let t = copy(&out, "flipped");
    for (n, i) in (line_start..line_start + events[approval].len()).enumerate() {
        let mut bytes = original.clone();
        bytes[i] ^= 0x01;
        std::fs::write(t.join("events.jsonl"), &bytes).unwrap();
        rehash(&t, "events.jsonl");
        assert!(
            breakglass::audit::evidence::verify(&t, Some(key)).is_err(),
            "flipping byte {} of the approval went unnoticed",
            i - line_start
        );
        if n % 97 == 0 {
            assert_eq!(
                py_verify(&t, Some(key)).status.code(),
                Some(1),
                "byte {}",
                i - line_start
            );
        }
    }

    // An approval dropped: its event (the chain breaks), or its signature file.
    let t = copy(&out, "no-approval-event");
    let mut ls = events.clone();
    ls.remove(approval);
    set_lines(&t, &ls);
    rehash(&t, "events.jsonl");
    both_fail(&t, key, "were deleted or reordered", "an event was deleted");
    let t = copy(&out, "no-approval-signature");
    std::fs::remove_file(t.join(format!("signatures/seq-{approval_seq}.sig"))).unwrap();
    drop_from_manifest(&t, &format!("signatures/seq-{approval_seq}.sig"));
    both_fail(
        &t,
        key,
        &format!("signatures/seq-{approval_seq}.sig is missing"),
        &format!("signatures/seq-{approval_seq}.sig is missing"),
    );
    // Or another signature put in its place (carol's key over the same statement).
    let t = copy(&out, "forged-signature");
    let st = t.join(format!("signatures/seq-{approval_seq}.statement"));
    let o = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "breakglass", "-f", &d.key("carol")])
        .arg(&st)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", all(&o));
    std::fs::rename(
        st.with_extension("statement.sig"),
        t.join(format!("signatures/seq-{approval_seq}.sig")),
    )
    .unwrap();
    rehash(&t, &format!("signatures/seq-{approval_seq}.sig"));
    both_fail(
        &t,
        key,
        "is not the signature recorded in",
        "not the signature recorded in",
    );

    // The recording swapped for another.
    let t = copy(&out, "swapped-recording");
    let cast = std::fs::read_dir(t.join("recordings"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let name = format!("recordings/{}", cast.file_name().unwrap().to_str().unwrap());
    std::fs::write(
        &cast,
        "{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"nothing to see\"]\n",
    )
    .unwrap();
    rehash(&t, &name);
    both_fail(
        &t,
        key,
        "is not the recording audited in",
        "not the recording audited in",
    );

    // The checkpoint altered, or re-signed with someone else's key.
    let t = copy(&out, "altered-checkpoint");
    let p = t.join("checkpoint.json");
    let mut cp: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    cp["at"] = "2020-01-01T00:00:00.000000Z".into();
    std::fs::write(&p, serde_json::to_string_pretty(&cp).unwrap()).unwrap();
    rehash(&t, "checkpoint.json");
    both_fail(&t, key, "forged or altered", "forged or altered");
    let t = copy(&out, "other-key");
    let other =
        breakglass::audit::checkpoint::Signer::generate(&d.dir().join("other.key")).unwrap();
    let resigned = other.sign(
        cp["tree_size"].as_i64().unwrap(),
        cp["head"].as_str().unwrap(),
        "2026-11-25T00:00:00.000000Z",
    );
    std::fs::write(
        t.join("checkpoint.json"),
        serde_json::to_string(&resigned).unwrap(),
    )
    .unwrap();
    std::fs::write(t.join("checkpoint-key.pub"), other.public_hex()).unwrap();
    rehash(&t, "checkpoint.json");
    rehash(&t, "checkpoint-key.pub");
    both_fail(
        &t,
        key,
        "not the key you gave",
        "not the public key you gave",
    );

    // The tail cut off (last event dropped) no longer meets the checkpoint.
    let t = copy(&out, "cut-tail");
    let mut ls = events.clone();
    ls.pop();
    set_lines(&t, &ls);
    rehash(&t, "events.jsonl");
    both_fail(&t, key, "the manifest says", "from a different seq");
    let p = t.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    m["last_seq"] = (m["last_seq"].as_i64().unwrap() - 1).into();
    std::fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    both_fail(
        &t,
        key,
        "do not belong together",
        "does not sign the last event",
    );

    // Any byte of any other file, and a file the manifest does not list.
    let t = copy(&out, "allowed-signers");
    let mut s = std::fs::read(t.join("allowed_signers")).unwrap();
    s.push(b'\n');
    std::fs::write(t.join("allowed_signers"), s).unwrap();
    both_fail(
        &t,
        key,
        "allowed_signers does not match its SHA-256",
        "allowed_signers: does not match",
    );
    let t = copy(&out, "extra");
    std::fs::write(t.join("recordings/seq-1.cast"), "x").unwrap();
    both_fail(
        &t,
        key,
        "belongs to no signed decision",
        "belongs to no signed decision",
    );

    // The summary rewritten (manifest fixed up): breakglass renders it again.
    let t = copy(&out, "summary");
    let s = std::fs::read_to_string(t.join("summary.txt")).unwrap();
    std::fs::write(
        t.join("summary.txt"),
        s.replace("Approved by bob", "Approved by carol"),
    )
    .unwrap();
    rehash(&t, "summary.txt");
    let o = bg_verify(&t, Some(key));
    assert_eq!(o.status.code(), Some(6), "{}", all(&o));
    assert!(
        stdout(&o).contains("summary.txt is not what the events say"),
        "{}",
        all(&o)
    );

    // The untouched bundle still verifies.
    assert_eq!(bg_verify(&out, Some(key)).status.code(), Some(0));
    assert_eq!(py_verify(&out, Some(key)).status.code(), Some(0));
}

#[test]
fn without_a_checkpoint_key_the_bundle_says_what_it_proves() {
    let d = demo(false, false);
    d.ok(Some("alice"), REQUEST_K8S);
    d.ok(Some("bob"), &["approve", "1", "--comment", HOSTILE]);
    d.ok(Some("alice"), &["activate", "1"]);
    d.ok(Some("alice"), &["revoke", "1"]);
    let out = d.dir().join("bundle");
    // An empty directory is fine (and made private).
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = d.evidence("REQ-1", &out);
    assert_eq!(o.status.code(), Some(0), "{}", all(&o));
    assert!(
        stdout(&o).contains("NOT COVERED BY A SIGNED CHECKPOINT"),
        "{}",
        all(&o)
    );
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(!out.join("checkpoint.json").exists());
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(
        summary.contains("NOT COVERED BY A SIGNED CHECKPOINT"),
        "{summary}"
    );
    assert!(summary.contains("internal consistency only"), "{summary}");
    assert!(summary.contains("ACCESS ENDED at"), "{summary}");

    let o = bg_verify(&out, None);
    assert_eq!(o.status.code(), Some(0), "{}", all(&o));
    assert!(
        stdout(&o).contains("NOT COVERED BY A SIGNED CHECKPOINT"),
        "{}",
        all(&o)
    );
    assert!(
        stdout(&o).contains("1 decision(s) carry no signature"),
        "{}",
        all(&o)
    );
    let o = py_verify(&out, None);
    assert_eq!(o.status.code(), Some(0), "{}", all(&o));
    assert!(
        stdout(&o).contains("NOT COVERED BY A SIGNED CHECKPOINT"),
        "{}",
        all(&o)
    );

    // An auditor who expects a checkpoint is told there is none.
    let key = "ab".repeat(32);
    let o = bg_verify(&out, Some(&key));
    assert_eq!(o.status.code(), Some(6), "{}", all(&o));
    assert!(stdout(&o).contains("no signed checkpoint"), "{}", all(&o));
    assert_eq!(py_verify(&out, Some(&key)).status.code(), Some(1));

    // Even so, an edit shows: the events must still link.
    let t = copy(&out, "edited");
    let ls: Vec<String> = lines(&t)
        .into_iter()
        .map(|l| l.replace("\"actor\":\"bob\"", "\"actor\":\"eve\""))
        .collect();
    set_lines(&t, &ls);
    rehash(&t, "events.jsonl");
    assert_eq!(bg_verify(&t, None).status.code(), Some(6));
    assert_eq!(py_verify(&t, None).status.code(), Some(1));
}
