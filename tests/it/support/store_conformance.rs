//! The store conformance suite. Every `Store` implementation runs it through
//! `store_conformance!(factory)`, which expands to one #[test] per case.
#![allow(dead_code)]

use breakglass::domain::lifecycle::{self, NewRequest};
use breakglass::domain::policy::{Principals, RolePolicy};
use breakglass::domain::RequestId;
use breakglass::domain::{IncidentRef, Owner, Request, State};
use breakglass::store::{AlertDraft, ClaimKey, Query, Store, StoreError, Transition};
use chrono::{Duration, Utc};
use std::sync::Arc;
use std::time::Instant;

pub fn role(name: &str) -> RolePolicy {
    let anyone = Principals {
        anyone: true,
        written: vec!["*".into()],
        ..Default::default()
    };
    RolePolicy {
        name: name.into(),
        description: String::new(),
        backend: "demo".into(),
        scope: serde_json::json!({}),
        default_ttl: 600,
        max_ttl: 1200,
        max_extensions: 1,
        max_total: 2400,
        min_ttl: 60,
        conditions: vec!["outage".into()],
        ticket_pattern: Some(regex::Regex::new("^INC-[0-9]+$").unwrap()),
        requesters: anyone.clone(),
        approvers: anyone.clone(),
        certifiers: anyone,
        approvals_required: 1,
        request_ttl: 1800,
        rotate_after_use: false,
        require_open_incident: true,
        revoke_on_resolve: true,
        require_alert_delivery: false,
        automation: Default::default(),
        vendor: None,
        max_activations: None,
        max_activations_per_person: None,
        drill: Default::default(),
    }
}

fn owner() -> Owner {
    Owner {
        host: "test".into(),
        pid: 1,
    }
}

pub fn insert(s: &dyn Store, role_name: &str, who: &str) -> Request {
    let (req, ev) = lifecycle::new_request(
        &role(role_name),
        NewRequest {
            incident: IncidentRef::Ticket {
                reference: "INC-1".into(),
            },
            condition: "outage".into(),
            reason: "r".into(),
            ttl_seconds: None,
        },
        who,
        Utc::now(),
    )
    .unwrap();
    s.insert_request(&req, &ev, &[], Utc::now()).unwrap()
}

/// Drives a stored request to Active through committed transitions.
pub fn activate(s: &dyn Store, mut r: Request) -> Request {
    let role = role(&r.role);
    let now = Utc::now();
    let ev = lifecycle::approve(&mut r, &role, "approver", None, Ok(None), now).unwrap();
    r = s.commit(&r, &ev, &[], now).unwrap();
    let who = r.requester.clone();
    let ev = lifecycle::begin_grant(&mut r, &who, owner(), now).unwrap();
    r = s.commit(&r, &ev, &[], now).unwrap();
    let ev = lifecycle::granted(&mut r, "lease-1", None, now).unwrap();
    s.commit(&r, &ev, &[alert()], now).unwrap()
}

fn alert() -> AlertDraft {
    AlertDraft {
        kind: breakglass::alert::AlertKind::Activation,
        payload: serde_json::json!({"x": 1}),
    }
}

fn verify(s: &dyn Store) -> u64 {
    let mut v = breakglass::audit::Verifier::default();
    for r in s.audit_range(1, 1_000_000).unwrap() {
        v.push(&r).unwrap();
    }
    v.count
}

pub fn insert_assigns_ids_versions_and_audits(s: &dyn Store) {
    let a = insert(s, "r1", "alice");
    let b = insert(s, "r2", "bob");
    assert!(b.id > a.id);
    assert_eq!((a.version, a.state), (1, State::Pending));
    assert_eq!(s.get(a.id).unwrap().unwrap(), a);
    assert_eq!(s.audit_head().unwrap().0, 2);
    let ev = &s.audit_range(1, 10).unwrap()[0];
    assert_eq!(
        (ev.request_id, ev.action.as_str(), ev.actor.as_str()),
        (Some(a.id.0), "request.created", "alice")
    );
    assert_eq!(verify(s), 2);
}

