//! The PostgreSQL backend: one throwaway login role per grant.
//!
//! Grant creates `bg_<request>_<6 hex>` with a random password, `VALID UNTIL` the
//! grant's expiry (so the server refuses new logins after it even when no console
//! runs), a connection limit and membership in the scope's `member_of` roles. The
//! password is hashed client-side (SCRAM-SHA-256) and only the verifier is sent, so
//! the plain text never reaches server logs or `pg_stat_activity`. The request id
//! is recorded as the role's comment so crash recovery can revoke by request id.
//!
//! Revoke: `NOLOGIN` (committed first), terminate the role's sessions until none
//! is left, `REASSIGN OWNED`/`DROP OWNED` in every database where the role owns
//! something, `DROP ROLE`, then check that it is gone.
//!
//! DDL takes no bind parameters, so every identifier is validated against a strict
//! rule and double-quoted, and the few literals (a timestamp, the SCRAM verifier,
//! the comment) are single-quoted with `'` doubled; backslashes and NUL are refused
//! and the session sets `standard_conforming_strings = on`.

use super::config::PostgresConfig;
use super::*;
use crate::net::pg::{is_local, tls_config, PgTls, PgUrlSource};
use regex::Regex;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::Client;

/// Yields the admin connection string at every call.
pub type UrlProvider = Arc<dyn Fn() -> Result<SecretString, BackendError> + Send + Sync>;

/// What a role, database or other name given in config or scope must look like.
pub const NAME_RULE: &str = "lower-case ASCII letters, digits and '_', starting with a letter or '_', at most 63 bytes, not starting with \"pg_\" (^[a-z_][a-z0-9_]{0,62}$)";
/// What a request id must look like to be granted.
pub const REQUEST_ID_RULE: &str =
    "ASCII letters, digits, '_', '.', ':' or '-', starting with a letter or digit, at most 64 bytes";
/// The comment every role this backend creates carries, followed by the request id.
const COMMENT_PREFIX: &str = "breakglass ";
/// The request id's share of a role name: `bg_` + this + `_` + 6 hex = 63 bytes at most.
const MAX_SLUG: usize = 63 - 3 - 1 - 6;

fn name_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-z_][a-z0-9_]{0,62}$").expect("a valid literal pattern"))
}

fn request_id_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$").expect("a valid literal pattern")
    })
}

fn lease_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^bg_[a-z0-9_]{1,53}_[0-9a-f]{6}$").expect("a valid literal pattern")
    })
}

/// Checks a name from config or scope; the error says what is allowed.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name_re().is_match(name) && !name.starts_with("pg_") {
        Ok(())
    } else {
        Err(format!(
            "{what} {:?} is not accepted: write {NAME_RULE}",
            crate::sanitize::line(name, 80)
        ))
    }
}

