//! Where alerts go: a JSONL file, a signed JSON webhook, a Slack incoming webhook,
//! syslog (RFC 5424 over UDP or TCP with octet counting, RFC 6587; in `syslog`),
//! PagerDuty (Events API v2, approval notices only; in `pagerduty`).

use super::config::{Route, SinkConfig, Target};
pub use super::pagerduty::PagerDutySink;
pub use super::syslog::{rfc5424, SyslogSink, SD_ID};
use super::{AlertKind, Format, Sink, SinkError};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn env_secret(var: &str) -> Option<secrecy::SecretString> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(secrecy::SecretString::from)
}

pub fn build(cfg: &SinkConfig) -> Arc<dyn Sink> {
    let sink = target(&cfg.target);
    if cfg.route == Route::default() {
        sink
    } else {
        Arc::new(Routed::new(
            sink,
            cfg.route.kinds.clone(),
            cfg.route.roles.clone(),
        ))
    }
}

fn target(cfg: &Target) -> Arc<dyn Sink> {
    match cfg {
        Target::File { name, path, format } => Arc::new(FileSink {
            name: name.clone(),
            path: path.clone(),
            format: *format,
        }),
        Target::Webhook {
            name,
            url,
            secret_env,
            format,
            timeout,
        } => {
            let secret = match secret_env {
                None => None,
                Some(var) => match env_secret(var) {
                    Some(s) => Some(s),
                    None => {
                        return Arc::new(Misconfigured(
                            name.clone(),
                            format!("{var} is not set: the webhook cannot be signed"),
                            None,
                        ))
                    }
                },
            };
            Arc::new(WebhookSink::new(
                name.clone(),
                url.clone(),
                secret,
                *format,
                *timeout,
            ))
        }
        Target::Slack {
            name,
            url_env,
            timeout,
        } => match env_secret(url_env) {
            Some(url) => Arc::new(SlackSink::new(name.clone(), url, *timeout)),
            None => Arc::new(Misconfigured(
                name.clone(),
                format!("{url_env} is not set"),
                None,
            )),
        },
        Target::Syslog {
            name,
            address,
            tcp,
            format,
            max_message_bytes,
        } => Arc::new(SyslogSink {
            name: name.clone(),
            address: address.clone(),
            tcp: *tcp,
            format: *format,
            max_message_bytes: *max_message_bytes,
        }),
        Target::PagerDuty {
            name,
            url,
            routing_key_env,
            timeout,
        } => match env_secret(routing_key_env) {
            Some(key) => Arc::new(PagerDutySink::new(name.clone(), url.clone(), key, *timeout)),
            None => Arc::new(Misconfigured(
                name.clone(),
                format!("{routing_key_env} is not set: PagerDuty needs the routing key"),
                Some(AlertKind::ApprovalRequest),
            )),
        },
    }
}

/// A sink narrowed or widened by its `kinds` and `roles` settings.
pub struct Routed {
    inner: Arc<dyn Sink>,
    kinds: Option<BTreeSet<AlertKind>>,
    roles: Option<BTreeSet<String>>,
}

impl Routed {
    /// `kinds`: only these (None: what `inner` takes by default); `roles`: only
    /// alerts about these roles (None: any role, or none).
    pub fn new(
        inner: Arc<dyn Sink>,
        kinds: Option<BTreeSet<AlertKind>>,
        roles: Option<BTreeSet<String>>,
    ) -> Self {
        Routed {
            inner,
            kinds,
            roles,
        }
    }
}

#[async_trait::async_trait]
impl Sink for Routed {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn timeout(&self) -> Duration {
        self.inner.timeout()
    }
    fn takes(&self, kind: AlertKind, role: Option<&str>) -> bool {
        let kind_ok = match &self.kinds {
            Some(k) => k.contains(&kind),
            None => self.inner.takes(kind, role),
        };
        let role_ok = match &self.roles {
            Some(r) => role.is_some_and(|x| r.contains(x)),
            None => true,
        };
        kind_ok && role_ok
    }
    async fn send(&self, event_id: &str, payload: &Value) -> Result<(), SinkError> {
        self.inner.send(event_id, payload).await
    }
}

/// A sink whose secret is missing: every delivery fails with the reason, so the
/// alerts stay queued and visible as undelivered instead of vanishing. The
/// third field: the only kind it would take (a PagerDuty sink's), if one.
struct Misconfigured(String, String, Option<AlertKind>);

#[async_trait::async_trait]
impl Sink for Misconfigured {
    fn name(&self) -> &str {
        &self.0
    }
    fn takes(&self, kind: AlertKind, _role: Option<&str>) -> bool {
        self.2.map_or(kind.for_soc(), |only| kind == only)
    }
    async fn send(&self, _event_id: &str, _payload: &Value) -> Result<(), SinkError> {
        Err(SinkError::Misconfigured(self.1.clone()))
    }
}

