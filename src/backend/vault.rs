//! The Vault backend: a short-lived Vault token per grant, through Vault's HTTP API.
//!
//! - grant: `POST /v1/auth/token/create-orphan` with the role scope's `policies`.
//!   Orphan, so the emergency token lives exactly its own TTL and does not die
//!   with (or keep depending on) breakglass's admin token, which is usually
//!   rotated on its own schedule. The credential is the token; the lease id is
//!   its accessor, which is not a secret.
//! - revoke: `POST /v1/auth/token/revoke-accessor`; an accessor Vault does not
//!   know ("invalid accessor", "token not found") is already revoked.
//! - revoke by request id (crash recovery): Vault cannot search tokens by
//!   metadata, so this lists every accessor and looks each one up (one request
//!   per token in the namespace, 8 at a time) to find `meta.request_id`.
//! - extend: only for renewable tokens, `POST /v1/auth/token/renew-accessor`,
//!   never past the token's `explicit_max_ttl`.
//! - check: `GET /v1/sys/health`, then the admin token's `lookup-self`.

use super::http::{check_url, client, error_text, exchange, SecretSource, Transport};
use super::*;
use futures::{StreamExt, TryStreamExt};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Marks the tokens this backend creates, so revoke by request id never touches
/// another tool's token that happens to carry a `request_id` in its metadata.
const ISSUER: &str = "breakglass";
const LOOKUP_CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
pub struct VaultOptions {
    /// Total time for one request.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Create renewable tokens (then `extend` renews them up to explicit_max_ttl).
    pub renewable: bool,
    /// Sent as `X-Vault-Namespace` (Vault Enterprise / HCP).
    pub namespace: Option<String>,
}

impl Default for VaultOptions {
    fn default() -> Self {
        VaultOptions {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            renewable: false,
            namespace: None,
        }
    }
}

pub struct VaultBackend {
    /// `None`: `$VAULT_ADDR`, read at each call.
    addr: Option<String>,
    token: SecretSource,
    opts: VaultOptions,
    client: Result<reqwest::Client, String>,
    /// Turns Vault's lease durations into instants on the engine's timeline.
    clock: Arc<dyn Clock>,
}

#[derive(Deserialize)]
struct AuthReply {
    auth: Option<Auth>,
}

#[derive(Deserialize)]
struct Auth {
    #[serde(default)]
    client_token: Option<SecretString>,
    #[serde(default)]
    accessor: Option<String>,
    #[serde(default)]
    lease_duration: i64,
}

#[derive(Deserialize)]
struct DataReply<T> {
    data: Option<T>,
}

#[derive(Deserialize)]
struct Keys {
    #[serde(default)]
    keys: Vec<String>,
}

#[derive(Deserialize)]
struct TokenInfo {
    #[serde(default)]
    creation_time: i64,
    #[serde(default)]
    explicit_max_ttl: i64,
    #[serde(default)]
    renewable: bool,
    #[serde(default)]
    ttl: i64,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct Health {
    #[serde(default)]
    version: String,
    #[serde(default)]
    cluster_name: Option<String>,
}

/// The message of a Vault error reply (`{"errors": [...]}`), sanitised.
fn vault_errors(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => crate::sanitize::line(e.errors.join("; ").trim(), 300),
        Ok(_) => "no error message given".into(),
        Err(_) => error_text(body),
    }
}

fn is_unknown_accessor(status: u16, body: &[u8]) -> bool {
    let m = vault_errors(body).to_ascii_lowercase();
    status == 400 && (m.contains("invalid accessor") || m.contains("token not found"))
}

/// A duration in the scope: seconds as a number, or a string such as "1h" or "90s".
fn scope_seconds(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().filter(|s| *s > 0),
        serde_json::Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| {
                    humantime::parse_duration(s)
                        .ok()
                        .map(|d| d.as_secs() as i64)
                })
                .filter(|s| *s > 0)
        }
        _ => None,
    }
}

/// The role scope's `policies`: a non-empty list of policy names. Without it Vault
/// would give the new token every policy of the admin token.
pub fn scope_policies(scope: &serde_json::Value) -> Result<Vec<String>, String> {
    let list = scope
        .get("policies")
        .and_then(|p| p.as_array())
        .ok_or("the role's scope needs policies = [\"<vault policy>\", ...]")?;
    let names: Vec<String> = list
        .iter()
        .filter_map(|p| p.as_str().map(str::trim))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if names.is_empty() || names.len() != list.len() {
        return Err("the role's scope.policies must list one or more Vault policy names".into());
    }
    if let Some(v) = scope.get("explicit_max_ttl") {
        if scope_seconds(v).is_none() {
            return Err(
                "the role's scope.explicit_max_ttl must be a duration such as \"1h\"".into(),
            );
        }
    }
    Ok(names)
}