/// `"name"` with any `"` doubled. Callers validate names first; this is the
/// second line of defence.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'value'` with any `'` doubled. Refuses NUL (which PostgreSQL cannot hold) and
/// backslashes (which would be escapes if standard_conforming_strings were off).
pub fn quote_literal(value: &str) -> Result<String, BackendError> {
    if value.contains('\0') || value.contains('\\') {
        return Err(BackendError::Failed(
            "refusing to send a value with a NUL byte or a backslash as an SQL literal".into(),
        ));
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

/// The role name for a grant of `request_id`: `bg_<slug>_<6 random hex>`, at most
/// 63 bytes (PostgreSQL's identifier limit) whatever the request id.
pub fn role_name(request_id: &str) -> String {
    let mut slug: String = request_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    slug.truncate(MAX_SLUG); // ASCII only, so any byte index is a char boundary
    if slug.is_empty() {
        slug.push('_');
    }
    format!("bg_{slug}_{}", hex::encode(rand::random::<[u8; 3]>()))
}

/// Whether `name` has the shape of a role this backend creates.
pub fn is_lease_name(name: &str) -> bool {
    lease_re().is_match(name)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The role's scope as the backend reads it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Existing roles the granted user becomes a member of.
    pub member_of: Vec<String>,
    /// The credential's database.
    pub database: Option<String>,
    /// A standing role whose password `rotate` replaces.
    pub rotate_role: Option<String>,
}

impl Scope {
    pub const KEYS: &'static str = "member_of (a list of role names), database, rotate_role";

    pub fn parse(v: &serde_json::Value) -> Result<Scope, String> {
        let mut s = Scope::default();
        let obj = match v {
            serde_json::Value::Null => return Ok(s),
            serde_json::Value::Object(o) => o,
            _ => return Err(format!("scope must be a table with {}", Scope::KEYS)),
        };
        for (k, v) in obj {
            match k.as_str() {
                "member_of" => {
                    let list = v.as_array().ok_or_else(|| {
                        "scope member_of must be a list of role names, e.g. [\"emergency_dba\"]"
                            .to_string()
                    })?;
                    for m in list {
                        let m = m.as_str().ok_or_else(|| {
                            "scope member_of must list role names as strings".to_string()
                        })?;
                        check_name("scope member_of role", m)?;
                        s.member_of.push(m.to_string());
                    }
                }
                "database" => {
                    let d = v
                        .as_str()
                        .ok_or_else(|| "scope database must be a string".to_string())?;
                    check_name("scope database", d)?;
                    s.database = Some(d.to_string());
                }
                "rotate_role" => {
                    let r = v
                        .as_str()
                        .ok_or_else(|| "scope rotate_role must be a string".to_string())?;
                    check_name("scope rotate_role", r)?;
                    s.rotate_role = Some(r.to_string());
                }
                other => {
                    return Err(format!(
                        "scope key {:?} is not known to the postgres backend; it reads {}",
                        crate::sanitize::line(other, 40),
                        Scope::KEYS
                    ))
                }
            }
        }
        Ok(s)
    }
}

pub struct PostgresBackend {
    cfg: PostgresConfig,
    url: UrlProvider,
}

fn failed(msg: impl Into<String>) -> BackendError {
    BackendError::Failed(msg.into())
}

/// A server error's message (and detail), without the statement.
fn pg_error(what: &str, e: &tokio_postgres::Error) -> BackendError {
    let msg = match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    };
    failed(format!(
        "postgres: {what}: {}",
        crate::sanitize::line(&msg, 400)
    ))
}

/// Reads the admin connection string from where the config says.
pub fn url_from(source: &PgUrlSource) -> Result<SecretString, BackendError> {
    use crate::net::pg::{read_url, UrlError};
    read_url(source).map_err(|e| {
        failed(match e {
            UrlError::Unset(var) => format!(
                "postgres: environment variable {var} (url_env) is not set; it must hold the admin connection string"
            ),
            UrlError::Empty(p) => format!("postgres: url_file {} is empty", p.display()),
            UrlError::Unreadable(p, e) => {
                format!("postgres: cannot read url_file {}: {e}", p.display())
            }
        })
    })
}

impl PostgresBackend {
    /// Reads the admin URL from `cfg.url` (environment variable or file) at every call.
    pub fn new(cfg: PostgresConfig) -> Self {
        let source = cfg.url.clone();
        Self::with_url_provider(cfg, Arc::new(move || url_from(&source)))
    }

    /// Takes the admin URL from `url` instead of `cfg.url` (tests swap it).
    pub fn with_url_provider(cfg: PostgresConfig, url: UrlProvider) -> Self {
        PostgresBackend { cfg, url }
    }

    fn timeout(&self) -> Duration {
        self.cfg.timeout
    }

    /// Runs `f` under the configured timeout.
    async fn t<T>(
        &self,
        what: &str,
        f: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, BackendError> {
        match tokio::time::timeout(self.timeout(), f).await {
            Ok(r) => r.map_err(|e| pg_error(what, &e)),
            Err(_) => Err(BackendError::Timeout(self.timeout())),
        }
    }

    fn admin_config(&self) -> Result<tokio_postgres::Config, BackendError> {
        let url = (self.url)()?;
        let mut pc: tokio_postgres::Config = url.expose_secret().parse().map_err(|e| {
            failed(format!(
                "postgres: the admin connection string is not valid: {e}"
            ))
        })?;
        pc.connect_timeout(self.timeout());
        pc.application_name("breakglass");
        Ok(pc)
    }

    fn tls_config(&self, mode: PgTls) -> Result<rustls::ClientConfig, BackendError> {
        tls_config(mode, self.cfg.ca_file.as_deref())
            .map_err(|e| failed(crate::net::http::error_chain(&e)))
    }

    /// Connects with `pc` (the admin config, possibly for another database).
    async fn connect_with(&self, mut pc: tokio_postgres::Config) -> Result<Client, BackendError> {
        let mode = self.cfg.tls.unwrap_or(if is_local(&pc) {
            PgTls::Disable
        } else {
            PgTls::VerifyFull
        });
        let client = if mode == PgTls::Disable {
            pc.ssl_mode(SslMode::Disable);
            let (client, conn) = self
                .t("connecting", pc.connect(tokio_postgres::NoTls))
                .await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        } else {
            pc.ssl_mode(SslMode::Require);
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config(mode)?);
            let (client, conn) = self.t("connecting", pc.connect(tls)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        };
        // Literals below rely on standard strings; a statement the client gave up
        // on must not keep running (or holding locks) on the server either.
        let ms = self.timeout().as_millis();
        self.t(
            "session setup",
            client.batch_execute(&format!(
                "SET standard_conforming_strings = on; SET statement_timeout = {ms}; SET lock_timeout = {ms}"
            )),
        )
        .await?;
        Ok(client)
    }

    async fn connect(&self) -> Result<Client, BackendError> {
        let pc = self.admin_config()?;
        self.connect_with(pc).await
    }

    /// The comment of role `name`, `None` when there is no such role.
    async fn role_comment(
        &self,
        c: &Client,
        name: &str,
    ) -> Result<Option<Option<String>>, BackendError> {
        let row = self
            .t(
                "looking up the role",
                c.query_opt(
                    "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
                    &[&name],
                ),
            )
            .await?;
        Ok(row.map(|r| r.get::<_, Option<String>>(0)))
    }

    /// Roles created for `request_id`.
    async fn roles_of_request(
        &self,
        c: &Client,
        request_id: &str,
    ) -> Result<Vec<String>, BackendError> {
        let comment = format!("{COMMENT_PREFIX}{request_id}");
        let rows = self
            .t(
                "finding the request's roles",
                c.query(
                    "SELECT rolname::text FROM pg_roles WHERE shobj_description(oid, 'pg_authid') = $1 ORDER BY 1",
                    &[&comment],
                ),
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The roles a revoke or extend acts on: the lease's, or the request's.
    /// A lease id that is not a name this backend creates names nothing it granted.
    async fn targets(&self, c: &Client, spec: &RevokeSpec) -> Result<Vec<String>, BackendError> {
        match &spec.lease_id {
            Some(l) if is_lease_name(l) => Ok(vec![l.clone()]),
            Some(l) => {
                tracing::warn!(
                    lease = %crate::sanitize::line(l, 80),
                    "postgres: lease id is not a role this backend creates; nothing to do"
                );
                Ok(vec![])
            }
            None => self.roles_of_request(c, &spec.request_id).await,
        }
    }

    /// Refuses to touch a role this backend did not create.
    fn ours(name: &str, comment: &Option<String>) -> Result<(), BackendError> {
        match comment {
            Some(c) if c.starts_with(COMMENT_PREFIX) => Ok(()),
            _ => Err(failed(format!(
                "postgres: role {name} was not created by breakglass (no \"breakglass <request>\" comment); refusing to change it"
            ))),
        }
    }

    /// The database the credential is for.
    fn credential_db(&self, scope: &Scope, pc: &tokio_postgres::Config) -> String {
        scope
            .database
            .clone()
            .or_else(|| self.cfg.database.clone())
            .or_else(|| pc.get_dbname().map(str::to_string))
            .or_else(|| pc.get_user().map(str::to_string))
            .unwrap_or_else(|| "postgres".into())
    }

    async fn revoke_role(&self, c: &Client, name: &str) -> Result<(), BackendError> {
        match self.role_comment(c, name).await? {
            None => return Ok(()), // never created, or already gone
            Some(comment) => Self::ours(name, &comment)?,
        }
        match self.revoke_steps(c, name).await {
            Ok(()) => Ok(()),
            // A racing revoker (another console, a sweeper) may have finished first.
            Err(e) => match self.role_comment(c, name).await {
                Ok(None) => Ok(()),
                _ => Err(e),
            },
        }
    }

    async fn revoke_steps(&self, c: &Client, name: &str) -> Result<(), BackendError> {
        let q = quote_ident(name);
        // 1. No new logins, committed before anything else (autocommit).
        self.t(
            "ALTER ROLE NOLOGIN",
            c.batch_execute(&format!("ALTER ROLE {q} NOLOGIN")),
        )
        .await?;
        // 2. End the sessions it already has.
        let deadline = tokio::time::Instant::now() + self.cfg.session_timeout;
        loop {
            let rows = self
                .t(
                    "terminating sessions",
                    c.query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
                        &[&name],
                    ),
                )
                .await?;
            if rows.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(failed(format!(
                    "postgres: role {name} still has {} session(s) after {:?}; it cannot log in any more, retry the revoke",
                    rows.len(),
                    self.cfg.session_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // 3. What it owns. DROP OWNED / REASSIGN OWNED act on the connected database
        //    only, so run them here and in every other database where pg_shdepend
        //    says the role owns objects or holds privileges.
        let owned = match &self.cfg.reassign_owned_to {
            Some(to) => {
                check_name("reassign_owned_to", to)
                    .map_err(|e| failed(format!("postgres: {e}")))?;
                format!("REASSIGN OWNED BY {q} TO {}", quote_ident(to))
            }
            None => format!("DROP OWNED BY {q}"),
        };
        self.t("dropping what it owns", c.batch_execute(&owned))
            .await?;
        let dbs = self
            .t(
                "finding its objects in other databases",
                c.query(
                    "SELECT DISTINCT d.datname::text FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid \
                     WHERE s.refclassid = 'pg_authid'::regclass \
                       AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1) \
                       AND d.datname <> current_database() AND d.datallowconn",
                    &[&name],
                ),
            )
            .await?;
        for row in dbs {
            let db: String = row.get(0);
            let mut pc = self.admin_config()?;
            pc.dbname(&db);
            let other = self.connect_with(pc).await?;
            self.t(
                "dropping what it owns in another database",
                other.batch_execute(&owned),
            )
            .await?;
        }
        // 4. The role itself.
        self.t(
            "DROP ROLE",
            c.batch_execute(&format!("DROP ROLE IF EXISTS {q}")),
        )
        .await?;
        // 5. Confirm from the catalog.
        match self.role_comment(c, name).await? {
            None => Ok(()),
            Some(_) => Err(failed(format!(
                "postgres: role {name} still exists after DROP ROLE"
            ))),
        }
    }
}

#[async_trait::async_trait]
impl Backend for PostgresBackend {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError> {
        if !request_id_re().is_match(&spec.request_id) {
            return Err(failed(format!(
                "postgres: request id {:?} is not accepted: {REQUEST_ID_RULE}",
                crate::sanitize::line(&spec.request_id, 80)
            )));
        }
        let scope = Scope::parse(&spec.scope).map_err(|e| failed(format!("postgres: {e}")))?;
        let pc = self.admin_config()?;
        // Only ever a bind parameter and a percent-encoded URL part, never SQL text.
        let database = self.credential_db(&scope, &pc);
        let c = self.connect_with(pc.clone()).await?;
        let exists = self
            .t(
                "checking the database",
                c.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database]),
            )
            .await?;
        if exists.is_none() {
            return Err(failed(format!(
                "postgres: database {database} does not exist; fix the scope's or backend's database"
            )));
        }

        let name = role_name(&spec.request_id);
        let password = random_secret(40);
        let verifier =
            postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
        let until = spec
            .expires_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut create = format!(
            "CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT \
             CONNECTION LIMIT {} PASSWORD {} VALID UNTIL {}",
            quote_ident(&name),
            self.cfg.connection_limit,
            quote_literal(&verifier)?,
            quote_literal(&until)?,
        );
        if !scope.member_of.is_empty() {
            let roles: Vec<String> = scope.member_of.iter().map(|r| quote_ident(r)).collect();
            create.push_str(&format!(" IN ROLE {}", roles.join(", ")));
        }
        let comment = format!(
            "COMMENT ON ROLE {} IS {}",
            quote_ident(&name),
            quote_literal(&format!("{COMMENT_PREFIX}{}", spec.request_id))?
        );
        // One transaction: a role without its comment could not be found by
        // request id, so it must never exist.
        self.t(
            "creating the role",
            c.batch_execute(&format!("BEGIN; {create}; {comment}; COMMIT")),
        )
        .await?;

        let host = self
            .cfg
            .host
            .clone()
            .unwrap_or_else(|| match pc.get_hosts().first() {
                Some(Host::Tcp(h)) => h.clone(),
                _ => "localhost".into(),
            });
        let port = self
            .cfg
            .port
            .or_else(|| pc.get_ports().first().copied())
            .unwrap_or(5432);
        let url_host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let url = format!(
            "postgresql://{}:{}@{url_host}:{port}/{}",
            percent_encode(&name),
            percent_encode(password.expose_secret()),
            percent_encode(&database)
        );
        Ok(Grant {
            lease_id: name.clone(),
            expires_at: Some(spec.expires_at),
            credential: Credential(vec![
                ("username".into(), SecretString::from(name)),
                ("password".into(), password),
                ("host".into(), SecretString::from(host)),
                ("port".into(), SecretString::from(port.to_string())),
                ("database".into(), SecretString::from(database)),
                ("url".into(), SecretString::from(url)),
            ]),
        })
    }

    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError> {
        let c = self.connect().await?;
        for name in self.targets(&c, spec).await? {
            self.revoke_role(&c, &name).await?;
        }
        Ok(())
    }

    /// A copied password must be useless even if the revoke had failed or
    /// the role came back: each role of the request (by lease and by request
    /// id) first loses its password and its login, committed on their own,
    /// then is revoked (sessions ended, dropped).
    async fn invalidate(&self, spec: &RevokeSpec) -> Result<InvalidationOutcome, BackendError> {
        let c = self.connect().await?;
        let mut names = self.targets(&c, spec).await?;
        for n in self.roles_of_request(&c, &spec.request_id).await? {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let mut done = vec![];
        let mut cleared = false;
        for name in names {
            match self.role_comment(&c, &name).await? {
                None => done.push(format!("role {name} was already dropped")),
                Some(comment) => {
                    Self::ours(&name, &comment)?;
                    self.t(
                        "clearing the password",
                        c.batch_execute(&format!(
                            "ALTER ROLE {} NOLOGIN PASSWORD NULL",
                            quote_ident(&name)
                        )),
                    )
                    .await?;
                    cleared = true;
                    self.revoke_role(&c, &name).await?;
                    done.push(format!(
                        "role {name}: password cleared, login disabled, dropped"
                    ));
                }
            }
        }
        if done.is_empty() {
            done.push(format!("no role of {} remains", spec.request_id));
        }
        Ok(InvalidationOutcome {
            method: if cleared {
                InvalidationMethod::Rotated
            } else {
                InvalidationMethod::Revoked
            },
            confirmation: format!("postgres: {}", done.join("; ")),
        })
    }

    async fn extend(
        &self,
        spec: &RevokeSpec,
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let c = self.connect().await?;
        let until = expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let targets = self.targets(&c, spec).await?;
        if targets.is_empty() {
            return Err(failed(format!(
                "postgres: no role of {} to extend; access already ended on the target",
                spec.request_id
            )));
        }
        for name in targets {
            match self.role_comment(&c, &name).await? {
                None => {
                    return Err(failed(format!(
                        "postgres: role {name} no longer exists; access already ended on the target"
                    )))
                }
                Some(comment) => Self::ours(&name, &comment)?,
            }
            self.t(
                "ALTER ROLE VALID UNTIL",
                c.batch_execute(&format!(
                    "ALTER ROLE {} VALID UNTIL {}",
                    quote_ident(&name),
                    quote_literal(&until)?
                )),
            )
            .await?;
        }
        Ok(())
    }

    /// Gives the scope's `rotate_role` a fresh random password that nobody sees:
    /// whoever needs it next resets it through their own process.
    async fn rotate(&self, _role: &str, scope: &serde_json::Value) -> Result<(), BackendError> {
        let scope = Scope::parse(scope).map_err(|e| failed(format!("postgres: {e}")))?;
        let Some(target) = scope.rotate_role else {
            return Err(failed(
                "postgres: the role's scope names no rotate_role to rotate; add rotate_role = \"<standing role>\" or set rotate_after_use = false",
            ));
        };
        let pc = self.admin_config()?;
        if pc.get_user() == Some(target.as_str()) {
            return Err(failed(format!(
                "postgres: refusing to rotate {target}: it is the console's own admin role"
            )));
        }
        let c = self.connect_with(pc).await?;
        if self.role_comment(&c, &target).await?.is_none() {
            return Err(failed(format!(
                "postgres: rotate_role {target} does not exist"
            )));
        }
        let password = random_secret(40);
        let verifier =
            postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
        self.t(
            "rotating the password",
            c.batch_execute(&format!(
                "ALTER ROLE {} PASSWORD {}",
                quote_ident(&target),
                quote_literal(&verifier)?
            )),
        )
        .await?;
        Ok(())
    }

    /// Logs in as the issued role (the admin connection's host, port and TLS,
    /// the credential's user, password and database) and runs `SELECT 1`.
    async fn probe(
        &self,
        _spec: &RevokeSpec,
        credential: &Credential,
    ) -> Result<String, BackendError> {
        let (Some(user), Some(password), Some(database)) = (
            credential.get("username"),
            credential.get("password"),
            credential.get("database"),
        ) else {
            return Err(failed(
                "postgres: the credential has no username, password or database",
            ));
        };
        let mut pc = self.admin_config()?;
        pc.user(user).password(password).dbname(database);
        let c = self.connect_with(pc).await?;
        let one: i32 = self
            .t("SELECT 1 as the issued role", c.query_one("SELECT 1", &[]))
            .await?
            .get(0);
        if one != 1 {
            return Err(failed("postgres: SELECT 1 did not return 1"));
        }
        Ok(format!(
            "postgres: {user} logged in to {database} and ran SELECT 1"
        ))
    }

    async fn check(&self) -> Result<String, BackendError> {
        let c = self.connect().await?;
        let row = self
            .t("SELECT version()", c.query_one("SELECT version()", &[]))
            .await?;
        let v: String = row.get(0);
        let short: Vec<&str> = v.split_whitespace().take(2).collect();
        Ok(crate::sanitize::line(&short.join(" "), 80))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("abc"), "\"abc\"");
        assert_eq!(
            quote_ident("x\"; DROP ROLE postgres; --"),
            "\"x\"\"; DROP ROLE postgres; --\""
        );
        assert_eq!(quote_literal("it's").unwrap(), "'it''s'");
        assert!(quote_literal("a\\b").is_err());
        assert!(quote_literal("a\0b").is_err());
    }

    #[test]
    fn names_are_checked_strictly() {
        for ok in ["emergency_dba", "_x", "a", &"a".repeat(63)] {
            assert!(check_name("role", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Upper",
            "1abc",
            "a-b",
            "a b",
            "x\"; DROP ROLE postgres; --",
            "pg_read_all_data",
            "é",
            &"a".repeat(64),
        ] {
            let e = check_name("role", bad).unwrap_err();
            assert!(e.contains("lower-case"), "{e}");
        }
    }

    #[test]
    fn role_names_fit_the_identifier_limit() {
        for id in [
            "REQ-7",
            "",
            "REQ-1'; DROP TABLE x; --",
            &"R".repeat(500),
            &"é".repeat(100),
        ] {
            let n = role_name(id);
            assert!(n.len() <= 63, "{n}");
            assert!(check_name("generated", &n).is_ok(), "{n}");
            assert!(is_lease_name(&n), "{n}");
        }
        assert!(role_name("REQ-7").starts_with("bg_req_7_"));
        assert!(!is_lease_name("postgres"));
        assert!(!is_lease_name("bg-never-issued"));
    }

    #[test]
    fn scope_is_parsed_strictly() {
        let s =
            Scope::parse(&serde_json::json!({"member_of": ["a", "b"], "database": "app"})).unwrap();
        assert_eq!(s.member_of, vec!["a", "b"]);
        assert_eq!(s.database.as_deref(), Some("app"));
        assert!(Scope::parse(&serde_json::json!({"member_of": "a"})).is_err());
        assert!(Scope::parse(&serde_json::json!({"member_of": ["A;"]})).is_err());
        assert!(Scope::parse(&serde_json::json!({"memberof": ["a"]}))
            .unwrap_err()
            .contains("member_of"));
    }

    #[test]
    fn passwords_are_percent_encoded() {
        assert_eq!(percent_encode("a b/c@d:e%"), "a%20b%2Fc%40d%3Ae%25");
        assert_eq!(percent_encode("Az09-._~"), "Az09-._~");
    }
}
