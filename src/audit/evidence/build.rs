//! Writing a bundle from the store. The caller (the engine) has verified the
//! whole chain first, so a fresh checkpoint never signs a broken log.

use super::error::{io, EvidenceError::Invalid};
use super::*;
use crate::audit::checkpoint::Signer;
use crate::audit::{export_line, AuditRecord};
use crate::domain::RequestId;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct BuildOptions<'a> {
    /// Signs a checkpoint of the bundle's last event (None: no key configured).
    pub signer: Option<&'a Signer>,
    /// With signed approvals: the allowed_signers file the signatures verify against.
    pub allowed_signers: Option<&'a Path>,
    /// When the bundle is written (store timestamp form).
    pub now: String,
}

/// What was written, for the front end to report.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Built {
    pub dir: PathBuf,
    pub request: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub request_events: usize,
    pub signatures: usize,
    pub recordings: usize,
    pub recordings_missing: usize,
    pub checkpoint: bool,
    pub no_checkpoint: Option<String>,
}

/// What a bundle is read from: the audit log (the store implements it). Errors
/// are the store's, passed through whole.
pub trait AuditLog {
    /// The newest event's (seq, hash).
    fn audit_head(&self) -> Result<(i64, String), LogError>;
    /// Up to `limit` events from `from` on, in order.
    fn audit_range(&self, from: i64, limit: usize) -> Result<Vec<AuditRecord>, LogError>;
    /// The events of one request with `action`, oldest first.
    fn request_events(
        &self,
        id: RequestId,
        action: AuditAction,
    ) -> Result<Vec<AuditRecord>, LogError>;
}

/// Writes the bundle for `id` into `dir` (created 0700; an existing dir must be
/// empty). On failure nothing of the bundle is left behind.
pub fn write<L: AuditLog + ?Sized>(
    store: &L,
    id: RequestId,
    dir: &Path,
    opts: &BuildOptions,
) -> Result<Built, EvidenceError> {
    let created_dir = prepare_dir(dir)?;
    let r = write_into(store, id, dir, opts);
    if r.is_err() {
        // The dir was empty or ours: nothing but the bundle is in it.
        if created_dir {
            let _ = std::fs::remove_dir_all(dir);
        } else if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
    r
}

/// Creates `dir` (0700) or accepts an existing empty one (made 0700). True when
/// it was created here.
pub(super) fn prepare_dir(dir: &Path) -> Result<bool, EvidenceError> {
    let shown = dir.display();
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mut entries = std::fs::read_dir(dir).map_err(io(shown.to_string()))?;
            if entries.next().is_some() {
                return Err(Invalid(format!(
                    "{shown} is not empty; an evidence bundle is written into a new or empty directory, never over one"
                )));
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(shown.to_string()))?;
            Ok(false)
        }
        Ok(_) => Err(Invalid(format!("{shown} exists and is not a directory"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(shown.to_string()))?;
            Ok(true)
        }
        Err(source) => Err(EvidenceError::Io {
            what: shown.to_string(),
            source,
        }),
    }
}

fn create(dir: &Path, name: &str) -> Result<std::fs::File, EvidenceError> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(parent)
                .map_err(io(format!("{}", parent.display())))?;
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(format!("{}", path.display())))
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), EvidenceError> {
    let mut f = create(dir, name)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(format!("{}", dir.join(name).display())))
}

fn write_into<L: AuditLog + ?Sized>(
    store: &L,
    id: RequestId,
    dir: &Path,
    opts: &BuildOptions,
) -> Result<Built, EvidenceError> {
    let created = store
        .request_events(id, AuditAction::RequestCreated)
        .map_err(EvidenceError::Log)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Invalid(format!(
                "{id} has no request.created event in the audit log"
            ))
        })?;
    let first = created.seq;
    let mine = write_events(store, id, first, dir)?;
    let last = mine
        .last()
        .expect("request.created is the request's")
        .clone();

    let mut manifest = Manifest {
        format: FORMAT.into(),
        generator: generator(),
        request: id.0,
        written_at: opts.now.clone(),
        first_seq: first,
        last_seq: last.seq,
        no_checkpoint: None,
        recordings_missing: BTreeMap::new(),
        files: BTreeMap::new(),
    };

    match opts.signer {
        Some(s) => {
            let cp = s.sign(last.seq, &last.hash, &opts.now);
            let text = serde_json::to_string_pretty(&cp).expect("a checkpoint serialises");
            put(dir, CHECKPOINT, format!("{text}\n").as_bytes())?;
            put(dir, PUBLIC_KEY, format!("{}\n", s.public_hex()).as_bytes())?;
        }
        None => {
            manifest.no_checkpoint = Some(
                "no checkpoint key is configured ([audit] checkpoint_key_file), so no signed checkpoint covers these events"
                    .into(),
            )
        }
    }

    let (signatures, recordings) = write_attached(dir, opts, &created, &mine, &mut manifest)?;

    let summary = summary::render(&manifest, &mine, opts.signer.map(|s| s.key_id()));
    put(dir, SUMMARY, summary.as_bytes())?;
    manifest.files = hash_files(dir)?;
    let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
    put(dir, MANIFEST, format!("{text}\n").as_bytes())?;

    Ok(Built {
        dir: dir.to_path_buf(),
        request: id.0,
        first_seq: first,
        last_seq: last.seq,
        request_events: mine.len(),
        signatures,
        recordings,
        recordings_missing: manifest.recordings_missing.len(),
        checkpoint: manifest.no_checkpoint.is_none(),
        no_checkpoint: manifest.no_checkpoint.clone(),
    })
}

