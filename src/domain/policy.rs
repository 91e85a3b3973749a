use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};

/// The validated policy the engine enforces. Built by `config` from the policy
/// file; groups are already expanded into user names.
#[derive(Debug, Clone)]
pub struct Policy {
    pub roles: BTreeMap<String, RolePolicy>,
    /// Demo personas; `Some` only in demo mode, the only mode where `--as` is accepted.
    pub demo_personas: Option<Vec<String>>,
    /// `approval_signing = "ssh"`: decisions need the decider's SSH signature.
    pub approval_signing: Option<ApprovalSigning>,
}

/// Signed approvals: approve, deny, certify and reject carry an `ssh-keygen -Y
/// sign` signature, verified against this OpenSSH allowed_signers file (its
/// principals are breakglass user names) before the decision counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSigning {
    pub allowed_signers: std::path::PathBuf,
}

#[derive(Debug, Clone)]
pub struct RolePolicy {
    pub name: String,
    pub description: String,
    pub backend: String,
    /// Handed to the backend as is (e.g. `{ member_of = ["emergency_dba"] }`).
    pub scope: serde_json::Value,
    pub default_ttl: i64,
    pub max_ttl: i64,
    pub max_extensions: u32,
    /// Ceiling on granted_at..expires_at including every extension.
    pub max_total: i64,
    /// The shortest TTL a request may ask for (`min_ttl`, default 1m): a
    /// one-second grant is a typo that locks the role for a review.
    pub min_ttl: i64,
    pub conditions: Vec<String>,
    pub ticket_pattern: Option<Regex>,
    pub requesters: Principals,
    pub approvers: Principals,
    pub certifiers: Principals,
    pub approvals_required: u32,
    /// How long a request may wait for its approvals (and then for activation).
    pub request_ttl: i64,
    pub rotate_after_use: bool,
    /// Requests and every extension need an incident its source reports open
    /// (default true). Manual tickets are checked against `ticket_pattern` only.
    pub require_open_incident: bool,
    /// The sweeper revokes access once its source reports the incident resolved
    /// (default true). A source error never revokes.
    pub revoke_on_resolve: bool,
    /// Fail closed: no grant until the SOC confirmed receipt of the activation alert.
    pub require_alert_delivery: bool,
    /// Machine-speed recovery: which service identities may be approved by policy.
    pub automation: Automation,
    /// `vendor = true`: a vendor role (TTL ceiling, vendor identity, recorded shell).
    pub vendor: Option<crate::domain::vendor::VendorPolicy>,
    /// `max_activations`: beyond it a request needs one more approval
    /// (`domain::routine`).
    pub max_activations: Option<crate::domain::routine::ActivationLimit>,
    /// `max_activations_per_person`: the same bound, per requester.
    pub max_activations_per_person: Option<crate::domain::routine::ActivationLimit>,
    /// `drill_approvals`, `drill_every`.
    pub drill: crate::domain::drill::DrillPolicy,
}

/// `automation`, `auto_approve_conditions`, `auto_approve_rate`, `auto_max_ttl`
/// and `certify_within` of a role. With no identities nothing is auto-approved.
#[derive(Debug, Clone, Default)]
pub struct Automation {
    /// Service identities (checked like people). They may request the role
    /// without being listed in `requesters`; a person is never auto-approved.
    pub identities: Principals,
    /// A subset of the role's conditions.
    pub conditions: Vec<String>,
    /// At most `rate_count` auto-approvals per `rate_window` seconds per role.
    pub rate_count: u32,
    pub rate_window: i64,
    /// Longest TTL approved by policy (never above the role's max_ttl).
    pub max_ttl: i64,
    /// A person must certify the use within this many seconds of the request.
    pub certify_within: i64,
}

impl Automation {
    pub fn is_automation(&self, who: &str) -> bool {
        !self.identities.anyone && self.identities.users.contains(who)
    }
}

/// Who may do something: explicit users, or anyone (`*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principals {
    pub users: BTreeSet<String>,
    pub anyone: bool,
    /// The text as written in policy, for messages ("@sre-leads").
    pub written: Vec<String>,
}

impl Principals {
    pub fn allows(&self, user: &str) -> bool {
        self.anyone || self.users.contains(user)
    }
    pub fn describe(&self) -> String {
        self.written.join(", ")
    }
}

impl RolePolicy {
    /// People in `requesters`, and the role's automation identities.
    pub fn may_request(&self, who: &str) -> bool {
        self.requesters.allows(who) || self.automation.is_automation(who)
    }
    pub fn allows_ticket(&self) -> bool {
        self.ticket_pattern.is_some()
    }

    /// TTLs offered as choices: the default, up to two round steps between
    /// it and the ceiling, and the ceiling.
    pub fn ttl_presets(&self) -> Vec<i64> {
        ttl_presets(self.default_ttl, self.max_ttl)
    }
}

/// Round durations a person would ask for, in seconds.
const LADDER: [i64; 12] = [
    300, 600, 900, 1800, 2700, 3600, 7200, 14400, 28800, 43200, 86400, 172800,
];

/// `default`, at most two ladder steps strictly between it and `max`, then `max`.
pub fn ttl_presets(default: i64, max: i64) -> Vec<i64> {
    let mut out = vec![default];
    let between: Vec<i64> = LADDER
        .iter()
        .copied()
        .filter(|&t| t > default && t < max)
        .collect();
    // Spread the steps: the first and the middle one of what lies between.
    match between.len() {
        0 => {}
        1 | 2 => out.extend(&between),
        n => out.extend([between[0], between[n / 2]]),
    }
    if max > default {
        out.push(max);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::ttl_presets;

    #[test]
    fn presets_run_from_the_default_to_the_ceiling_in_round_steps() {
        let m = 60;
        assert_eq!(ttl_presets(15 * m, 30 * m), [15 * m, 30 * m]);
        assert_eq!(
            ttl_presets(10 * m, 45 * m),
            [10 * m, 15 * m, 30 * m, 45 * m]
        );
        // Many round steps between: the first and the middle one.
        assert_eq!(
            ttl_presets(5 * m, 24 * 60 * m),
            [5 * m, 10 * m, 60 * m, 24 * 60 * m]
        );
        assert_eq!(ttl_presets(30 * m, 30 * m), [30 * m]);
    }
}
