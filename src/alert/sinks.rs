//! Where alerts go: a JSONL file, a signed JSON webhook, a Slack incoming webhook,
//! syslog (RFC 5424 over UDP or TCP with octet counting, RFC 6587).

use super::{Format, Sink};
use crate::config::SinkConfig;
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
        } => Arc::new(SyslogSink {
            name: name.clone(),
            address: address.clone(),
            tcp: *tcp,
            format: *format,
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
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
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

/// RFC 5424 syslog with the alert's fields as structured data.
pub struct SyslogSink {
    pub name: String,
    pub address: String,
    pub tcp: bool,
    pub format: Format,
}

/// The private-enterprise number in SD-IDs; 32473 is reserved for documentation
/// (RFC 5612). Sites with their own PEN can map it in their collector.
pub const SD_ID: &str = "breakglass@32473";

fn sd_escape(s: &str) -> String {
    crate::sanitize::line(s, 500)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

/// One RFC 5424 message: facility authpriv (10), severity from the alert.
pub fn rfc5424(payload: &Value, format: Format) -> String {
    let sev = match payload["severity"].as_str() {
        Some("critical") => 2,
        Some("high") => 3,
        Some("medium") => 4,
        Some("low") => 5,
        _ => 6,
    };
    let pri = 10 * 8 + sev;
    let host = crate::engine::this_host();
    let host = if host.is_empty() {
        "-".to_string()
    } else {
        host.replace(' ', "_")
    };
    let msgid: String = payload["kind"]
        .as_str()
        .unwrap_or("-")
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    let d = &payload["data"];
    let mut sd = format!("[{SD_ID}");
    let mut param = |k: &str, v: &Value| {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Null => return,
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        sd.push_str(&format!(" {k}=\"{}\"", sd_escape(&text)));
    };
    param("event_id", &payload["event_id"]);
    param("request_id", &d["request_id"]);
    param("role", &d["role"]);
    param("requester", &d["requester"]);
    param("approvers", &d["approvers"]);
    param("incident", &d["incident"]);
    param("expires_at", &d["expires_at"]);
    param("audit_seq", &payload["audit_seq"]);
    param("audit_hash", &payload["audit_hash"]);
    sd.push(']');
    let msg = match format {
        Format::Native => format!(
            "break-glass {} {} role {} requester {}",
            payload["kind"].as_str().unwrap_or("-"),
            d["request_id"].as_str().unwrap_or("-"),
            d["role"].as_str().unwrap_or("-"),
            d["requester"].as_str().unwrap_or("-")
        ),
        Format::Ocsf => super::ocsf::from_alert(payload).to_string(),
    };
    format!(
        "<{pri}>1 {} {host} breakglass {} {msgid} {sd} {}",
        payload["at"].as_str().unwrap_or("-"),
        std::process::id(),
        crate::sanitize::line(&msg, 8000)
    )
}

#[async_trait::async_trait]
impl Sink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }
    async fn send(&self, _event_id: &str, payload: &Value) -> Result<(), String> {
        let line = rfc5424(payload, self.format);
        if self.tcp {
            use tokio::io::AsyncWriteExt;
            let mut s = tokio::net::TcpStream::connect(&self.address)
                .await
                .map_err(|e| format!("syslog tcp {}: {e}", self.address))?;
            // RFC 6587 octet counting: "<length> <message>".
            let framed = format!("{} {line}", line.len());
            s.write_all(framed.as_bytes())
                .await
                .map_err(|e| format!("syslog tcp: {e}"))?;
            s.shutdown().await.map_err(|e| format!("syslog tcp: {e}"))
        } else {
            let sock = tokio::net::UdpSocket::bind("0.0.0.0:0")
                .await
                .map_err(|e| format!("syslog udp: {e}"))?;
            sock.send_to(line.as_bytes(), &self.address)
                .await
                .map(|_| ())
                .map_err(|e| format!("syslog udp {}: {e}", self.address))
        }
    }
}
