//! PagerDuty Events API v2 (<https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>):
//! approval notices page the approvers' service. A request waiting for approval
//! (or still short of approvals) is a `trigger`; once nobody needs to approve
//! it any more (approved, denied, cancelled, lapsed, and later activation and
//! end) a `resolve`. Every event of one request carries the same `dedup_key`
//! (`approval.key`: `breakglass-REQ-7-<when it was filed>`), so an approval
//! short of the count updates the open alert without paging again, and the
//! decision closes it.
//!
//! The routing key is the credential: read from the environment when the sink
//! is built, sent only in the request body, and scrubbed from any error text
//! (a receiver may echo the body back), so it never reaches the outbox's
//! `last_error`, the logs or the screen.

use super::sinks::{client, post_scrubbed, utc_seconds};
use super::{AlertKind, Sink};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::time::Duration;

/// PagerDuty's documented endpoint; `url` in the sink's config overrides it
/// (the EU service region, a proxy, a test server).
pub const EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// PagerDuty caps `summary` at 1024 characters.
const SUMMARY_CHARS: usize = 1024;

pub struct PagerDutySink {
    name: String,
    url: String,
    routing_key: SecretString,
    timeout: Duration,
    client: reqwest::Client,
    /// `payload.source`: this host.
    source: String,
}

impl PagerDutySink {
    pub fn new(name: String, url: String, routing_key: SecretString, timeout: Duration) -> Self {
        PagerDutySink {
            name,
            url,
            routing_key,
            timeout,
            client: client(timeout),
            source: crate::identity::this_host(),
        }
    }
}

/// PagerDuty's four severities, from the alert's.
fn severity(s: &Value) -> &'static str {
    match s.as_str() {
        Some("critical") => "critical",
        Some("high") => "error",
        Some("medium") => "warning",
        _ => "info",
    }
}

/// The Events v2 body for an approval notice, without its `routing_key` (added
/// when sent). `None` for anything else: the sink takes only approval notices.
pub fn event(payload: &Value, source: &str) -> Option<Value> {
    if payload["kind"] != AlertKind::ApprovalRequest.as_str() {
        return None;
    }
    let d = &payload["data"];
    let a = &d["approval"];
    let text = |v: &Value, n: usize| crate::sanitize::line(v.as_str().unwrap_or("-"), n);
    let request = text(&d["request_id"], 40);
    let dedup_key = a["key"]
        .as_str()
        .map(|k| crate::sanitize::line(k, 255))
        .unwrap_or_else(|| format!("breakglass-{request}"));
    if a["open"] != json!(true) {
        return Some(json!({
            "event_action": "resolve",
            "dedup_key": dedup_key,
        }));
    }
    let routine = if a["routine_use"].is_string() {
        format!(" ({})", text(&a["routine_use"], 120))
    } else {
        String::new()
    };
    let count = format!(
        "{} of {} approvals{routine}",
        a["approvals"], a["approvals_required"]
    );
    let lapses = utc_seconds(&a["decide_by"]);
    let summary = crate::sanitize::line(
        &format!(
            "Break-glass {request}: {} asks for {} ({}), {count}, lapses {lapses}; approve with: {}",
            text(&d["requester"], 100),
            text(&d["role"], 100),
            text(&d["incident"], 200),
            text(&a["command"], 80),
        ),
        SUMMARY_CHARS,
    );
    let approved_by = d["approvers"].as_array().cloned().unwrap_or_default();
    Some(json!({
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "breakglass",
        "payload": {
            "summary": summary,
            "source": crate::sanitize::line(source, 255),
            "severity": severity(&payload["severity"]),
            "timestamp": payload["at"],
            "component": d["role"],
            "group": d["incident"],
            "class": "break-glass approval",
            "custom_details": {
                "request_id": request,
                "role": d["role"],
                "incident": d["incident"],
                "condition": d["condition"],
                "reason": d["reason"],
                "requester": d["requester"],
                "approvals": count,
                "approved_by": approved_by,
                "who_may_approve": a["may_approve"],
                "lapses_at": a["decide_by"],
                "ttl_asked": a["ttl"],
                "approve_command": a["command"],
                "event_id": payload["event_id"],
                "audit_seq": payload["audit_seq"],
            },
        },
    }))
}

/// Text with the routing key cut out, whatever echoed it.
fn scrub(text: &str, key: &str) -> String {
    if key.is_empty() {
        text.to_string()
    } else {
        text.replace(key, "[routing key]")
    }
}

#[async_trait::async_trait]
impl Sink for PagerDutySink {
    fn name(&self) -> &str {
        &self.name
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn takes(&self, kind: AlertKind, _role: Option<&str>) -> bool {
        kind == AlertKind::ApprovalRequest
    }
    async fn send(&self, _event_id: &str, payload: &Value) -> Result<(), super::SinkError> {
        let Some(mut body) = event(payload, &self.source) else {
            // Routed here by mistake (config check refuses other kinds): nothing
            // to page about, and nothing to retry.
            return Ok(());
        };
        body["routing_key"] = json!(self.routing_key.expose_secret());
        let req = self.client.post(&self.url).json(&body);
        drop(body);
        let key = self.routing_key.expose_secret();
        post_scrubbed(&self.client, req, |answer| scrub(answer, key))
            .await
            .map_err(|e| {
                // The key travels in the body only, and the receiver's answer is
                // scrubbed already; an error that still names it loses its chain.
                let text = crate::net::http::error_chain(&e);
                if text.contains(key) && !key.is_empty() {
                    super::SinkError::Scrubbed(scrub(&text, key))
                } else {
                    e
                }
            })
    }
}