impl VaultBackend {
    /// With the address and admin token given directly.
    pub fn new(addr: impl Into<String>, token: SecretString, opts: VaultOptions) -> Self {
        Self::with(Some(addr.into()), SecretSource::Value(token), opts)
    }

    /// Address from `addr` or else `$VAULT_ADDR`, admin token from `$token_env`,
    /// both read at each call.
    pub fn from_env(
        addr: Option<String>,
        token_env: impl Into<String>,
        opts: VaultOptions,
    ) -> Self {
        Self::with(addr, SecretSource::Env(token_env.into()), opts)
    }

    fn with(addr: Option<String>, token: SecretSource, opts: VaultOptions) -> Self {
        VaultBackend {
            addr,
            token,
            client: client(opts.timeout, opts.connect_timeout),
            opts,
            clock: Arc::new(SystemClock),
        }
    }

    /// Takes time from `clock` (the engine's) instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn addr(&self) -> Result<String, BackendError> {
        let addr = match &self.addr {
            Some(a) => a.clone(),
            None => {
                let a = std::env::var("VAULT_ADDR").unwrap_or_default();
                if a.trim().is_empty() {
                    return Err(BackendError::Failed(
                        "the Vault address is not set: write addr = \"https://vault.example:8200\" in the backend config or export VAULT_ADDR".into(),
                    ));
                }
                check_url(a.trim())
                    .map_err(|e| BackendError::Failed(format!("VAULT_ADDR: {e}")))?;
                a
            }
        };
        Ok(addr.trim().trim_end_matches('/').to_string())
    }

    /// One Vault API call with `token` (the admin token unless given); returns the
    /// status and body of any answer, so each operation reads Vault's codes itself.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        token: Option<&SecretString>,
    ) -> Result<(u16, zeroize::Zeroizing<Vec<u8>>), BackendError> {
        let client = self
            .client
            .as_ref()
            .map_err(|e| BackendError::Failed(e.clone()))?;
        let addr = self.addr()?;
        let admin;
        let token = match token {
            Some(t) => t,
            None => {
                admin = self.token.resolve("the Vault admin token", "token_env")?;
                &admin
            }
        };
        let mut req = client
            .request(method, format!("{addr}{path}"))
            .header("X-Vault-Token", token.expose_secret())
            .header("X-Vault-Request", "true");
        if let Some(ns) = &self.opts.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        match exchange(req, self.opts.timeout).await {
            Ok(r) => {
                tracing::debug!(path, status = r.0, "Vault answered");
                Ok(r)
            }
            Err(Transport::Timeout) => Err(BackendError::Timeout(self.opts.timeout)),
            Err(Transport::Connect(m)) => Err(BackendError::Failed(format!(
                "cannot reach Vault at {addr}: {m}"
            ))),
            Err(Transport::Other(m)) => Err(BackendError::Failed(format!("Vault at {addr}: {m}"))),
        }
    }

    fn refused(what: &str, status: u16, body: &[u8]) -> BackendError {
        BackendError::Failed(format!(
            "Vault refused to {what} (HTTP {status}): {}",
            vault_errors(body)
        ))
    }

    fn parse<T: for<'de> Deserialize<'de>>(what: &str, body: &[u8]) -> Result<T, BackendError> {
        serde_json::from_slice(body).map_err(|e| {
            BackendError::Protocol(format!(
                "Vault's answer to {what} is not the JSON Vault documents ({e})"
            ))
        })
    }

    /// The token behind `accessor`, or `None` when Vault does not know it.
    async fn lookup_accessor(&self, accessor: &str) -> Result<Option<TokenInfo>, BackendError> {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/auth/token/lookup-accessor",
                Some(&serde_json::json!({ "accessor": accessor })),
                None,
            )
            .await?;
        match status {
            200 => Ok(Self::parse::<DataReply<TokenInfo>>("lookup-accessor", &body)?.data),
            _ if is_unknown_accessor(status, &body) => Ok(None),
            _ => Err(Self::refused("look up a token accessor", status, &body)),
        }
    }

    async fn revoke_accessor(&self, accessor: &str) -> Result<(), BackendError> {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/auth/token/revoke-accessor",
                Some(&serde_json::json!({ "accessor": accessor })),
                None,
            )
            .await?;
        match status {
            200..=299 => Ok(()),
            // Gone already (revoked, expired, or never issued): revoke is idempotent.
            _ if is_unknown_accessor(status, &body) => Ok(()),
            _ => Err(Self::refused("revoke the token", status, &body)),
        }
    }

    /// Every accessor of a token this backend issued for `request_id`.
    async fn accessors_for(&self, request_id: &str) -> Result<Vec<String>, BackendError> {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                "/v1/auth/token/accessors?list=true",
                None,
                None,
            )
            .await?;
        let keys = match status {
            200 => Self::parse::<DataReply<Keys>>("the accessor list", &body)?
                .data
                .map(|d| d.keys)
                .unwrap_or_default(),
            // Vault answers an empty LIST with 404.
            404 => vec![],
            _ => {
                return Err(Self::refused(
                    "list token accessors (the admin token needs sudo on auth/token/accessors)",
                    status,
                    &body,
                ))
            }
        };
        futures::stream::iter(keys)
            .map(|a| async move {
                let info = self.lookup_accessor(&a).await?;
                let ours = info.and_then(|i| i.meta).is_some_and(|m| {
                    m.get("request_id").map(String::as_str) == Some(request_id)
                        && m.get("issued_by").map(String::as_str) == Some(ISSUER)
                });
                Ok::<_, BackendError>(ours.then_some(a))
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .try_filter_map(|a| async move { Ok(a) })
            .try_collect()
            .await
    }
}

