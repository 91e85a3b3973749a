//! The PostgreSQL store through the conformance suite, against a throwaway
//! cluster (tests/it/support/pg.rs); every case gets its own database. Plus what
//! is PostgreSQL's own: schema version, live updates over LISTEN/NOTIFY, racing
//! connections, the append-only audit table and the server-recorded login.

use crate::support;

use breakglass::store::{PostgresStore, Store, StoreError};
use std::sync::Arc;
use support::pg;

struct Db {
    url: String,
}

fn fresh() -> Db {
    let server = pg::shared();
    let db = server.create_database_blocking("store");
    Db {
        url: server.admin_url(&db),
    }
}

fn make() -> (Db, Arc<dyn Store>) {
    let db = fresh();
    let s = PostgresStore::open(&db.url).unwrap();
    (db, Arc::new(s))
}

store_conformance!(make());

#[test]
fn schema_is_versioned_and_data_survives_reopen() {
    let db = fresh();
    let s = PostgresStore::open(&db.url).unwrap();
    assert_eq!(
        s.schema_version().unwrap(),
        breakglass::store::postgres::SCHEMA_VERSION
    );
    let r = support::store_conformance::insert(&s, "r1", "alice");
    drop(s);
    // Reopening (and opening twice at once) migrates nothing and loses nothing.
    let s = PostgresStore::open(&db.url).unwrap();
    let s2 = PostgresStore::open(&db.url).unwrap();
    assert_eq!(s.get(r.id).unwrap().unwrap(), r);
    assert_eq!(s2.get(r.id).unwrap().unwrap(), r);
    assert!(s.describe().starts_with("postgres postgres@127.0.0.1:"));
    assert!(!s.describe().contains(&pg::shared().password));
    assert_eq!(s.session_user().as_deref(), Some("postgres"));
    // A store written by a newer breakglass is not touched.
    let mut c = pg::shared().admin_blocking(db.url.rsplit('/').next().unwrap());
    c.execute(
        "UPDATE breakglass_meta SET value = '99' WHERE key = 'schema_version'",
        &[],
    )
    .unwrap();
    assert!(matches!(
        PostgresStore::open(&db.url),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn waiters_see_commits_from_other_handles() {
    let db = fresh();
    let a: Arc<dyn Store> = Arc::new(PostgresStore::open(&db.url).unwrap());
    let b: Arc<dyn Store> = Arc::new(PostgresStore::open(&db.url).unwrap());
    support::store_conformance::waiters_see_commits_from_other_handles(a, b);
}

#[test]
fn racing_handles_serialise() {
    let db = fresh();
    let handles = (0..8)
        .map(|_| Arc::new(PostgresStore::open(&db.url).unwrap()) as Arc<dyn Store>)
        .collect();
    support::store_conformance::racing_handles_serialise(handles);
}

#[test]
fn the_audit_table_is_append_only_and_records_the_login() {
    let db = fresh();
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let s = PostgresStore::open(&db.url).unwrap();
    support::store_conformance::insert(&s, "r1", "alice");
    let mut c = pg::shared().admin_blocking(&name);
    for sql in [
        "UPDATE audit SET actor = 'mallory'",
        "DELETE FROM audit",
        "TRUNCATE audit",
    ] {
        let e = c.batch_execute(sql).unwrap_err();
        assert!(
            e.as_db_error()
                .is_some_and(|d| d.message().contains("append-only")),
            "{sql}: {e}"
        );
    }
    // The server, not the client, says which login wrote a row.
    let writer = pg::unique("bg_writer");
    c.batch_execute(&format!(
        "CREATE ROLE {writer} LOGIN PASSWORD 'pw'; \
         GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {writer}; \
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {writer}"
    ))
    .unwrap();
    let url = pg::shared().url(&writer, "pw", &name);
    let mut w = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    w.execute(
        "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash, db_login) \
         VALUES (100, 'x', 'x', 'x', '{}', 'x', 'x', 'someone-else')",
        &[],
    )
    .unwrap();
    let login: String = c
        .query_one("SELECT db_login FROM audit WHERE seq = 100", &[])
        .unwrap()
        .get(0);
    assert_eq!(login, writer);
    assert!(w.batch_execute("UPDATE audit SET actor = 'x'").is_err());
    // A store opened with that login reports it as the session user.
    let ws = PostgresStore::open(&url).unwrap();
    assert_eq!(ws.session_user().as_deref(), Some(writer.as_str()));
    support::store_conformance::insert(&ws, "r2", "bob");
}

#[test]
fn concurrent_first_opens_migrate_once() {
    for _ in 0..3 {
        let db = fresh();
        let stores: Vec<_> = (0..6)
            .map(|_| {
                let url = db.url.clone();
                std::thread::spawn(move || PostgresStore::open(&url))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        for s in &stores {
            assert_eq!(
                s.schema_version().unwrap(),
                breakglass::store::postgres::SCHEMA_VERSION
            );
        }
    }
}

/// A batch does not wait for a request another transaction is changing (another
/// sweeper's batch): it reports a conflict for it and commits the rest.
#[test]
fn a_batch_skips_a_request_another_transaction_holds() {
    use breakglass::domain::{lifecycle, Owner};
    use breakglass::store::Transition;
    use support::store_conformance::{activate, insert};
    let db = fresh();
    let s = PostgresStore::open(&db.url).unwrap();
    let a = activate(&s, insert(&s, "r1", "alice"));
    let b = activate(&s, insert(&s, "r2", "alice"));
    let mut other = pg::shared().admin_blocking(db.url.rsplit('/').next().unwrap());
    let mut held = other.transaction().unwrap();
    held.execute(
        "SELECT 1 FROM requests WHERE id = $1 FOR UPDATE",
        &[&b.id.0],
    )
    .unwrap();
    let now = chrono::Utc::now();
    let revoke = |r: &breakglass::domain::Request| {
        let mut request = r.clone();
        let owner = Owner {
            host: "test".into(),
            pid: 1,
        };
        let event =
            lifecycle::begin_revoke(&mut request, "sweeper", "expired", now, now, owner).unwrap();
        Transition {
            request,
            event,
            alerts: vec![],
        }
    };
    let started = std::time::Instant::now();
    let out = s.commit_batch(&[revoke(&a), revoke(&b)], now).unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "it waited"
    );
    assert!(out[0].is_ok());
    assert!(matches!(out[1], Err(StoreError::Conflict(id)) if id == b.id));
    held.rollback().unwrap();
    let out = s.commit_batch(&[revoke(&b)], now).unwrap();
    assert!(out[0].is_ok(), "free again: {:?}", out[0]);
}
