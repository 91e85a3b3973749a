//! Where alerts go: a JSONL file, a signed JSON webhook, a Slack incoming webhook,
//! syslog (RFC 5424 over UDP or TCP with octet counting, RFC 6587; in `syslog`).

use super::config::SinkConfig;
pub use super::syslog::{rfc5424, SyslogSink, SD_ID};
use super::{Format, Sink};
use serde_json::Value;
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
    match cfg {
        SinkConfig::File { name, path, format } => Arc::new(FileSink {
            name: name.clone(),
            path: path.clone(),
            format: *format,
        }),
        SinkConfig::Webhook {
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
        SinkConfig::Slack {
            name,
            url_env,
            timeout,
        } => match env_secret(url_env) {
            Some(url) => Arc::new(SlackSink::new(name.clone(), url, *timeout)),
            None => Arc::new(Misconfigured(name.clone(), format!("{url_env} is not set"))),
        },
        SinkConfig::Syslog {
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
    }
}

/// A sink whose secret is missing: every delivery fails with the reason, so the
/// alerts stay queued and visible as undelivered instead of vanishing.
struct Misconfigured(String, String);

#[async_trait::async_trait]
impl Sink for Misconfigured {
    fn name(&self) -> &str {
        &self.0
    }
    async fn send(&self, _event_id: &str, _payload: &Value) -> Result<(), String> {
        Err(self.1.clone())
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
    async fn send(&self, _event_id: &str, payload: &Value) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mut line = self.format.render(payload).to_string();
        line.push('\n');
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

fn client(timeout: Duration) -> reqwest::Client {
    crate::net::http::client(timeout, timeout.min(Duration::from_secs(5)))
        .expect("a rustls client builds")
}

async fn post(client: &reqwest::Client, req: reqwest::RequestBuilder) -> Result<(), String> {
    let _ = client;
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            "timed out".to_string()
        } else {
            format!("cannot reach the receiver: {}", e.without_url())
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    Err(format!(
        "HTTP {status}: {}",
        crate::sanitize::line(&body, 200)
    ))
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
    async fn send(&self, event_id: &str, payload: &Value) -> Result<(), String> {
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

pub fn slack_text(payload: &Value) -> String {
    let d = &payload["data"];
    let s = |v: &Value| slack_escape(v.as_str().unwrap_or("-"));
    let approvers: Vec<String> = d["approvers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| slack_escape(x.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
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

#[async_trait::async_trait]
impl Sink for SlackSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    async fn send(&self, _event_id: &str, payload: &Value) -> Result<(), String> {
        use secrecy::ExposeSecret;
        let body = serde_json::json!({ "text": slack_text(payload) });
        post(
            &self.client,
            self.client.post(self.url.expose_secret()).json(&body),
        )
        .await
    }
}
