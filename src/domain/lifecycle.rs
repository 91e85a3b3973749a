//! The lifecycle as pure functions over `Request`. Each returns the audit event of
//! the transition, or a refusal that says what would have been accepted.

use super::audit_action::AuditAction;
use super::policy::RolePolicy;
use super::request::*;
use super::time::human;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Malformed input: a request the policy cannot even evaluate.
    Input,
    /// The policy says no (who, which role, what TTL...).
    Policy,
    /// The request is not in a state where this makes sense.
    State,
}

/// Why a refusal was made, for programs (tests, automation reading `--json`):
/// the message says the same to people, with what would be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The request is not in a state where this makes sense.
    WrongState,
    /// Its window passed: not approved, activated or extended in time.
    TooLate,
    /// The person requested it, and this must be someone else (approve, deny,
    /// certify, review of an auto-approved request).
    OwnRequest,
    /// The policy does not name this person for this (requesters, approvers,
    /// certifiers, automation), or only the requester may.
    NotPermitted,
    /// This person already approved it.
    AlreadyApproved,
    /// The incident named is not open, or no source knows it.
    Incident,
    /// A required field is missing or malformed (reason, ticket, comment...).
    BadField,
    /// Over a limit of the role: TTL, extensions, total time.
    OverLimit,
    /// A decision's SSH signature is missing or does not verify.
    Signature,
    /// The role is locked by another request.
    Locked,
    /// The review says credentials were copied and their invalidation is not
    /// recorded yet (nor an exception to it).
    NotInvalidated,
    /// Anything else (the message says what).
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub kind: RefusalKind,
    pub reason: Reason,
    pub message: String,
}

impl Refusal {
    pub fn new(kind: RefusalKind, reason: Reason, message: impl Into<String>) -> Self {
        Refusal {
            kind,
            reason,
            message: message.into(),
        }
    }
}

fn policy<T>(reason: Reason, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::new(RefusalKind::Policy, reason, message))
}

fn input<T>(message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::new(RefusalKind::Input, Reason::BadField, message))
}

fn wrong_state<T>(req: &Request, wanted: &str) -> Result<T, Refusal> {
    Err(Refusal::new(
        RefusalKind::State,
        Reason::WrongState,
        format!("{} is {}; {wanted}", req.id, req.state),
    ))
}

/// A window that passed: a state refusal that says so.
fn too_late<T>(req: &Request, what: &str) -> Result<T, Refusal> {
    Err(Refusal::new(
        RefusalKind::State,
        Reason::TooLate,
        format!("{} is {}; {what}", req.id, req.state),
    ))
}

/// One audited transition. `detail` never carries a credential.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub action: AuditAction,
    pub actor: String,
    pub from: Option<State>,
    pub to: State,
    pub detail: serde_json::Value,
}

/// What checking a decision's signature found: the verified signature, `None`
/// when decisions are not signed, or the refusal. The check reads keys and runs
/// ssh-keygen, so the engine makes it; the lifecycle applies it after the
/// decision's own rules, so a decision that may not be made at all is refused
/// for that first.
pub type SignatureCheck = Result<Option<SshSignature>, Refusal>;

/// Keeps a verified signature with the decision's audit event.
fn signed(mut event: Event, sig: Option<&SshSignature>) -> Event {
    if let Some(s) = sig {
        event.detail["signature"] = json!(s);
    }
    event
}

/// What a requester asks for, before validation.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub incident: IncidentRef,
    pub condition: String,
    pub reason: String,
    pub ttl_seconds: Option<i64>,
}

pub const MAX_REASON_CHARS: usize = 4000;

/// The parts of a request form a problem can be pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestField {
    Incident,
    Condition,
    Reason,
    Ttl,
}

