//! Human and JSON renderings for the CLI. Text that came from elsewhere
//! (incident titles, reasons, backend messages) is sanitised before printing.

use crate::audit::Broken;
use crate::backend::Credential;
use crate::cli::stdio::{errln, outln};
use crate::cli::still_active::Enforcer;
use crate::domain::time::{format_hms, human, when};
use crate::domain::{Request, State};
use crate::engine::{QueueItem, RecoveryReport, RequestView, RoleView};
use crate::incident::{Incident, SourceError};
use crate::sanitize;
use crate::service::Service;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::path::Path;

pub(crate) fn print_json(v: &serde_json::Value) {
    let text = serde_json::to_string_pretty(v).expect("a Value serialises");
    outln!("{}", sanitize::json_for_terminal(&text));
}

fn age(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        None => "-".into(),
        Some(t) => {
            let s = (now - t).num_seconds().max(0);
            if s < 3600 {
                format!("{}m", s / 60)
            } else if s < 86400 {
                format!("{}h{:02}m", s / 3600, (s / 60) % 60)
            } else {
                format!("{}d", s / 86400)
            }
        }
    }
}

pub fn incidents(
    list: &[Incident],
    errors: &[SourceError],
    warnings: &[String],
    now: DateTime<Utc>,
    json: bool,
) {
    if json {
        let errs: Vec<_> = errors
            .iter()
            .map(|e| json!({"source": e.source_name, "error": sanitize::line(&e.message, 300)}))
            .collect();
        print_json(&json!({"incidents": list, "source_errors": errs, "source_warnings": warnings}));
        return;
    }
    for w in warnings {
        errln!("warning: incident source {w}");
    }
    for e in errors {
        errln!(
            "source {} is unavailable: {}",
            e.source_name,
            sanitize::line(&e.message, 300)
        );
    }
    if list.is_empty() {
        outln!("no open incidents");
        return;
    }
    outln!(
        "{:<12} {:<5} {:<13} {:>6}  {:<16} TITLE",
        "ID",
        "SEV",
        "STATUS",
        "AGE",
        "SOURCE"
    );
    for i in list {
        outln!(
            "{:<12} {:<5} {:<13} {:>6}  {:<16} {}",
            i.id,
            i.severity,
            format!("{:?}", i.status).to_lowercase(),
            age(i.opened_at, now),
            i.source,
            i.title
        );
    }
}

/// Red on a terminal (unless NO_COLOR is set), plain text elsewhere: a failed
/// drill must stand out on the screen without escape codes in pipes and files.
fn red(s: &str) -> String {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if std::io::stdout().is_terminal() && !no_color {
        format!("\u{1b}[1;31m{s}\u{1b}[0m")
    } else {
        s.to_string()
    }
}

pub fn roles(roles: &[RoleView], now: DateTime<Utc>, json: bool) {
    if json {
        print_json(&json!({ "roles": roles, "automation": automation_identities(roles) }));
        return;
    }
    for r in roles {
        let state = match &r.lock_reason {
            Some(why) => format!("LOCKED: {why}"),
            None => "available".into(),
        };
        outln!("{}  [{}]", r.name, state);
        if let Some(o) = r.drill.last.as_ref().filter(|_| r.drill.failing) {
            // Loud: the path an emergency needs is broken.
            outln!(
                "{}",
                red(&format!(
                    "    DRILL FAILED at {} ({}): {}",
                    o.failed_step.map(|s| s.as_str()).unwrap_or("?"),
                    when(o.at, now),
                    sanitize::line(o.error.as_deref().unwrap_or(""), 300)
                ))
            );
        }
        outln!("    {}", sanitize::line(&r.description, 300));
        outln!(
            "    backend {}, TTL {} ({} to {}), {} approval(s){}",
            r.backend,
            human(r.default_ttl_seconds),
            human(r.min_ttl_seconds.max(1)),
            human(r.max_ttl_seconds),
            r.approvals_required,
            r.ticket_pattern
                .as_ref()
                .map(|p| format!(", manual ticket {p}"))
                .unwrap_or_default()
        );
        outln!(
            "    conditions: {}",
            sanitize::line(&r.conditions.join("; "), 500)
        );
        if r.drill.last.is_some() || r.drill_every_seconds.is_some() {
            outln!(
                "    {}{}",
                r.drill.describe(now),
                r.drill_every_seconds
                    .map(|e| format!("; drilled every {}", human(e)))
                    .unwrap_or_default()
            );
        }
        if let Some(u) = &r.routine {
            outln!(
                "    routine use: a request now would be the {}",
                u.describe_with("your")
            );
        }
        if !r.people.automation.is_empty() {
            outln!(
                "    automation (approved by policy): {}",
                sanitize::line(&r.people.automation.join(", "), 300)
            );
        }
        if r.vendor {
            match &r.certified {
                Some(c) => outln!(
                    "    vendor role: certified by {} on {}, next due {}",
                    c.by,
                    when(c.at, now),
                    when(c.due, now)
                ),
                None => outln!("    vendor role: never certified"),
            }
        }
    }
}