/// Streams the log from `first` to its head now into events.jsonl, then cuts
/// it after the request's last event: a snapshot, whatever is appended
/// meanwhile. Returns the request's events.
fn write_events<L: AuditLog + ?Sized>(
    store: &L,
    id: RequestId,
    first: i64,
    dir: &Path,
) -> Result<Vec<AuditRecord>, EvidenceError> {
    let store_err = EvidenceError::Log;
    let (head, _) = store.audit_head().map_err(store_err)?;
    let events_path = dir.join(EVENTS);
    let mut out = std::io::BufWriter::new(create(dir, EVENTS)?);
    let events_err = |source| EvidenceError::Io {
        what: events_path.display().to_string(),
        source,
    };
    let mut mine: Vec<AuditRecord> = vec![];
    let mut written = 0u64;
    let mut cut = 0u64;
    let mut from = first;
    'read: while from <= head {
        let batch = store.audit_range(from, 10_000).map_err(store_err)?;
        let Some(last) = batch.last() else { break };
        from = last.seq + 1;
        for r in batch {
            if r.seq > head {
                break 'read;
            }
            let mut line = export_line(&r);
            line.push(b'\n');
            out.write_all(&line).map_err(events_err)?;
            written += line.len() as u64;
            if r.request_id == Some(id.0) {
                cut = written;
                mine.push(r);
            }
        }
    }
    let f = out.into_inner().map_err(|e| events_err(e.into_error()))?;
    f.set_len(cut)
        .and_then(|()| f.sync_all())
        .map_err(events_err)?;
    Ok(mine)
}

/// Each signed decision's statement and signature (and the allowed_signers
/// lines that verify them), and each recording, copied in. Returns how many of
/// each; a recording that cannot be included is noted in the manifest.
fn write_attached(
    dir: &Path,
    opts: &BuildOptions,
    created: &AuditRecord,
    mine: &[AuditRecord],
    manifest: &mut Manifest,
) -> Result<(usize, usize), EvidenceError> {
    let created_detail: serde_json::Value =
        serde_json::from_str(&created.detail).unwrap_or_default();
    let mut signers_used: Vec<String> = vec![];
    let mut signatures = 0;
    let mut recordings = 0;
    for r in mine {
        let detail: serde_json::Value = serde_json::from_str(&r.detail).unwrap_or_default();
        if let Some(sig) = detail
            .get("signature")
            .and_then(|s| serde_json::from_value::<crate::domain::SshSignature>(s.clone()).ok())
        {
            let Some(statement) = decision_statement(&created_detail, r, &detail, sig.signed_at)
            else {
                continue;
            };
            put(dir, &statement_file(r.seq), statement.as_bytes())?;
            put(dir, &signature_file(r.seq), sig.armored.as_bytes())?;
            signatures += 1;
            if let Some(allowed) = opts.allowed_signers {
                for line in signer_lines(allowed, &r.actor, &sig, &statement)? {
                    if !signers_used.contains(&line) {
                        signers_used.push(line);
                    }
                }
            }
        }
        if r.action == crate::domain::AuditAction::SessionRecorded {
            match copy_recording(dir, r, &detail)? {
                Ok(()) => recordings += 1,
                Err(why) => {
                    manifest.recordings_missing.insert(r.seq.to_string(), why);
                }
            }
        }
    }
    if signatures > 0 {
        let mut text = String::from(
            "# The allowed_signers lines (from the configured file when the bundle was written)\n\
             # that verify this bundle's signatures; compare them with the keys you trust.\n",
        );
        for l in &signers_used {
            text.push_str(l);
            text.push('\n');
        }
        put(dir, ALLOWED_SIGNERS, text.as_bytes())?;
    }

    Ok((signatures, recordings))
}