#[async_trait::async_trait]
impl Backend for VaultBackend {
    fn kind(&self) -> &'static str {
        "vault"
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError> {
        let policies = scope_policies(&spec.scope).map_err(BackendError::Failed)?;
        let ttl = spec.ttl_seconds.max(1);
        let max_ttl = spec
            .scope
            .get("explicit_max_ttl")
            .and_then(scope_seconds)
            .unwrap_or(ttl);
        let body = serde_json::json!({
            "policies": policies,
            "ttl": format!("{ttl}s"),
            "explicit_max_ttl": format!("{max_ttl}s"),
            "renewable": self.opts.renewable,
            // Exactly the role's policies. The default policy is editable per
            // site, and its renew-self would let the holder of a renewable token
            // stretch it to explicit_max_ttl without the approvals extend needs.
            "no_default_policy": true,
            "display_name": format!("breakglass-{}", spec.request_id),
            "meta": {
                "request_id": spec.request_id,
                "incident": spec.incident,
                "requester": spec.requester,
                "role": spec.role,
                "issued_by": ISSUER,
            },
        });
        let (status, reply) = self
            .call(
                reqwest::Method::POST,
                "/v1/auth/token/create-orphan",
                Some(&body),
                None,
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(Self::refused("create the token", status, &reply));
        }
        let auth = Self::parse::<AuthReply>("token create", &reply)?
            .auth
            .ok_or_else(|| {
                BackendError::Protocol("Vault's token create answer has no auth block".into())
            })?;
        let accessor = auth
            .accessor
            .filter(|a| !a.trim().is_empty())
            .ok_or_else(|| {
                BackendError::Protocol("Vault's token create answer has no accessor".into())
            })?;
        let token = auth
            .client_token
            .filter(|t| !t.expose_secret().is_empty())
            .ok_or_else(|| {
                BackendError::Protocol("Vault's token create answer has no client_token".into())
            })?;
        Ok(Grant {
            lease_id: crate::sanitize::line(&accessor, 200),
            expires_at: (auth.lease_duration > 0)
                .then(|| self.clock.now() + chrono::Duration::seconds(auth.lease_duration)),
            credential: Credential(vec![("token".into(), token)]),
        })
    }

    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError> {
        match &spec.lease_id {
            Some(accessor) => self.revoke_accessor(accessor).await,
            None => {
                for a in self.accessors_for(&spec.request_id).await? {
                    self.revoke_accessor(&a).await?;
                }
                Ok(())
            }
        }
    }

