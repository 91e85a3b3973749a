//! The HTTP backend: the exec plugin protocol over HTTPS. Each operation is a
//! `POST {url}/{op}` whose body is the JSON line the exec backend writes on stdin,
//! signed with a shared secret:
//!
//! ```text
//! X-Breakglass-Timestamp: <unix seconds>
//! X-Breakglass-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//! ```
//!
//! The server checks the signature over the exact body bytes and rejects
//! timestamps more than five minutes away from its clock. The reply is the exec
//! protocol's reply. Grants carry `Idempotency-Key: <request id>` and are never
//! retried; revokes (idempotent by contract) are retried a bounded number of times
//! on 5xx, connection errors and timeouts. Redirects are not followed: a signed
//! request goes to the configured server or nowhere.

use super::exec::{clean, Reply, PROTOCOL};
use super::*;
use crate::net::http::ReadError;
use secrecy::ExposeSecret;
use std::time::Duration;
use zeroize::Zeroizing;

/// Replies (and error bodies) larger than this are refused.
pub(super) const MAX_BODY: usize = 1 << 20;
/// The clock skew the server is expected to accept, each way.
pub const TIMESTAMP_WINDOW: Duration = Duration::from_secs(300);
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Where a secret comes from: given directly (tests, embedding), or read from an
/// environment variable at each call, so the config never holds it.
#[derive(Clone)]
pub enum SecretSource {
    Value(SecretString),
    Env(String),
}

impl SecretSource {
    pub(super) fn resolve(
        &self,
        what: &str,
        config_key: &str,
    ) -> Result<SecretString, BackendError> {
        match self {
            SecretSource::Value(v) => Ok(v.clone()),
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v)),
                _ => Err(BackendError::Failed(format!(
                    "{what} is not set: export it in ${name} (the variable named by {config_key})"
                ))),
            },
        }
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Value(_) => f.write_str("Value(<redacted>)"),
            SecretSource::Env(n) => write!(f, "Env({n})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Total time for one request, answer included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Extra attempts for a revoke that hit a 5xx, a connection error or a timeout.
    pub revoke_retries: u32,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            revoke_retries: 3,
        }
    }
}

pub use crate::net::http::check_url;

/// The signature header value for `body` sent at `timestamp`; the same scheme as
/// alert webhooks (`crate::signing`).
pub use crate::signing::sign as signature;

/// A client with rustls, both timeouts, and no redirects.
pub(super) fn client(
    timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, String> {
    crate::net::http::client(timeout, connect_timeout)
        .map_err(|e| format!("cannot set up the HTTP client: {}", chain(&e)))
}

/// What went wrong before a status line and body were read.
pub(super) enum Transport {
    Timeout,
    Connect(String),
    Other(String),
}

/// An error and its causes on one line, cleaned.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    clean(&crate::net::http::error_chain(e))
}

/// Sends `req` and reads the whole body (at most `MAX_BODY`) into a buffer that
/// is wiped on drop. The body may hold credentials: it is never logged.
pub(super) async fn exchange(
    req: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(u16, Zeroizing<Vec<u8>>), Transport> {
    let work = async {
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        match crate::net::http::read_capped(resp, MAX_BODY).await {
            Ok(body) => Ok((status, body)),
            Err(ReadError::TooLarge) => Err(Transport::Other(format!(
                "the reply is larger than {} MiB",
                MAX_BODY >> 20
            ))),
            Err(ReadError::Transport(e)) => Err(transport(e)),
        }
    };
    // reqwest's own timeout covers the body too; this is the backstop.
    match tokio::time::timeout(timeout + Duration::from_millis(500), work).await {
        Ok(r) => r,
        Err(_) => Err(Transport::Timeout),
    }
}

fn transport(e: reqwest::Error) -> Transport {
    if e.is_timeout() {
        Transport::Timeout
    } else if e.is_connect() {
        Transport::Connect(chain(&e))
    } else {
        Transport::Other(chain(&e))
    }
}

/// The message of an error reply: its JSON `error` (or `message`) field, else its
/// text; sanitised and truncated.
pub(super) fn error_text(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["error", "message"]
                .iter()
                .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_string))
        });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    crate::sanitize::line(text.trim(), 300)
}

/// One failed attempt, and whether trying again is safe and may help.
pub(crate) struct Attempt {
    pub(crate) error: BackendError,
    pub(crate) retryable: bool,
}

pub struct HttpBackend {
    base: String,
    secret: SecretSource,
    opts: HttpOptions,
    client: Result<reqwest::Client, String>,
    /// Dates each request's signature.
    clock: Arc<dyn Clock>,
}

impl HttpBackend {
    /// With the shared secret itself.
    pub fn new(url: impl Into<String>, secret: SecretString, opts: HttpOptions) -> Self {
        Self::with_source(url.into(), SecretSource::Value(secret), opts)
    }

    /// With the shared secret read from `secret_env` at each call.
    pub fn from_env(
        url: impl Into<String>,
        secret_env: impl Into<String>,
        opts: HttpOptions,
    ) -> Self {
        Self::with_source(url.into(), SecretSource::Env(secret_env.into()), opts)
    }

    fn with_source(url: String, secret: SecretSource, opts: HttpOptions) -> Self {
        HttpBackend {
            base: url.trim_end_matches('/').to_string(),
            client: client(opts.timeout, opts.connect_timeout),
            secret,
            opts,
            clock: Arc::new(SystemClock),
        }
    }