pub fn stale_versions_conflict_and_change_nothing(s: &dyn Store) {
    let r = insert(s, "r1", "alice");
    let mut x = r.clone();
    let ev = lifecycle::approve(&mut x, &role("r1"), "bob", None, Ok(None), Utc::now()).unwrap();
    let committed = s.commit(&x, &ev, &[], Utc::now()).unwrap();
    assert_eq!(committed.version, 2);
    // A second writer that loaded version 1 loses.
    let mut y = r.clone();
    let ev = lifecycle::cancel(&mut y, "alice", Utc::now()).unwrap();
    let head = s.audit_head().unwrap();
    assert!(
        matches!(s.commit(&y, &ev, &[alert()], Utc::now()), Err(StoreError::Conflict(id)) if id == r.id)
    );
    assert_eq!(
        s.audit_head().unwrap(),
        head,
        "no audit event for a lost race"
    );
    assert_eq!(
        s.outbox_undelivered().unwrap(),
        0,
        "no alert for a lost race"
    );
    assert_eq!(s.get(r.id).unwrap().unwrap().state, State::Approved);
}

pub fn unknown_requests(s: &dyn Store) {
    let r = insert(s, "r1", "alice");
    let mut ghost = r.clone();
    ghost.id = breakglass::domain::RequestId(r.id.0 + 1000);
    assert!(s.get(ghost.id).unwrap().is_none());
    let ev = lifecycle::cancel(&mut ghost.clone(), "alice", Utc::now()).unwrap();
    assert!(matches!(
        s.commit(&ghost, &ev, &[], Utc::now()),
        Err(StoreError::NotFound(_))
    ));
}

