//! Signed audit checkpoints: every alert carries one; `audit verify --checkpoint`
//! catches a log whose tail was cut or that was recomputed wholesale, which the
//! hash chain alone cannot.

mod support;

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
    rows[1].actor = "mallory".into();
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
