//! The tamper-evident audit chain: `hash = sha256(prev_hash || canonical_json(event))`,
//! with `prev_hash` fed as its 64 hex characters (docs/src/audit.md has the exact bytes).
//! Any edit, deletion or reordering of a stored row breaks a link that `verify` names.

pub mod checkpoint;
pub mod evidence;
pub mod recordings;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored audit event. `detail` is kept as the exact canonical JSON text that
/// was hashed, so verification never depends on re-serialisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub request_id: Option<i64>,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's string escaping is canonical (shortest form, fixed escapes).
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Canonical JSON of an event: keys sorted, no whitespace, `detail` verbatim
/// (it was itself produced canonically by `canonical_detail`). docs/src/audit.md
/// ("The hashed bytes") documents these bytes for independent verifiers.
pub fn canonical(r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + r.detail.len());
    write_event(&mut out, r, false);
    out
}

/// One line of `audit export --format jsonl`: the canonical form with `hash`
/// and `prev_hash` added in their sorted places, so a line alone is enough to
/// recompute its hash (drop those two keys and the rest is what was hashed).
pub fn export_line(r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(300 + r.detail.len());
    write_event(&mut out, r, true);
    out
}

fn write_event(out: &mut Vec<u8>, r: &AuditRecord, links: bool) {
    out.extend_from_slice(b"{\"action\":");
    push_json_str(out, &r.action);
    out.extend_from_slice(b",\"actor\":");
    push_json_str(out, &r.actor);
    out.extend_from_slice(b",\"at\":");
    push_json_str(out, &r.at);
    out.extend_from_slice(b",\"detail\":");
    let raw_ok = !r.detail.contains(['\n', '\r'])
        && serde_json::from_str::<serde::de::IgnoredAny>(&r.detail).is_ok();
    if links && !raw_ok {
        // Not one-line JSON (breakglass never writes that; a hand-edited row
        // might): keep the export one parseable line per event; the recomputed
        // hash will then not match, which is what a verifier should report.
        push_json_str(out, &r.detail);
    } else {
        out.extend_from_slice(r.detail.as_bytes());
    }
    out.extend_from_slice(b",\"from\":");
    push_opt_str(out, r.from_state.as_deref());
    if links {
        out.extend_from_slice(b",\"hash\":");
        push_json_str(out, &r.hash);
        out.extend_from_slice(b",\"prev_hash\":");
        push_json_str(out, &r.prev_hash);
    }
    out.extend_from_slice(b",\"request_id\":");
    match r.request_id {
        Some(id) => out.extend_from_slice(id.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(r.seq.to_string().as_bytes());
    out.extend_from_slice(b",\"to\":");
    push_opt_str(out, r.to_state.as_deref());
    out.push(b'}');
}

fn push_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// serde_json's default map is ordered, so `to_string` of a `Value` has sorted keys.
/// The longest string an audit detail or an alert may carry. Free text is capped
/// at 4,000 characters where it enters; this backstop is above the longest
/// legitimate value (an armored SSH signature, 16 KiB).
pub const MAX_STORED_STRING: usize = 20_000;

/// The detail as stored and hashed: every string cleaned and capped first
/// (`sanitize::json_strings`), so no path stores raw escapes or megabytes.
pub fn canonical_detail(v: &serde_json::Value) -> String {
    let mut v = v.clone();
    crate::sanitize::json_strings(&mut v, MAX_STORED_STRING);
    serde_json::to_string(&v).expect("a Value always serialises")
}

pub fn link_hash(prev_hash: &str, canonical: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical);
    hex::encode(h.finalize())
}

/// Fills in `prev_hash` and `hash` for a record that follows `prev_hash`.
pub fn seal(mut r: AuditRecord, prev_hash: &str) -> AuditRecord {
    r.prev_hash = prev_hash.to_string();
    r.hash = link_hash(prev_hash, &canonical(&r));
    r
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broken {
    pub seq: i64,
    pub reason: String,
}

/// Streams over records in stored order and stops at the first broken link.
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    pub count: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS.to_string(),
            count: 0,
        }
    }
}

impl Verifier {
    /// A verifier for a run of the chain that starts at event `seq`, whose
    /// predecessor's hash is `prev_hash` (an evidence bundle's first event).
    pub fn starting_at(seq: i64, prev_hash: &str) -> Self {
        Verifier {
            expected_seq: seq,
            prev_hash: prev_hash.to_string(),
            count: 0,
        }
    }

