//! When recovery next has work: the earliest instant at which a pass would act.
//! The sweeper (`sweeper.rs`) sleeps until then instead of polling.

use super::recovery::{owner_is_dead, retry_due};
use super::*;
use crate::domain::{IncidentRef, State};
use crate::store::Query;
use chrono::Duration;

impl Engine {
    /// The earliest instant at which a recovery pass would act, as the store
    /// and this engine know now: an expiry (`expires_at` of Active access), a
    /// decision deadline (`decide_by`), an interrupted grant's timeout (now, when
    /// its process is gone), a revocation's retry time (now, when its revoker is
    /// gone), an auto-approved request's certification deadline, the next
    /// "is this incident resolved?" question, an alert's next attempt. `None`
    /// when nothing is scheduled; an instant at or before `now()` means due.
    ///
    /// Cheap enough to ask after every change in the store: one query over
    /// indexed columns, plus the rows of the few states in flight (Granting,
    /// Revoking), the Ended and Reviewed ones (automation's certification
    /// deadlines, copied credentials' invalidations) and, when a role
    /// revokes on resolve, the Active ones.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let automated: Vec<String> = self
            .policy
            .roles
            .values()
            .filter(|r| !r.automation.identities.users.is_empty())
            .map(|r| r.name.clone())
            .collect();
        let resolve =
            !self.sources.is_empty() && self.policy.roles.values().any(|r| r.revoke_on_resolve);
        let outbox = !self.sinks.is_empty();
        let (earliest, in_flight, uncertified, active, outbox_next) = self
            .db(move |s| {
                let list = |states: Vec<State>, role: Option<String>| {
                    s.list(&Query {
                        states: Some(states),
                        role,
                        ..Default::default()
                    })
                };
                // Ended and Reviewed rows: automation's certification
                // deadlines, and copied credentials' pending invalidations.
                let uncertified: Vec<Request> = list(vec![State::Ended, State::Reviewed], None)?
                    .into_iter()
                    .filter(|r| {
                        automated.contains(&r.role)
                            || r.invalidation.as_ref().is_some_and(|i| i.pending())
                    })
                    .collect();
                Ok((
                    s.earliest_deadline()?,
                    list(vec![State::Granting, State::Revoking], None)?,
                    uncertified,
                    if resolve {
                        list(vec![State::Active], None)?
                    } else {
                        vec![]
                    },
                    if outbox {
                        s.outbox_next_attempt()?
                    } else {
                        None
                    },
                ))
            })
            .await?;
        let now = self.clock.now();
        let grant_timeout =
            Duration::from_std(self.recovery.grant_timeout).unwrap_or(Duration::seconds(120));
        let mut due: Option<DateTime<Utc>> = None;
        let mut at = |t: DateTime<Utc>| due = Some(due.map_or(t, |d| d.min(t)));
        if let Some(t) = earliest {
            // Columns keep microseconds; the request itself may be up to a
            // microsecond later: wake after it, not before.
            at(t + Duration::microseconds(1));
        }
        if let Some(t) = outbox_next {
            at(t);
        }
        for r in &in_flight {
            let Some(g) = &r.grant else { continue };
            match r.state {
                State::Granting if owner_is_dead(&g.owner) => at(now),
                State::Granting => at(g.intent_at + grant_timeout),
                State::Revoking if retry_due(r, now) => at(now),
                State::Revoking => {
                    if let Some(t) = g.next_attempt_at {
                        at(t)
                    }
                }
                _ => {}
            }
        }
        for r in &uncertified {
            if let Some(inv) = r.invalidation.as_ref().filter(|i| i.pending()) {
                at(inv.next_attempt_at.unwrap_or(now));
            }
            if r.auto_approved && r.certification_overdue_at.is_none() {
                if let Some(t) = r.certify_by {
                    at(t);
                }
            }
        }
        for r in &active {
            let asks = self
                .policy
                .roles
                .get(&r.role)
                .is_some_and(|role| role.revoke_on_resolve);
            if let (true, IncidentRef::Source { source, id, .. }) = (asks, &r.incident) {
                if r.expires_at().is_none_or(|e| e > now) {
                    at(self.next_incident_check(source, id, now));
                }
            }
        }
        Ok(due)
    }
}
