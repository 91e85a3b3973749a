//! What an alert is, shared by the layers that raise, store, configure and send
//! alerts: its kinds and their severities, the wire schema, the output formats,
//! which kinds a config turns on, and the syslog sizes a sink may choose. A leaf:
//! config, store and alert all read it, so it reads none of them.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The native alert schema (documented in docs/src/alerts.md).
pub const SCHEMA: &str = "breakglass.alert/v1";

/// What an alert is about. Its name (`as_str`) is the alert's `kind` on the
/// wire and in `[alerts] on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    Activation,
    /// A request waits for approval (and, as later alerts of the same kind, what
    /// became of it): for the role's approvers, not the SOC; only sinks that
    /// take it (`kinds`, or a PagerDuty sink) are sent it.
    ApprovalRequest,
    AutoActivation,
    CertificationOverdue,
    Denial,
    Extension,
    EarlyEnd,
    GrantFailed,
    RevokeFailed,
    Recovery,
    Recertification,
    Refusal,
    ReviewRejected,
    RotateFailed,
    /// A request beyond its role's `max_activations` (or the per-person bound):
    /// break-glass access used as routine; it needs one more approval.
    RoutineUse,
    /// A review was certified although the credentials it says were copied
    /// were not confirmed invalidated: the certifier's recorded exception.
    InvalidationException,
    /// A drill of a role's path (grant, probe, revoke, probe again): started,
    /// passed. The SOC can filter drills out of real activations by this kind.
    Drill,
    /// A drill failed at a step: the path an emergency needs is broken.
    DrillFailed,
    /// A role's `drill_every` passed without a passing drill (once per period).
    DrillOverdue,
}

/// How urgent an alert is; its name is the alert's `severity` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AlertKind {
    /// Every kind, the always-on ones first (the order `config check` lists them in).
    pub const ALL: [AlertKind; 19] = [
        AlertKind::Activation,
        AlertKind::AutoActivation,
        AlertKind::CertificationOverdue,
        AlertKind::InvalidationException,
        AlertKind::ApprovalRequest,
        AlertKind::Denial,
        AlertKind::Extension,
        AlertKind::EarlyEnd,
        AlertKind::GrantFailed,
        AlertKind::RevokeFailed,
        AlertKind::Recovery,
        AlertKind::Recertification,
        AlertKind::Refusal,
        AlertKind::ReviewRejected,
        AlertKind::RotateFailed,
        AlertKind::RoutineUse,
        AlertKind::Drill,
        AlertKind::DrillFailed,
        AlertKind::DrillOverdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Activation => "activation",
            AlertKind::ApprovalRequest => "approval_request",
            AlertKind::AutoActivation => "auto_activation",
            AlertKind::CertificationOverdue => "certification_overdue",
            AlertKind::Denial => "denial",
            AlertKind::Extension => "extension",
            AlertKind::EarlyEnd => "early_end",
            AlertKind::GrantFailed => "grant_failed",
            AlertKind::RevokeFailed => "revoke_failed",
            AlertKind::Recovery => "recovery",
            AlertKind::Recertification => "recertification",
            AlertKind::Refusal => "refusal",
            AlertKind::ReviewRejected => "review_rejected",
            AlertKind::RotateFailed => "rotate_failed",
            AlertKind::RoutineUse => "routine_use",
            AlertKind::InvalidationException => "invalidation_exception",
            AlertKind::Drill => "drill",
            AlertKind::DrillFailed => "drill_failed",
            AlertKind::DrillOverdue => "drill_overdue",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            AlertKind::AutoActivation | AlertKind::RevokeFailed => Severity::Critical,
            AlertKind::Activation
            | AlertKind::ApprovalRequest
            | AlertKind::CertificationOverdue
            | AlertKind::GrantFailed
            | AlertKind::Recovery
            | AlertKind::RotateFailed
            | AlertKind::RoutineUse
            | AlertKind::InvalidationException
            | AlertKind::DrillFailed => Severity::High,
            AlertKind::Denial
            | AlertKind::Extension
            | AlertKind::EarlyEnd
            | AlertKind::Refusal
            | AlertKind::DrillOverdue => Severity::Medium,
            AlertKind::Recertification | AlertKind::ReviewRejected | AlertKind::Drill => {
                Severity::Low
            }
        }
    }

    /// Access granted, certifications left undone, certifications that left
    /// copied credentials valid and a drill that found the emergency path
    /// broken reach the SOC whatever the config says.
    pub fn always_on(self) -> bool {
        matches!(
            self,
            AlertKind::Activation
                | AlertKind::AutoActivation
                | AlertKind::CertificationOverdue
                | AlertKind::InvalidationException
                | AlertKind::DrillFailed
        )
    }

    /// Whether a sink that names no `kinds` takes it: every kind but the
    /// approvers' notices, which go only to sinks chosen for them.
    pub fn for_soc(self) -> bool {
        self != AlertKind::ApprovalRequest
    }

    /// The kinds a config may turn off.
    pub fn optional() -> impl Iterator<Item = AlertKind> {
        AlertKind::ALL.into_iter().filter(|k| !k.always_on())
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no alert kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alert kind \"{0}\" is not known")]
pub struct UnknownKind(pub String);

