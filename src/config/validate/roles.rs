//! `[[roles]]`: TTLs, conditions, tickets, who may request, approve and
//! certify (groups expanded), automation and vendor settings.

use super::*;

/// `[[roles]]` (and the `[groups]` they name): at least one role, each valid
/// on its own and workable as a whole.
pub(super) fn build_roles(
    ctx: &mut Ctx,
    groups: &RawGroups,
    roles: &Option<Vec<Spanned<RawRole>>>,
    backends: &BTreeMap<String, BackendConfig>,
    raw_backends: &BTreeMap<String, Spanned<RawBackend>>,
    demo_personas: &Option<Vec<String>>,
) -> BTreeMap<String, RolePolicy> {
    let people = People::new(ctx, groups);
    let name_re = Regex::new(r"^[a-z0-9][a-z0-9_.-]{0,62}$").expect("a valid literal pattern");
    let mut out = BTreeMap::new();
    let Some(roles) = roles else {
        ctx.nowhere(
            "no roles are defined; add at least one [[roles]] table (see `breakglass init`)",
        );
        return out;
    };
    for sr in roles {
        let r = sr.get_ref();
        let name = r.name.get_ref().clone();
        for misplaced in [&r.approval_signing, &r.allowed_signers]
            .into_iter()
            .flatten()
        {
            ctx.at(misplaced, format!("approval_signing and allowed_signers are top-level keys, but this line is inside role \"{name}\"; move it above the first [table] of the file"));
        }
        if !name_re.is_match(&name) {
            ctx.at(&r.name, format!("role name \"{name}\" must be lower-case letters, digits, '-', '_' or '.', at most 63 characters"));
        }
        if out.contains_key(&name) {
            ctx.at(
                &r.name,
                format!("role \"{name}\" is defined twice; role names must be unique"),
            );
        }
        let role = role(
            ctx,
            sr,
            name,
            &people,
            backends,
            raw_backends,
            demo_personas,
        );
        out.insert(role.name.clone(), role);
    }
    super::separation::separate(ctx, groups, roles, &out, &people.groups);
    out
}

/// One role, every field checked (problems recorded, defaults filled in so the
/// rest can still be checked).
fn role(
    ctx: &mut Ctx,
    sr: &Spanned<RawRole>,
    name: String,
    people: &People,
    backends: &BTreeMap<String, BackendConfig>,
    raw_backends: &BTreeMap<String, Spanned<RawBackend>>,
    demo_personas: &Option<Vec<String>>,
) -> RolePolicy {
    let r = sr.get_ref();
    let backend = backend(ctx, sr, &name, backends, raw_backends);
    let ttls = ttls(ctx, sr, &name);
    let conditions = conditions(ctx, sr, &name);
    let ticket_pattern = ticket_pattern(ctx, r, &name);
    let vendor = vendor::vendor_policy(ctx, r, &name, ttls.max);
    let requesters = people.principals(ctx, &r.requesters, "requesters", sr);
    let approvers = people.principals(ctx, &r.approvers, "approvers", sr);
    let certifiers = people.principals(ctx, &r.certifiers, "certifiers", sr);
    let automation = automation_policy(ctx, r, &name, ttls.max, &conditions, |ctx, f| {
        people.principals(ctx, f, "automation", sr)
    });
    let approvals_required = approvals_required(ctx, r, &name);
    let max_activations = activation_limit(ctx, &r.max_activations, "max_activations", &name);
    let max_activations_per_person = activation_limit(
        ctx,
        &r.max_activations_per_person,
        "max_activations_per_person",
        &name,
    );
    let cast = Cast {
        requesters: &requesters,
        approvers: &approvers,
        certifiers: &certifiers,
        automation: &automation.identities,
    };
    // Routine use beyond a bound needs one approval more: it must be reachable.
    let routine = max_activations.is_some() || max_activations_per_person.is_some();
    workable(ctx, sr, &name, &cast, approvals_required, routine);
    if let Some(personas) = demo_personas {
        demo_cast(ctx, &name, &cast, personas);
    }
    let (require_open_incident, revoke_on_resolve) = incident_policy(ctx, r, &name);
    let scope = scope(ctx, sr, &name, backends.get(&backend));
    let drill = drill_policy(ctx, r, &name);
    RolePolicy {
        name,
        description: r.description.clone(),
        backend,
        scope,
        default_ttl: ttls.default.unwrap_or(0),
        max_ttl: ttls.max.unwrap_or(0),
        max_extensions: r.max_extensions,
        max_total: ttls.total.unwrap_or(0),
        min_ttl: ttls.min,
        conditions,
        ticket_pattern,
        requesters,
        approvers,
        certifiers,
        approvals_required,
        request_ttl: ttls.request.unwrap_or(1800),
        rotate_after_use: r.rotate_after_use,
        require_open_incident,
        revoke_on_resolve,
        require_alert_delivery: r.require_alert_delivery,
        automation,
        vendor,
        max_activations,
        max_activations_per_person,
        drill,
    }
}

