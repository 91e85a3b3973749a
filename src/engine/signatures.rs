//! Signed decisions (`approval_signing = "ssh"`): a decision's signature is
//! checked before it counts, the approvals are checked again at activation (so an
//! approval written into the store directly grants nothing), and `audit verify`
//! checks every decision in the chain.

use super::*;
use crate::audit::{AuditRecord, Broken};
use crate::domain::{IncidentRef, SshSignature};
use crate::identity::ssh_sign::{self, DecisionKind, RoleStatement, Statement, MAX_SKEW_SECONDS};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

fn refused(message: String) -> Refusal {
    Refusal::new(
        RefusalKind::Policy,
        crate::domain::lifecycle::Reason::Signature,
        message,
    )
}

/// `reason`: a denial's reason as the engine records it (see `denial_reason`).
fn statement(
    req: &Request,
    kind: DecisionKind,
    reason: Option<&str>,
    who: &str,
    at: DateTime<Utc>,
) -> String {
    Statement {
        request: req.id,
        role: &req.role,
        incident: &req.incident.label(),
        decision: kind,
        reason: reason.filter(|_| kind == DecisionKind::Deny),
        signer: who,
        at,
    }
    .text()
}

/// A denial's reason as it is stored, so a statement signed before the
/// decision matches the one checked after it.
pub(crate) fn denial_reason(reason: &str) -> String {
    crate::sanitize::text(reason, super::actions::MAX_TEXT)
        .trim()
        .to_string()
}

fn role_statement(role: &str, who: &str, at: DateTime<Utc>) -> String {
    RoleStatement {
        role,
        decision: "recertify",
        signer: who,
        at,
    }
    .text()
}

/// What `ssh-keygen -Y verify` said of each (signer, statement), asked on the
/// blocking pool before a lifecycle step: the step itself runs on the async
/// side and only looks its statements up. A statement not looked at before
/// (the request changed meanwhile) does not verify: sign again.
#[derive(Debug, Default)]
pub(crate) struct Verdicts(HashMap<(String, String), std::result::Result<(), String>>);

impl Verdicts {
    fn of(&self, signer: &str, statement: &str) -> std::result::Result<(), String> {
        self.0
            .get(&(signer.to_string(), statement.to_string()))
            .cloned()
            .unwrap_or_else(|| Err("the request changed while the signature was checked".into()))
    }
}

/// A signature to check: signer, armored signature, statement, signing time.
type Signed = (String, String, String, DateTime<Utc>);

/// What a refusal says about the decision being signed.
struct Decision {
    noun: &'static str,
    subject: String,
    command: String,
    verb: &'static str,
}

impl Engine {
    /// Whether decisions need an SSH signature (`approval_signing = "ssh"`).
    pub fn signing_required(&self) -> bool {
        self.policy.approval_signing.is_some()
    }

    /// The statement `who` signs to make `kind` on `req` (`load` it), dated `at`.
    pub fn decision_statement(
        &self,
        req: &Request,
        who: &str,
        kind: DecisionKind,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> String {
        let reason = reason.map(denial_reason);
        statement(req, kind, reason.as_deref(), who, at)
    }

    /// Before a decision counts: with signing on, `sig` must be `who`'s signature
    /// over exactly this decision, dated within five minutes of the engine's
    /// clock. Returns the signature to keep with the decision.
    // The decision's parts, the signature, the clock and the verdicts: each
    // is needed, and a struct for one call site would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check_signed(
        &self,
        req: &Request,
        who: &str,
        kind: DecisionKind,
        reason: Option<&str>,
        sig: Option<&SshSignature>,
        now: DateTime<Utc>,
        verdicts: &Verdicts,
    ) -> lifecycle::SignatureCheck {
        let id = req.id;
        self.check_statement_signed(
            who,
            Decision {
                noun: kind.noun(),
                subject: id.to_string(),
                command: format!("breakglass {} {id}", kind.command()),
                verb: kind.as_str(),
            },
            |at| statement(req, kind, reason, who, at),
            sig,
            now,
            verdicts,
        )
    }

