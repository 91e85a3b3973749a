//! Vendor roles in the engine: the vendor's identity on requests, activation
//! only through a recorded `shell`, recordings hashed into the audit trail, and
//! certification only after the certifier replayed the session.

use super::*;
use crate::audit::AuditRecord;
use crate::backend::Credential;
use crate::domain::vendor::{VendorInfo, VendorPolicy};
use crate::domain::{IncidentRef, Request, State};
use std::path::PathBuf;

pub use crate::audit::recordings::sha256_file;

/// Checks and attaches the vendor's identity to a new request.
pub(super) fn attach(
    role: &RolePolicy,
    req: &mut Request,
    event: &mut Event,
    vendor: Option<VendorInfo>,
) -> Result<()> {
    let Some(vp) = &role.vendor else {
        if vendor.is_some() {
            return Err(refusal(
                RefusalKind::Input,
                format!(
                    "role {} is not a vendor role; leave out --vendor-name and --vendor-company",
                    role.name
                ),
            ));
        }
        return Ok(());
    };
    let clean = |s: &str| crate::sanitize::line(s.trim(), 100);
    let info = vendor
        .map(|v| VendorInfo {
            name: clean(&v.name),
            company: clean(&v.company),
        })
        .filter(|v| !v.name.trim().is_empty() && !v.company.trim().is_empty())
        .ok_or_else(|| {
            refusal(
                RefusalKind::Input,
                format!(
                    "role {} is a vendor role: name the vendor with --vendor-name NAME and --vendor-company COMPANY",
                    role.name
                ),
            )
        })?;
    if req.ttl_seconds > vp.max_ttl {
        return Err(refusal_because(
            RefusalKind::Policy,
            lifecycle::Reason::OverLimit,
            format!(
                "role {} is a vendor role: TTL {} is longer than its vendor_max_ttl {}",
                role.name,
                crate::domain::time::human(req.ttl_seconds),
                crate::domain::time::human(vp.max_ttl)
            ),
        ));
    }
    event.detail["vendor"] = serde_json::json!(info);
    req.vendor = Some(info);
    Ok(())
}

impl Engine {
    /// Files a request; vendor roles need `vendor` (name and company).
    pub async fn request_vendor(
        &self,
        who: &str,
        input: RequestInput,
        vendor: Option<VendorInfo>,
    ) -> Result<Request> {
        let attempt = format!("request role {}", input.role);
        let r = self.request_inner(who, input, vendor).await;
        self.noted(who, None, &attempt, r).await
    }

    /// The vendor settings of a request's role (None: not a vendor role).
    pub fn vendor_policy_of(&self, req: &Request) -> Option<&VendorPolicy> {
        self.policy
            .roles
            .get(&req.role)
            .and_then(|r| r.vendor.as_ref())
    }

    /// Approved -> Granting -> Active. The intent is committed before the backend
    /// is called; the credential goes to the caller only and is never stored.
    /// Vendor roles are activated only through `breakglass shell`.
    pub async fn activate(&self, who: &str, id: RequestId) -> Result<(Request, Credential)> {
        let req = self.load(id).await?;
        if req.drill.is_some() {
            let e = refusal_because(
                RefusalKind::Policy,
                lifecycle::Reason::NotPermitted,
                format!(
                    "{id} is a drill of role {}: its credential is never shown; run `breakglass drill {}`",
                    req.role, req.role
                ),
            );
            return self.noted(who, Some(id), "activate", Err(e)).await;
        }
        if self.vendor_policy_of(&req).is_some() {
            let e = refusal_because(
                RefusalKind::Policy, lifecycle::Reason::NotPermitted,
                format!(
                    "{id} is for vendor role {}: its access is only given in a recorded session; run `breakglass shell {id}`",
                    req.role
                ),
            );
            return self.noted(who, Some(id), "activate", Err(e)).await;
        }
        self.grant_access(who, id).await
    }

    /// Activates a vendor request for `breakglass shell` (same path as `activate`).
    pub async fn activate_for_shell(
        &self,
        who: &str,
        id: RequestId,
    ) -> Result<(Request, Credential)> {
        let req = self.load(id).await?;
        if req.drill.is_some() {
            return Err(refusal(
                RefusalKind::Input,
                format!(
                    "{id} is a drill: its credential is never shown; run `breakglass drill {}`",
                    req.role
                ),
            ));
        }
        if self.vendor_policy_of(&req).is_none() {
            return Err(refusal(
                RefusalKind::Input,
                format!(
                    "{id} is not for a vendor role; `breakglass shell` is for vendor roles, use `breakglass activate {id}`"
                ),
            ));
        }
        // The role's certification may have lapsed since the request was filed.
        let role = self.role(&req.role)?;
        let checked = self.check_recertified(role).await;
        self.noted(who, Some(id), "shell", checked).await?;
        self.grant_access(who, id).await
    }