    async fn extend(
        &self,
        spec: &RevokeSpec,
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        const AGAIN: &str = "; end access and request it again";
        if !self.opts.renewable {
            return Err(BackendError::NotSupported(
                "extending a Vault token that is not renewable (renewable = false in the backend config); end access and request it again",
            ));
        }
        let accessor = spec.lease_id.as_deref().ok_or_else(|| {
            BackendError::Failed(format!(
                "no Vault accessor is recorded for {}{AGAIN}",
                spec.request_id
            ))
        })?;
        let info = self.lookup_accessor(accessor).await?.ok_or_else(|| {
            BackendError::Failed(format!(
                "Vault no longer knows the token of {}{AGAIN}",
                spec.request_id
            ))
        })?;
        if !info.renewable {
            return Err(BackendError::NotSupported(
                "extending a Vault token that was created non-renewable; end access and request it again",
            ));
        }
        if info.explicit_max_ttl > 0
            && expires_at.timestamp() > info.creation_time + info.explicit_max_ttl
        {
            return Err(BackendError::NotSupported(
                "extending a Vault token past its explicit_max_ttl (scope.explicit_max_ttl); end access and request it again",
            ));
        }
        let increment = (expires_at - self.clock.now()).num_seconds().max(1);
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/auth/token/renew-accessor",
                Some(&serde_json::json!({"accessor": accessor, "increment": format!("{increment}s")})),
                None,
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(Self::refused("renew the token", status, &body));
        }
        let auth = Self::parse::<AuthReply>("token renew", &body)?
            .auth
            .ok_or_else(|| {
                BackendError::Protocol("Vault's token renew answer has no auth block".into())
            })?;
        let granted = self.clock.now() + chrono::Duration::seconds(auth.lease_duration);
        if granted + chrono::Duration::seconds(5) < expires_at {
            return Err(BackendError::Failed(format!(
                "Vault renewed the token only until {} (capped by a Vault max TTL), not {}; the extension is not recorded",
                granted.format("%H:%M:%S UTC"),
                expires_at.format("%H:%M:%S UTC")
            )));
        }
        Ok(())
    }

    /// `token lookup-self` with the issued token: Vault answers only while
    /// the token lives.
    async fn probe(
        &self,
        _spec: &RevokeSpec,
        credential: &Credential,
    ) -> Result<String, BackendError> {
        let token = credential
            .get("token")
            .map(|t| SecretString::from(t.to_string()))
            .ok_or_else(|| BackendError::Failed("Vault: the credential has no token".into()))?;
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                "/v1/auth/token/lookup-self",
                None,
                Some(&token),
            )
            .await?;
        if status != 200 {
            return Err(Self::refused(
                "accept the issued token (lookup-self)",
                status,
                &body,
            ));
        }
        let me = Self::parse::<DataReply<TokenInfo>>("lookup-self", &body)?
            .data
            .ok_or_else(|| {
                BackendError::Protocol("Vault's lookup-self answer has no data".into())
            })?;
        Ok(format!(
            "Vault accepted the issued token (lookup-self; {}s left)",
            me.ttl
        ))
    }

    async fn check(&self) -> Result<String, BackendError> {
        let addr = self.addr()?;
        let (status, body) = self
            .call(reqwest::Method::GET, "/v1/sys/health", None, None)
            .await?;
        let state = match status {
            200 => "active, unsealed",
            429 => "unsealed standby",
            472 => "disaster-recovery secondary",
            473 => "performance standby",
            501 => {
                return Err(BackendError::Failed(format!(
                    "Vault at {addr} is not initialized"
                )))
            }
            503 => return Err(BackendError::Failed(format!("Vault at {addr} is sealed"))),
            _ => return Err(Self::refused("report its health", status, &body)),
        };
        let h = Self::parse::<Health>("sys/health", &body)?;
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                "/v1/auth/token/lookup-self",
                None,
                None,
            )
            .await?;
        if status != 200 {
            return Err(BackendError::Failed(format!(
                "Vault at {addr} does not accept the admin token (HTTP {status}): {}",
                vault_errors(&body)
            )));
        }
        let me = Self::parse::<DataReply<TokenInfo>>("lookup-self", &body)?
            .data
            .ok_or_else(|| {
                BackendError::Protocol("Vault's lookup-self answer has no data".into())
            })?;
        let ttl = if me.ttl > 0 {
            format!("expires in {}", crate::domain::time::human(me.ttl))
        } else {
            "does not expire".into()
        };
        Ok(crate::sanitize::line(
            &format!(
                "Vault {} at {addr}{}: {state}; admin token {ttl}",
                h.version,
                h.cluster_name
                    .map(|c| format!(" (cluster {c})"))
                    .unwrap_or_default()
            ),
            300,
        ))
    }
}
