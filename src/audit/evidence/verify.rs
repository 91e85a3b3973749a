//! Checking a bundle offline: every file against the manifest, the events as
//! a chain, the chain against the checkpoint, each signature and recording
//! against the event that audited it, and the summary against the events.
//! Stops at the first thing that does not hold and says what.

use super::error::{io, json, EvidenceError, EvidenceError::Invalid};
use super::*;
use crate::audit::checkpoint::{verify_signature, Checkpoint};
use crate::audit::{canonical_detail, export_line, AuditRecord, Verifier};
use std::io::BufRead;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub request: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub events: u64,
    pub request_events: usize,
    pub checkpoint: CheckpointVerdict,
    pub signatures: usize,
    /// Decisions of the request that carry no signature (signing was off).
    pub unsigned_decisions: Vec<i64>,
    pub recordings: usize,
    pub recordings_missing: Vec<(i64, String)>,
    /// Whether summary.txt was rendered again from the events and matched.
    pub summary_rerendered: bool,
    pub files: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CheckpointVerdict {
    Verified {
        key_id: String,
        /// True when checked against a key the verifier gave, not only the bundle's.
        pinned: bool,
        at: String,
        tree_size: i64,
    },
    Absent {
        reason: String,
    },
}

/// Longest manifest or small file read whole (a hostile bundle can be huge).
const MAX_SMALL: u64 = 16 * 1024 * 1024;

fn show(s: &str) -> String {
    crate::sanitize::line(s, 200)
}

fn read_small(dir: &Path, name: &str) -> Result<Vec<u8>, EvidenceError> {
    let p = dir.join(name);
    let m = std::fs::symlink_metadata(&p).map_err(io(name.to_string()))?;
    if !m.is_file() {
        return Err(Invalid(format!("{name} is not a regular file")));
    }
    if m.len() > MAX_SMALL {
        return Err(Invalid(format!("{name} is larger than {MAX_SMALL} bytes")));
    }
    std::fs::read(&p).map_err(io(name.to_string()))
}

fn read_text(dir: &Path, name: &str) -> Result<String, EvidenceError> {
    String::from_utf8(read_small(dir, name)?).map_err(|_| Invalid(format!("{name} is not UTF-8")))
}

