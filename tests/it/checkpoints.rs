//! Signed audit checkpoints: every alert carries one; `audit verify --checkpoint`
//! catches a log whose tail was cut or that was recomputed wholesale, which the
//! hash chain alone cannot.

use crate::support;

use std::path::Path;
use support::*;

/// A demo whose alerts go to a file and carry checkpoints; returns the public key.
fn demo_with_key() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let (tmp, cfg) = demo_dir();
    let key = tmp.path().join("checkpoint.key");
    let o = bg(
        &cfg,
        None,
        &["audit", "keygen", "--out", key.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let public = stdout(&o).trim().to_string();
    assert_eq!(public.len(), 64);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[audit]\ncheckpoint_key_file = \"{}\"\n",
        key.display()
    ));
    std::fs::write(&cfg, text).unwrap();
    (tmp, cfg, public)
}

fn walk(cfg: &Path) {
    ok_json(bg(cfg, Some("alice"), &[&["--json"], REQUEST_K8S].concat()));
    ok_json(bg(cfg, Some("bob"), &["--json", "approve", "1"]));
    ok_json(bg(cfg, Some("alice"), &["--json", "activate", "1"]));
}

/// The activation alert as the SOC received it, saved to a file.
fn activation_alert(dir: &Path) -> std::path::PathBuf {
    let lines = std::fs::read_to_string(dir.join("alerts.jsonl")).unwrap();
    let alert = lines
        .lines()
        .find(|l| l.contains("\"kind\":\"activation\""))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(alert).unwrap();
    assert_eq!(
        v["checkpoint"]["tree_size"], v["audit_seq"],
        "the alert carries the checkpoint of its own event"
    );
    let p = dir.join("soc-copy.json");
    std::fs::write(&p, alert).unwrap();
    p
}

fn verify_with(cfg: &Path, cp: &Path, public: &str) -> std::process::Output {
    bg(
        cfg,
        None,
        &[
            "--json",
            "audit",
            "verify",
            "--checkpoint",
            cp.to_str().unwrap(),
            "--public-key",
            public,
        ],
    )
}

#[test]
fn the_current_log_extends_a_checkpoint_from_an_alert() {
    let (tmp, cfg, public) = demo_with_key();
    walk(&cfg);
    let cp = activation_alert(tmp.path());
    ok_json(bg(&cfg, Some("alice"), &["--json", "revoke", "1"])); // the log grows past it
    let o = verify_with(&cfg, &cp, &public);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("\"ok\":true"));
    // `audit checkpoint` signs the current head.
    let now = bg(&cfg, None, &["audit", "checkpoint"]);
    let v: serde_json::Value = serde_json::from_slice(&now.stdout).unwrap();
    assert_eq!(v["tree_size"], 6);
}

#[test]
fn a_cut_tail_fails_against_the_checkpoint_though_the_chain_still_links() {
    let (tmp, cfg, public) = demo_with_key();
    walk(&cfg);
    let cp = activation_alert(tmp.path());
    // Someone with write access removes the activation and everything after it.
    let db = rusqlite::Connection::open(tmp.path().join("breakglass.sqlite")).unwrap();
    db.execute_batch("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq >= 4;")
        .unwrap();
    let plain = bg(&cfg, None, &["--json", "audit", "verify"]);
    assert_eq!(
        plain.status.code(),
        Some(0),
        "the shorter chain is internally consistent"
    );
    let o = verify_with(&cfg, &cp, &public);
    assert_eq!(o.status.code(), Some(6));
    assert!(stdout(&o).contains("cut off its end"), "{}", stdout(&o));
}

