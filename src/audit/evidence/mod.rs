//! Evidence bundles: everything an auditor needs about one request, in one
//! directory that verifies offline (no store, no config).
//!
//! The layout (README "Evidence for an auditor"):
//!
//! - `events.jsonl`: the contiguous run of audit events, in the export's hashed
//!   form, from the request's `request.created` to the event a checkpoint signed
//!   (other requests' events in between included: the chain runs through them).
//!   The first line's `prev_hash` is the link to everything before it.
//! - `checkpoint.json` + `checkpoint-key.pub`: an Ed25519 checkpoint whose
//!   `tree_size`/`head` is the last line of `events.jsonl` (absent when no key
//!   is configured; the manifest and summary then say so).
//! - `signatures/seq-N.sig` + `seq-N.statement` for each signed decision, and
//!   `allowed_signers` with the lines that verify them.
//! - `recordings/seq-N.cast` for each `session.recorded` event.
//! - `summary.txt` for a person, `manifest.json` with the SHA-256 of every file.

mod build;
mod error;
mod summary;
pub mod transfer;
mod verify;

pub use build::{write, AuditLog, BuildOptions, Built};
pub use error::{EvidenceError, LogError};
pub use verify::{verify, CheckpointVerdict, Report};

use crate::domain::AuditAction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const FORMAT: &str = "breakglass-evidence/v1";
pub const MANIFEST: &str = "manifest.json";
pub const EVENTS: &str = "events.jsonl";
pub const CHECKPOINT: &str = "checkpoint.json";
pub const PUBLIC_KEY: &str = "checkpoint-key.pub";
pub const ALLOWED_SIGNERS: &str = "allowed_signers";
pub const SUMMARY: &str = "summary.txt";

pub fn statement_file(seq: i64) -> String {
    format!("signatures/seq-{seq}.statement")
}
pub fn signature_file(seq: i64) -> String {
    format!("signatures/seq-{seq}.sig")
}
pub fn recording_file(seq: i64) -> String {
    format!("recordings/seq-{seq}.cast")
}

fn generator() -> String {
    format!("breakglass {}", env!("CARGO_PKG_VERSION"))
}

/// `manifest.json`. Nothing in it is trusted on its own: every claim a verifier
/// relies on is checked against the events (whose hashes a checkpoint signs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub generator: String,
    /// The request's number (REQ-n).
    pub request: i64,
    pub written_at: String,
    /// First and last `seq` in `events.jsonl`.
    pub first_seq: i64,
    pub last_seq: i64,
    /// Why there is no checkpoint (None when there is one).
    pub no_checkpoint: Option<String>,
    /// `session.recorded` events (seq, as a string) whose recording could not
    /// be included, and why.
    pub recordings_missing: BTreeMap<String, String>,
    /// Every other file: its SHA-256 (hex) and size.
    pub files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub sha256: String,
    pub bytes: u64,
}

/// Whether `name` is a file name a bundle may hold: the fixed names, or the
/// per-event ones. Keeps a hostile manifest from naming `../x` or `/etc/x`.
fn allowed_name(name: &str) -> bool {
    let per_event = |prefix: &str, suffix: &str| {
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .is_some_and(|n| {
                !n.is_empty()
                    && n.len() <= 19
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && !n.starts_with('0')
            })
    };
    matches!(
        name,
        EVENTS | CHECKPOINT | PUBLIC_KEY | ALLOWED_SIGNERS | SUMMARY
    ) || per_event("signatures/seq-", ".statement")
        || per_event("signatures/seq-", ".sig")
        || per_event("recordings/seq-", ".cast")
}

/// The statement a signed decision event signed, rebuilt from the chain: role
/// and incident from the request's `request.created`, the decision from the
/// action, the signer from the actor (as `audit verify` does).
pub fn decision_statement(
    created: &serde_json::Value,
    r: &crate::audit::AuditRecord,
    detail: &serde_json::Value,
    signed_at: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    use crate::identity::ssh_sign::{DecisionKind, Statement};
    let kind = DecisionKind::from_action(&r.action)?;
    let role = created["role"].as_str()?;
    let incident =
        serde_json::from_value::<crate::domain::IncidentRef>(created["incident"].clone()).ok()?;
    Some(
        Statement {
            request: crate::domain::RequestId(r.request_id?),
            role,
            incident: &incident.label(),
            decision: kind,
            reason: detail["reason"]
                .as_str()
                .filter(|_| kind == DecisionKind::Deny),
            signer: &r.actor,
            at: signed_at,
        }
        .text(),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bundle_names_are_allowed() {
        for ok in [
            "events.jsonl",
            "signatures/seq-12.sig",
            "signatures/seq-3.statement",
            "recordings/seq-9.cast",
        ] {
            assert!(allowed_name(ok), "{ok}");
        }
        for bad in [
            "../events.jsonl",
            "/etc/passwd",
            "signatures/seq-.sig",
            "signatures/seq-01.sig",
            "signatures/seq-1/../x.sig",
            "recordings/seq-1.cast/x",
            "manifest.json",
            "events.jsonl ",
        ] {
            assert!(!allowed_name(bad), "{bad}");
        }
    }
}
