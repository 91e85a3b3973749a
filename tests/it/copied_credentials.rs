//! A review answering "credentials copied: yes": the backend is asked to make
//! the copy useless, `credentials.invalidated` is audited with what it did,
//! and certification waits for it, or for a certifier's audited and alerted
//! exception. On the demo policy with a manual clock; the PostgreSQL backend's
//! side is in backend_postgres.rs, the console's in tui_app.rs.

use crate::support;

use breakglass::backend::{
    Backend, BackendError, Grant, GrantSpec, InvalidationOutcome, RevokeSpec,
};
use breakglass::domain::lifecycle::Reason;
use breakglass::domain::{InvalidationMethod, RefusalKind, RequestId, ReviewAnswers, State};
use breakglass::engine::{Decision, Error};
use breakglass::store::ClaimKey;
use chrono::Duration;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use support::*;

/// The demo backend, whose `invalidate` fails while `down` is set.
struct Flaky {
    demo: Arc<dyn Backend>,
    down: AtomicBool,
    calls: AtomicU32,
}

#[async_trait::async_trait]
impl Backend for Flaky {
    fn kind(&self) -> &'static str {
        "flaky"
    }
    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError> {
        self.demo.grant(spec).await
    }
    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError> {
        self.demo.revoke(spec).await
    }
    async fn invalidate(&self, spec: &RevokeSpec) -> Result<InvalidationOutcome, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(BackendError::Failed("target unreachable".into()));
        }
        Ok(InvalidationOutcome {
            method: InvalidationMethod::Revoked,
            confirmation: format!("flaky: {} revoked again", spec.request_id),
        })
    }
    async fn check(&self) -> Result<String, BackendError> {
        Ok("flaky".into())
    }
}

/// The demo harness with the demo backend wrapped in `Flaky`.
fn with_flaky(down: bool) -> (H, Arc<Flaky>) {
    let mut flaky = None;
    let h = harness_with(|p| {
        let f = Arc::new(Flaky {
            demo: p.backends["demo"].clone(),
            down: AtomicBool::new(down),
            calls: AtomicU32::new(0),
        });
        p.backends.insert("demo".into(), f.clone());
        flaky = Some(f);
    });
    (h, flaky.unwrap())
}

fn copied(where_: &str) -> ReviewAnswers {
    ReviewAnswers {
        credentials_copied: true,
        credentials_copied_where: where_.into(),
        ..answers()
    }
}

/// alice's DBA access, ended, and her review saying the credentials were copied.
async fn reviewed_copied(h: &H, where_: &str) -> breakglass::domain::Request {
    let (r, _) = h.active(DBA).await;
    h.engine.revoke("alice", r.id, "fixed").await.unwrap();
    h.engine
        .review("alice", r.id, copied(where_))
        .await
        .unwrap()
}

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

fn actions(h: &H, id: RequestId) -> Vec<(String, String)> {
    h.store
        .audit_range(1, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.request_id == Some(id.0))
        .map(|e| (e.action.clone(), e.detail.clone()))
        .collect()
}

#[tokio::test]
async fn the_demo_backend_invalidates_at_once_and_the_review_can_be_certified() {
    let h = harness();
    let r = reviewed_copied(&h, "my laptop scratch file").await;
    assert_eq!(r.state, State::Reviewed);
    let inv = r.invalidation.as_ref().expect("asked for");
    let done = inv.done.as_ref().expect("the demo backend answers at once");
    assert!(
        done.outcome
            .confirmation
            .contains("revoked again by request id"),
        "{}",
        done.outcome.confirmation
    );
    assert_eq!(inv.copied_where, "my laptop scratch file");
    let events = actions(&h, r.id);
    let (_, detail) = events
        .iter()
        .find(|(a, _)| a == "credentials.invalidated")
        .expect("audited");
    assert!(detail.contains("my laptop scratch file"), "{detail}");
    assert!(detail.contains("revoked again"), "{detail}");
    let c = h
        .engine
        .decide("dave", r.id, Decision::certify("checked"))
        .await
        .unwrap();
    assert_eq!(c.state, State::Certified);
    let (_, certified) = actions(&h, r.id).pop().unwrap();
    assert!(certified.contains("\"invalidation\""), "{certified}");

    // A review without copies asks for nothing.
    let (r2, _) = h.active(DBA).await;
    h.engine.revoke("alice", r2.id, "fixed").await.unwrap();
    let r2 = h.engine.review("alice", r2.id, answers()).await.unwrap();
    assert!(r2.invalidation.is_none());
}

