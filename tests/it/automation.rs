//! Machine-speed recovery: automation identities auto-approved by policy for
//! listed conditions, rate-limited, louder alerts, and certification owed by a
//! deadline after which the role locks.

use crate::support;

use breakglass::domain::policy::{Automation, Principals};
use breakglass::domain::State;
use breakglass::engine::{Decision, IncidentChoice, RequestInput};
use chrono::Duration;
use support::*;

const SVC: &str = "svc-failover";

fn automated() -> H {
    harness_with(|p| {
        let role = p.policy.roles.get_mut(K8S).unwrap();
        role.automation = Automation {
            identities: Principals {
                users: [SVC.to_string()].into(),
                anyone: false,
                written: vec![SVC.into()],
            },
            conditions: vec!["failed automation path".into()],
            rate_count: 3,
            rate_window: 3600,
            max_ttl: 15 * 60,
            certify_within: 24 * 3600,
        };
    })
}

fn auto_input(condition: &str, ttl: Option<i64>) -> RequestInput {
    RequestInput {
        incident: IncidentChoice::Ticket("INC-77".into()),
        role: K8S.into(),
        condition: condition.into(),
        reason: "failover controller could not promote the standby".into(),
        ttl_seconds: ttl,
    }
}

fn auto_events(h: &H) -> usize {
    h.store
        .audit_range(1, 10_000)
        .unwrap()
        .iter()
        .filter(|r| r.action == "request.auto_approved")
        .count()
}

#[tokio::test]
async fn only_the_listed_condition_is_auto_approved() {
    let h = automated();
    let r = h
        .engine
        .request(SVC, auto_input("failed automation path", None))
        .await
        .unwrap();
    assert_eq!(r.state, State::Approved);
    assert!(r.auto_approved);
    assert_eq!(r.certify_by, Some(r.created_at + Duration::hours(24)));
    assert!(r.approvals.is_empty());
    assert_eq!(auto_events(&h), 1);
    let rec = h.store.audit_range(1, 100).unwrap();
    let ev = rec
        .iter()
        .find(|e| e.action == "request.auto_approved")
        .unwrap();
    assert_eq!(ev.actor, "breakglass-policy");
    h.engine.cancel(SVC, r.id).await.unwrap();

    let other = h
        .engine
        .request(SVC, auto_input("production outage", None))
        .await
        .unwrap();
    assert_eq!(other.state, State::Pending);
    assert!(!other.auto_approved);
    assert!(other
        .auto_approval_declined
        .as_deref()
        .unwrap()
        .contains("not auto-approved"));
    // Humans may still approve it as usual.
    assert_eq!(
        h.engine
            .decide("bob", other.id, Decision::approve(None))
            .await
            .unwrap()
            .state,
        State::Approved
    );
}

#[tokio::test]
async fn a_person_is_never_auto_approved() {
    let h = automated();
    let r = h
        .engine
        .request("alice", auto_input("failed automation path", None))
        .await
        .unwrap();
    assert_eq!(r.state, State::Pending);
    assert!(!r.auto_approved);
    assert!(r.auto_approval_declined.is_none());
    assert_eq!(auto_events(&h), 0);
}

#[tokio::test]
async fn the_rate_limit_holds_and_the_window_slides() {
    let h = automated();
    for _ in 0..3 {
        let r = h
            .engine
            .request(SVC, auto_input("failed automation path", None))
            .await
            .unwrap();
        assert_eq!(r.state, State::Approved);
        h.engine.cancel(SVC, r.id).await.unwrap();
        h.clock.advance(Duration::minutes(10));
    }
    let fourth = h
        .engine
        .request(SVC, auto_input("failed automation path", None))
        .await
        .unwrap();
    assert_eq!(fourth.state, State::Pending);
    assert!(fourth
        .auto_approval_declined
        .as_deref()
        .unwrap()
        .contains("rate limit"));
    h.engine.cancel(SVC, fourth.id).await.unwrap();
    // The first one leaves the window an hour after it was made.
    h.clock.advance(Duration::minutes(31));
    let fifth = h
        .engine
        .request(SVC, auto_input("failed automation path", None))
        .await
        .unwrap();
    assert_eq!(fifth.state, State::Approved);
}

