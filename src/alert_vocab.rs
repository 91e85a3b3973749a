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
    pub const ALL: [AlertKind; 13] = [
        AlertKind::Activation,
        AlertKind::AutoActivation,
        AlertKind::CertificationOverdue,
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
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Activation => "activation",
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
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            AlertKind::AutoActivation | AlertKind::RevokeFailed => Severity::Critical,
            AlertKind::Activation
            | AlertKind::CertificationOverdue
            | AlertKind::GrantFailed
            | AlertKind::Recovery
            | AlertKind::RotateFailed => Severity::High,
            AlertKind::Denial | AlertKind::Extension | AlertKind::EarlyEnd | AlertKind::Refusal => {
                Severity::Medium
            }
            AlertKind::Recertification | AlertKind::ReviewRejected => Severity::Low,
        }
    }

    /// Access granted, and certifications left undone, reach the SOC whatever
    /// the config says.
    pub fn always_on(self) -> bool {
        matches!(
            self,
            AlertKind::Activation | AlertKind::AutoActivation | AlertKind::CertificationOverdue
        )
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
    fn only_activations_and_overdue_certifications_are_always_on() {
        let on: Vec<&str> = AlertKind::ALL
            .into_iter()
            .filter(|k| k.always_on())
            .map(AlertKind::as_str)
            .collect();
        assert_eq!(
            on,
            ["activation", "auto_activation", "certification_overdue"]
        );
        assert_eq!(AlertRules::default().on.len(), 10);
        assert!(!AlertRules::default().on.contains(&AlertKind::Activation));
    }
}
