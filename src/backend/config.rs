//! What the config says about each backend (parsed and checked by `config`).

use crate::net::pg::{PgTls, PgUrlSource};
use std::path::PathBuf;
use std::time::Duration;

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
    SshCa(SshCaConfig),
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

/// A `kind = "ssh-ca"` backend (see `backend::ssh_ca`).
#[derive(Debug, Clone)]
pub struct SshCaConfig {
    /// The CA's OpenSSH private key (Ed25519, unencrypted): the broker's alone.
    pub ca_key_file: PathBuf,
    /// The Key Revocation List servers read (`RevokedKeys`); the issue journal
    /// (`<krl>.issued`) and the lock (`<krl>.lock`) sit beside it.
    pub krl: PathBuf,
    /// The host and port shown in the `ssh` line (a role's scope may name its host).
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Waiting for the KRL's lock and for ssh-keygen.
    pub timeout: Duration,
}

impl BackendConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Demo { .. } => "demo",
            BackendConfig::Exec { .. } => "exec",
            BackendConfig::Postgres(_) => "postgres",
            BackendConfig::SshCa(_) => "ssh-ca",
            BackendConfig::Http { .. } => "http",
            BackendConfig::Vault { .. } => "vault",
        }
    }
}
