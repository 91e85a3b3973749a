use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Request ids are small sequential numbers shown as `REQ-<n>`: easy to read out
/// on a bridge call at 3 a.m.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub i64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "REQ-{}", self.0)
    }
}

impl std::str::FromStr for RequestId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits = t
            .strip_prefix("REQ-")
            .or_else(|| t.strip_prefix("req-"))
            .unwrap_or(t);
        digits
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(RequestId)
            .ok_or_else(|| format!("`{s}` is not a request id; write it as REQ-12 or 12"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Denied,
    Cancelled,
    Lapsed,
    Granting,
    Active,
    Failed,
    Revoking,
    Ended,
    Reviewed,
    Certified,
}

impl State {
    pub const ALL: [State; 12] = [
        State::Pending,
        State::Approved,
        State::Denied,
        State::Cancelled,
        State::Lapsed,
        State::Granting,
        State::Active,
        State::Failed,
        State::Revoking,
        State::Ended,
        State::Reviewed,
        State::Certified,
    ];
    /// States that keep the role locked: access is (or may be) out there, or its
    /// after-action review is not certified yet.
    pub const LOCKING: [State; 5] = [
        State::Granting,
        State::Active,
        State::Revoking,
        State::Ended,
        State::Reviewed,
    ];

    pub fn locks_role(self) -> bool {
        Self::LOCKING.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Cancelled => "cancelled",
            State::Lapsed => "lapsed",
            State::Granting => "granting",
            State::Active => "active",
            State::Failed => "failed",
            State::Revoking => "revoking",
            State::Ended => "ended",
            State::Reviewed => "reviewed",
            State::Certified => "certified",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the request is tied to: an incident from a configured source, or a manual
/// ticket reference validated against the role's pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IncidentRef {
    Source {
        source: String,
        id: String,
        title: String,
    },
    Ticket {
        reference: String,
    },
}

impl IncidentRef {
    pub fn label(&self) -> String {
        match self {
            IncidentRef::Source { source, id, title } => format!("{id} ({source}): {title}"),
            IncidentRef::Ticket { reference } => format!("ticket {reference}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// With `approval_signing = "ssh"`: the approver's signature, verified before
    /// the approval counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SshSignature>,
}

/// An `ssh-keygen -Y sign` signature (namespace `breakglass`) over the canonical
/// statement of one decision (`identity::ssh_sign::Statement`). Everything else
/// in the statement is derived from the request, so only the signing time is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshSignature {
    /// The statement's `at=` (whole seconds, within 5 minutes of the engine's clock).
    pub signed_at: DateTime<Utc>,
    /// The armored `-----BEGIN SSH SIGNATURE-----` text.
    pub armored: String,
}

/// A decision by one person: a denial, a cancellation, a certification, a rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub comment: String,
    /// With `approval_signing = "ssh"`: the signature on a denial, certification
    /// or rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SshSignature>,
}

/// Which process is driving a Granting or Revoking step, so recovery can tell a
/// step in flight from one whose process died.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub by: String,
    pub at: DateTime<Utc>,
    pub seconds: i64,
    pub reason: String,
    pub new_expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// When the intent to grant was committed (Approved -> Granting).
    pub intent_at: DateTime<Utc>,
    pub owner: Owner,
    #[serde(default)]
    pub lease_id: Option<String>,
    #[serde(default)]
    pub granted_at: Option<DateTime<Utc>>,
    /// Wall-clock end of access. The countdown and every sweep derive from this,
    /// never from a timer held in memory.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub extensions: Vec<Extension>,
    #[serde(default)]
    pub end: Option<EndReason>,
    #[serde(default)]
    pub revoke_attempts: u32,
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// The grant call failed (or was interrupted): revocation ends in Failed, not Ended.
    #[serde(default)]
    pub grant_failed: bool,
    /// The process that started revocation; if it dies, recovery retries at once.
    #[serde(default)]
    pub revoker: Option<Owner>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndReason {
    pub by: String,
    pub at: DateTime<Utc>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewAnswers {
    pub actions_taken: String,
    pub systems_touched: String,
    pub access_necessary: bool,
    pub credentials_copied: bool,
    #[serde(default)]
    pub credentials_copied_where: String,
    #[serde(default)]
    pub follow_ups: String,
}

/// How a backend made copied credentials useless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidationMethod {
    /// A secret was replaced (the role's standing secret, the grant's password).
    Rotated,
    /// Only revoked again by request id: what was granted is gone at the target.
    Revoked,
}

impl InvalidationMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidationMethod::Rotated => "rotated",
            InvalidationMethod::Revoked => "revoked",
        }
    }
}

/// What the backend confirmed it did. Never a secret: names of roles, leases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidationOutcome {
    pub method: InvalidationMethod,
    /// Cleaned and capped by the engine before it is recorded.
    pub confirmation: String,
}

/// The backend's confirmation, recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidationDone {
    pub at: DateTime<Utc>,
    pub by: String,
    #[serde(flatten)]
    pub outcome: InvalidationOutcome,
}

