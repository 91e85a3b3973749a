//! The team store: PostgreSQL, shared by every console, CLI and daemon replica of
//! a team.
//!
//! The `Store` trait is synchronous and is called from inside tokio tasks, where
//! the sync `postgres` client (which runs its own small runtime) must not run. So
//! each `PostgresStore` owns one worker thread that owns the connection and runs
//! boxed jobs sent over a channel, answering on a one-shot channel; callers block
//! only on that answer, as they would on SQLite's file lock. A second thread,
//! started on first use, LISTENs for `breakglass_changes` so `wait_for_change`
//! wakes on a commit made anywhere.
//!
//! Same semantics as SQLite, under concurrency between hosts:
//! - every transition is one transaction: `SELECT ... FOR UPDATE` on the request
//!   row and a version check (a stale version is `Conflict`), the new row, its
//!   audit event and its outbox rows, and `NOTIFY breakglass_changes`;
//! - the role lock is checked inside the transaction that inserts a request or
//!   records a grant intent, with those checks serialised per role by
//!   `pg_advisory_xact_lock(ROLE_NS, hashtext(role))`, so two transactions cannot
//!   both see the role free;
//! - audit appends are serialised by `pg_advisory_xact_lock(CHAIN_NS, 0)`, taken
//!   last (after the request row and role locks, in that order everywhere, so no
//!   deadlock), so the chain stays linear;
//! - sweeper claims are an upsert whose `WHERE` requires the previous claim to
//!   have run out; outbox claims also lock the row `FOR UPDATE SKIP LOCKED`.
//!
//! The schema is versioned in `breakglass_meta` (`schema_version`) and migrated
//! on open under an advisory lock. Timestamps are stored as the same fixed-width
//! RFC 3339 text as SQLite (`domain::time::ts`), so rows copy across verbatim and the
//! hash chain never depends on a type conversion.
//!
//! Here: `connection` (the connection string, TLS, the worker and LISTEN
//! threads), `schema` (version and migrations), `store` (the `Store` methods)
//! and `copy` (`store migrate` from SQLite).

mod connection;
mod copy;
mod schema;
mod store;

use super::config::PgStoreConfig;
use super::*;
use crate::net::pg::PgTls;
use connection::{Changes, Connector, Job};
use secrecy::SecretString;
use std::sync::{mpsc, Arc, OnceLock};

pub use connection::url_from;
pub use copy::CopyReport;
pub use schema::SCHEMA_VERSION;

/// The NOTIFY channel every committing transaction signals.
pub const CHANNEL: &str = "breakglass_changes";

pub struct PostgresStore {
    describe: String,
    /// To the worker thread that owns the connection.
    jobs: mpsc::Sender<Job>,
    connector: Arc<Connector>,
    /// The LISTEN thread's news, started on first wait.
    changes: OnceLock<Arc<Changes>>,
    session_user: String,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(ch) = self.changes.get() {
            ch.stop();
        }
    }
}

impl PostgresStore {
    /// Opens the store a config names.
    pub fn from_config(cfg: &PgStoreConfig) -> Result<Self, StoreError> {
        let url = url_from(&cfg.url)?;
        Self::open_with(&url, cfg.tls, cfg.ca_file.as_deref())
    }

    /// Opens (creating and migrating as needed) the store at `url`, with TLS as
    /// the backend decides: none for a socket or loopback, verify-full otherwise.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(&SecretString::from(url.to_string()), None, None)
    }

    pub fn open_with(
        url: &SecretString,
        tls: Option<PgTls>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, StoreError> {
        let (connector, describe) = Connector::new(url, tls, ca_file)?;
        let connector = Arc::new(connector);
        let jobs = connection::start_worker(connector.clone())?;
        let mut store = PostgresStore {
            describe,
            jobs,
            connector,
            changes: OnceLock::new(),
            session_user: String::new(),
        };
        store.migrate()?;
        store.session_user = store.run(|s| {
            let row = s
                .client
                .query_one("SELECT session_user::text", &[])
                .map_err(connection::pg)?;
            Ok(row.get::<_, String>(0))
        })?;
        Ok(store)
    }
}