    /// `check_signed` for a decision about a role (vendor recertification).
    pub(crate) fn check_role_signed(
        &self,
        role: &str,
        who: &str,
        sig: Option<&SshSignature>,
        now: DateTime<Utc>,
        verdicts: &Verdicts,
    ) -> Result<Option<SshSignature>, Refusal> {
        self.check_statement_signed(
            who,
            Decision {
                noun: "recertification",
                subject: format!("role {role}"),
                command: format!("breakglass roles recertify {role} --comment TEXT"),
                verb: "recertify",
            },
            |at| role_statement(role, who, at),
            sig,
            now,
            verdicts,
        )
    }

    /// The statement `who` signs to recertify `role`, dated `at`.
    pub fn role_decision_statement(
        &self,
        who: &str,
        role: &str,
        at: DateTime<Utc>,
    ) -> Result<String> {
        self.role(role)?;
        Ok(role_statement(role, who, at))
    }

    fn check_statement_signed(
        &self,
        who: &str,
        d: Decision,
        text_at: impl Fn(DateTime<Utc>) -> String,
        sig: Option<&SshSignature>,
        now: DateTime<Utc>,
        verdicts: &Verdicts,
    ) -> Result<Option<SshSignature>, Refusal> {
        let Some(signing) = &self.policy.approval_signing else {
            return Ok(None);
        };
        let Decision {
            noun,
            subject,
            command,
            verb,
        } = d;
        let Some(sig) = sig else {
            return Err(refused(format!(
                "approval signing is on: to {verb} {subject}, sign with your SSH key from the command line: \
                 {command} --ssh-key ~/.ssh/id_ed25519"
            )));
        };
        let skew = (sig.signed_at - now).num_seconds().abs();
        if skew > MAX_SKEW_SECONDS {
            return Err(refused(format!(
                "the signature on this {noun} of {subject} is dated {}, {} away from the engine's clock ({}); \
                 a statement is good for 5 minutes: sign again (and check this machine's clock)",
                crate::domain::time::ts(sig.signed_at),
                crate::domain::time::human(skew),
                crate::domain::time::ts(now)
            )));
        }
        verdicts.of(who, &text_at(sig.signed_at)).map_err(|e| {
            refused(format!(
                "{who}'s signature on this {noun} of {subject} does not verify against {} ({e}); \
                 sign with the key listed for {who} there (a signature made for another request \
                 or decision does not carry over)",
                signing.allowed_signers.display()
            ))
        })?;
        Ok(Some(sig.clone()))
    }

    /// Whether a stored signature of a role decision verifies (signing on).
    pub(crate) async fn role_signature_valid(
        &self,
        role: &str,
        who: &str,
        sig: Option<&SshSignature>,
    ) -> bool {
        if self.policy.approval_signing.is_none() {
            return true;
        }
        let Some(s) = sig else {
            return false;
        };
        let text = role_statement(role, who, s.signed_at);
        let signed = (
            who.to_string(),
            s.armored.clone(),
            text.clone(),
            s.signed_at,
        );
        self.verify_signatures(vec![signed])
            .await
            .of(who, &text)
            .is_ok()
    }

    /// Runs `ssh-keygen -Y verify` for each signature on the blocking pool (a
    /// child process each). Signing off: nothing to check.
    pub(crate) async fn verify_signatures(&self, items: Vec<Signed>) -> Verdicts {
        let Some(signing) = &self.policy.approval_signing else {
            return Verdicts::default();
        };
        if items.is_empty() {
            return Verdicts::default();
        }
        let signers = signing.allowed_signers.clone();
        let run = move || {
            items
                .into_iter()
                .map(|(who, armored, text, at)| {
                    // A verdict becomes a refusal's words (no cause travels with a refusal).
                    let verdict = ssh_sign::verify(&signers, &who, &armored, &text, at)
                        .map_err(|e| crate::net::http::error_chain(&e));
                    ((who, text), verdict)
                })
                .collect()
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(map) => Verdicts(map),
            // A panic in the check: nothing verifies.
            Err(_) => Verdicts::default(),
        }
    }

