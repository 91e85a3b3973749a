//! SOC alerts, and approvers' notices. Rows are written to the outbox in the same
//! transaction as the transition that raised them; the engine sends them to every
//! sink that takes them (`Sink::takes`), retrying with exponential back-off and
//! jitter. Delivery is at least once, each alert with a stable `event_id`, and a
//! sink that took an alert is not sent it again.

pub mod config;
pub mod ocsf;
pub mod pagerduty;
pub mod sinks;
pub mod syslog;

use chrono::Duration;
use std::sync::Arc;

pub use crate::alert_vocab::{AlertKind, AlertRules, Format, Severity, SCHEMA};

impl Format {
    pub fn render(self, payload: &serde_json::Value) -> serde_json::Value {
        match self {
            Format::Native => payload.clone(),
            Format::Ocsf => ocsf::from_alert(payload),
        }
    }
}

#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// Unique among the configured sinks; remembered per alert once delivered.
    fn name(&self) -> &str;
    /// Longest a single delivery may take before it counts as failed.
    fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(10)
    }
    /// Whether this sink is sent an alert of `kind` about `role`. By default
    /// every kind but the approvers' notices (`AlertKind::for_soc`); a sink's
    /// `kinds` and `roles` settings narrow or widen that (`sinks::Routed`).
    fn takes(&self, kind: AlertKind, role: Option<&str>) -> bool {
        let _ = role;
        kind.for_soc()
    }
    async fn send(&self, event_id: &str, payload: &serde_json::Value) -> Result<(), SinkError>;
}

/// Why a sink did not take an alert. The engine records it with its causes
/// (`net::http::error_chain`) on the outbox row and retries.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink's settings are incomplete (a secret not set): every delivery
    /// fails with the reason, so the alerts stay queued and visible.
    #[error("{0}")]
    Misconfigured(String),
    /// The receiver could not be reached (no URL in the error: it may be a secret).
    #[error("timed out")]
    TimedOut(#[source] reqwest::Error),
    #[error("cannot reach the receiver: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// The receiver answered, but not with success; its answer is cleaned and cut.
    #[error("HTTP {status}: {answer}")]
    Rejected {
        status: reqwest::StatusCode,
        answer: String,
    },
    /// The message is larger than the sink allows.
    #[error("a {len}-byte message does not fit max_message_bytes = {max}")]
    TooLarge { len: usize, max: usize },
    /// An error whose text named a secret, kept as text with the secret cut out.
    #[error("{0}")]
    Scrubbed(String),
    /// Writing to a file or a socket failed; `what` names it.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl SinkError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SinkError {
        let what = what.into();
        move |source| SinkError::Io { what, source }
    }
}

pub fn build(cfg: &config::SinkConfig) -> Arc<dyn Sink> {
    sinks::build(cfg)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: u64,
    pub failed: u64,
}

/// Back-off for the n-th failed attempt: 2^n seconds up to 10 minutes, plus up to
/// a quarter of jitter so a fleet of daemons does not retry in lockstep.
pub fn backoff(attempts: u32) -> Duration {
    let base = 2i64.saturating_pow(attempts.min(10)).min(600);
    let jitter = rand::random::<u32>() as i64 % (base / 4 + 1);
    Duration::seconds(base + jitter)
}