/// The regular files under `dir` as bundle names (`a/b`); anything else
/// (a symlink, a device, a deeper or unknown path) is refused.
pub(super) fn list_files(dir: &Path) -> Result<Vec<String>, EvidenceError> {
    let mut out = vec![];
    let mut walk = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = walk.pop() {
        let entries = std::fs::read_dir(&path).map_err(io(format!("{}", path.display())))?;
        for e in entries {
            let e = e.map_err(io(format!("{}", path.display())))?;
            let name = e.file_name();
            let name = name.to_str().ok_or_else(|| {
                Invalid(format!(
                    "{prefix}{} has a name that is not UTF-8",
                    show(&name.to_string_lossy())
                ))
            })?;
            let rel = format!("{prefix}{name}");
            let t = e.file_type().map_err(io(show(&rel)))?;
            if t.is_dir() && prefix.is_empty() && (name == "signatures" || name == "recordings") {
                walk.push((e.path(), format!("{rel}/")));
            } else if t.is_file() && (rel == MANIFEST || allowed_name(&rel)) {
                out.push(rel);
            } else {
                return Err(Invalid(format!(
                    "unexpected {} in the bundle: {} (a bundle holds only the files its manifest lists)",
                    if t.is_symlink() {
                        "symlink"
                    } else if t.is_dir() {
                        "directory"
                    } else {
                        "file"
                    },
                    show(&rel)
                )));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One export line back into a record; refused unless re-serialising it gives
/// the same bytes, so the file holds exactly the hashed form (no duplicate or
/// extra keys, no other spelling of the same JSON).
fn parse_line(raw: &[u8], where_: &str) -> Result<AuditRecord, EvidenceError> {
    let v: serde_json::Value =
        serde_json::from_slice(raw).map_err(json(format!("{where_}: not valid JSON")))?;
    let s = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| Invalid(format!("{where_}: `{k}` is missing or not a string")))
    };
    let opt = |k: &str| match &v[k] {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(x) => Ok(Some(x.clone())),
        _ => Err(Invalid(format!("{where_}: `{k}` is not a string or null"))),
    };
    let r = AuditRecord {
        seq: v["seq"]
            .as_i64()
            .ok_or_else(|| Invalid(format!("{where_}: `seq` is missing or not an integer")))?,
        at: s("at")?,
        actor: s("actor")?,
        request_id: match &v["request_id"] {
            serde_json::Value::Null => None,
            x => Some(
                x.as_i64()
                    .ok_or_else(|| Invalid(format!("{where_}: `request_id` is not an integer")))?,
            ),
        },
        action: s("action")?,
        from_state: opt("from")?,
        to_state: opt("to")?,
        detail: canonical_detail(&v["detail"]),
        prev_hash: s("prev_hash")?,
        hash: s("hash")?,
    };
    if export_line(&r) != raw {
        return Err(Invalid(format!(
            "{where_} (seq {}): not in the export's canonical form (extra or duplicate keys, or other spacing or escapes)",
            r.seq
        )));
    }
    Ok(r)
}

/// Verifies the bundle in `dir`. `public_key`: the checkpoint key the auditor
/// trusts (hex); without it the bundle's own key is used and the report says so.
pub fn verify(dir: &Path, public_key: Option<&str>) -> Result<Report, EvidenceError> {
    let files = list_files(dir)?;
    let manifest = read_manifest(dir)?;
    let id = manifest.request;
    let events = read_events(dir, &manifest)?;
    let checkpoint = check_checkpoint(dir, &files, &manifest, public_key, &events.last)?;
    let attached = check_attached(dir, &files, &manifest, &events.mine)?;
    check_against_manifest(dir, &files, &manifest)?;

    // The summary says only what the events say.
    let summary_rerendered = manifest.generator == generator();
    if summary_rerendered {
        let key_id = match &checkpoint {
            CheckpointVerdict::Verified { key_id, .. } => Some(key_id.clone()),
            CheckpointVerdict::Absent { .. } => None,
        };
        if read_small(dir, SUMMARY)? != summary::render(&manifest, &events.mine, key_id).as_bytes()
        {
            return Err(Invalid(format!(
                "{SUMMARY} is not what the events say (rendered again from {EVENTS}, it differs)"
            )));
        }
    }

    Ok(Report {
        request: id,
        first_seq: events.first_seq,
        last_seq: events.last.seq,
        events: events.count,
        request_events: events.mine.len(),
        checkpoint,
        signatures: attached.signatures,
        unsigned_decisions: attached.unsigned,
        recordings: attached.recordings,
        recordings_missing: attached.missing,
        summary_rerendered,
        files: files.len().saturating_sub(1),
    })
}

fn read_manifest(dir: &Path) -> Result<Manifest, EvidenceError> {
    let manifest: Manifest = serde_json::from_slice(&read_small(dir, MANIFEST)?)
        .map_err(json(format!("{MANIFEST}: not a bundle manifest")))?;
    if manifest.format != FORMAT {
        return Err(Invalid(format!(
            "{MANIFEST}: format {} is not {FORMAT}",
            show(&manifest.format)
        )));
    }
    Ok(manifest)
}

/// `events.jsonl`, verified as a chain.
struct Events {
    first_seq: i64,
    last: AuditRecord,
    /// How many events the chain holds.
    count: u64,
    /// The request's own events, oldest first.
    mine: Vec<AuditRecord>,
}

/// The events, as a chain that starts with the request's `request.created`
/// and runs over exactly what the manifest says.
fn read_events(dir: &Path, manifest: &Manifest) -> Result<Events, EvidenceError> {
    let id = manifest.request;
    let f = std::fs::File::open(dir.join(EVENTS)).map_err(io(EVENTS.to_string()))?;
    let mut verifier: Option<Verifier> = None;
    let mut mine: Vec<AuditRecord> = vec![];
    let mut last: Option<AuditRecord> = None;
    let mut first_seq = 0;
    for (n, line) in std::io::BufReader::new(f).split(b'\n').enumerate() {
        let line = line.map_err(io(EVENTS.to_string()))?;
        let where_ = format!("{EVENTS} line {}", n + 1);
        let r = parse_line(&line, &where_)?;
        let v = verifier.get_or_insert_with(|| {
            first_seq = r.seq;
            Verifier::starting_at(r.seq, &r.prev_hash)
        });
        v.push(&r)
            .map_err(|b| Invalid(format!("{where_}: {}", b.reason)))?;
        if r.request_id == Some(id) {
            mine.push(r.clone());
        }
        last = Some(r);
    }
    let (Some(verifier), Some(last)) = (verifier, last) else {
        return Err(Invalid(format!("{EVENTS} holds no events")));
    };
    match mine.first() {
        Some(c) if c.action == AuditAction::RequestCreated && c.seq == first_seq => {}
        _ => {
            return Err(Invalid(format!(
                "{EVENTS} does not start with REQ-{id}'s request.created event: the run of events is not the request's whole story"
            )))
        }
    }
    if (first_seq, last.seq) != (manifest.first_seq, manifest.last_seq) {
        return Err(Invalid(format!(
            "{EVENTS} holds events #{first_seq} to #{}, the manifest says #{} to #{}",
            last.seq, manifest.first_seq, manifest.last_seq
        )));
    }
    Ok(Events {
        first_seq,
        last,
        count: verifier.count,
        mine,
    })
}

/// The checkpoint: signs the last event's hash, with the key the auditor gave
/// when they gave one. Its absence is fine only when the manifest says why.
fn check_checkpoint(
    dir: &Path,
    files: &[String],
    manifest: &Manifest,
    public_key: Option<&str>,
    last: &AuditRecord,
) -> Result<CheckpointVerdict, EvidenceError> {
    let has_cp = files.iter().any(|f| f == CHECKPOINT);
    match (&manifest.no_checkpoint, has_cp) {
        (Some(reason), false) => {
            if public_key.is_some() {
                return Err(Invalid(format!(
                    "the bundle has no signed checkpoint ({}), but you gave a checkpoint key to check it against",
                    show(reason)
                )));
            }
            Ok(CheckpointVerdict::Absent {
                reason: show(reason),
            })
        }
        (None, true) => {
            let cp: Checkpoint = serde_json::from_slice(&read_small(dir, CHECKPOINT)?)
                .map_err(json(format!("{CHECKPOINT}: not a checkpoint")))?;
            let bundled = read_text(dir, PUBLIC_KEY)?.trim().to_ascii_lowercase();
            if let Some(k) = public_key {
                if k.trim().to_ascii_lowercase() != bundled {
                    return Err(Invalid(format!(
                        "{PUBLIC_KEY} is not the key you gave: the checkpoint was signed with another key ({})",
                        show(&cp.key_id)
                    )));
                }
            }
            verify_signature(&cp, &bundled).map_err(|source| EvidenceError::Checkpoint {
                what: CHECKPOINT.to_string(),
                source,
            })?;
            if cp.tree_size != last.seq || cp.head != last.hash {
                return Err(Invalid(format!(
                    "{CHECKPOINT} signs event #{} with head {}, but {EVENTS} ends at event #{} with hash {}: they do not belong together",
                    cp.tree_size,
                    show(&cp.head),
                    last.seq,
                    last.hash
                )));
            }
            Ok(CheckpointVerdict::Verified {
                key_id: cp.key_id,
                pinned: public_key.is_some(),
                at: show(&cp.at),
                tree_size: cp.tree_size,
            })
        }
        (None, false) => Err(Invalid(format!(
            "{CHECKPOINT} is missing, and the manifest gives no reason for a bundle without one"
        ))),
        (Some(_), true) => Err(Invalid(format!(
            "the manifest says there is no checkpoint, yet {CHECKPOINT} is there"
        ))),
    }
}

/// What the per-event files (signatures, recordings) came to.
#[derive(Default)]
struct Attached {
    signatures: usize,
    /// Decisions with no signature (seq).
    unsigned: Vec<i64>,
    recordings: usize,
    /// Recordings the manifest says could not be included: (seq, why).
    missing: Vec<(i64, String)>,
}

/// Signatures and recordings, each against the event that holds its hash;
/// no per-event file that belongs to no event of the request.
fn check_attached(
    dir: &Path,
    files: &[String],
    manifest: &Manifest,
    mine: &[AuditRecord],
) -> Result<Attached, EvidenceError> {
    let id = manifest.request;
    let created: serde_json::Value = serde_json::from_str(&mine[0].detail).unwrap_or_default();
    let mut expected: Vec<String> = vec![];
    let mut out = Attached::default();
    for r in mine {
        let what = format!(
            "event #{} ({} by {})",
            r.seq,
            show(&r.action),
            show(&r.actor)
        );
        let detail: serde_json::Value = serde_json::from_str(&r.detail).unwrap_or_default();
        let is_decision = crate::identity::ssh_sign::DecisionKind::from_action(&r.action).is_some();
        match detail.get("signature") {
            None if is_decision => out.unsigned.push(r.seq),
            None => {}
            Some(s) => {
                let sig: crate::domain::SshSignature = serde_json::from_value(s.clone())
                    .map_err(|_| Invalid(format!("{what}: its signature is malformed")))?;
                let statement = decision_statement(&created, r, &detail, sig.signed_at)
                    .ok_or_else(|| {
                        Invalid(format!(
                            "{what}: carries a signature but is no signed decision"
                        ))
                    })?;
                expected.extend(check_signature(dir, files, r, &what, &sig, &statement)?);
                out.signatures += 1;
            }
        }
        if r.action == crate::domain::AuditAction::SessionRecorded {
            let name = recording_file(r.seq);
            if files.contains(&name) {
                let want = detail["sha256"].as_str().unwrap_or_default();
                let got = crate::audit::recordings::sha256_file(&dir.join(&name))
                    .map_err(io(name.to_string()))?
                    .0;
                if got != want {
                    return Err(Invalid(format!(
                        "{name} is not the recording audited in {what}: its SHA-256 is {got}, the event's is {}",
                        show(want)
                    )));
                }
                out.recordings += 1;
                expected.push(name);
            } else if let Some(why) = manifest.recordings_missing.get(&r.seq.to_string()) {
                out.missing.push((r.seq, show(why)));
            } else {
                return Err(Invalid(format!(
                    "{name}, the recording audited in {what}, is missing from the bundle"
                )));
            }
        }
    }
    for seq in manifest.recordings_missing.keys() {
        if !out.missing.iter().any(|(s, _)| &s.to_string() == seq) {
            return Err(Invalid(format!(
                "the manifest lists a missing recording for event #{}, which is no session.recorded event of REQ-{id}",
                show(seq)
            )));
        }
    }
    for f in files {
        let per_event = f.starts_with("signatures/") || f.starts_with("recordings/");
        if per_event && !expected.contains(f) {
            return Err(Invalid(format!(
                "{} belongs to no signed decision or recorded session of REQ-{id}",
                show(f)
            )));
        }
    }
    Ok(out)
}

/// One signed decision: its statement and signature files are the ones the
/// event records, and the signature verifies against the bundle's
/// allowed_signers. Returns the two files' names.
fn check_signature(
    dir: &Path,
    files: &[String],
    r: &AuditRecord,
    what: &str,
    sig: &crate::domain::SshSignature,
    statement: &str,
) -> Result<[String; 2], EvidenceError> {
    let (st, sf) = (statement_file(r.seq), signature_file(r.seq));
    for f in [&st, &sf] {
        if !files.contains(f) {
            return Err(Invalid(format!(
                "{what} is signed, but {f} is missing from the bundle"
            )));
        }
    }
    if read_small(dir, &st)? != statement.as_bytes() {
        return Err(Invalid(format!(
            "{st} is not the statement {what} signed (rebuilt from the events)"
        )));
    }
    if read_text(dir, &sf)?.trim() != sig.armored.trim() {
        return Err(Invalid(format!(
            "{sf} is not the signature recorded in {what}"
        )));
    }
    if !files.iter().any(|f| f == ALLOWED_SIGNERS) {
        return Err(Invalid(format!(
            "{what} is signed, but {ALLOWED_SIGNERS} is missing"
        )));
    }
    crate::identity::ssh_sign::verify(
        &dir.join(ALLOWED_SIGNERS),
        &r.actor,
        &sig.armored,
        statement,
        sig.signed_at,
    )
    .map_err(|source| EvidenceError::Signature {
        what: what.to_string(),
        source,
    })?;
    Ok([st, sf])
}

/// Every file against the manifest, and no file outside it.
fn check_against_manifest(
    dir: &Path,
    files: &[String],
    manifest: &Manifest,
) -> Result<(), EvidenceError> {
    for f in files.iter().filter(|f| *f != MANIFEST) {
        let Some(entry) = manifest.files.get(f) else {
            return Err(Invalid(format!("{} is not in the manifest", show(f))));
        };
        let bytes = std::fs::read(dir.join(f)).map_err(io(show(f)))?;
        if sha256_hex(&bytes) != entry.sha256 || bytes.len() as u64 != entry.bytes {
            return Err(Invalid(format!(
                "{} does not match its SHA-256 in the manifest: it was changed after the bundle was written",
                show(f)
            )));
        }
    }
    for f in manifest.files.keys() {
        if !files.contains(f) {
            return Err(Invalid(format!(
                "{} is listed in the manifest but missing from the bundle",
                show(f)
            )));
        }
    }
    Ok(())
}
