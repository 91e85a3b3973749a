//! Config and policy files: serde types with spans, defaults, and validation that
//! reports every problem with file, line and what to write instead.

mod raw;
mod validate;

pub use validate::{load, load_str};

use crate::domain::Policy;
pub use crate::net::pg::{PgTls, PgUrlSource};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One thing wrong with a config or policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A loaded and validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub policy: Policy,
    pub store: StoreConfig,
    pub incident_sources: Vec<SourceConfig>,
    pub backends: BTreeMap<String, BackendConfig>,
    pub alert_sinks: Vec<SinkConfig>,
    pub alert_rules: crate::alert::AlertRules,
    pub recovery: RecoveryConfig,
    /// The console theme chosen in `[ui] theme`.
    pub ui_theme: Option<String>,
    /// `[audit] checkpoint_key_file`: signs the checkpoint every alert carries.
    pub checkpoint_key: Option<PathBuf>,
    /// Who the acting person is (`[store] identity`).
    pub identity: StoreIdentity,
}

impl Config {
    /// Where the store keeps its files (drafts live beside it).
    pub fn data_dir(&self) -> PathBuf {
        match &self.store {
            StoreConfig::Sqlite { path } => {
                path.parent().map(Path::to_path_buf).unwrap_or_default()
            }
            StoreConfig::Postgres(pg) => pg.data_dir.clone(),
        }
    }
    pub fn is_demo(&self) -> bool {
        self.policy.demo_personas.is_some()
    }
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Sqlite {
        path: PathBuf,
    },
    /// A shared PostgreSQL store (team mode).
    Postgres(PgStoreConfig),
}

/// `[store] kind = "postgres"`.
#[derive(Debug, Clone)]
pub struct PgStoreConfig {
    /// Where the connection string is read from (never inline: it may carry a password).
    pub url: PgUrlSource,
    /// `None`: no TLS for a Unix socket or a loopback host, verify-full otherwise.
    pub tls: Option<PgTls>,
    pub ca_file: Option<PathBuf>,
    /// Local files (console drafts, the demo backend's target): `data_dir`, else
    /// the platform data dir.
    pub data_dir: PathBuf,
}

/// Who is acting: the operating-system account, or the store's database login
/// (`SELECT session_user`, PostgreSQL only), so the store vouches for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreIdentity {
    #[default]
    Os,
    Database,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    /// How long a source's answers are reused (`cache_ttl`, default 10 s; zero: never).
    pub cache_ttl: Duration,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    File {
        path: PathBuf,
    },
    /// PagerDuty REST API v2 (`base_url` default `https://api.pagerduty.com`).
    PagerDuty(RemoteSource),
    /// Opsgenie Incident API v1 (`base_url` default `https://api.opsgenie.com`).
    Opsgenie(RemoteSource),
    /// Any endpoint returning a JSON list of incidents (`url` is the list itself).
    Http {
        remote: RemoteSource,
        /// Dotted path to the list inside the response; `None`: the response is the list.
        items_path: Option<String>,
        fields: FieldMap,
        /// Status values that count as open (compared case-insensitively).
        open_values: Vec<String>,
    },
}

/// What every HTTP incident source shares.
#[derive(Debug, Clone)]
pub struct RemoteSource {
    /// The API's base URL (pagerduty, opsgenie) or the list's URL (http).
    pub url: String,
    /// The environment variable holding the token, read at every call. Tokens
    /// never sit in the config file.
    pub token_env: Option<String>,
    /// Total time for one listing or lookup, pages and rate-limit waits included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// At most this many incidents are taken from one listing (default 10,000).
    pub max_incidents: usize,
}

/// Dotted paths (`a.b.0.c`) into one item of a generic HTTP source's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    pub id: String,
    pub title: String,
    pub severity: Option<String>,
    /// Unset: every listed item counts as open.
    pub status: Option<String>,
    pub url: Option<String>,
    pub opened_at: Option<String>,
}

#[derive(Debug, Clone)]
pub enum BackendConfig {
    Demo {
        state_path: PathBuf,
    },
    Exec {
        command: PathBuf,
        args: Vec<String>,
        timeout: Duration,
        env_allow: Vec<String>,
    },
    Postgres(PostgresConfig),
    Http {
        url: String,
        /// The variable holding the shared HMAC secret.
        secret_env: String,
        timeout: Duration,
        connect_timeout: Duration,
        revoke_retries: u32,
    },
    Vault {
        /// `None`: `$VAULT_ADDR` at call time.
        addr: Option<String>,
        /// The variable holding the admin token (default `VAULT_TOKEN`).
        token_env: String,
        namespace: Option<String>,
        renewable: bool,
        timeout: Duration,
        connect_timeout: Duration,
    },
}

/// A `kind = "postgres"` backend (see `backend::postgres`).
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// Where the admin connection string is read from, at every call. Never
    /// inline in the config: it carries a password.
    pub url: PgUrlSource,
    /// `None`: no TLS for a Unix socket or a loopback host, verify-full otherwise.
    pub tls: Option<PgTls>,
    /// Extra trust anchors (PEM) for verify-full, instead of the web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Applied to connecting and to every statement.
    pub timeout: Duration,
    /// How long revoke waits for the granted user's sessions to end.
    pub session_timeout: Duration,
    pub connection_limit: u32,
    /// The credential's database when the scope names none (default: the admin URL's).
    pub database: Option<String>,
    /// On revoke, `REASSIGN OWNED BY <user> TO <this>`; unset: `DROP OWNED`.
    pub reassign_owned_to: Option<String>,
    /// What the credential reports as host and port (default: the admin URL's).
    pub host: Option<String>,
    pub port: Option<u16>,
}

impl BackendConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Demo { .. } => "demo",
            BackendConfig::Exec { .. } => "exec",
            BackendConfig::Postgres(_) => "postgres",
            BackendConfig::Http { .. } => "http",
            BackendConfig::Vault { .. } => "vault",
        }
    }
}

/// Alert sinks. Secrets (webhook signing keys, Slack URLs) are named by their
/// environment variable and read when the sink is built.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    File {
        name: String,
        path: PathBuf,
        format: crate::alert::Format,
    },
    Webhook {
        name: String,
        url: String,
        secret_env: Option<String>,
        format: crate::alert::Format,
        timeout: Duration,
    },
    Slack {
        name: String,
        url_env: String,
        timeout: Duration,
    },
    Syslog {
        name: String,
        address: String,
        tcp: bool,
        format: crate::alert::Format,
        /// The largest message sent; longer alerts have their text shortened.
        max_message_bytes: usize,
    },
}

#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    /// A Granting step older than this (or whose process is gone) is revoked and failed.
    pub grant_timeout: Duration,
    /// How long one revoke attempt may take before a sweeper may retry it.
    pub revoke_timeout: Duration,
}

/// Where the config is looked for: `--config`, else `$BREAKGLASS_CONFIG`, else the
/// platform config dir.
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "breakglass")
        .map(|d| d.config_dir().join("breakglass.toml"))
}

pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "breakglass").map(|d| d.data_dir().to_path_buf())
}

/// The commented starter config `breakglass init` writes.
pub const STARTER: &str = include_str!("starter.toml");