    /// Takes time from `clock` (the engine's) instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    async fn call(
        &self,
        op: &'static str,
        fields: serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> Result<Reply, BackendError> {
        let client = self
            .client
            .as_ref()
            .map_err(|e| BackendError::Failed(e.clone()))?;
        let secret = self
            .secret
            .resolve("the HTTP backend's shared secret", "secret_env")?;
        let mut req = serde_json::json!({"protocol": PROTOCOL, "op": op});
        if let (Some(o), serde_json::Value::Object(b)) = (req.as_object_mut(), fields) {
            o.extend(b);
        }
        // A probe's body carries a credential: wiped once sent.
        let body = zeroize::Zeroizing::new(serde_json::to_vec(&req).expect("a Value serialises"));
        // Only revoke is retried: it is idempotent by contract. A grant that failed
        // in flight may have happened; the engine revokes it by request id.
        let attempts = if op == "revoke" {
            1 + self.opts.revoke_retries
        } else {
            1
        };
        let mut delay = BACKOFF_START;
        for attempt in 1..=attempts {
            match self.once(client, &secret, op, &body, idempotency_key).await {
                Ok(r) => return Ok(r),
                Err(a) if a.retryable && attempt < attempts => {
                    tracing::warn!(op, attempt, error = %a.error, "HTTP backend call failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
                Err(a) => {
                    return Err(match a.error {
                        BackendError::Failed(m) if attempt > 1 => {
                            BackendError::Failed(format!("{m} (after {attempt} attempts)"))
                        }
                        e => e,
                    })
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn once(
        &self,
        client: &reqwest::Client,
        secret: &SecretString,
        op: &'static str,
        body: &[u8],
        idempotency_key: Option<&str>,
    ) -> Result<Reply, Attempt> {
        let timestamp = self.clock.now().timestamp();
        let mut req = client
            .post(format!("{}/{op}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(crate::signing::TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                crate::signing::SIGNATURE_HEADER,
                signature(secret.expose_secret().as_bytes(), timestamp, body),
            )
            .body(body.to_vec());
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let (status, reply) = match exchange(req, self.opts.timeout).await {
            Ok(r) => r,
            Err(t) => {
                let error = match t {
                    Transport::Timeout => BackendError::Timeout(self.opts.timeout),
                    Transport::Connect(m) => {
                        BackendError::Failed(format!("{op}: cannot reach {}: {m}", self.base))
                    }
                    Transport::Other(m) => {
                        BackendError::Failed(format!("{op} to {}: {m}", self.base))
                    }
                };
                return Err(Attempt {
                    error,
                    retryable: true,
                });
            }
        };
        tracing::debug!(op, status, "HTTP backend answered");
        read_reply(op, status, &reply)
    }
}

/// Reads the server's answer: a 2xx body is the plugin protocol's reply (an
/// error when it says `"ok": false`); any other status is an error, retryable
/// for 5xx. Pure, so it can be fuzzed.
pub(crate) fn read_reply(op: &str, status: u16, reply: &[u8]) -> Result<Reply, Attempt> {
    let fail = |retryable: bool, what: String| Attempt {
        error: BackendError::Failed(what),
        retryable,
    };
    match status {
        200..=299 => {}
        400..=499 => {
            let msg = error_text(reply);
            let hint = if status == 401 || status == 403 {
                " (check the shared secret in secret_env and both clocks)"
            } else {
                ""
            };
            return Err(fail(false, format!("{op} refused by the server (HTTP {status}): {msg}{hint}")));
        }
        500..=599 => {
            return Err(fail(true, format!("{op}: server error (HTTP {status}): {}", error_text(reply))))
        }
        _ => {
            return Err(fail(false, format!(
                "{op}: unexpected HTTP {status} (redirects are not followed; point url at the server itself)"
            )))
        }
    }
    let reply: Reply = serde_json::from_slice(reply).map_err(|e| Attempt {
        error: BackendError::Protocol(format!(
            "{op} reply is not the plugin protocol's JSON object ({e}); see the plugin protocol in docs/src/backends/exec-protocol.md"
        )),
        retryable: false,
    })?;
    if !reply.ok {
        return Err(fail(
            false,
            format!(
                "{op} refused: {}",
                clean(reply.error.as_deref().unwrap_or("no error message given"))
            ),
        ));
    }
    Ok(reply)
}

#[async_trait::async_trait]
impl Backend for HttpBackend {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError> {
        let body = serde_json::to_value(spec).expect("serialises");
        self.call("grant", body, Some(&spec.request_id))
            .await?
            .into_grant()
    }

    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError> {
        self.call(
            "revoke",
            serde_json::to_value(spec).expect("serialises"),
            None,
        )
        .await
        .map(|_| ())
    }

    async fn extend(
        &self,
        spec: &RevokeSpec,
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let mut body = serde_json::to_value(spec).expect("serialises");
        body["expires_at"] = serde_json::json!(expires_at);
        self.call("extend", body, None).await.map(|_| ())
    }

    async fn rotate(&self, role: &str, scope: &serde_json::Value) -> Result<(), BackendError> {
        self.call(
            "rotate",
            serde_json::json!({"role": role, "scope": scope}),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `POST {url}/probe`: the lease and its credential; `ok` only when the
    /// target accepted it.
    async fn probe(
        &self,
        spec: &RevokeSpec,
        credential: &Credential,
    ) -> Result<String, BackendError> {
        let mut body = serde_json::to_value(spec).expect("serialises");
        body["credential"] = super::exec::probe_credential(credential);
        let r = self.call("probe", body, None).await?;
        Ok(clean(
            r.message
                .as_deref()
                .unwrap_or("the target accepted the credential"),
        ))
    }

    async fn check(&self) -> Result<String, BackendError> {
        let r = self.call("check", serde_json::json!({}), None).await?;
        Ok(clean(r.message.as_deref().unwrap_or("ok")))
    }
}
