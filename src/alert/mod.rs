//! SOC alerts. Rows are written to the outbox in the same transaction as the
//! transition that raised them; `deliver_due` sends them to every sink, retrying
//! with exponential back-off and jitter. Delivery is at least once, each alert with
//! a stable `event_id`, and a sink that took an alert is not sent it again.

pub mod config;
pub mod ocsf;
pub mod sinks;
pub mod syslog;

use crate::store::{Store, StoreError};
use chrono::{DateTime, Duration, Utc};
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

/// One delivery pass. With no sink configured alerts stay queued (and show as
/// undelivered): an unconfigured SOC is not a delivered alert.
pub async fn deliver_due(
    store: &dyn Store,
    sinks: &[Arc<dyn Sink>],
    signer: Option<&crate::audit::checkpoint::Signer>,
    now: DateTime<Utc>,
    claimant: &str,
) -> Result<Delivery, StoreError> {
    let mut out = Delivery::default();
    if sinks.is_empty() {
        return Ok(out);
    }
    // Every sink's timeout, and a margin: a sender that died mid-row leaves it
    // to the others after this.
    let lease = sinks
        .iter()
        .map(|s| Duration::from_std(s.timeout()).unwrap_or(Duration::seconds(10)))
        .fold(Duration::seconds(30), |a, b| a + b);
    for mut row in store.outbox_due(now, 100)? {
        // Daemons may share the store: only the one that claims a row sends it.
        let key = crate::store::ClaimKey::Outbox(row.id);
        if !store.claim(key, claimant, now, now + lease)? {
            continue;
        }
        // The SOC keeps a signed (size, head) of the chain as of this alert: a log
        // later cut below it, or rewritten, no longer verifies against it.
        if let (Some(s), Some(seq), Some(head)) = (
            signer,
            row.payload["audit_seq"].as_i64(),
            row.payload["audit_hash"].as_str(),
        ) {
            let at = row.payload["at"].as_str().unwrap_or_default().to_string();
            let cp = s.sign(seq, head, &at);
            row.payload["checkpoint"] = serde_json::to_value(cp).expect("a checkpoint serialises");
        }
        let mut delivered = row.delivered_to.clone();
        let mut errors = vec![];
        for s in sinks {
            if delivered.iter().any(|d| d == s.name()) {
                continue;
            }
            match tokio::time::timeout(s.timeout(), s.send(&row.event_id, &row.payload)).await {
                Ok(Ok(())) => delivered.push(s.name().to_string()),
                Ok(Err(e)) => {
                    errors.push(format!("{}: {}", s.name(), crate::sanitize::line(&e, 300)))
                }
                Err(_) => errors.push(format!("{}: no answer within {:?}", s.name(), s.timeout())),
            }
        }
        if errors.is_empty() {
            store.outbox_delivered(row.id, now)?;
            out.delivered += 1;
        } else {
            store.outbox_failed(
                row.id,
                &delivered,
                &errors.join("; "),
                now + backoff(row.attempts),
            )?;
            out.failed += 1;
        }
        let _ = store.release(key, claimant);
    }
    Ok(out)
}
