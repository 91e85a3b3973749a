//! Each rule the engine enforces, one test each, on the demo policy with a manual clock.

use crate::support;

use breakglass::backend::{Backend, BackendError, Grant, GrantSpec, RevokeSpec};
use breakglass::domain::lifecycle::Reason;
use breakglass::domain::{RefusalKind, State};
use breakglass::engine::{Decision, Error, IncidentChoice};
use breakglass::store::Store;
use chrono::Duration;
use secrecy::ExposeSecret;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use support::*;

/// A refusal of `kind` for `reason`; `needle` checks the message still says
/// what would be accepted.
fn refused(e: Error, kind: RefusalKind, reason: Reason, needle: &str) {
    match e {
        Error::Refused(r) => {
            assert_eq!((r.kind, r.reason), (kind, reason), "{}", r.message);
            assert!(
                r.message.contains(needle),
                "`{}` lacks `{needle}`",
                r.message
            );
        }
        other => panic!("expected a refusal containing `{needle}`, got {other:?}"),
    }
}

/// One request that must be refused: who asks, what differs from a valid
/// request for the role, and what the refusal must say.
struct Refused {
    rule: &'static str,
    who: &'static str,
    role: &'static str,
    incident: IncidentChoice,
    condition: Option<&'static str>,
    reason: Option<&'static str>,
    ttl_seconds: Option<i64>,
    kind: RefusalKind,
    says: &'static str,
}

fn case(rule: &'static str, role: &'static str, incident: IncidentChoice) -> Refused {
    Refused {
        rule,
        who: "alice",
        role,
        incident,
        condition: None,
        reason: None,
        ttl_seconds: None,
        kind: RefusalKind::Policy,
        says: "",
    }
}

impl Refused {
    fn says(self, kind: RefusalKind, needle: &'static str) -> Self {
        Refused {
            kind,
            says: needle,
            ..self
        }
    }
}