/// Each automation identity with the roles it may recover, for `roles --json`:
/// `[{"identity": "svc-failover", "roles": ["k8s-cluster-admin"]}]`.
fn automation_identities(roles: &[RoleView]) -> serde_json::Value {
    let mut by_identity: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for r in roles {
        for who in &r.people.automation {
            by_identity.entry(who).or_default().push(&r.name);
        }
    }
    by_identity
        .into_iter()
        .map(|(identity, roles)| json!({ "identity": identity, "roles": roles }))
        .collect()
}

/// An instant as a signed document wrote it (RFC 3339), said as people read
/// times; the text itself, cleaned, when it is not one.
pub fn signed_instant(text: &str, now: DateTime<Utc>) -> String {
    DateTime::parse_from_rfc3339(text)
        .map(|t| when(t.to_utc(), now))
        .unwrap_or_else(|_| sanitize::line(text, 64))
}

pub fn recertified(
    role: &str,
    c: &crate::engine::RoleCertification,
    now: DateTime<Utc>,
    json: bool,
) {
    if json {
        print_json(&json!({ "role": role, "certification": c }));
        return;
    }
    outln!(
        "Role {role} recertified by {} on {}; next recertification due {}.",
        c.by,
        when(c.at, now),
        when(c.due, now)
    );
}

/// One line that says where a request stands and what happens next.
pub fn summary(svc: &Service, r: &Request) -> String {
    let now = svc.now();
    let next = match r.state {
        State::Pending => format!(
            "{} of {} approvals{}; approvers run `breakglass approve {}`",
            r.approvals.len(),
            r.approvals_required,
            if r.approvals.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.approvers().join(", "))
            },
            r.id
        ),
        // A drill's credential goes to the probe only: it runs as a drill.
        State::Approved if r.drill.is_some() => format!(
            "approved by {}; {} runs the drill with `breakglass drill {}`",
            r.approvers().join(", "),
            r.requester,
            r.role
        ),
        State::Approved => format!(
            "approved by {}; {} activates with `breakglass activate {}`",
            if r.auto_approved {
                "policy (automation; certification due by ".to_string()
                    + &r.certify_by.map(|d| when(d, now)).unwrap_or_default()
                    + ")"
            } else {
                r.approvers().join(", ")
            },
            r.requester,
            r.id
        ),
        State::Active => format!(
            "active until {}",
            r.expires_at().map(|e| when(e, now)).unwrap_or_default()
        ),
        State::Revoking => format!(
            "REVOCATION PENDING: {} (retrying)",
            r.grant
                .as_ref()
                .and_then(|g| g.last_error.clone())
                .map(|e| sanitize::line(&e, 300))
                .unwrap_or_else(|| "in progress".into())
        ),
        State::Ended => format!(
            "access ended and revoked; {} owes the after-action review (`breakglass review {}`)",
            r.requester, r.id
        ),
        State::Reviewed => match r.invalidation.as_ref().filter(|i| i.pending()) {
            Some(inv) => format!(
                "reviewed; CREDENTIALS COPIED ({}): {}; certification waits for it (`breakglass sweep` retries)",
                sanitize::line(&inv.copied_where, 200),
                sanitize::line(&inv.status(), 300)
            ),
            None => format!("reviewed; a certifier runs `breakglass certify {}`", r.id),
        },
        State::Certified => "certified; the role is unlocked".into(),
        State::Failed => format!(
            "failed: {}",
            r.grant
                .as_ref()
                .and_then(|g| g.last_error.clone())
                .map(|e| sanitize::line(&e, 300))
                .unwrap_or_default()
        ),
        State::Denied => format!(
            "denied: {}",
            r.denial
                .as_ref()
                .map(|d| sanitize::line(&d.comment, 300))
                .unwrap_or_default()
        ),
        other => other.to_string(),
    };
    format!("{} {} [{}] {}", r.id, r.role, r.state, next)
}

