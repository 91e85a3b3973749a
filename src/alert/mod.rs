//! SOC alerts. Rows are written to the outbox in the same transaction as the
//! transition that raised them; `deliver_due` sends them, retrying with back-off.

use crate::config::SinkConfig;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Duration, Utc};
use std::io::Write;
use std::path::PathBuf;

pub trait Sink: Send + Sync {
    fn name(&self) -> String;
    fn send(&self, event_id: &str, payload: &serde_json::Value) -> Result<(), String>;
}

/// Appends one JSON line per alert.
pub struct FileSink {
    path: PathBuf,
}

impl Sink for FileSink {
    fn name(&self) -> String {
        format!("file {}", self.path.display())
    }
    fn send(&self, _event_id: &str, payload: &serde_json::Value) -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mut line = payload.to_string();
        line.push('\n');
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

pub fn build(cfg: &SinkConfig) -> Box<dyn Sink> {
    match cfg {
        SinkConfig::File { path } => Box::new(FileSink { path: path.clone() }),
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: u64,
    pub failed: u64,
}

/// One delivery pass. An alert counts as delivered when every sink took it; with
/// no sink configured alerts stay queued (and visible as undelivered).
pub fn deliver_due(
    store: &dyn Store,
    sinks: &[Box<dyn Sink>],
    now: DateTime<Utc>,
) -> Result<Delivery, StoreError> {
    let mut out = Delivery::default();
    if sinks.is_empty() {
        return Ok(out);
    }
    for row in store.outbox_due(now, 100)? {
        let errors: Vec<String> = sinks
            .iter()
            .filter_map(|s| {
                s.send(&row.event_id, &row.payload)
                    .err()
                    .map(|e| format!("{}: {e}", s.name()))
            })
            .collect();
        if errors.is_empty() {
            store.outbox_delivered(row.id, now)?;
            out.delivered += 1;
        } else {
            let backoff = 2i64.saturating_pow(row.attempts.min(10)).min(600);
            let jitter = rand::random::<u8>() as i64 % (backoff / 4 + 1);
            store.outbox_failed(
                row.id,
                &errors.join("; "),
                now + Duration::seconds(backoff + jitter),
            )?;
            out.failed += 1;
        }
    }
    Ok(out)
}
