//! The demo backend: a simulated target whose "accounts" are rows in a small
//! SQLite file, so separate processes (and tests) can see what is still granted.
//! It stores lease ids and expiries, never the credential.

use super::*;
use rusqlite::{params, Connection};
use std::path::PathBuf;

pub struct DemoBackend {
    path: PathBuf,
}

fn err(e: rusqlite::Error) -> BackendError {
    BackendError::Failed(format!("demo target: {e}"))
}

impl DemoBackend {
    pub fn new(path: PathBuf) -> Self {
        DemoBackend { path }
    }

    fn open(&self) -> Result<Connection, BackendError> {
        let c = Connection::open(&self.path).map_err(err)?;
        c.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS leases (lease_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, role TEXT NOT NULL, expires_at TEXT NOT NULL)",
        )
        .map_err(err)?;
        Ok(c)
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
        let c = self.open()?;
        let user = format!("bg_{}", spec.request_id.to_lowercase().replace('-', "_"));
        let lease_id = format!(
            "demo-{}-{}",
            spec.request_id,
            hex::encode(rand::random::<[u8; 4]>())
        );
        c.execute(
            "INSERT INTO leases (lease_id, request_id, role, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                lease_id,
                spec.request_id,
                spec.role,
                crate::domain::time::ts(spec.expires_at)
            ],
        )
        .map_err(err)?;
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
        // The file's lock and fsync block: on the blocking pool, so a sweeper's
        // other revocations run on meanwhile.
        let target = DemoBackend::new(self.path.clone());
        let (lease, request) = (spec.lease_id.clone(), spec.request_id.clone());
        let done = tokio::task::spawn_blocking(move || {
            let c = target.open()?;
            match &lease {
                Some(l) => c.execute("DELETE FROM leases WHERE lease_id = ?1", params![l]),
                None => c.execute("DELETE FROM leases WHERE request_id = ?1", params![request]),
            }
            .map_err(err)?;
            Ok(())
        })
        .await;
        done.unwrap_or_else(|e| Err(BackendError::Failed(format!("demo target: {e}"))))
    }

    async fn extend(
        &self,
        spec: &RevokeSpec,
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let c = self.open()?;
        c.execute(
            "UPDATE leases SET expires_at = ?2 WHERE request_id = ?1",
            params![spec.request_id, crate::domain::time::ts(expires_at)],
        )
        .map_err(err)?;
        Ok(())
    }

    async fn rotate(&self, _role: &str, _scope: &serde_json::Value) -> Result<(), BackendError> {
        Ok(())
    }

    async fn check(&self) -> Result<String, BackendError> {
        let n = self.active_leases()?.len();
        Ok(format!(
            "demo target {} ({n} active lease(s))",
            self.path.display()
        ))
    }
}
