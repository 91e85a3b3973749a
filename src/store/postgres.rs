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

use super::config::PgStoreConfig;
use super::*;
use crate::audit::{self, AuditRecord, Verifier};
use crate::net::pg::{PgTls, PgUrlSource};
use crate::sync::LockExt;
use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::types::ToSql;
use ::postgres::{Client, GenericClient, Row, Statement};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const SCHEMA_VERSION: i64 = 2;
/// The NOTIFY channel every committing transaction signals.
pub const CHANNEL: &str = "breakglass_changes";

/// Advisory lock namespaces (the first key of the two-key form).
const ROLE_NS: i32 = 0x6267_0001;
const CHAIN_NS: i32 = 0x6267_0002;
const MIGRATE_NS: i32 = 0x6267_0003;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE requests (
    id          bigserial PRIMARY KEY,
    role        text NOT NULL,
    state       text NOT NULL,
    version     bigint NOT NULL,
    requester   text NOT NULL,
    expires_at  text,
    decide_by   text NOT NULL,
    updated_at  text NOT NULL,
    data        text NOT NULL
);
CREATE INDEX requests_role_state ON requests (role, state);
CREATE INDEX requests_state ON requests (state);

CREATE TABLE audit (
    seq         bigint PRIMARY KEY,
    at          text NOT NULL,
    actor       text NOT NULL,
    request_id  bigint,
    action      text NOT NULL,
    from_state  text,
    to_state    text,
    detail      text NOT NULL,
    prev_hash   text NOT NULL,
    hash        text NOT NULL,
    -- The database login that wrote the row, set by the server (trigger below),
    -- not by the client. Outside the hash: evidence the store itself adds.
    db_login    text NOT NULL DEFAULT session_user
);
CREATE INDEX audit_request ON audit (request_id);
-- Append-only in normal operation. The tables' owner can drop these triggers,
-- which is why the hash chain exists; give people logins that own nothing.
CREATE FUNCTION breakglass_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION breakglass_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION breakglass_audit_append_only();
CREATE FUNCTION breakglass_audit_login() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.db_login := session_user;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_login BEFORE INSERT ON audit
    FOR EACH ROW EXECUTE FUNCTION breakglass_audit_login();

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    event_id        text NOT NULL UNIQUE,
    audit_seq       bigint NOT NULL,
    created_at      text NOT NULL,
    payload         text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at text NOT NULL,
    delivered_at    text,
    last_error      text,
    delivered_to    text NOT NULL DEFAULT '[]'
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX outbox_audit_seq ON outbox (audit_seq);

-- Sweeper claims (revocation retries, outbox rows): one replica at a time,
-- until a lease runs out.
CREATE TABLE claims (
    key     text PRIMARY KEY,
    owner   text NOT NULL,
    until   text NOT NULL
);
"#,
    r#"
-- Decisions about a role itself (recertification) are found without a scan.
CREATE INDEX audit_role_events ON audit (action, seq) WHERE request_id IS NULL;
"#,
];

fn audit_row(r: &Row) -> AuditRecord {
    AuditRecord {
        seq: r.get(0),
        at: r.get(1),
        actor: r.get(2),
        request_id: r.get(3),
        action: r.get(4),
        from_state: r.get(5),
        to_state: r.get(6),
        detail: r.get(7),
        prev_hash: r.get(8),
        hash: r.get(9),
    }
}

fn pg(e: ::postgres::Error) -> StoreError {
    StoreError::Driver {
        message: pg_message(&e),
        source: Box::new(e),
    }
}

fn pg_message(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => match d.detail() {
            Some(detail) => format!("postgres: {} ({detail})", d.message()),
            None => format!("postgres: {}", d.message()),
        },
        None => format!("postgres: {e}"),
    }
}

