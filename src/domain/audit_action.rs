//! What an audit event records. Its name (`as_str`) is what the store keeps and
//! exports write; records read back keep the stored text as it is, so a log
//! with an action this build does not know still verifies.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuditAction {
    RequestCreated,
    RequestAutoApproved,
    RequestApproved,
    RequestDenied,
    RequestCancelled,
    RequestLapsed,
    CertificationOverdue,
    GrantIntent,
    GrantActive,
    GrantFailed,
    GrantExtended,
    RevokeStarted,
    RevokeFailed,
    RevokeConfirmed,
    ReviewSubmitted,
    ReviewCertified,
    ReviewRejected,
    /// An attempt the policy refused; it changes no state.
    PolicyRefused,
    /// A decision about a role itself (vendor recertification), not one request.
    RoleRecertified,
    SessionRecorded,
    SessionReplayed,
    /// Credentials a review says were copied were rotated or revoked again.
    CredentialsInvalidated,
    /// The backend could not invalidate them (yet); retried.
    CredentialsInvalidationFailed,
    /// A drill's grant begins (its own event, before `grant.intent`).
    DrillStarted,
    DrillPassed,
    DrillFailed,
    /// A role's `drill_every` passed without a passing drill.
    DrillOverdue,
}

impl AuditAction {
    pub const ALL: [AuditAction; 27] = [
        AuditAction::RequestCreated,
        AuditAction::RequestAutoApproved,
        AuditAction::RequestApproved,
        AuditAction::RequestDenied,
        AuditAction::RequestCancelled,
        AuditAction::RequestLapsed,
        AuditAction::CertificationOverdue,
        AuditAction::GrantIntent,
        AuditAction::GrantActive,
        AuditAction::GrantFailed,
        AuditAction::GrantExtended,
        AuditAction::RevokeStarted,
        AuditAction::RevokeFailed,
        AuditAction::RevokeConfirmed,
        AuditAction::ReviewSubmitted,
        AuditAction::ReviewCertified,
        AuditAction::ReviewRejected,
        AuditAction::PolicyRefused,
        AuditAction::RoleRecertified,
        AuditAction::SessionRecorded,
        AuditAction::SessionReplayed,
        AuditAction::CredentialsInvalidated,
        AuditAction::CredentialsInvalidationFailed,
        AuditAction::DrillStarted,
        AuditAction::DrillPassed,
        AuditAction::DrillFailed,
        AuditAction::DrillOverdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::RequestCreated => "request.created",
            AuditAction::RequestAutoApproved => "request.auto_approved",
            AuditAction::RequestApproved => "request.approved",
            AuditAction::RequestDenied => "request.denied",
            AuditAction::RequestCancelled => "request.cancelled",
            AuditAction::RequestLapsed => "request.lapsed",
            AuditAction::CertificationOverdue => "certification.overdue",
            AuditAction::GrantIntent => "grant.intent",
            AuditAction::GrantActive => "grant.active",
            AuditAction::GrantFailed => "grant.failed",
            AuditAction::GrantExtended => "grant.extended",
            AuditAction::RevokeStarted => "revoke.started",
            AuditAction::RevokeFailed => "revoke.failed",
            AuditAction::RevokeConfirmed => "revoke.confirmed",
            AuditAction::ReviewSubmitted => "review.submitted",
            AuditAction::ReviewCertified => "review.certified",
            AuditAction::ReviewRejected => "review.rejected",
            AuditAction::PolicyRefused => "policy.refused",
            AuditAction::RoleRecertified => "role.recertified",
            AuditAction::SessionRecorded => "session.recorded",
            AuditAction::SessionReplayed => "session.replayed",
            AuditAction::CredentialsInvalidated => "credentials.invalidated",
            AuditAction::CredentialsInvalidationFailed => "credentials.invalidation_failed",
            AuditAction::DrillStarted => "drill.started",
            AuditAction::DrillPassed => "drill.passed",
            AuditAction::DrillFailed => "drill.failed",
            AuditAction::DrillOverdue => "drill.overdue",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Text that names no audit action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not an audit action")]
pub struct UnknownAction(pub String);

impl FromStr for AuditAction {
    type Err = UnknownAction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_string()))
    }
}

/// Lets stored records (`action: String`) be compared with an action directly.
impl PartialEq<AuditAction> for String {
    fn eq(&self, a: &AuditAction) -> bool {
        self == a.as_str()
    }
}

impl PartialEq<AuditAction> for str {
    fn eq(&self, a: &AuditAction) -> bool {
        self == a.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_back_from_their_names() {
        for a in AuditAction::ALL {
            assert_eq!(a.as_str().parse::<AuditAction>(), Ok(a));
            assert_eq!(a.to_string(), a.as_str());
            assert_eq!(serde_json::json!(a), a.as_str());
        }
        assert!("test.escape".parse::<AuditAction>().is_err());
        assert_eq!(
            AuditAction::ALL
                .iter()
                .map(|a| a.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            AuditAction::ALL.len(),
            "every name is distinct"
        );
    }
}