/// Credentials a review says were copied, and what became of them: the backend
/// asked to make them useless (rotated, or revoked again), or a certifier's
/// exception. Certification waits for one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    /// When the review asked for it.
    pub asked_at: DateTime<Utc>,
    /// Where the review says they were copied (cleaned and capped).
    pub copied_where: String,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub done: Option<InvalidationDone>,
    /// A certifier certified without it, and why.
    #[serde(default)]
    pub exception: Option<Decision>,
}

impl Invalidation {
    /// Neither done nor excepted: certification waits.
    pub fn pending(&self) -> bool {
        self.done.is_none() && self.exception.is_none()
    }

    /// Pending, and its next attempt is due (the first one at once).
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.pending() && self.next_attempt_at.is_none_or(|t| t <= now)
    }

    /// One line for people: what was done, or what is pending.
    pub fn status(&self) -> String {
        if let Some(d) = &self.done {
            return format!("{}: {}", d.outcome.method.as_str(), d.outcome.confirmation);
        }
        if let Some(x) = &self.exception {
            return format!("not invalidated: exception by {}: {}", x.by, x.comment);
        }
        match &self.last_error {
            Some(e) => format!("PENDING: {} attempt(s) failed, last: {e}", self.attempts),
            None => "PENDING: not yet confirmed by the backend".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub by: String,
    pub at: DateTime<Utc>,
    pub answers: ReviewAnswers,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: RequestId,
    pub role: String,
    pub incident: IncidentRef,
    pub condition: String,
    pub reason: String,
    pub requester: String,
    pub ttl_seconds: i64,
    pub approvals_required: u32,
    pub created_at: DateTime<Utc>,
    /// Pending requests lapse at this instant; approved ones must be activated by it.
    pub decide_by: DateTime<Utc>,
    pub state: State,
    /// Optimistic concurrency: every committed transition increments it.
    pub version: i64,
    #[serde(default)]
    pub approvals: Vec<Approval>,
    #[serde(default)]
    pub denial: Option<Decision>,
    #[serde(default)]
    pub cancellation: Option<Decision>,
    #[serde(default)]
    pub grant: Option<GrantRecord>,
    #[serde(default)]
    pub review: Option<Review>,
    #[serde(default)]
    pub certification: Option<Decision>,
    #[serde(default)]
    pub rejections: Vec<Decision>,
    /// Approved by policy (`automation`), not by a person.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_approved: bool,
    /// Auto-approved requests: a person must certify the use by then, else the
    /// role locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certify_by: Option<DateTime<Utc>>,
    /// An automation request left for human approvers: why policy did not approve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_approval_declined: Option<String>,
    /// The sweeper raised the certification_overdue alert (once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certification_overdue_at: Option<DateTime<Utc>>,
    /// Vendor roles: who the vendor is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<crate::domain::vendor::VendorInfo>,
    /// Roles with `max_activations`: this activation's place in the window,
    /// and whether it went beyond (one more approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routine_use: Option<crate::domain::routine::RoutineUse>,
    /// The review said credentials were copied: their invalidation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalidation: Option<Invalidation>,
    /// A drill of the role's path, not access for a person: its credential goes
    /// to the backend's probe only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<crate::domain::drill::Drill>,
}

impl GrantRecord {
    /// The latest end of access the policy allows: the TTL from the grant intent.
    /// Fixed once, at intent; the backend is asked for exactly this, and the
    /// stored expiry is never later, however long the backend took.
    pub fn deadline(&self, ttl_seconds: i64) -> DateTime<Utc> {
        self.intent_at + chrono::Duration::seconds(ttl_seconds)
    }
}

impl Request {
    /// `GrantRecord::deadline` of this request's grant, once it was intended.
    pub fn grant_deadline(&self) -> Option<DateTime<Utc>> {
        self.grant.as_ref().map(|g| g.deadline(self.ttl_seconds))
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.grant.as_ref().and_then(|g| g.expires_at)
    }

    /// Seconds of access left, computed from the stored instant and `now`.
    pub fn remaining(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        if self.state != State::Active {
            return None;
        }
        self.expires_at()
            .map(|e| (e - now).max(chrono::Duration::zero()))
    }

    /// Whether this request keeps its role locked at `now`. An auto-approved
    /// request awaiting review or certification does not, until its `certify_by`.
    pub fn locks_role_at(&self, now: DateTime<Utc>) -> bool {
        self.state.locks_role() && !self.certification_grace(now)
    }

    fn certification_grace(&self, now: DateTime<Utc>) -> bool {
        self.auto_approved
            && matches!(self.state, State::Ended | State::Reviewed)
            && self.certify_by.is_some_and(|d| now < d)
    }

    /// An auto-approved request whose certification deadline has passed, uncertified.
    pub fn certification_overdue_since(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.auto_approved || !matches!(self.state, State::Ended | State::Reviewed) {
            return None;
        }
        self.certify_by.filter(|d| *d <= now)
    }

    pub fn approvers(&self) -> Vec<&str> {
        self.approvals.iter().map(|a| a.by.as_str()).collect()
    }
}