#[tokio::test]
async fn auto_max_ttl_caps_auto_approval() {
    let h = automated();
    let long = h
        .engine
        .request(SVC, auto_input("failed automation path", Some(20 * 60)))
        .await
        .unwrap();
    assert_eq!(long.state, State::Pending);
    assert!(long
        .auto_approval_declined
        .as_deref()
        .unwrap()
        .contains("auto_max_ttl"));
    h.engine.cancel(SVC, long.id).await.unwrap();
    let short = h
        .engine
        .request(SVC, auto_input("failed automation path", Some(15 * 60)))
        .await
        .unwrap();
    assert_eq!(short.state, State::Approved);
}

fn alert_severities(h: &H, kind: &str) -> Vec<String> {
    h.store
        .outbox_due(chrono::Utc::now() + Duration::days(3650), 10_000)
        .unwrap()
        .iter()
        .filter(|r| r.payload["kind"] == kind)
        .map(|r| {
            r.payload["severity"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The service account runs, access ends; returns the ended request.
async fn used(h: &H) -> breakglass::domain::Request {
    let r = h
        .engine
        .request(SVC, auto_input("failed automation path", None))
        .await
        .unwrap();
    let (r, _) = h.engine.activate(SVC, r.id).await.unwrap();
    assert_eq!(r.state, State::Active);
    h.engine.revoke(SVC, r.id, "done").await.unwrap()
}

#[tokio::test]
async fn auto_activation_alerts_critical() {
    let h = automated();
    used(&h).await;
    assert_eq!(alert_severities(&h, "auto_activation"), vec!["critical"]);
    assert_eq!(h.alerts_of_kind("activation"), 0);
}

#[tokio::test]
async fn the_role_stays_usable_until_certify_by_then_locks_and_alerts_once() {
    let h = automated();
    let first = used(&h).await;
    assert_eq!(first.state, State::Ended);
    // Within the deadline, machine-speed recovery may use the role again.
    assert!(h.store.role_lock(K8S, h.engine.now()).unwrap().is_none());
    let again = used(&h).await;
    h.engine.review("bob", again.id, answers()).await.unwrap();
    h.engine
        .decide("dave", again.id, Decision::certify("ok"))
        .await
        .unwrap();

    h.clock.advance(Duration::hours(25));
    let refused = h
        .engine
        .request("alice", input(K8S, IncidentChoice::Ticket("INC-9".into())))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&format!("certification of {} overdue since", first.id)),
        "{refused}"
    );
    let roles = h.engine.roles(Some("alice")).await.unwrap();
    let k8s = roles.iter().find(|r| r.name == K8S).unwrap();
    assert!(k8s
        .lock_reason
        .as_deref()
        .unwrap()
        .contains("overdue since"));

    let rep = h.engine.recover().await.unwrap();
    assert_eq!(rep.certification_overdue, vec![first.id.to_string()]);
    let rep = h.engine.recover().await.unwrap();
    assert!(rep.certification_overdue.is_empty());
    // One audited event; its alert went out with the first pass's delivery.
    let overdue = h
        .store
        .audit_range(1, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "certification.overdue")
        .count();
    assert_eq!(overdue, 1);
    assert_eq!(h.store.outbox_undelivered().unwrap(), 0);

    // A person reviews (the service account cannot), another certifies.
    assert!(h.engine.review(SVC, first.id, answers()).await.is_err());
    h.engine.review("bob", first.id, answers()).await.unwrap();
    assert!(h
        .engine
        .decide("bob", first.id, Decision::certify("ok"))
        .await
        .is_err());
    h.engine
        .decide("dave", first.id, Decision::certify("reviewed"))
        .await
        .unwrap();
    assert_eq!(h.state(first.id), State::Certified);
    assert!(h.store.role_lock(K8S, h.engine.now()).unwrap().is_none());
    let r = h
        .engine
        .request("alice", input(K8S, IncidentChoice::Ticket("INC-9".into())))
        .await
        .unwrap();
    assert_eq!(r.state, State::Pending);
}

fn role_text(base: &str, extra: &str) -> String {
    base.replace(
        "certifiers = [\"@security\"]\n\n[[roles]]\nname = \"payments-api-operator\"",
        &format!(
            "certifiers = [\"@security\"]\n{extra}\n\n[[roles]]\nname = \"payments-api-operator\""
        ),
    )
}

/// The demo config with the service account as a demo persona of its own.
fn with_svc_persona(text: &str) -> String {
    let out = text.replace(
        "personas = [\"alice\", \"bob\", \"carol\", \"dave\"]",
        "personas = [\"alice\", \"bob\", \"carol\", \"dave\", \"svc-failover\"]",
    );
    assert!(
        out.contains("\"dave\", \"svc-failover\"]"),
        "demo personas moved"
    );
    out
}

#[test]
fn config_problems_name_file_and_line() {
    let (tmp, path) = demo_dir();
    let base = std::fs::read_to_string(&path).unwrap();
    assert!(
        role_text(&base, "x = 1") != base,
        "the k8s role is where the test expects"
    );
    let text = role_text(
        &base,
        "automation = [\"svc-failover\"]\nauto_approve_conditions = [\"coffee machine\"]\nauto_approve_rate = \"lots\"\nauto_max_ttl = \"2h\"",
    );
    let text = with_svc_persona(&text);
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, &text).unwrap();
    let err = breakglass::config::load(&bad).unwrap_err().to_string();
    let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    for (key, what) in [
        ("auto_approve_conditions", "subset of conditions"),
        ("auto_approve_rate", "N/window"),
        ("auto_max_ttl", "longer than max_ttl"),
    ] {
        let want = format!("bad.toml:{}:", line_of(key));
        assert!(
            err.lines().any(|l| l.contains(&want) && l.contains(what)),
            "{want} {what} in:\n{err}"
        );
    }

    let good = tmp.path().join("good.toml");
    std::fs::write(
        &good,
        with_svc_persona(&role_text(
            &base,
            "automation = [\"svc-failover\"]\nauto_approve_conditions = [\"failed automation path\"]\nauto_approve_rate = \"2/30m\"",
        )),
    )
    .unwrap();
    let cfg = breakglass::config::load(&good).unwrap();
    let a = &cfg.policy.roles[K8S].automation;
    assert_eq!((a.rate_count, a.rate_window), (2, 1800));
    assert_eq!(a.max_ttl, 20 * 60);
    assert_eq!(a.certify_within, 24 * 3600);
}

#[test]
fn cli_non_interactive_reports_with_exit_codes() {
    let (_tmp, path) = demo_dir();
    let base = std::fs::read_to_string(&path).unwrap();
    let text = with_svc_persona(&role_text(
        &base,
        "automation = [\"svc-failover\"]\nauto_approve_conditions = [\"failed automation path\"]",
    ));
    std::fs::write(&path, text).unwrap();
    let args = |cond: &'static str| {
        vec![
            "--json",
            "request",
            "--ticket",
            "INC-5",
            "--role",
            K8S,
            "--condition",
            cond,
            "--reason",
            "controller failed over badly",
            "--non-interactive",
            "--wait",
            "--wait-timeout",
            "1s",
        ]
    };
    let o = bg(&path, Some("svc-failover"), &args("production outage"));
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(doc["request"]["state"], "pending");
    assert!(doc["request"]["auto_approval_declined"].is_string());

    let o = bg(&path, Some("svc-failover"), &args("failed automation path"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(doc["request"]["state"], "active");
    assert_eq!(doc["request"]["auto_approved"], true);

    let o = bg(
        &path,
        Some("svc-failover"),
        &[
            "--json",
            "request",
            "--ticket",
            "nope",
            "--role",
            K8S,
            "--condition",
            "failed automation path",
            "--reason",
            "x",
            "--non-interactive",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(doc["error"]["exit_code"], 3);
    // A program branches on the reason, not on the prose.
    assert_eq!(doc["error"]["reason"], "locked", "{doc}");
}

/// The demo config with one more `[groups]` entry.
fn with_group(text: &str, line: &str) -> String {
    let out = text.replace("[groups]\n", &format!("[groups]\n{line}\n"));
    assert!(out.contains(line), "[groups] moved");
    out
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.starts_with(needle)).unwrap() + 1
}

#[test]
fn a_person_cannot_also_be_an_automation_identity() {
    let (tmp, path) = demo_dir();
    let base = std::fs::read_to_string(&path).unwrap();
    // alice requests every role through @oncall: she cannot be a service account too.
    let text = role_text(
        &base,
        "automation = [\"alice\"]\nauto_approve_conditions = [\"failed automation path\"]",
    );
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, &text).unwrap();
    let err = breakglass::config::load(&bad).unwrap_err().to_string();
    let at = format!("bad.toml:{}:", line_of(&text, "automation ="));
    let line = err
        .lines()
        .find(|l| l.contains(&at) && l.contains("alice is an automation identity"))
        .unwrap_or_else(|| panic!("{at} alice in:\n{err}"));
    for part in [
        "(automation of role \"k8s-cluster-admin\")",
        "requester of role \"k8s-cluster-admin\" through @oncall",
        "requester of role \"prod-db-emergency-dba\" through @oncall",
        "an account of its own (e.g. \"svc-alice\")",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }

    // Named directly as an approver elsewhere (carol is in @sre-leads), and
    // through an automation group: both parts named.
    let text = with_svc_persona(&with_group(
        &role_text(
            &base,
            "automation = [\"@bots\"]\nauto_approve_conditions = [\"failed automation path\"]",
        ),
        "bots = [\"svc-failover\", \"carol\"]",
    ))
    .replace(
        "approvers = [\"@sre-leads\"]\ncertifiers = [\"@security\"]\n\n[[roles]]\nname = \"iam",
        "approvers = [\"@sre-leads\", \"carol\"]\ncertifiers = [\"@security\"]\n\n[[roles]]\nname = \"iam",
    );
    assert!(text.contains("\"@sre-leads\", \"carol\""), "roles moved");
    std::fs::write(&bad, &text).unwrap();
    let err = breakglass::config::load(&bad).unwrap_err().to_string();
    assert!(
        err.lines().any(|l| l.contains("carol is an automation identity (automation of role \"k8s-cluster-admin\" through @bots) and also approver of role")
            && l.contains("approver of role \"payments-api-operator\", ")
            && l.contains("approver of role \"k8s-cluster-admin\" through @sre-leads")),
        "{err}"
    );
    // svc-failover is a service account only: nothing said about it.
    assert!(!err.contains("svc-failover is"), "{err}");

    // Every front end loads the config the same way and refuses to start.
    let text = role_text(
        &base,
        "automation = [\"alice\"]\nauto_approve_conditions = [\"failed automation path\"]",
    );
    std::fs::write(&path, &text).unwrap();
    let want = format!(
        "{}:{}: alice is an automation identity",
        path.display(),
        line_of(&text, "automation =")
    );
    for args in [vec!["config", "check"], vec!["console"], vec!["roles"]] {
        let o = bg(&path, None, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(&want), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_group_holds_service_accounts_or_people_not_both() {
    let (_tmp, path) = demo_dir();
    let base = std::fs::read_to_string(&path).unwrap();
    let with_automation = with_svc_persona(&role_text(
        &base,
        "automation = [\"svc-failover\"]\nauto_approve_conditions = [\"failed automation path\"]",
    ));
    // A group naming no role still mixes the two.
    let text = with_group(&with_automation, "mixed = [\"svc-failover\", \"carol\"]");
    std::fs::write(&path, &text).unwrap();
    let o = bg(&path, None, &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let want = format!(
        "{}:{}: group \"mixed\" mixes automation identities (svc-failover) and people (carol); keep service accounts in a group of their own, e.g. bots = [\"svc-failover\"]",
        path.display(),
        line_of(&text, "mixed =")
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("is an automation identity"),
        "{}",
        stderr(&o)
    );

    // @oncall requests every role: a service account in it is a requester too.
    let text = with_automation.replace(
        "oncall = [\"alice\", \"bob\"]",
        "oncall = [\"alice\", \"bob\", \"svc-failover\"]",
    );
    std::fs::write(&path, &text).unwrap();
    let err = stderr(&bg(&path, None, &["config", "check"]));
    assert!(
        err.contains(
            "group \"oncall\" mixes automation identities (svc-failover) and people (alice, bob)"
        ),
        "{err}"
    );
    assert!(
        err.contains("svc-failover is an automation identity (automation of role \"k8s-cluster-admin\") and also requester of role \"iam-breakglass-admin\" through @oncall"),
        "{err}"
    );

    // Service accounts in a group of their own load, and `roles --json` lists
    // each with the roles it may recover.
    let text = with_group(
        &with_svc_persona(&role_text(
            &base,
            "automation = [\"@bots\"]\nauto_approve_conditions = [\"failed automation path\"]",
        )),
        "bots = [\"svc-failover\"]",
    );
    std::fs::write(&path, &text).unwrap();
    let o = bg(&path, None, &["config", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc = json(&bg(&path, None, &["--json", "roles"]));
    assert_eq!(
        doc["automation"],
        serde_json::json!([{ "identity": "svc-failover", "roles": [K8S] }])
    );
    let k8s = doc["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == K8S)
        .unwrap();
    assert_eq!(
        k8s["people"]["automation"],
        serde_json::json!(["svc-failover"])
    );
    let o = bg(&path, None, &["roles"]);
    assert!(
        stdout(&o).contains("automation (approved by policy): svc-failover"),
        "{}",
        stdout(&o)
    );
}