/// `drill_approvals` (0 to 10, default 1) and `drill_every`.
fn drill_policy(ctx: &mut Ctx, r: &RawRole, name: &str) -> crate::domain::drill::DrillPolicy {
    let approvals = match &r.drill_approvals {
        None => 1,
        Some(n) if (0..=10).contains(n.get_ref()) => *n.get_ref() as u32,
        Some(n) => {
            ctx.at(
                n,
                format!("role \"{name}\": drill_approvals must be between 0 and 10 (0: only the broker's scheduled drills run unapproved)"),
            );
            1
        }
    };
    let every = r
        .drill_every
        .as_ref()
        .and_then(|t| parse_duration(ctx, t, "drill_every"));
    if let (Some(t), Some(e)) = (&r.drill_every, every) {
        if e < 3600 {
            ctx.at(
                t,
                format!("role \"{name}\": drill_every = \"{}\" is shorter than an hour; drills are checks between emergencies, e.g. \"30d\"", t.get_ref()),
            );
        }
    }
    crate::domain::drill::DrillPolicy { approvals, every }
}

/// `max_activations` and `max_activations_per_person`: "N/window", N >= 1.
fn activation_limit(
    ctx: &mut Ctx,
    field: &Option<Spanned<String>>,
    key: &str,
    name: &str,
) -> Option<crate::domain::routine::ActivationLimit> {
    let f = field.as_ref()?;
    let parsed = crate::domain::routine::ActivationLimit::parse(f.get_ref());
    if parsed.is_none() {
        ctx.at(f, format!(
            "role \"{name}\": {key} = \"{}\" is not N/window; write e.g. \"4/30d\" (at most 4 activations in any 30 days, then one more approval)",
            f.get_ref()
        ));
    }
    parsed
}

/// The users and groups principals may name.
struct People {
    user_re: Regex,
    groups: BTreeMap<String, BTreeSet<String>>,
}

impl People {
    /// `[groups]`: each group lists at least one user, and only user names.
    fn new(ctx: &mut Ctx, groups: &RawGroups) -> Self {
        let user_re =
            Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$").expect("a valid literal pattern");
        let mut group_map = BTreeMap::new();
        if let Some(g) = groups {
            for (name, members) in g.get_ref() {
                if members.get_ref().is_empty() {
                    ctx.at(
                        members,
                        format!(
                            "group \"{name}\" is empty; list its members, e.g. {name} = [\"alice\"]"
                        ),
                    );
                }
                for m in members.get_ref() {
                    if !user_re.is_match(m) {
                        ctx.at(members, format!("group \"{name}\": \"{m}\" is not a user name; groups list user names, not other groups"));
                    }
                }
                group_map.insert(name.clone(), members.get_ref().iter().cloned().collect());
            }
        }
        People {
            user_re,
            groups: group_map,
        }
    }

