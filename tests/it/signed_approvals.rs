//! Signed approvals (`approval_signing = "ssh"`): real keys made with ssh-keygen,
//! the real binary, a real store file. A decision counts only with the decider's
//! signature over exactly that decision; a store edit that adds one without it
//! fails `audit verify` and grants nothing.

use crate::support;

use breakglass::audit::{seal, AuditRecord};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::*;

struct Signed {
    tmp: tempfile::TempDir,
    cfg: PathBuf,
}

/// The demo with keys for bob and carol (approvers) and dave (certifier), an
/// allowed_signers file naming them, and `approval_signing = "ssh"`.
fn signed_demo() -> Signed {
    let (tmp, cfg) = demo_dir();
    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let mut signers = String::from("# principal  key\n");
    for who in ["bob", "carol", "dave"] {
        keygen(&keys.join(who), who);
        let public = std::fs::read_to_string(keys.join(format!("{who}.pub"))).unwrap();
        signers.push_str(&format!("{who} {public}"));
    }
    std::fs::write(tmp.path().join("allowed_signers"), signers).unwrap();
    // Top-level keys go above the first table; a relative path is the config's dir.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("approval_signing = \"ssh\"\nallowed_signers = \"allowed_signers\"\n{text}"),
    )
    .unwrap();
    Signed { tmp, cfg }
}

