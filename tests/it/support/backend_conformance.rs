//! The backend conformance suite. Every backend provides a `Target` (the backend
//! plus a way to check, from the target's side, whether a credential still works)
//! and runs `backend_conformance!(make_target)`, one #[tokio::test] per case.
#![allow(dead_code)]

use breakglass::backend::{Backend, BackendError, Credential, GrantSpec, RevokeSpec};
use breakglass::clock::ManualClock;
use breakglass::domain::policy::{Policy, RolePolicy};
use breakglass::domain::State;
use breakglass::engine::{Decision, Engine, IncidentChoice, Parts, RequestInput};
use chrono::{Duration, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

#[async_trait::async_trait]
pub trait Target: Send + Sync {
    /// The backend under test, pointed at this target.
    fn backend(&self) -> Arc<dyn Backend>;
    /// The same backend against a target that never answers; its calls must
    /// give up with a timeout of a few seconds at most.
    fn hanging(&self) -> Arc<dyn Backend>;
    /// The role scope grants are made with.
    fn scope(&self) -> serde_json::Value;
    /// Whether `cred` (from the grant of `spec`) still gives access, asked of the
    /// target itself (log in, call the API...), not of the backend's bookkeeping.
    async fn usable(&self, cred: &Credential, spec: &GrantSpec) -> bool;
    /// Makes the target unreachable (`true`) or reachable again (`false`).
    async fn set_down(&self, down: bool);
}

pub fn spec(target: &dyn Target, request_id: &str) -> GrantSpec {
    GrantSpec {
        request_id: request_id.into(),
        role: "conformance".into(),
        scope: target.scope(),
        requester: "alice".into(),
        ttl_seconds: 600,
        expires_at: Utc::now() + Duration::minutes(10),
        incident: "INC-1".into(),
    }
}

pub fn revoke_spec(s: &GrantSpec, lease: Option<String>) -> RevokeSpec {
    RevokeSpec {
        request_id: s.request_id.clone(),
        role: s.role.clone(),
        scope: s.scope.clone(),
        lease_id: lease,
    }
}

pub async fn grant_use_extend_revoke(t: &dyn Target) {
    let b = t.backend();
    let s = spec(t, "REQ-101");
    let g = b.grant(&s).await.expect("grant");
    assert!(!g.lease_id.is_empty());
    assert!(!g.credential.0.is_empty(), "a grant returns a credential");
    assert!(
        t.usable(&g.credential, &s).await,
        "the credential works after grant"
    );
    match b
        .extend(
            &revoke_spec(&s, Some(g.lease_id.clone())),
            s.expires_at + Duration::minutes(5),
        )
        .await
    {
        Ok(()) | Err(BackendError::NotSupported(_)) => {}
        Err(e) => panic!("extend: {e}"),
    }
    assert!(
        t.usable(&g.credential, &s).await,
        "the credential still works after extend"
    );
    b.revoke(&revoke_spec(&s, Some(g.lease_id.clone())))
        .await
        .expect("revoke");
    assert!(
        !t.usable(&g.credential, &s).await,
        "the credential is dead after revoke"
    );
}

pub async fn revoking_twice_succeeds(t: &dyn Target) {
    let b = t.backend();
    let s = spec(t, "REQ-102");
    let g = b.grant(&s).await.expect("grant");
    let r = revoke_spec(&s, Some(g.lease_id.clone()));
    b.revoke(&r).await.expect("first revoke");
    b.revoke(&r).await.expect("second revoke");
    assert!(!t.usable(&g.credential, &s).await);
}

pub async fn revoking_unknown_leases_succeeds(t: &dyn Target) {
    let b = t.backend();
    let s = spec(t, "REQ-103");
    b.revoke(&revoke_spec(&s, Some("bg-never-issued".into())))
        .await
        .expect("unknown lease");
    b.revoke(&revoke_spec(&s, None))
        .await
        .expect("by request id, nothing granted");
}

pub async fn revoking_by_request_id_takes_back_an_unrecorded_grant(t: &dyn Target) {
    let b = t.backend();
    let s = spec(t, "REQ-104");
    let g = b.grant(&s).await.expect("grant");
    b.revoke(&revoke_spec(&s, None))
        .await
        .expect("revoke by request id");
    assert!(
        !t.usable(&g.credential, &s).await,
        "crash recovery revokes by request id"
    );
}

pub async fn a_hanging_target_times_out(t: &dyn Target) {
    let b = t.hanging();
    let s = spec(t, "REQ-105");
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(std::time::Duration::from_secs(30), b.grant(&s)).await;
    let r = r.expect("the backend gave up on its own, well before 30 s");
    assert!(r.is_err(), "a grant against a hanging target fails");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// The backend is down when access ends: revocation fails, stays Revoking, and
/// the sweeper finishes once the target is back.
pub async fn the_sweeper_finishes_a_revoke_the_target_missed(t: &dyn Target) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(breakglass::store::SqliteStore::open(&dir.path().join("s.sqlite")).unwrap());
    let clock = Arc::new(ManualClock::new(Utc::now()));
    // The store suite's anyone-may role, on the backend under test.
    let role = RolePolicy {
        backend: "under-test".into(),
        scope: t.scope(),
        ..super::store_conformance::role("conformance")
    };
    let engine = Engine::new(Parts {
        policy: Policy {
            roles: BTreeMap::from([(role.name.clone(), role)]),
            demo_personas: None,
            approval_signing: None,
        },
        store,
        backends: BTreeMap::from([("under-test".to_string(), t.backend())]),
        sources: vec![],
        sinks: vec![],
        alerts: Default::default(),
        clock: clock.clone(),
        recovery: breakglass::config::RecoveryConfig {
            grant_timeout: std::time::Duration::from_secs(120),
            revoke_timeout: std::time::Duration::from_secs(60),
            ..Default::default()
        },
    });
    let r = engine
        .request(
            "alice",
            RequestInput {
                incident: IncidentChoice::Ticket("INC-7".into()),
                role: "conformance".into(),
                condition: "outage".into(),
                reason: "conformance".into(),
                ttl_seconds: None,
            },
        )
        .await
        .unwrap();
    engine
        .decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();
    let (active, cred) = engine.activate("alice", r.id).await.expect("activate");
    let s = GrantSpec {
        request_id: r.id.to_string(),
        ..spec(t, &r.id.to_string())
    };
    assert!(t.usable(&cred, &s).await);
    t.set_down(true).await;
    assert!(engine.revoke("alice", active.id, "done").await.is_err());
    assert_eq!(engine.load(r.id).await.unwrap().state, State::Revoking);
    t.set_down(false).await;
    clock.advance(Duration::minutes(10));
    let rep = engine.recover().await.unwrap();
    assert_eq!(rep.revokes_retried, vec![r.id.to_string()], "{rep:?}");
    assert_eq!(engine.load(r.id).await.unwrap().state, State::Ended);
    assert!(
        !t.usable(&cred, &s).await,
        "access is gone once the sweeper finished"
    );
}

#[macro_export]
macro_rules! backend_conformance {
    ($make:expr) => {
        $crate::backend_conformance!(@cases $make;
            grant_use_extend_revoke,
            revoking_twice_succeeds,
            revoking_unknown_leases_succeeds,
            revoking_by_request_id_takes_back_an_unrecorded_grant,
            a_hanging_target_times_out,
            the_sweeper_finishes_a_revoke_the_target_missed,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let target = $make;
                support::backend_conformance::$case(&target).await;
            }
        )*
    };
}