/// Copies the recording a `session.recorded` event names, hashing what is
/// copied. `Ok(Err(why))`: it cannot be included (gone, or altered since it
/// was audited), which the bundle states rather than hides.
fn copy_recording(
    dir: &Path,
    r: &AuditRecord,
    detail: &serde_json::Value,
) -> Result<Result<(), String>, EvidenceError> {
    let (Some(src), Some(want)) = (detail["path"].as_str(), detail["sha256"].as_str()) else {
        return Ok(Err("the event names no recording and hash".into()));
    };
    let shown = crate::sanitize::line(src, 300);
    let mut input = match std::fs::File::open(src) {
        Ok(f) => f,
        Err(e) => return Ok(Err(format!("the recording {shown} cannot be read: {e}"))),
    };
    let name = recording_file(r.seq);
    let mut out = create(dir, &name)?;
    let mut hasher = HashingWriter {
        inner: &mut out,
        hash: <sha2::Sha256 as sha2::Digest>::new(),
    };
    let copied = std::io::copy(&mut input, &mut hasher);
    let got = hex::encode(sha2::Digest::finalize(hasher.hash));
    match copied {
        Ok(_) if got == want => {
            out.sync_all()
                .map_err(io(format!("{}", dir.join(&name).display())))?;
            Ok(Ok(()))
        }
        other => {
            drop(out);
            std::fs::remove_file(dir.join(&name))
                .map_err(io(format!("{}", dir.join(&name).display())))?;
            Ok(Err(match other {
                Err(e) => format!("the recording {shown} cannot be read: {e}"),
                Ok(_) => format!(
                    "the recording {shown} was altered after it was audited (SHA-256 {got}, audited {})",
                    crate::sanitize::line(want, 64)
                ),
            }))
        }
    }
}

struct HashingWriter<'a> {
    inner: &'a mut std::fs::File,
    hash: sha2::Sha256,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.hash, &buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The lines of `allowed` that on their own verify `signer`'s signature: the
/// ones an auditor needs, not the whole team's keys.
fn signer_lines(
    allowed: &Path,
    signer: &str,
    sig: &crate::domain::SshSignature,
    statement: &str,
) -> Result<Vec<String>, EvidenceError> {
    let text = std::fs::read_to_string(allowed)
        .map_err(io(format!("allowed_signers {}", allowed.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix("breakglass-evidence-")
        .tempdir()
        .map_err(io("cannot create a private temp dir"))?;
    let one = tmp.path().join("allowed_signers");
    let mut out = vec![];
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || !may_name(t, signer) {
            continue;
        }
        std::fs::write(&one, format!("{t}\n")).map_err(io(one.display().to_string()))?;
        if crate::identity::ssh_sign::verify(&one, signer, &sig.armored, statement, sig.signed_at)
            .is_ok()
        {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

/// Whether a line's principals could match `signer` (exactly, or by a pattern):
/// only those are tried with ssh-keygen.
fn may_name(line: &str, signer: &str) -> bool {
    let principals = match line.strip_prefix('"') {
        Some(rest) => rest.split('"').next().unwrap_or_default(),
        None => line.split_whitespace().next().unwrap_or_default(),
    };
    principals
        .split(',')
        .any(|p| p == signer || p.contains(['*', '?']))
}

/// SHA-256 and size of every regular file under `dir` (manifest.json aside).
pub(super) fn hash_files(dir: &Path) -> Result<BTreeMap<String, FileEntry>, EvidenceError> {
    let mut out = BTreeMap::new();
    for name in super::verify::list_files(dir)? {
        if name == MANIFEST {
            continue;
        }
        let bytes =
            std::fs::read(dir.join(&name)).map_err(io(format!("{}", dir.join(&name).display())))?;
        out.insert(
            name,
            FileEntry {
                sha256: sha256_hex(&bytes),
                bytes: bytes.len() as u64,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_matched_before_ssh_keygen_runs() {
        assert!(may_name("bob ssh-ed25519 AAAA", "bob"));
        assert!(may_name("alice,bob ssh-ed25519 AAAA", "bob"));
        assert!(may_name("\"bob,carol\" ssh-ed25519 AAAA", "carol"));
        assert!(may_name("*@example.com ssh-ed25519 AAAA", "bob"));
        assert!(!may_name("bobby ssh-ed25519 AAAA", "bob"));
    }
}
