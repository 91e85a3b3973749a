//! A vendor session's recording, kept where the engine runs (the broker, or
//! this process in direct mode): the requester's `shell` streams it here in
//! pieces while the session runs, closes it once (its SHA-256 goes into the
//! audit trail), and the people who may replay it read it back from here.

use super::*;
use crate::audit::recordings::sha256_file;
use crate::backend::Credential;
use crate::domain::State;
use std::io::Write;
use std::path::PathBuf;

/// What `breakglass shell` needs to run the session.
#[derive(Debug)]
pub struct ShellSession {
    pub request: Request,
    pub credential: Credential,
    /// The role's `shell_command`, when it sets one.
    pub shell_command: Option<String>,
    pub record_input: bool,
    /// Where the engine keeps the recording (on the broker's host, through one).
    pub recording: PathBuf,
}

/// A closed recording as audited.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Recording {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
}

/// Largest recording sent back for a replay.
pub const MAX_REPLAY_BYTES: u64 = 40 * 1024 * 1024;

impl Engine {
    fn recordings_dir(&self) -> Result<&std::path::Path> {
        self.recordings_dir
            .as_deref()
            .ok_or_else(|| Error::Config("this engine keeps no recordings".into()))
    }

    pub(super) fn recording_path(&self, id: RequestId) -> Result<PathBuf> {
        Ok(self.recordings_dir()?.join(format!("{id}.cast")))
    }

    /// Activates a vendor request for its recorded session and starts an empty
    /// recording (never over an existing one: an audited file would stop verifying).
    pub async fn open_shell(&self, who: &str, id: RequestId) -> Result<ShellSession> {
        let path = self.recording_path(id)?;
        if path.exists() {
            return Err(refusal(
                RefusalKind::State,
                format!("{id} already has a recorded session"),
            ));
        }
        let (request, credential) = self.activate_for_shell(who, id).await?;
        let vp = self
            .vendor_policy_of(&request)
            .cloned()
            .expect("activate_for_shell checked the role");
        let dir = self.recordings_dir()?.to_path_buf();
        let recording = path.clone();
        let created = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map(drop)
        })
        .await
        .expect("creating a recording does not panic");
        if let Err(e) = created {
            let _ = self
                .revoke(who, id, "vendor session could not be recorded")
                .await;
            return Err(Error::Config(format!(
                "cannot create the session recording: {e}"
            )));
        }
        Ok(ShellSession {
            request,
            credential,
            shell_command: vp.shell_command.clone(),
            record_input: vp.record_input,
            recording,
        })
    }

    /// Only the requester writes their session's recording, and only until it
    /// is closed (audited).
    async fn writable_recording(&self, who: &str, id: RequestId) -> Result<PathBuf> {
        let req = self.load(id).await?;
        if self.vendor_policy_of(&req).is_none() || req.requester != who {
            return Err(refusal_because(
                RefusalKind::Policy,
                lifecycle::Reason::NotPermitted,
                format!("only the requester of vendor request {id} records its session"),
            ));
        }
        if !self
            .events_of(id, AuditAction::SessionRecorded)
            .await?
            .is_empty()
        {
            return Err(refusal(
                RefusalKind::State,
                format!("the recording of {id} is closed and audited"),
            ));
        }
        let path = self.recording_path(id)?;
        if !path.exists() {
            return Err(refusal(
                RefusalKind::State,
                format!("{id} has no session being recorded"),
            ));
        }
        Ok(path)
    }

    /// Appends a piece of the session's asciicast.
    pub async fn append_recording(&self, who: &str, id: RequestId, bytes: Vec<u8>) -> Result<()> {
        let path = self.writable_recording(who, id).await?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
            f.write_all(&bytes)
        })
        .await
        .expect("appending does not panic")
        .map_err(|e| Error::Config(format!("writing the recording: {e}")))
    }

    /// Closes the recording: synced, hashed, and its hash audited.
    pub async fn close_recording(&self, who: &str, id: RequestId) -> Result<Recording> {
        let path = self.writable_recording(who, id).await?;
        let p = path.clone();
        let (sha256, bytes) =
            tokio::task::spawn_blocking(move || -> std::io::Result<(String, u64)> {
                std::fs::File::open(&p)?.sync_all()?;
                sha256_file(&p)
            })
            .await
            .expect("hashing does not panic")
            .map_err(|e| Error::Config(format!("reading back the recording: {e}")))?;
        self.audit_note(
            id,
            AuditAction::SessionRecorded,
            who,
            serde_json::json!({"path": path, "sha256": sha256, "bytes": bytes}),
        )
        .await?;
        Ok(Recording {
            path,
            sha256,
            bytes,
        })
    }

    /// A recording its session never closed (the `shell` process killed
    /// mid-session), once the access has ended: hashed and audited now, marked
    /// interrupted, so it can be replayed and the request certified instead of
    /// the role staying locked. None when there is nothing to close.
    pub(super) async fn close_interrupted(&self, id: RequestId) -> Result<Option<Recording>> {
        let req = self.load(id).await?;
        let ended = matches!(
            req.state,
            State::Ended | State::Reviewed | State::Certified | State::Failed
        );
        if self.vendor_policy_of(&req).is_none()
            || !ended
            || !self
                .events_of(id, AuditAction::SessionRecorded)
                .await?
                .is_empty()
        {
            return Ok(None);
        }
        let path = self.recording_path(id)?;
        let p = path.clone();
        let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<(String, u64)> {
            std::fs::File::open(&p)?.sync_all()?;
            sha256_file(&p)
        })
        .await
        .expect("hashing does not panic");
        let Ok((sha256, bytes)) = hashed else {
            return Ok(None);
        };
        self.audit_note(
            id,
            AuditAction::SessionRecorded,
            "breakglass",
            serde_json::json!({
                "path": path, "sha256": sha256, "bytes": bytes,
                "interrupted": "the session ended without closing its recording",
            }),
        )
        .await?;
        Ok(Some(Recording {
            path,
            sha256,
            bytes,
        }))
    }

    /// The recording of `id` for `who` to replay, checked against its audited
    /// hash. `Err(NotFound)` without one; `None` bytes: the file is missing, too
    /// large, or does not match (the audit trail no longer vouches for it).
    pub async fn read_recording(
        &self,
        who: &str,
        id: RequestId,
    ) -> Result<(Recording, Option<Vec<u8>>)> {
        self.may_replay(who, id).await?;
        self.close_interrupted(id).await?;
        let (path, want) = self.recording_of(id).await?;
        let p = path.clone();
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let len = std::fs::metadata(&p)?.len();
            if len > MAX_REPLAY_BYTES {
                return Err(std::io::Error::other(format!(
                    "{len} bytes, over the {} MiB a replay reads",
                    MAX_REPLAY_BYTES / (1024 * 1024)
                )));
            }
            std::fs::read(&p)
        })
        .await
        .expect("reading does not panic");
        let bytes = read.ok().filter(|b| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(b)) == want
        });
        Ok((
            Recording {
                path,
                sha256: want,
                bytes: bytes.as_ref().map_or(0, |b| b.len() as u64),
            },
            bytes,
        ))
    }

    /// Records that `who` watched the session of `id` (certifying needs it).
    pub async fn note_replayed(&self, who: &str, id: RequestId, speed: f64) -> Result<()> {
        self.may_replay(who, id).await?;
        let (path, sha) = self.recording_of(id).await?;
        self.audit_note(
            id,
            AuditAction::SessionReplayed,
            who,
            serde_json::json!({"path": path, "sha256": sha, "speed": speed}),
        )
        .await
    }
}
