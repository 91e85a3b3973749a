//! Routine use: a role's `max_activations` and `max_activations_per_person`.
//! Beyond a bound a request is not refused: it needs one more approval than the
//! role's, raises the `routine_use` alert, and records where it stands.

use crate::support;

use breakglass::domain::{AuditAction, Request, State};
use breakglass::engine::Decision;
use chrono::Duration;
use support::*;

/// The demo config with `lines` added to the k8s role (1 approval by @sre-leads).
pub fn k8s_with(lines: &str) -> H {
    k8s_with_parts(lines, |_| {})
}

/// `k8s_with`, its engine parts changed by `f`.
pub fn k8s_with_parts(lines: &str, f: impl FnOnce(&mut breakglass::engine::Parts)) -> H {
    let lines = lines.to_string();
    harness_edited(
        move |text| {
            let anchor =
                "certifiers = [\"@security\"]\n\n[[roles]]\nname = \"payments-api-operator\"";
            assert!(text.contains(anchor), "the k8s role moved");
            *text = text.replace(
                anchor,
                &format!("certifiers = [\"@security\"]\n{lines}\n\n[[roles]]\nname = \"payments-api-operator\""),
            );
        },
        f,
    )
}

/// `who` requests k8s for INC-1042.
async fn request(h: &H, who: &str) -> Request {
    h.engine
        .request(who, input(K8S, inc("INC-1042")))
        .await
        .unwrap()
}

/// One whole use: approved by as many of carol and dave as it needs, activated,
/// ended, reviewed and certified (so the role is free again), a day later.
pub async fn use_once(h: &H, r: Request) -> Request {
    let mut last = r.clone();
    for who in ["carol", "dave"].iter().take(r.approvals_required as usize) {
        last = h
            .engine
            .decide(who, r.id, Decision::approve(None))
            .await
            .unwrap();
    }
    assert_eq!(last.state, State::Approved);
    let (active, _) = h.engine.activate(&r.requester, r.id).await.unwrap();
    h.engine.revoke(&r.requester, r.id, "done").await.unwrap();
    h.engine
        .review(&r.requester, r.id, answers())
        .await
        .unwrap();
    h.engine
        .decide("dave", r.id, Decision::certify("ok"))
        .await
        .unwrap();
    h.clock.advance(Duration::days(1));
    active
}

fn routine_alerts(h: &H) -> Vec<serde_json::Value> {
    h.store
        .outbox_due(chrono::Utc::now() + Duration::days(3650), 10_000)
        .unwrap()
        .into_iter()
        .filter(|r| r.payload["kind"] == "routine_use")
        .map(|r| r.payload)
        .collect()
}

