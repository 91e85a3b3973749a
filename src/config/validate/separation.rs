//! Automation identities are service accounts and nothing else. An account
//! that is both auto-approved by policy and a person's part (requester,
//! approver, certifier) blurs who acted: a person could borrow the machine's
//! fast path, or the machine approve a person. So no automation identity is
//! among any role's people, directly or through a group, and no group holds
//! both service accounts and people.
//!
//! `"*"` names nobody in particular and is not counted.

use super::*;

/// How one identity comes to be in one list of one role.
struct Part {
    role: String,
    /// "automation", "requester", "approver" or "certifier".
    what: &'static str,
    /// The group it came through, when not named directly.
    via: Option<String>,
}

impl Part {
    fn describe(&self) -> String {
        let via = self
            .via
            .as_ref()
            .map(|g| format!(" through @{g}"))
            .unwrap_or_default();
        format!("{} of role \"{}\"{via}", self.what, self.role)
    }
}

/// Where `who` in `p` came from: written directly, or the first group holding it.
fn via(p: &Principals, who: &str, groups: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    if p.written.iter().any(|w| w == who) {
        return None;
    }
    p.written
        .iter()
        .filter_map(|w| w.strip_prefix('@'))
        .find(|g| groups.get(*g).is_some_and(|m| m.contains(who)))
        .map(str::to_string)
}

/// Every automation identity's parts and every person's parts, per identity.
fn parts(
    built: &BTreeMap<String, RolePolicy>,
    groups: &BTreeMap<String, BTreeSet<String>>,
) -> (BTreeMap<String, Vec<Part>>, BTreeMap<String, Vec<Part>>) {
    let (mut machines, mut people) = (BTreeMap::new(), BTreeMap::new());
    for role in built.values() {
        let lists = [
            ("automation", &role.automation.identities),
            ("requester", &role.requesters),
            ("approver", &role.approvers),
            ("certifier", &role.certifiers),
        ];
        for (what, p) in lists {
            let into = if what == "automation" {
                &mut machines
            } else {
                &mut people
            };
            for who in &p.users {
                into.entry(who.clone()).or_insert_with(Vec::new).push(Part {
                    role: role.name.clone(),
                    what,
                    via: via(p, who, groups),
                });
            }
        }
    }
    (machines, people)
}

/// Refuses dual-use identities and mixed groups, each problem at the line that
/// makes the identity automation (or the group's line), naming the fix.
pub(super) fn separate(
    ctx: &mut Ctx,
    raw_groups: &RawGroups,
    raw_roles: &[Spanned<RawRole>],
    built: &BTreeMap<String, RolePolicy>,
    groups: &BTreeMap<String, BTreeSet<String>>,
) {
    let (machines, people) = parts(built, groups);
    for (who, auto) in &machines {
        let Some(human) = people.get(who) else {
            continue;
        };
        let first = &auto[0];
        let list = |ps: &[Part]| ps.iter().map(Part::describe).collect::<Vec<_>>().join(", ");
        // A service account's own name needs no renaming example.
        let example = if who.starts_with("svc") {
            String::new()
        } else {
            format!(" (e.g. \"svc-{who}\")")
        };
        let message = format!(
            "{who} is an automation identity ({}) and also {}; an automation identity is a service account used for nothing else (it may request its roles without being a requester): take {who} out of those lists, or, if {who} is a person, give the automation an account of its own{example}",
            list(auto),
            list(human),
        );
        let at = raw_roles
            .iter()
            .find(|r| *r.get_ref().name.get_ref() == first.role)
            .and_then(|r| r.get_ref().automation.as_ref());
        match at {
            Some(span) => ctx.at(span, message),
            None => ctx.nowhere(message),
        }
    }
    let Some(raw_groups) = raw_groups else {
        return;
    };
    for (name, members) in raw_groups.get_ref() {
        let Some(set) = groups.get(name) else {
            continue;
        };
        let (bots, humans): (Vec<&String>, Vec<&String>) =
            set.iter().partition(|m| machines.contains_key(*m));
        if bots.is_empty() || humans.is_empty() {
            continue;
        }
        let join = |v: &[&String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        let bots_list = bots
            .iter()
            .map(|b| format!("\"{b}\""))
            .collect::<Vec<_>>()
            .join(", ");
        ctx.at(members, format!(
            "group \"{name}\" mixes automation identities ({}) and people ({}); keep service accounts in a group of their own, e.g. bots = [{bots_list}], and name that group in automation",
            join(&bots),
            join(&humans),
        ));
    }
}
