//! Recovery and the sweeper: run before every command and in `breakglass daemon`.
//! Lapses stale requests, fails interrupted grants (revoking whatever they made),
//! revokes expired access, retries failed revocations and copied credentials'
//! invalidations.

use super::*;
use crate::domain::State;
use crate::store::{ClaimKey, Query};
use chrono::Duration;
use futures::StreamExt;
use rand::seq::SliceRandom;
use serde::Serialize;

#[derive(Debug, Default, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RecoveryReport {
    pub lapsed: Vec<String>,
    pub interrupted_grants_failed: Vec<String>,
    pub expired_revoked: Vec<String>,
    pub revokes_retried: Vec<String>,
    /// Active access revoked because its source reports the incident resolved.
    pub resolved_revoked: Vec<String>,
    /// Auto-approved requests whose certification deadline passed (alerted once).
    pub certification_overdue: Vec<String>,
    /// Copied credentials (per a review) the backend confirmed invalidated.
    #[serde(default)]
    pub invalidations_done: Vec<String>,
    pub alerts_delivered: u64,
    pub errors: Vec<String>,
}

impl RecoveryReport {
    pub fn is_quiet(&self) -> bool {
        self.lapsed.is_empty()
            && self.interrupted_grants_failed.is_empty()
            && self.expired_revoked.is_empty()
            && self.revokes_retried.is_empty()
            && self.resolved_revoked.is_empty()
            && self.certification_overdue.is_empty()
            && self.invalidations_done.is_empty()
            && self.errors.is_empty()
    }
}