#[test]
fn a_recomputed_chain_fails_against_the_checkpoint() {
    let (tmp, cfg, public) = demo_with_key();
    walk(&cfg);
    let cp = activation_alert(tmp.path());
    // Rewrite who approved, then recompute every hash so the chain links again.
    let db = rusqlite::Connection::open(tmp.path().join("breakglass.sqlite")).unwrap();
    db.execute_batch("DROP TRIGGER audit_no_update;").unwrap();
    let mut rows: Vec<breakglass::audit::AuditRecord> = {
        let mut st = db.prepare("SELECT seq, at, actor, request_id, action, from_state, to_state, detail FROM audit ORDER BY seq").unwrap();
        st.query_map([], |r| {
            Ok(breakglass::audit::AuditRecord {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                request_id: r.get(3)?,
                action: r.get(4)?,
                from_state: r.get(5)?,
                to_state: r.get(6)?,
                detail: r.get(7)?,
                prev_hash: String::new(),
                hash: String::new(),
            })
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    };
    assert_eq!(rows[1].action, "request.approved");
    let approver = std::mem::replace(&mut rows[1].actor, "mallory".into());
    // The request row too, so row and events agree and only the checkpoint can tell.
    let id = rows[1].request_id.unwrap();
    let data: String = db
        .query_row("SELECT data FROM requests WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    let mut req: serde_json::Value = serde_json::from_str(&data).unwrap();
    for a in req["approvals"].as_array_mut().unwrap() {
        if a["by"] == approver.as_str() {
            a["by"] = "mallory".into();
        }
    }
    db.execute(
        "UPDATE requests SET data = ?2 WHERE id = ?1",
        rusqlite::params![id, req.to_string()],
    )
    .unwrap();
    let mut prev = breakglass::audit::GENESIS.to_string();
    for r in rows {
        let sealed = breakglass::audit::seal(r, &prev);
        db.execute(
            "UPDATE audit SET actor = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
            rusqlite::params![sealed.seq, sealed.actor, sealed.prev_hash, sealed.hash],
        )
        .unwrap();
        prev = sealed.hash;
    }
    assert_eq!(
        bg(&cfg, None, &["audit", "verify"]).status.code(),
        Some(0),
        "the recomputed chain links"
    );
    let o = verify_with(&cfg, &cp, &public);
    assert_eq!(o.status.code(), Some(6));
    assert!(
        stdout(&o).contains("the log was rewritten"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_forged_checkpoint_or_the_wrong_key_is_refused() {
    let (tmp, cfg, public) = demo_with_key();
    walk(&cfg);
    let cp = activation_alert(tmp.path());
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
    v["checkpoint"]["tree_size"] = serde_json::json!(2);
    std::fs::write(&cp, v.to_string()).unwrap();
    let o = verify_with(&cfg, &cp, &public);
    assert_eq!(o.status.code(), Some(6));
    assert!(stdout(&o).contains("does not verify"), "{}", stdout(&o));
    let o = verify_with(&cfg, &cp, &"ab".repeat(32));
    assert_eq!(o.status.code(), Some(6));
}

// ---- docs/verify-audit.py: the README's canonical form, re-implemented outside
// breakglass, must verify a real export and name every kind of tampering.

/// Runs the independent verifier. Missing Python or `cryptography` fails the
/// test (scripts/test installs both) rather than skipping it.
fn verify_script(args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/verify-audit.py");
    let probe = std::process::Command::new("python3")
        .args([
            "-c",
            "import cryptography.hazmat.primitives.asymmetric.ed25519",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is needed for docs/verify-audit.py ({e}): apt-get install -y python3")
        });
    assert!(
        probe.status.success(),
        "the Python package `cryptography` is needed to check checkpoint signatures: \
         apt-get install -y python3-cryptography, or pip install cryptography (scripts/test does this)\n{}",
        stderr(&probe)
    );
    std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .unwrap()
}

/// Text as hostile as a person can type it: quotes, backslashes, escape
/// sequences, bidi overrides, C1 controls, combining marks, astral characters.
const HOSTILE: &str = "deploy \"wedged\" \\ C:\\tmp \u{1b}[31mred\u{1b}[0m \u{202e}evil\u{202c} é 日本 😀 \u{2028} a\u{301} \u{7f}\u{85} 'q' </script> \\u0041";

/// A whole lifecycle with hostile text, a refusal and checkpoints signed by the
/// configured key; returns (dir, export path, alerts path, `audit checkpoint` path, public key).
fn exported_lifecycle() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
    String,
) {
    let (tmp, cfg, public) = demo_with_key();
    let hostile_multiline = format!("line one {HOSTILE}\nline two\n\ttabbed");
    ok_json(bg(
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
            "failed automation path",
            "--reason",
            HOSTILE,
        ],
    ));
    let refused = bg(&cfg, Some("alice"), &["approve", "1"]);
    assert_ne!(refused.status.code(), Some(0), "self-approval is refused");
    ok_json(bg(
        &cfg,
        Some("bob"),
        &["--json", "approve", "1", "--comment", HOSTILE],
    ));
    ok_json(bg(&cfg, Some("alice"), &["--json", "activate", "1"]));
    ok_json(bg(
        &cfg,
        Some("alice"),
        &["--json", "revoke", "1", "--reason", HOSTILE],
    ));
    ok_json(bg(
        &cfg,
        Some("alice"),
        &[
            "--json",
            "review",
            "1",
            "--actions-taken",
            &hostile_multiline,
            "--systems-touched",
            HOSTILE,
            "--access-necessary",
            "yes",
            "--credentials-copied",
            "no",
        ],
    ));
    ok_json(bg(
        &cfg,
        Some("dave"),
        &["--json", "certify", "1", "--comment", &hostile_multiline],
    ));
    let cp = bg(&cfg, None, &["audit", "checkpoint"]);
    assert_eq!(cp.status.code(), Some(0), "{}", stderr(&cp));
    let cp_path = tmp.path().join("checkpoint.json");
    std::fs::write(&cp_path, &cp.stdout).unwrap();
    let export = tmp.path().join("audit.jsonl");
    let o = bg(
        &cfg,
        None,
        &["audit", "export", "--output", export.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let alerts = tmp.path().join("alerts.jsonl");
    (tmp, export, alerts, cp_path, public)
}

fn script_on(
    dir: &Path,
    export_lines: &[String],
    checkpoints: &[&Path],
    public: &str,
) -> std::process::Output {
    let p = dir.join("tampered.jsonl");
    std::fs::write(&p, export_lines.join("\n") + "\n").unwrap();
    let mut args = vec![p.to_str().unwrap().to_string()];
    for c in checkpoints {
        args.push("--checkpoints".into());
        args.push(c.to_str().unwrap().into());
    }
    args.extend(["--public-key".to_string(), public.to_string()]);
    verify_script(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn assert_broken(o: &std::process::Output, needles: &[&str]) {
    let out = stdout(o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(o));
    for n in needles {
        assert!(out.contains(n), "missing {n:?} in:\n{out}");
    }
}

#[test]
fn the_independent_verifier_accepts_a_real_export_with_its_checkpoints() {
    let (tmp, export, alerts, cp, public) = exported_lifecycle();
    let text = std::fs::read_to_string(&export).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() >= 8, "{text}");
    // The export carries the hashed names and shapes.
    let created = &events[0];
    assert_eq!(created["to"], "pending");
    assert!(created["from"].is_null());
    assert!(created.get("from_state").is_none());
    let reason = created["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("é 日本 😀") && reason.contains("\"wedged\" \\"),
        "{reason}"
    );
    assert!(events.iter().any(|e| e["action"] == "policy.refused"));
    let alert_checkpoints = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"checkpoint\""))
        .count();
    assert!(alert_checkpoints >= 2, "alerts carry checkpoints");

    let o = verify_script(&[
        export.to_str().unwrap(),
        "--checkpoints",
        alerts.to_str().unwrap(),
        "--checkpoints",
        cp.to_str().unwrap(),
        "--public-key",
        &public,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let head = events.last().unwrap()["hash"].as_str().unwrap();
    assert!(
        stdout(&o).contains(&format!(
            "OK: {} events link from genesis to head {head}",
            events.len()
        )),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains(&format!("OK: {} checkpoint(s)", alert_checkpoints + 1)),
        "{}",
        stdout(&o)
    );

    // From stdin too, without checkpoints.
    let mut child = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/verify-audit.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    drop(tmp);
}

#[test]
fn the_independent_verifier_names_each_kind_of_tampering() {
    let (tmp, export, alerts, _cp, public) = exported_lifecycle();
    let lines: Vec<String> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let dir = tmp.path();

    // One byte of a detail field.
    let mut t = lines.clone();
    let at = t[0].find("\"reason\":\"deploy").unwrap() + "\"reason\":\"".len();
    t[0].replace_range(at..at + 1, "D");
    assert_broken(
        &script_on(dir, &t, &[], &public),
        &[
            "BROKEN at seq 1 (line 1)",
            "hash does not match",
            "expected: ",
            "found:    ",
        ],
    );

    // A deleted line.
    let mut t = lines.clone();
    t.remove(2);
    assert_broken(
        &script_on(dir, &t, &[], &public),
        &[
            "BROKEN at seq 3 (line 3)",
            "deleted",
            "expected: seq 3",
            "found:    seq 4",
        ],
    );

    // Two events swapped.
    let mut t = lines.clone();
    t.swap(1, 2);
    assert_broken(
        &script_on(dir, &t, &[], &public),
        &[
            "BROKEN at seq 2 (line 2)",
            "expected: seq 2",
            "found:    seq 3",
        ],
    );

    // A rewritten prev_hash (the line's own hash left as it was).
    let mut t = lines.clone();
    let v: serde_json::Value = serde_json::from_str(&t[3]).unwrap();
    let prev = v["prev_hash"].as_str().unwrap().to_string();
    t[3] = t[3].replace(&prev, &"0".repeat(64));
    assert_broken(
        &script_on(dir, &t, &[], &public),
        &[
            "BROKEN at seq 4 (line 4)",
            "prev_hash does not link",
            &format!("expected: {prev}"),
        ],
    );

    // A checkpoint signature altered by one hex digit.
    let alert_text = std::fs::read_to_string(&alerts).unwrap();
    let line = alert_text
        .lines()
        .find(|l| l.contains("\"checkpoint\""))
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
    let sig = v["checkpoint"]["signature"].as_str().unwrap().to_string();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    v["checkpoint"]["signature"] = format!("{flipped}{}", &sig[1..]).into();
    let forged = dir.join("forged-alert.json");
    std::fs::write(&forged, v.to_string()).unwrap();
    assert_broken(
        &script_on(dir, &lines, &[&forged], &public),
        &["BROKEN at checkpoint of", "signature does not verify"],
    );

    // The right signature checked against another key.
    assert_broken(
        &script_on(dir, &lines, &[&alerts], &"ab".repeat(32)),
        &["signed by another key"],
    );

    // A cut tail: the chain still links, the checkpoints say it was longer.
    assert_broken(
        &script_on(dir, &lines[..2], &[&alerts], &public),
        &["tail was cut off"],
    );
    let plain = script_on(dir, &lines[..2], &[], &public);
    assert_eq!(plain.status.code(), Some(0), "{}", stdout(&plain));

    // A recomputed chain: it links, but not to what was signed.
    let mut prev = breakglass::audit::GENESIS.to_string();
    let recomputed: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().map(String::from);
            let r = breakglass::audit::AuditRecord {
                seq: v["seq"].as_i64().unwrap(),
                at: s("at").unwrap(),
                actor: if v["seq"] == 2 {
                    "mallory".into()
                } else {
                    s("actor").unwrap()
                },
                request_id: v["request_id"].as_i64(),
                action: s("action").unwrap(),
                from_state: s("from"),
                to_state: s("to"),
                detail: breakglass::audit::canonical_detail(&v["detail"]),
                prev_hash: String::new(),
                hash: String::new(),
            };
            let r = breakglass::audit::seal(r, &prev);
            prev = r.hash.clone();
            String::from_utf8(breakglass::audit::export_line(&r)).unwrap()
        })
        .collect();
    let o = script_on(dir, &recomputed, &[], &public);
    assert_eq!(
        o.status.code(),
        Some(0),
        "the recomputed chain links: {}",
        stdout(&o)
    );
    assert_broken(
        &script_on(dir, &recomputed, &[&alerts], &public),
        &["the log was rewritten"],
    );

    // A line that is not JSON, and a key the hash does not cover.
    let mut t = lines.clone();
    t[1].pop();
    assert_broken(
        &script_on(dir, &t, &[], &public),
        &["BROKEN at seq 2 (line 2)", "not valid JSON"],
    );
    let mut t = lines.clone();
    t[1] = t[1].replacen('{', "{\"approved_by_ceo\":true,", 1);
    assert_broken(
        &script_on(dir, &t, &[], &public),
        &["outside the hashed form"],
    );
}

/// Every escape the canonical form defines, beyond what the sanitiser lets
/// through the CLI: all C0 controls, DEL, C1, U+2028, astral characters.
#[test]
fn the_independent_verifier_reproduces_every_string_escape() {
    let tmp = tempfile::tempdir().unwrap();
    let all: String = (0u32..0x20)
        .chain([
            0x22, 0x2f, 0x5c, 0x7f, 0x85, 0xe9, 0x2028, 0x202e, 0xfeff, 0x1f600,
        ])
        .map(|c| char::from_u32(c).unwrap())
        .collect();
    let detail = serde_json::json!({
        "z": all, "a": [1, -2, i64::MAX, null, true, false, {"é": "x", "e": "y", "😀": 0}],
        all.clone(): "key with every escape",
    });
    let mut prev = breakglass::audit::GENESIS.to_string();
    let lines: Vec<String> = (1..=3)
        .map(|seq| {
            let r = breakglass::audit::AuditRecord {
                seq,
                at: "2026-11-25T09:00:00.000000Z".into(),
                actor: all.clone(),
                request_id: (seq != 2).then_some(seq * 1000),
                action: "test.escape".into(),
                from_state: (seq == 3).then(|| all.clone()),
                to_state: None,
                detail: breakglass::audit::canonical_detail(&detail),
                prev_hash: String::new(),
                hash: String::new(),
            };
            let r = breakglass::audit::seal(r, &prev);
            prev = r.hash.clone();
            String::from_utf8(breakglass::audit::export_line(&r)).unwrap()
        })
        .collect();
    let p = tmp.path().join("escapes.jsonl");
    std::fs::write(&p, lines.join("\n")).unwrap();
    let o = verify_script(&[p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&format!("OK: 3 events link from genesis to head {prev}")));
}
