//! Drills (`domain::drill`): a role's real path walked against its real
//! backend between emergencies. The request is an ordinary one marked `drill`,
//! so it goes through the same approvals, role lock, grant intent, revocation
//! and audit chain as an emergency; the credential goes to the backend's probe
//! only and is dropped before the outcome is recorded.

use super::*;
use crate::backend::BackendError;
use crate::backend::{Credential, RevokeSpec};
use crate::domain::drill::{DrillOutcome, DrillStatus, DrillStep, SCHEDULER};
use crate::domain::State;

/// What a drill step said, cleaned for the store and alerts.
fn said(e: impl std::fmt::Display) -> String {
    crate::sanitize::line(&e.to_string(), 500)
}

impl Engine {
    /// `breakglass drill ROLE` by a person: runs their approved drill of the
    /// role, or files one (it waits for `drill_approvals` approvers, someone
    /// other than the requester), or returns the one still waiting.
    pub async fn drill(&self, who: &str, role: &str) -> Result<Request> {
        let r = self.drill_inner(who, role, false).await;
        self.noted(who, None, &format!("drill role {role}"), r)
            .await
    }

    async fn drill_inner(&self, who: &str, role: &str, scheduled: bool) -> Result<Request> {
        let role = self.role(role)?;
        let open = self.open_drill(&role.name, who).await?;
        if let Some(req) = open {
            return match req.state {
                State::Approved => self.run_drill(who, req.id).await,
                _ => Ok(req),
            };
        }
        let now = self.clock.now();
        let (req, event) = lifecycle::new_drill(role, who, scheduled, now)?;
        let mut notice = if req.state == State::Pending && self.pages_approvers(&req.role) {
            approval_notice::draft(&req, role, &event)
        } else {
            vec![]
        };
        notice.retain(|a| self.alerts.wants(a.kind));
        let created = match self
            .db(move |s| s.insert_request(&req, &event, &notice, now))
            .await
        {
            Ok(r) => r,
            Err(StoreError::Locked { role, by, state }) => {
                return Err(Error::Locked {
                    role,
                    reason: self.lock_reason(by, state).await,
                })
            }
            Err(e) => return Err(e.into()),
        };
        if created.state == State::Approved {
            return self.run_drill(who, created.id).await;
        }
        Ok(created)
    }

    /// `who`'s drill of `role` still to run (pending or approved), if any.
    async fn open_drill(&self, role: &str, who: &str) -> Result<Option<Request>> {
        let (role, who) = (role.to_string(), who.to_string());
        Ok(self
            .db(move |s| {
                s.list(&crate::store::Query {
                    role: Some(role),
                    requester: Some(who),
                    states: Some(vec![State::Pending, State::Approved]),
                    ..Default::default()
                })
            })
            .await?
            .into_iter()
            .find(|r| r.drill.is_some()))
    }

    /// Walks an approved drill: grant, probe, revoke, probe again, then the
    /// outcome (audited, alerted `drill` or `drill_failed`).
    async fn run_drill(&self, who: &str, id: RequestId) -> Result<Request> {
        // While an emergency holds the role the drill waits, unannounced: a
        // scheduled one is tried again every sweeper pass.
        let role = self.load(id).await?.role;
        self.check_unlocked(&role).await?;
        self.transition(
            id,
            |r, e| alert(AlertKind::Drill, r, e),
            |r, _, now| lifecycle::drill_started(r, who, now),
        )
        .await?;
        // A role locked meanwhile (an emergency under way) is no finding about
        // its path: the drill stays approved, to run once the role is free.
        let outcome = self.walk(who, id).await?;
        let failed = !outcome.passed();
        let actor = who.to_string();
        self.transition(
            id,
            |r, e| {
                let kind = if failed {
                    AlertKind::DrillFailed
                } else {
                    AlertKind::Drill
                };
                alert(kind, r, e)
            },
            |r, _, now| lifecycle::drill_finished(r, &actor, outcome.clone(), now),
        )
        .await
    }