    /// A principal list (`requesters`, ...): present, not empty, and each entry
    /// a user, a defined @group or `*`.
    fn principals(
        &self,
        ctx: &mut Ctx,
        field: &Option<Spanned<Vec<String>>>,
        what: &str,
        role: &Spanned<RawRole>,
    ) -> Principals {
        let Some(list) = field else {
            ctx.at(
                role,
                format!(
                    "role \"{}\" needs {what} = [\"@group\", \"user\"]",
                    role.get_ref().name.get_ref()
                ),
            );
            return Principals::default();
        };
        let mut p = Principals {
            written: list.get_ref().clone(),
            ..Default::default()
        };
        if list.get_ref().is_empty() {
            ctx.at(
                list,
                format!("{what} is empty; name at least one user or @group"),
            );
        }
        for entry in list.get_ref() {
            if entry == "*" {
                p.anyone = true;
            } else if let Some(g) = entry.strip_prefix('@') {
                match self.groups.get(g) {
                    Some(members) => p.users.extend(members.iter().cloned()),
                    None => {
                        let known: Vec<_> = self.groups.keys().map(|k| format!("@{k}")).collect();
                        ctx.at(list, format!(
                            "{what}: group \"{g}\" is not defined; define it under [groups] or use one of: {}",
                            if known.is_empty() { "(no groups defined)".to_string() } else { known.join(", ") }
                        ));
                    }
                }
            } else if self.user_re.is_match(entry) {
                p.users.insert(entry.clone());
            } else {
                ctx.at(
                    list,
                    format!("{what}: \"{entry}\" is not a user name, @group or \"*\""),
                );
            }
        }
        p
    }
}

/// `backend`: present and defined under `[backends]` (an empty name when absent).
fn backend(
    ctx: &mut Ctx,
    sr: &Spanned<RawRole>,
    name: &str,
    backends: &BTreeMap<String, BackendConfig>,
    raw_backends: &BTreeMap<String, Spanned<RawBackend>>,
) -> String {
    let Some(b) = &sr.get_ref().backend else {
        ctx.at(
            sr,
            format!("role \"{name}\" needs backend = \"<one of [backends]>\""),
        );
        return String::new();
    };
    if !backends.contains_key(b.get_ref()) && !raw_backends.contains_key(b.get_ref()) {
        let known: Vec<_> = raw_backends.keys().cloned().collect();
        ctx.at(b, format!(
            "role \"{name}\": backend \"{}\" is not defined; define [backends.{}] or use one of: {}",
            b.get_ref(), b.get_ref(),
            if known.is_empty() { "(none defined)".into() } else { known.join(", ") }
        ));
    }
    b.get_ref().clone()
}

/// A role's durations in seconds; `None` where missing or invalid.
struct Ttls {
    default: Option<i64>,
    max: Option<i64>,
    total: Option<i64>,
    request: Option<i64>,
    /// Always set: `min_ttl`, else 1m or default_ttl when that is shorter.
    min: i64,
}

/// `min_ttl` when a role does not set it.
const DEFAULT_MIN_TTL: i64 = 60;