pub fn request_result(svc: &Service, r: &Request, json: bool) {
    if json {
        print_json(&json!({ "request": svc.view(r.clone()) }));
    } else {
        outln!("{}", summary(svc, r));
    }
}

/// Where a drill stands, and the exit code that says it: passed (0), waiting
/// for approval (5), failed (4, with the step and what it said).
pub fn drill(svc: &Service, r: &Request, json: bool) -> i32 {
    let outcome = r.drill.as_ref().and_then(|d| d.outcome.as_ref());
    let code = match outcome {
        None => crate::exit::PENDING,
        Some(o) if o.passed() => crate::exit::OK,
        Some(_) => crate::exit::BACKEND,
    };
    if json {
        print_json(&json!({ "request": svc.view(r.clone()), "drill": r.drill }));
        return code;
    }
    match outcome {
        None => outln!(
            "{} (drill of {}) is {}: it needs {} approval(s); once approved, run `breakglass drill {}` again",
            r.id,
            r.role,
            r.state,
            r.approvals_required,
            r.role
        ),
        Some(o) if o.passed() => outln!(
            "{}: drill of {} passed: granted, the credential worked, revoked, and it no longer works",
            r.id,
            r.role
        ),
        Some(o) => outln!(
            "{}",
            red(&format!(
                "{}: drill of {} FAILED at {}: {}",
                r.id,
                r.role,
                o.failed_step.map(|s| s.as_str()).unwrap_or("?"),
                sanitize::line(o.error.as_deref().unwrap_or(""), 500)
            ))
        ),
    }
    code
}

/// A credential just granted, once; then how to end it now (`revoke`, a
/// command as printed) and what ends it at expiry once this terminal closes.
pub fn credential(
    a: &RequestView,
    cred: &Credential,
    now: DateTime<Utc>,
    ending: Option<(&str, Enforcer)>,
    json: bool,
) {
    let r = &a.request;
    let until = r.expires_at().map(|e| when(e, now)).unwrap_or_default();
    if !crate::cli::may_print_credential(json) {
        outln!("{} is active until {until}", r.id);
        errln!("the credential was not printed: stdout is not a terminal (use --json in automation); it is not stored and cannot be shown again");
        return;
    }
    if json {
        let fields: serde_json::Map<_, _> = cred
            .reveal()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        print_json(&json!({ "request": a, "credential": fields }));
        return;
    }
    outln!("{} ACTIVE: {} until {until}", r.id, r.role);
    outln!("credential (shown once, never stored):");
    for (k, v) in cred.reveal() {
        // A key file (an SSH private key, a certificate) is printed as its lines,
        // below its name, so it can be pasted into a file as it is; each line is
        // still checked for controls.
        if v.contains('\n') {
            let lines: Vec<(String, bool)> = v
                .trim_end_matches('\n')
                .split('\n')
                .map(sanitize::secret_for_terminal)
                .collect();
            let note = if lines.iter().any(|(_, e)| *e) {
                "   (held control characters: shown escaped)"
            } else {
                ""
            };
            outln!("  {}:{note}", sanitize::line(k, 100));
            for (line, _) in lines {
                outln!("{line}");
            }
            continue;
        }
        // A backend's fields are untrusted: they must not act on the terminal.
        let (v, escaped) = sanitize::secret_for_terminal(v);
        let note = if escaped {
            "   (held control characters: shown escaped)"
        } else {
            ""
        };
        outln!("  {}: {v}{note}", sanitize::line(k, 100));
    }
    if let Some((revoke, enforcer)) = ending {
        outln!("End it early with: {revoke}");
        outln!("{}", enforcer.sentence());
    }
}