#[tokio::test]
async fn every_request_rule_refuses_and_says_why() {
    use RefusalKind::{Input, Policy};
    let t = |s: &str| IncidentChoice::Ticket(s.into());
    let cases = [
        case("an incident no source knows", DBA, inc("INC-9999"))
            .says(Policy, "breakglass incidents"),
        case("a resolved incident", DBA, inc("INC-1039")).says(Policy, "resolved"),
        case("a ticket where the role takes none", DBA, t("INC-1")).says(Policy, "--incident"),
        case("a ticket of another shape", K8S, t("JIRA-7")).says(Policy, "^(INC|CHG)-[0-9]+$"),
        case("a ticket with more around it", K8S, t("x CHG-7 y")).says(Policy, "does not match"),
        Refused {
            condition: Some("curiosity"),
            ..case("a condition the role does not list", IAM, inc("INC-1044"))
        }
        .says(Policy, "\"locked-out administrators\""),
        Refused {
            reason: Some("  \n "),
            ..case("a blank reason", DBA, inc("INC-1042"))
        }
        .says(Input, "reason is required"),
        Refused {
            ttl_seconds: Some(31 * 60),
            ..case("a TTL over the role's maximum", DBA, inc("INC-1042"))
        }
        .says(Policy, "at most 30m"),
        Refused {
            ttl_seconds: Some(30),
            ..case(
                "a TTL under the role's min_ttl (1m by default)",
                DBA,
                inc("INC-1042"),
            )
        }
        .says(
            Policy,
            "too short for role prod-db-emergency-dba; ask for at least 1m",
        ),
        Refused {
            who: "carol",
            ..case("someone who may not request the role", DBA, inc("INC-1042"))
        }
        .says(Policy, "@oncall"),
    ];
    let h = harness();
    for c in cases {
        let mut i = input(c.role, c.incident.clone());
        if let Some(cond) = c.condition {
            i.condition = cond.into();
        }
        if let Some(r) = c.reason {
            i.reason = r.into();
        }
        i.ttl_seconds = c.ttl_seconds;
        match h.engine.request(c.who, i).await {
            Err(Error::Refused(r)) => {
                assert_eq!(r.kind, c.kind, "{}: {}", c.rule, r.message);
                assert!(
                    r.message.contains(c.says),
                    "{}: `{}` lacks `{}`",
                    c.rule,
                    r.message,
                    c.says
                );
            }
            other => panic!("{}: expected a refusal, got {other:?}", c.rule),
        }
    }
    assert!(h
        .engine
        .requests(&Default::default())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_request_for_an_open_incident_is_pending_with_its_title() {
    let h = harness();
    let r = h.requested(DBA).await;
    assert_eq!(r.state, State::Pending);
    assert!(r.incident.label().contains("Checkout API"));
}

#[tokio::test]
async fn a_matching_ticket_stands_for_the_incident() {
    let h = harness();
    let r = h
        .engine
        .request("alice", input(K8S, IncidentChoice::Ticket("CHG-7".into())))
        .await
        .unwrap();
    assert_eq!(r.incident.label(), "ticket CHG-7");
}

#[tokio::test]
async fn a_condition_matches_whatever_its_case() {
    let h = harness();
    let mut i = input(IAM, inc("INC-1044"));
    i.condition = "Locked-Out Administrators".into();
    let r = h.engine.request("alice", i).await.unwrap();
    assert_eq!(r.condition, "locked-out administrators");
}

#[tokio::test]
async fn ttl_defaults_to_the_roles_and_may_be_anything_up_to_its_maximum() {
    let h = harness();
    let r = h.requested(DBA).await;
    assert_eq!(r.ttl_seconds, 15 * 60);
    h.engine.cancel("alice", r.id).await.unwrap();
    let mut i = input(DBA, inc("INC-1042"));
    i.ttl_seconds = Some(20 * 60);
    assert_eq!(
        h.engine.request("alice", i).await.unwrap().ttl_seconds,
        1200
    );
}

#[tokio::test]
async fn approvals_are_distinct_never_the_requester_and_only_approvers() {
    let h = harness();
    let r = h.requested(DBA).await;
    refused(
        h.engine
            .decide("alice", r.id, Decision::approve(None))
            .await
            .unwrap_err(),
        RefusalKind::Policy,
        Reason::OwnRequest,
        "cannot approve",
    );
    // bob and carol approve; alice is not an approver of a request by bob either.
    let r2 = h
        .engine
        .decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();
    assert_eq!((r2.state, r2.approvals.len()), (State::Pending, 1));
    refused(
        h.engine
            .decide("bob", r.id, Decision::approve(None))
            .await
            .unwrap_err(),
        RefusalKind::Policy,
        Reason::AlreadyApproved,
        "already approved",
    );
    assert_eq!(h.engine.load(r.id).await.unwrap().approvals.len(), 1);
    let r3 = h
        .engine
        .decide("carol", r.id, Decision::approve(Some("ok".into())))
        .await
        .unwrap();
    assert_eq!(r3.state, State::Approved);
    assert_eq!(r3.approvers(), vec!["bob", "carol"]);

    let other = h
        .engine
        .request("bob", input(K8S, inc("INC-1042")))
        .await
        .unwrap();
    refused(
        h.engine
            .decide("alice", other.id, Decision::approve(None))
            .await
            .unwrap_err(),
        RefusalKind::Policy,
        Reason::NotPermitted,
        "may not approve",
    );
}

/// The lifecycle applies a decision's signature check after the decision's own
/// rules: a decision nobody may make is refused for that, and a verified
/// signature is kept with the decision and its audit event.
#[test]
fn a_decision_is_checked_before_its_signature_and_keeps_it() {
    use breakglass::domain::lifecycle::{self, NewRequest};
    use breakglass::domain::{IncidentRef, Refusal, SshSignature};
    let role = support::store_conformance::role("db");
    let now = chrono::Utc::now();
    let (mut r, _) = lifecycle::new_request(
        &role,
        NewRequest {
            incident: IncidentRef::Ticket {
                reference: "INC-1".into(),
            },
            condition: "outage".into(),
            reason: "r".into(),
            ttl_seconds: None,
        },
        "alice",
        now,
    )
    .unwrap();
    let unsigned = || {
        Err(Refusal::new(
            RefusalKind::Policy,
            Reason::Signature,
            "sign it",
        ))
    };
    let e = lifecycle::approve(&mut r, &role, "alice", None, unsigned(), now).unwrap_err();
    assert_eq!(e.reason, Reason::OwnRequest, "{}", e.message);
    let e = lifecycle::approve(&mut r, &role, "bob", None, unsigned(), now).unwrap_err();
    assert_eq!(
        (e.reason, e.message.as_str()),
        (Reason::Signature, "sign it")
    );
    assert!(r.approvals.is_empty() && r.state == State::Pending);

    let sig = SshSignature {
        signed_at: now,
        armored: "-----BEGIN SSH SIGNATURE-----".into(),
    };
    let ev = lifecycle::deny(&mut r, &role, "bob", " no ", Ok(Some(sig.clone())), now).unwrap();
    assert_eq!(ev.detail["signature"], serde_json::json!(sig));
    let denial = r.denial.as_ref().unwrap();
    assert_eq!(
        (denial.comment.as_str(), denial.signature.as_ref()),
        ("no", Some(&sig))
    );
}

#[tokio::test]
async fn a_denial_ends_the_request() {
    let h = harness();
    let r = h.requested(K8S).await;
    refused(
        h.engine
            .decide("carol", r.id, Decision::deny(" "))
            .await
            .unwrap_err(),
        RefusalKind::Input,
        Reason::BadField,
        "reason",
    );
    let d = h
        .engine
        .decide("carol", r.id, Decision::deny("use the runbook first"))
        .await
        .unwrap();
    assert_eq!(d.state, State::Denied);
    refused(
        h.engine
            .decide("bob", r.id, Decision::approve(None))
            .await
            .unwrap_err(),
        RefusalKind::State,
        Reason::WrongState,
        "denied",
    );
    assert!(h.engine.activate("alice", r.id).await.is_err());
    assert_eq!(h.alerts_of_kind("denial"), 1);
}

#[tokio::test]
async fn pending_and_unactivated_requests_lapse() {
    let h = harness();
    let r = h.requested(K8S).await;
    h.clock.advance(Duration::minutes(29));
    assert!(h.engine.recover().await.unwrap().lapsed.is_empty());
    h.clock.advance(Duration::minutes(2));
    assert_eq!(
        h.engine.recover().await.unwrap().lapsed,
        vec![r.id.to_string()]
    );
    assert_eq!(h.state(r.id), State::Lapsed);
    refused(
        h.engine
            .decide("bob", r.id, Decision::approve(None))
            .await
            .unwrap_err(),
        RefusalKind::State,
        Reason::WrongState,
        "lapsed",
    );

    let a = h.approved(K8S).await;
    h.clock.advance(Duration::minutes(31));
    h.engine.recover().await.unwrap();
    assert_eq!(h.state(a.id), State::Lapsed);
    assert!(h.leases().is_empty());
}

#[test]
fn as_flag_is_refused_outside_demo_mode() {
    use breakglass::identity::{resolve, IdentityError};
    let h = harness();
    let mut policy = h.engine.policy().clone();
    assert_eq!(resolve(&policy, Some("bob")).unwrap(), "bob");
    assert!(matches!(
        resolve(&policy, Some("mallory")),
        Err(IdentityError::UnknownPersona(..))
    ));
    policy.demo_personas = None;
    assert!(matches!(
        resolve(&policy, Some("bob")),
        Err(IdentityError::AsOutsideDemo)
    ));
    let me = resolve(&policy, None).unwrap();
    let uid = nix::unistd::getuid();
    assert_eq!(me, nix::unistd::User::from_uid(uid).unwrap().unwrap().name);
}

/// A backend that records what the store said while it was being called.
#[derive(Default)]
struct Spy {
    store: Mutex<Option<Arc<dyn Store>>>,
    seen_state_at_grant: Mutex<Option<State>>,
    fail_grant: bool,
    revoke_failures_left: AtomicU32,
    revokes: Mutex<Vec<Option<String>>>,
    hang_grant: bool,
    rotations: AtomicU32,
    fail_rotate: bool,
    /// The grant takes this long on the engine's clock.
    slow_grant: Mutex<Option<(Arc<breakglass::clock::ManualClock>, Duration)>>,
    /// The expiry the last grant was asked for.
    asked_expiry: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
}

#[async_trait::async_trait]
impl Backend for Spy {
    fn kind(&self) -> &'static str {
        "spy"
    }
    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError> {
        let id = spec.request_id.parse().unwrap();
        let store = self.store.lock().unwrap().clone().unwrap();
        *self.seen_state_at_grant.lock().unwrap() = Some(store.get(id).unwrap().unwrap().state);
        *self.asked_expiry.lock().unwrap() = Some(spec.expires_at);
        if let Some((clock, took)) = &*self.slow_grant.lock().unwrap() {
            clock.advance(*took);
        }
        if self.hang_grant {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
        if self.fail_grant {
            return Err(BackendError::Failed("target refused: quota".into()));
        }
        Ok(Grant {
            lease_id: format!("spy-{}", spec.request_id),
            expires_at: None,
            credential: Default::default(),
        })
    }
    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError> {
        self.revokes.lock().unwrap().push(spec.lease_id.clone());
        if self.revoke_failures_left.load(Ordering::SeqCst) > 0 {
            self.revoke_failures_left.fetch_sub(1, Ordering::SeqCst);
            return Err(BackendError::Failed("target unreachable".into()));
        }
        Ok(())
    }
    async fn rotate(&self, _role: &str, _scope: &serde_json::Value) -> Result<(), BackendError> {
        self.rotations.fetch_add(1, Ordering::SeqCst);
        if self.fail_rotate {
            return Err(BackendError::Failed("vault sealed".into()));
        }
        Ok(())
    }
    async fn check(&self) -> Result<String, BackendError> {
        Ok("spy".into())
    }
}

fn with_spy(spy: Spy) -> (H, Arc<Spy>) {
    let spy = Arc::new(spy);
    let s2 = spy.clone();
    let h = harness_with(move |p| {
        *s2.store.lock().unwrap() = Some(p.store.clone());
        p.backends.insert("demo".into(), s2.clone());
        p.policy.roles.get_mut(K8S).unwrap().rotate_after_use = true;
    });
    (h, spy)
}

/// The deadline is fixed at grant intent: a backend that takes a while and
/// reports no expiry of its own is asked for that deadline, and the store keeps
/// it, not the moment the backend answered plus the TTL.
#[tokio::test]
async fn expiry_is_the_deadline_fixed_at_intent_however_long_the_grant_takes() {
    let (h, spy) = with_spy(Spy::default());
    *spy.slow_grant.lock().unwrap() = Some((h.clock.clone(), Duration::seconds(40)));
    let a = h.approved(K8S).await;
    let intent = h.clock_now();
    let (r, _) = h.engine.activate("alice", a.id).await.unwrap();
    let asked = spy.asked_expiry.lock().unwrap().unwrap();
    assert_eq!(asked, intent + Duration::seconds(r.ttl_seconds));
    assert_eq!(r.expires_at(), Some(asked));
    let g = r.grant.as_ref().unwrap();
    assert_eq!(g.granted_at, Some(intent + Duration::seconds(40)));
    assert_eq!(
        r.remaining(h.clock_now()),
        Some(Duration::seconds(r.ttl_seconds - 40))
    );
}

#[tokio::test]
async fn rotation_after_use_is_audited_and_a_failure_alerted() {
    let (h, spy) = with_spy(Spy::default());
    let (r, _) = h.active(K8S).await;
    h.engine.revoke("alice", r.id, "done").await.unwrap();
    assert_eq!(spy.rotations.load(Ordering::SeqCst), 1);
    let last = h.store.audit_range(h.audit_len(), 1).unwrap().remove(0);
    assert!(
        last.detail.contains("\"rotation\":\"rotated\""),
        "{}",
        last.detail
    );

    let (h, spy) = with_spy(Spy {
        fail_rotate: true,
        ..Default::default()
    });
    let (r, _) = h.active(K8S).await;
    let ended = h.engine.revoke("alice", r.id, "done").await.unwrap();
    assert_eq!(
        ended.state,
        State::Ended,
        "a failed rotation does not undo the revocation"
    );
    assert_eq!(spy.rotations.load(Ordering::SeqCst), 1);
    let last = h.store.audit_range(h.audit_len(), 1).unwrap().remove(0);
    assert!(last.detail.contains("vault sealed"), "{}", last.detail);
    assert_eq!(h.alerts_of_kind("rotate_failed"), 1);
}

#[tokio::test]
async fn the_grant_intent_is_stored_before_the_backend_is_called() {
    let (h, spy) = with_spy(Spy::default());
    let (r, _) = h.active(K8S).await;
    assert_eq!(
        *spy.seen_state_at_grant.lock().unwrap(),
        Some(State::Granting)
    );
    assert_eq!(r.state, State::Active);
    let g = r.grant.unwrap();
    assert_eq!(g.owner.pid, std::process::id());
    assert_eq!(h.alerts_of_kind("activation"), 1);
}

#[tokio::test]
async fn a_failed_grant_is_revoked_by_request_id_and_marked_failed() {
    let (h, spy) = with_spy(Spy {
        fail_grant: true,
        ..Default::default()
    });
    let r = h.approved(K8S).await;
    let e = h.engine.activate("alice", r.id).await.unwrap_err();
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    assert!(e.to_string().contains("quota"));
    assert_eq!(h.state(r.id), State::Failed);
    assert_eq!(*spy.revokes.lock().unwrap(), vec![None]);
    // Failed does not lock the role.
    assert!(h.store.role_lock(K8S, h.engine.now()).unwrap().is_none());
}

#[tokio::test]
async fn a_grant_stuck_past_its_timeout_is_recovered() {
    let (h, spy) = with_spy(Spy {
        hang_grant: true,
        ..Default::default()
    });
    let h = Arc::new(h);
    let r = h.approved(K8S).await;
    let h2 = h.clone();
    let stuck = tokio::spawn(async move { h2.engine.activate("alice", r.id).await });
    while h.state(r.id) != State::Granting {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Our own pid is alive, so only the timeout can release it.
    assert!(h
        .engine
        .recover()
        .await
        .unwrap()
        .interrupted_grants_failed
        .is_empty());
    h.clock.advance(Duration::seconds(121));
    let rep = h.engine.recover().await.unwrap();
    assert_eq!(rep.interrupted_grants_failed, vec![r.id.to_string()]);
    assert_eq!(h.state(r.id), State::Failed);
    assert_eq!(*spy.revokes.lock().unwrap(), vec![None]);
    stuck.abort();
}

#[tokio::test]
async fn revoke_is_idempotent() {
    let h = harness();
    let (r, _) = h.active(K8S).await;
    assert_eq!(h.leases().len(), 1);
    let ended = h.engine.revoke("alice", r.id, "done").await.unwrap();
    assert_eq!(ended.state, State::Ended);
    assert!(h.leases().is_empty());
    let events = h.audit_len();
    let again = h.engine.revoke("alice", r.id, "done").await.unwrap();
    assert_eq!(again.state, State::Ended);
    assert_eq!(h.audit_len(), events, "a second revoke is not a transition");
    // The backend itself accepts revoking what is already gone.
    let spec = RevokeSpec {
        request_id: r.id.to_string(),
        role: K8S.into(),
        scope: serde_json::json!({}),
        lease_id: Some("never-issued".into()),
    };
    h.demo_target().revoke(&spec).await.unwrap();
}

#[tokio::test]
async fn only_requester_approvers_or_certifiers_may_end_access() {
    let h = harness();
    let (r, _) = h.active(K8S).await;
    refused(
        h.engine.revoke("mallory", r.id, "x").await.unwrap_err(),
        RefusalKind::Policy,
        Reason::NotPermitted,
        "may not end",
    );
    // dave is a certifier (security), not the requester: security can pull access.
    assert_eq!(
        h.engine
            .revoke("dave", r.id, "security ended it")
            .await
            .unwrap()
            .state,
        State::Ended
    );
    assert_eq!(h.alerts_of_kind("early_end"), 1);
}

async fn lock_reason(h: &H) -> String {
    match h.engine.request("bob", input(DBA, inc("INC-1042"))).await {
        Err(Error::Locked { reason, .. }) => reason,
        other => panic!("expected the role to be locked, got {other:?}"),
    }
}

#[tokio::test]
async fn a_role_stays_locked_until_a_different_person_certifies() {
    let h = harness();
    let (r, _) = h.active(DBA).await;
    assert!(lock_reason(&h).await.contains("holds active access"));
    h.engine.revoke("alice", r.id, "fixed").await.unwrap();
    assert!(lock_reason(&h)
        .await
        .contains(&format!("awaiting the after-action review of {}", r.id)));
    refused(
        h.engine.review("bob", r.id, answers()).await.unwrap_err(),
        RefusalKind::Policy,
        Reason::NotPermitted,
        "written by its requester",
    );
    h.engine.review("alice", r.id, answers()).await.unwrap();
    assert!(lock_reason(&h)
        .await
        .contains(&format!("awaiting certification of {}", r.id)));
    let roles = h.engine.roles(Some("alice")).await.unwrap();
    let v = roles.iter().find(|x| x.name == DBA).unwrap();
    assert_eq!(
        v.lock_reason.as_deref(),
        Some(format!("awaiting certification of {} by @security", r.id).as_str())
    );
    // Other roles are unaffected.
    assert!(roles
        .iter()
        .find(|x| x.name == K8S)
        .unwrap()
        .lock_reason
        .is_none());
    refused(
        h.engine
            .decide("alice", r.id, Decision::certify(""))
            .await
            .unwrap_err(),
        RefusalKind::Policy,
        Reason::OwnRequest,
        "cannot certify",
    );
    refused(
        h.engine
            .decide("carol", r.id, Decision::certify(""))
            .await
            .unwrap_err(),
        RefusalKind::Policy,
        Reason::NotPermitted,
        "may not certify",
    );
    // A rejection reopens the review and keeps the lock.
    refused(
        h.engine
            .decide("dave", r.id, Decision::reject(""))
            .await
            .unwrap_err(),
        RefusalKind::Input,
        Reason::BadField,
        "comment",
    );
    assert_eq!(
        h.engine
            .decide("dave", r.id, Decision::reject("say which tables"))
            .await
            .unwrap()
            .state,
        State::Ended
    );
    assert!(lock_reason(&h).await.contains("after-action review"));
    h.engine.review("alice", r.id, answers()).await.unwrap();
    assert_eq!(
        h.engine
            .decide("dave", r.id, Decision::certify("fine"))
            .await
            .unwrap()
            .state,
        State::Certified
    );
    assert!(h
        .engine
        .request("bob", input(DBA, inc("INC-1042")))
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn locked_role_check_is_also_made_at_grant_time() {
    let h = harness();
    // Two requests filed while the role was free, both approved.
    let a = h.requested(K8S).await;
    let b = h
        .engine
        .request("bob", input(K8S, inc("INC-1042")))
        .await
        .unwrap();
    h.engine
        .decide("carol", a.id, Decision::approve(None))
        .await
        .unwrap();
    h.engine
        .decide("carol", b.id, Decision::approve(None))
        .await
        .unwrap();
    h.engine.activate("alice", a.id).await.unwrap();
    let e = h.engine.activate("bob", b.id).await.unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e:?}");
    assert_eq!(h.state(b.id), State::Approved);
    assert_eq!(h.leases().len(), 1);
}

#[tokio::test]
async fn extensions_respect_count_total_and_need_a_reason() {
    let h = harness();
    let (r, _) = h.active(K8S).await; // 10m default, max 20m, 2 extensions, max_total 40m
    refused(
        h.engine.extend("bob", r.id, 600, "more").await.unwrap_err(),
        RefusalKind::Policy,
        Reason::NotPermitted,
        "only the requester",
    );
    refused(
        h.engine.extend("alice", r.id, 600, " ").await.unwrap_err(),
        RefusalKind::Input,
        Reason::BadField,
        "reason",
    );
    refused(
        h.engine
            .extend("alice", r.id, 21 * 60, "more")
            .await
            .unwrap_err(),
        RefusalKind::Policy,
        Reason::OverLimit,
        "max TTL",
    );
    let before = r.expires_at().unwrap();
    let e1 = h
        .engine
        .extend("alice", r.id, 20 * 60, "still failing over")
        .await
        .unwrap();
    assert_eq!(e1.expires_at().unwrap(), before + Duration::minutes(20));
    // 30m granted so far; 11 more would pass the 40m total.
    refused(
        h.engine
            .extend("alice", r.id, 11 * 60, "more")
            .await
            .unwrap_err(),
        RefusalKind::Policy,
        Reason::OverLimit,
        "at most 10m",
    );
    h.engine
        .extend("alice", r.id, 10 * 60, "last bit")
        .await
        .unwrap();
    refused(
        h.engine
            .extend("alice", r.id, 60, "more")
            .await
            .unwrap_err(),
        RefusalKind::Policy,
        Reason::OverLimit,
        "allows 2",
    );
    assert_eq!(h.alerts_of_kind("extension"), 2);
    let actions: Vec<String> = h
        .store
        .audit_range(1, 100)
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions.iter().filter(|a| *a == "grant.extended").count(), 2);
    // The demo target's own expiry moved too.
    let target = rusqlite::Connection::open(match &h.cfg.backends["demo"] {
        breakglass::config::BackendConfig::Demo { state_path } => state_path.clone(),
        _ => unreachable!(),
    })
    .unwrap();
    let exp: String = target
        .query_row("SELECT expires_at FROM leases", [], |x| x.get(0))
        .unwrap();
    assert_eq!(
        exp,
        breakglass::domain::time::ts(before + Duration::minutes(30))
    );
}

#[tokio::test]
async fn expiry_is_a_stored_instant_enforced_by_the_sweep() {
    let h = harness();
    let (r, _) = h.active(K8S).await;
    h.clock.advance(Duration::minutes(9));
    assert!(h.engine.recover().await.unwrap().expired_revoked.is_empty());
    assert_eq!(
        h.engine
            .view(h.engine.load(r.id).await.unwrap())
            .remaining_seconds,
        Some(60)
    );
    // A clock that jumps (or a process that slept) still ends access at the next sweep.
    h.clock.advance(Duration::hours(5));
    let rep = h.engine.recover().await.unwrap();
    assert_eq!(rep.expired_revoked, vec![r.id.to_string()]);
    let done = h.engine.load(r.id).await.unwrap();
    assert_eq!(done.state, State::Ended);
    assert_eq!(done.grant.unwrap().end.unwrap().reason, "expired");
    assert!(h.leases().is_empty());
}

#[tokio::test]
async fn a_failed_revocation_stays_revoking_and_is_retried_with_backoff() {
    let (h, spy) = with_spy(Spy {
        revoke_failures_left: AtomicU32::new(2),
        ..Default::default()
    });
    let (r, _) = h.active(K8S).await;
    let e = h.engine.revoke("alice", r.id, "done").await.unwrap_err();
    assert!(e.to_string().contains("will retry"), "{e}");
    let cur = h.engine.load(r.id).await.unwrap();
    assert_eq!(cur.state, State::Revoking);
    let g = cur.grant.unwrap();
    assert_eq!(g.revoke_attempts, 1);
    assert!(g.last_error.unwrap().contains("unreachable"));
    assert_eq!(h.alerts_of_kind("revoke_failed"), 1);
    // Not due yet: nothing happens.
    let rep = h.engine.recover().await.unwrap();
    assert!(rep.revokes_retried.is_empty() && rep.errors.is_empty());
    h.clock.advance(Duration::seconds(3));
    let rep = h.engine.recover().await.unwrap();
    assert_eq!(rep.errors.len(), 1, "second attempt fails too");
    assert_eq!(
        h.engine
            .load(r.id)
            .await
            .unwrap()
            .grant
            .unwrap()
            .revoke_attempts,
        2
    );
    h.clock.advance(Duration::seconds(5));
    let rep = h.engine.recover().await.unwrap();
    assert_eq!(rep.revokes_retried, vec![r.id.to_string()]);
    assert_eq!(h.state(r.id), State::Ended);
    assert_eq!(spy.revokes.lock().unwrap().len(), 3);
    assert!(h.engine.verify_audit().await.unwrap().1.is_none());
}

#[tokio::test]
async fn the_credential_never_reaches_the_store_outbox_or_alerts() {
    let h = harness();
    let (r, cred) = h.active(DBA).await;
    let password = cred
        .0
        .iter()
        .find(|(k, _)| k == "password")
        .unwrap()
        .1
        .expose_secret()
        .to_string();
    assert_eq!(password.len(), 32);
    h.engine.revoke("alice", r.id, "done").await.unwrap();
    h.engine.recover().await.unwrap(); // delivers alerts to alerts.jsonl
    assert!(std::fs::read_to_string(h.dir().join("alerts.jsonl"))
        .unwrap()
        .contains("activation"));
    let mut scanned = 0;
    for entry in std::fs::read_dir(h.dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            scanned += 1;
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes()),
                "credential found in {}",
                p.display()
            );
        }
    }
    assert!(
        scanned >= 4,
        "store, its WAL, the demo target and alerts were scanned"
    );
    assert!(!format!("{cred:?}").contains(&password));
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_approvers_each_count_once() {
    let h = harness();
    let r = h.requested(DBA).await;
    // Two engines with their own connections, as two terminals would have; each
    // commit runs on its own blocking-pool thread, so they really race.
    let other = breakglass::engine::Engine::from_config(&h.cfg).unwrap();
    let (a, b) = tokio::join!(
        h.engine.decide("bob", r.id, Decision::approve(None)),
        other.decide("carol", r.id, Decision::approve(None)),
    );
    a.unwrap();
    b.unwrap();
    let cur = h.engine.load(r.id).await.unwrap();
    assert_eq!(cur.state, State::Approved);
    assert_eq!(cur.approvals.len(), 2);
    // The same approver racing themself counts once.
    let r2 = h.requested(K8S).await;
    let (a, b) = tokio::join!(
        h.engine.decide("bob", r2.id, Decision::approve(None)),
        other.decide("bob", r2.id, Decision::approve(None)),
    );
    let (a, b) = (a.is_ok(), b.is_ok());
    assert!(a ^ b, "exactly one of the two identical approvals lands");
    assert_eq!(h.engine.load(r2.id).await.unwrap().approvals.len(), 1);
    assert!(h.engine.verify_audit().await.unwrap().1.is_none());
}

/// `a` and `b` within the microsecond the store rounds instants to.
fn about(a: Option<chrono::DateTime<chrono::Utc>>, b: Option<chrono::DateTime<chrono::Utc>>) {
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        (a - b).num_nanoseconds().unwrap().abs() <= 1_000,
        "{a} is not {b}"
    );
}