#[tokio::test]
async fn the_fifth_activation_in_four_per_30_days_needs_one_more_approval_and_alerts() {
    let h = k8s_with("max_activations = \"4/30d\"");
    assert_eq!(h.cfg.policy.roles[K8S].approvals_required, 1);
    for nth in 1..=4u32 {
        let r = request(&h, "alice").await;
        let routine = r.routine_use.clone().expect("recorded on every request");
        let count = routine.role.unwrap();
        assert_eq!((count.nth, count.limit, routine.over), (nth, 4, false));
        assert_eq!(r.approvals_required, 1, "within the bound: as usual");
        use_once(&h, r).await;
    }
    assert!(routine_alerts(&h).is_empty());

    let fifth = request(&h, "alice").await;
    let routine = fifth.routine_use.clone().unwrap();
    assert!(routine.over);
    assert_eq!(routine.role.unwrap().nth, 5);
    assert_eq!(fifth.approvals_required, 2, "one more than the role's 1");
    assert_eq!(
        routine.describe("alice"),
        "5th activation in 30 days (more than 4: one extra approval)"
    );
    // The usual one approval is no longer enough.
    let after_one = h
        .engine
        .decide("bob", fifth.id, Decision::approve(None))
        .await
        .unwrap();
    assert_eq!(after_one.state, State::Pending);
    assert_eq!(after_one.approvals.len(), 1);
    let approved = h
        .engine
        .decide("carol", fifth.id, Decision::approve(None))
        .await
        .unwrap();
    assert_eq!(approved.state, State::Approved);

    // The alert: its kind, high, naming the count.
    let alerts = routine_alerts(&h);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a["severity"], "high");
    assert_eq!(a["data"]["request_id"], fifth.id.to_string(), "{a}");
    assert_eq!(a["data"]["routine_use"]["role"]["nth"], 5, "{a}");
    assert_eq!(a["data"]["routine_use"]["approvals_required"], 2, "{a}");
    assert!(a["data"]["routine_use"]["summary"]
        .as_str()
        .unwrap()
        .contains("5th activation in 30 days"));

    // Audited with the request.
    let created = h
        .store
        .request_events(fifth.id, AuditAction::RequestCreated)
        .unwrap();
    let detail: serde_json::Value = serde_json::from_str(&created[0].detail).unwrap();
    assert_eq!(detail["routine_use"]["over"], true);
    assert_eq!(detail["approvals_required"], 2);

    // What `status` reads back from the store says it too.
    let stored = h.store.get(fifth.id).unwrap().unwrap();
    assert_eq!(stored.routine_use, fifth.routine_use);

    // Once the first activations leave the window, it is no longer routine.
    h.engine.cancel("alice", fifth.id).await.unwrap();
    // Granted on days 0 to 3; now day 31.5: days 0 and 1 left the window.
    h.clock.advance(Duration::days(27) + Duration::hours(12));
    let later = request(&h, "alice").await;
    let count = later.routine_use.clone().unwrap().role.unwrap();
    assert_eq!(count.nth, 3, "days 2 and 3 are still in it");
    assert_eq!(later.approvals_required, 1);
}

#[tokio::test]
async fn the_per_person_bound_counts_each_requester_alone() {
    let h = k8s_with("max_activations_per_person = \"1/7d\"");
    let first = request(&h, "alice").await;
    assert_eq!(first.approvals_required, 1);
    use_once(&h, first).await;

    // bob's first is his own: as usual.
    let bobs = request(&h, "bob").await;
    let p = bobs.routine_use.clone().unwrap().person.unwrap();
    assert_eq!((p.nth, bobs.approvals_required), (1, 1));
    use_once(&h, bobs).await;

    let second = request(&h, "alice").await;
    let routine = second.routine_use.clone().unwrap();
    assert!(routine.over && routine.role.is_none());
    assert_eq!(second.approvals_required, 2);
    assert_eq!(
        routine.describe("alice"),
        "alice's 2nd in 7 days (more than 1: one extra approval)"
    );
    assert_eq!(routine_alerts(&h).len(), 1);
}

#[tokio::test]
async fn roles_without_a_bound_record_nothing() {
    let h = harness();
    let r = h.requested(K8S).await;
    assert!(r.routine_use.is_none());
    assert_eq!(r.approvals_required, 1);
}

