//! SOC alerting through the outbox, against real receivers on 127.0.0.1: a
//! signed webhook, Slack, syslog over UDP and TCP, a JSONL file; retries with
//! back-off, per-sink progress, fail-closed roles, crash between commit and send.

use crate::support;

use breakglass::alert::sinks::{FileSink, SlackSink, SyslogSink, WebhookSink};
use breakglass::alert::{Format, Sink};
use breakglass::backend::Credential;
use breakglass::backend::{Backend, BackendError, Grant, GrantSpec, RevokeSpec};
use breakglass::domain::drill::DrillPolicy;
use breakglass::domain::routine::ActivationLimit;
use breakglass::domain::State;
use breakglass::engine::{Decision, IncidentChoice, RequestInput};
use chrono::Duration;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use support::receivers::{Behaviour, HttpReceiver, SyslogReceiver};
use support::*;

const SECRET: &str = "webhook-signing-secret";

fn webhook(r: &HttpReceiver, format: Format, timeout_s: u64) -> Arc<dyn Sink> {
    Arc::new(WebhookSink::new(
        "soc".into(),
        r.url.clone(),
        Some(secrecy::SecretString::from(SECRET)),
        format,
        std::time::Duration::from_secs(timeout_s),
    ))
}

fn with_sinks(sinks: Vec<Arc<dyn Sink>>) -> H {
    harness_with(move |p| p.sinks = sinks)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_activation_reaches_a_signed_webhook_once_with_a_stable_event_id() {
    let rx = HttpReceiver::start(Behaviour::Ok);
    let h = with_sinks(vec![webhook(&rx, Format::Native, 5)]);
    let (r, _) = h.active(DBA).await;
    h.engine.deliver_alerts().await.unwrap();
    h.engine.deliver_alerts().await.unwrap();
    let got = rx.received();
    assert_eq!(got.len(), 1, "delivered once: {got:?}");
    let a = &got[0];
    let body = a.json();
    assert_eq!(body["schema"], "breakglass.alert/v1");
    assert_eq!(body["kind"], "activation");
    assert_eq!(body["data"]["request_id"], r.id.to_string());
    assert_eq!(
        body["data"]["approvers"],
        serde_json::json!(["bob", "carol"])
    );
    assert_eq!(a.header("X-Breakglass-Event-Id"), body["event_id"].as_str());
    let ts: i64 = a.header("X-Breakglass-Timestamp").unwrap().parse().unwrap();
    assert!(breakglass::signing::verify(
        SECRET.as_bytes(),
        ts,
        a.body.as_bytes(),
        a.header("X-Breakglass-Signature").unwrap()
    ));
    assert!(!breakglass::signing::verify(
        b"wrong",
        ts,
        a.body.as_bytes(),
        a.header("X-Breakglass-Signature").unwrap()
    ));
    assert_eq!(h.store.outbox_undelivered().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_is_retried_with_backoff_and_others_are_not_repeated() {
    let rx = HttpReceiver::start(Behaviour::FailFirst(2));
    let file = tempfile::NamedTempFile::new().unwrap();
    let file_sink: Arc<dyn Sink> = Arc::new(FileSink {
        name: "file".into(),
        path: file.path().into(),
        format: Format::Native,
    });
    let h = with_sinks(vec![file_sink, webhook(&rx, Format::Native, 5)]);
    h.active(K8S).await;
    let now = h.clock_now();
    // Attempt 1 fails (500): the file got it, the webhook did not.
    h.engine.deliver_alerts().await.unwrap();
    assert_eq!(h.store.outbox_undelivered().unwrap(), 1);
    let row = h
        .store
        .outbox_due(now + Duration::days(1), 10)
        .unwrap()
        .remove(0);
    assert_eq!(row.delivered_to, vec!["file".to_string()]);
    assert!(
        h.store.outbox_due(now, 10).unwrap().is_empty(),
        "backing off"
    );
    // Attempts 2 (fails) and 3 (succeeds), each after its back-off.
    h.clock.advance(Duration::seconds(2));
    h.engine.deliver_alerts().await.unwrap();
    h.clock.advance(Duration::seconds(10));
    h.engine.deliver_alerts().await.unwrap();
    assert_eq!(rx.hits.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(rx.received().len(), 1);
    assert_eq!(h.store.outbox_undelivered().unwrap(), 0);
    let lines = std::fs::read_to_string(file.path()).unwrap();
    assert_eq!(
        lines.lines().count(),
        1,
        "the file sink was not sent the alert again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hanging_and_broken_receivers_leave_alerts_queued_and_visible() {
    let hang = HttpReceiver::start(Behaviour::Hang);
    let broken = HttpReceiver::start(Behaviour::Always500);
    let h = with_sinks(vec![
        webhook(&hang, Format::Native, 1),
        Arc::new(WebhookSink::new(
            "broken".into(),
            broken.url.clone(),
            None,
            Format::Native,
            std::time::Duration::from_secs(2),
        )),
    ]);
    h.active(K8S).await;
    let started = std::time::Instant::now();
    let d = h.engine.deliver_alerts().await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "a hanging receiver is abandoned at its timeout"
    );
    assert_eq!((d.delivered, d.failed), (0, 1));
    assert_eq!(h.store.outbox_undelivered().unwrap(), 1);
    // The status bar and `status` show it.
    let mut d = support::tui::Driver::new(h, "alice");
    d.refresh().await;
    d.assert_sees("1 alert(s) undelivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_gets_a_readable_message() {
    let rx = HttpReceiver::start(Behaviour::Ok);
    let slack: Arc<dyn Sink> = Arc::new(SlackSink::new(
        "slack".into(),
        secrecy::SecretString::from(rx.url.clone()),
        std::time::Duration::from_secs(5),
    ));
    let h = with_sinks(vec![slack]);
    let (r, _) = h.active(DBA).await;
    h.engine.deliver_alerts().await.unwrap();
    let text = rx.received()[0].json()["text"]
        .as_str()
        .unwrap()
        .to_string();
    for needle in [
        r.id.to_string().as_str(),
        "prod-db-emergency-dba",
        "INC-1042",
        "alice",
        "bob, carol",
        "Break-glass activation",
        "Expires",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from {text}");
    }
}

fn check_rfc5424(msg: &str) {
    // <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG
    let re = regex::Regex::new(r#"^<(\d{1,3})>1 (\S+) (\S+) breakglass (\d+) (\S+) \[breakglass@32473( [a-z_]+="(?:[^"\\\]]|\\.)*")+\] (.*)$"#).unwrap();
    let c = re
        .captures(msg)
        .unwrap_or_else(|| panic!("not RFC 5424: {msg}"));
    let pri: u32 = c[1].parse().unwrap();
    assert_eq!(pri / 8, 10, "facility authpriv");
    chrono::DateTime::parse_from_rfc3339(&c[2]).expect("an RFC 3339 timestamp");
    assert!(msg.contains("request_id=\"REQ-1\""), "{msg}");
    assert!(msg.contains("role=\"k8s-cluster-admin\""), "{msg}");
    let alert: serde_json::Value = serde_json::from_str(&c[7]).expect("MSG is the alert as JSON");
    assert_eq!(alert["data"]["request_id"], "REQ-1", "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn syslog_over_udp_and_tcp_is_rfc5424_with_structured_data() {
    let udp = SyslogReceiver::udp();
    let tcp = SyslogReceiver::tcp();
    let h = with_sinks(vec![
        Arc::new(SyslogSink::new(
            "udp".into(),
            udp.address.clone(),
            false,
            Format::Native,
        )),
        Arc::new(SyslogSink::new(
            "tcp".into(),
            tcp.address.clone(),
            true,
            Format::Native,
        )),
    ]);
    h.active(K8S).await;
    h.engine.deliver_alerts().await.unwrap();
    for _ in 0..50 {
        if !udp.messages().is_empty() && !tcp.messages().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (u, t) = (udp.messages(), tcp.messages());
    assert_eq!((u.len(), t.len()), (1, 1), "{u:?} {t:?}");
    check_rfc5424(&u[0]);
    check_rfc5424(&t[0]);
    assert!(
        u[0].starts_with("<83>1 "),
        "activation is severity 3 (error) at authpriv: {}",
        u[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ocsf_payloads_for_siems() {
    let rx = HttpReceiver::start(Behaviour::Ok);
    let h = with_sinks(vec![webhook(&rx, Format::Ocsf, 5)]);
    let (r, _) = h.active(K8S).await;
    h.engine.revoke("alice", r.id, "done").await.unwrap();
    h.engine.deliver_alerts().await.unwrap();
    let bodies = h.dir().join("webhook-ocsf.jsonl");
    let lines: Vec<String> = rx.received().iter().map(|x| x.body.clone()).collect();
    std::fs::write(&bodies, lines.join("\n")).unwrap();
    let got = support::ocsf::assert_valid(&[&bodies]);
    let act = got
        .iter()
        .find(|e| e["unmapped"]["kind"] == "activation")
        .unwrap();
    assert_eq!(act["class_uid"], 3005);
    assert_eq!(act["category_uid"], 3);
    assert_eq!(act["activity_id"], 1, "Assign Privileges");
    assert_eq!(act["type_uid"], 300501);
    assert_eq!(act["privileges"], serde_json::json!(["k8s-cluster-admin"]));
    assert_eq!(act["user"]["name"], "alice");
    assert_eq!(act["actor"]["user"]["name"], "alice");
    assert_eq!(act["metadata"]["version"], "1.1.0");
    assert_eq!(act["metadata"]["profiles"], serde_json::json!(["host"]));
    assert!(act["time"].as_i64().unwrap() > 1_700_000_000_000);
    let end = got
        .iter()
        .find(|e| e["unmapped"]["kind"] == "early_end")
        .unwrap();
    assert_eq!(end["activity_id"], 2, "Revoke Privileges");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fail_closed_role_grants_nothing_until_the_soc_has_the_alert() {
    let broken = HttpReceiver::start(Behaviour::Always500);
    let sinks: Vec<Arc<dyn Sink>> = vec![webhook(&broken, Format::Native, 2)];
    let h = harness_with(move |p| {
        p.sinks = sinks;
        p.policy.roles.get_mut(K8S).unwrap().require_alert_delivery = true;
    });
    let r = h.approved(K8S).await;
    let e = h.engine.activate("alice", r.id).await.unwrap_err();
    assert!(
        e.to_string().contains("requires delivery before access"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 4);
    assert_eq!(h.state(r.id), State::Failed);
    assert!(h.leases().is_empty(), "the backend was never asked");

    let ok = HttpReceiver::start(Behaviour::Ok);
    let sinks: Vec<Arc<dyn Sink>> = vec![webhook(&ok, Format::Native, 2)];
    let h = harness_with(move |p| {
        p.sinks = sinks;
        p.policy.roles.get_mut(K8S).unwrap().require_alert_delivery = true;
    });
    let (r, _) = h.active(K8S).await;
    assert_eq!(r.state, State::Active);
    let got = ok.received();
    assert_eq!(got.len(), 1, "one activation alert, raised with the intent");
    assert_eq!(got[0].json()["data"]["action"], "grant.intent");
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_audited_and_alerted_and_kinds_can_be_turned_off_but_not_activation() {
    let rx = HttpReceiver::start(Behaviour::Ok);
    let sinks: Vec<Arc<dyn Sink>> = vec![webhook(&rx, Format::Native, 5)];
    let h = harness_with(move |p| {
        p.sinks = sinks;
        p.alerts.on.clear(); // nothing beyond activation
    });
    let r = h.requested(K8S).await;
    assert!(h
        .engine
        .decide("alice", r.id, Decision::approve(None))
        .await
        .is_err());
    let last = h.store.audit_range(h.audit_len(), 1).unwrap().remove(0);
    assert_eq!(
        (last.action.as_str(), last.actor.as_str()),
        ("policy.refused", "alice")
    );
    assert!(last.detail.contains("cannot approve"));
    h.engine
        .decide("bob", r.id, Decision::deny("no"))
        .await
        .unwrap();
    let (r2, _) = h.active(DBA).await;
    h.engine.deliver_alerts().await.unwrap();
    let kinds: Vec<String> = rx
        .received()
        .iter()
        .map(|x| x.json()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        vec!["activation"],
        "refusal and denial are off; activation cannot be"
    );
    let _ = r2;

    let rx = HttpReceiver::start(Behaviour::Ok);
    let sinks: Vec<Arc<dyn Sink>> = vec![webhook(&rx, Format::Native, 5)];
    let h = with_sinks(sinks);
    let r = h.requested(K8S).await;
    let _ = h
        .engine
        .decide("alice", r.id, Decision::approve(None))
        .await;
    h.engine.deliver_alerts().await.unwrap();
    let got = rx.received();
    assert_eq!(got[0].json()["kind"], "refusal");
    assert!(got[0].json()["data"]["detail"]["refusal"]
        .as_str()
        .unwrap()
        .contains("cannot approve"));
}

#[test]
fn a_crash_between_commit_and_delivery_delivers_after_restart_exactly_once() {
    let rx = HttpReceiver::start(Behaviour::Ok);
    let (tmp, cfg) = demo_dir();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[[alerts.sinks]]\nkind = \"file\"\npath = \"alerts.jsonl\"",
        &format!(
            "[[alerts.sinks]]\nkind = \"webhook\"\nurl = \"{}\"\nsecret_env = \"BG_TEST_SECRET\"",
            rx.url
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let env = [("BG_TEST_SECRET", SECRET)];
    ok_json(bg_env(
        &cfg,
        Some("alice"),
        &[&["--json"], REQUEST_K8S].concat(),
        &env,
    ));
    ok_json(bg_env(&cfg, Some("bob"), &["--json", "approve", "1"], &env));
    let o = bg_env(
        &cfg,
        Some("alice"),
        &["--json", "activate", "1"],
        &[("BREAKGLASS_FAILPOINT", "alert.before_delivery"), env[0]],
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(9));
    assert!(rx.received().is_empty(), "killed before delivery");
    assert_eq!(
        ok_json(bg_env(&cfg, None, &["--json", "status", "1"], &env))["undelivered_alerts"],
        0,
        "status delivered it on its way out"
    );
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["kind"], "activation");
    ok_json(bg_env(&cfg, None, &["--json", "sweep"], &env));
    assert_eq!(rx.received().len(), 1, "exactly once");
    drop(tmp);
}

#[test]
fn audit_export_in_ocsf() {
    let (tmp, cfg) = demo_dir();
    activated(&cfg, REQUEST_K8S);
    let out = tmp.path().join("audit-ocsf.jsonl");
    let o = bg(
        &cfg,
        None,
        &[
            "audit",
            "export",
            "--format",
            "ocsf",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let events = support::ocsf::assert_valid(&[&out]);
    assert_eq!(events.len(), 4);
    assert!(events
        .iter()
        .all(|e| e["class_uid"] == 3005 && e["metadata"]["version"] == "1.1.0"));
    assert_eq!(events[3]["activity_id"], 1);
    assert_eq!(events[3]["unmapped"]["action"], "grant.active");
    // Every event names the user whose access it is about and the role.
    for e in &events {
        assert_eq!(e["user"]["name"], "alice", "{e}");
        assert_eq!(e["privileges"], serde_json::json!([K8S]), "{e}");
    }
    assert_eq!(events[1]["actor"]["user"]["name"], "bob");
}

/// A backend that grants and revokes at once, or fails or hangs when told to:
/// the way to grant, revoke and rotation failures and to an interrupted grant.
#[derive(Default)]
struct Flaky {
    fail_grant: AtomicBool,
    hang_grant: AtomicBool,
    fail_revoke: AtomicBool,
    fail_rotate: AtomicBool,
    /// A drill's probe: the target refuses every credential.
    fail_probe: AtomicBool,
    /// Leases revoked: a probe of one of them is refused.
    revoked: std::sync::Mutex<Vec<Option<String>>>,
}

#[async_trait::async_trait]
impl Backend for Flaky {
    fn kind(&self) -> &'static str {
        "flaky"
    }
    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError> {
        if self.hang_grant.load(SeqCst) {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
        if self.fail_grant.load(SeqCst) {
            return Err(BackendError::Failed("target refused: quota".into()));
        }
        Ok(Grant {
            lease_id: format!("flaky-{}", spec.request_id),
            expires_at: None,
            credential: Default::default(),
        })
    }
    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError> {
        if self.fail_revoke.load(SeqCst) {
            return Err(BackendError::Failed("target unreachable".into()));
        }
        self.revoked.lock().unwrap().push(spec.lease_id.clone());
        Ok(())
    }
    async fn probe(&self, spec: &RevokeSpec, _: &Credential) -> Result<String, BackendError> {
        if self.fail_probe.load(SeqCst) || self.revoked.lock().unwrap().contains(&spec.lease_id) {
            return Err(BackendError::Failed("login refused".into()));
        }
        Ok("logged in".into())
    }
    async fn rotate(&self, _: &str, _: &serde_json::Value) -> Result<(), BackendError> {
        if self.fail_rotate.load(SeqCst) {
            return Err(BackendError::Failed("vault sealed".into()));
        }
        Ok(())
    }
    async fn check(&self) -> Result<String, BackendError> {
        Ok("flaky".into())
    }
}

const SVC: &str = "svc-failover";

/// Every alert kind and every audit action, from one engine's life: requests
/// (one by someone outside the policy), approvals, a denial, a cancellation, a
/// lapse, activations, an extension, revocations, failed grants, revocations
/// and rotations, an interrupted grant, auto-approval and its overdue
/// certification, reviews rejected and certified, a vendor session and a role
/// recertification. The alerts go to an OCSF file sink and the audit log out
/// through `audit export --format ocsf`; each event must be valid OCSF for its
/// class and declared profiles, with no null anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn every_alert_kind_and_audit_action_is_valid_ocsf() {
    use breakglass::domain::policy::{Automation, Principals};
    let out = tempfile::tempdir().unwrap();
    let alerts_file = out.path().join("alerts-ocsf.jsonl");
    // Every kind, approvers' notices too (`kinds` naming them all).
    let sink: Arc<dyn Sink> = Arc::new(breakglass::alert::sinks::Routed::new(
        Arc::new(FileSink {
            name: "siem".into(),
            path: alerts_file.clone(),
            format: Format::Ocsf,
        }),
        Some(breakglass::alert::AlertKind::ALL.into_iter().collect()),
        None,
    ));
    let flaky = Arc::new(Flaky::default());
    let b: Arc<dyn Backend> = flaky.clone();
    let h = Arc::new(harness_edited(
        |t| t.push_str(&vendor_role("")),
        move |p| {
            p.sinks = vec![sink];
            p.backends.insert("demo".into(), b);
            // The broker drills IAM itself, unapproved.
            p.policy.roles.get_mut(IAM).unwrap().drill = DrillPolicy {
                approvals: 0,
                every: Some(7 * 86_400),
            };
            let k8s = p.policy.roles.get_mut(K8S).unwrap();
            k8s.rotate_after_use = true;
            // alice's second k8s activation is routine use (its own alert).
            k8s.max_activations_per_person = Some(ActivationLimit {
                count: 1,
                window: 30 * 86_400,
            });
            k8s.automation = Automation {
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
        },
    ));
    let e = &h.engine;
    let close = async |id| {
        e.review("alice", id, answers()).await.unwrap();
        e.decide("dave", id, Decision::certify("ok")).await.unwrap();
    };

    // Refusals: someone outside the policy, then a self-approval; a denial.
    assert!(e
        .request("mallory", input(K8S, inc("INC-1042")))
        .await
        .is_err());
    let r = e
        .request("alice", input(K8S, inc("INC-1042")))
        .await
        .unwrap();
    assert!(e
        .decide("alice", r.id, Decision::approve(None))
        .await
        .is_err());
    e.decide("bob", r.id, Decision::deny("not this way"))
        .await
        .unwrap();
    // A cancellation.
    let r = e
        .request("alice", input(K8S, inc("INC-1042")))
        .await
        .unwrap();
    e.cancel("alice", r.id).await.unwrap();
    // Activation, extension, early end; a review rejected, then certified.
    let (r, _) = h.active(DBA).await;
    e.extend("alice", r.id, 10 * 60, "still failing over")
        .await
        .unwrap();
    e.revoke("alice", r.id, "done").await.unwrap();
    e.review("alice", r.id, answers()).await.unwrap();
    e.decide("dave", r.id, Decision::reject("say which tables"))
        .await
        .unwrap();
    close(r.id).await;
    // A rotation that fails after the revocation.
    flaky.fail_rotate.store(true, SeqCst);
    let (r, _) = h.active(K8S).await;
    e.revoke("alice", r.id, "done").await.unwrap();
    flaky.fail_rotate.store(false, SeqCst);
    close(r.id).await;
    // A revocation that fails, then succeeds on the sweep's retry.
    flaky.fail_revoke.store(true, SeqCst);
    let (r, _) = h.active(K8S).await;
    assert!(e.revoke("alice", r.id, "done").await.is_err());
    flaky.fail_revoke.store(false, SeqCst);
    h.clock.advance(Duration::minutes(5));
    e.recover().await.unwrap();
    assert_eq!(h.state(r.id), State::Ended);
    close(r.id).await;
    // Copied credentials: invalidated when the review is submitted; then a
    // copy whose invalidation fails, certified with an exception.
    let copied = breakglass::domain::ReviewAnswers {
        credentials_copied: true,
        credentials_copied_where: "a scratch file".into(),
        ..answers()
    };
    let (r, _) = h.active(K8S).await;
    e.revoke("alice", r.id, "done").await.unwrap();
    e.review("alice", r.id, copied.clone()).await.unwrap();
    e.decide("dave", r.id, Decision::certify("ok"))
        .await
        .unwrap();
    let (r, _) = h.active(K8S).await;
    e.revoke("alice", r.id, "done").await.unwrap();
    flaky.fail_revoke.store(true, SeqCst);
    e.review("alice", r.id, copied).await.unwrap();
    flaky.fail_revoke.store(false, SeqCst);
    e.decide(
        "dave",
        r.id,
        Decision::certify_with_exception("ok", "the file was shredded"),
    )
    .await
    .unwrap();
    // A grant the backend refuses.
    flaky.fail_grant.store(true, SeqCst);
    let r = h.approved(K8S).await;
    assert!(e.activate("alice", r.id).await.is_err());
    flaky.fail_grant.store(false, SeqCst);
    // A grant that never completes, failed by recovery.
    flaky.hang_grant.store(true, SeqCst);
    let r = h.approved(K8S).await;
    let h2 = h.clone();
    let stuck = tokio::spawn(async move { h2.engine.activate("alice", r.id).await });
    while h.state(r.id) != State::Granting {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    h.clock.advance(Duration::seconds(121));
    e.recover().await.unwrap();
    stuck.abort();
    flaky.hang_grant.store(false, SeqCst);
    assert_eq!(h.state(r.id), State::Failed);
    // A vendor session: role recertified, recorded, replayed, certified.
    let r = h.vendor_request().await;
    e.decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();
    h.vendor_session_reviewed(r.id).await;
    e.audit_note(
        r.id,
        breakglass::domain::AuditAction::SessionReplayed,
        "dave",
        serde_json::json!({}),
    )
    .await
    .unwrap();
    e.decide("dave", r.id, Decision::certify("replayed, fine"))
        .await
        .unwrap();
    // Auto-approved access, used and left uncertified past its deadline; a
    // request nobody decided on lapses meanwhile.
    let r = e
        .request(
            SVC,
            RequestInput {
                incident: IncidentChoice::Ticket("INC-77".into()),
                role: K8S.into(),
                condition: "failed automation path".into(),
                reason: "failover controller could not promote the standby".into(),
                ttl_seconds: None,
            },
        )
        .await
        .unwrap();
    e.activate(SVC, r.id).await.unwrap();
    e.revoke(SVC, r.id, "promoted").await.unwrap();
    e.request("alice", input(DBA, inc("INC-1042")))
        .await
        .unwrap();
    h.clock.advance(Duration::hours(25));
    e.recover().await.unwrap();
    // Drills: alice's of the DBA role passes (approved by bob); the broker's
    // scheduled one of IAM fails at the probe, and IAM is overdue.
    let d = e.drill("alice", DBA).await.unwrap();
    e.decide("bob", d.id, Decision::approve(None))
        .await
        .unwrap();
    let d = e.drill("alice", DBA).await.unwrap();
    assert!(d.drill.unwrap().outcome.unwrap().passed());
    flaky.fail_probe.store(true, SeqCst);
    assert_eq!(e.drill_pass().await.unwrap(), (1, 1));
    flaky.fail_probe.store(false, SeqCst);
    while h.store.outbox_undelivered().unwrap() > 0 {
        assert!(e.deliver_alerts().await.unwrap().delivered > 0);
    }

    let audit_file = out.path().join("audit-ocsf.jsonl");
    let o = bg(
        &h.dir().join("breakglass.toml"),
        None,
        &[
            "audit",
            "export",
            "--format",
            "ocsf",
            "--output",
            audit_file.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let alerts = support::ocsf::assert_valid(&[&alerts_file]);
    let audit = support::ocsf::assert_valid(&[&audit_file]);
    let kinds: std::collections::BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["unmapped"]["kind"].as_str().unwrap())
        .collect();
    let all_kinds: std::collections::BTreeSet<&str> = breakglass::alert::AlertKind::ALL
        .into_iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(kinds, all_kinds, "every alert kind, validated");
    let actions: std::collections::BTreeSet<&str> = audit
        .iter()
        .map(|a| a["unmapped"]["action"].as_str().unwrap())
        .collect();
    let all_actions: std::collections::BTreeSet<&str> = [
        "certification.overdue",
        "credentials.invalidated",
        "credentials.invalidation_failed",
        "drill.failed",
        "drill.overdue",
        "drill.passed",
        "drill.started",
        "grant.active",
        "grant.extended",
        "grant.failed",
        "grant.intent",
        "policy.refused",
        "request.approved",
        "request.auto_approved",
        "request.cancelled",
        "request.created",
        "request.denied",
        "request.lapsed",
        "review.certified",
        "review.rejected",
        "review.submitted",
        "revoke.confirmed",
        "revoke.failed",
        "revoke.started",
        "role.recertified",
        "session.recorded",
        "session.replayed",
    ]
    .into();
    assert_eq!(
        all_actions,
        breakglass::domain::AuditAction::ALL
            .iter()
            .map(|a| a.as_str())
            .collect(),
        "the stored names of the audit actions do not change"
    );
    assert_eq!(actions, all_actions, "every audit action, validated");
    assert_eq!(audit.len() as i64, h.audit_len(), "the whole log");

    // No null anywhere: not in privileges, not as a user's name, not for a
    // refusal of someone the policy does not know.
    for ev in alerts.iter().chain(&audit) {
        let nulls = support::ocsf::nulls(ev);
        assert!(nulls.is_empty(), "null at {nulls:?} in {ev}");
        assert!(
            ev["user"]["name"].as_str().is_some_and(|n| !n.is_empty()),
            "{ev}"
        );
    }
    let outsider = |evs: &[serde_json::Value]| {
        evs.iter()
            .find(|a| a["actor"]["user"]["name"] == "mallory")
            .cloned()
            .expect("mallory's refusal")
    };
    for ev in [outsider(&alerts), outsider(&audit)] {
        assert_eq!(ev["user"]["name"], "mallory", "{ev}");
        assert_eq!(ev["status_id"], 2, "a refusal is a failure: {ev}");
    }
}

#[test]
fn alert_config_is_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        r#"[backends.demo]
kind = "demo"

[alerts]
on = ["denial", "gossip"]

[[alerts.sinks]]
kind = "webhook"
url = "ftp://x"

[[alerts.sinks]]
kind = "slack"
url = "https://hooks.slack.com/services/T/B/X"

[[alerts.sinks]]
kind = "webhook"
url = "https://siem.example/hook"
secret = "inline"

[[alerts.sinks]]
kind = "syslog"
address = "localhost"
transport = "carrier-pigeon"
max_message_bytes = 100

[[alerts.sinks]]
kind = "file"
path = "a.jsonl"
max_message_bytes = 4096

[[alerts.sinks]]
kind = "syslog"
address = "127.0.0.1:514"
transport = "tcp"
max_message_bytes = 65536

[[roles]]
name = "r"
backend = "demo"
default_ttl = "5m"
max_ttl = "10m"
conditions = ["outage"]
requesters = ["*"]
approvers = ["*"]
certifiers = ["*"]
"#,
    )
    .unwrap();
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    for (line, needle) in [
        (5, "alert kind \"gossip\" is not known"),
        (9, "must start with https://"),
        (13, "a Slack webhook URL is a secret; write url_env"),
        (18, "secrets never go in the config file; write secret_env"),
        (22, "needs a host and port"),
        (23, "transport = \"carrier-pigeon\" is not known"),
        (
            24,
            "max_message_bytes = 100 is out of range over udp: write 480",
        ),
        (29, "max_message_bytes applies to syslog sinks only"),
    ] {
        assert!(
            e.lines()
                .any(|l| l.contains(&format!("c.toml:{line}: ")) && l.contains(needle)),
            "missing line {line} `{needle}` in:\n{e}"
        );
    }
    assert!(
        !e.contains("c.toml:35: "),
        "64 KiB messages are fine over TCP:\n{e}"
    );
}

/// The reason from the report: the backslashes double when escaped, which put
/// the forged header where a collector cut the old 8,300-byte frame.
fn hostile_reason() -> String {
    format!(
        "{}{}<86>1 2026-11-25T23:59:59Z forged-host breakglass 4242 early_end - FORGED LINE",
        "\\".repeat(3000),
        "p".repeat(742)
    )
}

/// `shown` is `full`, or a start of it marked with `…`.
fn is_full_or_shortened(shown: &str, full: &str) -> bool {
    shown == full || shown.strip_suffix('…').is_some_and(|s| full.starts_with(s))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_reason_gives_one_valid_record_per_alert_at_a_real_rsyslog() {
    let rs = support::rsyslog::Rsyslog::start();
    let mut sinks = String::new();
    for (transport, address) in [("udp", &rs.udp), ("tcp", &rs.tcp)] {
        for format in ["native", "ocsf"] {
            sinks.push_str(&format!(
                "[[alerts.sinks]]\nkind = \"syslog\"\nname = \"{transport}-{format}\"\naddress = \"{address}\"\ntransport = \"{transport}\"\nformat = \"{format}\"\n\n"
            ));
        }
    }
    let h = harness_edited(
        |t| {
            *t = t.replace(
                "[[alerts.sinks]]\nkind = \"file\"\npath = \"alerts.jsonl\"\n",
                &sinks,
            )
        },
        |_| {},
    );
    let reason = hostile_reason();
    let mut req = input(K8S, inc("INC-1042"));
    req.reason = reason.clone();
    let r = h.engine.request("alice", req).await.unwrap();
    h.engine
        .decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();
    h.engine.activate("alice", r.id).await.unwrap();
    h.engine.revoke("alice", r.id, &reason).await.unwrap();
    let alerts: Vec<(String, String)> = h
        .store
        .outbox_due(h.clock_now() + Duration::days(1), 100)
        .unwrap()
        .iter()
        // The approvers' notices are not the SOC's: these sinks name no kinds.
        .filter(|a| a.payload["kind"] != "approval_request")
        .map(|a| {
            (
                a.event_id.clone(),
                a.payload["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(alerts.iter().any(|(_, k)| k == "activation"), "{alerts:?}");
    assert!(alerts.iter().any(|(_, k)| k == "early_end"), "{alerts:?}");
    h.engine.deliver_alerts().await.unwrap();
    assert_eq!(h.store.outbox_undelivered().unwrap(), 0);

    let got = rs.settle(4 * alerts.len(), std::time::Duration::from_secs(10));
    let internal = rs.internal_log();
    let host = breakglass::engine::this_host();
    for rec in &got {
        assert_eq!(
            (rec.hostname.as_str(), rec.app.as_str()),
            (host.as_str(), "breakglass"),
            "a record not from this host's breakglass: {rec:?}\nrsyslog: {internal}"
        );
    }
    assert_eq!(
        got.len(),
        4 * alerts.len(),
        "one record per alert and sink: {got:#?}\nrsyslog: {internal}"
    );
    for (input, transport) in [("imudp", "udp"), ("imtcp", "tcp")] {
        for format in ["native", "ocsf"] {
            for (event_id, kind) in &alerts {
                let mine: Vec<(&support::rsyslog::Record, serde_json::Value)> = got
                    .iter()
                    .filter(|rec| rec.input == input)
                    .filter(|rec| rec.sd.contains(&format!(" event_id=\"{event_id}\"")))
                    .map(|rec| {
                        let v: serde_json::Value =
                            serde_json::from_str(&rec.msg).unwrap_or_else(|e| {
                                panic!("{transport}: MSG is not JSON ({e}): {}", rec.msg)
                            });
                        (rec, v)
                    })
                    .filter(|(_, v)| (format == "ocsf") == v.get("class_uid").is_some())
                    .collect();
                assert_eq!(mine.len(), 1, "{transport} {format} {event_id}: {mine:#?}");
                let (rec, v) = &mine[0];
                assert_eq!(&rec.msgid, kind);
                let (shown, truncated) = if format == "ocsf" {
                    assert_eq!(v["metadata"]["uid"], event_id.as_str());
                    (&v["unmapped"]["reason"], &v["unmapped"]["truncated"])
                } else {
                    assert_eq!(v["event_id"], event_id.as_str());
                    (&v["data"]["reason"], &v["truncated"])
                };
                let shown = shown.as_str().unwrap_or_default();
                assert!(
                    shown.len() > 100 && is_full_or_shortened(shown, &reason),
                    "{transport} {format}: the reason is lost or altered: {shown}"
                );
                if transport == "udp" {
                    // 3,820 characters, 6,820 bytes escaped: never whole in 2,048.
                    assert!(shown.ends_with('…') && truncated == true, "{v}");
                }
            }
        }
    }
}
