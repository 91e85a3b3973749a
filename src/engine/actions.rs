use super::*;
use crate::backend::{Credential, GrantSpec, RevokeSpec};
use crate::domain::lifecycle::NewRequest;
use crate::domain::{IncidentRef, Request, ReviewAnswers, State};
use crate::failpoint;
use crate::store::AlertDraft;
use chrono::Duration;

/// How the requester names the incident.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentChoice {
    /// An incident id from a configured source.
    Id(String),
    /// A manual ticket reference, for roles with a `ticket_pattern`.
    Ticket(String),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RequestInput {
    pub incident: IncidentChoice,
    pub role: String,
    pub condition: String,
    pub reason: String,
    pub ttl_seconds: Option<i64>,
}

/// The activation alert: louder (critical, its own kind) when no person approved.
/// A drill's grant is alerted as `drill`: the SOC can tell it from an emergency.
fn activation_alert(r: &Request, e: &Event) -> Vec<AlertDraft> {
    if r.drill.is_some() {
        alert(AlertKind::Drill, r, e)
    } else if r.auto_approved {
        alert(AlertKind::AutoActivation, r, e)
    } else {
        alert(AlertKind::Activation, r, e)
    }
}

/// Text people type (reasons, comments, review answers) is stored clean: it is
/// shown later in other people's terminals, alerts and exports.
/// The longest free text (reason, comment) a person can put on record.
pub(crate) const MAX_TEXT: usize = 4000;

/// Where a review says credentials were copied: one place, briefly.
pub(crate) const MAX_COPIED_WHERE: usize = 500;

pub(super) fn free_text(s: &str) -> String {
    crate::sanitize::text(s, MAX_TEXT)
}

/// What a source said about an incident, cleaned and capped before it is stored
/// with the request (and signed in approval statements).
fn incident_ref(inc: crate::incident::Incident) -> IncidentRef {
    IncidentRef::Source {
        source: crate::sanitize::line(&inc.source, 100),
        id: crate::sanitize::line(&inc.id, 100),
        title: crate::sanitize::line(&inc.title, 500),
    }
}