#[test]
fn bad_bounds_are_config_problems_with_their_line() {
    let (tmp, path) = demo_dir();
    let base = std::fs::read_to_string(&path).unwrap();
    let anchor = "certifiers = [\"@security\"]\n\n[[roles]]\nname = \"payments-api-operator\"";
    for (line, want) in [
        (
            "max_activations = \"lots\"",
            "max_activations = \"lots\" is not N/window; write e.g. \"4/30d\"",
        ),
        (
            "max_activations = \"0/30d\"",
            "max_activations = \"0/30d\" is not N/window",
        ),
        (
            "max_activations_per_person = \"3/sometimes\"",
            "max_activations_per_person = \"3/sometimes\" is not N/window",
        ),
    ] {
        let text = base.replace(anchor, &format!("certifiers = [\"@security\"]\n{line}\n\n[[roles]]\nname = \"payments-api-operator\""));
        let bad = tmp.path().join("bad.toml");
        std::fs::write(&bad, &text).unwrap();
        let err = breakglass::config::load(&bad).unwrap_err().to_string();
        let n = text.lines().position(|l| l == line).unwrap() + 1;
        let at = format!("bad.toml:{n}: role \"{K8S}\": {want}");
        assert!(err.lines().any(|l| l.contains(&at)), "{at} in:\n{err}");
    }

    // The extra approval must be reachable: the DBA role needs 2 of @sre-leads
    // (bob, carol, dave), so bob (a requester) has only 2 others, not 3.
    let dba_anchor = "approvals_required = 2\n";
    let text = base.replacen(
        dba_anchor,
        "approvals_required = 2\nmax_activations = \"4/30d\"\n",
        1,
    );
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, &text).unwrap();
    let err = breakglass::config::load(&bad).unwrap_err().to_string();
    assert!(
        err.contains("bob may request it but only 2 other approver(s) exist for 3 required approvals (one more than approvals_required: routine use beyond max_activations needs it)"),
        "{err}"
    );
}