#[tokio::test]
async fn certification_waits_until_a_retry_by_the_sweeper_invalidates() {
    let (h, flaky) = with_flaky(true);
    // Hostile text in "where": escape sequences gone, length capped.
    let hostile = format!(
        "my laptop\x1b]52;c;AAAA\x07\x1b[2J scratch {}",
        "x".repeat(5000)
    );
    let r = reviewed_copied(&h, &hostile).await;
    assert_eq!(r.state, State::Reviewed, "the review stands");
    assert_eq!(
        flaky.calls.load(Ordering::SeqCst),
        1,
        "asked at review time"
    );
    let inv = r.invalidation.clone().unwrap();
    assert!(inv.pending());
    assert_eq!(inv.attempts, 1);
    assert!(!inv.copied_where.contains('\x1b'), "{:?}", inv.copied_where);
    assert!(
        inv.copied_where.chars().count() <= 501,
        "capped, with an ellipsis"
    );
    assert!(inv.last_error.as_deref().unwrap().contains("unreachable"));

    refused(
        h.engine
            .decide("dave", r.id, Decision::certify("looks fine"))
            .await
            .unwrap_err(),
        RefusalKind::Policy,
        Reason::NotInvalidated,
        "--invalidation-exception",
    );
    assert_eq!(h.state(r.id), State::Reviewed);
    // The certifier's queue says why too.
    let q = h.engine.reviews_for("dave").await.unwrap();
    let item = q.iter().find(|i| i.request.id == r.id).unwrap();
    assert!(item
        .blocked
        .as_deref()
        .unwrap()
        .contains("breakglass sweep"));

    // Not due yet: the sweeper leaves it.
    h.engine.recover().await.unwrap();
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
    // Due, but another process holds the request's claim: still left.
    h.clock.advance(Duration::seconds(3));
    let now = h.engine.now();
    assert!(h
        .store
        .claim(
            ClaimKey::Request(r.id),
            "elsewhere:1:abcd",
            now,
            now + Duration::seconds(60)
        )
        .unwrap());
    let rep = h.engine.recover().await.unwrap();
    assert!(rep.invalidations_done.is_empty());
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
    h.store
        .release(ClaimKey::Request(r.id), "elsewhere:1:abcd")
        .unwrap();
    // Still down: recorded again, with a later retry.
    let rep = h.engine.recover().await.unwrap();
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);
    assert!(
        rep.errors.iter().any(|e| e.contains("will retry")),
        "{rep:?}"
    );
    // Back up: the retry confirms it.
    flaky.down.store(false, Ordering::SeqCst);
    h.clock.advance(Duration::seconds(10));
    let rep = h.engine.recover().await.unwrap();
    assert_eq!(rep.invalidations_done, vec![r.id.to_string()]);
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    let names: Vec<String> = actions(&h, r.id).into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        names
            .iter()
            .filter(|a| *a == "credentials.invalidation_failed")
            .count(),
        2
    );
    assert!(names.iter().any(|a| a == "credentials.invalidated"));
    // Nothing more to do.
    h.clock.advance(Duration::seconds(600));
    h.engine.recover().await.unwrap();
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);

    let c = h
        .engine
        .decide("dave", r.id, Decision::certify("looks fine"))
        .await
        .unwrap();
    assert_eq!(c.state, State::Certified);
    assert_eq!(h.alerts_of_kind("invalidation_exception"), 0);
}