/// `default_ttl` and `max_ttl` are required and ordered; `max_total` (default
/// twice max_ttl) is at least max_ttl; `request_ttl` defaults to 30 minutes;
/// `min_ttl` (default 1m, or default_ttl when shorter) is at most default_ttl.
fn ttls(ctx: &mut Ctx, sr: &Spanned<RawRole>, name: &str) -> Ttls {
    use crate::domain::time::human;
    let r = sr.get_ref();
    let default = match &r.default_ttl {
        Some(t) => parse_duration(ctx, t, "default_ttl"),
        None => {
            ctx.at(sr, format!("role \"{name}\" needs default_ttl = \"15m\""));
            None
        }
    };
    let max = match &r.max_ttl {
        Some(t) => parse_duration(ctx, t, "max_ttl"),
        None => {
            ctx.at(sr, format!("role \"{name}\" needs max_ttl = \"30m\""));
            None
        }
    };
    if let (Some(d), Some(m), Some(span)) = (default, max, &r.default_ttl) {
        if d > m {
            ctx.at(span, format!(
                "role \"{name}\": default_ttl {} is longer than max_ttl {}; write default_ttl = \"{}\" or less",
                human(d), human(m), human(m)
            ));
        }
    }
    let total = match &r.max_total {
        Some(t) => {
            let v = parse_duration(ctx, t, "max_total");
            if let (Some(v), Some(m)) = (v, max) {
                if v < m {
                    ctx.at(
                        t,
                        format!(
                            "role \"{name}\": max_total must be at least max_ttl ({})",
                            human(m)
                        ),
                    );
                }
            }
            v
        }
        None => max.map(|m| m * 2),
    };
    let request = match &r.request_ttl {
        Some(t) => parse_duration(ctx, t, "request_ttl"),
        None => Some(30 * 60),
    };
    let min = match &r.min_ttl {
        Some(t) => {
            let v = parse_duration(ctx, t, "min_ttl");
            if let (Some(v), Some(d)) = (v, default) {
                if v > d {
                    ctx.at(t, format!(
                        "role \"{name}\": min_ttl {} is longer than default_ttl {}; write min_ttl = \"{}\" or less",
                        human(v), human(d), human(d)
                    ));
                }
            }
            v.unwrap_or(DEFAULT_MIN_TTL)
        }
        None => default.map_or(DEFAULT_MIN_TTL, |d| d.min(DEFAULT_MIN_TTL)),
    };
    Ttls {
        default,
        max,
        total,
        request,
        min,
    }
}

/// `conditions`: required, at least one, none blank.
fn conditions(ctx: &mut Ctx, sr: &Spanned<RawRole>, name: &str) -> Vec<String> {
    match &sr.get_ref().conditions {
        Some(c) if !c.get_ref().is_empty() && c.get_ref().iter().all(|x| !x.trim().is_empty()) => {
            c.get_ref().clone()
        }
        Some(c) => {
            ctx.at(c, format!("role \"{name}\": conditions must list at least one non-empty condition, e.g. [\"production outage\"]"));
            vec![]
        }
        None => {
            ctx.at(sr, format!("role \"{name}\" needs conditions = [\"production outage\", \"locked-out administrators\"]"));
            vec![]
        }
    }
}

/// `ticket_pattern`: an anchored, valid regular expression.
fn ticket_pattern(ctx: &mut Ctx, r: &RawRole, name: &str) -> Option<Regex> {
    let p = r.ticket_pattern.as_ref()?;
    let pat = p.get_ref();
    if !pat.starts_with('^') || !pat.ends_with('$') {
        ctx.at(p, format!("role \"{name}\": ticket_pattern must be anchored so partial matches do not pass; write \"^{}$\"", pat.trim_start_matches('^').trim_end_matches('$')));
        return None;
    }
    match Regex::new(pat) {
        Ok(re) => Some(re),
        Err(e) => {
            ctx.at(
                p,
                format!("role \"{name}\": ticket_pattern is not a valid regular expression: {e}"),
            );
            None
        }
    }
}

/// `approvals_required`: 1 (the default) to 10.
fn approvals_required(ctx: &mut Ctx, r: &RawRole, name: &str) -> u32 {
    match &r.approvals_required {
        None => 1,
        Some(n) if *n.get_ref() >= 1 && *n.get_ref() <= 10 => *n.get_ref() as u32,
        Some(n) => {
            ctx.at(
                n,
                format!("role \"{name}\": approvals_required must be between 1 and 10"),
            );
            1
        }
    }
}