#[test]
fn the_cli_says_where_a_request_stands() {
    let (_tmp, path) = demo_dir();
    let base = std::fs::read_to_string(&path).unwrap();
    let anchor = "certifiers = [\"@security\"]\n\n[[roles]]\nname = \"payments-api-operator\"";
    std::fs::write(
        &path,
        base.replace(
            anchor,
            "certifiers = [\"@security\"]\nmax_activations = \"4/30d\"\n\n[[roles]]\nname = \"payments-api-operator\"",
        ),
    )
    .unwrap();
    let o = bg(&path, Some("alice"), &["roles"]);
    assert!(
        stdout(&o)
            .contains("    routine use: a request now would be the 1st activation in 30 days"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let doc = json(&bg(&path, Some("alice"), &["--json", "roles"]));
    let k8s = doc["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == K8S)
        .unwrap();
    assert_eq!(k8s["routine"]["role"]["nth"], 1, "{k8s}");
    let o = bg(
        &path,
        Some("alice"),
        &[
            "request",
            "--ticket",
            "INC-5",
            "--role",
            K8S,
            "--condition",
            "production outage",
            "--reason",
            "the autoscaler is stuck",
            "--non-interactive",
        ],
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let o = bg(&path, Some("alice"), &["status", "REQ-1"]);
    assert!(
        stdout(&o).contains("  routine:    1st activation in 30 days"),
        "{}",
        stdout(&o)
    );
}

/// Someone with write access to the store lowers the extra approval in the row:
/// the request is approved by one person, but grants nothing.
#[tokio::test]
async fn a_row_edited_down_to_the_usual_approvals_grants_nothing() {
    let h = k8s_with("max_activations = \"1/30d\"");
    let first = request(&h, "alice").await;
    use_once(&h, first).await;
    let r = request(&h, "alice").await;
    assert_eq!(r.approvals_required, 2);
    let db = rusqlite::Connection::open(h.dir().join("breakglass.sqlite")).unwrap();
    let data: String = db
        .query_row("SELECT data FROM requests WHERE id = ?1", [r.id.0], |x| {
            x.get(0)
        })
        .unwrap();
    let mut row: serde_json::Value = serde_json::from_str(&data).unwrap();
    row["approvals_required"] = 1.into();
    db.execute(
        "UPDATE requests SET data = ?2 WHERE id = ?1",
        rusqlite::params![r.id.0, row.to_string()],
    )
    .unwrap();
    let approved = h
        .engine
        .decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();
    assert_eq!(approved.state, State::Approved, "the edited row says 1");
    let err = h.engine.activate("alice", r.id).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("it needs 2 approvals (its request.created event) but the row says 1"),
        "{err}"
    );
    assert!(h.leases().is_empty());
}

/// The approvers' notice says it too: the raised count and where it stands.
#[tokio::test(flavor = "multi_thread")]
async fn the_approvers_notice_carries_the_extra_approval_and_the_count() {
    use breakglass::alert::sinks::{Routed, SlackSink, WebhookSink};
    use breakglass::alert::{AlertKind, Format, Sink};
    use std::sync::Arc;
    use support::receivers::{Behaviour, HttpReceiver};
    let slack_rx = HttpReceiver::start(Behaviour::Ok);
    let hook_rx = HttpReceiver::start(Behaviour::Ok);
    let routed = |s: Arc<dyn Sink>| -> Arc<dyn Sink> {
        Arc::new(Routed::new(
            s,
            Some([AlertKind::ApprovalRequest].into()),
            None,
        ))
    };
    let slack = routed(Arc::new(SlackSink::new(
        "approvers-slack".into(),
        secrecy::SecretString::from(slack_rx.url.clone()),
        std::time::Duration::from_secs(5),
    )));
    let hook = routed(Arc::new(WebhookSink::new(
        "approvers-hook".into(),
        hook_rx.url.clone(),
        None,
        Format::Native,
        std::time::Duration::from_secs(5),
    )));
    let h = k8s_with_parts("max_activations = \"1/30d\"", move |p| {
        p.sinks = vec![slack, hook]
    });
    let first = request(&h, "alice").await;
    use_once(&h, first).await;
    let r = request(&h, "alice").await;
    h.engine.deliver_alerts().await.unwrap();
    let notice = hook_rx
        .received()
        .into_iter()
        .map(|x| x.json())
        .find(|b| {
            b["data"]["request_id"] == r.id.to_string()
                && b["data"]["approval"]["status"] == "waiting"
        })
        .expect("the new request's notice");
    let a = &notice["data"]["approval"];
    assert_eq!(a["approvals_required"], 2, "{a}");
    assert_eq!(
        a["routine_use"],
        "2nd activation in 30 days (more than 1: one extra approval)"
    );
    assert!(
        slack_rx
            .received()
            .iter()
            .any(|x| x.json()["text"].as_str().unwrap_or_default().contains(
                "0 of 2 approvals; 2nd activation in 30 days (more than 1: one extra approval)"
            )),
        "{:?}",
        slack_rx
            .received()
            .iter()
            .map(|x| x.json())
            .collect::<Vec<_>>()
    );
}

/// Policy does not approve routine use by itself: an automation request beyond
/// the bound waits for people, one more than usual.
#[tokio::test]
async fn routine_use_is_never_auto_approved() {
    use breakglass::domain::policy::{Automation, Principals};
    use breakglass::engine::{IncidentChoice, RequestInput};
    const SVC: &str = "svc-failover";
    let h = k8s_with_parts("max_activations = \"1/30d\"", |p| {
        p.policy.roles.get_mut(K8S).unwrap().automation = Automation {
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
    });
    let auto = || RequestInput {
        incident: IncidentChoice::Ticket("INC-77".into()),
        role: K8S.into(),
        condition: "failed automation path".into(),
        reason: "failover controller could not promote the standby".into(),
        ttl_seconds: None,
    };
    let first = h.engine.request(SVC, auto()).await.unwrap();
    assert_eq!(first.state, State::Approved, "within the bound: by policy");
    h.engine.activate(SVC, first.id).await.unwrap();
    h.engine.revoke(SVC, first.id, "promoted").await.unwrap();
    h.clock.advance(Duration::minutes(5));

    let second = h.engine.request(SVC, auto()).await.unwrap();
    assert_eq!(second.state, State::Pending);
    assert!(!second.auto_approved);
    assert_eq!(second.approvals_required, 2);
    let why = second.auto_approval_declined.clone().unwrap();
    assert!(
        why.contains("routine use (2nd activation in 30 days (more than 1: one extra approval)) needs human approval"),
        "{why}"
    );
    assert_eq!(routine_alerts(&h).len(), 1);
}
