//! What actually grants access. Every backend is idempotent on revoke: revoking
//! twice, or revoking a lease it never issued, succeeds.

pub mod config;
pub mod demo;
pub mod exec;
pub mod http;
pub mod postgres;
pub mod ssh_ca;
pub mod vault;

use crate::clock::{Clock, SystemClock};
pub use crate::domain::{InvalidationMethod, InvalidationOutcome};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

pub use demo::DemoBackend;
pub use exec::ExecBackend;
pub use http::HttpBackend;
pub use postgres::PostgresBackend;
pub use ssh_ca::SshCaBackend;
pub use vault::VaultBackend;

/// What a backend is asked to grant.
#[derive(Debug, Clone, Serialize)]
pub struct GrantSpec {
    pub request_id: String,
    pub role: String,
    pub scope: serde_json::Value,
    pub requester: String,
    pub ttl_seconds: i64,
    pub expires_at: DateTime<Utc>,
    pub incident: String,
}

/// What to revoke. `lease_id` is `None` when recovery revokes a grant whose
/// outcome was never recorded: the backend then revokes by request id.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeSpec {
    pub request_id: String,
    pub role: String,
    pub scope: serde_json::Value,
    pub lease_id: Option<String>,
}

/// A credential: named values, each secret. Never serialised, logged or stored;
/// `Debug` prints only the names.
#[derive(Default)]
pub struct Credential(pub Vec<(String, SecretString)>);

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=<redacted>")))
            .finish()
    }
}

impl Credential {
    /// One named value, for a backend's probe.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.expose_secret())
    }

    /// For printing once to the operator's terminal.
    pub fn reveal(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.expose_secret()))
    }
}

#[derive(Debug)]
pub struct Grant {
    pub lease_id: String,
    /// What the target itself enforces, when it enforces an expiry.
    pub expires_at: Option<DateTime<Utc>>,
    pub credential: Credential,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Failed(String),
    #[error("no answer within {0:?}; the call was abandoned")]
    Timeout(std::time::Duration),
    #[error("malformed reply: {0}")]
    Protocol(String),
    #[error("this backend does not support {0}")]
    NotSupported(&'static str),
}

#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    fn kind(&self) -> &'static str;
    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError>;
    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError>;
    /// Moves the target-side expiry after an extension.
    async fn extend(
        &self,
        _spec: &RevokeSpec,
        _expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        Ok(())
    }
    /// Extends access and returns the requester's new credential, for a
    /// backend whose credential carries its own expiry (an SSH certificate: a
    /// new one with the later expiry, the old one revoked). The default moves
    /// the target's expiry with `extend` and returns none. The engine calls
    /// this; `requester` is whom the new credential is for.
    async fn extend_credential(
        &self,
        spec: &RevokeSpec,
        _requester: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Option<Credential>, BackendError> {
        self.extend(spec, expires_at).await.map(|()| None)
    }
    /// Whether `extend_credential` issues a new credential (which the caller
    /// must be able to show): front ends check before extending.
    fn extension_issues_credential(&self) -> bool {
        false
    }
    /// Rotates the role's standing secret after use, where the role asks for it.
    async fn rotate(&self, _role: &str, _scope: &serde_json::Value) -> Result<(), BackendError> {
        Err(BackendError::NotSupported("rotate"))
    }
    /// Makes credentials a review says were copied useless, and says what was
    /// done (names only, never a secret). Asked after access ended, so the
    /// default revokes again by request id (idempotent): what was granted is
    /// gone at the target. A backend whose credential could outlive that
    /// (a password on a role that could come back) overrides it. The engine
    /// also rotates the role's standing secret where the role rotates after use.
    async fn invalidate(&self, spec: &RevokeSpec) -> Result<InvalidationOutcome, BackendError> {
        self.revoke(spec).await?;
        Ok(InvalidationOutcome {
            method: InvalidationMethod::Revoked,
            confirmation: format!(
                "{}: {} revoked again by request id",
                self.kind(),
                spec.lease_id.as_deref().unwrap_or(&spec.request_id)
            ),
        })
    }
    /// Proves `credential`, issued for `spec`'s lease, works on the target now
    /// (a drill: once after the grant, once after the revocation, when it must
    /// not). `Ok` says what was proven; `Err` says why it did not work. The
    /// credential goes nowhere else.
    async fn probe(
        &self,
        _spec: &RevokeSpec,
        _credential: &Credential,
    ) -> Result<String, BackendError> {
        Err(BackendError::NotSupported("probe"))
    }
    /// Health check: a short description of the target when it answers.
    async fn check(&self) -> Result<String, BackendError>;
}

/// The backend a config names; those that read the time take it from `clock`.
pub fn build(cfg: &config::BackendConfig, clock: Arc<dyn Clock>) -> Arc<dyn Backend> {
    use config::BackendConfig as C;
    match cfg {
        C::Demo { state_path } => Arc::new(DemoBackend::new(state_path.clone())),
        C::Exec {
            command,
            args,
            timeout,
            env_allow,
        } => Arc::new(ExecBackend::new(
            command.clone(),
            args.clone(),
            *timeout,
            env_allow.clone(),
        )),
        C::Postgres(pg) => Arc::new(PostgresBackend::new(pg.clone())),
        C::SshCa(ca) => Arc::new(SshCaBackend::new(ca.clone(), clock)),
        C::Http {
            url,
            secret_env,
            timeout,
            connect_timeout,
            revoke_retries,
        } => Arc::new(
            HttpBackend::from_env(
                url.clone(),
                secret_env.clone(),
                http::HttpOptions {
                    timeout: *timeout,
                    connect_timeout: *connect_timeout,
                    revoke_retries: *revoke_retries,
                },
            )
            .with_clock(clock),
        ),
        C::Vault {
            addr,
            token_env,
            namespace,
            renewable,
            timeout,
            connect_timeout,
        } => Arc::new(
            VaultBackend::from_env(
                addr.clone(),
                token_env.clone(),
                vault::VaultOptions {
                    timeout: *timeout,
                    connect_timeout: *connect_timeout,
                    renewable: *renewable,
                    namespace: namespace.clone(),
                },
            )
            .with_clock(clock),
        ),
    }
}

/// A random secret of `len` characters from an unambiguous alphabet.
pub fn random_secret(len: usize) -> SecretString {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    let s: String = (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    SecretString::from(s)
}
