//! Revoking at the backend and recording it: one request at a time (a person's
//! revoke, a failed grant, a retry), or many in flight at once (the sweeper's
//! expired grants, `revoke_many`), where the intents and the confirmations of a
//! batch are each one store commit (`Store::commit_batch`). Only a confirmed
//! revoke moves a request on; a failure stays Revoking with a retry time.

use super::*;
use crate::backend::{BackendError, RevokeSpec};
use crate::domain::State;
use crate::failpoint;
use crate::store::Transition;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;

/// The backend's answer to one revocation: confirmed, with the rotation's
/// outcome when the role rotates after use (`None` when it does not), or the
/// backend's error.
pub(super) type Revoked =
    std::result::Result<Option<std::result::Result<(), String>>, BackendError>;

/// The confirmation step: Revoking -> Ended (or Failed), with the rotation noted.
fn confirm(
    r: &mut Request,
    actor: &str,
    rotation: &Option<std::result::Result<(), String>>,
    now: DateTime<Utc>,
) -> std::result::Result<Event, Refusal> {
    let mut ev = lifecycle::revoked(r, actor, now)?;
    match rotation {
        Some(Ok(())) => ev.detail["rotation"] = serde_json::json!("rotated"),
        Some(Err(msg)) => ev.detail["rotation"] = serde_json::json!({ "failed": msg }),
        None => {}
    }
    Ok(ev)
}

/// Rotation failure does not undo the revocation; it is audited with it and
/// alerted, so someone rotates by hand.
fn confirm_alerts(
    rotation: &Option<std::result::Result<(), String>>,
    r: &Request,
    e: &Event,
) -> Vec<crate::store::AlertDraft> {
    match rotation {
        Some(Err(_)) => alert(AlertKind::RotateFailed, r, e),
        _ => vec![],
    }
}

/// Who the revocation is recorded as: whoever ended the access, else the sweeper.
fn revoker_name(req: &Request) -> String {
    req.grant
        .as_ref()
        .and_then(|g| g.end.as_ref())
        .map(|e| e.by.clone())
        .unwrap_or_else(|| SWEEPER.to_string())
}

impl Engine {
    /// Calls the backend for a request in Revoking and records the outcome.
    pub(crate) async fn perform_revoke(&self, req: Request) -> Result<Request> {
        let answer = self.call_revoke(&req).await?;
        self.record_revoke(&req, answer).await
    }