impl Engine {
    async fn resolve_incident(
        &self,
        role: &RolePolicy,
        choice: &IncidentChoice,
    ) -> Result<IncidentRef> {
        match choice {
            IncidentChoice::Ticket(t) => Ok(IncidentRef::Ticket {
                reference: crate::sanitize::line(t.trim(), 100),
            }),
            IncidentChoice::Id(id) => {
                let mut errors = vec![];
                for s in &self.sources {
                    match s.get(id.trim()).await {
                        Ok(Some(inc)) if inc.status.is_open() => {
                            return Ok(incident_ref(inc))
                        }
                        // Roles with require_open_incident = false accept it anyway.
                        Ok(Some(inc)) if !role.require_open_incident => {
                            return Ok(incident_ref(inc))
                        }
                        Ok(Some(_)) => {
                            return Err(refusal_because(
                                RefusalKind::Policy, lifecycle::Reason::Incident,
                                format!("incident {id} is resolved; emergency access needs an open incident"),
                            ))
                        }
                        Ok(None) => {}
                        Err(e) => errors.push(e),
                    }
                }
                if let Some(e) = errors.into_iter().next() {
                    return Err(Error::Source(e));
                }
                let hint = if role.allows_ticket() {
                    format!(
                        "; role {} also accepts --ticket matching {}",
                        role.name,
                        role.ticket_pattern
                            .as_ref()
                            .map(|r| r.as_str())
                            .unwrap_or_default()
                    )
                } else {
                    String::new()
                };
                Err(refusal_because(
                    RefusalKind::Policy, lifecycle::Reason::Incident,
                    format!(
                        "no open incident `{}` in the configured sources ({}); `breakglass incidents` lists them{hint}",
                        crate::sanitize::line(id, 64),
                        self.sources.iter().map(|s| s.name().to_string()).collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        }
    }

    /// Files a new request. Refused when the role is locked.
    pub async fn request(&self, who: &str, input: RequestInput) -> Result<Request> {
        let attempt = format!("request role {}", input.role);
        let r = self.request_inner(who, input, None).await;
        self.noted(who, None, &attempt, r).await
    }

    pub(super) async fn request_inner(
        &self,
        who: &str,
        input: RequestInput,
        vendor: Option<crate::domain::vendor::VendorInfo>,
    ) -> Result<Request> {
        let role = self.role(&input.role)?;
        self.check_unlocked(&role.name).await?;
        self.check_recertified(role).await?;
        let incident = self.resolve_incident(role, &input.incident).await?;
        let now = self.clock.now();
        let (mut req, mut event) = lifecycle::new_request(
            role,
            NewRequest {
                incident,
                condition: input.condition,
                reason: crate::sanitize::text(&input.reason, lifecycle::MAX_REASON_CHARS + 1),
                ttl_seconds: input.ttl_seconds,
            },
            who,
            now,
        )?;
        super::vendor_session::attach(role, &mut req, &mut event, vendor)?;
        if let Some(routine) = self.routine_use(role, Some(who), now).await? {
            crate::domain::routine::apply(role, &mut req, &mut event, routine);
        }
        let auto = match lifecycle::auto_approval(role, &req, 0) {
            None => None,
            // Routine use needs people's eyes: policy does not approve it alone.
            Some(_) if req.routine_use.as_ref().is_some_and(|r| r.over) => Some(Err(format!(
                "routine use ({}) needs human approval",
                req.routine_use
                    .as_ref()
                    .map(|r| r.describe(&req.requester))
                    .unwrap_or_default()
            ))),
            Some(_) => {
                lifecycle::auto_approval(role, &req, self.recent_auto_approvals(role, now).await?)
            }
        };
        if let Some(Err(why)) = &auto {
            req.auto_approval_declined = Some(why.clone());
            event.detail["auto_approval_declined"] = serde_json::json!(why);
        }
        // Its approvers hear of it with the request, unless policy approves it
        // right away (then it never waited for anyone).
        let mut notice = match &auto {
            Some(Ok(_)) => vec![],
            _ if !self.pages_approvers(&req.role) => vec![],
            _ => super::approval_notice::draft(&req, role, &event),
        };
        if let Some(routine) = req.routine_use.as_ref().filter(|r| r.over) {
            let mut a = alert(AlertKind::RoutineUse, &req, &event);
            for d in &mut a {
                d.payload["routine_use"] = serde_json::json!({
                    "summary": routine.describe(&req.requester),
                    "role": routine.role,
                    "person": routine.person,
                    "approvals_required": req.approvals_required,
                });
            }
            notice.extend(a);
        }
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
        let Some(Ok(rule)) = auto else {
            return Ok(created);
        };
        // Approved by policy right after creation, as its own audited transition.
        // Should this process die in between, the request simply waits (Pending)
        // for human approvers: the fail-safe direction.
        self.transition(created.id, no_alerts, |r, role, now| {
            lifecycle::auto_approve(r, role, &rule, now)
        })
        .await
    }

    /// Where a new request of `who` stands against the role's activation bounds,
    /// counted from the store (`None` when the role sets none; without `who`,
    /// the role's bound only). Like the
    /// auto-approval rate, counted without a lock: racing requests may each see
    /// the same count; every one of them is still recorded and approved by people.
    pub(super) async fn routine_use(
        &self,
        role: &RolePolicy,
        who: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::domain::routine::RoutineUse>> {
        let count = |limit: Option<crate::domain::routine::ActivationLimit>,
                     requester: Option<String>| {
            let name = role.name.clone();
            async move {
                let Some(l) = limit else {
                    return Ok::<_, Error>(None);
                };
                let since = now - Duration::seconds(l.window);
                let n = self
                    .db(move |s| s.activations_since(&name, requester.as_deref(), since))
                    .await?;
                Ok(Some(n))
            }
        };
        let by_role = count(role.max_activations, None).await?;
        let by_person = match who {
            Some(w) => count(role.max_activations_per_person, Some(w.to_string())).await?,
            None => None,
        };
        Ok(crate::domain::routine::assess(role, by_role, by_person))
    }

    /// This role's requests auto-approved (by creation time) within its rate
    /// window. Counted from the store before the insert, not under a lock: two
    /// processes racing could both see N-1 and both auto-approve, overshooting
    /// the limit by the number of concurrent racers. That is tolerable: the limit
    /// is a brake on a runaway loop (which runs serially), every auto-approval
    /// still raises a critical alert and owes a certification, and the role locks
    /// once any of them is overdue.
    async fn recent_auto_approvals(&self, role: &RolePolicy, now: DateTime<Utc>) -> Result<u32> {
        let since = now - Duration::seconds(role.automation.rate_window);
        let name = role.name.clone();
        Ok(self
            .db(move |s| {
                s.list(&crate::store::Query {
                    role: Some(name),
                    ..Default::default()
                })
            })
            .await?
            .iter()
            .filter(|r| r.auto_approved && r.created_at > since)
            .count() as u32)
    }

    pub async fn cancel(&self, who: &str, id: RequestId) -> Result<Request> {
        let r = self
            .transition(id, no_alerts, |r, _, now| lifecycle::cancel(r, who, now))
            .await;
        self.noted(who, Some(id), "cancel", r).await
    }

    /// A policy refusal (self-approval, a locked role, someone outside the policy)
    /// is worth the SOC's eye: it is audited, alerted when configured, then returned.
    pub(super) async fn noted<T>(
        &self,
        who: &str,
        id: Option<RequestId>,
        attempt: &str,
        r: Result<T>,
    ) -> Result<T> {
        let message = match &r {
            Err(Error::Refused(f)) if f.kind == RefusalKind::Policy => f.message.clone(),
            Err(Error::Locked { role, reason }) => format!("role {role} is locked: {reason}"),
            _ => return r,
        };
        // A refusal quotes what was asked (a condition, a role name), as typed.
        let message = free_text(&message);
        let req = match id {
            Some(i) => self.db(move |s| s.get(i)).await.ok().flatten(),
            None => None,
        };
        let state = req.as_ref().map(|r| r.state);
        let detail = serde_json::json!({ "attempt": attempt, "refusal": message });
        let actor = who.to_string();
        let mut alerts = vec![];
        if self.alerts.wants(AlertKind::Refusal) {
            alerts.push(AlertDraft {
                kind: AlertKind::Refusal,
                payload: serde_json::json!({
                    "request_id": id.map(|i| i.to_string()),
                    "role": req.as_ref().map(|r| r.role.clone()),
                    "requester": req.as_ref().map(|r| r.requester.clone()),
                    "actor": who,
                    "action": AuditAction::PolicyRefused,
                    "detail": detail,
                }),
            });
        }
        let now = self.clock.now();
        let noted = self.db(move |s| {
            let note = crate::store::Note {
                action: AuditAction::PolicyRefused,
                actor: &actor,
                from: state,
                to: state,
                detail: &detail,
            };
            s.append_note(id, &note, &alerts, now)
        });
        if let Err(e) = noted.await {
            tracing::error!("could not audit a refusal: {e}");
        }
        r
    }

    /// `Error::Locked`, with who clears it, while a request holds `role`.
    pub(super) async fn check_unlocked(&self, role: &str) -> Result<()> {
        let (name, now) = (role.to_string(), self.clock.now());
        match self.db(move |s| s.role_lock(&name, now)).await? {
            Some((by, state)) => Err(Error::Locked {
                role: role.to_string(),
                reason: self.lock_reason(by, state).await,
            }),
            None => Ok(()),
        }
    }

    /// Approved -> Granting -> Active. The intent is committed before the backend
    /// is called; the credential goes to the caller only and is never stored.
    /// (`activate` and `activate_for_shell` decide who may call it for a role.)
    pub(super) async fn grant_access(
        &self,
        who: &str,
        id: RequestId,
    ) -> Result<(Request, Credential)> {
        self.noted(
            who,
            Some(id),
            "activate",
            self.check_row_against_events(id).await,
        )
        .await?;
        let owner = self.owner.clone();
        let fail_closed = self
            .load(id)
            .await
            .ok()
            .and_then(|r| {
                self.policy
                    .roles
                    .get(&r.role)
                    .map(|p| p.require_alert_delivery)
            })
            .unwrap_or(false);
        // Fail-closed roles raise the activation alert with the intent, and the
        // backend is only called once the SOC has it.
        let intent_alerts = |r: &Request, e: &Event| {
            if fail_closed {
                activation_alert(r, e)
            } else {
                vec![]
            }
        };
        // The approvals' signatures, checked on the blocking pool before the step.
        let verdicts = self.approval_verdicts(id).await;
        let req = self.transition(id, intent_alerts, |r, role, now| {
            let ev = lifecycle::begin_grant(r, who, owner.clone(), now)?;
            if r.auto_approved {
                // No person approved it: the policy must still allow it (a store
                // edit setting auto_approved alone does not grant).
                let why = match lifecycle::auto_approval(role, r, 0) {
                    Some(Ok(_)) => None,
                    Some(Err(why)) => Some(why),
                    None => Some(format!("{} is not an automation identity", r.requester)),
                };
                if let Some(why) = why {
                    return Err(Refusal::new(
                        RefusalKind::Policy,
                        lifecycle::Reason::NotPermitted,
                        format!(
                            "{} is marked auto-approved but the policy does not auto-approve it: {why}",
                            r.id
                        ),
                    ));
                }
            } else {
                self.check_approvals_signed(r, role, &verdicts)?;
            }
            Ok(ev)
        }).await;
        let req = self.noted(who, Some(id), "activate", req).await?;
        failpoint::hit("grant.after_intent");
        if fail_closed {
            let delivered = self.deliver_alerts().await.is_ok()
                && self
                    .db(move |s| s.outbox_undelivered_for(id))
                    .await
                    .map(|n| n == 0)
                    .unwrap_or(false);
            if !delivered {
                let message = format!(
                    "the activation alert could not be delivered to the SOC, and role {} requires delivery before access",
                    req.role
                );
                let _ = self.fail_grant(id, &message).await;
                return Err(Error::Backend {
                    backend: "alert delivery".into(),
                    message,
                    source: None,
                });
            }
        }
        let role = self.role(&req.role)?;
        let backend = self.backend(role)?.clone();
        // Fixed by the grant intent just committed (a stored row without its grant
        // record is damaged, not a reason to panic).
        let Some(deadline) = req.grant_deadline() else {
            return Err(Error::Store(StoreError::Db(format!(
                "{id} is granting but its row has no grant record"
            ))));
        };
        let spec = GrantSpec {
            request_id: req.id.to_string(),
            role: role.name.clone(),
            scope: role.scope.clone(),
            requester: req.requester.clone(),
            ttl_seconds: req.ttl_seconds,
            expires_at: deadline,
            incident: req.incident.label(),
        };
        match backend.grant(&spec).await {
            Ok(grant) => {
                failpoint::hit("grant.after_backend");
                let lease = grant.lease_id.clone();
                let committed = self
                    .transition(
                        id,
                        |r, e| {
                            if fail_closed {
                                vec![]
                            } else {
                                activation_alert(r, e)
                            }
                        },
                        |r, _, now| lifecycle::granted(r, &lease, grant.expires_at, now),
                    )
                    .await;
                match committed {
                    Ok(r) => Ok((r, grant.credential)),
                    Err(e) => {
                        // Recovery took the request over meanwhile (it may already have
                        // revoked by request id before this lease existed): take this
                        // lease back directly, then fail the request if still ours.
                        drop(grant);
                        let direct = RevokeSpec {
                            request_id: spec.request_id.clone(),
                            role: spec.role.clone(),
                            scope: spec.scope.clone(),
                            lease_id: Some(lease),
                        };
                        if let Err(re) = backend.revoke(&direct).await {
                            tracing::error!("revoking unrecorded lease of {id} failed: {re}");
                        }
                        if self
                            .load(id)
                            .await
                            .is_ok_and(|r| r.state == State::Granting)
                        {
                            let _ = self
                                .fail_grant(id, &format!("could not record the grant: {e}"))
                                .await;
                        }
                        Err(e)
                    }
                }
            }
            Err(e) => {
                let message = e.to_string();
                let _ = self.fail_grant(id, &message).await;
                Err(Error::Backend {
                    backend: role.backend.clone(),
                    message,
                    source: Some(e),
                })
            }
        }
    }

    /// Granting -> Revoking -> Failed: whatever the backend may have created is revoked.
    pub(crate) async fn fail_grant(&self, id: RequestId, error: &str) -> Result<Request> {
        let actor = self.load(id).await?.requester;
        let req = self
            .transition(
                id,
                |r, e| alert(AlertKind::GrantFailed, r, e),
                |r, _, now| lifecycle::grant_failed(r, &actor, error, now, self.owner.clone()),
            )
            .await?;
        self.perform_revoke(req).await
    }

    /// Ends access early. The requester, the role's approvers and certifiers may.
    pub async fn revoke(&self, who: &str, id: RequestId, reason: &str) -> Result<Request> {
        let reason = &free_text(reason);
        let req = self.load(id).await?;
        let role = self.role(&req.role)?;
        if who != req.requester && !role.approvers.allows(who) && !role.certifiers.allows(who) {
            let e = refusal_because(
                RefusalKind::Policy,
                lifecycle::Reason::NotPermitted,
                format!("{who} may not end {id}: its requester, approvers or certifiers may"),
            );
            return self.noted(who, Some(id), "revoke", Err(e)).await;
        }
        if matches!(
            req.state,
            State::Ended | State::Reviewed | State::Certified | State::Failed
        ) {
            // Idempotent: the backend already confirmed; nothing to do, nothing to audit.
            return Ok(req);
        }
        if req.state == State::Revoking {
            // Already under way (perhaps a failed attempt): try again now.
            return self.perform_revoke(req).await;
        }
        let reason = if reason.trim().is_empty() {
            "ended early"
        } else {
            reason.trim()
        };
        let deadline = self.clock.now()
            + Duration::from_std(self.recovery.revoke_timeout).unwrap_or(Duration::seconds(60));
        let req = self
            .transition(
                id,
                |r, e| alert(AlertKind::EarlyEnd, r, e),
                |r, _, now| {
                    lifecycle::begin_revoke(r, who, reason, now, deadline, self.owner.clone())
                },
            )
            .await?;
        self.perform_revoke(req).await
    }

    /// Extends active access for a caller with no one to show a new credential
    /// to; front ends call [`Engine::extend_access`]. (A backend that issues
    /// one, ssh-ca, revokes the old: its new credential is dropped here.)
    pub async fn extend(
        &self,
        who: &str,
        id: RequestId,
        seconds: i64,
        reason: &str,
    ) -> Result<Request> {
        Ok(self.extend_access(who, id, seconds, reason).await?.0)
    }

    /// Extends active access. The target's expiry moves first; the store records it
    /// only once the backend agreed. A backend whose credential carries its own
    /// expiry (ssh-ca) returns a new credential, shown once like a grant's.
    pub async fn extend_access(
        &self,
        who: &str,
        id: RequestId,
        seconds: i64,
        reason: &str,
    ) -> Result<(Request, Option<Credential>)> {
        let reason = &free_text(reason);
        let req = self.load(id).await?;
        let role = self.role(&req.role)?;
        let mut trial = req.clone();
        let checked = lifecycle::extend(&mut trial, role, who, seconds, reason, self.clock.now());
        self.noted(who, Some(id), "extend", checked.map_err(Error::from))
            .await?;
        // require_open_incident holds at every extension, not only at request time.
        let still_open = self.incident_still_open(&req, role).await;
        self.noted(who, Some(id), "extend", still_open).await?;
        let new_expiry = trial.expires_at().expect("extended access has an expiry");
        let spec = RevokeSpec {
            request_id: req.id.to_string(),
            role: role.name.clone(),
            scope: role.scope.clone(),
            lease_id: req.grant.as_ref().and_then(|g| g.lease_id.clone()),
        };
        let credential = self
            .backend(role)?
            .extend_credential(&spec, &req.requester, new_expiry)
            .await
            .map_err(|e| Error::Backend {
                backend: role.backend.clone(),
                message: format!("extending {id}: {e}"),
                source: Some(e),
            })?;
        let req = self
            .transition(
                id,
                |r, e| alert(AlertKind::Extension, r, e),
                |r, role, now| lifecycle::extend(r, role, who, seconds, reason, now),
            )
            .await?;
        Ok((req, credential))
    }

    pub async fn review(
        &self,
        who: &str,
        id: RequestId,
        answers: ReviewAnswers,
    ) -> Result<Request> {
        let answers = ReviewAnswers {
            actions_taken: free_text(&answers.actions_taken),
            systems_touched: free_text(&answers.systems_touched),
            // Shown in certifiers' views, alerts and the invalidation record.
            credentials_copied_where: crate::sanitize::text(
                &answers.credentials_copied_where,
                MAX_COPIED_WHERE,
            ),
            follow_ups: free_text(&answers.follow_ups),
            ..answers
        };
        let r = self
            .transition(id, no_alerts, |r, role, now| {
                lifecycle::review(r, role, who, answers.clone(), now)
            })
            .await;
        let r = self.noted(who, Some(id), "review", r).await?;
        if !r.invalidation.as_ref().is_some_and(|i| i.pending()) {
            return Ok(r);
        }
        // Copied credentials: the backend is asked now, after the review's
        // commit. The review stands whatever it answers; a failure is recorded
        // with its retry time and the sweeper tries again.
        match self.invalidate_copied(id, who).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => self.load(id).await,
            Err(e) => {
                tracing::warn!(request = %id, error = %e, "invalidating copied credentials");
                self.load(id).await
            }
        }
    }
}
