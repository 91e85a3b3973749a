//! Sending the outbox to the SOC's sinks: each due row is claimed, signed with a
//! checkpoint when configured, sent to every sink that has not taken it yet, and
//! marked delivered or scheduled for a retry with back-off (`alert::backoff`).
//! A sink is sent only the alerts it takes (`Sink::takes`: its `kinds` and
//! `roles`); a row no sink takes is done.
//! Delivery is at least once, each alert with a stable `event_id`.

use super::*;
use crate::alert::{backoff, Delivery};
use crate::failpoint;
use crate::store::ClaimKey;
use chrono::Duration;

impl Engine {
    /// Sends due alerts to every sink. With no sink configured alerts stay
    /// queued (and show as undelivered): an unconfigured SOC is not a delivered alert.
    pub async fn deliver_alerts(&self) -> std::result::Result<Delivery, StoreError> {
        let mut out = Delivery::default();
        if self.sinks.is_empty() {
            return Ok(out);
        }
        let now = self.clock.now();
        // Every sink's timeout, and a margin: a sender that died mid-row leaves it
        // to the others after this (on its own host, at once: `Engine::claim`).
        let lease = self
            .sinks
            .iter()
            .map(|s| Duration::from_std(s.timeout()).unwrap_or(Duration::seconds(10)))
            .fold(Duration::seconds(30), |a, b| a + b);
        for mut row in self.db(move |s| s.outbox_due(now, 100)).await? {
            // Daemons may share the store: only the one that claims a row sends it.
            let key = ClaimKey::Outbox(row.id);
            if !self.claim(key, now, now + lease).await? {
                continue;
            }
            failpoint::hit("alert.after_claim");
            // The SOC keeps a signed (size, head) of the chain as of this alert: a log
            // later cut below it, or rewritten, no longer verifies against it.
            if let (Some(s), Some(seq), Some(head)) = (
                self.alerts.signer.as_deref(),
                row.payload["audit_seq"].as_i64(),
                row.payload["audit_hash"].as_str(),
            ) {
                let at = row.payload["at"].as_str().unwrap_or_default().to_string();
                let cp = s.sign(seq, head, &at);
                row.payload["checkpoint"] =
                    serde_json::to_value(cp).expect("a checkpoint serialises");
            }
            let mut delivered = row.delivered_to.clone();
            let mut errors = vec![];
            // A kind this build does not know (a newer one wrote the row) goes
            // to every sink rather than to none.
            let kind = row.payload["kind"].as_str().and_then(|k| k.parse().ok());
            let role = row.payload["data"]["role"].as_str();
            for s in &self.sinks {
                if delivered.iter().any(|d| d == s.name())
                    || kind.is_some_and(|k| !s.takes(k, role))
                {
                    continue;
                }
                match tokio::time::timeout(s.timeout(), s.send(&row.event_id, &row.payload)).await {
                    Ok(Ok(())) => delivered.push(s.name().to_string()),
                    Ok(Err(e)) => errors.push(format!(
                        "{}: {}",
                        s.name(),
                        crate::sanitize::line(&crate::net::http::error_chain(&e), 300)
                    )),
                    Err(_) => {
                        errors.push(format!("{}: no answer within {:?}", s.name(), s.timeout()))
                    }
                }
            }
            let id = row.id;
            if errors.is_empty() {
                self.db(move |s| s.outbox_delivered(id, now)).await?;
                // A row no sink takes is done, but was delivered to nobody.
                if delivered.len() > row.delivered_to.len() {
                    out.delivered += 1;
                }
            } else {
                let retry_at = now + backoff(row.attempts);
                let error = errors.join("; ");
                self.db(move |s| s.outbox_failed(id, &delivered, &error, retry_at))
                    .await?;
                out.failed += 1;
            }
            self.release(key).await;
        }
        Ok(out)
    }
}