/// Every problem with a request's fields, in form order, each saying what would be
/// accepted. Front ends show them next to the field; `new_request` refuses with the first.
pub fn field_problems(role: &RolePolicy, new: &NewRequest) -> Vec<(RequestField, String)> {
    let mut out = vec![];
    if let IncidentRef::Ticket { reference } = &new.incident {
        match &role.ticket_pattern {
            None => out.push((
                RequestField::Incident,
                format!(
                    "role {} needs an open incident from a configured source (--incident ID); it does not accept manual tickets",
                    role.name
                ),
            )),
            Some(re) if !re.is_match(reference) => out.push((
                RequestField::Incident,
                format!(
                    "ticket `{reference}` does not match role {}'s pattern {}; write a reference such as the pattern describes",
                    role.name,
                    re.as_str()
                ),
            )),
            Some(_) => {}
        }
    }
    if !role
        .conditions
        .iter()
        .any(|c| c.eq_ignore_ascii_case(new.condition.trim()))
    {
        out.push((
            RequestField::Condition,
            format!(
                "`{}` is not a condition of role {}; choose one of: {}",
                new.condition.trim(),
                role.name,
                role.conditions
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let reason = new.reason.trim();
    if reason.is_empty() {
        out.push((
            RequestField::Reason,
            "a reason is required: say what is broken and what you will do with the access".into(),
        ));
    } else if reason.chars().count() > MAX_REASON_CHARS {
        out.push((
            RequestField::Reason,
            format!("the reason is longer than {MAX_REASON_CHARS} characters; put details in the incident and summarise here"),
        ));
    }
    let ttl = new.ttl_seconds.unwrap_or(role.default_ttl);
    if ttl < role.min_ttl.max(1) {
        out.push((
            RequestField::Ttl,
            format!(
                "TTL {} is too short for role {}; ask for at least {} (default {})",
                human(ttl.max(0)),
                role.name,
                human(role.min_ttl.max(1)),
                human(role.default_ttl)
            ),
        ));
    } else if ttl > role.max_ttl {
        out.push((
            RequestField::Ttl,
            format!(
                "TTL {} is longer than role {} allows; ask for at most {} (default {})",
                human(ttl),
                role.name,
                human(role.max_ttl),
                human(role.default_ttl)
            ),
        ));
    }
    out
}

/// A request as filed: pending, nothing decided yet. `what` is the incident,
/// the condition and the reason. The id is assigned by the store.
fn filed(
    role: &RolePolicy,
    (incident, condition, reason): (IncidentRef, String, String),
    requester: &str,
    ttl_seconds: i64,
    approvals_required: u32,
    now: DateTime<Utc>,
) -> Request {
    Request {
        id: RequestId(0),
        role: role.name.clone(),
        incident,
        condition,
        reason,
        requester: requester.to_string(),
        ttl_seconds,
        approvals_required,
        created_at: now,
        decide_by: now + Duration::seconds(role.request_ttl),
        state: State::Pending,
        version: 0,
        approvals: vec![],
        denial: None,
        cancellation: None,
        grant: None,
        review: None,
        certification: None,
        rejections: vec![],
        auto_approved: false,
        certify_by: None,
        auto_approval_declined: None,
        certification_overdue_at: None,
        vendor: None,
        routine_use: None,
        invalidation: None,
        drill: None,
    }
}

/// Validates a new request against the role. The id is assigned by the store.
pub fn new_request(
    role: &RolePolicy,
    new: NewRequest,
    requester: &str,
    now: DateTime<Utc>,
) -> Result<(Request, Event), Refusal> {
    if !role.may_request(requester) {
        return policy(
            Reason::NotPermitted,
            format!(
                "{requester} may not request role {}; requesters are: {}",
                role.name,
                role.requesters.describe()
            ),
        );
    }
    if let Some((field, message)) = field_problems(role, &new).into_iter().next() {
        let kind = if field == RequestField::Reason {
            RefusalKind::Input
        } else {
            RefusalKind::Policy
        };
        return Err(Refusal::new(kind, Reason::BadField, message));
    }
    let condition = role
        .conditions
        .iter()
        .find(|c| c.eq_ignore_ascii_case(new.condition.trim()))
        .cloned()
        .expect("checked by field_problems");
    let reason = new.reason.trim().to_string();
    let ttl = new.ttl_seconds.unwrap_or(role.default_ttl);
    let req = filed(
        role,
        (new.incident, condition, reason),
        requester,
        ttl,
        role.approvals_required,
        now,
    );
    let event = Event {
        action: AuditAction::RequestCreated,
        actor: requester.to_string(),
        from: None,
        to: State::Pending,
        detail: json!({
            "role": req.role,
            "incident": req.incident,
            "condition": req.condition,
            "reason": req.reason,
            "ttl_seconds": ttl,
            "approvals_required": req.approvals_required,
        }),
    };
    Ok((req, event))
}

/// The policy's actor for auto-approvals.
pub const POLICY_ACTOR: &str = "breakglass-policy";

/// Whether policy approves a new (pending) request by itself. `None` when the
/// requester is not one of the role's automation identities (people are never
/// auto-approved); `Some(Ok(rule))` names the rule that allows it;
/// `Some(Err(why))` says why it waits for human approvers. `recent` is the
/// number of this role's requests auto-approved within the rate window.
pub fn auto_approval(
    role: &RolePolicy,
    req: &Request,
    recent: u32,
) -> Option<Result<String, String>> {
    let a = &role.automation;
    if !a.is_automation(&req.requester) {
        return None;
    }
    let window = human(a.rate_window);
    Some(
        if !a
            .conditions
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&req.condition))
        {
            Err(format!(
                "condition \"{}\" is not auto-approved for role {}; auto-approved conditions: {}",
                req.condition,
                role.name,
                a.conditions
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else if req.ttl_seconds > a.max_ttl {
            Err(format!(
                "TTL {} is longer than role {}'s auto_max_ttl {}",
                human(req.ttl_seconds),
                role.name,
                human(a.max_ttl)
            ))
        } else if recent >= a.rate_count {
            Err(format!(
                "rate limit reached: {recent} auto-approvals of role {} within {window} (limit {})",
                role.name, a.rate_count
            ))
        } else {
            Ok(format!(
                "automation identity {} for condition \"{}\" (auto-approval {} of {} per {window}, TTL at most {})",
                req.requester,
                req.condition,
                recent + 1,
                a.rate_count,
                human(a.max_ttl)
            ))
        },
    )
}

/// Pending -> Approved by policy (`auto_approval` allowed it): no person approved,
/// so a person owes certification by `certify_by`.
pub fn auto_approve(
    req: &mut Request,
    role: &RolePolicy,
    rule: &str,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    if req.state != State::Pending {
        return wrong_state(req, "only pending requests can be approved");
    }
    if !role.automation.is_automation(&req.requester) {
        return policy(
            Reason::NotPermitted,
            format!(
                "{} is not an automation identity of role {}; a person is never auto-approved",
                req.requester, role.name
            ),
        );
    }
    req.state = State::Approved;
    req.auto_approved = true;
    let certify_by = req.created_at + Duration::seconds(role.automation.certify_within);
    req.certify_by = Some(certify_by);
    req.decide_by = now + Duration::seconds(role.request_ttl);
    Ok(ev(
        AuditAction::RequestAutoApproved,
        POLICY_ACTOR,
        State::Pending,
        State::Approved,
        json!({"rule": rule, "certify_by": certify_by}),
    ))
}

/// Records (once) that an auto-approved request's certification is overdue.
/// The state does not change; the role is locked by `Request::locks_role_at`.
pub fn certification_overdue(
    req: &mut Request,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    let Some(since) = req.certification_overdue_since(now) else {
        return wrong_state(
            req,
            "only an auto-approved request past its certify_by is overdue",
        );
    };
    if req.certification_overdue_at.is_some() {
        return wrong_state(req, "its overdue certification was already raised");
    }
    req.certification_overdue_at = Some(now);
    Ok(ev(
        AuditAction::CertificationOverdue,
        actor,
        req.state,
        req.state,
        json!({"certify_by": since}),
    ))
}

fn ev(
    action: AuditAction,
    actor: &str,
    from: State,
    to: State,
    detail: serde_json::Value,
) -> Event {
    Event {
        action,
        actor: actor.to_string(),
        from: Some(from),
        to,
        detail,
    }
}

pub fn approve(
    req: &mut Request,
    role: &RolePolicy,
    who: &str,
    comment: Option<String>,
    signature: SignatureCheck,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    if req.state != State::Pending {
        return wrong_state(req, "only pending requests can be approved");
    }
    if now >= req.decide_by {
        return too_late(req, "it waited past its approval window and lapses");
    }
    other_decider(req, role, who, Decider::Approver)?;
    if req.approvals.iter().any(|a| a.by == who) {
        return policy(
            Reason::AlreadyApproved,
            format!(
                "{who} already approved {}; it needs {} distinct approvers",
                req.id, req.approvals_required
            ),
        );
    }
    let signature = signature?;
    let from = req.state;
    req.approvals.push(Approval {
        by: who.to_string(),
        at: now,
        comment: comment.clone(),
        signature: signature.clone(),
    });
    let count = req.approvals.len() as u32;
    if count >= req.approvals_required {
        req.state = State::Approved;
        // The requester gets a fresh window to activate once approved.
        req.decide_by = now + Duration::seconds(role.request_ttl);
    }
    let event = ev(
        AuditAction::RequestApproved,
        who,
        from,
        req.state,
        json!({"approvals": count, "required": req.approvals_required, "comment": comment}),
    );
    Ok(signed(event, signature.as_ref()))
}

pub fn deny(
    req: &mut Request,
    role: &RolePolicy,
    who: &str,
    reason: &str,
    signature: SignatureCheck,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    if !matches!(req.state, State::Pending | State::Approved) {
        return wrong_state(req, "only pending or approved requests can be denied");
    }
    if who == req.requester {
        return policy(
            Reason::OwnRequest,
            format!(
                "{who} requested {}; use `breakglass cancel {}` to withdraw it",
                req.id, req.id
            ),
        );
    }
    if !role.approvers.allows(who) {
        return policy(
            Reason::NotPermitted,
            format!(
                "{who} may not deny requests for role {}; approvers are: {}",
                role.name,
                role.approvers.describe()
            ),
        );
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return input("a denial needs a reason (--reason TEXT)");
    }
    let signature = signature?;
    let from = req.state;
    req.state = State::Denied;
    req.denial = Some(Decision {
        by: who.into(),
        at: now,
        comment: reason.into(),
        signature: signature.clone(),
    });
    let event = ev(
        AuditAction::RequestDenied,
        who,
        from,
        State::Denied,
        json!({"reason": reason}),
    );
    Ok(signed(event, signature.as_ref()))
}

pub fn cancel(req: &mut Request, who: &str, now: DateTime<Utc>) -> Result<Event, Refusal> {
    if !matches!(req.state, State::Pending | State::Approved) {
        return wrong_state(req, "only pending or approved requests can be cancelled");
    }
    if who != req.requester {
        return policy(
            Reason::NotPermitted,
            format!(
                "only the requester ({}) can cancel {}; approvers deny instead",
                req.requester, req.id
            ),
        );
    }
    let from = req.state;
    req.state = State::Cancelled;
    req.cancellation = Some(Decision {
        by: who.into(),
        at: now,
        comment: String::new(),
        signature: None,
    });
    Ok(ev(
        AuditAction::RequestCancelled,
        who,
        from,
        State::Cancelled,
        json!({}),
    ))
}

/// Pending or approved-but-not-activated requests past their window.
pub fn lapse(req: &mut Request, actor: &str, now: DateTime<Utc>) -> Result<Event, Refusal> {
    if !matches!(req.state, State::Pending | State::Approved) || now < req.decide_by {
        return wrong_state(req, "only a request past its window can lapse");
    }
    let from = req.state;
    req.state = State::Lapsed;
    Ok(ev(
        AuditAction::RequestLapsed,
        actor,
        from,
        State::Lapsed,
        json!({"approvals": req.approvals.len(), "decide_by": req.decide_by}),
    ))
}

/// Approved -> Granting: the intent is committed before the backend is called.
pub fn begin_grant(
    req: &mut Request,
    who: &str,
    owner: Owner,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    if req.state != State::Approved {
        return wrong_state(req, "only approved requests can be activated");
    }
    if who != req.requester {
        return policy(
            Reason::NotPermitted,
            format!(
                "only the requester ({}) can activate {}: the credential is shown to them alone",
                req.requester, req.id
            ),
        );
    }
    if now >= req.decide_by {
        return too_late(req, "it was not activated in time and lapses");
    }
    req.state = State::Granting;
    req.grant = Some(GrantRecord {
        intent_at: now,
        owner: owner.clone(),
        lease_id: None,
        granted_at: None,
        expires_at: None,
        extensions: vec![],
        end: None,
        revoke_attempts: 0,
        next_attempt_at: None,
        last_error: None,
        ended_at: None,
        grant_failed: false,
        revoker: None,
    });
    Ok(ev(
        AuditAction::GrantIntent,
        who,
        State::Approved,
        State::Granting,
        json!({"host": owner.host, "pid": owner.pid, "ttl_seconds": req.ttl_seconds}),
    ))
}

/// Granting -> Active. Access ends at the earlier of the policy TTL and what the
/// backend says it will enforce.
pub fn granted(
    req: &mut Request,
    lease_id: &str,
    backend_expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    if req.state != State::Granting {
        return wrong_state(req, "only a granting request can become active");
    }
    let g = req.grant.as_mut().expect("granting has a grant record");
    let deadline = g.deadline(req.ttl_seconds);
    let expires_at = backend_expires_at.map_or(deadline, |b| b.min(deadline));
    g.lease_id = Some(lease_id.to_string());
    g.granted_at = Some(now);
    g.expires_at = Some(expires_at);
    req.state = State::Active;
    Ok(ev(
        AuditAction::GrantActive,
        &req.requester.clone(),
        State::Granting,
        State::Active,
        json!({"lease_id": lease_id, "expires_at": expires_at, "ttl_seconds": req.ttl_seconds}),
    ))
}

/// Granting -> Revoking after a failed or interrupted grant: whatever the backend
/// may have created is revoked before the request is marked Failed.
pub fn grant_failed(
    req: &mut Request,
    actor: &str,
    error: &str,
    now: DateTime<Utc>,
    revoker: Owner,
) -> Result<Event, Refusal> {
    if req.state != State::Granting {
        return wrong_state(req, "only a granting request can fail to grant");
    }
    let g = req.grant.as_mut().expect("granting has a grant record");
    g.grant_failed = true;
    g.revoker = Some(revoker);
    g.last_error = Some(error.to_string());
    g.end = Some(EndReason {
        by: actor.into(),
        at: now,
        reason: format!("grant failed: {error}"),
    });
    req.state = State::Revoking;
    Ok(ev(
        AuditAction::GrantFailed,
        actor,
        State::Granting,
        State::Revoking,
        json!({"error": error}),
    ))
}

/// Active -> Revoking (expiry, early end, recovery).
pub fn begin_revoke(
    req: &mut Request,
    who: &str,
    reason: &str,
    now: DateTime<Utc>,
    attempt_deadline: DateTime<Utc>,
    revoker: Owner,
) -> Result<Event, Refusal> {
    if req.state != State::Active {
        return wrong_state(req, "only active access can be revoked");
    }
    let g = req.grant.as_mut().expect("active has a grant record");
    g.end = Some(EndReason {
        by: who.into(),
        at: now,
        reason: reason.into(),
    });
    // Keeps sweepers off while this attempt is in flight.
    g.next_attempt_at = Some(attempt_deadline);
    g.revoker = Some(revoker);
    req.state = State::Revoking;
    Ok(ev(
        AuditAction::RevokeStarted,
        who,
        State::Active,
        State::Revoking,
        json!({"reason": reason}),
    ))
}

pub fn revoke_failed(
    req: &mut Request,
    actor: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    if req.state != State::Revoking {
        return wrong_state(req, "only a revoking request can fail to revoke");
    }
    let g = req.grant.as_mut().expect("revoking has a grant record");
    g.revoke_attempts += 1;
    // Exponential back-off, capped at five minutes: keep trying, loudly.
    let backoff = 2i64.saturating_pow(g.revoke_attempts.min(8)).min(300);
    g.next_attempt_at = Some(now + Duration::seconds(backoff));
    g.last_error = Some(error.to_string());
    Ok(ev(
        AuditAction::RevokeFailed,
        actor,
        State::Revoking,
        State::Revoking,
        json!({"error": error, "attempt": g.revoke_attempts, "retry_in_seconds": backoff}),
    ))
}

/// Revoking -> Ended (or Failed when the grant itself failed), only once the
/// backend confirmed.
pub fn revoked(req: &mut Request, actor: &str, now: DateTime<Utc>) -> Result<Event, Refusal> {
    if req.state != State::Revoking {
        return wrong_state(req, "only a revoking request can be confirmed revoked");
    }
    let g = req.grant.as_mut().expect("revoking has a grant record");
    g.ended_at = Some(now);
    g.next_attempt_at = None;
    let to = if g.grant_failed {
        State::Failed
    } else {
        State::Ended
    };
    req.state = to;
    let reason = g.end.as_ref().map(|e| e.reason.clone()).unwrap_or_default();
    Ok(ev(
        AuditAction::RevokeConfirmed,
        actor,
        State::Revoking,
        to,
        json!({"reason": reason, "attempts": g.revoke_attempts + 1}),
    ))
}

pub fn extend(
    req: &mut Request,
    role: &RolePolicy,
    who: &str,
    seconds: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    if req.state != State::Active {
        return wrong_state(req, "only active access can be extended");
    }
    if who != req.requester {
        return policy(
            Reason::NotPermitted,
            format!(
                "only the requester ({}) can extend {}",
                req.requester, req.id
            ),
        );
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return input("an extension needs a reason (--reason TEXT)");
    }
    let g = req.grant.as_mut().expect("active has a grant record");
    let (Some(granted_at), Some(expires_at)) = (g.granted_at, g.expires_at) else {
        return wrong_state(req, "its grant has no expiry recorded");
    };
    if now >= expires_at {
        return policy(
            Reason::TooLate,
            format!("{} already expired; request access again", req.id),
        );
    }
    if g.extensions.len() as u32 >= role.max_extensions {
        return policy(
            Reason::OverLimit,
            format!(
                "{} was extended {} time(s); role {} allows {}; request access again",
                req.id,
                g.extensions.len(),
                role.name,
                role.max_extensions
            ),
        );
    }
    if seconds <= 0 || seconds > role.max_ttl {
        return policy(
            Reason::OverLimit,
            format!(
                "an extension must be between 1s and {} (the role's max TTL)",
                human(role.max_ttl)
            ),
        );
    }
    let new_expires = expires_at + Duration::seconds(seconds);
    let total = (new_expires - granted_at).num_seconds();
    if total > role.max_total {
        let room = role.max_total - (expires_at - granted_at).num_seconds();
        return policy(Reason::OverLimit, format!(
            "extending by {} would make {} of access; role {} allows {} in total, so at most {} more",
            human(seconds),
            human(total),
            role.name,
            human(role.max_total),
            human(room.max(0))
        ));
    }
    g.expires_at = Some(new_expires);
    g.extensions.push(Extension {
        by: who.into(),
        at: now,
        seconds,
        reason: reason.into(),
        new_expires_at: new_expires,
    });
    Ok(ev(
        AuditAction::GrantExtended,
        who,
        State::Active,
        State::Active,
        json!({"seconds": seconds, "reason": reason, "expires_at": new_expires}),
    ))
}

pub fn review(
    req: &mut Request,
    role: &RolePolicy,
    who: &str,
    answers: ReviewAnswers,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    if req.state != State::Ended {
        return wrong_state(req, "a review is written once access has ended");
    }
    if req.auto_approved {
        // A service account cannot write a review: a person among the role's
        // approvers or certifiers writes it for the automation.
        if !role.approvers.allows(who) && !role.certifiers.allows(who) {
            return policy(Reason::NotPermitted, format!(
                "the after-action review of auto-approved {} is written by one of the role's approvers ({}) or certifiers ({})",
                req.id,
                role.approvers.describe(),
                role.certifiers.describe()
            ));
        }
    } else if who != req.requester {
        return policy(
            Reason::NotPermitted,
            format!(
                "the after-action review of {} is written by its requester ({})",
                req.id, req.requester
            ),
        );
    }
    if answers.actions_taken.trim().is_empty() {
        return input("the review needs the actions taken with the access (actions_taken)");
    }
    if answers.credentials_copied && answers.credentials_copied_where.trim().is_empty() {
        return input(
            "credentials were copied: say where (credentials_copied_where) so they can be purged",
        );
    }
    req.state = State::Reviewed;
    let mut detail = json!({"review": answers});
    if answers.credentials_copied {
        // A copy may outlive the revocation: the backend is asked to make it
        // useless before anyone certifies. Once done it stays done (a rejected
        // review written again does not ask twice); once asked it stays asked,
        // whatever a later review says.
        match &mut req.invalidation {
            Some(inv) if inv.done.is_some() => {}
            Some(inv) => inv.copied_where = answers.credentials_copied_where.clone(),
            None => {
                req.invalidation = Some(Invalidation {
                    asked_at: now,
                    copied_where: answers.credentials_copied_where.clone(),
                    attempts: 0,
                    next_attempt_at: None,
                    last_error: None,
                    done: None,
                    exception: None,
                })
            }
        }
    }
    if let Some(inv) = &req.invalidation {
        detail["invalidation"] = json!(if inv.pending() { "pending" } else { "done" });
    }
    req.review = Some(Review {
        by: who.into(),
        at: now,
        answers,
    });
    Ok(ev(
        AuditAction::ReviewSubmitted,
        who,
        State::Ended,
        State::Reviewed,
        detail,
    ))
}

/// Who decides a request: an approver (before access) or a certifier (after).
#[derive(Clone, Copy)]
enum Decider {
    Approver,
    Certifier,
}

/// `who` decides as one of the role's approvers or certifiers, and is not the
/// requester: dual control, said with who else may act.
fn other_decider(req: &Request, role: &RolePolicy, who: &str, d: Decider) -> Result<(), Refusal> {
    let (verb, others, people, plural) = match d {
        Decider::Approver => ("approve", "another approver", &role.approvers, "approvers"),
        Decider::Certifier => ("certify", "a certifier", &role.certifiers, "certifiers"),
    };
    if who == req.requester {
        return policy(
            Reason::OwnRequest,
            format!(
                "{who} requested {} and cannot {verb} it; {others} ({}) must",
                req.id,
                people.describe()
            ),
        );
    }
    if !people.allows(who) {
        return policy(
            Reason::NotPermitted,
            format!(
                "{who} may not {verb} role {}; {plural} are: {}",
                role.name,
                people.describe()
            ),
        );
    }
    Ok(())
}

fn check_certifier(req: &Request, role: &RolePolicy, who: &str) -> Result<(), Refusal> {
    if req.state != State::Reviewed {
        return wrong_state(req, "only a reviewed request can be certified or rejected");
    }
    other_decider(req, role, who, Decider::Certifier)?;
    if req.auto_approved && req.review.as_ref().is_some_and(|r| r.by == who) {
        return policy(Reason::OwnRequest, format!(
            "{who} wrote the review of auto-approved {} and cannot certify it; another certifier ({}) must",
            req.id,
            role.certifiers.describe()
        ));
    }
    Ok(())
}

/// Why certification waits for copied credentials' invalidation, and how to
/// get past it.
fn not_invalidated(req: &Request, inv: &Invalidation) -> String {
    let tried = match (&inv.last_error, inv.next_attempt_at) {
        (Some(e), Some(t)) => format!(
            "; {} attempt(s) failed (last: {e}), the next is due at {}",
            inv.attempts,
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        (Some(e), None) => format!("; {} attempt(s) failed (last: {e})", inv.attempts),
        _ => String::new(),
    };
    format!(
        "{}'s review says credentials were copied ({}); invalidating them at the backend is not recorded yet{tried}. \
         `breakglass sweep` (or the broker's sweeper) retries it; certify once it is recorded, \
         or record why not: `breakglass certify {} --invalidation-exception \"why\"`",
        req.id, inv.copied_where, req.id
    )
}

/// Certifies the review. `exception`: the certifier's reason to certify
/// although copied credentials' invalidation is not recorded (audited; the
/// engine alerts on it). Refused when nothing waits for one.
pub fn certify(
    req: &mut Request,
    role: &RolePolicy,
    who: &str,
    comment: &str,
    exception: Option<&str>,
    signature: SignatureCheck,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    check_certifier(req, role, who)?;
    let exception = exception.map(str::trim);
    let pending = req.invalidation.as_ref().filter(|i| i.pending());
    match (pending, exception) {
        (Some(inv), None) => {
            return policy(Reason::NotInvalidated, not_invalidated(req, inv));
        }
        (Some(_), Some("")) => {
            return input(
                "an invalidation exception needs a reason: --invalidation-exception \"why\"",
            );
        }
        (None, Some(_)) => {
            return input(format!(
                "{} has no invalidation pending; certify without --invalidation-exception",
                req.id
            ));
        }
        _ => {}
    }
    let signature = signature?;
    if let (Some(inv), Some(why)) = (req.invalidation.as_mut(), exception) {
        inv.exception = Some(Decision {
            by: who.into(),
            at: now,
            comment: why.into(),
            signature: None,
        });
    }
    req.state = State::Certified;
    req.certification = Some(Decision {
        by: who.into(),
        at: now,
        comment: comment.trim().into(),
        signature: signature.clone(),
    });
    let mut detail = json!({"comment": comment.trim()});
    if let Some(inv) = &req.invalidation {
        detail["credentials_copied_where"] = json!(inv.copied_where);
        match (&inv.done, exception) {
            (_, Some(why)) => detail["invalidation_exception"] = json!(why),
            (Some(d), None) => detail["invalidation"] = json!(d.outcome),
            (None, None) => {}
        }
    }
    let event = ev(
        AuditAction::ReviewCertified,
        who,
        State::Reviewed,
        State::Certified,
        detail,
    );
    Ok(signed(event, signature.as_ref()))
}

fn pending_invalidation(req: &mut Request) -> Result<&mut Invalidation, Refusal> {
    let id = req.id;
    match req.invalidation.as_mut() {
        Some(inv) if inv.pending() => Ok(inv),
        _ => Err(Refusal::new(
            RefusalKind::State,
            Reason::WrongState,
            format!("{id} has no invalidation of copied credentials pending"),
        )),
    }
}

/// The backend confirmed that copied credentials are useless. The request's
/// state does not change; certification may go ahead.
pub fn invalidated(
    req: &mut Request,
    actor: &str,
    outcome: InvalidationOutcome,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    let state = req.state;
    let inv = pending_invalidation(req)?;
    let attempts = inv.attempts + 1;
    inv.next_attempt_at = None;
    let detail = json!({
        "method": outcome.method,
        "confirmation": outcome.confirmation,
        "credentials_copied_where": inv.copied_where,
        "attempts": attempts,
    });
    inv.done = Some(InvalidationDone {
        at: now,
        by: actor.into(),
        outcome,
    });
    Ok(ev(
        AuditAction::CredentialsInvalidated,
        actor,
        state,
        state,
        detail,
    ))
}

/// The backend could not invalidate copied credentials: retried later, with
/// the same back-off as a revocation.
pub fn invalidation_failed(
    req: &mut Request,
    actor: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    let state = req.state;
    let inv = pending_invalidation(req)?;
    inv.attempts += 1;
    let backoff = 2i64.saturating_pow(inv.attempts.min(8)).min(300);
    inv.next_attempt_at = Some(now + Duration::seconds(backoff));
    inv.last_error = Some(error.to_string());
    Ok(ev(
        AuditAction::CredentialsInvalidationFailed,
        actor,
        state,
        state,
        json!({"error": error, "attempt": inv.attempts, "retry_in_seconds": backoff}),
    ))
}

pub fn reject(
    req: &mut Request,
    role: &RolePolicy,
    who: &str,
    comment: &str,
    signature: SignatureCheck,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    check_certifier(req, role, who)?;
    if comment.trim().is_empty() {
        return input("a rejection needs a comment saying what the review is missing (--comment)");
    }
    let signature = signature?;
    req.state = State::Ended;
    req.rejections.push(Decision {
        by: who.into(),
        at: now,
        comment: comment.trim().into(),
        signature: signature.clone(),
    });
    let event = ev(
        AuditAction::ReviewRejected,
        who,
        State::Reviewed,
        State::Ended,
        json!({"comment": comment.trim()}),
    );
    Ok(signed(event, signature.as_ref()))
}

/// A drill request for `role`: condition `drill`, no incident, the role's
/// shortest TTL, and `drill_approvals` approvals. Someone other than the
/// requester must approve a person's drill; only the broker's own scheduled
/// drills (`scheduled`) may need none, and those start approved.
pub fn new_drill(
    role: &RolePolicy,
    requester: &str,
    scheduled: bool,
    now: DateTime<Utc>,
) -> Result<(Request, Event), Refusal> {
    use super::drill::{Drill, CONDITION};
    if !scheduled && !role.may_request(requester) {
        return policy(
            Reason::NotPermitted,
            format!(
                "{requester} may not drill role {}; its requesters are: {}",
                role.name,
                role.requesters.describe()
            ),
        );
    }
    if !scheduled && role.drill.approvals == 0 {
        return policy(
            Reason::NotPermitted,
            format!(
                "role {} sets drill_approvals = 0, which only drills the broker schedules itself (drill_every) may use; a person's drill needs an approver other than the requester",
                role.name
            ),
        );
    }
    let ttl = role.min_ttl.max(1);
    let approved = role.drill.approvals == 0;
    let what = (
        IncidentRef::Ticket {
            reference: CONDITION.into(),
        },
        CONDITION.to_string(),
        format!(
            "drill of role {}: grant, probe, revoke, probe again",
            role.name
        ),
    );
    let mut req = filed(role, what, requester, ttl, role.drill.approvals, now);
    if approved {
        req.state = State::Approved;
    }
    req.drill = Some(Drill {
        scheduled,
        outcome: None,
    });
    let event = Event {
        action: AuditAction::RequestCreated,
        actor: requester.to_string(),
        from: None,
        to: req.state,
        detail: json!({
            "role": req.role,
            "condition": req.condition,
            "reason": req.reason,
            "ttl_seconds": ttl,
            "approvals_required": req.approvals_required,
            "drill": {"scheduled": scheduled},
        }),
    };
    Ok((req, event))
}

/// An approved drill begins (its own audited event, before the grant intent).
pub fn drill_started(req: &mut Request, who: &str, now: DateTime<Utc>) -> Result<Event, Refusal> {
    if req.drill.is_none() {
        return wrong_state(req, "it is not a drill");
    }
    if req.state != State::Approved {
        return wrong_state(req, "only an approved drill can start");
    }
    if who != req.requester {
        return policy(
            Reason::NotPermitted,
            format!(
                "only the requester ({}) can run drill {}",
                req.requester, req.id
            ),
        );
    }
    if now >= req.decide_by {
        return too_late(req, "it was not run in time and lapses");
    }
    Ok(ev(
        AuditAction::DrillStarted,
        who,
        State::Approved,
        State::Approved,
        json!({"ttl_seconds": req.ttl_seconds}),
    ))
}

/// A drill is over: its outcome is recorded. A drill whose access was revoked
/// (it passed, or only the probe failed) closes itself: no review is owed and
/// the role is not left locked. One whose revocation failed, or whose
/// credential still worked after it, stays Ended: a person must look.
pub fn drill_finished(
    req: &mut Request,
    actor: &str,
    outcome: super::drill::DrillOutcome,
    now: DateTime<Utc>,
) -> Result<Event, Refusal> {
    use super::drill::DrillStep;
    let Some(drill) = req.drill.as_mut() else {
        return wrong_state(req, "it is not a drill");
    };
    if drill.outcome.is_some() {
        return wrong_state(req, "its outcome is already recorded");
    }
    if !matches!(
        req.state,
        State::Approved | State::Ended | State::Failed | State::Revoking | State::Active
    ) {
        return wrong_state(req, "a drill's outcome is recorded once it ran");
    }
    let from = req.state;
    if from == State::Approved {
        // Refused before its grant intent (the role locked meanwhile, say):
        // nothing was granted, and the drill is over, not left to run again.
        req.state = State::Cancelled;
        req.cancellation = Some(Decision {
            by: actor.to_string(),
            at: now,
            comment: "drill: refused before its grant".into(),
            signature: None,
        });
    }
    let access_gone = !matches!(
        outcome.failed_step,
        Some(DrillStep::Revoke | DrillStep::ProbeAfterRevoke)
    );
    if from == State::Ended && access_gone {
        req.state = State::Certified;
        req.certification = Some(Decision {
            by: actor.to_string(),
            at: now,
            comment: "drill: access revoked and proven gone; nothing to review".into(),
            signature: None,
        });
    }
    let action = if outcome.passed() {
        AuditAction::DrillPassed
    } else {
        AuditAction::DrillFailed
    };
    let detail = json!({
        "failed_step": outcome.failed_step.map(|s| s.as_str()),
        "error": outcome.error,
        "scheduled": drill.scheduled,
    });
    drill.outcome = Some(outcome);
    Ok(ev(action, actor, from, req.state, detail))
}