pub fn status_one(a: &RequestView, undelivered: u64, now: DateTime<Utc>, json: bool) {
    let r = &a.request;
    if json {
        print_json(&json!({ "request": a, "undelivered_alerts": undelivered }));
        return;
    }
    outln!("{}  {}  [{}]", r.id, r.role, r.state);
    outln!("  incident:   {}", sanitize::line(&r.incident.label(), 200));
    outln!("  condition:  {}", r.condition);
    outln!("  reason:     {}", sanitize::line(&r.reason, 500));
    outln!("  requester:  {}", r.requester);
    if let Some(v) = &r.vendor {
        outln!(
            "  vendor:     {} ({})",
            sanitize::line(&v.name, 100),
            sanitize::line(&v.company, 100)
        );
    }
    outln!(
        "  approvals:  {} of {} {}",
        r.approvals.len(),
        r.approvals_required,
        r.approvers().join(", ")
    );
    if let Some(u) = &r.routine_use {
        outln!("  routine:    {}", u.describe(&r.requester));
    }
    if let Some(g) = &r.grant {
        if let Some(at) = g.granted_at {
            outln!("  granted:    {}", when(at, now));
        }
        if let Some(e) = g.expires_at {
            outln!("  expires:    {}", when(e, now));
        }
        if let Some(s) = a.remaining_seconds {
            outln!("  remaining:  {}", format_hms(chrono::Duration::seconds(s)));
        }
        for x in &g.extensions {
            outln!(
                "  extended:   +{} by {} ({})",
                human(x.seconds),
                x.by,
                sanitize::line(&x.reason, 200)
            );
        }
        if let Some(end) = &g.end {
            outln!(
                "  ended:      {} by {} ({})",
                when(end.at, now),
                end.by,
                sanitize::line(&end.reason, 200)
            );
        }
        if let Some(err) = &g.last_error {
            outln!("  last error: {}", sanitize::line(err, 300));
        }
    }
    if let Some(rv) = &r.review {
        outln!("  review:     by {} at {}", rv.by, when(rv.at, now));
        if rv.answers.credentials_copied {
            outln!(
                "  CREDENTIALS COPIED: yes, to {}",
                sanitize::line(&rv.answers.credentials_copied_where, 200)
            );
        }
    }
    if let Some(inv) = &r.invalidation {
        outln!("  invalidated: {}", sanitize::line(&inv.status(), 400));
        if let Some(t) = inv.next_attempt_at.filter(|_| inv.pending()) {
            outln!("  next try:   {}", when(t, now));
        }
    }
    if let Some(c) = &r.certification {
        outln!("  certified:  by {} at {}", c.by, when(c.at, now));
    }
    if r.state == State::Pending {
        outln!("  decide by:  {}", when(r.decide_by, now));
    }
    if undelivered > 0 {
        outln!("  WARNING: {undelivered} alert(s) not yet delivered to the SOC");
    }
}

pub fn status_list(list: &[RequestView], undelivered: u64, json: bool) {
    if json {
        print_json(&json!({ "requests": list, "undelivered_alerts": undelivered }));
        return;
    }
    if list.is_empty() {
        outln!("no open requests");
    }
    for a in list {
        let r = &a.request;
        let mut extra = match a.remaining_seconds {
            Some(s) => format!(" {} left", format_hms(chrono::Duration::seconds(s))),
            None => String::new(),
        };
        if r.invalidation.as_ref().is_some_and(|i| i.pending()) {
            extra.push_str(" credentials copied: invalidation pending");
        }
        outln!(
            "{:<8} {:<24} {:<10} {:<10}{}",
            r.id.to_string(),
            r.role,
            r.state.as_str(),
            r.requester,
            extra
        );
    }
    if undelivered > 0 {
        outln!("WARNING: {undelivered} alert(s) not yet delivered to the SOC");
    }
}

/// The certification queue: each review, its answers that need attention, the
/// invalidation of copied credentials, and what blocks certifying.
pub fn reviews(items: &[QueueItem], now: DateTime<Utc>, json: bool) {
    if json {
        print_json(&json!({ "reviews": items }));
        return;
    }
    if items.is_empty() {
        outln!("no after-action reviews waiting for certification");
    }
    for q in items {
        let r = &q.request;
        outln!("{} {} by {}", r.id, r.role, r.requester);
        if let Some(rv) = &r.review {
            let a = &rv.answers;
            outln!("  reviewed:   by {} at {}", rv.by, when(rv.at, now));
            outln!("  actions:    {}", sanitize::line(&a.actions_taken, 300));
            outln!(
                "  necessary:  {}",
                if a.access_necessary { "yes" } else { "NO" }
            );
            if a.credentials_copied {
                outln!(
                    "  CREDENTIALS COPIED: yes, to {}",
                    sanitize::line(&a.credentials_copied_where, 200)
                );
            } else {
                outln!("  credentials copied: no");
            }
        }
        if let Some(inv) = &r.invalidation {
            outln!("  invalidated: {}", sanitize::line(&inv.status(), 400));
        }
        match &q.blocked {
            Some(why) => outln!("  blocked:    {}", sanitize::line(why, 600)),
            None => outln!("  ready:      `breakglass certify {}`", r.id),
        }
    }
}