/// A deadlock or serialisation failure: the transaction changed nothing and
/// the caller may decide again, like a lost version race.
fn is_retryable(code: Option<&::postgres::error::SqlState>) -> bool {
    use ::postgres::error::SqlState;
    code.is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// How to reach the server: the parsed connection string and TLS.
struct Connector {
    config: ::postgres::Config,
    tls: Option<rustls::ClientConfig>,
}

impl Connector {
    fn new(
        url: &SecretString,
        tls: Option<PgTls>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<(Self, String), StoreError> {
        let mut pc: tokio_postgres::Config = url.expose_secret().parse().map_err(|e| {
            StoreError::Db(format!(
                "postgres: the store's connection string is not valid: {e}"
            ))
        })?;
        pc.connect_timeout(Duration::from_secs(10));
        pc.application_name("breakglass");
        let mode = tls.unwrap_or(if crate::net::pg::is_local(&pc) {
            PgTls::Disable
        } else {
            PgTls::VerifyFull
        });
        let tls = if mode == PgTls::Disable {
            pc.ssl_mode(tokio_postgres::config::SslMode::Disable);
            None
        } else {
            pc.ssl_mode(tokio_postgres::config::SslMode::Require);
            Some(crate::net::pg::tls_config(mode, ca_file).map_err(StoreError::Db)?)
        };
        let describe = describe(&pc, mode);
        Ok((
            Connector {
                config: ::postgres::Config::from(pc),
                tls,
            },
            describe,
        ))
    }

    /// Connects (on the calling thread, which must not be inside a tokio runtime).
    fn connect(&self) -> Result<Client, StoreError> {
        let client = match &self.tls {
            None => self.config.connect(::postgres::NoTls),
            Some(t) => self
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(t.clone())),
        };
        let mut client = client.map_err(|e| {
            StoreError::Db(format!(
                "cannot connect to the PostgreSQL store: {}",
                pg_message(&e)
            ))
        })?;
        // A transaction stuck behind a lock fails rather than hangs a console.
        client
            .batch_execute(
                "SET lock_timeout = '15s'; SET statement_timeout = '120s'; \
                 SET idle_in_transaction_session_timeout = '60s'",
            )
            .map_err(pg)?;
        Ok(client)
    }
}

/// "postgres alice@db.internal:5432/breakglass (tls)", never the password.
fn describe(pc: &tokio_postgres::Config, mode: PgTls) -> String {
    let host = pc
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = pc.get_ports().first().copied().unwrap_or(5432);
    let user = pc.get_user().unwrap_or("?");
    let db = pc.get_dbname().unwrap_or(user);
    let tls = match mode {
        PgTls::Disable => "no tls",
        PgTls::Require => "tls, certificate not checked",
        PgTls::VerifyFull => "tls",
    };
    format!("postgres {user}@{host}:{port}/{db} ({tls})")
}

/// One connection and its prepared statements.
struct Session {
    client: Client,
    stmts: HashMap<String, Statement>,
}

/// The worker's connection, (re)made on demand.
struct Conn {
    connector: Arc<Connector>,
    session: Option<Session>,
}

impl Conn {
    fn session(&mut self) -> Result<&mut Session, StoreError> {
        if self.session.as_ref().is_some_and(|s| s.client.is_closed()) {
            self.session = None;
        }
        if self.session.is_none() {
            self.session = Some(Session {
                client: self.connector.connect()?,
                stmts: HashMap::new(),
            });
        }
        Ok(self.session.as_mut().expect("just set"))
    }
}

type Job = Box<dyn FnOnce(&mut Conn) + Send>;

/// Queries through a statement cache, on a client or inside a transaction.
struct Q<'s, C: GenericClient> {
    c: &'s mut C,
    stmts: &'s mut HashMap<String, Statement>,
}