/// Everyone a role names.
struct Cast<'a> {
    requesters: &'a Principals,
    approvers: &'a Principals,
    certifiers: &'a Principals,
    automation: &'a Principals,
}

/// Every requester can collect enough approvals from others, and has someone
/// else to certify: a policy where they could not is a trap at 3 a.m.
fn workable(
    ctx: &mut Ctx,
    sr: &Spanned<RawRole>,
    name: &str,
    cast: &Cast,
    approvals_required: u32,
    routine: bool,
) {
    let r = sr.get_ref();
    let (needed, why) = if routine {
        (
            approvals_required + 1,
            " (one more than approvals_required: routine use beyond max_activations needs it)",
        )
    } else {
        (approvals_required, "")
    };
    // Automation identities may request too (implicitly), and fall back to
    // human approvers whenever policy does not approve them.
    if !cast.approvers.anyone && !cast.requesters.anyone {
        for who in cast.requesters.users.iter().chain(&cast.automation.users) {
            let others = cast.approvers.users.iter().filter(|a| *a != who).count() as u32;
            if others < needed {
                let span = r
                    .approvers
                    .as_ref()
                    .map(|s| s.span().start)
                    .unwrap_or(sr.span().start);
                let line = Some(ctx.line_of(span));
                ctx.problems.push(Problem { file: ctx.file.clone(), line, message: format!(
                    "role \"{name}\": {who} may request it but only {others} other approver(s) exist for {needed} required approvals{why}; add approvers or lower approvals_required"
                )});
            }
        }
    }
    if !cast.certifiers.anyone && !cast.requesters.anyone {
        for who in &cast.requesters.users {
            if cast.certifiers.users.iter().all(|c| c == who) {
                let span = r
                    .certifiers
                    .as_ref()
                    .map(|s| s.span().start)
                    .unwrap_or(sr.span().start);
                let line = Some(ctx.line_of(span));
                ctx.problems.push(Problem { file: ctx.file.clone(), line, message: format!(
                    "role \"{name}\": {who} may request it but nobody else can certify it; add a certifier other than {who}"
                )});
            }
        }
    }
}

/// Demo mode: everyone the role names is a demo persona.
fn demo_cast(ctx: &mut Ctx, name: &str, cast: &Cast, personas: &[String]) {
    for p in cast
        .requesters
        .users
        .iter()
        .chain(&cast.automation.users)
        .chain(&cast.approvers.users)
        .chain(&cast.certifiers.users)
    {
        if !personas.contains(p) {
            ctx.nowhere(format!(
                "role \"{name}\" names {p}, who is not a demo persona; add {p} to [demo] personas"
            ));
        }
    }
}

/// `require_open_incident` and `revoke_on_resolve` (both default true) do not
/// contradict each other: access that may start on a resolved incident would
/// be revoked by the next sweep if revoke_on_resolve stayed on.
fn incident_policy(ctx: &mut Ctx, r: &RawRole, name: &str) -> (bool, bool) {
    let require_open_incident = r
        .require_open_incident
        .as_ref()
        .is_none_or(|b| *b.get_ref());
    let revoke_on_resolve = r.revoke_on_resolve.as_ref().is_none_or(|b| *b.get_ref());
    if let (Some(req), true) = (&r.require_open_incident, revoke_on_resolve) {
        if !*req.get_ref() {
            ctx.at(req, format!(
                "role \"{name}\": require_open_incident = false lets access start on a resolved incident, which revoke_on_resolve (default true) would end at the next sweep; also write revoke_on_resolve = false"
            ));
        }
    }
    (require_open_incident, revoke_on_resolve)
}