pub fn recovery_lines(rep: &RecoveryReport) -> Vec<String> {
    let mut out = vec![];
    for id in &rep.lapsed {
        out.push(format!("{id} lapsed without a decision"));
    }
    for id in &rep.interrupted_grants_failed {
        out.push(format!(
            "{id}: an interrupted grant was revoked and marked failed"
        ));
    }
    for id in &rep.expired_revoked {
        out.push(format!("{id} expired and was revoked"));
    }
    for id in &rep.resolved_revoked {
        out.push(format!("{id}: its incident was resolved; access revoked"));
    }
    for id in &rep.revokes_retried {
        out.push(format!("{id}: revocation completed on retry"));
    }
    for id in &rep.certification_overdue {
        out.push(format!(
            "{id}: certification of auto-approved access is overdue; its role is locked"
        ));
    }
    for id in &rep.invalidations_done {
        out.push(format!(
            "{id}: the credentials its review says were copied are invalidated"
        ));
    }
    for e in &rep.errors {
        out.push(format!("ERROR {}", sanitize::line(e, 500)));
    }
    out
}

pub fn recovery(rep: &RecoveryReport, json: bool) {
    if json {
        print_json(&json!({ "recovery": rep }));
        return;
    }
    let lines = recovery_lines(rep);
    if lines.is_empty() {
        outln!("sweep: nothing to do");
    }
    for l in lines {
        outln!("sweep: {l}");
    }
    if rep.alerts_delivered > 0 {
        outln!("sweep: {} alert(s) delivered", rep.alerts_delivered);
    }
}

pub fn audit_verify(count: u64, broken: Option<&Broken>, head: &str, json: bool) {
    if json {
        print_json(
            &json!({"ok": broken.is_none(), "verified_events": count, "broken": broken, "head": head}),
        );
        return;
    }
    match broken {
        None => outln!("audit chain verified: {count} event(s), head {head}"),
        Some(b) => outln!(
            "audit chain BROKEN at event #{}: {} ({count} event(s) verified before it)",
            b.seq,
            b.reason
        ),
    }
}

pub fn demo_intro(config: &Path, place: &str, exe: &str, json: bool) {
    if json {
        print_json(&json!({"config": config, "personas": crate::demo::PERSONAS}));
        return;
    }
    let c = crate::files::shell_quote(&config.display().to_string());
    let exe = crate::files::shell_quote(exe);
    outln!(
        r#"{place}
(demo config, SQLite store, demo backend and the example exec plugin; nothing real is granted)

Personas: alice and bob are on call (requesters); bob, carol and dave are SRE leads
(approvers); dave is security (certifier).
In demo mode --as NAME picks who you are; outside it, you are your OS account.

  export BREAKGLASS_CONFIG={c}
  alias breakglass={exe}

  breakglass incidents
  breakglass roles
  breakglass --as alice request --incident INC-1042 --role prod-db-emergency-dba \
      --condition "production outage" --reason "primary is read-only; need to fail over"
  breakglass --as bob approve REQ-1
  breakglass --as carol approve REQ-1
  breakglass --as alice activate REQ-1          # prints the credential once
  breakglass status REQ-1                       # live TTL
  breakglass --as alice revoke REQ-1            # or let it expire: `breakglass sweep`
  breakglass --as alice review REQ-1 --actions-taken "failed over" \
      --systems-touched "db-1" --access-necessary yes --credentials-copied no
  breakglass --as dave certify REQ-1            # unlocks the role
  breakglass audit verify
"#
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_instant_reads_as_people_read_times_and_anything_else_is_cleaned() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T22:24:13Z")
            .expect("an instant")
            .to_utc();
        assert_eq!(
            signed_instant("2026-11-25T22:20:12.5Z", now),
            "22:20:12 UTC (4m ago)"
        );
        assert_eq!(signed_instant("yesterday\u{1b}[2J", now), "yesterday");
    }
}