pub fn the_role_lock_is_checked_atomically(s: &dyn Store) {
    let a = insert(s, "r1", "alice");
    let b = insert(s, "r1", "bob");
    let a = activate(s, a);
    assert_eq!(
        s.role_lock("r1", Utc::now()).unwrap(),
        Some((a.id, State::Active))
    );
    assert_eq!(s.role_lock("r2", Utc::now()).unwrap(), None);
    // Granting a second request of a locked role is refused, atomically.
    let mut b2 = b.clone();
    let ev =
        lifecycle::approve(&mut b2, &role("r1"), "approver", None, Ok(None), Utc::now()).unwrap();
    let mut b2 = s.commit(&b2, &ev, &[], Utc::now()).unwrap();
    let ev = lifecycle::begin_grant(&mut b2, "bob", owner(), Utc::now()).unwrap();
    let head = s.audit_head().unwrap();
    match s.commit(&b2, &ev, &[], Utc::now()) {
        Err(StoreError::Locked { role, by, state }) => {
            assert_eq!((role.as_str(), by, state), ("r1", a.id, State::Active))
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(s.audit_head().unwrap(), head);
    assert_eq!(s.get(b.id).unwrap().unwrap().state, State::Approved);
    // New requests for a locked role are refused too.
    let (req, ev) = lifecycle::new_request(
        &role("r1"),
        NewRequest {
            incident: IncidentRef::Ticket {
                reference: "INC-2".into(),
            },
            condition: "outage".into(),
            reason: "r".into(),
            ttl_seconds: None,
        },
        "carol",
        Utc::now(),
    )
    .unwrap();
    assert!(matches!(
        s.insert_request(&req, &ev, &[], Utc::now()),
        Err(StoreError::Locked { .. })
    ));
}

pub fn list_filters_and_orders(s: &dyn Store) {
    let a = insert(s, "r1", "alice");
    let b = insert(s, "r2", "bob");
    let c = insert(s, "r2", "alice");
    let _ = activate(s, a.clone());
    let ids = |q: Query| {
        s.list(&q)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(Query::default()), vec![c.id, b.id, a.id]);
    assert_eq!(
        ids(Query {
            states: Some(vec![State::Active]),
            ..Default::default()
        }),
        vec![a.id]
    );
    assert_eq!(
        ids(Query {
            role: Some("r2".into()),
            ..Default::default()
        }),
        vec![c.id, b.id]
    );
    assert_eq!(
        ids(Query {
            requester: Some("alice".into()),
            states: Some(vec![State::Pending]),
            ..Default::default()
        }),
        vec![c.id]
    );
    assert_eq!(
        ids(Query {
            limit: Some(1),
            ..Default::default()
        }),
        vec![c.id]
    );
    // Values that look like SQL are just values.
    assert!(ids(Query {
        role: Some("r1' OR '1'='1".into()),
        ..Default::default()
    })
    .is_empty());
}

pub fn alerts_are_queued_with_their_transition_and_retried(s: &dyn Store) {
    let a = activate(s, insert(s, "r1", "alice"));
    assert_eq!(s.outbox_undelivered().unwrap(), 1);
    let now = Utc::now() + Duration::seconds(1);
    let due = s.outbox_due(now, 10).unwrap();
    assert_eq!(due.len(), 1);
    let row = &due[0];
    assert_eq!(row.payload["kind"], "activation");
    assert_eq!(row.payload["audit_seq"], s.audit_head().unwrap().0);
    assert!(row.event_id.starts_with(&a.id.to_string()));
    // One sink took it, another refused: the retry skips the first.
    s.outbox_failed(
        row.id,
        &["file-1".to_string()],
        "webhook-2: down",
        now + Duration::seconds(60),
    )
    .unwrap();
    assert!(
        s.outbox_due(now, 10).unwrap().is_empty(),
        "not due before its retry time"
    );
    let again = s.outbox_due(now + Duration::seconds(61), 10).unwrap();
    assert_eq!(
        (
            again[0].event_id.as_str(),
            again[0].attempts,
            again[0].delivered_to.clone()
        ),
        (row.event_id.as_str(), 1, vec!["file-1".to_string()]),
        "stable id across retries, and who already has it"
    );
    assert_eq!(s.outbox_undelivered_for(a.id).unwrap(), 1);
    s.outbox_delivered(row.id, now).unwrap();
    assert_eq!(s.outbox_undelivered().unwrap(), 0);
    assert_eq!(s.outbox_undelivered_for(a.id).unwrap(), 0);
    assert!(s
        .outbox_due(now + Duration::days(1), 10)
        .unwrap()
        .is_empty());
}

pub fn notes_append_to_the_chain_without_changing_state(s: &dyn Store) {
    let r = insert(s, "r1", "alice");
    let detail =
        serde_json::json!({"attempt": "approve", "refusal": "cannot approve your own request"});
    let note = breakglass::store::Note {
        action: breakglass::domain::AuditAction::PolicyRefused,
        actor: "alice",
        from: Some(r.state),
        to: Some(r.state),
        detail: &detail,
    };
    s.append_note(Some(r.id), &note, &[alert()], Utc::now())
        .unwrap();
    let bare = breakglass::store::Note {
        from: None,
        to: None,
        ..note.clone()
    };
    s.append_note(None, &bare, &[], Utc::now()).unwrap();
    assert_eq!(s.get(r.id).unwrap().unwrap(), r, "the request is untouched");
    let evs = s.audit_range(2, 10).unwrap();
    assert_eq!(evs.len(), 2);
    assert_eq!(
        (
            evs[0].action.as_str(),
            evs[0].request_id,
            evs[0].from_state.as_deref()
        ),
        ("policy.refused", Some(r.id.0), Some("pending"))
    );
    assert_eq!(
        (evs[1].request_id, evs[1].to_state.as_deref()),
        (None, None)
    );
    assert_eq!(s.outbox_undelivered_for(r.id).unwrap(), 1);
    assert_eq!(verify(s), 3);
}

pub fn role_events_are_found_by_role_and_action(s: &dyn Store) {
    let r = insert(s, "vendor-a", "alice");
    let note = |role: &str, actor: &'static str, on_request: bool| {
        let detail = serde_json::json!({ "role": role, "comment": format!("by {actor}") });
        let n = breakglass::store::Note {
            action: breakglass::domain::AuditAction::RoleRecertified,
            actor,
            from: None,
            to: None,
            detail: &detail,
        };
        s.append_note(on_request.then_some(r.id), &n, &[], Utc::now())
            .unwrap();
    };
    assert!(s
        .last_role_event("vendor-a", breakglass::domain::AuditAction::RoleRecertified)
        .unwrap()
        .is_none());
    note("vendor-a", "carol", false);
    note("vendor-b", "dave", false);
    note("vendor-a", "dave", false);
    // Events about a request are not decisions about the role.
    note("vendor-a", "mallory", true);
    let last = s
        .last_role_event("vendor-a", breakglass::domain::AuditAction::RoleRecertified)
        .unwrap()
        .expect("found");
    assert_eq!((last.actor.as_str(), last.seq), ("dave", 4));
    assert_eq!(
        s.last_role_event("vendor-b", breakglass::domain::AuditAction::RoleRecertified)
            .unwrap()
            .map(|e| e.actor),
        Some("dave".to_string())
    );
    assert!(s
        .last_role_event("vendor-c", breakglass::domain::AuditAction::RoleRecertified)
        .unwrap()
        .is_none());
    assert!(s
        .last_role_event("vendor-a", breakglass::domain::AuditAction::PolicyRefused)
        .unwrap()
        .is_none());
    assert_eq!(verify(s), 5);
    // And a request's own events of one kind, oldest first.
    let mine = s
        .request_events(r.id, breakglass::domain::AuditAction::RoleRecertified)
        .unwrap();
    assert_eq!(
        mine.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
        ["mallory"]
    );
    let created = s
        .request_events(r.id, breakglass::domain::AuditAction::RequestCreated)
        .unwrap();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].seq, 1);
    assert!(s
        .request_events(
            RequestId(r.id.0 + 1),
            breakglass::domain::AuditAction::RequestCreated
        )
        .unwrap()
        .is_empty());
}