    /// The steps, each against the real backend; the first failure is the outcome.
    async fn walk(&self, who: &str, id: RequestId) -> Result<DrillOutcome> {
        let fail = |step, e: String| DrillOutcome {
            at: self.clock.now(),
            failed_step: Some(step),
            error: Some(e),
        };
        let (req, credential) = match self.grant_access(who, id).await {
            Ok(g) => g,
            Err(e @ Error::Locked { .. }) => return Err(e),
            Err(e) => return Ok(fail(DrillStep::Grant, said(e))),
        };
        let backend = match self.role(&req.role).and_then(|r| self.backend(r)) {
            Ok(b) => b.clone(),
            Err(e) => return Ok(fail(DrillStep::Grant, said(e))),
        };
        let spec = RevokeSpec {
            request_id: req.id.to_string(),
            role: req.role.clone(),
            scope: self
                .role(&req.role)
                .map(|r| r.scope.clone())
                .unwrap_or_default(),
            lease_id: req.grant.as_ref().and_then(|g| g.lease_id.clone()),
        };
        let first = backend.probe(&spec, &credential).await;
        let revoked = self.end_drill_access(id).await;
        let after = match &revoked {
            Ok(r) if r.state == State::Ended => Some(backend.probe(&spec, &credential).await),
            _ => None,
        };
        // What a target or plugin says may echo the credential: never into
        // the outcome, the audit log or an alert.
        let said = |e: &dyn std::fmt::Display| {
            credential
                .reveal()
                .filter(|(_, v)| v.len() >= 4)
                .fold(said(e), |t, (_, v)| t.replace(v, "[redacted]"))
        };
        if let Err(e) = first {
            return Ok(fail(DrillStep::Probe, said(&e)));
        }
        let outcome = match (revoked, after) {
            (Err(e), _) => fail(DrillStep::Revoke, said(&e)),
            (Ok(r), None) => fail(
                DrillStep::Revoke,
                r.grant
                    .and_then(|g| g.last_error)
                    .map(|m| said(&m))
                    .unwrap_or_else(|| format!("{id} is {} after revocation", r.state)),
            ),
            (Ok(_), Some(Ok(what))) => fail(
                DrillStep::ProbeAfterRevoke,
                format!(
                    "the credential still works after revocation: {}",
                    said(&what)
                ),
            ),
            // Refused after revocation, as it must be; unless the target did
            // not answer at all, which proves nothing about the credential.
            (Ok(_), Some(Err(e))) => match (&e, backend.check().await) {
                (BackendError::Timeout(_) | BackendError::NotSupported(_), _) => fail(
                    DrillStep::ProbeAfterRevoke,
                    format!("could not tell whether the credential still works: {}", said(&e)),
                ),
                (_, Err(down)) => fail(
                    DrillStep::ProbeAfterRevoke,
                    format!(
                        "could not tell whether the credential still works: the target does not answer ({})",
                        said(&down)
                    ),
                ),
                (_, Ok(_)) => DrillOutcome {
                    at: self.clock.now(),
                    failed_step: None,
                    error: None,
                },
            },
        };
        drop::<Credential>(credential);
        Ok(outcome)
    }

    /// Active -> Revoking -> Ended for a drill: the drill's own end (no
    /// `early_end` alert: nobody ended an emergency early).
    async fn end_drill_access(&self, id: RequestId) -> Result<Request> {
        let deadline = self.clock.now()
            + chrono::Duration::from_std(self.recovery.revoke_timeout)
                .unwrap_or(chrono::Duration::seconds(60));
        let actor = self.load(id).await?.requester;
        let begun = self
            .transition(id, no_alerts, |r, _, now| {
                lifecycle::begin_revoke(
                    r,
                    &actor,
                    "drill: revoke after the probe",
                    now,
                    deadline,
                    self.owner.clone(),
                )
            })
            .await;
        let req = match begun {
            Ok(r) => r,
            // The sweeper got there first (the drill's TTL ran out): its
            // revocation is the drill's, done or under way.
            Err(Error::Refused(f)) => match self.load(id).await? {
                r if r.state == State::Ended => return Ok(r),
                r if r.state == State::Revoking => r,
                _ => return Err(Error::Refused(f)),
            },
            Err(e) => return Err(e),
        };
        self.perform_revoke(req).await
    }

    /// The sweeper's drill work: due drills run, overdue roles alerted.
    /// Returns how many drills ran and how many roles were found overdue.
    pub async fn drill_pass(&self) -> Result<(usize, usize)> {
        let ran = self.run_due_drills().await?;
        let overdue = self.raise_overdue_drills().await?;
        if ran + overdue > 0 {
            let _ = self.deliver_alerts().await;
        }
        Ok((ran, overdue))
    }