/// Whether the process that owns a step is gone. Only decidable on the same host;
/// elsewhere the step's timeout decides.
pub(super) fn owner_is_dead(owner: &Owner) -> bool {
    if owner.host != this_host() {
        return false;
    }
    if owner.pid == std::process::id() {
        return false;
    }
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(owner.pid as i32), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// The process named in a sweeper claim ("host:pid:tag", `Engine::claimant`),
/// or None for a name in another form.
fn claimant_process(claimant: &str) -> Option<Owner> {
    let mut parts = claimant.rsplitn(3, ':');
    let _tag = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    let host = parts.next()?.to_string();
    Some(Owner { host, pid })
}

/// Whether the claimant named is a process gone from this host.
pub(super) fn claimant_is_dead(claimant: &str) -> bool {
    claimant_process(claimant).is_some_and(|o| owner_is_dead(&o))
}

/// A revocation in Revoking is due for a retry when its attempt deadline (the
/// lease) has passed, or the process that made the attempt is gone.
pub(super) fn retry_due(r: &Request, now: DateTime<Utc>) -> bool {
    r.grant.as_ref().is_some_and(|g| {
        g.next_attempt_at.is_none_or(|t| t <= now) || g.revoker.as_ref().is_some_and(owner_is_dead)
    })
}

impl Engine {
    /// Claims `key` for this engine until `until` (`Store::claim`). A claim held
    /// by a process that is gone from this host is taken over at once, not left
    /// to run out: the dead never finish, and its lease may be a minute.
    pub(super) async fn claim(
        &self,
        key: ClaimKey,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let me = self.claimant.clone();
        self.db(move |s| {
            if s.claim(key, &me, now, until)? {
                return Ok(true);
            }
            match s.claim_holder(key)? {
                Some((holder, _)) if claimant_is_dead(&holder) => {
                    s.take_over(key, &holder, &me, now, until)
                }
                _ => Ok(false),
            }
        })
        .await
    }

    /// Gives a claim back; a failure only means it runs out on its own.
    pub(super) async fn release(&self, key: ClaimKey) {
        let me = self.claimant.clone();
        let _ = self.db(move |s| s.release(key, &me)).await;
    }

    /// One recovery pass, phase by phase. Errors on individual requests are
    /// collected, not fatal: one stuck backend must not stop the others from
    /// being swept.
    pub async fn recover(&self) -> Result<RecoveryReport> {
        let mut rep = RecoveryReport::default();
        let now = self.clock.now();
        self.lapse_undecided(now, &mut rep).await?;
        self.fail_interrupted_grants(now, &mut rep).await?;
        self.revoke_expired(now, &mut rep).await?;
        // revoke_on_resolve (incident_checks.rs): bounded, and only a positive
        // "resolved" from the source revokes.
        if let Err(e) = self.revoke_resolved(&mut rep).await {
            rep.errors.push(format!("incident check: {e}"));
        }
        self.retry_revokes(now, &mut rep).await?;
        self.retry_invalidations(now, &mut rep).await?;
        self.flag_overdue_certifications(now, &mut rep).await?;
        match self.deliver_alerts().await {
            Ok(d) => rep.alerts_delivered = d.delivered,
            Err(e) => rep.errors.push(format!("alert delivery: {e}")),
        }
        Ok(rep)
    }

    /// Pending or approved requests nobody decided (or used) in time lapse.
    async fn lapse_undecided(&self, now: DateTime<Utc>, rep: &mut RecoveryReport) -> Result<()> {
        for req in self
            .db(|s| {
                s.list(&Query {
                    states: Some(vec![State::Pending, State::Approved]),
                    ..Default::default()
                })
            })
            .await?
        {
            if req.decide_by <= now {
                match self
                    .transition(req.id, no_alerts, |r, _, now| {
                        lifecycle::lapse(r, SWEEPER, now)
                    })
                    .await
                {
                    Ok(_) => rep.lapsed.push(req.id.to_string()),
                    Err(Error::Refused(_)) => {}
                    Err(e) => rep.errors.push(format!("{}: {e}", req.id)),
                }
            }
        }
        Ok(())
    }

    /// A grant whose process died, or that never completed, is failed and its
    /// lease revoked by request id.
    async fn fail_interrupted_grants(
        &self,
        now: DateTime<Utc>,
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let grant_timeout =
            Duration::from_std(self.recovery.grant_timeout).unwrap_or(Duration::seconds(120));
        for req in self
            .db(|s| {
                s.list(&Query {
                    states: Some(vec![State::Granting]),
                    ..Default::default()
                })
            })
            .await?
        {
            let Some(g) = &req.grant else { continue };
            let why = if owner_is_dead(&g.owner) {
                format!(
                    "grant interrupted: process {} on {} is gone",
                    g.owner.pid, g.owner.host
                )
            } else if g.intent_at + grant_timeout <= now {
                format!(
                    "grant did not complete within {}",
                    lifecycle_human(grant_timeout.num_seconds())
                )
            } else {
                continue;
            };
            let r = self
                .transition(
                    req.id,
                    |r, e| alert(AlertKind::Recovery, r, e),
                    |r, _, now| lifecycle::grant_failed(r, RECOVERY, &why, now, self.owner.clone()),
                )
                .await;
            match r {
                Ok(r) => match self.perform_revoke(r).await {
                    Ok(_) => rep.interrupted_grants_failed.push(req.id.to_string()),
                    Err(e) => rep.errors.push(format!("{}: {e}", req.id)),
                },
                Err(Error::Refused(_)) => {}
                Err(e) => rep.errors.push(format!("{}: {e}", req.id)),
            }
        }
        Ok(())
    }

    /// Active grants past their expiry are revoked, many in flight at once
    /// (`revoke_many`).
    async fn revoke_expired(&self, now: DateTime<Utc>, rep: &mut RecoveryReport) -> Result<()> {
        // Replicas sharing the store each take the expired grants in their own
        // random order, so they rarely race for the same one (and when they do,
        // the version check gives it to exactly one).
        let mut expired: Vec<Request> = self
            .db(|s| {
                s.list(&Query {
                    states: Some(vec![State::Active]),
                    ..Default::default()
                })
            })
            .await?
            .into_iter()
            .filter(|r| r.expires_at().is_some_and(|e| e <= now))
            .collect();
        expired.shuffle(&mut rand::thread_rng());
        let (revoked, errors) = self.revoke_many(expired, "expired").await;
        rep.expired_revoked.extend(revoked);
        rep.errors.extend(errors);
        Ok(())
    }

    /// Revocations not yet confirmed are retried when due, one replica each,
    /// several at once.
    async fn retry_revokes(&self, now: DateTime<Utc>, rep: &mut RecoveryReport) -> Result<()> {
        let revoke_timeout =
            Duration::from_std(self.recovery.revoke_timeout).unwrap_or(Duration::seconds(60));
        let mut revoking = self
            .db(|s| {
                s.list(&Query {
                    states: Some(vec![State::Revoking]),
                    ..Default::default()
                })
            })
            .await?;
        revoking.retain(|r| retry_due(r, now));
        revoking.shuffle(&mut rand::thread_rng());
        // Each retry is claimed first, so of several replicas exactly one calls
        // the backend; if that replica dies too, its claim is taken over at once
        // on its host, elsewhere once revoke_timeout runs out.
        let outcomes: Vec<std::result::Result<Option<String>, String>> =
            futures::stream::iter(revoking)
                .map(|req| async move {
                    let key = ClaimKey::Request(req.id);
                    match self.claim(key, now, now + revoke_timeout).await {
                        Ok(true) => {}
                        Ok(false) => return Ok(None), // another replica is on it
                        Err(e) => return Err(format!("{}: {e}", req.id)),
                    }
                    // Under the claim, look again: another replica may have finished it.
                    let out = match self.load(req.id).await {
                        Ok(cur) if cur.state == State::Revoking && retry_due(&cur, now) => self
                            .perform_revoke(cur)
                            .await
                            .map(|_| Some(req.id.to_string()))
                            .map_err(|e| format!("{}: {e}", req.id)),
                        Ok(_) => Ok(None),
                        Err(e) => Err(format!("{}: {e}", req.id)),
                    };
                    self.release(key).await;
                    out
                })
                .buffer_unordered(self.recovery.revoke_concurrency.max(1))
                .collect()
                .await;
        for o in outcomes {
            match o {
                Ok(Some(id)) => rep.revokes_retried.push(id),
                Ok(None) => {}
                Err(e) => rep.errors.push(e),
            }
        }
        Ok(())
    }

    /// Auto-approved access still uncertified past its deadline is flagged once.
    async fn flag_overdue_certifications(
        &self,
        now: DateTime<Utc>,
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        // Auto-approved requests still uncertified past certify_by: one alert each
        // (recorded on the request, so racing replicas raise it once); the role
        // is locked by the store's lock check from then on.
        for req in self
            .db(|s| {
                s.list(&Query {
                    states: Some(vec![State::Ended, State::Reviewed]),
                    ..Default::default()
                })
            })
            .await?
        {
            if req.certification_overdue_since(now).is_none()
                || req.certification_overdue_at.is_some()
            {
                continue;
            }
            match self
                .transition(
                    req.id,
                    |r, e| alert(AlertKind::CertificationOverdue, r, e),
                    |r, _, now| lifecycle::certification_overdue(r, SWEEPER, now),
                )
                .await
            {
                Ok(_) => rep.certification_overdue.push(req.id.to_string()),
                Err(Error::Refused(_)) => {}
                Err(e) => rep.errors.push(format!("{}: {e}", req.id)),
            }
        }
        Ok(())
    }
}