/// `scope`: what the role's backend can read (Vault policies, PostgreSQL grants,
/// SSH principals and options).
fn scope(
    ctx: &mut Ctx,
    sr: &Spanned<RawRole>,
    name: &str,
    backend: Option<&BackendConfig>,
) -> serde_json::Value {
    let scope = sr
        .get_ref()
        .scope
        .as_ref()
        .map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
        .unwrap_or(serde_json::Value::Object(Default::default()));
    let checked = match backend {
        Some(BackendConfig::Vault { .. }) => crate::backend::vault::scope_policies(&scope).err(),
        Some(BackendConfig::Postgres(_)) => crate::backend::postgres::Scope::parse(&scope).err(),
        Some(BackendConfig::SshCa(_)) => crate::backend::ssh_ca::Scope::parse(&scope).err(),
        _ => None,
    };
    if let Some(m) = checked {
        ctx.at(sr, format!("role \"{name}\": {m}"));
    }
    scope
}

/// The automation fields of one role. `identities` is the role's principal
/// parser (groups expanded) for the `automation` list.
pub(super) fn automation_policy(
    ctx: &mut Ctx,
    r: &RawRole,
    name: &str,
    max_ttl: Option<i64>,
    conditions: &[String],
    identities: impl FnOnce(&mut Ctx, &Option<Spanned<Vec<String>>>) -> Principals,
) -> crate::domain::policy::Automation {
    use crate::domain::time::human;
    let role_max = max_ttl.unwrap_or(0);
    let mut a = crate::domain::policy::Automation {
        rate_count: 3,
        rate_window: 3600,
        max_ttl: role_max,
        certify_within: 24 * 3600,
        ..Default::default()
    };
    if let Some(list) = &r.automation {
        if list.get_ref().iter().any(|e| e == "*") {
            ctx.at(list, format!("role \"{name}\": automation cannot be \"*\"; name the service accounts (or an @group of them), since a person is never auto-approved"));
        } else {
            a.identities = identities(ctx, &r.automation);
        }
    }
    if let Some(c) = &r.auto_approve_conditions {
        for cond in c.get_ref() {
            match conditions.iter().find(|k| k.eq_ignore_ascii_case(cond.trim())) {
                Some(k) => a.conditions.push(k.clone()),
                None => ctx.at(c, format!(
                    "role \"{name}\": auto_approve_conditions lists \"{cond}\", which is not one of its conditions ({}); auto-approved conditions must be a subset of conditions",
                    conditions.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ")
                )),
            }
        }
        if r.automation.is_none() {
            ctx.at(c, format!("role \"{name}\": auto_approve_conditions needs automation = [\"svc-account\"] naming who may be auto-approved"));
        }
    } else if let Some(list) = &r.automation {
        ctx.at(list, format!("role \"{name}\": automation needs auto_approve_conditions = [\"...\"] (a subset of conditions)"));
    }
    if let Some(rate) = &r.auto_approve_rate {
        let parsed = rate.get_ref().split_once('/').and_then(|(n, w)| {
            let n: u32 = n.trim().parse().ok().filter(|n| *n >= 1)?;
            let w = crate::domain::duration::parse_secs(w).ok()?;
            Some((n, w))
        });
        match parsed {
            Some((n, w)) => (a.rate_count, a.rate_window) = (n, w),
            None => ctx.at(rate, format!(
                "role \"{name}\": auto_approve_rate = \"{}\" is not N/window; write e.g. \"3/1h\" (at most 3 auto-approvals per hour)",
                rate.get_ref()
            )),
        }
    }
    if let Some(t) = &r.auto_max_ttl {
        if let Some(v) = parse_duration(ctx, t, "auto_max_ttl") {
            if max_ttl.is_some() && v > role_max {
                ctx.at(t, format!(
                    "role \"{name}\": auto_max_ttl {} is longer than max_ttl {}; write auto_max_ttl = \"{}\" or less",
                    human(v), human(role_max), human(role_max)
                ));
            } else {
                a.max_ttl = v;
            }
        }
    }
    if let Some(t) = &r.certify_within {
        if let Some(v) = parse_duration(ctx, t, "certify_within") {
            a.certify_within = v;
        }
    }
    a
}