/// The sweeper's schedule (`Engine::next_due`): the earliest instant at which a
/// recovery pass would act; the daemon sleeps until then.
#[tokio::test]
async fn the_sweepers_schedule_is_the_earliest_deadline_recovery_acts_on() {
    let (h, _spy) = with_spy(Spy {
        revoke_failures_left: AtomicU32::new(1),
        ..Default::default()
    });
    assert_eq!(h.engine.next_due().await.unwrap(), None, "nothing to do");
    let pending = h.approved(DBA).await;
    h.engine.deliver_alerts().await.unwrap();
    // An approved request lapses at its decide_by.
    about(h.engine.next_due().await.unwrap(), Some(pending.decide_by));
    let mut i = input(K8S, inc("INC-1042"));
    i.ttl_seconds = Some(20);
    let r = h.engine.request("alice", i).await.unwrap();
    h.engine
        .decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();
    let (r, _) = h.engine.activate("alice", r.id).await.unwrap();
    let expiry = r.expires_at().unwrap();
    assert!(
        h.engine.next_due().await.unwrap().unwrap() <= h.clock_now(),
        "its incident was never asked about (revoke_on_resolve), and its alerts wait"
    );
    h.engine.recover().await.unwrap();
    // The expiry, 20 s away, before the incident's next check in 30 s.
    about(h.engine.next_due().await.unwrap(), Some(expiry));
    h.clock.advance(Duration::seconds(20));
    let rep = h.engine.recover().await.unwrap();
    assert_eq!(rep.errors.len(), 1, "{rep:?}");
    assert_eq!(h.state(r.id), State::Revoking);
    assert_eq!(
        h.engine.next_due().await.unwrap(),
        Some(h.clock_now() + Duration::seconds(2)),
        "the failed revocation's retry, after its back-off"
    );
    h.clock.advance(Duration::seconds(2));
    let rep = h.engine.recover().await.unwrap();
    assert_eq!(rep.revokes_retried, vec![r.id.to_string()]);
    about(h.engine.next_due().await.unwrap(), Some(pending.decide_by));
}