    /// Drills the broker runs itself: each role with `drill_every` whose last
    /// drill is that old (or that has none) gets one, started by
    /// `breakglass-drill`; one already approved runs. Returns how many ran.
    async fn run_due_drills(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut ran = 0;
        for role in self.policy.roles.values() {
            let Some(every) = role.drill.every else {
                continue;
            };
            let last = self.drills_of(&role.name).await?;
            let latest = last.iter().map(|r| r.created_at).max();
            let open = last.iter().any(|r| {
                r.requester == SCHEDULER && matches!(r.state, State::Pending | State::Approved)
            });
            let due = latest.is_none_or(|t| now - t >= chrono::Duration::seconds(every));
            if !due && !open {
                continue;
            }
            match self.drill_inner(SCHEDULER, &role.name, true).await {
                Ok(r) if r.drill.as_ref().is_some_and(|d| d.outcome.is_some()) => ran += 1,
                Ok(_) => {}
                // A locked role (an emergency under way) is drilled later.
                Err(Error::Locked { .. }) => {}
                Err(e) => tracing::warn!(role = %role.name, "scheduled drill: {e}"),
            }
        }
        Ok(ran)
    }

    /// Raises `drill_overdue` (audited on the role's last drill, or noted
    /// without one) once per overdue period: keyed by the last passing drill.
    async fn raise_overdue_drills(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut raised = 0;
        for role in self.policy.roles.values() {
            let Some(every) = role.drill.every else {
                continue;
            };
            let drills = self.drills_of(&role.name).await?;
            let status = status_of(&drills, Some(every), now);
            if !status.overdue {
                continue;
            }
            // Once per period: no `drill.overdue` note since the last pass.
            let name = role.name.clone();
            let last_note = self
                .db(move |s| s.last_role_event(&name, AuditAction::DrillOverdue))
                .await?
                .and_then(|rec| DateTime::parse_from_rfc3339(&rec.at).ok())
                .map(|t| t.with_timezone(&Utc));
            if last_note.is_some_and(|n| status.last_passed.is_none_or(|p| n > p)) {
                continue;
            }
            let detail = serde_json::json!({
                "role": role.name,
                "drill_every_seconds": every,
                "last_passed": status.last_passed,
                "status": status.describe(now),
            });
            let mut alerts = vec![];
            if self.alerts.wants(AlertKind::DrillOverdue) {
                alerts.push(crate::store::AlertDraft {
                    kind: AlertKind::DrillOverdue,
                    payload: serde_json::json!({
                        "request_id": null,
                        "role": role.name,
                        "actor": SCHEDULER,
                        "action": AuditAction::DrillOverdue,
                        "detail": detail,
                    }),
                });
            }
            self.db(move |s| {
                let note = crate::store::Note {
                    action: AuditAction::DrillOverdue,
                    actor: SCHEDULER,
                    from: None,
                    to: None,
                    detail: &detail,
                };
                s.append_note(None, &note, &alerts, now)
            })
            .await?;
            raised += 1;
        }
        Ok(raised)
    }

    /// Every drill request of a role.
    async fn drills_of(&self, role: &str) -> Result<Vec<Request>> {
        let name = role.to_string();
        Ok(self
            .db(move |s| {
                s.list(&crate::store::Query {
                    role: Some(name),
                    ..Default::default()
                })
            })
            .await?
            .into_iter()
            .filter(|r| r.drill.is_some())
            .collect())
    }

    /// A role's drill standing (`roles`, the console).
    pub async fn drill_status(&self, role: &str) -> Result<DrillStatus> {
        let every = self.role(role)?.drill.every;
        let drills = self.drills_of(role).await?;
        Ok(status_of(&drills, every, self.clock.now()))
    }
}

fn status_of(
    drills: &[Request],
    every: Option<i64>,
    now: chrono::DateTime<chrono::Utc>,
) -> DrillStatus {
    let outcomes: Vec<DrillOutcome> = drills
        .iter()
        .filter_map(|r| r.drill.as_ref().and_then(|d| d.outcome.clone()))
        .collect();
    DrillStatus::of(&outcomes, every, now)
}