    /// Before `who` decides `id`: the signature given, checked against the
    /// statement of the request as it stands.
    pub(crate) async fn decision_verdicts(
        &self,
        who: &str,
        id: RequestId,
        kind: DecisionKind,
        reason: Option<&str>,
        sig: Option<&SshSignature>,
    ) -> Verdicts {
        let (Some(sig), true) = (sig, self.signing_required()) else {
            return Verdicts::default();
        };
        let Ok(req) = self.load(id).await else {
            return Verdicts::default();
        };
        let text = statement(&req, kind, reason, who, sig.signed_at);
        self.verify_signatures(vec![(
            who.to_string(),
            sig.armored.clone(),
            text,
            sig.signed_at,
        )])
        .await
    }

    /// Before activation: every approval's signature, against its statement.
    pub(crate) async fn approval_verdicts(&self, id: RequestId) -> Verdicts {
        if !self.signing_required() {
            return Verdicts::default();
        }
        let Ok(req) = self.load(id).await else {
            return Verdicts::default();
        };
        let items = req
            .approvals
            .iter()
            .filter_map(|a| {
                let s = a.signature.as_ref()?;
                let text = statement(&req, DecisionKind::Approve, None, &a.by, s.signed_at);
                Some((a.by.clone(), s.armored.clone(), text, s.signed_at))
            })
            .collect();
        self.verify_signatures(items).await
    }

    /// Before a recertification: its signature, against the role's statement.
    pub(crate) async fn role_verdicts(
        &self,
        role: &str,
        who: &str,
        sig: Option<&SshSignature>,
    ) -> Verdicts {
        let Some(s) = sig else {
            return Verdicts::default();
        };
        let text = role_statement(role, who, s.signed_at);
        self.verify_signatures(vec![(
            who.to_string(),
            s.armored.clone(),
            text,
            s.signed_at,
        )])
        .await
    }

    /// At activation, with signing on: enough approvals must carry a valid
    /// signature by an approver of the role other than the requester. The store
    /// alone cannot vouch for them: someone with write access could add one.
    pub(crate) fn check_approvals_signed(
        &self,
        req: &Request,
        role: &RolePolicy,
        verdicts: &Verdicts,
    ) -> Result<(), Refusal> {
        if self.policy.approval_signing.is_none() {
            return Ok(());
        }
        let mut good = BTreeSet::new();
        let mut bad = vec![];
        for a in &req.approvals {
            let valid = a.by != req.requester
                && role.approvers.allows(&a.by)
                && a.signature.as_ref().is_some_and(|s| {
                    let text = statement(req, DecisionKind::Approve, None, &a.by, s.signed_at);
                    verdicts.of(&a.by, &text).is_ok()
                });
            if valid {
                good.insert(a.by.as_str());
            } else {
                bad.push(a.by.as_str());
            }
        }
        let required = req.approvals_required.max(role.approvals_required);
        if (good.len() as u32) < required {
            return Err(refused(format!(
                "{} has {} validly signed approval(s) of the {required} required{}; \
                 it cannot be activated (was the store edited? run `breakglass audit verify`)",
                req.id,
                good.len(),
                if bad.is_empty() {
                    String::new()
                } else {
                    format!(" (no valid signature: {})", bad.join(", "))
                }
            )));
        }
        Ok(())
    }
}

/// `audit verify` with signing on: every decision event carries a signature by
/// its actor over the statement rebuilt from the chain itself (the request's id
/// from the event, its role and incident from its `request.created` event).
pub(crate) struct ChainSignatures<'a> {
    allowed_signers: &'a Path,
    /// Request id -> (role, incident label, requester), from `request.created`.
    requests: HashMap<i64, (String, String, String)>,
}