impl<C: GenericClient> Q<'_, C> {
    fn st(&mut self, sql: &str) -> Result<Statement, ::postgres::Error> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.c.prepare(sql)?;
        if self.stmts.len() > 200 {
            self.stmts.clear();
        }
        self.stmts.insert(sql.to_string(), s.clone());
        Ok(s)
    }
    fn query(
        &mut self,
        sql: &str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, ::postgres::Error> {
        let s = self.st(sql)?;
        self.c.query(&s, p)
    }
    fn opt(
        &mut self,
        sql: &str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, ::postgres::Error> {
        let s = self.st(sql)?;
        self.c.query_opt(&s, p)
    }
    fn one(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Row, ::postgres::Error> {
        let s = self.st(sql)?;
        self.c.query_one(&s, p)
    }
    fn exec(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<u64, ::postgres::Error> {
        let s = self.st(sql)?;
        self.c.execute(&s, p)
    }
}

/// An audit note that can travel to the worker thread.
struct OwnedNote {
    action: String,
    actor: String,
    from: Option<State>,
    to: Option<State>,
    detail: serde_json::Value,
}

impl OwnedNote {
    fn of(n: &Note) -> Self {
        OwnedNote {
            action: n.action.to_string(),
            actor: n.actor.to_string(),
            from: n.from,
            to: n.to,
            detail: n.detail.clone(),
        }
    }
}

/// What the LISTEN thread shares with waiters: a counter bumped on every
/// notification (and on every reconnect or loss, so waiters re-check).
#[derive(Default)]
struct Changes {
    gen: Mutex<u64>,
    cv: Condvar,
    live: AtomicBool,
    stop: AtomicBool,
}

impl Changes {
    fn bump(&self) {
        *self.gen.locked() += 1;
        self.cv.notify_all();
    }
    fn gen(&self) -> u64 {
        *self.gen.locked()
    }
}

fn listen_loop(connector: Arc<Connector>, ch: Arc<Changes>) {
    while !ch.stop.load(Ordering::SeqCst) {
        let mut client = match connector.connect() {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("store LISTEN connection: {e}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::debug!("store LISTEN: {e}");
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        ch.live.store(true, Ordering::SeqCst);
        ch.bump();
        while !ch.stop.load(Ordering::SeqCst) && !client.is_closed() {
            let mut notes = client.notifications();
            let mut it = notes.timeout_iter(Duration::from_millis(250));
            loop {
                match it.next() {
                    Ok(Some(_)) => ch.bump(),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!("store LISTEN: {e}");
                        break;
                    }
                }
            }
        }
        ch.live.store(false, Ordering::SeqCst);
        ch.bump();
    }
}

/// What `copy_from_sqlite` copied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    pub requests: u64,
    pub audit_events: u64,
    pub outbox_rows: u64,
    /// The copied chain's last event: (seq, hash); the same as the source's.
    pub head_seq: i64,
    pub head_hash: String,
    /// The source chain's first broken link, copied as it was (evidence is kept).
    pub source_broken: Option<audit::Broken>,
}

pub struct PostgresStore {
    describe: String,
    jobs: mpsc::Sender<Job>,
    connector: Arc<Connector>,
    changes: OnceLock<Arc<Changes>>,
    session_user: String,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(ch) = self.changes.get() {
            ch.stop.store(true, Ordering::SeqCst);
        }
    }
}

/// Reads the connection string from where the config says.
pub fn url_from(source: &PgUrlSource) -> Result<SecretString, StoreError> {
    use crate::net::pg::{read_url, UrlError};
    read_url(source).map_err(|e| {
        StoreError::Db(match e {
            UrlError::Unset(var) => format!(
                "the store's connection string is not set: environment variable {var} ([store] url_env) is empty or missing"
            ),
            UrlError::Empty(p) => format!("[store] url_file {} is empty", p.display()),
            UrlError::Unreadable(p, e) => {
                format!("cannot read [store] url_file {}: {e}", p.display())
            }
        })
    })
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
        let (tx, rx) = mpsc::channel::<Job>();
        let worker_connector = connector.clone();
        std::thread::Builder::new()
            .name("breakglass-store".into())
            .spawn(move || {
                let mut conn = Conn {
                    connector: worker_connector,
                    session: None,
                };
                while let Ok(job) = rx.recv() {
                    let r =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn)));
                    if r.is_err() {
                        conn.session = None;
                    }
                }
            })
            .map_err(|e| StoreError::Db(format!("cannot start the store thread: {e}")))?;
        let mut store = PostgresStore {
            describe,
            jobs: tx,
            connector,
            changes: OnceLock::new(),
            session_user: String::new(),
        };
        store.migrate()?;
        store.session_user = store.run(|s| {
            let row = s
                .client
                .query_one("SELECT session_user::text", &[])
                .map_err(pg)?;
            Ok(row.get::<_, String>(0))
        })?;
        Ok(store)
    }

    /// Runs `f` on the worker thread's connection and waits for its answer.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |conn: &mut Conn| {
                let out = match conn.session() {
                    Ok(s) => f(s),
                    Err(e) => Err(e),
                };
                let _ = rtx.send(out);
            }))
            .map_err(|_| StoreError::Db("the store's connection thread has stopped".into()))?;
        rrx.recv()
            .map_err(|_| StoreError::Db("the store's connection thread failed".into()))?
    }

    /// Runs `f` in one transaction (committed when it returns Ok).
    fn tx<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Q<'_, ::postgres::Transaction<'_>>) -> Result<T, TxError> + Send + 'static,
    ) -> Result<T, TxError> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |conn: &mut Conn| {
                let out = (|| {
                    let s = conn.session().map_err(TxError::Store)?;
                    let Session { client, stmts } = s;
                    let mut tx = client.transaction()?;
                    let out = {
                        let mut q = Q { c: &mut tx, stmts };
                        f(&mut q)?
                    };
                    tx.commit()?;
                    Ok(out)
                })();
                let _ = rtx.send(out);
            }))
            .map_err(|_| {
                TxError::Store(StoreError::Db(
                    "the store's connection thread has stopped".into(),
                ))
            })?;
        rrx.recv().map_err(|_| {
            TxError::Store(StoreError::Db(
                "the store's connection thread failed".into(),
            ))
        })?
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let found = self.run(|s| {
            let mut q = Q {
                c: &mut s.client,
                stmts: &mut s.stmts,
            };
            schema_version(&mut q).map_err(pg)
        })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            // Nothing to create: logins without CREATE rights open it too.
            return Ok(());
        }
        // A session-level lock taken *before* the transaction begins: the
        // transaction then starts after the previous migrator committed and sees
        // its tables (a lock taken inside it would leave this session's catalog
        // cache as it was before the wait).
        self.run(|s| {
            s.client
                .execute(&format!("SELECT pg_advisory_lock({MIGRATE_NS}, 0)"), &[])
                .map_err(pg)?;
            let out = migrate_locked(s);
            let unlocked = s
                .client
                .execute(&format!("SELECT pg_advisory_unlock({MIGRATE_NS}, 0)"), &[]);
            out.map_err(TxError::into_store)?;
            unlocked.map_err(pg)?;
            Ok(())
        })
    }

    /// The schema version recorded in `breakglass_meta` (0 when the table is absent).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.run(|s| {
            let mut q = Q {
                c: &mut s.client,
                stmts: &mut s.stmts,
            };
            schema_version(&mut q).map_err(pg)
        })
    }

    fn changes(&self) -> Arc<Changes> {
        self.changes
            .get_or_init(|| {
                let ch = Arc::new(Changes::default());
                let (c, connector) = (ch.clone(), self.connector.clone());
                if let Err(e) = std::thread::Builder::new()
                    .name("breakglass-listen".into())
                    .spawn(move || listen_loop(connector, c))
                {
                    tracing::warn!("cannot start the store's LISTEN thread ({e}); polling instead");
                }
                ch
            })
            .clone()
    }

    /// Copies a SQLite store into this one, which must be empty: requests with
    /// their JSON data, the audit chain rows verbatim (hashes included) and the
    /// outbox, in one transaction. Sequences continue after the copied ids.
    pub fn copy_from_sqlite(&self, src: Arc<SqliteStore>) -> Result<CopyReport, StoreError> {
        const PAGE: usize = 1000;
        self.tx(move |q| {
            q.c.batch_execute("LOCK TABLE requests, audit, outbox IN EXCLUSIVE MODE")?;
            let n: i64 = q
                .one(
                    "SELECT (SELECT count(*) FROM requests) + (SELECT count(*) FROM audit) + (SELECT count(*) FROM outbox)",
                    &[],
                )?
                .get(0);
            if n > 0 {
                return Err(TxError::Store(StoreError::Db(format!(
                    "the PostgreSQL store is not empty ({n} rows in requests, audit and outbox); migrate only into an empty store"
                ))));
            }
            let mut rep = CopyReport {
                requests: 0,
                audit_events: 0,
                outbox_rows: 0,
                head_seq: 0,
                head_hash: audit::GENESIS.to_string(),
                source_broken: None,
            };
            let mut after = 0;
            loop {
                let rows = src.export_requests(after, PAGE).map_err(TxError::Store)?;
                let Some(last) = rows.last() else { break };
                after = last.id;
                let id: Vec<i64> = rows.iter().map(|r| r.id).collect();
                let role: Vec<&str> = rows.iter().map(|r| r.role.as_str()).collect();
                let state: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
                let version: Vec<i64> = rows.iter().map(|r| r.version).collect();
                let requester: Vec<&str> = rows.iter().map(|r| r.requester.as_str()).collect();
                let expires: Vec<Option<&str>> = rows.iter().map(|r| r.expires_at.as_deref()).collect();
                let decide: Vec<&str> = rows.iter().map(|r| r.decide_by.as_str()).collect();
                let updated: Vec<&str> = rows.iter().map(|r| r.updated_at.as_str()).collect();
                let data: Vec<&str> = rows.iter().map(|r| r.data.as_str()).collect();
                q.exec(
                    "INSERT INTO requests (id, role, state, version, requester, expires_at, decide_by, updated_at, data)
                     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])",
                    &[&id, &role, &state, &version, &requester, &expires, &decide, &updated, &data],
                )?;
                rep.requests += rows.len() as u64;
            }
            let mut verifier = Verifier::default();
            let mut from = 1;
            loop {
                let rows = src.audit_range(from, PAGE).map_err(TxError::Store)?;
                let Some(last) = rows.last() else { break };
                from = last.seq + 1;
                for r in &rows {
                    if rep.source_broken.is_none() {
                        if let Err(b) = verifier.push(r) {
                            rep.source_broken = Some(b);
                        }
                    }
                }
                rep.head_seq = last.seq;
                rep.head_hash = last.hash.clone();
                let seq: Vec<i64> = rows.iter().map(|r| r.seq).collect();
                let at: Vec<&str> = rows.iter().map(|r| r.at.as_str()).collect();
                let actor: Vec<&str> = rows.iter().map(|r| r.actor.as_str()).collect();
                let request_id: Vec<Option<i64>> = rows.iter().map(|r| r.request_id).collect();
                let action: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
                let from_state: Vec<Option<&str>> = rows.iter().map(|r| r.from_state.as_deref()).collect();
                let to_state: Vec<Option<&str>> = rows.iter().map(|r| r.to_state.as_deref()).collect();
                let detail: Vec<&str> = rows.iter().map(|r| r.detail.as_str()).collect();
                let prev: Vec<&str> = rows.iter().map(|r| r.prev_hash.as_str()).collect();
                let hash: Vec<&str> = rows.iter().map(|r| r.hash.as_str()).collect();
                q.exec(
                    "INSERT INTO audit (seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash)
                     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])",
                    &[&seq, &at, &actor, &request_id, &action, &from_state, &to_state, &detail, &prev, &hash],
                )?;
                rep.audit_events += rows.len() as u64;
            }
            let mut after = 0;
            loop {
                let rows = src.export_outbox(after, PAGE).map_err(TxError::Store)?;
                let Some(last) = rows.last() else { break };
                after = last.id;
                let id: Vec<i64> = rows.iter().map(|r| r.id).collect();
                let event_id: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
                let audit_seq: Vec<i64> = rows.iter().map(|r| r.audit_seq).collect();
                let created: Vec<&str> = rows.iter().map(|r| r.created_at.as_str()).collect();
                let payload: Vec<&str> = rows.iter().map(|r| r.payload.as_str()).collect();
                let attempts: Vec<i32> = rows.iter().map(|r| r.attempts.clamp(0, i32::MAX as i64) as i32).collect();
                let next: Vec<&str> = rows.iter().map(|r| r.next_attempt_at.as_str()).collect();
                let delivered: Vec<Option<&str>> = rows.iter().map(|r| r.delivered_at.as_deref()).collect();
                let error: Vec<Option<&str>> = rows.iter().map(|r| r.last_error.as_deref()).collect();
                let to: Vec<&str> = rows.iter().map(|r| r.delivered_to.as_str()).collect();
                q.exec(
                    "INSERT INTO outbox (id, event_id, audit_seq, created_at, payload, attempts, next_attempt_at, delivered_at, last_error, delivered_to)
                     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::int4[], $7::text[], $8::text[], $9::text[], $10::text[])",
                    &[&id, &event_id, &audit_seq, &created, &payload, &attempts, &next, &delivered, &error, &to],
                )?;
                rep.outbox_rows += rows.len() as u64;
            }
            q.c.batch_execute(
                "SELECT setval(pg_get_serial_sequence('requests', 'id'), COALESCE((SELECT max(id) FROM requests), 0) + 1, false);
                 SELECT setval(pg_get_serial_sequence('outbox', 'id'), COALESCE((SELECT max(id) FROM outbox), 0) + 1, false);",
            )?;
            // Copied rows carry the migrating login, not their actors': the
            // actor = db_login check starts after them.
            q.exec(
                "INSERT INTO breakglass_meta (key, value) VALUES ('imported_through', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&rep.head_seq.to_string()],
            )?;
            q.exec(&format!("SELECT pg_notify('{CHANNEL}', $1)"), &[&rep.head_seq.to_string()])?;
            Ok(rep)
        })
        .map_err(TxError::into_store)
    }
}

