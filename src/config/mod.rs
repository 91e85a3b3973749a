//! Config and policy files: serde types with spans, defaults, and validation that
//! reports every problem with file, line and what to write instead.

pub mod broker;
mod raw;
mod secrets;
mod validate;

pub use broker::{BrokerConfig, ClientConfig, Loaded};
pub use secrets::{check_owner_only, secret_files, SecretFile};
pub use validate::{load, load_any, load_any_str, load_str};

pub use crate::alert::config::SinkConfig;
pub use crate::backend::config::{BackendConfig, PostgresConfig, SshCaConfig};
use crate::domain::Policy;
pub use crate::incident::config::{FieldMap, RemoteSource, SourceConfig, SourceKind};
pub use crate::net::pg::{PgTls, PgUrlSource};
pub use crate::store::config::{PgStoreConfig, StoreConfig, StoreIdentity};
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
    pub alert_rules: crate::alert_vocab::AlertRules,
    pub recovery: RecoveryConfig,
    /// The console theme chosen in `[ui] theme`.
    pub ui_theme: Option<String>,
    /// `[ui] approval_bell` (default true).
    pub ui_approval_bell: bool,
    /// `[audit] checkpoint_key_file`: signs the checkpoint every alert carries.
    pub checkpoint_key: Option<PathBuf>,
    /// Who the acting person is (`[store] identity`).
    pub identity: StoreIdentity,
    /// `[broker]`: this is the broker's config; people's commands reach it there.
    pub broker: Option<BrokerConfig>,
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
pub struct RecoveryConfig {
    /// A Granting step older than this (or whose process is gone) is revoked and failed.
    pub grant_timeout: Duration,
    /// How long one revoke attempt may take before a sweeper may retry it.
    pub revoke_timeout: Duration,
    /// How many revocations one sweeper has in flight at once (`[recovery]
    /// revoke_concurrency`), so one slow backend call does not hold up the rest.
    pub revoke_concurrency: usize,
}

impl RecoveryConfig {
    pub const DEFAULT_REVOKE_CONCURRENCY: usize = 32;
    pub const MAX_REVOKE_CONCURRENCY: usize = 1024;
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            grant_timeout: Duration::from_secs(120),
            revoke_timeout: Duration::from_secs(60),
            revoke_concurrency: Self::DEFAULT_REVOKE_CONCURRENCY,
        }
    }
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
