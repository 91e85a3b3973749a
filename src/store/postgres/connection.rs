//! Reaching the server: the connection string and TLS, the worker thread that
//! owns the session (and its statement cache) and runs each job or transaction,
//! and the LISTEN thread that wakes waiters on a commit made anywhere.

use super::*;
use crate::net::pg::{PgTls, PgUrlSource};
use crate::sync::LockExt;
use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::types::ToSql;
use ::postgres::{Client, GenericClient, Row, Statement};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

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

pub(super) fn pg(e: ::postgres::Error) -> StoreError {
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
pub(super) struct Connector {
    config: ::postgres::Config,
    tls: Option<rustls::ClientConfig>,
}

impl Connector {
    pub(super) fn new(
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
            Some(crate::net::pg::tls_config(mode, ca_file).map_err(StoreError::driver)?)
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
pub(super) struct Session {
    pub(super) client: Client,
    pub(super) stmts: HashMap<String, Statement>,
}

/// The worker's connection, (re)made on demand.
pub(super) struct Conn {
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

pub(super) type Job = Box<dyn FnOnce(&mut Conn) + Send>;

/// Starts the thread that owns the connection and runs each job sent to it; a
/// job that panics drops the session, so the next one starts afresh.
pub(super) fn start_worker(connector: Arc<Connector>) -> Result<mpsc::Sender<Job>, StoreError> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("breakglass-store".into())
        .spawn(move || {
            let mut conn = Conn {
                connector,
                session: None,
            };
            while let Ok(job) = rx.recv() {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn)));
                if r.is_err() {
                    conn.session = None;
                }
            }
        })
        .map_err(|e| StoreError::Db(format!("cannot start the store thread: {e}")))?;
    Ok(tx)
}

/// Queries through a statement cache, on a client or inside a transaction.
pub(super) struct Q<'s, C: GenericClient> {
    pub(super) c: &'s mut C,
    pub(super) stmts: &'s mut HashMap<String, Statement>,
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
    pub(super) fn query(
        &mut self,
        sql: &str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, ::postgres::Error> {
        let s = self.st(sql)?;
        self.c.query(&s, p)
    }
    pub(super) fn opt(
        &mut self,
        sql: &str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, ::postgres::Error> {
        let s = self.st(sql)?;
        self.c.query_opt(&s, p)
    }
    pub(super) fn one(
        &mut self,
        sql: &str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, ::postgres::Error> {
        let s = self.st(sql)?;
        self.c.query_one(&s, p)
    }
    pub(super) fn exec(
        &mut self,
        sql: &str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, ::postgres::Error> {
        let s = self.st(sql)?;
        self.c.execute(&s, p)
    }
}

/// A transaction's failure: a store error decided by the code, or the server's.
pub(super) enum TxError {
    Store(StoreError),
    Pg(::postgres::Error),
}

impl From<::postgres::Error> for TxError {
    fn from(e: ::postgres::Error) -> Self {
        TxError::Pg(e)
    }
}

impl TxError {
    pub(super) fn into_store(self) -> StoreError {
        match self {
            TxError::Store(e) => e,
            TxError::Pg(e) => pg(e),
        }
    }
    /// For transitions: a deadlock or serialisation failure is a lost race.
    pub(super) fn into_store_for(self, id: RequestId) -> StoreError {
        match self {
            TxError::Pg(e) if is_retryable(e.code()) => StoreError::Conflict(id),
            TxError::Pg(e) => pg(e),
            TxError::Store(e) => e,
        }
    }
}

impl PostgresStore {
    /// Runs `f` on the worker thread's connection and waits for its answer.
    pub(super) fn run<T: Send + 'static>(
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
    pub(super) fn tx<T: Send + 'static>(
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

    pub(super) fn changes(&self) -> Arc<Changes> {
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
}

pub(super) fn plain<T: Send + 'static>(
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

/// What the LISTEN thread shares with waiters: a counter bumped on every
/// notification (and on every reconnect or loss, so waiters re-check).
#[derive(Default)]
pub(super) struct Changes {
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
    pub(super) fn gen(&self) -> u64 {
        *self.gen.locked()
    }
    /// Whether the LISTEN connection is up (else waiters poll).
    pub(super) fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }
    /// Waits up to `left` for a change after generation `gen`.
    pub(super) fn wait_past(&self, gen: u64, left: Duration) {
        let g = self.gen.locked();
        let _ = self.cv.wait_timeout_while(g, left, |g| *g == gen);
    }
    /// Ends the LISTEN thread (within its 250 ms poll).
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
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
