//! Routine use: break-glass access asked for again and again is a standing
//! need in disguise. A role's `max_activations` ("4/30d": at most 4 activations
//! in any 30 days) and `max_activations_per_person` bound it. Beyond a bound a
//! request is not refused (the emergency may be real) but needs one more
//! approval than usual and raises the `routine_use` alert; within it, the
//! count is still recorded so approvers see "3rd activation in 30 days".

use super::lifecycle::Event;
use super::policy::RolePolicy;
use super::request::Request;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// At most `count` activations in any `window` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationLimit {
    pub count: u32,
    pub window: i64,
}

impl ActivationLimit {
    /// "N/window" as the config writes it ("4/30d"); `None` unless N >= 1 and
    /// the window is a duration.
    pub fn parse(s: &str) -> Option<Self> {
        let (n, w) = s.split_once('/')?;
        let count: u32 = n.trim().parse().ok().filter(|n| *n >= 1)?;
        let window = super::duration::parse_secs(w).ok()?;
        Some(ActivationLimit { count, window })
    }
}

/// Where one request stands against one bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutineCount {
    /// This activation's place in the window: the activations granted in the
    /// window before the request was filed, plus one.
    pub nth: u32,
    pub limit: u32,
    pub window_seconds: i64,
}

impl RoutineCount {
    pub fn over(&self) -> bool {
        self.nth > self.limit
    }

    /// "3rd activation in 30 days".
    pub fn describe(&self) -> String {
        format!(
            "{} activation in {}",
            ordinal(self.nth),
            window_words(self.window_seconds)
        )
    }
}

/// What the request records (and its `request.created` event audits): its place
/// against the role's bound and its requester's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutineUse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoutineCount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<RoutineCount>,
    /// Beyond a bound: one more approval than the role's, and the alert.
    #[serde(default)]
    pub over: bool,
}

impl RoutineUse {
    /// For people: "5th activation in 30 days (more than 4: one extra
    /// approval); alice's 2nd in 7 days".
    pub fn describe(&self, requester: &str) -> String {
        self.describe_with(&format!("{requester}'s"))
    }

    /// `describe` with the person's part introduced by `whose` ("your").
    pub fn describe_with(&self, whose: &str) -> String {
        let mut parts = vec![];
        if let Some(c) = &self.role {
            parts.push(format!("{}{}", c.describe(), beyond(c)));
        }
        if let Some(c) = &self.person {
            parts.push(format!(
                "{} {} in {}{}",
                whose,
                ordinal(c.nth),
                window_words(c.window_seconds),
                beyond(c)
            ));
        }
        parts.join("; ")
    }
}

fn beyond(c: &RoutineCount) -> String {
    if c.over() {
        format!(" (more than {}: one extra approval)", c.limit)
    } else {
        String::new()
    }
}

/// Where a new request stands, given the activations granted in each bound's
/// window (`role_granted`, `person_granted`; `None` where the role sets no bound).
pub fn assess(
    role: &RolePolicy,
    role_granted: Option<u32>,
    person_granted: Option<u32>,
) -> Option<RoutineUse> {
    let count = |limit: Option<ActivationLimit>, granted: Option<u32>| {
        let (l, g) = (limit?, granted?);
        Some(RoutineCount {
            nth: g.saturating_add(1),
            limit: l.count,
            window_seconds: l.window,
        })
    };
    let role_count = count(role.max_activations, role_granted);
    let person_count = count(role.max_activations_per_person, person_granted);
    if role_count.is_none() && person_count.is_none() {
        return None;
    }
    let over = role_count.iter().chain(&person_count).any(|c| c.over());
    Some(RoutineUse {
        role: role_count,
        person: person_count,
        over,
    })
}

/// Records `routine` on a new request and its creation event; beyond a bound
/// the request needs the role's approvals plus one.
pub fn apply(role: &RolePolicy, req: &mut Request, event: &mut Event, routine: RoutineUse) {
    if routine.over {
        req.approvals_required = role.approvals_required + 1;
        event.detail["approvals_required"] = json!(req.approvals_required);
    }
    event.detail["routine_use"] = json!(routine);
    req.routine_use = Some(routine);
}

/// 1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st.
pub fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A window the way people say it: "30 days", "1 day", "12 hours", else `human`.
pub fn window_words(secs: i64) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if secs > 0 && secs % 86_400 == 0 {
        plural(secs / 86_400, "day")
    } else if secs > 0 && secs % 3600 == 0 {
        plural(secs / 3600, "hour")
    } else {
        super::time::human(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        let o: Vec<_> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 103, 111]
            .into_iter()
            .map(ordinal)
            .collect();
        assert_eq!(
            o,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "103rd",
                "111th"
            ]
        );
        assert_eq!(window_words(30 * 86_400), "30 days");
        assert_eq!(window_words(86_400), "1 day");
        assert_eq!(window_words(7200), "2 hours");
        assert_eq!(window_words(90), "1m 30s");
    }

    #[test]
    fn limits_parse() {
        assert_eq!(
            ActivationLimit::parse("4/30d"),
            Some(ActivationLimit {
                count: 4,
                window: 30 * 86_400
            })
        );
        for bad in ["4", "0/30d", "x/30d", "4/soon", "4/0s", "-1/1d", "/1d"] {
            assert_eq!(ActivationLimit::parse(bad), None, "{bad}");
        }
    }
}
