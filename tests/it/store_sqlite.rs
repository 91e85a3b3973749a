//! The SQLite store through the conformance suite, plus what is SQLite's own.

use crate::support;

use breakglass::store::{SqliteStore, Store, StoreError};
use std::sync::Arc;

fn make() -> (tempfile::TempDir, Arc<dyn Store>) {
    let d = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&d.path().join("store.sqlite")).unwrap();
    (d, Arc::new(s))
}

store_conformance!(make());

#[test]
fn schema_is_versioned_and_data_survives_reopen() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.sqlite");
    let s = SqliteStore::open(&path).unwrap();
    let r = support::store_conformance::insert(&s, "r1", "alice");
    drop(s);
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.get(r.id).unwrap().unwrap(), r);
    let c = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |x| x.get(0))
        .unwrap();
    assert_eq!(v, breakglass::store::sqlite::SCHEMA_VERSION);
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |x| x.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A store written by a newer breakglass is not touched.
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn waiters_see_commits_from_other_handles() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.sqlite");
    let a: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let b: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    support::store_conformance::waiters_see_commits_from_other_handles(a, b);
}

#[test]
fn racing_handles_serialise() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.sqlite");
    let handles = (0..6)
        .map(|_| Arc::new(SqliteStore::open(&path).unwrap()) as Arc<dyn Store>)
        .collect();
    support::store_conformance::racing_handles_serialise(handles);
}

#[test]
fn processes_opening_a_new_store_at_once_all_succeed() {
    // Switching a new file to WAL takes an exclusive lock that does not wait on
    // the busy handler: a console and a CLI starting together failed with
    // "database is locked" before the switch was retried.
    for round in 0..20 {
        let (_tmp, cfg) = support::demo_dir();
        let runs: Vec<_> = (0..6)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_breakglass"))
                    .arg("--config")
                    .arg(&cfg)
                    .arg("roles")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for r in runs {
            let o = r.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}