/// Appends one JSON line per alert and syncs it to disk.
pub struct FileSink {
    pub name: String,
    pub path: PathBuf,
    pub format: Format,
}

#[async_trait::async_trait]
impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }
    async fn send(&self, _event_id: &str, payload: &Value) -> Result<(), SinkError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(SinkError::io(self.path.display().to_string()))?;
        let mut line = self.format.render(payload).to_string();
        line.push('\n');
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(SinkError::io(self.path.display().to_string()))
    }
}

pub(super) fn client(timeout: Duration) -> reqwest::Client {
    crate::net::http::client(timeout, timeout.min(Duration::from_secs(5)))
        .expect("a rustls client builds")
}

pub(super) async fn post(
    client: &reqwest::Client,
    req: reqwest::RequestBuilder,
) -> Result<(), SinkError> {
    post_scrubbed(client, req, str::to_string).await
}

/// `post`, with what the receiver answered passed through `scrub` before it is
/// cut to size (a secret it echoed is removed whole, not cut in half).
pub(super) async fn post_scrubbed(
    client: &reqwest::Client,
    req: reqwest::RequestBuilder,
    scrub: impl Fn(&str) -> String,
) -> Result<(), SinkError> {
    let _ = client;
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            SinkError::TimedOut(e.without_url())
        } else {
            SinkError::Unreachable(e.without_url())
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    Err(SinkError::Rejected {
        status,
        answer: crate::sanitize::line(&scrub(&body), 200),
    })
}

/// Generic JSON webhook, HMAC-signed like the HTTP backend (`crate::signing`), with
/// the event id in a header for de-duplication.
pub struct WebhookSink {
    name: String,
    url: String,
    secret: Option<secrecy::SecretString>,
    format: Format,
    timeout: Duration,
    client: reqwest::Client,
}

impl WebhookSink {
    pub fn new(
        name: String,
        url: String,
        secret: Option<secrecy::SecretString>,
        format: Format,
        timeout: Duration,
    ) -> Self {
        WebhookSink {
            name,
            url,
            secret,
            format,
            timeout,
            client: client(timeout),
        }
    }
}

#[async_trait::async_trait]
impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    async fn send(&self, event_id: &str, payload: &Value) -> Result<(), SinkError> {
        use secrecy::ExposeSecret;
        let body = self.format.render(payload).to_string();
        let ts = chrono::Utc::now().timestamp();
        let mut req = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Breakglass-Event-Id", event_id)
            .header(crate::signing::TIMESTAMP_HEADER, ts.to_string());
        if let Some(secret) = &self.secret {
            req = req.header(
                crate::signing::SIGNATURE_HEADER,
                crate::signing::sign(secret.expose_secret().as_bytes(), ts, body.as_bytes()),
            );
        }
        post(&self.client, req.body(body)).await
    }
}

/// Slack incoming webhook: a readable message. The URL is a secret (it is the
/// credential), so it comes from the environment.
pub struct SlackSink {
    name: String,
    url: secrecy::SecretString,
    timeout: Duration,
    client: reqwest::Client,
}

impl SlackSink {
    pub fn new(name: String, url: secrecy::SecretString, timeout: Duration) -> Self {
        SlackSink {
            name,
            url,
            timeout,
            client: client(timeout),
        }
    }
}