/// A new request's approval notice is drafted before its id exists: the row
/// gets the id, the command that approves it and the key its updates share.
/// Approval notices never count against a fail-closed activation.
pub fn approval_notices_get_their_id_and_do_not_hold_back_access(s: &dyn Store) {
    let (req, ev) = lifecycle::new_request(
        &role("r1"),
        NewRequest {
            incident: IncidentRef::Ticket {
                reference: "INC-1".into(),
            },
            condition: "outage".into(),
            reason: "r".into(),
            ttl_seconds: None,
        },
        "alice",
        Utc::now(),
    )
    .unwrap();
    let notice = AlertDraft {
        kind: breakglass::alert_vocab::AlertKind::ApprovalRequest,
        payload: serde_json::json!({
            "request_id": "REQ-0",
            "approval": { "status": "waiting", "open": true, "requested_at": "20261125T223813.990Z" },
        }),
    };
    let r = s.insert_request(&req, &ev, &[notice], Utc::now()).unwrap();
    let due = s.outbox_due(Utc::now() + Duration::days(1), 10).unwrap();
    let d = &due[0].payload["data"];
    assert_eq!(d["request_id"], r.id.to_string());
    assert_eq!(
        d["approval"]["command"],
        format!("breakglass approve {}", r.id)
    );
    assert_eq!(
        d["approval"]["key"],
        format!("breakglass-{}-20261125T223813.990Z", r.id)
    );
    assert_eq!(s.outbox_undelivered().unwrap(), 1);
    assert_eq!(s.outbox_undelivered_for(r.id).unwrap(), 0);
}