#[tokio::test]
async fn an_exception_certifies_with_its_reason_audited_and_alerted() {
    let (h, flaky) = with_flaky(true);
    let r = reviewed_copied(&h, "a pastebin").await;
    refused(
        h.engine
            .decide("dave", r.id, Decision::certify_with_exception("", "   "))
            .await
            .unwrap_err(),
        RefusalKind::Input,
        Reason::BadField,
        "needs a reason",
    );
    let c = h
        .engine
        .decide(
            "dave",
            r.id,
            Decision::certify_with_exception(
                "ok",
                "paste deleted by its site, ticket SEC-9\x1b[31m",
            ),
        )
        .await
        .unwrap();
    assert_eq!(c.state, State::Certified);
    let x = c.invalidation.as_ref().unwrap().exception.as_ref().unwrap();
    assert_eq!(x.by, "dave");
    assert_eq!(x.comment, "paste deleted by its site, ticket SEC-9");
    let (action, detail) = actions(&h, r.id).pop().unwrap();
    assert_eq!(action, "review.certified");
    assert!(detail.contains("invalidation_exception"), "{detail}");
    assert!(detail.contains("SEC-9"), "{detail}");
    assert!(detail.contains("a pastebin"), "{detail}");
    assert_eq!(h.alerts_of_kind("invalidation_exception"), 1);
    // The evidence bundle's summary tells it.
    let out = h.dir().join("evidence");
    h.engine
        .write_evidence(r.id, &out)
        .await
        .unwrap()
        .expect("the chain verifies");
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    for want in [
        "Invalidating copied credentials failed",
        "WITHOUT INVALIDATING the copied credentials (a pastebin)",
        "paste deleted by its site, ticket SEC-9",
    ] {
        assert!(summary.contains(want), "{want} not in:\n{summary}");
    }
    // The exception closes it: the sweeper stops asking.
    let calls = flaky.calls.load(Ordering::SeqCst);
    h.clock.advance(Duration::seconds(600));
    h.engine.recover().await.unwrap();
    assert_eq!(flaky.calls.load(Ordering::SeqCst), calls);

    // An exception where nothing is pending is refused.
    let (r2, _) = h.active(DBA).await;
    h.engine.revoke("alice", r2.id, "fixed").await.unwrap();
    h.engine.review("alice", r2.id, answers()).await.unwrap();
    refused(
        h.engine
            .decide("dave", r2.id, Decision::certify_with_exception("", "why"))
            .await
            .unwrap_err(),
        RefusalKind::Input,
        Reason::BadField,
        "no invalidation pending",
    );
}

/// The command line (`status`, `reviews`, their --json) shows the answer,
/// where, and what was done.
#[test]
fn status_shows_the_copy_and_its_invalidation() {
    let (_d, cfg) = demo_dir();
    activated(&cfg, REQUEST_K8S);
    let o = bg(
        &cfg,
        Some("alice"),
        &["revoke", "REQ-1", "--reason", "fixed"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bg(
        &cfg,
        Some("alice"),
        &[
            "review",
            "REQ-1",
            "--actions-taken",
            "failed over",
            "--systems-touched",
            "db-1",
            "--access-necessary",
            "yes",
            "--credentials-copied",
            "yes",
            "--credentials-copied-where",
            "my laptop scratch file",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bg(&cfg, Some("dave"), &["status", "REQ-1"]);
    let out = stdout(&o);
    assert!(
        out.contains("CREDENTIALS COPIED: yes, to my laptop scratch file"),
        "{out}"
    );
    assert!(out.contains("invalidated: "), "{out}");
    assert!(out.contains("revoked again by request id"), "{out}");
    let v = ok_json(bg(&cfg, Some("dave"), &["--json", "status", "REQ-1"]));
    let inv = &v["request"]["invalidation"];
    assert_eq!(inv["copied_where"], "my laptop scratch file", "{v}");
    assert!(inv["done"]["confirmation"].is_string(), "{v}");
    let o = bg(&cfg, Some("dave"), &["reviews"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    for want in [
        "REQ-1 k8s-cluster-admin by alice",
        "CREDENTIALS COPIED: yes, to my laptop scratch file",
        "invalidated: ",
        "ready:      `breakglass certify REQ-1`",
    ] {
        assert!(out.contains(want), "{want} not in {out}");
    }
    let v = ok_json(bg(&cfg, Some("dave"), &["--json", "reviews"]));
    assert_eq!(
        v["reviews"][0]["request"]["invalidation"]["copied_where"], "my laptop scratch file",
        "{v}"
    );
    let o = bg(
        &cfg,
        Some("dave"),
        &["certify", "REQ-1", "--invalidation-exception", "why"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no invalidation pending"),
        "{}",
        stderr(&o)
    );
    let o = bg(&cfg, Some("dave"), &["certify", "REQ-1"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