    /// Asks the backend to revoke (and rotate, when the role says so). The outer
    /// error is a role or backend missing from the config.
    async fn call_revoke(&self, req: &Request) -> Result<Revoked> {
        failpoint::hit("revoke.after_intent");
        let role = self.role(&req.role)?;
        let backend = self.backend(role)?.clone();
        let spec = RevokeSpec {
            request_id: req.id.to_string(),
            role: role.name.clone(),
            scope: role.scope.clone(),
            lease_id: req.grant.as_ref().and_then(|g| g.lease_id.clone()),
        };
        match backend.revoke(&spec).await {
            Ok(()) => {
                failpoint::hit("revoke.after_backend");
                let rotation = if role.rotate_after_use
                    && !req.grant.as_ref().is_some_and(|g| g.grant_failed)
                {
                    Some(
                        backend
                            .rotate(&role.name, &role.scope)
                            .await
                            .map_err(|e| e.to_string()),
                    )
                } else {
                    None
                };
                Ok(Ok(rotation))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Records one backend answer with its own transition (reloading the
    /// request, so it applies to whatever version is stored now).
    async fn record_revoke(&self, req: &Request, answer: Revoked) -> Result<Request> {
        let id = req.id;
        let actor = revoker_name(req);
        match answer {
            Ok(rotation) => {
                match self
                    .transition(
                        id,
                        |r, e| confirm_alerts(&rotation, r, e),
                        |r, _, now| confirm(r, &actor, &rotation, now),
                    )
                    .await
                {
                    Ok(r) => Ok(r),
                    // Someone else confirmed it first: that is the same outcome.
                    Err(Error::Refused(_)) => self.load(id).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => {
                let message = e.to_string();
                let _ = self
                    .transition(
                        id,
                        |r, e| alert(AlertKind::RevokeFailed, r, e),
                        |r, _, now| lifecycle::revoke_failed(r, &actor, &message, now),
                    )
                    .await;
                let backend = self
                    .policy
                    .roles
                    .get(&req.role)
                    .map(|r| r.backend.clone())
                    .unwrap_or_default();
                Err(Error::Backend {
                    backend,
                    message: format!("revoking {id} failed, will retry: {message}"),
                    source: Some(e),
                })
            }
        }
    }

    /// Revokes `todo` (Active requests), at most `[recovery] revoke_concurrency`
    /// backend calls in flight. Whenever half the slots are free, the next batch
    /// moves Active -> Revoking in one commit (each request still won by exactly
    /// one sweeper: the version check) and its calls start; the confirmations of
    /// whatever calls have finished are committed together, while the rest run
    /// on. One slow backend call holds up its slot, not the others. Returns the
    /// revoked ids and the errors.
    pub(super) async fn revoke_many(
        &self,
        todo: Vec<Request>,
        reason: &str,
    ) -> (Vec<String>, Vec<String>) {
        let limit = self.recovery.revoke_concurrency.max(1);
        let (mut revoked, mut errors) = (vec![], vec![]);
        let mut queue = todo.into_iter().peekable();
        let mut in_flight = FuturesUnordered::new();
        loop {
            if in_flight.len() <= limit / 2 && queue.peek().is_some() {
                let batch: Vec<Request> = queue.by_ref().take(limit - in_flight.len()).collect();
                for r in self.begin_revokes(batch, reason, &mut errors).await {
                    in_flight.push(async move {
                        let answer = self.call_revoke(&r).await;
                        (r, answer)
                    });
                }
                continue;
            }
            let Some(first) = in_flight.next().await else {
                break;
            };
            let mut done = vec![first];
            while let Some(Some(d)) = in_flight.next().now_or_never() {
                done.push(d);
            }
            self.record_revokes(done, &mut revoked, &mut errors).await;
        }
        (revoked, errors)
    }

    /// Active -> Revoking for a batch, in one commit; returns the ones won. A
    /// request another process moved on meanwhile is skipped (its version
    /// changed); when the batch itself fails, each is tried alone.
    async fn begin_revokes(
        &self,
        batch: Vec<Request>,
        reason: &str,
        errors: &mut Vec<String>,
    ) -> Vec<Request> {
        let revoke_timeout = chrono::Duration::from_std(self.recovery.revoke_timeout)
            .unwrap_or(chrono::Duration::seconds(60));
        let now = self.clock.now();
        let step = |r: &mut Request, now: DateTime<Utc>| {
            lifecycle::begin_revoke(
                r,
                SWEEPER,
                reason,
                now,
                now + revoke_timeout,
                self.owner.clone(),
            )
        };
        let transitions: Vec<Transition> = batch
            .iter()
            .filter_map(|r| {
                let mut request = r.clone();
                let event = step(&mut request, now).ok()?;
                Some(Transition {
                    request,
                    event,
                    alerts: vec![],
                })
            })
            .collect();
        let ids: Vec<RequestId> = transitions.iter().map(|t| t.request.id).collect();
        match self.db(move |s| s.commit_batch(&transitions, now)).await {
            Ok(results) => results
                .into_iter()
                .zip(ids)
                .filter_map(|(r, id)| match r {
                    Ok(r) => Some(r),
                    Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => None,
                    Err(e) => {
                        errors.push(format!("{id}: {e}"));
                        None
                    }
                })
                .collect(),
            Err(e) => {
                tracing::warn!("a batch of revoke intents failed ({e}); trying each alone");
                let mut won = vec![];
                for id in ids {
                    match self
                        .transition(id, no_alerts, |r, _, now| step(r, now))
                        .await
                    {
                        Ok(r) => won.push(r),
                        Err(Error::Refused(_)) => {}
                        Err(e) => errors.push(format!("{id}: {e}")),
                    }
                }
                won
            }
        }
    }

    /// Records finished backend calls: the confirmations in one commit; a
    /// failure, or a confirmation the batch could not take, on its own.
    async fn record_revokes(
        &self,
        done: Vec<(Request, Result<Revoked>)>,
        revoked: &mut Vec<String>,
        errors: &mut Vec<String>,
    ) {
        let now = self.clock.now();
        let mut batch: Vec<(Request, Revoked)> = vec![];
        let mut transitions = vec![];
        let mut alone: Vec<(Request, Revoked)> = vec![];
        for (req, answer) in done {
            match answer {
                Err(e) => errors.push(format!("{}: {e}", req.id)),
                Ok(Ok(rotation)) if req.state == State::Revoking => {
                    let mut request = req.clone();
                    match confirm(&mut request, &revoker_name(&req), &rotation, now) {
                        Ok(event) => {
                            let mut alerts = confirm_alerts(&rotation, &request, &event);
                            alerts.retain(|a| self.alerts.wants(a.kind));
                            transitions.push(Transition {
                                request,
                                event,
                                alerts,
                            });
                            batch.push((req, Ok(rotation)));
                        }
                        Err(_) => alone.push((req, Ok(rotation))),
                    }
                }
                Ok(answer) => alone.push((req, answer)),
            }
        }
        let committed = if transitions.is_empty() {
            Ok(vec![])
        } else {
            self.db(move |s| s.commit_batch(&transitions, now)).await
        };
        match committed {
            Ok(results) => {
                for ((req, answer), r) in batch.into_iter().zip(results) {
                    match r {
                        Ok(_) => revoked.push(req.id.to_string()),
                        Err(_) => alone.push((req, answer)),
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    "a batch of revoke confirmations failed ({e}); recording each alone"
                );
                alone.extend(batch);
            }
        }
        for (req, answer) in alone {
            match self.record_revoke(&req, answer).await {
                Ok(_) => revoked.push(req.id.to_string()),
                Err(e) => errors.push(format!("{}: {e}", req.id)),
            }
        }
    }
}
