//! Incident policy after the request is filed (issue 7):
//!
//! - `require_open_incident`: every extension re-asks the source about the
//!   request's incident; a resolved (or vanished) incident refuses it, and a
//!   source that cannot answer fails the extension closed (access still ends at
//!   its current expiry).
//! - `revoke_on_resolve`: the sweeper revokes active access whose source reports
//!   its incident resolved, reason "incident resolved", through the same
//!   begin_revoke / perform_revoke path as expiry. Only a positive "resolved"
//!   revokes: a source error or an unknown incident never does. Each incident is
//!   asked about at most once per `RESOLVED_CHECK_INTERVAL_SECS` (engine clock),
//!   so a sweep every second does not call the API every second.

use super::*;
use crate::domain::{IncidentRef, State};
use crate::store::Query;
use chrono::Duration;
use std::collections::HashMap;
use std::sync::Mutex;

/// The sweeper asks a source about one incident at most this often.
pub const RESOLVED_CHECK_INTERVAL_SECS: i64 = 30;
/// Answers older than this are forgotten.
const FORGET_AFTER_SECS: i64 = 600;

/// (source, incident id) -> when the sweeper last asked, and whether resolved.
type Answers = HashMap<(String, String), (DateTime<Utc>, bool)>;

#[derive(Default)]
pub(crate) struct IncidentChecks(Mutex<Answers>);

impl Engine {
    fn source_named(&self, name: &str) -> Option<Arc<dyn IncidentSource>> {
        self.sources.iter().find(|s| s.name() == name).cloned()
    }

    /// Refuses an extension unless the request's source incident is still open
    /// (roles with `require_open_incident`; manual tickets are not checked).
    pub(super) async fn incident_still_open(&self, req: &Request, role: &RolePolicy) -> Result<()> {
        if !role.require_open_incident {
            return Ok(());
        }
        let IncidentRef::Source { source, id, .. } = &req.incident else {
            return Ok(());
        };
        let refuse = |why: String| {
            Err(refusal_because(
                RefusalKind::Policy, lifecycle::Reason::Incident,
                format!(
                    "{why}, so {} cannot be extended: role {} requires an open incident; access ends at its current expiry, request again under an open incident if the work goes on",
                    req.id, role.name
                ),
            ))
        };
        let Some(src) = self.source_named(source) else {
            return refuse(format!(
                "incident {id} came from source {source}, which is no longer configured"
            ));
        };
        match src.get(id).await {
            Ok(Some(inc)) if inc.status.is_open() => Ok(()),
            Ok(Some(_)) => refuse(format!("incident {id} ({source}) is resolved")),
            Ok(None) => refuse(format!(
                "incident {id} is no longer known to source {source}"
            )),
            Err(e) => Err(Error::Source(e)),
        }
    }

    /// Sweeper step: revokes active access whose incident its source now reports
    /// resolved. Expired access is left to the expiry step.
    pub(super) async fn revoke_resolved(&self, rep: &mut RecoveryReport) -> Result<()> {
        let now = self.clock.now();
        let revoke_timeout =
            Duration::from_std(self.recovery.revoke_timeout).unwrap_or(Duration::seconds(60));
        let active = self
            .db(|s| {
                s.list(&Query {
                    states: Some(vec![State::Active]),
                    ..Default::default()
                })
            })
            .await?;
        for req in active {
            let Some(role) = self.policy.roles.get(&req.role) else {
                continue;
            };
            if !role.revoke_on_resolve || req.expires_at().is_some_and(|e| e <= now) {
                continue;
            }
            let IncidentRef::Source { source, id, .. } = &req.incident else {
                continue;
            };
            if !self.incident_resolved(source, id, now).await {
                continue;
            }
            let r = self
                .transition(
                    req.id,
                    |r, e| alert(AlertKind::EarlyEnd, r, e),
                    |r, _, now| {
                        lifecycle::begin_revoke(
                            r,
                            SWEEPER,
                            "incident resolved",
                            now,
                            now + revoke_timeout,
                            self.owner.clone(),
                        )
                    },
                )
                .await;
            match r {
                Ok(r) => match self.perform_revoke(r).await {
                    Ok(_) => rep.resolved_revoked.push(req.id.to_string()),
                    Err(e) => rep.errors.push(format!("{}: {e}", req.id)),
                },
                // Someone else moved it on (ended early, expired) meanwhile.
                Err(Error::Refused(_)) => {}
                Err(e) => rep.errors.push(format!("{}: {e}", req.id)),
            }
        }
        Ok(())
    }

    /// Whether the source positively reports the incident resolved, asked at most
    /// once per interval. A failing source is logged and counts as not resolved.
    async fn incident_resolved(&self, source: &str, id: &str, now: DateTime<Utc>) -> bool {
        let key = (source.to_string(), id.to_string());
        let interval = Duration::seconds(RESOLVED_CHECK_INTERVAL_SECS);
        if let Ok(m) = self.incident_checks.0.lock() {
            if let Some((at, resolved)) = m.get(&key) {
                if *at <= now && now - *at < interval {
                    return *resolved;
                }
            }
        }
        let Some(src) = self.source_named(source) else {
            return false;
        };
        // Marked before asking, so a slow or failing source waits a full interval.
        self.note_check(key.clone(), now, false);
        let resolved = match src.get(id).await {
            Ok(Some(inc)) => !inc.status.is_open(),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(
                    "cannot tell whether incident {id} is resolved: {e}; its access stays until it expires or the source answers"
                );
                false
            }
        };
        self.note_check(key, now, resolved);
        resolved
    }

    /// When the sweeper will next ask about this incident: a full interval after
    /// it last asked, or now when it has not (or forgot).
    pub(super) fn next_incident_check(
        &self,
        source: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let key = (source.to_string(), id.to_string());
        self.incident_checks
            .0
            .lock()
            .ok()
            .and_then(|m| m.get(&key).map(|(at, _)| *at))
            .filter(|at| *at <= now)
            .map_or(now, |at| {
                at + Duration::seconds(RESOLVED_CHECK_INTERVAL_SECS)
            })
    }

    fn note_check(&self, key: (String, String), now: DateTime<Utc>, resolved: bool) {
        if let Ok(mut m) = self.incident_checks.0.lock() {
            m.retain(|_, (at, _)| now - *at < Duration::seconds(FORGET_AFTER_SECS));
            m.insert(key, (now, resolved));
        }
    }
}
