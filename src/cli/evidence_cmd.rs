//! `breakglass evidence REQ-n --output DIR` and `breakglass evidence verify DIR`.

use super::*;
use crate::audit::evidence::{self, CheckpointVerdict};
use crate::cli::output::print_json;
use crate::sanitize::line;

pub(super) async fn write(
    svc: &Service,
    id: RequestId,
    dir: &std::path::Path,
    json: bool,
) -> CliResult {
    let built = match svc.write_evidence(id, dir).await? {
        Ok(b) => b,
        Err(broken) => {
            return Err(Failure::new(
                exit::AUDIT_BROKEN,
                format!(
                    "the audit chain does not verify at event #{} ({}); no evidence is written from a broken log: run `breakglass audit verify`",
                    broken.seq, broken.reason
                ),
            ))
        }
    };
    if json {
        print_json(&serde_json::json!({"evidence": built}));
        return Ok(exit::OK);
    }
    let shown = line(&built.dir.display().to_string(), 300);
    outln!(
        "wrote the evidence of {id} to {shown}: events #{} to #{} ({} of them {id}'s), {} signature(s), {} recording(s)",
        built.first_seq,
        built.last_seq,
        built.request_events,
        built.signatures,
        built.recordings
    );
    if built.recordings_missing > 0 {
        outln!(
            "WARNING: {} recording(s) could not be included (missing or altered since audited); summary.txt says which",
            built.recordings_missing
        );
    }
    match &built.no_checkpoint {
        None => outln!("a checkpoint signed now covers them; check it with: breakglass evidence verify {shown} --public-key <key>"),
        Some(why) => outln!(
            "WARNING: NOT COVERED BY A SIGNED CHECKPOINT: {}. The bundle proves internal consistency only.",
            line(why, 300)
        ),
    }
    Ok(exit::OK)
}

/// Needs no config or store: an auditor runs it on their own machine.
pub(super) fn verify(dir: &std::path::Path, public_key: Option<&str>, json: bool) -> CliResult {
    let shown = line(&dir.display().to_string(), 300);
    if !dir.is_dir() {
        return Err(Failure::new(
            exit::USAGE,
            format!("{shown} is not a directory"),
        ));
    }
    let verdict = evidence::verify(dir, public_key);
    if json {
        print_json(&match &verdict {
            Ok(r) => serde_json::json!({"ok": true, "report": r}),
            Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
        });
    }
    let r = match verdict {
        Ok(r) => r,
        Err(e) => {
            if !json {
                outln!("evidence FAILED: {}", line(&e.to_string(), 2000));
            }
            return Ok(exit::AUDIT_BROKEN);
        }
    };
    if json {
        return Ok(exit::OK);
    }
    outln!(
        "OK: {} files match manifest.json; events #{} to #{} ({}) link as a chain, {} of them REQ-{}'s, starting with its request.created",
        r.files,
        r.first_seq,
        r.last_seq,
        r.events,
        r.request_events,
        r.request
    );
    match &r.checkpoint {
        CheckpointVerdict::Verified {
            key_id,
            pinned,
            at,
            tree_size,
        } => {
            // From the bundle: an unpinned key "verifies" whatever its owner wrote.
            outln!(
                "OK: the checkpoint signed {} by key {} covers the log's first {tree_size} events, these included",
                super::output::signed_instant(at, chrono::Utc::now()),
                line(key_id, 64)
            );
            if !pinned {
                outln!("NOTE: checked against the key in the bundle; pass --public-key with the key you trust to prove it is yours");
            }
        }
        CheckpointVerdict::Absent { reason } => outln!(
            "WARNING: NOT COVERED BY A SIGNED CHECKPOINT ({}): this proves internal consistency only",
            line(reason, 300)
        ),
    }
    outln!(
        "OK: {} signature(s) verify with ssh-keygen against the bundle's allowed_signers{}",
        r.signatures,
        if r.unsigned_decisions.is_empty() {
            String::new()
        } else {
            format!(
                "; {} decision(s) carry no signature (signing was off)",
                r.unsigned_decisions.len()
            )
        }
    );
    outln!(
        "OK: {} recording(s) match the SHA-256 audited for them",
        r.recordings
    );
    for (seq, why) in &r.recordings_missing {
        outln!(
            "WARNING: the recording of event #{seq} is not included: {}",
            line(why, 300)
        );
    }
    if r.summary_rerendered {
        outln!("OK: summary.txt says what the events say (rendered again, identical)");
    } else {
        outln!("NOTE: summary.txt was written by another breakglass version and was not rendered again");
    }
    Ok(exit::OK)
}