/// A backend whose revocations take a while; counts how many run at once.
#[derive(Default)]
struct SlowRevoke {
    in_flight: AtomicU32,
    most: AtomicU32,
    revoked: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Backend for SlowRevoke {
    fn kind(&self) -> &'static str {
        "slow"
    }
    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError> {
        Ok(Grant {
            lease_id: format!("slow-{}", spec.request_id),
            expires_at: None,
            credential: Default::default(),
        })
    }
    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.revoked.lock().unwrap().push(spec.request_id.clone());
        Ok(())
    }
    async fn rotate(&self, _role: &str, _scope: &serde_json::Value) -> Result<(), BackendError> {
        Ok(())
    }
    async fn check(&self) -> Result<String, BackendError> {
        Ok("slow".into())
    }
}

/// Expired grants are revoked several at once, at most `revoke_concurrency` per
/// sweeper, and each exactly once though two sweepers race for them.
#[tokio::test(flavor = "multi_thread")]
async fn expired_grants_are_revoked_many_at_once_and_each_once() {
    let n = 24;
    let roles: String = (0..n)
        .map(|i| {
            format!(
                r#"
[[roles]]
name = "bulk-{i}"
backend = "demo"
scope = {{}}
default_ttl = "1m"
max_ttl = "1m"
conditions = ["production outage"]
requesters = ["alice"]
approvers = ["bob"]
certifiers = ["dave"]
"#
            )
        })
        .collect();
    let slow = Arc::new(SlowRevoke::default());
    let s2 = slow.clone();
    let h = harness_edited(
        |t| {
            t.push_str(&roles);
            t.push_str("\n[recovery]\nrevoke_concurrency = 4\n");
        },
        move |p| {
            p.backends.insert("demo".into(), s2.clone());
        },
    );
    assert_eq!(h.cfg.recovery.revoke_concurrency, 4);
    for i in 0..n {
        let r = h
            .engine
            .request("alice", input(&format!("bulk-{i}"), inc("INC-1042")))
            .await
            .unwrap();
        h.engine
            .decide("bob", r.id, Decision::approve(None))
            .await
            .unwrap();
        h.engine.activate("alice", r.id).await.unwrap();
    }
    h.clock.advance(Duration::minutes(2));
    // A second sweeper on the same store and clock, with its own connection.
    let mut parts = breakglass::engine::Parts::from_config(&h.cfg).unwrap();
    parts.clock = h.clock.clone();
    parts.backends.insert("demo".into(), slow.clone());
    let other = breakglass::engine::Engine::new(parts);
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(h.engine.recover(), other.recover());
    let (a, b) = (a.unwrap(), b.unwrap());
    let took = started.elapsed();
    assert!(a.errors.is_empty() && b.errors.is_empty(), "{a:?} {b:?}");
    let mut ids: Vec<String> = [a.expired_revoked, b.expired_revoked].concat();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "every grant revoked, by one sweeper each");
    let mut called = slow.revoked.lock().unwrap().clone();
    assert_eq!(called.len(), n, "the backend was called once per grant");
    called.dedup();
    assert_eq!(called.len(), n);
    let most = slow.most.load(Ordering::SeqCst);
    assert!(
        (2..=8).contains(&most),
        "two sweepers of 4 in flight each: {most} at once"
    );
    // 24 calls of 100 ms one after another would take 2.4 s.
    assert!(took < std::time::Duration::from_millis(2000), "{took:?}");
    let events = h.store.audit_range(1, 100_000).unwrap();
    for action in ["revoke.started", "revoke.confirmed"] {
        let mut per: Vec<i64> = events
            .iter()
            .filter(|e| e.action == action)
            .map(|e| e.request_id.unwrap())
            .collect();
        assert_eq!(per.len(), n, "{action}");
        per.dedup();
        assert_eq!(per.len(), n, "{action} once per request");
    }
    assert!(h.engine.verify_audit().await.unwrap().1.is_none());
}
