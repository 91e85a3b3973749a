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
    async fn send(&self, event_id: &str, payload: &serde_json::Value) -> Result<(), String>;
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