    /// Why an active vendor session must end now, if it must: expiry reached,
    /// access no longer active (revoked), or its incident resolved.
    pub async fn session_end_reason(&self, id: RequestId) -> Result<Option<String>> {
        let req = self.load(id).await?;
        if req.state != State::Active {
            let why = req
                .grant
                .as_ref()
                .and_then(|g| g.end.as_ref())
                .map(|e| format!("access was ended by {}: {}", e.by, e.reason))
                .unwrap_or_else(|| format!("access is {}", req.state));
            return Ok(Some(why));
        }
        if req.expires_at().is_some_and(|e| e <= self.clock.now()) {
            return Ok(Some("access expired".into()));
        }
        let role = self.role(&req.role)?;
        if role.revoke_on_resolve {
            if let IncidentRef::Source {
                source, id: inc, ..
            } = &req.incident
            {
                if let Some(src) = self.sources.iter().find(|s| s.name() == source) {
                    // A source error never ends access.
                    if let Ok(Some(i)) = src.get(inc).await {
                        if !i.status.is_open() {
                            return Ok(Some(format!("incident {inc} was resolved")));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// An audit event about a request that changes no state.
    pub async fn audit_note(
        &self,
        id: RequestId,
        action: AuditAction,
        who: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let state = self.load(id).await?.state;
        let actor = who.to_string();
        let now = self.clock.now();
        Ok(self
            .db(move |s| {
                let note = crate::store::Note {
                    action,
                    actor: &actor,
                    from: Some(state),
                    to: Some(state),
                    detail: &detail,
                };
                s.append_note(Some(id), &note, &[], now)
            })
            .await?)
    }

    /// Audit events of one request with `action`, oldest first.
    pub(super) async fn events_of(
        &self,
        id: RequestId,
        action: AuditAction,
    ) -> Result<Vec<AuditRecord>> {
        Ok(self.db(move |s| s.request_events(id, action)).await?)
    }

    /// The latest recording of a request's session: its path and audited SHA-256.
    pub async fn recording_of(&self, id: RequestId) -> Result<(PathBuf, String)> {
        let ev = self.events_of(id, AuditAction::SessionRecorded).await?;
        ev.last()
            .and_then(|r| {
                let d: serde_json::Value = serde_json::from_str(&r.detail).ok()?;
                Some((
                    PathBuf::from(d["path"].as_str()?),
                    d["sha256"].as_str()?.to_string(),
                ))
            })
            .ok_or_else(|| Error::NotFound(format!("{id} has no recorded session")))
    }

    /// Who may replay a session: its requester, the role's approvers and certifiers.
    pub async fn may_replay(&self, who: &str, id: RequestId) -> Result<()> {
        let req = self.load(id).await?;
        let role = self.role(&req.role)?;
        if who != req.requester && !role.approvers.allows(who) && !role.certifiers.allows(who) {
            let e = refusal_because(
                RefusalKind::Policy,
                lifecycle::Reason::NotPermitted,
                format!("{who} may not replay {id}: its requester, approvers or certifiers may"),
            );
            return self.noted(who, Some(id), "replay", Err(e)).await;
        }
        Ok(())
    }

    /// Whether `who` replayed the recorded session of `id` (None: no recording).
    pub async fn replayed_by(&self, who: &str, id: RequestId) -> Result<Option<bool>> {
        if self
            .events_of(id, AuditAction::SessionRecorded)
            .await?
            .is_empty()
        {
            // A session that never closed its recording: it is closed (marked
            // interrupted) when someone replays it, so it can be watched.
            let open = self.recording_path(id).is_ok_and(|p| p.exists());
            let ended = self
                .load(id)
                .await
                .is_ok_and(|r| matches!(r.state, State::Ended | State::Reviewed));
            return Ok((open && ended).then_some(false));
        }
        let replayed = self
            .events_of(id, AuditAction::SessionReplayed)
            .await?
            .iter()
            .any(|r| r.actor == who);
        Ok(Some(replayed))
    }

    /// Certifying a vendor request needs the certifier to have replayed it.
    pub(super) async fn check_replayed(&self, who: &str, id: RequestId) -> Result<()> {
        let req = self.load(id).await?;
        if self.vendor_policy_of(&req).is_none() || req.state != State::Reviewed {
            return Ok(());
        }
        let replayed = self
            .events_of(id, AuditAction::SessionReplayed)
            .await?
            .iter()
            .any(|r| r.actor == who);
        if replayed {
            return Ok(());
        }
        Err(refusal(
            RefusalKind::Policy,
            format!(
                "{id} is a vendor session: {who} must watch its recording before certifying; run `breakglass replay {id}` first"
            ),
        ))
    }
}