/// Slack's mrkdwn needs &, < and > escaped; the text is sanitised first.
fn slack_escape(s: &str) -> String {
    crate::sanitize::line(s, 500)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A JSON list of names, each escaped for Slack.
fn slack_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| slack_escape(x.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default()
}

pub fn slack_text(payload: &Value) -> String {
    if payload["kind"] == AlertKind::ApprovalRequest.as_str() {
        return slack_approval_text(payload);
    }
    let d = &payload["data"];
    let s = |v: &Value| slack_escape(v.as_str().unwrap_or("-"));
    let approvers = slack_list(&d["approvers"]);
    let icon = match payload["severity"].as_str() {
        Some("critical") => ":rotating_light:",
        Some("high") => ":warning:",
        _ => ":information_source:",
    };
    format!(
        "{icon} *Break-glass {}* `{}` on role `{}`\n*Incident:* {}\n*Requester:* {}   *Approvers:* {}\n*Condition:* {}   *Expires:* {}\n*Reason:* {}\n_event {} · audit #{}_",
        s(&payload["kind"]),
        s(&d["request_id"]),
        s(&d["role"]),
        s(&d["incident"]),
        s(&d["requester"]),
        if approvers.is_empty() { "-".into() } else { approvers.join(", ") },
        s(&d["condition"]),
        s(&d["expires_at"]),
        s(&d["reason"]),
        s(&payload["event_id"]),
        payload["audit_seq"],
    )
}

/// An RFC 3339 instant as people read it at 3 a.m.: `2026-11-25 22:38:13 UTC`.
pub(super) fn utc_seconds(v: &Value) -> String {
    v.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

/// An approval notice for the approvers' channel: a new request with all they
/// need to decide and the command that approves it; then one line per change
/// (each approval, the decision, activation, the end) so the thread reads as
/// what happened. Incoming webhooks cannot edit what they posted.
pub fn slack_approval_text(payload: &Value) -> String {
    let d = &payload["data"];
    let a = &d["approval"];
    let s = |v: &Value| slack_escape(v.as_str().unwrap_or("-"));
    let approved_by = slack_list(&d["approvers"]);
    let by = if approved_by.is_empty() {
        String::new()
    } else {
        format!(" (approved by {})", approved_by.join(", "))
    };
    let routine = a["routine_use"]
        .as_str()
        .map(|u| format!("; {}", slack_escape(u)))
        .unwrap_or_default();
    let count = format!(
        "{} of {} approvals{by}{routine}",
        a["approvals"], a["approvals_required"]
    );
    let head = format!("`{}` on role `{}`", s(&d["request_id"]), s(&d["role"]));
    let context = format!(
        "*Incident:* {}   *Requester:* {}",
        s(&d["incident"]),
        s(&d["requester"])
    );
    let footer = format!(
        "_event {} · audit #{}_",
        s(&payload["event_id"]),
        payload["audit_seq"]
    );
    let line = match a["status"].as_str().unwrap_or_default() {
        "waiting" | "partially_approved" => {
            return format!(
                ":bell: *Break-glass approval needed* {head}: {count}\n{context}\n*Condition:* {}   *TTL asked:* {}   *Lapses:* {}\n*Reason:* {}\n*Who may approve:* {}\nApprove with `{}`\n{footer}",
                s(&d["condition"]),
                s(&a["ttl"]),
                utc_seconds(&a["decide_by"]),
                s(&d["reason"]),
                s(&a["may_approve"]),
                s(&a["command"]),
            );
        }
        "approved" => {
            format!(":white_check_mark: *Approved* {head}: {count}; no approver is needed now")
        }
        "denied" => format!(":no_entry: *Denied* {head} by {}", s(&d["actor"])),
        "cancelled" => format!(":leftwards_arrow_with_hook: *Cancelled* {head} by its requester"),
        "lapsed" => format!(":hourglass: *Lapsed* {head}: {count}, not decided or used in time"),
        "active" => format!(
            ":unlock: *Active* {head} until {}",
            utc_seconds(&d["expires_at"])
        ),
        "ended" => format!(":lock: *Ended* {head}"),
        "failed" => format!(":x: *Grant failed* {head}"),
        other => format!("*{}* {head}", slack_escape(other)),
    };
    format!("{line}\n{context}\n{footer}")
}

#[async_trait::async_trait]
impl Sink for SlackSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    async fn send(&self, _event_id: &str, payload: &Value) -> Result<(), SinkError> {
        use secrecy::ExposeSecret;
        let body = serde_json::json!({ "text": slack_text(payload) });
        post(
            &self.client,
            self.client.post(self.url.expose_secret()).json(&body),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_receiver_keeps_the_connection_error_as_the_cause() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("its address")
            .port();
        let sink = WebhookSink::new(
            "soc".into(),
            format!("http://127.0.0.1:{port}/alerts"),
            None,
            Format::Native,
            Duration::from_secs(5),
        );
        let e = sink
            .send("EV-1-0", &serde_json::json!({"kind": "activation"}))
            .await
            .expect_err("nothing listens");
        assert!(matches!(e, SinkError::Unreachable(_)), "{e:?}");
        assert!(
            e.to_string().starts_with("cannot reach the receiver: "),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
        // What the outbox row records: the words, then the OS's reason.
        let chain = crate::net::http::error_chain(&e);
        assert!(chain.starts_with(&e.to_string()), "{chain}");
        assert!(chain.to_lowercase().contains("refused"), "{chain}");
        assert!(!chain.contains("/alerts"), "no URL: {chain}");
    }

    #[tokio::test]
    async fn a_file_sink_names_the_path_and_keeps_the_io_error() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let sink = FileSink {
            name: "jsonl".into(),
            path: dir.path().join("missing-dir").join("alerts.jsonl"),
            format: Format::Native,
        };
        let e = sink
            .send("EV-1-0", &serde_json::json!({}))
            .await
            .expect_err("no such directory");
        let source = std::error::Error::source(&e).expect("the io::Error");
        assert!(e.to_string().contains("alerts.jsonl: "), "{e}");
        assert!(e.to_string().ends_with(&source.to_string()), "{e}");
    }
}