impl FromStr for AlertKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// The instant a request was filed as its approval notices name it, to the
/// millisecond (`20261125T223813.990Z`).
pub fn approval_stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// Fills in what an alert's `data` derives from its request's id, when the
/// store writes the row (a new request's id is assigned in that transaction):
/// `request_id`; for an approval notice, `approval.command` (while it is open)
/// and `approval.key`, which every notice of one request shares so a receiver
/// can update what it first showed (the PagerDuty dedup key). Request ids start
/// again in a new store, so the key also carries the instant it was filed.
pub fn complete(kind: AlertKind, data: &mut serde_json::Value, request_id: &str) {
    if !data.is_object() {
        return;
    }
    data["request_id"] = serde_json::json!(request_id);
    if kind != AlertKind::ApprovalRequest || !data["approval"].is_object() {
        return;
    }
    let a = &mut data["approval"];
    let stamp = a["requested_at"].as_str().unwrap_or_default().to_string();
    a["key"] = serde_json::json!(format!("breakglass-{request_id}-{stamp}"));
    a["command"] = if a["open"] == serde_json::json!(true) {
        serde_json::json!(format!("breakglass approve {request_id}"))
    } else {
        serde_json::Value::Null
    };
}

/// Which kinds of alert the SOC wants beyond the always-on ones, and the key that
/// signs the audit checkpoint every alert carries.
#[derive(Debug, Clone)]
pub struct AlertRules {
    pub on: BTreeSet<AlertKind>,
    pub signer: Option<Arc<crate::audit::checkpoint::Signer>>,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            on: AlertKind::optional().collect(),
            signer: None,
        }
    }
}

impl AlertRules {
    pub fn wants(&self, kind: AlertKind) -> bool {
        kind.always_on() || self.on.contains(&kind)
    }
}

/// How a sink renders alerts (`format = "native" | "ocsf"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Native,
    Ocsf,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Ocsf => "ocsf",
        }
    }
}

impl FromStr for Format {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "native" => Ok(Format::Native),
            "ocsf" => Ok(Format::Ocsf),
            _ => Err(()),
        }
    }
}

/// Syslog message sizes: the defaults and the range `max_message_bytes` may take.
pub mod syslog_size {
    /// What RFC 5424 §6.1 and RFC 5426 §3.2 say every receiver SHOULD accept.
    pub const DEFAULT_UDP_MAX_BYTES: usize = 2048;
    /// rsyslog's default `maxMessageSize`, so a stock collector takes each message whole.
    pub const DEFAULT_TCP_MAX_BYTES: usize = 8096;
    /// What every receiver MUST accept (RFC 5424 §6.1, RFC 5426 §3.2 for IPv4).
    pub const MIN_MAX_BYTES: usize = 480;
    /// The largest UDP payload over IPv4.
    pub const UDP_LIMIT_BYTES: usize = 65_507;
    /// A sanity bound for TCP; collectors configured beyond this are unusual.
    pub const TCP_LIMIT_BYTES: usize = 1 << 20;

    pub fn default_max_bytes(tcp: bool) -> usize {
        if tcp {
            DEFAULT_TCP_MAX_BYTES
        } else {
            DEFAULT_UDP_MAX_BYTES
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_from_their_names() {
        for k in AlertKind::ALL {
            assert_eq!(k.as_str().parse::<AlertKind>(), Ok(k));
        }
        assert!("gossip".parse::<AlertKind>().is_err());
    }

    #[test]
    fn activations_overdue_certifications_and_failed_drills_are_always_on() {
        let on: Vec<&str> = AlertKind::ALL
            .into_iter()
            .filter(|k| k.always_on())
            .map(AlertKind::as_str)
            .collect();
        assert_eq!(
            on,
            [
                "activation",
                "auto_activation",
                "certification_overdue",
                "invalidation_exception",
                "drill_failed",
            ]
        );
        assert_eq!(AlertRules::default().on.len(), 14);
        assert!(!AlertRules::default().on.contains(&AlertKind::Activation));
        // Routine use is optional, and on unless a config leaves it out.
        assert!(AlertRules::default().on.contains(&AlertKind::RoutineUse));
        assert_eq!(AlertKind::RoutineUse.severity(), Severity::High);
    }
}