impl Signed {
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
    fn request(&self, args: &[&str]) -> i64 {
        self.ok(Some("alice"), args)["request"]["id"]
            .as_i64()
            .unwrap()
    }
    fn approve(&self, who: &str, id: &str, key_of: &str) -> Output {
        let key = self.key(key_of);
        self.run(Some(who), &["--json", "approve", id, "--ssh-key", &key])
    }
    fn request_json(&self, id: &str) -> serde_json::Value {
        self.ok(None, &["status", id])["request"].clone()
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn refusals(dir: &Path) -> usize {
    audit_actions(dir)
        .iter()
        .filter(|(_, a)| a == "policy.refused")
        .count()
}

#[test]
fn signed_decisions_count_are_kept_and_reverify() {
    let s = signed_demo();
    let id = s.request(REQUEST_DBA);
    assert_eq!(id, 1);
    let a = ok_json(s.approve("bob", "1", "bob"));
    assert_eq!(a["request"]["state"], "pending");
    let sig = &a["request"]["approvals"][0]["signature"];
    assert!(sig["armored"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN SSH SIGNATURE-----"));
    let a = ok_json(s.approve("carol", "1", "carol"));
    assert_eq!(a["request"]["state"], "approved");

    // The signature is in the audit trail, with the time it was signed.
    let export = s.run(None, &["audit", "export"]);
    let approved: Vec<serde_json::Value> = stdout(&export)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["action"] == "request.approved")
        .collect();
    assert_eq!(approved.len(), 2);
    for e in &approved {
        let detail = &e["detail"];
        assert!(detail["signature"]["armored"].is_string(), "{detail}");
        assert!(detail["signature"]["signed_at"].is_string(), "{detail}");
    }

    s.ok(Some("alice"), &["activate", "1"]);
    s.ok(Some("alice"), &["revoke", "1"]);
    s.ok(
        Some("alice"),
        &[
            "review",
            "1",
            "--actions-taken",
            "promoted the replica",
            "--access-necessary",
            "yes",
            "--credentials-copied",
            "no",
        ],
    );
    // Certification is signed too: unsigned it is refused, signed it counts.
    let unsigned = s.run(Some("dave"), &["certify", "1"]);
    assert_eq!(code(&unsigned), 3, "{}", stderr(&unsigned));
    let key = s.key("dave");
    let c = s.ok(Some("dave"), &["certify", "1", "--ssh-key", &key]);
    assert_eq!(c["request"]["state"], "certified");
    assert!(c["request"]["certification"]["signature"]["armored"].is_string());

    let v = s.ok(None, &["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn a_signature_by_another_principals_key_is_refused_and_audited() {
    let s = signed_demo();
    s.request(REQUEST_DBA);
    let before = refusals(s.dir());
    // bob presents a signature made with carol's key.
    let o = s.approve("bob", "1", "carol");
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("bob's signature"), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
    assert_eq!(refusals(s.dir()), before + 1);
    assert!(s.request_json("1")["approvals"]
        .as_array()
        .unwrap()
        .is_empty());
    // A key nobody listed is refused the same way.
    keygen(&s.dir().join("keys").join("mallory"), "mallory");
    assert_eq!(code(&s.approve("bob", "1", "mallory")), 3);
    assert!(s.request_json("1")["approvals"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(s.ok(None, &["audit", "verify"])["ok"], true);
}

#[test]
fn a_replayed_signature_for_another_request_is_refused() {
    let s = signed_demo();
    s.request(REQUEST_DBA);
    s.request(REQUEST_DBA); // same role, incident and approver: only the id differs
                            // bob signs REQ-1's statement on "another machine" with plain ssh-keygen.
    let st = s.run(Some("bob"), &["approve", "1", "--print-statement"]);
    assert_eq!(code(&st), 0, "{}", stderr(&st));
    let text = stdout(&st);
    assert!(
        text.starts_with("breakglass-approval/v1\nrequest=REQ-1\n"),
        "{text}"
    );
    assert!(
        text.contains("\ndecision=approve\nsigner=bob\nat="),
        "{text}"
    );
    let file = s.dir().join("statement-req-1");
    std::fs::write(&file, &text).unwrap();
    let o = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "breakglass", "-f", &s.key("bob")])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let sig = format!("{}.sig", file.display());
    let f = file.display().to_string();
    let present = |id: &str| {
        s.run(
            Some("bob"),
            &[
                "--json",
                "approve",
                id,
                "--statement",
                &f,
                "--signature",
                &sig,
            ],
        )
    };
    let a = ok_json(present("1"));
    assert_eq!(a["request"]["approvals"][0]["by"], "bob");

    // The same statement and signature presented for REQ-2.
    let o = present("2");
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("does not carry over"), "{}", stderr(&o));
    assert!(s.request_json("2")["approvals"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        audit_actions(s.dir()).last().unwrap(),
        &(2, "policy.refused".to_string())
    );
}

#[test]
fn a_statement_dated_outside_five_minutes_is_refused() {
    let s = signed_demo();
    s.request(REQUEST_DBA);
    let text = stdout(&s.run(Some("bob"), &["approve", "1", "--print-statement"]));
    let at = text.lines().find_map(|l| l.strip_prefix("at=")).unwrap();
    let old = chrono::DateTime::parse_from_rfc3339(at).unwrap() - chrono::Duration::minutes(10);
    let stale = text.replace(
        &format!("at={at}"),
        &format!(
            "at={}",
            old.to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    );
    let file = s.dir().join("stale");
    std::fs::write(&file, stale).unwrap();
    let o = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "breakglass", "-f", &s.key("bob")])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let f = file.display().to_string();
    let sig = format!("{f}.sig");
    let o = s.run(
        Some("bob"),
        &["approve", "1", "--statement", &f, "--signature", &sig],
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("good for 5 minutes"), "{}", stderr(&o));
}

#[test]
fn an_unsigned_decision_is_refused_when_signing_is_on() {
    let s = signed_demo();
    s.request(REQUEST_DBA);
    let before = refusals(s.dir());
    let o = s.run(Some("bob"), &["approve", "1"]);
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("approval signing is on") && stderr(&o).contains("--ssh-key"),
        "{}",
        stderr(&o)
    );
    assert_eq!(refusals(s.dir()), before + 1);
    let o = s.run(Some("carol"), &["deny", "1", "--reason", "no"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_eq!(s.request_json("1")["state"], "pending");
    // The key may come from the environment.
    let o = {
        let mut c = Command::new(env!("CARGO_BIN_EXE_breakglass"));
        c.arg("--config")
            .arg(&s.cfg)
            .args([
                "--as",
                "carol",
                "--json",
                "deny",
                "1",
                "--reason",
                "not this way",
            ])
            .env("HOME", s.dir())
            .env("BREAKGLASS_SSH_KEY", s.key("carol"));
        c.output().unwrap()
    };
    let d = ok_json(o);
    assert_eq!(d["request"]["state"], "denied");
    assert!(d["request"]["denial"]["signature"]["armored"].is_string());
    assert_eq!(s.ok(None, &["audit", "verify"])["ok"], true);
}

fn audit_rows(db: &rusqlite::Connection) -> Vec<AuditRecord> {
    let mut st = db
        .prepare("SELECT seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash FROM audit ORDER BY seq")
        .unwrap();
    st.query_map([], |r| {
        Ok(AuditRecord {
            seq: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            request_id: r.get(3)?,
            action: r.get(4)?,
            from_state: r.get(5)?,
            to_state: r.get(6)?,
            detail: r.get(7)?,
            prev_hash: r.get(8)?,
            hash: r.get(9)?,
        })
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

/// What someone with write access to the store does: adds `by`'s approval to
/// REQ-`id` (making it approved) and a matching `request.approved` event whose
/// detail is `detail`, sealed so the hash chain links. Returns the event's seq.
fn forge_approval(dir: &Path, id: i64, by: &str, detail: serde_json::Value) -> i64 {
    let db = rusqlite::Connection::open(dir.join("breakglass.sqlite")).unwrap();
    db.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    let now = chrono::Utc::now();
    let data: String = db
        .query_row("SELECT data FROM requests WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    let mut req: serde_json::Value = serde_json::from_str(&data).unwrap();
    req["approvals"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"by": by, "at": now}));
    req["state"] = "approved".into();
    req["version"] = (req["version"].as_i64().unwrap() + 1).into();
    db.execute(
        "UPDATE requests SET data = ?2, state = 'approved', version = version + 1 WHERE id = ?1",
        rusqlite::params![id, req.to_string()],
    )
    .unwrap();
    let last = audit_rows(&db).pop().unwrap();
    let event = seal(
        AuditRecord {
            seq: last.seq + 1,
            at: breakglass::domain::time::ts(now),
            actor: by.into(),
            request_id: Some(id),
            action: "request.approved".into(),
            from_state: Some("pending".into()),
            to_state: Some("approved".into()),
            detail: breakglass::audit::canonical_detail(&detail),
            prev_hash: String::new(),
            hash: String::new(),
        },
        &last.hash,
    );
    db.execute(
        "INSERT INTO audit (seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        rusqlite::params![event.seq, event.at, event.actor, event.request_id, event.action, event.from_state, event.to_state, event.detail, event.prev_hash, event.hash],
    )
    .unwrap();
    event.seq
}

#[test]
fn a_store_edit_adding_an_unsigned_approval_fails_verification_and_grants_nothing() {
    let s = signed_demo();
    s.request(REQUEST_DBA);
    ok_json(s.approve("bob", "1", "bob"));
    assert_eq!(s.ok(None, &["audit", "verify"])["ok"], true);

    let seq = forge_approval(
        s.dir(),
        1,
        "carol",
        serde_json::json!({"approvals": 2, "required": 2, "comment": null}),
    );
    assert_eq!(s.request_json("1")["state"], "approved");
    // The chain links (it was resealed), yet verification fails on the event.
    let o = s.run(None, &["audit", "verify"]);
    assert_eq!(code(&o), 6, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "BROKEN at event #{seq}: request.approved by carol on REQ-1"
        )),
        "{out}"
    );
    assert!(out.contains("carries no signature"), "{out}");
    let j = s.run(None, &["--json", "audit", "verify"]);
    assert_eq!(code(&j), 6);
    assert_eq!(json(&j)["broken"]["seq"], seq);

    // Nor does the forged approval activate anything.
    let o = s.run(Some("alice"), &["--json", "activate", "1"]);
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o)
            .contains("1 validly signed approval(s) of the 2 required (no valid signature: carol)"),
        "{}",
        stderr(&o)
    );
    assert!(demo_leases(s.dir()).is_empty());
    assert_eq!(s.request_json("1")["state"], "approved");
}

#[test]
fn a_store_edit_replaying_a_signature_from_another_request_fails_verification() {
    let s = signed_demo();
    s.request(REQUEST_DBA);
    s.request(REQUEST_DBA);
    let a = ok_json(s.approve("bob", "1", "bob"));
    let sig = a["request"]["approvals"][0]["signature"].clone();
    // bob's real signature for REQ-1, copied onto an approval of REQ-2.
    let seq = forge_approval(
        s.dir(),
        2,
        "bob",
        serde_json::json!({"approvals": 1, "required": 2, "comment": null, "signature": sig}),
    );
    let o = s.run(None, &["audit", "verify"]);
    assert_eq!(code(&o), 6, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "BROKEN at event #{seq}: request.approved by bob on REQ-2"
        )),
        "{out}"
    );
    assert!(out.contains("does not verify"), "{out}");
}

/// Rewrites the detail of event `seq` and reseals the chain from there, as
/// someone with write access to the store would.
fn rewrite_event(dir: &Path, seq: i64, edit: impl Fn(&mut serde_json::Value)) {
    let db = rusqlite::Connection::open(dir.join("breakglass.sqlite")).unwrap();
    db.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    let rows = audit_rows(&db);
    let mut prev = rows.iter().find(|r| r.seq == seq - 1).unwrap().hash.clone();
    for r in rows.into_iter().filter(|r| r.seq >= seq) {
        let mut r = r;
        if r.seq == seq {
            let mut d: serde_json::Value = serde_json::from_str(&r.detail).unwrap();
            edit(&mut d);
            r.detail = breakglass::audit::canonical_detail(&d);
        }
        let r = seal(r, &prev);
        db.execute(
            "UPDATE audit SET detail = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
            rusqlite::params![r.seq, r.detail, r.prev_hash, r.hash],
        )
        .unwrap();
        prev = r.hash;
    }
}

#[test]
fn a_signed_denial_signs_its_reason() {
    let s = signed_demo();
    s.request(REQUEST_DBA);
    s.request(REQUEST_DBA);
    let key = s.key("carol");
    // The statement printed for a denial names its reason.
    let st = s.ok(
        Some("carol"),
        &[
            "deny",
            "1",
            "--reason",
            "not an outage",
            "--print-statement",
        ],
    );
    let text = st["statement"].as_str().unwrap();
    assert!(
        text.contains("\ndecision=deny\nreason=not an outage\n"),
        "{text}"
    );
    // A signature made for one reason does not carry another.
    let stmt = s.dir().join("deny.statement");
    std::fs::write(&stmt, text).unwrap();
    let sig = s.dir().join("deny.statement.sig");
    let o = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "breakglass", "-f", &key])
        .arg(&stmt)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let (stmt, sig) = (stmt.to_str().unwrap(), sig.to_str().unwrap());
    let swapped = ["--statement", stmt, "--signature", sig];
    let o = s.run(
        Some("carol"),
        &[
            &["deny", "1", "--reason", "approved by phone"],
            &swapped[..],
        ]
        .concat(),
    );
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("incorrect signature"), "{}", stderr(&o));
    assert_eq!(s.request_json("1")["state"], "pending");
    let d = s.ok(
        Some("carol"),
        &[&["deny", "1", "--reason", "not an outage"], &swapped[..]].concat(),
    );
    assert_eq!(d["request"]["state"], "denied");
    // Signed with her key directly, too; the chain verifies.
    let d = s.ok(
        Some("carol"),
        &[
            "deny",
            "2",
            "--reason",
            "use the runbook",
            "--ssh-key",
            &key,
        ],
    );
    assert_eq!(d["request"]["denial"]["comment"], "use the runbook");
    assert_eq!(s.ok(None, &["audit", "verify"])["ok"], true);

    // A signer missing from allowed_signers: ssh-keygen says why on stdout only.
    let signers = s.dir().join("allowed_signers");
    let all = std::fs::read_to_string(&signers).unwrap();
    let without: String = all
        .lines()
        .filter(|l| !l.starts_with("carol "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&signers, without).unwrap();
    s.request(REQUEST_DBA);
    let o = s.run(
        Some("carol"),
        &["deny", "3", "--reason", "no", "--ssh-key", &key],
    );
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("(Could not verify signature.)"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&signers, all).unwrap();

    // A store edit of the reason, resealed, no longer verifies.
    let db = rusqlite::Connection::open(s.dir().join("breakglass.sqlite")).unwrap();
    let seq = audit_rows(&db)
        .iter()
        .filter(|r| r.action == "request.denied")
        .nth(1)
        .unwrap()
        .seq;
    rewrite_event(s.dir(), seq, |d| d["reason"] = "approved by phone".into());
    let o = s.run(None, &["audit", "verify"]);
    assert_eq!(code(&o), 6, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "BROKEN at event #{seq}: request.denied by carol on REQ-2"
        )) && out.contains("does not verify"),
        "{out}"
    );
}