pub fn audit_pages_in_order_and_chains(s: &dyn Store) {
    for i in 0..25 {
        insert(s, &format!("r{i}"), "alice");
    }
    let p1 = s.audit_range(1, 10).unwrap();
    let p2 = s.audit_range(11, 10).unwrap();
    assert_eq!(
        p1.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(p2[0].prev_hash, p1[9].hash);
    assert_eq!(verify(s), 25);
    assert_eq!(
        s.audit_head().unwrap().1,
        s.audit_range(25, 1).unwrap()[0].hash
    );
}

pub fn claims_are_exclusive_until_they_run_out(s: &dyn Store) {
    let r = activate(s, insert(s, "r1", "alice"));
    let now = Utc::now() + Duration::seconds(1);
    let min = |m: i64| now + Duration::minutes(m);
    let k = ClaimKey::Request(r.id);
    assert!(s.claim(k, "replica-a", now, min(1)).unwrap());
    assert!(!s.claim(k, "replica-b", now, min(1)).unwrap(), "held by a");
    assert!(
        s.claim(k, "replica-a", now, min(2)).unwrap(),
        "the holder may renew"
    );
    assert!(!s.claim(k, "replica-b", min(1), min(3)).unwrap(), "renewed");
    assert!(
        s.claim(k, "replica-b", min(2), min(4)).unwrap(),
        "a's lease ran out"
    );
    s.release(k, "replica-a").unwrap(); // not a's any more: no effect
    assert!(!s.claim(k, "replica-a", min(2), min(4)).unwrap());
    s.release(k, "replica-b").unwrap();
    assert!(s.claim(k, "replica-a", min(2), min(4)).unwrap(), "released");
    // Another key is independent.
    assert!(s
        .claim(
            ClaimKey::Request(RequestId(r.id.0 + 1)),
            "replica-b",
            now,
            min(1)
        )
        .unwrap());

    // Outbox rows: only undelivered and due rows can be claimed.
    let row = s.outbox_due(now, 10).unwrap().remove(0);
    let o = ClaimKey::Outbox(row.id);
    assert!(s.claim(o, "replica-a", now, min(1)).unwrap());
    assert!(!s.claim(o, "replica-b", now, min(1)).unwrap());
    s.outbox_failed(row.id, &[], "down", min(5)).unwrap();
    s.release(o, "replica-a").unwrap();
    assert!(
        !s.claim(o, "replica-b", min(1), min(2)).unwrap(),
        "not due before its retry time"
    );
    assert!(s.claim(o, "replica-b", min(5), min(6)).unwrap());
    s.outbox_delivered(row.id, min(5)).unwrap();
    s.release(o, "replica-b").unwrap();
    assert!(
        !s.claim(o, "replica-a", min(7), min(8)).unwrap(),
        "delivered rows are never claimed again"
    );
    assert!(!s
        .claim(ClaimKey::Outbox(row.id + 1000), "replica-a", now, min(1))
        .unwrap());
}

pub fn batches_commit_each_transition_alone_in_one_transaction(s: &dyn Store) {
    let now = Utc::now();
    let a = activate(s, insert(s, "r1", "alice"));
    let b = activate(s, insert(s, "r2", "alice"));
    let c = activate(s, insert(s, "r3", "alice"));
    let approved = {
        let mut r = insert(s, "r4", "alice");
        let ev = lifecycle::approve(&mut r, &role("r4"), "bob", None, Ok(None), now).unwrap();
        s.commit(&r, &ev, &[], now).unwrap()
    };
    let revoke = |r: &Request| {
        let mut r = r.clone();
        let event =
            lifecycle::begin_revoke(&mut r, "sweeper", "expired", now, now, owner()).unwrap();
        Transition {
            request: r,
            event,
            alerts: vec![],
        }
    };
    // b moves on before the batch: its loaded version is stale.
    let mut b2 = b.clone();
    let ev = lifecycle::begin_revoke(&mut b2, "alice", "done", now, now, owner()).unwrap();
    s.commit(&b2, &ev, &[], now).unwrap();
    let head = s.audit_head().unwrap().0;
    let undelivered = s.outbox_undelivered().unwrap();
    let mut with_alert = revoke(&c);
    with_alert.alerts = vec![alert()];
    let mut gone = revoke(&a);
    gone.request.id = RequestId(a.id.0 + 1000);
    let intent = {
        let mut r = approved.clone();
        let event = lifecycle::begin_grant(&mut r, "alice", owner(), now).unwrap();
        Transition {
            request: r,
            event,
            alerts: vec![],
        }
    };
    let out = s
        .commit_batch(
            &[revoke(&a), revoke(&b), with_alert, revoke(&a), gone, intent],
            now,
        )
        .unwrap();
    assert_eq!(out.len(), 6);
    let ra = out[0].as_ref().unwrap();
    assert_eq!((ra.state, ra.version), (State::Revoking, a.version + 1));
    assert!(matches!(out[1], Err(StoreError::Conflict(id)) if id == b.id));
    assert_eq!(out[2].as_ref().unwrap().state, State::Revoking);
    assert!(
        matches!(out[3], Err(StoreError::Conflict(id)) if id == a.id),
        "a second transition of one request in a batch: {:?}",
        out[3]
    );
    assert!(matches!(out[4], Err(StoreError::NotFound(_))));
    assert!(out[5].is_err(), "grant intents are not batched");
    // What committed is stored, audited in order on the chain, with its alert.
    assert_eq!(s.get(a.id).unwrap().unwrap(), *ra);
    assert_eq!(s.get(c.id).unwrap().unwrap().state, State::Revoking);
    assert_eq!(s.get(approved.id).unwrap().unwrap().state, State::Approved);
    let events = s.audit_range(head + 1, 10).unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.request_id, e.action.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (Some(a.id.0), "revoke.started"),
            (Some(c.id.0), "revoke.started")
        ]
    );
    assert_eq!(s.outbox_undelivered().unwrap(), undelivered + 1);
    assert_eq!(
        s.outbox_undelivered_for(c.id).unwrap(),
        2,
        "activation + batch"
    );
    verify(s);
    assert_eq!(s.commit_batch(&[], now).unwrap().len(), 0);
    // A batch of only refused transitions changes nothing.
    let head = s.audit_head().unwrap();
    let out = s.commit_batch(&[revoke(&b)], now).unwrap();
    assert!(matches!(out[0], Err(StoreError::Conflict(_))));
    assert_eq!(s.audit_head().unwrap(), head);
}

