//! The approvers' notice (`approval_request` alerts): a new request waiting for
//! approval, then what became of it (each approval, the decision, activation,
//! the end), so a sink can update or resolve what it first sent. Drafted with
//! the transition, committed in its transaction like every alert, when a
//! configured sink takes the role's notices (`Engine::pages_approvers`).

use super::*;

/// Where a request stands for its approvers after `event`; `None` when the
/// event is no news to them. `waiting` and `partially_approved` still need an
/// approver; every other status closes the notice.
fn status(req: &Request, event: &Event) -> Option<&'static str> {
    use crate::domain::State;
    Some(match event.action {
        AuditAction::RequestCreated => "waiting",
        AuditAction::RequestApproved if req.state == State::Pending => "partially_approved",
        AuditAction::RequestApproved => "approved",
        AuditAction::RequestDenied => "denied",
        AuditAction::RequestCancelled => "cancelled",
        AuditAction::RequestLapsed => "lapsed",
        AuditAction::GrantActive => "active",
        AuditAction::RevokeConfirmed if req.state == State::Failed => "failed",
        AuditAction::RevokeConfirmed => "ended",
        _ => return None,
    })
}

/// Whether a notice with this status still asks an approver to act.
pub(crate) fn is_open(status: &str) -> bool {
    matches!(status, "waiting" | "partially_approved")
}

/// The notice for this transition, if it is news to the request's approvers.
/// Requests approved by policy never page anyone, so none of their transitions
/// do. The request id, the command and the key are filled in by
/// `alert_vocab::complete` when the row is written (a new request's id is
/// assigned in the store's transaction).
pub(super) fn draft(req: &Request, role: &RolePolicy, event: &Event) -> Vec<AlertDraft> {
    if req.auto_approved {
        return vec![];
    }
    let Some(status) = status(req, event) else {
        return vec![];
    };
    let mut drafts = alert(AlertKind::ApprovalRequest, req, event);
    for d in &mut drafts {
        d.payload["approval"] = serde_json::json!({
            "status": status,
            "open": is_open(status),
            "approvals": req.approvals.len(),
            "approvals_required": req.approvals_required,
            "may_approve": role.approvers.describe(),
            "decide_by": crate::domain::time::ts(req.decide_by),
            "ttl_seconds": req.ttl_seconds,
            "ttl": crate::domain::time::human(req.ttl_seconds),
            "requested_at": crate::alert_vocab::approval_stamp(req.created_at),
            // Roles with max_activations: "5th activation in 30 days (...)".
            "routine_use": req.routine_use.as_ref().map(|u| u.describe(&req.requester)),
        });
    }
    drafts
}
