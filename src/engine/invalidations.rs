//! Credentials a review says were copied: the backend is asked to make them
//! useless (the role's standing secret rotated where the role rotates after
//! use; what was granted invalidated again, `Backend::invalidate`), and the
//! confirmation is recorded as `credentials.invalidated`. Certification waits
//! for it (or a certifier's exception). Tried when the review is submitted and
//! retried by recovery; each attempt holds the request's sweeper claim, so one
//! process calls the backend, and the backend call is outside any store
//! transaction (the record is its own transition afterwards).

use super::*;
use crate::backend::{BackendError, InvalidationMethod, InvalidationOutcome, RevokeSpec};
use crate::domain::State;
use crate::store::{ClaimKey, Query};
use chrono::Duration;

/// The longest confirmation or error kept on record.
const MAX_SAID: usize = 500;

impl Engine {
    /// Invalidates `id`'s copied credentials when an attempt is due and no
    /// other process holds the request's claim. `Ok(None)`: nothing was due, or
    /// another process has it. A backend failure is recorded (with its retry
    /// time) and returned as `Error::Backend`.
    pub(super) async fn invalidate_copied(
        &self,
        id: RequestId,
        actor: &str,
    ) -> Result<Option<Request>> {
        let now = self.clock.now();
        let lease =
            Duration::from_std(self.recovery.revoke_timeout).unwrap_or(Duration::seconds(60));
        let key = ClaimKey::Request(id);
        if !self.claim(key, now, now + lease).await? {
            return Ok(None);
        }
        let out = self.invalidate_claimed(id, actor, now).await;
        self.release(key).await;
        out
    }

    async fn invalidate_claimed(
        &self,
        id: RequestId,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Request>> {
        // Under the claim, look again: another process may have finished it.
        let req = self.load(id).await?;
        if !req.invalidation.as_ref().is_some_and(|i| i.due(now)) {
            return Ok(None);
        }
        // A role or backend missing from the config is a failure like the
        // backend's own: recorded, retried, and said to the certifier.
        let answer = match self.call_invalidate(&req).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err((e.to_string(), Some(e))),
            Err(e) => Err((e.to_string(), None)),
        };
        match answer {
            Ok(outcome) => {
                let r = self
                    .transition(id, no_alerts, |r, _, now| {
                        lifecycle::invalidated(r, actor, outcome.clone(), now)
                    })
                    .await;
                match r {
                    Ok(r) => Ok(Some(r)),
                    // A racer recorded it first (or an exception was made).
                    Err(Error::Refused(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Err((said, source)) => {
                let message = crate::sanitize::line(&said, MAX_SAID);
                let _ = self
                    .transition(id, no_alerts, |r, _, now| {
                        lifecycle::invalidation_failed(r, actor, &message, now)
                    })
                    .await;
                let backend = self
                    .policy
                    .roles
                    .get(&req.role)
                    .map(|r| r.backend.clone())
                    .unwrap_or_default();
                Err(Error::Backend {
                    backend,
                    message: format!(
                        "invalidating {id}'s copied credentials failed, will retry: {message}"
                    ),
                    source,
                })
            }
        }
    }

    /// Asks the backend: rotate where the role rotates after use (a backend
    /// that cannot rotate is skipped), then `invalidate`. The outer error is a
    /// role or backend missing from the config.
    async fn call_invalidate(
        &self,
        req: &Request,
    ) -> Result<std::result::Result<InvalidationOutcome, BackendError>> {
        let role = self.role(&req.role)?;
        let backend = self.backend(role)?.clone();
        let spec = RevokeSpec {
            request_id: req.id.to_string(),
            role: role.name.clone(),
            scope: role.scope.clone(),
            lease_id: req.grant.as_ref().and_then(|g| g.lease_id.clone()),
        };
        let mut said = vec![];
        let mut method = InvalidationMethod::Revoked;
        if role.rotate_after_use {
            match backend.rotate(&role.name, &role.scope).await {
                Ok(()) => {
                    method = InvalidationMethod::Rotated;
                    said.push(format!(
                        "{}: the role's standing secret rotated",
                        backend.kind()
                    ));
                }
                Err(BackendError::NotSupported(_)) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        match backend.invalidate(&spec).await {
            Ok(o) => {
                if o.method == InvalidationMethod::Rotated {
                    method = InvalidationMethod::Rotated;
                }
                said.push(o.confirmation);
            }
            Err(e) => return Ok(Err(e)),
        }
        Ok(Ok(InvalidationOutcome {
            method,
            // What a backend (or a plugin) says is cleaned like any other text.
            confirmation: crate::sanitize::line(&said.join("; "), MAX_SAID),
        }))
    }

    /// Recovery's phase: pending invalidations whose attempt is due are tried
    /// again, one process each (the claim).
    pub(super) async fn retry_invalidations(
        &self,
        now: DateTime<Utc>,
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let due: Vec<RequestId> = self
            .db(|s| {
                s.list(&Query {
                    states: Some(vec![State::Ended, State::Reviewed]),
                    ..Default::default()
                })
            })
            .await?
            .into_iter()
            .filter(|r| r.invalidation.as_ref().is_some_and(|i| i.due(now)))
            .map(|r| r.id)
            .collect();
        for id in due {
            match self.invalidate_copied(id, SWEEPER).await {
                Ok(Some(_)) => rep.invalidations_done.push(id.to_string()),
                Ok(None) => {}
                Err(e) => rep.errors.push(format!("{id}: {e}")),
            }
        }
        Ok(())
    }
}