#[test]
fn signing_may_live_in_the_policy_file() {
    let s = signed_demo();
    // Move groups and roles (and the signing keys) into policy/policy.toml.
    let text = std::fs::read_to_string(&s.cfg).unwrap();
    let body = text.lines().skip(2).collect::<Vec<_>>().join("\n");
    let (config, policy) = body.split_at(body.find("[groups]").unwrap());
    let pdir = s.dir().join("policy");
    std::fs::create_dir(&pdir).unwrap();
    std::fs::rename(s.dir().join("allowed_signers"), pdir.join("signers")).unwrap();
    std::fs::write(
        pdir.join("policy.toml"),
        format!("approval_signing = \"ssh\"\nallowed_signers = \"signers\"\n{policy}\n"),
    )
    .unwrap();
    std::fs::write(&s.cfg, format!("policy = \"policy/policy.toml\"\n{config}")).unwrap();
    s.request(REQUEST_DBA);
    assert_eq!(code(&s.run(Some("bob"), &["approve", "1"])), 3);
    ok_json(s.approve("bob", "1", "bob"));
    assert_eq!(s.ok(None, &["audit", "verify"])["ok"], true);

    // Set in both places: a problem naming the config's line.
    let both = format!("approval_signing = \"ssh\"\npolicy = \"policy/policy.toml\"\n{config}");
    std::fs::write(&s.cfg, both).unwrap();
    let o = s.run(None, &["config", "check"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains(&format!(
            "{}:1: approval signing is also set in the policy file",
            s.cfg.display()
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn signing_settings_are_validated_with_file_and_line() {
    let (tmp, cfg) = demo_dir();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let check = |body: String| {
        std::fs::write(&cfg, body).unwrap();
        let o = bg(&cfg, None, &["config", "check"]);
        assert_eq!(code(&o), 2, "{}", stdout(&o));
        stderr(&o)
    };
    let cfgname = cfg.display().to_string();

    let e = check(format!("approval_signing = \"ssh\"\n{text}"));
    assert!(
        e.contains(&format!(
            "{cfgname}:1: approval_signing = \"ssh\" needs allowed_signers"
        )),
        "{e}"
    );
    let e = check(format!(
        "approval_signing = \"gpg\"\nallowed_signers = \"x\"\n{text}"
    ));
    assert!(
        e.contains(&format!(
            "{cfgname}:1: approval_signing = \"gpg\" is not known"
        )),
        "{e}"
    );
    let e = check(format!(
        "approval_signing = \"ssh\"\nallowed_signers = \"missing\"\n{text}"
    ));
    assert!(
        e.contains(&format!("{cfgname}:2: cannot read allowed_signers file")),
        "{e}"
    );

    // A broken line in allowed_signers is named with its own file and line.
    let signers = tmp.path().join("allowed_signers");
    std::fs::write(
        &signers,
        "# who may sign\nbob ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBCg\ncarol\n",
    )
    .unwrap();
    let e = check(format!(
        "approval_signing = \"ssh\"\nallowed_signers = \"allowed_signers\"\n{text}"
    ));
    assert!(
        e.contains(&format!(
            "{}:3: not an allowed_signers line",
            signers.display()
        )),
        "{e}"
    );
    assert_eq!(e.matches("not an allowed_signers line").count(), 1, "{e}");

    // Appended below the last [[roles]] table, the keys land in that role.
    let lines = text.lines().count();
    let e = check(format!("{text}approval_signing = \"ssh\"\n"));
    assert!(
        e.contains(&format!(
            "{cfgname}:{}: approval_signing and allowed_signers are top-level keys",
            lines + 1
        )),
        "{e}"
    );
}

/// A vendor role in the signed demo (certifiers: dave).
fn with_vendor_role(s: &Signed) {
    let text = std::fs::read_to_string(&s.cfg).unwrap();
    std::fs::write(&s.cfg, text + &vendor_role("")).unwrap();
}

const VENDOR_REQUEST: &[&str] = &[
    "request",
    "--incident",
    "INC-1042",
    "--role",
    VENDOR,
    "--condition",
    "production outage",
    "--reason",
    "vendor must inspect the replication slot",
    "--vendor-name",
    "Vera",
    "--vendor-company",
    "DB Corp",
];

#[test]
fn vendor_recertification_is_signed_and_a_forged_one_unlocks_nothing() {
    let s = signed_demo();
    with_vendor_role(&s);
    let recertify = ["roles", "recertify", VENDOR, "--comment", "reviewed"];
    // Unsigned: refused (and audited), the role stays locked.
    let o = s.run(Some("dave"), &recertify);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("sign with your SSH key"),
        "{}",
        stderr(&o)
    );
    // Signed with someone else's key: refused.
    let bobs = s.key("bob");
    let o = s.run(
        Some("dave"),
        &[&recertify[..], &["--ssh-key", &bobs]].concat(),
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
    // With dave's key: the role opens and the chain reverifies.
    let daves = s.key("dave");
    let r = s.ok(
        Some("dave"),
        &[&recertify[..], &["--ssh-key", &daves]].concat(),
    );
    assert_eq!(r["certification"]["by"], "dave");
    assert!(s.ok(Some("alice"), VENDOR_REQUEST)["request"]["id"]
        .as_i64()
        .is_some());
    assert_eq!(s.ok(None, &["audit", "verify"])["ok"], true);

    // A store edit appending a later, unsigned recertification (as if the last
    // one lapsed and someone renewed it by hand) breaks verification and does
    // not count: requests are refused.
    let db = rusqlite::Connection::open(s.dir().join("breakglass.sqlite")).unwrap();
    let last = audit_rows(&db).pop().unwrap();
    let forged = seal(
        AuditRecord {
            seq: last.seq + 1,
            at: breakglass::domain::time::ts(chrono::Utc::now()),
            actor: "dave".into(),
            request_id: None,
            action: "role.recertified".into(),
            from_state: None,
            to_state: None,
            detail: breakglass::audit::canonical_detail(&serde_json::json!({
                "role": VENDOR, "comment": "by hand"
            })),
            prev_hash: String::new(),
            hash: String::new(),
        },
        &last.hash,
    );
    db.execute(
        "INSERT INTO audit (seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        rusqlite::params![forged.seq, forged.at, forged.actor, forged.request_id, forged.action, forged.from_state, forged.to_state, forged.detail, forged.prev_hash, forged.hash],
    )
    .unwrap();
    let v = s.run(None, &["audit", "verify"]);
    assert_eq!(code(&v), 6, "{}{}", stdout(&v), stderr(&v));
    let all = format!("{}{}", stdout(&v), stderr(&v));
    assert!(
        all.contains("role.recertified of role vendor-db-support by dave carries no signature"),
        "{all}"
    );
    let o = s.run(Some("alice"), VENDOR_REQUEST);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("carries no valid signature"),
        "{}",
        stderr(&o)
    );
}