impl<'a> ChainSignatures<'a> {
    pub fn new(allowed_signers: &'a Path) -> Self {
        ChainSignatures {
            allowed_signers,
            requests: HashMap::new(),
        }
    }

    pub fn check(&mut self, r: &AuditRecord) -> std::result::Result<(), Broken> {
        let detail: serde_json::Value = serde_json::from_str(&r.detail).unwrap_or_default();
        if r.action == AuditAction::RequestCreated {
            let role = detail["role"].as_str().map(str::to_string);
            let incident = serde_json::from_value::<IncidentRef>(detail["incident"].clone()).ok();
            if let (Some(id), Some(role), Some(incident)) = (r.request_id, role, incident) {
                self.requests
                    .insert(id, (role, incident.label(), r.actor.clone()));
            }
            return Ok(());
        }
        if r.action == AuditAction::RoleRecertified {
            return self.check_role(r, &detail);
        }
        let Some(kind) = DecisionKind::from_action(&r.action) else {
            return Ok(());
        };
        let id = RequestId(r.request_id.unwrap_or_default());
        let what = format!(
            "{} by {} on {id}",
            r.action,
            crate::sanitize::line(&r.actor, 64)
        );
        let broken = |reason: String| {
            Err(Broken {
                seq: r.seq,
                reason: format!("{what} {reason}"),
            })
        };
        let Some(sig) = detail
            .get("signature")
            .and_then(|s| serde_json::from_value::<SshSignature>(s.clone()).ok())
        else {
            return broken(
                "carries no signature, but approval_signing is on: breakglass did not make it \
                 (was the store edited?)"
                    .into(),
            );
        };
        let Some((role, incident, requester)) = self.requests.get(&id.0) else {
            return broken(
                "decides a request whose request.created event is not in the log before it".into(),
            );
        };
        if &r.actor == requester {
            return broken("was made by the request's own requester".into());
        }
        let text = Statement {
            request: id,
            role,
            incident,
            decision: kind,
            reason: detail["reason"]
                .as_str()
                .filter(|_| kind == DecisionKind::Deny),
            signer: &r.actor,
            at: sig.signed_at,
        }
        .text();
        match ssh_sign::verify(
            self.allowed_signers,
            &r.actor,
            &sig.armored,
            &text,
            sig.signed_at,
        ) {
            Ok(()) => Ok(()),
            Err(e) => broken(format!(
                "has a signature that does not verify against {}: {e}",
                self.allowed_signers.display()
            )),
        }
    }

    /// A role recertification's signature, over the statement rebuilt from the
    /// event (its role from the detail, its signer the actor).
    fn check_role(
        &self,
        r: &AuditRecord,
        detail: &serde_json::Value,
    ) -> std::result::Result<(), Broken> {
        let role = detail["role"].as_str().unwrap_or_default();
        let broken = |reason: String| {
            Err(Broken {
                seq: r.seq,
                reason: format!(
                    "{} of role {} by {} {reason}",
                    r.action,
                    crate::sanitize::line(role, 64),
                    crate::sanitize::line(&r.actor, 64)
                ),
            })
        };
        let Some(sig) = detail
            .get("signature")
            .and_then(|s| serde_json::from_value::<SshSignature>(s.clone()).ok())
        else {
            return broken(
                "carries no signature, but approval_signing is on: breakglass did not make it \
                 (was the store edited?)"
                    .into(),
            );
        };
        match ssh_sign::verify(
            self.allowed_signers,
            &r.actor,
            &sig.armored,
            &role_statement(role, &r.actor, sig.signed_at),
            sig.signed_at,
        ) {
            Ok(()) => Ok(()),
            Err(e) => broken(format!(
                "has a signature that does not verify against {}: {e}",
                self.allowed_signers.display()
            )),
        }
    }
}