pub fn claims_are_taken_over_only_from_the_named_holder(s: &dyn Store) {
    let r = activate(s, insert(s, "r1", "alice"));
    let now = Utc::now() + Duration::seconds(1);
    let min = |m: i64| now + Duration::minutes(m);
    let k = ClaimKey::Request(r.id);
    assert_eq!(s.claim_holder(k).unwrap(), None);
    assert!(s.claim(k, "host:1:gone", now, min(1)).unwrap());
    let (holder, until) = s.claim_holder(k).unwrap().unwrap();
    assert_eq!(holder, "host:1:gone");
    assert_eq!(until.timestamp_micros(), min(1).timestamp_micros());
    assert!(
        !s.take_over(k, "host:2:someone-else", "replica-b", now, min(2))
            .unwrap(),
        "not held by that one"
    );
    assert!(s
        .take_over(k, "host:1:gone", "replica-b", now, min(2))
        .unwrap());
    assert_eq!(s.claim_holder(k).unwrap().unwrap().0, "replica-b");
    assert!(
        !s.take_over(k, "host:1:gone", "replica-c", now, min(2))
            .unwrap(),
        "of two takers exactly one wins"
    );
    assert!(
        !s.claim(k, "replica-c", now, min(2)).unwrap(),
        "b holds it now"
    );
    s.release(k, "replica-b").unwrap();
    assert_eq!(s.claim_holder(k).unwrap(), None);
    assert!(
        !s.take_over(k, "replica-b", "replica-c", now, min(2))
            .unwrap(),
        "a released claim is claimed, not taken over"
    );

    // Outbox rows: the same conditions as a claim (undelivered, due).
    let row = s.outbox_due(now, 10).unwrap().remove(0);
    let o = ClaimKey::Outbox(row.id);
    assert!(s.claim(o, "host:1:gone", now, min(1)).unwrap());
    s.outbox_delivered(row.id, now).unwrap();
    assert!(
        !s.take_over(o, "host:1:gone", "replica-b", now, min(1))
            .unwrap(),
        "a delivered row is never taken over"
    );
}

/// Two handles on one store: a waiter on `a` wakes within a second of a commit
/// through `b`, and times out when nothing happens.
pub fn waiters_see_commits_from_other_handles(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let head = a.audit_head().unwrap().0;
    let t = Instant::now();
    assert!(!a.wait_for_change(head, std::time::Duration::from_millis(300)));
    assert!(t.elapsed() >= std::time::Duration::from_millis(290));
    for round in 0..3 {
        let head = a.audit_head().unwrap().0;
        let writer = {
            let b = b.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(400));
                insert(b.as_ref(), &format!("live-{round}"), "alice");
                Instant::now()
            })
        };
        let changed = a.wait_for_change(head, std::time::Duration::from_secs(10));
        let woke = Instant::now();
        let committed = writer.join().unwrap();
        assert!(changed, "round {round}: the waiter saw no change");
        let lag = woke.saturating_duration_since(committed);
        assert!(
            lag < std::time::Duration::from_secs(1),
            "round {round}: woke {lag:?} after the commit"
        );
        assert!(a.audit_head().unwrap().0 > head);
    }
}

