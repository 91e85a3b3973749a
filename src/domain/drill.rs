//! Drills: a role's real path (grant, probe, revoke, probe again) walked between
//! emergencies with the role's shortest TTL, so a broken backend grant is found
//! before the outage. A drill is an ordinary request marked `drill`: it takes
//! the lifecycle's own steps, locks and audit chain, and adds its outcome.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The condition a drill request carries (no incident is needed).
pub const CONDITION: &str = "drill";
/// The actor of drills the broker schedules itself (`drill_every`).
pub const SCHEDULER: &str = "breakglass-drill";

/// A role's drill settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrillPolicy {
    /// Approvals a drill needs (`drill_approvals`, default 1, someone other than
    /// the requester). 0 is allowed only for drills the broker schedules.
    pub approvals: u32,
    /// `drill_every`: the broker runs a drill when the last one is this old, and
    /// a role without a passing drill for this long is overdue.
    pub every: Option<i64>,
}

/// The steps a drill walks, in order; a failure names the first that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrillStep {
    Grant,
    Probe,
    Revoke,
    ProbeAfterRevoke,
}

impl DrillStep {
    pub fn as_str(self) -> &'static str {
        match self {
            DrillStep::Grant => "grant",
            DrillStep::Probe => "probe",
            DrillStep::Revoke => "revoke",
            DrillStep::ProbeAfterRevoke => "probe-after-revoke",
        }
    }
}

/// What a drill request carries: who started it and, once over, how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drill {
    /// Started by the broker (`drill_every`), not by a person.
    #[serde(default)]
    pub scheduled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<DrillOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillOutcome {
    pub at: DateTime<Utc>,
    /// `None` when it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<DrillStep>,
    /// What the failing step said (cleaned, never a credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DrillOutcome {
    pub fn passed(&self) -> bool {
        self.failed_step.is_none()
    }
}

/// A role's drill standing, for `roles` and the console.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillStatus {
    /// The last drill failed: the role's path is broken (shown red).
    #[serde(default)]
    pub failing: bool,
    /// The last finished drill: when, and the step that failed if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<DrillOutcome>,
    /// When a drill last passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_passed: Option<DateTime<Utc>>,
    /// `drill_every` passed since the last passing drill (or none ever passed).
    pub overdue: bool,
}

impl DrillStatus {
    /// From a role's finished drill outcomes (any order) and its `drill_every`.
    pub fn of(outcomes: &[DrillOutcome], every: Option<i64>, now: DateTime<Utc>) -> DrillStatus {
        let last = outcomes.iter().max_by_key(|o| o.at).cloned();
        let last_passed = outcomes.iter().filter(|o| o.passed()).map(|o| o.at).max();
        let overdue = every
            .is_some_and(|e| last_passed.is_none_or(|p| now - p >= chrono::Duration::seconds(e)));
        DrillStatus {
            failing: last.as_ref().is_some_and(|o| !o.passed()),
            last,
            last_passed,
            overdue,
        }
    }

    /// "last drill 12d ago, passed" / "... failed at probe" / "never drilled".
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        let mut s = match &self.last {
            None => "never drilled".to_string(),
            Some(o) => {
                let ago = ago((now - o.at).num_seconds());
                match o.failed_step {
                    None => format!("last drill {ago} ago, passed"),
                    Some(step) => format!("last drill {ago} ago, FAILED at {}", step.as_str()),
                }
            }
        };
        if self.overdue {
            s.push_str(" (drill overdue)");
        }
        s
    }
}

/// A coarse age: "12d", "3h", "5m", "40s".
fn ago(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        s if s >= 86400 => format!("{}d", s / 86400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_overdue_without_a_recent_pass_and_red_after_a_failure() {
        let now = DateTime::parse_from_rfc3339("2026-01-31T00:00:00Z")
            .expect("a literal time")
            .with_timezone(&Utc);
        let day = chrono::Duration::days(1);
        let passed = DrillOutcome {
            at: now - day * 12,
            failed_step: None,
            error: None,
        };
        let failed = DrillOutcome {
            at: now - day,
            failed_step: Some(DrillStep::Probe),
            error: Some("refused".into()),
        };
        let s = DrillStatus::of(std::slice::from_ref(&passed), Some(30 * 86400), now);
        assert!(!s.overdue && !s.failing);
        assert_eq!(s.describe(now), "last drill 12d ago, passed");
        let s = DrillStatus::of(&[passed.clone(), failed], Some(10 * 86400), now);
        assert!(s.overdue && s.failing);
        assert!(
            s.describe(now).contains("FAILED at probe"),
            "{}",
            s.describe(now)
        );
        assert!(DrillStatus::of(&[], Some(86400), now).overdue);
        assert!(!DrillStatus::of(&[], None, now).overdue);
    }
}
