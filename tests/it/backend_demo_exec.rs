//! The demo and exec backends through the backend conformance suite.

use crate::support;

use breakglass::backend::{Backend, Credential, DemoBackend, ExecBackend, GrantSpec};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::backend_conformance::Target;

/// The demo backend's simulated target is a SQLite file; "down" replaces it with
/// a directory so every call fails, "hanging" holds an exclusive lock on it.
struct DemoTarget {
    dir: tempfile::TempDir,
    lock: Mutex<Option<rusqlite::Connection>>,
}

impl DemoTarget {
    fn new() -> Self {
        DemoTarget {
            dir: tempfile::tempdir().unwrap(),
            lock: Mutex::new(None),
        }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("target.sqlite")
    }
}

#[async_trait::async_trait]
impl Target for DemoTarget {
    fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(DemoBackend::new(self.path()))
    }
    fn hanging(&self) -> Arc<dyn Backend> {
        let p = self.dir.path().join("locked.sqlite");
        let c = rusqlite::Connection::open(&p).unwrap();
        c.execute_batch("CREATE TABLE IF NOT EXISTS leases (lease_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, role TEXT NOT NULL, expires_at TEXT NOT NULL); BEGIN EXCLUSIVE;").unwrap();
        *self.lock.lock().unwrap() = Some(c);
        Arc::new(DemoBackend::new(p))
    }
    fn scope(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    async fn usable(&self, _cred: &Credential, spec: &GrantSpec) -> bool {
        DemoBackend::new(self.path())
            .active_leases()
            .unwrap()
            .iter()
            .any(|(_, r)| *r == spec.request_id)
    }
    async fn set_down(&self, down: bool) {
        let away = self.dir.path().join("away.sqlite");
        if down {
            std::fs::rename(self.path(), &away).unwrap();
            std::fs::create_dir(self.path()).unwrap();
        } else {
            std::fs::remove_dir(self.path()).unwrap();
            std::fs::rename(&away, self.path()).unwrap();
        }
    }
}

/// The example plugin against its state dir; "down" removes its execute bit.
struct ExecTarget {
    dir: tempfile::TempDir,
}

impl ExecTarget {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("plugin.sh");
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/exec-plugin.sh"),
            &plugin,
        )
        .unwrap();
        std::fs::write(dir.path().join("hang.sh"), "#!/bin/sh\nexec sleep 60\n").unwrap();
        for f in ["plugin.sh", "hang.sh"] {
            std::fs::set_permissions(dir.path().join(f), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        ExecTarget { dir }
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn exec(&self, script: &str) -> Arc<dyn Backend> {
        Arc::new(ExecBackend::new(
            self.dir.path().join(script),
            vec!["--state".into(), self.state().display().to_string()],
            Duration::from_secs(2),
            vec![],
        ))
    }
}

#[async_trait::async_trait]
impl Target for ExecTarget {
    fn backend(&self) -> Arc<dyn Backend> {
        self.exec("plugin.sh")
    }
    fn hanging(&self) -> Arc<dyn Backend> {
        self.exec("hang.sh")
    }
    fn scope(&self) -> serde_json::Value {
        serde_json::json!({"service": "payments-api"})
    }
    async fn usable(&self, _cred: &Credential, spec: &GrantSpec) -> bool {
        let prefix = format!("lease-{}-", spec.request_id);
        std::fs::read_dir(self.state())
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            })
            .unwrap_or(false)
    }
    async fn set_down(&self, down: bool) {
        let mode = if down { 0o644 } else { 0o755 };
        std::fs::set_permissions(
            self.dir.path().join("plugin.sh"),
            std::fs::Permissions::from_mode(mode),
        )
        .unwrap();
    }
}

mod demo {
    use super::*;
    backend_conformance!(DemoTarget::new());
}

mod exec {
    use super::*;
    backend_conformance!(ExecTarget::new());
}
