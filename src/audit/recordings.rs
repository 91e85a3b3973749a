//! Vendor session recordings in the audit trail: the events that name them and
//! the hash that ties a recording file to its `session.recorded` event.

use super::{AuditRecord, Broken};
use crate::domain::AuditAction;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Re-hashes a recorded session named by a `session.recorded` event.
pub fn check_recording(r: &AuditRecord) -> std::result::Result<(), Broken> {
    let recorded = AuditAction::SessionRecorded;
    if r.action != recorded {
        return Ok(());
    }
    let broken = |reason: String| Broken { seq: r.seq, reason };
    let detail: serde_json::Value = serde_json::from_str(&r.detail).unwrap_or_default();
    let (Some(path), Some(want)) = (detail["path"].as_str(), detail["sha256"].as_str()) else {
        return Err(broken(format!(
            "{recorded} event names no recording and hash"
        )));
    };
    match sha256_file(Path::new(path)) {
        Ok((got, _)) if got == want => Ok(()),
        Ok(_) => Err(broken(format!(
            "{recorded}: the recording {path} was altered (its SHA-256 differs from the one audited)"
        ))),
        Err(e) => Err(broken(format!(
            "{recorded}: the recording {path} is missing or unreadable: {e}"
        ))),
    }
}

/// SHA-256 (hex) and length of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h)?;
    Ok((hex::encode(h.finalize()), n))
}