    pub fn push(&mut self, r: &AuditRecord) -> Result<(), Broken> {
        let broken = |reason: String| Err(Broken { seq: r.seq, reason });
        if r.seq != self.expected_seq {
            return broken(format!(
                "expected event #{} but found #{}: events were deleted or reordered",
                self.expected_seq, r.seq
            ));
        }
        if r.prev_hash != self.prev_hash {
            return broken(format!(
                "event #{} does not link to the event before it (prev_hash differs): the chain was cut or rewritten",
                r.seq
            ));
        }
        let h = link_hash(&r.prev_hash, &canonical(r));
        if h != r.hash {
            return broken(format!(
                "event #{} was altered after it was written (its hash does not match its content)",
                r.seq
            ));
        }
        self.prev_hash = r.hash.clone();
        self.expected_seq += 1;
        self.count += 1;
        Ok(())
    }

    pub fn head(&self) -> &str {
        &self.prev_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: i64, detail: &str) -> AuditRecord {
        AuditRecord {
            seq,
            at: "2026-11-25T00:00:00.000000Z".into(),
            actor: "alice".into(),
            request_id: Some(1),
            action: "request.created".into(),
            from_state: None,
            to_state: Some("pending".into()),
            detail: detail.into(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|i| {
                let r = seal(rec(i, "{\"a\":1}"), &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn verify(rs: &[AuditRecord]) -> Result<u64, Broken> {
        let mut v = Verifier::default();
        for r in rs {
            v.push(r)?;
        }
        Ok(v.count)
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn edit_delete_and_reorder_are_named() {
        let mut c = chain(5);
        c[2].actor = "mallory".into();
        assert_eq!(verify(&c).unwrap_err().seq, 3);

        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c).unwrap_err().seq, 3);

        let mut c = chain(5);
        c.swap(1, 2);
        assert_eq!(verify(&c).unwrap_err().seq, 3);
    }

    #[test]
    fn canonical_is_valid_sorted_json() {
        let r = seal(rec(1, "{\"b\":2}"), GENESIS);
        let v: serde_json::Value = serde_json::from_slice(&canonical(&r)).unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap().as_bytes(),
            canonical(&r).as_slice()
        );
    }

    #[test]
    fn an_export_line_minus_its_links_is_the_canonical_form() {
        let r = seal(
            rec(
                1,
                "{\"reason\":\"a \\\"q\\\" \\\\ \\n é 😀\",\"z\":[1,null]}",
            ),
            GENESIS,
        );
        let mut v: serde_json::Value = serde_json::from_slice(&export_line(&r)).unwrap();
        assert_eq!(v["hash"], r.hash.as_str());
        assert_eq!(v["prev_hash"], GENESIS);
        assert!(v["detail"].is_object(), "{v}");
        assert_eq!(v["from"], serde_json::Value::Null);
        assert_eq!(v["to"], "pending");
        let m = v.as_object_mut().unwrap();
        m.remove("hash");
        m.remove("prev_hash");
        assert_eq!(
            serde_json::to_string(&v).unwrap().as_bytes(),
            canonical(&r).as_slice()
        );
    }

    #[test]
    fn an_export_line_stays_one_json_line_whatever_the_stored_detail() {
        for detail in ["not json", "{\"a\":\n1}", ""] {
            let r = seal(rec(1, detail), GENESIS);
            let line = export_line(&r);
            assert!(!line.contains(&b'\n'));
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(v["detail"], detail);
        }
    }

    /// The worked example in docs/src/audit.md ("The hashed bytes"): if this changes,
    /// every exported chain stops verifying with the documented recipe.
    #[test]
    fn the_readme_worked_example_holds() {
        let detail = serde_json::json!({
            "ttl_seconds": 900,
            "reason": "primary \"db-1\" is read-only\nfail over to é",
            "incident": {"id": "INC-1042"},
        });
        let r = AuditRecord {
            seq: 1,
            at: "2026-11-25T09:00:00.000000Z".into(),
            actor: "alice".into(),
            request_id: Some(7),
            action: "request.created".into(),
            from_state: None,
            to_state: Some("pending".into()),
            detail: canonical_detail(&detail),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let r = seal(r, GENESIS);
        assert_eq!(
            String::from_utf8(canonical(&r)).unwrap(),
            r#"{"action":"request.created","actor":"alice","at":"2026-11-25T09:00:00.000000Z","detail":{"incident":{"id":"INC-1042"},"reason":"primary \"db-1\" is read-only\nfail over to é","ttl_seconds":900},"from":null,"request_id":7,"seq":1,"to":"pending"}"#
        );
        assert_eq!(
            r.hash,
            "9e03e529076d88a7d186df82908926707b9fbcc4460758cb6092668d8b25a6b7"
        );
    }
}