/// Creates or upgrades the schema; the caller holds the migration lock.
fn migrate_locked(s: &mut Session) -> Result<(), TxError> {
    let Session { client, stmts } = s;
    let mut tx = client.transaction()?;
    {
        let q = &mut Q { c: &mut tx, stmts };
        let exists: bool = q
            .one("SELECT to_regclass('breakglass_meta') IS NOT NULL", &[])?
            .get(0);
        if !exists {
            q.c.batch_execute(
                "CREATE TABLE breakglass_meta (key text PRIMARY KEY, value text NOT NULL)",
            )?;
        }
        let found = schema_version(q)?;
        if found > SCHEMA_VERSION {
            return Err(TxError::Store(StoreError::TooNew {
                found,
                supported: SCHEMA_VERSION,
            }));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            q.c.batch_execute(m)?;
            q.exec(
                "INSERT INTO breakglass_meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&((i + 1) as i64).to_string()],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A transaction's failure: a store error decided by the code, or the server's.
enum TxError {
    Store(StoreError),
    Pg(::postgres::Error),
}

impl From<::postgres::Error> for TxError {
    fn from(e: ::postgres::Error) -> Self {
        TxError::Pg(e)
    }
}

impl TxError {
    fn into_store(self) -> StoreError {
        match self {
            TxError::Store(e) => e,
            TxError::Pg(e) => pg(e),
        }
    }
    /// For transitions: a deadlock or serialisation failure is a lost race.
    fn into_store_for(self, id: RequestId) -> StoreError {
        match self {
            TxError::Pg(e) if is_retryable(e.code()) => StoreError::Conflict(id),
            TxError::Pg(e) => pg(e),
            TxError::Store(e) => e,
        }
    }
}

fn schema_version<C: GenericClient>(q: &mut Q<'_, C>) -> Result<i64, ::postgres::Error> {
    let exists: bool = q
        .one("SELECT to_regclass('breakglass_meta') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(q.opt(
        "SELECT value FROM breakglass_meta WHERE key = 'schema_version'",
        &[],
    )?
    .and_then(|r| r.get::<_, String>(0).parse().ok())
    .unwrap_or(0))
}

fn locking_states() -> Vec<&'static str> {
    State::LOCKING.iter().map(|s| s.as_str()).collect()
}

/// The first request holding `role` locked at `now`. The LOCKING-state rows are
/// few; an auto-approved one within its certification deadline is skipped in
/// Rust (`Request::locks_role_at`), inside the caller's transaction (and under
/// its `lock_role` advisory lock), so the check stays atomic with the write.
fn lock_holder<C: GenericClient>(
    q: &mut Q<'_, C>,
    role: &str,
    except: Option<RequestId>,
    now: DateTime<Utc>,
) -> Result<Option<(RequestId, State)>, ::postgres::Error> {
    let rows = q.query(
        "SELECT id, state, data FROM requests WHERE role = $1 AND state = ANY($2) AND id <> $3 ORDER BY id",
        &[&role, &locking_states(), &except.map_or(0, |i| i.0)],
    )?;
    for r in rows {
        let st: String = r.get(1);
        let data: String = r.get(2);
        // A row that does not parse locks (fail closed).
        let locks = parse_row(&data)
            .map(|req| req.locks_role_at(now))
            .unwrap_or(true);
        if locks {
            return Ok(Some((
                RequestId(r.get(0)),
                State::parse(&st).unwrap_or(State::Active),
            )));
        }
    }
    Ok(None)
}

/// Serialises role-lock checks for one role until the transaction ends.
fn lock_role<C: GenericClient>(q: &mut Q<'_, C>, role: &str) -> Result<(), ::postgres::Error> {
    q.exec(
        &format!("SELECT pg_advisory_xact_lock({ROLE_NS}, hashtext($1))"),
        &[&role],
    )?;
    Ok(())
}

fn append<C: GenericClient>(
    q: &mut Q<'_, C>,
    request_id: Option<RequestId>,
    note: &OwnedNote,
    alerts: &[AlertDraft],
    now: DateTime<Utc>,
) -> Result<(), ::postgres::Error> {
    q.exec(&format!("SELECT pg_advisory_xact_lock({CHAIN_NS}, 0)"), &[])?;
    let (last_seq, prev_hash): (i64, String) = q
        .opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?
        .map(|r| (r.get(0), r.get(1)))
        .unwrap_or((0, audit::GENESIS.to_string()));
    let rec = audit::seal(
        AuditRecord {
            seq: last_seq + 1,
            at: ts(now),
            actor: note.actor.clone(),
            request_id: request_id.map(|r| r.0),
            action: note.action.clone(),
            from_state: note.from.map(|s| s.as_str().to_string()),
            to_state: note.to.map(|s| s.as_str().to_string()),
            detail: audit::canonical_detail(&note.detail),
            prev_hash: String::new(),
            hash: String::new(),
        },
        &prev_hash,
    );
    q.exec(
        "INSERT INTO audit (seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &rec.seq,
            &rec.at,
            &rec.actor,
            &rec.request_id,
            &rec.action,
            &rec.from_state,
            &rec.to_state,
            &rec.detail,
            &rec.prev_hash,
            &rec.hash,
        ],
    )?;
    for (i, a) in alerts.iter().enumerate() {
        let (event_id, payload) = super::outbox_entry(request_id, &rec, i, a);
        q.exec(
            "INSERT INTO outbox (event_id, audit_seq, created_at, payload, next_attempt_at) VALUES ($1, $2, $3, $4, $3)",
            &[&event_id, &rec.seq, &rec.at, &payload.to_string()],
        )?;
    }
    // Delivered to listeners when (and only if) this transaction commits.
    q.exec(
        &format!("SELECT pg_notify('{CHANNEL}', $1)"),
        &[&rec.seq.to_string()],
    )?;
    Ok(())
}

fn write_row<C: GenericClient>(
    q: &mut Q<'_, C>,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<(), TxError> {
    let data = serde_json::to_string(req).map_err(|e| TxError::Store(StoreError::driver(e)))?;
    q.exec(
        "UPDATE requests SET state = $2, version = $3, expires_at = $4, decide_by = $5, updated_at = $6, data = $7 WHERE id = $1",
        &[
            &req.id.0,
            &req.state.as_str(),
            &req.version,
            &req.expires_at().map(ts),
            &ts(req.decide_by),
            &ts(now),
            &data,
        ],
    )?;
    Ok(())
}

fn parse_row(data: &str) -> Result<Request, StoreError> {
    serde_json::from_str(data)
        .map_err(|e| StoreError::Db(format!("a stored request does not parse: {e}")))
}

fn plain<T: Send + 'static>(
    store: &PostgresStore,
    f: impl FnOnce(&mut Q<'_, Client>) -> Result<T, ::postgres::Error> + Send + 'static,
) -> Result<T, StoreError> {
    store.run(move |s| {
        let mut q = Q {
            c: &mut s.client,
            stmts: &mut s.stmts,
        };
        f(&mut q).map_err(pg)
    })
}

impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn insert_request(
        &self,
        req: &Request,
        event: &Event,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<Request, StoreError> {
        let req = req.clone();
        let note = OwnedNote::of(&Note::of(event));
        let alerts = alerts.to_vec();
        self.tx(move |q| {
            lock_role(q, &req.role)?;
            if let Some((by, state)) = lock_holder(q, &req.role, None, now)? {
                return Err(TxError::Store(StoreError::Locked {
                    role: req.role.clone(),
                    by,
                    state,
                }));
            }
            let id: i64 = q
                .one("SELECT nextval(pg_get_serial_sequence('requests', 'id'))", &[])?
                .get(0);
            let mut stored = req.clone();
            stored.id = RequestId(id);
            stored.version = 1;
            let data = serde_json::to_string(&stored)
                .map_err(|e| TxError::Store(StoreError::driver(e)))?;
            q.exec(
                "INSERT INTO requests (id, role, state, version, requester, expires_at, decide_by, updated_at, data)
                 VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8)",
                &[
                    &id,
                    &stored.role,
                    &stored.state.as_str(),
                    &stored.requester,
                    &stored.expires_at().map(ts),
                    &ts(stored.decide_by),
                    &ts(now),
                    &data,
                ],
            )?;
            append(q, Some(stored.id), &note, &alerts, now)?;
            Ok(stored)
        })
        .map_err(TxError::into_store)
    }

    fn commit(
        &self,
        req: &Request,
        event: &Event,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<Request, StoreError> {
        let id = req.id;
        let req = req.clone();
        let note = OwnedNote::of(&Note::of(event));
        let alerts = alerts.to_vec();
        self.tx(move |q| {
            let current: Option<i64> = q
                .opt(
                    "SELECT version FROM requests WHERE id = $1 FOR UPDATE",
                    &[&req.id.0],
                )?
                .map(|r| r.get(0));
            match current {
                None => return Err(TxError::Store(StoreError::NotFound(req.id))),
                Some(v) if v != req.version => {
                    return Err(TxError::Store(StoreError::Conflict(req.id)))
                }
                Some(_) => {}
            }
            if req.state == State::Granting {
                lock_role(q, &req.role)?;
                if let Some((by, state)) = lock_holder(q, &req.role, Some(req.id), now)? {
                    return Err(TxError::Store(StoreError::Locked {
                        role: req.role.clone(),
                        by,
                        state,
                    }));
                }
            }
            let mut stored = req.clone();
            stored.version += 1;
            write_row(q, &stored, now)?;
            append(q, Some(stored.id), &note, &alerts, now)?;
            Ok(stored)
        })
        .map_err(|e| e.into_store_for(id))
    }

    fn get(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        let data = plain(self, move |q| {
            Ok(q.opt("SELECT data FROM requests WHERE id = $1", &[&id.0])?
                .map(|r| r.get::<_, String>(0)))
        })?;
        data.as_deref().map(parse_row).transpose()
    }

    fn list(&self, query: &Query) -> Result<Vec<Request>, StoreError> {
        let query = query.clone();
        let rows = plain(self, move |q| {
            let mut sql = String::from("SELECT data FROM requests WHERE true");
            let states: Vec<&str> = query.states.iter().flatten().map(|s| s.as_str()).collect();
            let limit = query.limit.map(|l| l as i64);
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![];
            if query.states.is_some() {
                params.push(&states);
                sql.push_str(&format!(" AND state = ANY(${})", params.len()));
            }
            if let Some(r) = &query.role {
                params.push(r);
                sql.push_str(&format!(" AND role = ${}", params.len()));
            }
            if let Some(r) = &query.requester {
                params.push(r);
                sql.push_str(&format!(" AND requester = ${}", params.len()));
            }
            sql.push_str(" ORDER BY id DESC");
            if let Some(l) = &limit {
                params.push(l);
                sql.push_str(&format!(" LIMIT ${}", params.len()));
            }
            Ok(q.query(&sql, &params)?
                .into_iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>())
        })?;
        rows.iter().map(|d| parse_row(d)).collect()
    }

    fn role_lock(
        &self,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(RequestId, State)>, StoreError> {
        let role = role.to_string();
        plain(self, move |q| lock_holder(q, &role, None, now))
    }

    fn audit_head(&self) -> Result<(i64, String), StoreError> {
        plain(self, |q| {
            Ok(
                q.opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?
                    .map(|r| (r.get(0), r.get(1)))
                    .unwrap_or((0, audit::GENESIS.to_string())),
            )
        })
    }

    fn audit_range(&self, from: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        plain(self, move |q| {
            Ok(q
                .query(
                    "SELECT seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash
                     FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2",
                    &[&from, &limit],
                )?
                .iter()
                .map(audit_row)
                .collect())
        })
    }

    fn request_events(
        &self,
        id: RequestId,
        action: AuditAction,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let action = action.to_string();
        plain(self, move |q| {
            Ok(q
                .query(
                    "SELECT seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash
                     FROM audit WHERE request_id = $1 AND action = $2 ORDER BY seq",
                    &[&id.0, &action],
                )?
                .iter()
                .map(audit_row)
                .collect())
        })
    }

    fn event_logins(
        &self,
        id: RequestId,
        action: AuditAction,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let action = action.to_string();
        plain(self, move |q| {
            Ok(q
                .query(
                    "SELECT actor, db_login FROM audit WHERE request_id = $1 AND action = $2 ORDER BY seq",
                    &[&id.0, &action],
                )?
                .iter()
                .map(|r| (r.get(0), Some(r.get(1))))
                .collect())
        })
    }

    fn login_mismatches(&self, limit: usize) -> Result<Vec<LoginMismatch>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        plain(self, move |q| {
            Ok(q
                .query(
                    "SELECT seq, actor, db_login FROM audit
                     WHERE actor <> db_login AND actor NOT LIKE 'breakglass-%'
                       AND seq > COALESCE((SELECT value::bigint FROM breakglass_meta WHERE key = 'imported_through'), 0)
                     ORDER BY seq LIMIT $1",
                    &[&limit],
                )?
                .iter()
                .map(|r| LoginMismatch {
                    seq: r.get(0),
                    actor: r.get(1),
                    db_login: r.get(2),
                })
                .collect())
        })
    }

    fn last_role_event(
        &self,
        role: &str,
        action: AuditAction,
    ) -> Result<Option<AuditRecord>, StoreError> {
        let (role, action) = (role.to_string(), action.to_string());
        plain(self, move |q| {
            Ok(q.opt(
                "SELECT seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash
                 FROM audit WHERE action = $1 AND request_id IS NULL AND (detail::jsonb) ->> 'role' = $2
                 ORDER BY seq DESC LIMIT 1",
                &[&action, &role],
            )?
            .as_ref()
            .map(audit_row))
        })
    }

    fn outbox_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        plain(self, move |q| {
            Ok(q.query(
                "SELECT id, event_id, payload, attempts, delivered_to FROM outbox
                     WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
                &[&ts(now), &limit],
            )?
            .into_iter()
            .map(|r| OutboxRow {
                id: r.get(0),
                event_id: r.get(1),
                payload: serde_json::from_str(r.get(2)).unwrap_or(serde_json::Value::Null),
                attempts: r.get::<_, i32>(3).max(0) as u32,
                delivered_to: serde_json::from_str(r.get(4)).unwrap_or_default(),
            })
            .collect())
        })
    }

    fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        plain(self, move |q| {
            q.exec(
                "UPDATE outbox SET delivered_at = $2, attempts = attempts + 1, last_error = NULL WHERE id = $1",
                &[&id, &ts(now)],
            )?;
            Ok(())
        })
    }

    fn outbox_failed(
        &self,
        id: i64,
        delivered_to: &[String],
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let delivered_to = serde_json::to_string(delivered_to).expect("strings serialise");
        let error = error.to_string();
        plain(self, move |q| {
            q.exec(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, delivered_to = $4 WHERE id = $1",
                &[&id, &error, &ts(retry_at), &delivered_to],
            )?;
            Ok(())
        })
    }

    fn outbox_undelivered(&self) -> Result<u64, StoreError> {
        plain(self, |q| {
            Ok(q.one(
                "SELECT count(*) FROM outbox WHERE delivered_at IS NULL",
                &[],
            )?
            .get::<_, i64>(0) as u64)
        })
    }

    fn outbox_undelivered_for(&self, request: RequestId) -> Result<u64, StoreError> {
        plain(self, move |q| {
            Ok(q
                .one(
                    "SELECT count(*) FROM outbox o JOIN audit a ON a.seq = o.audit_seq WHERE o.delivered_at IS NULL AND a.request_id = $1",
                    &[&request.0],
                )?
                .get::<_, i64>(0) as u64)
        })
    }

    fn append_note(
        &self,
        request: Option<RequestId>,
        note: &Note,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let note = OwnedNote::of(note);
        let alerts = alerts.to_vec();
        self.tx(move |q| Ok(append(q, request, &note, &alerts, now)?))
            .map_err(TxError::into_store)
    }

    fn claim(
        &self,
        key: ClaimKey,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let owner = owner.to_string();
        self.tx(move |q| {
            if let ClaimKey::Outbox(id) = key {
                // Another replica sending or recording this row holds its lock: skip it.
                let due = q.opt(
                    "SELECT id FROM outbox WHERE id = $1 AND delivered_at IS NULL AND next_attempt_at <= $2
                     FOR UPDATE SKIP LOCKED",
                    &[&id, &ts(now)],
                )?;
                if due.is_none() {
                    return Ok(false);
                }
            }
            let won = q.opt(
                "INSERT INTO claims (key, owner, until) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until
                 WHERE claims.until <= $4 OR claims.owner = EXCLUDED.owner
                 RETURNING key",
                &[&key.as_key(), &owner, &ts(until), &ts(now)],
            )?;
            Ok(won.is_some())
        })
        .map_err(TxError::into_store)
    }

    fn release(&self, key: ClaimKey, owner: &str) -> Result<(), StoreError> {
        let owner = owner.to_string();
        plain(self, move |q| {
            q.exec(
                "DELETE FROM claims WHERE key = $1 AND owner = $2",
                &[&key.as_key(), &owner],
            )?;
            Ok(())
        })
    }

    /// Woken by `NOTIFY breakglass_changes` (a separate LISTEN connection); polls
    /// every 200 ms while that connection is down.
    fn wait_for_change(&self, since_head: i64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let ch = self.changes();
        loop {
            let gen = ch.gen();
            if self.audit_head().is_ok_and(|h| h.0 != since_head) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let left = deadline - now;
            if !ch.live.load(Ordering::SeqCst) {
                std::thread::sleep(left.min(Duration::from_millis(200)));
                continue;
            }
            let g = ch.gen.locked();
            let _ = ch.cv.wait_timeout_while(g, left, |g| *g == gen);
        }
    }

    fn session_user(&self) -> Option<String> {
        Some(self.session_user.clone())
    }
}
