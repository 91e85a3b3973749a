//! The demo backend: a simulated target whose "accounts" are rows in a small
//! SQLite file, so separate processes (and tests) can see what is still granted.
//! It stores lease ids and expiries, never the credential.

use super::*;
use rusqlite::{params, Connection};
use std::path::PathBuf;
use std::sync::Arc;

pub struct DemoBackend {
    target: Arc<Target>,
}

/// The target file and the connection this backend writes through, opened on
/// the first write and kept while the path names the same file (device and
/// inode): a target moved away or replaced is opened again, or found gone.
struct Target {
    path: PathBuf,
    writer: std::sync::Mutex<Option<(Connection, (u64, u64))>>,
}

fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn err(e: rusqlite::Error) -> BackendError {
    BackendError::Failed(format!("demo target: {e}"))
}

fn open(path: &std::path::Path) -> Result<Connection, BackendError> {
    let c = Connection::open(path).map_err(err)?;
    c.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS leases (lease_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, role TEXT NOT NULL, expires_at TEXT NOT NULL)",
    )
    .map_err(err)?;
    Ok(c)
}

impl Target {
    /// Runs one write on the target, one writer at a time across threads and
    /// processes. Writers queue on a lock file the kernel wakes them from as
    /// soon as it is free, rather than in SQLite's busy handler, which sleeps
    /// and retries: with many revocations in flight (a sweeper has up to
    /// `revoke_concurrency`) its sleeps, not the writes, took the time. The file
    /// is in WAL mode with `synchronous = NORMAL`: a write survives the crash
    /// of any process (what the crash tests need of a simulated target), not
    /// of the machine, and costs no disk sync.
    fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, BackendError> {
        use crate::sync::LockExt;
        use nix::fcntl::{Flock, FlockArg};
        let mut writer = self.writer.locked();
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| BackendError::Failed(format!("demo target lock: {e}")))?;
        let _held = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| BackendError::Failed(format!("demo target lock: {e}")))?;
        let id = file_id(&self.path);
        if writer.as_ref().is_none_or(|(_, kept)| Some(*kept) != id) {
            *writer = None;
            let c = open(&self.path)?;
            let mode: String = c
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .map_err(err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                // A reader may hold the file for a moment: the mode is only
                // what a write costs, so it is tried again at the next open.
                let _ = c.pragma_update(None, "journal_mode", "WAL");
            }
            c.pragma_update(None, "synchronous", "NORMAL")
                .map_err(err)?;
            let id = file_id(&self.path).ok_or_else(|| {
                BackendError::Failed(format!("demo target {} is gone", self.path.display()))
            })?;
            *writer = Some((c, id));
        }
        let (c, _) = writer.as_ref().expect("opened above");
        match f(c) {
            Ok(v) => Ok(v),
            Err(e) => {
                // A broken connection is not kept.
                *writer = None;
                Err(err(e))
            }
        }
    }
}

impl DemoBackend {
    pub fn new(path: PathBuf) -> Self {
        DemoBackend {
            target: Arc::new(Target {
                path,
                writer: Default::default(),
            }),
        }
    }

    fn open(&self) -> Result<Connection, BackendError> {
        open(&self.target.path)
    }

    /// One write on the blocking pool (the file's lock and its writes block),
    /// so a sweeper's other revocations run on meanwhile.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, BackendError> {
        let target = self.target.clone();
        tokio::task::spawn_blocking(move || target.write(f))
            .await
            .unwrap_or_else(|e| Err(BackendError::Failed(format!("demo target: {e}"))))
    }

    /// Lease ids the simulated target still honours (for tests and `check`).
    pub fn active_leases(&self) -> Result<Vec<(String, String)>, BackendError> {
        let c = self.open()?;
        let mut st = c
            .prepare("SELECT lease_id, request_id FROM leases ORDER BY lease_id")
            .map_err(err)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?;
        rows.map(|r| r.map_err(err)).collect()
    }
}

#[async_trait::async_trait]
impl Backend for DemoBackend {
    fn kind(&self) -> &'static str {
        "demo"
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError> {
        let user = format!("bg_{}", spec.request_id.to_lowercase().replace('-', "_"));
        let lease_id = format!(
            "demo-{}-{}",
            spec.request_id,
            hex::encode(rand::random::<[u8; 4]>())
        );
        let row = (
            lease_id.clone(),
            spec.request_id.clone(),
            spec.role.clone(),
            crate::domain::time::ts(spec.expires_at),
        );
        self.write(move |c| {
            c.execute(
                "INSERT INTO leases (lease_id, request_id, role, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![row.0, row.1, row.2, row.3],
            )
        })
        .await?;
        Ok(Grant {
            lease_id,
            expires_at: Some(spec.expires_at),
            credential: Credential(vec![
                ("username".into(), SecretString::from(user)),
                ("password".into(), random_secret(32)),
            ]),
        })
    }

    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError> {
        let (lease, request) = (spec.lease_id.clone(), spec.request_id.clone());
        self.write(move |c| match &lease {
            Some(l) => c.execute("DELETE FROM leases WHERE lease_id = ?1", params![l]),
            None => c.execute("DELETE FROM leases WHERE request_id = ?1", params![request]),
        })
        .await?;
        Ok(())
    }

    async fn extend(
        &self,
        spec: &RevokeSpec,
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let (request, until) = (spec.request_id.clone(), crate::domain::time::ts(expires_at));
        self.write(move |c| {
            c.execute(
                "UPDATE leases SET expires_at = ?2 WHERE request_id = ?1",
                params![request, until],
            )
        })
        .await?;
        Ok(())
    }

    async fn rotate(&self, _role: &str, _scope: &serde_json::Value) -> Result<(), BackendError> {
        Ok(())
    }

    /// The simulated target accepts the credential while its lease row is
    /// there (revocation and the sweeper's expiry delete it) and the user is the one issued for the request.
    async fn probe(
        &self,
        spec: &RevokeSpec,
        credential: &Credential,
    ) -> Result<String, BackendError> {
        let user = format!("bg_{}", spec.request_id.to_lowercase().replace('-', "_"));
        if credential.get("username") != Some(user.as_str()) || credential.get("password").is_none()
        {
            return Err(BackendError::Failed(format!(
                "demo target: login refused: not the user issued for {}",
                spec.request_id
            )));
        }
        let lease = spec.lease_id.clone().unwrap_or_default();
        let c = self.open()?;
        let live: i64 = c
            .query_row(
                "SELECT count(*) FROM leases WHERE lease_id = ?1",
                params![lease],
                |r| r.get(0),
            )
            .map_err(err)?;
        if live == 0 {
            return Err(BackendError::Failed(format!(
                "demo target: login refused: {user} has no live lease"
            )));
        }
        Ok(format!("demo target: {user} logged in"))
    }

    async fn check(&self) -> Result<String, BackendError> {
        let n = self.active_leases()?.len();
        Ok(format!(
            "demo target {} ({n} active lease(s))",
            self.target.path.display()
        ))
    }
}
