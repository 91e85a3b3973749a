//! Vendor roles are re-approved by a certifier every `recertify_every` (an
//! access review of the role itself, not of one use of it). Before the first
//! recertification, and once the last one lapsed, the role is locked.

use super::*;
use crate::domain::SshSignature;
use serde::Serialize;

/// The role's last recertification and when the next one is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RoleCertification {
    pub at: DateTime<Utc>,
    pub by: String,
    pub due: DateTime<Utc>,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Engine {
    /// The last `roles recertify` of a vendor role (None: never, or not a vendor
    /// role). The due date follows the policy in force now, so shortening
    /// `recertify_every` takes effect at once.
    pub async fn role_certification(&self, role: &RolePolicy) -> Result<Option<RoleCertification>> {
        Ok(self.last_recertification(role).await?.map(|(c, _)| c))
    }

    /// The last recertification and the signature it carries (if any).
    async fn last_recertification(
        &self,
        role: &RolePolicy,
    ) -> Result<Option<(RoleCertification, Option<SshSignature>)>> {
        let Some(vp) = &role.vendor else {
            return Ok(None);
        };
        let name = role.name.clone();
        let Some(rec) = self
            .db(move |s| s.last_role_event(&name, AuditAction::RoleRecertified))
            .await?
        else {
            return Ok(None);
        };
        let detail: serde_json::Value = serde_json::from_str(&rec.detail).unwrap_or_default();
        let sig = detail
            .get("signature")
            .and_then(|s| serde_json::from_value::<SshSignature>(s.clone()).ok());
        let at = DateTime::parse_from_rfc3339(&rec.at)
            .map_err(|e| {
                Error::Store(StoreError::Db(format!(
                    "audit event {} has a bad time {:?}: {e}",
                    rec.seq, rec.at
                )))
            })?
            .with_timezone(&Utc);
        Ok(Some((
            RoleCertification {
                at,
                by: rec.actor,
                due: at + chrono::Duration::seconds(vp.recertify_every),
            },
            sig,
        )))
    }

    /// Why a vendor role may not be used now for want of recertification. With
    /// `verify`, and signing on, the recertification's signature must verify too
    /// (one ssh-keygen run: done when access is asked for, not for every view).
    pub(crate) async fn recertification_lock(
        &self,
        role: &RolePolicy,
        verify: bool,
    ) -> Result<Option<String>> {
        let Some(vp) = &role.vendor else {
            return Ok(None);
        };
        let how = format!(
            "a certifier ({}) runs `breakglass roles recertify {} --comment TEXT`",
            role.certifiers.describe(),
            role.name
        );
        Ok(match self.last_recertification(role).await? {
            None => Some(format!(
                "vendor role {} has never been certified: {how}",
                role.name
            )),
            // Someone who has since left the certifiers no longer vouches for it.
            Some((c, _)) if !role.certifiers.allows(&c.by) => Some(format!(
                "vendor role {} was last recertified by {}, who is no longer one of its certifiers: {how}",
                role.name, c.by
            )),
            Some((c, sig))
                if verify && !self.role_signature_valid(&role.name, &c.by, sig.as_ref()).await =>
            {
                Some(format!(
                    "vendor role {}'s recertification by {} on {} carries no valid signature (was the store edited? run `breakglass audit verify`): {how}",
                    role.name,
                    c.by,
                    stamp(c.at)
                ))
            }
            Some((c, _)) if c.due <= self.clock.now() => Some(format!(
                "vendor role {}'s certification by {} on {} lapsed on {} (recertify_every {}): {how}",
                role.name,
                c.by,
                stamp(c.at),
                stamp(c.due),
                lifecycle_human(vp.recertify_every)
            )),
            Some(_) => None,
        })
    }

    /// Refuses with `Locked` when the role needs recertification.
    pub(super) async fn check_recertified(&self, role: &RolePolicy) -> Result<()> {
        match self.recertification_lock(role, true).await? {
            Some(reason) => Err(Error::Locked {
                role: role.name.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// `breakglass roles recertify NAME`: a certifier re-approves a vendor role for
    /// another `recertify_every`. Audited (`role.recertified`) and alerted.
    pub async fn recertify_role(
        &self,
        who: &str,
        role_name: &str,
        comment: &str,
    ) -> Result<RoleCertification> {
        self.recertify_role_signed(who, role_name, comment, None)
            .await
    }

    /// `recertify_role` with the certifier's SSH signature (`approval_signing`).
    pub async fn recertify_role_signed(
        &self,
        who: &str,
        role_name: &str,
        comment: &str,
        sig: Option<SshSignature>,
    ) -> Result<RoleCertification> {
        let attempt = format!("recertify role {role_name}");
        let r = self.recertify_inner(who, role_name, comment, sig).await;
        self.noted(who, None, &attempt, r).await
    }

    async fn recertify_inner(
        &self,
        who: &str,
        role_name: &str,
        comment: &str,
        sig: Option<SshSignature>,
    ) -> Result<RoleCertification> {
        let role = self.role(role_name)?;
        let Some(vp) = &role.vendor else {
            return Err(refusal(
                RefusalKind::Input,
                format!("role {role_name} is not a vendor role; only vendor roles are recertified"),
            ));
        };
        if !role.certifiers.allows(who) {
            return Err(refusal_because(
                RefusalKind::Policy,
                lifecycle::Reason::NotPermitted,
                format!(
                    "{who} may not recertify role {role_name}: its certifiers are {}",
                    role.certifiers.describe()
                ),
            ));
        }
        let comment = crate::sanitize::text(comment.trim(), 4000);
        if comment.trim().is_empty() {
            return Err(refusal(
                RefusalKind::Input,
                "say what you reviewed: --comment TEXT (who may use the role, its scope, its recent sessions)",
            ));
        }
        let now = self.clock.now();
        let verdicts = self.role_verdicts(&role.name, who, sig.as_ref()).await;
        let sig = self
            .check_role_signed(&role.name, who, sig.as_ref(), now, &verdicts)
            .map_err(Error::Refused)?;
        let due = now + chrono::Duration::seconds(vp.recertify_every);
        let mut detail = serde_json::json!({
            "role": role.name,
            "comment": comment,
            "recertify_every_seconds": vp.recertify_every,
            "due": stamp(due),
        });
        if let Some(sig) = &sig {
            detail["signature"] = serde_json::json!(sig);
        }
        let mut alerts = vec![];
        if self.alerts.wants(AlertKind::Recertification) {
            alerts.push(AlertDraft {
                kind: AlertKind::Recertification,
                payload: serde_json::json!({
                    "role": role.name,
                    "actor": who,
                    "action": AuditAction::RoleRecertified,
                    "detail": detail,
                }),
            });
        }
        let actor = who.to_string();
        self.db(move |s| {
            let note = crate::store::Note {
                action: AuditAction::RoleRecertified,
                actor: &actor,
                from: None,
                to: None,
                detail: &detail,
            };
            s.append_note(None, &note, &alerts, now)
        })
        .await?;
        Ok(RoleCertification {
            at: now,
            by: who.to_string(),
            due,
        })
    }
}