/// Several handles (processes, in effect) racing on one store: one winner per
/// version, one grant per role, and a linear chain.
pub fn racing_handles_serialise(handles: Vec<Arc<dyn Store>>) {
    let s0 = handles[0].clone();
    let n = handles.len();
    // Everyone commits a transition from the same loaded version: one lands.
    let r = insert(s0.as_ref(), "race", "alice");
    let outcomes: Vec<_> = handles
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let (h, mut x) = (h.clone(), r.clone());
            std::thread::spawn(move || {
                let ev = lifecycle::approve(
                    &mut x,
                    &role("race"),
                    &format!("approver-{i}"),
                    None,
                    Ok(None),
                    Utc::now(),
                )
                .unwrap();
                h.commit(&x, &ev, &[alert()], Utc::now())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes
        .iter()
        .all(|o| o.is_ok() || matches!(o, Err(StoreError::Conflict(_)))));
    assert_eq!(s0.get(r.id).unwrap().unwrap().approvals.len(), 1);
    assert_eq!(
        s0.outbox_undelivered().unwrap(),
        1,
        "one alert, the winner's"
    );

    // n approved requests of one role, granted at once: one holder.
    let approved: Vec<Request> = (0..n)
        .map(|i| {
            let mut x = insert(s0.as_ref(), "lock", &format!("req-{i}"));
            let ev = lifecycle::approve(
                &mut x,
                &role("lock"),
                "approver",
                None,
                Ok(None),
                Utc::now(),
            )
            .unwrap();
            s0.commit(&x, &ev, &[], Utc::now()).unwrap()
        })
        .collect();
    let outcomes: Vec<_> = handles
        .iter()
        .zip(approved)
        .map(|(h, mut x)| {
            let h = h.clone();
            std::thread::spawn(move || {
                let who = x.requester.clone();
                let ev = lifecycle::begin_grant(&mut x, &who, owner(), Utc::now()).unwrap();
                h.commit(&x, &ev, &[], Utc::now())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes
        .iter()
        .all(|o| o.is_ok() || matches!(o, Err(StoreError::Locked { .. }))));
    let holders = s0
        .list(&Query {
            role: Some("lock".into()),
            states: Some(vec![State::Granting]),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(holders.len(), 1);

    // Appends from every handle at once: the chain stays linear.
    let before = s0.audit_head().unwrap().0;
    let threads: Vec<_> = handles
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = h.clone();
            std::thread::spawn(move || {
                for j in 0..10 {
                    if j % 2 == 0 {
                        insert(h.as_ref(), &format!("append-{i}-{j}"), "alice");
                    } else {
                        let detail = serde_json::json!({"i": i, "j": j});
                        let note = breakglass::store::Note {
                            action: breakglass::domain::AuditAction::PolicyRefused,
                            actor: "mallory",
                            from: None,
                            to: None,
                            detail: &detail,
                        };
                        h.append_note(None, &note, &[alert()], Utc::now()).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(s0.audit_head().unwrap().0, before + 10 * n as i64);
    verify(s0.as_ref());
}

/// An auto-approved request awaiting its post-hoc review does not lock the role
/// until its certification deadline; then it does, inside the store's own check.
pub fn auto_approved_reviews_lock_only_once_overdue(s: &dyn Store) {
    let mut r = insert(s, "r1", "svc-failover");
    let deadline = Utc::now() + Duration::hours(1);
    r.auto_approved = true;
    r.certify_by = Some(deadline);
    let r = activate(s, r);
    let now = Utc::now();
    let mut x = r.clone();
    let owner = Owner {
        host: "test".into(),
        pid: 1,
    };
    let ev = lifecycle::begin_revoke(&mut x, "svc-failover", "done", now, now, owner).unwrap();
    let mut x = s.commit(&x, &ev, &[], now).unwrap();
    let ev = lifecycle::revoked(&mut x, "svc-failover", now).unwrap();
    let ended = s.commit(&x, &ev, &[], now).unwrap();
    assert_eq!(ended.state, State::Ended);
    assert_eq!(
        s.role_lock("r1", now).unwrap(),
        None,
        "usable again before the deadline"
    );
    assert!(insert_ok(s, "r1", now));
    let late = deadline + Duration::seconds(1);
    assert_eq!(
        s.role_lock("r1", late).unwrap(),
        Some((ended.id, State::Ended))
    );
}

/// One whole use of `role_name` by `who` at `at`: filed, approved, granted and
/// ended there. Auto-approved within its certification grace, so it leaves the
/// role free for the next.
fn used_at(s: &dyn Store, role_name: &str, who: &str, at: chrono::DateTime<Utc>) -> Request {
    let role = role(role_name);
    let (mut req, ev) = lifecycle::new_request(
        &role,
        NewRequest {
            incident: IncidentRef::Ticket {
                reference: "INC-3".into(),
            },
            condition: "outage".into(),
            reason: "r".into(),
            ttl_seconds: None,
        },
        who,
        at,
    )
    .unwrap();
    req.auto_approved = true;
    req.certify_by = Some(Utc::now() + Duration::days(365));
    let mut r = s.insert_request(&req, &ev, &[], at).unwrap();
    let ev = lifecycle::approve(&mut r, &role, "approver", None, Ok(None), at).unwrap();
    let mut r = s.commit(&r, &ev, &[], at).unwrap();
    let ev = lifecycle::begin_grant(&mut r, who, owner(), at).unwrap();
    let mut r = s.commit(&r, &ev, &[], at).unwrap();
    let ev = lifecycle::granted(&mut r, "lease-1", None, at).unwrap();
    let mut r = s.commit(&r, &ev, &[], at).unwrap();
    let ev = lifecycle::begin_revoke(&mut r, who, "done", at, at, owner()).unwrap();
    let mut r = s.commit(&r, &ev, &[], at).unwrap();
    let ev = lifecycle::revoked(&mut r, who, at).unwrap();
    s.commit(&r, &ev, &[], at).unwrap()
}

/// Routine use: requests of a role (and of one requester) granted since an
/// instant, counted once each; ones never granted do not count.
pub fn activations_are_counted_by_role_requester_and_window(s: &dyn Store) {
    let t0 = Utc::now();
    used_at(s, "r1", "alice", t0 - Duration::days(10));
    used_at(s, "r1", "alice", t0 - Duration::days(2));
    used_at(s, "r1", "bob", t0 - Duration::days(1));
    used_at(s, "r2", "alice", t0 - Duration::days(1));
    // Filed but never granted: not an activation.
    insert(s, "r1", "alice");
    let n = |role: &str, who: Option<&str>, days: i64| {
        s.activations_since(role, who, t0 - Duration::days(days))
            .unwrap()
    };
    assert_eq!(n("r1", None, 30), 3);
    assert_eq!(n("r1", None, 5), 2);
    assert_eq!(n("r1", None, 2), 2, "the window's first instant is in it");
    assert_eq!(n("r1", Some("alice"), 30), 2);
    assert_eq!(n("r1", Some("alice"), 5), 1);
    assert_eq!(n("r1", Some("bob"), 5), 1);
    assert_eq!(n("r1", Some("carol"), 30), 0);
    assert_eq!(n("r2", None, 30), 1);
    assert_eq!(n("r3", None, 30), 0);
    assert_eq!(n("r1", None, 0), 0);
}

fn insert_ok(s: &dyn Store, role_name: &str, now: chrono::DateTime<Utc>) -> bool {
    let (req, ev) = lifecycle::new_request(
        &role(role_name),
        NewRequest {
            incident: IncidentRef::Ticket {
                reference: "INC-9".into(),
            },
            condition: "outage".into(),
            reason: "r".into(),
            ttl_seconds: None,
        },
        "bob",
        now,
    )
    .unwrap();
    s.insert_request(&req, &ev, &[], now).is_ok()
}

#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            insert_assigns_ids_versions_and_audits,
            stale_versions_conflict_and_change_nothing,
            unknown_requests,
            the_role_lock_is_checked_atomically,
            list_filters_and_orders,
            alerts_are_queued_with_their_transition_and_retried,
            approval_notices_get_their_id_and_do_not_hold_back_access,
            audit_pages_in_order_and_chains,
            notes_append_to_the_chain_without_changing_state,
            role_events_are_found_by_role_and_action,
            claims_are_exclusive_until_they_run_out,
            claims_are_taken_over_only_from_the_named_holder,
            batches_commit_each_transition_alone_in_one_transaction,
            auto_approved_reviews_lock_only_once_overdue,
            activations_are_counted_by_role_requester_and_window,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let (_guard, store) = $make;
                support::store_conformance::$case(store.as_ref());
            }
        )*
    };
}
