//! Drills: a role's real path (grant, probe, revoke, probe again) walked
//! against the real backend, approved like any request, closed with no review
//! owed and no lock when it passes, loud when it fails. The demo and example
//! exec plugin backends, and real PostgreSQL and OpenBao servers.

use crate::support;

use breakglass::backend::{
    Backend, BackendError, Credential, Grant, GrantSpec, PostgresBackend, RevokeSpec,
};
use breakglass::domain::drill::DrillStep;
use breakglass::domain::{Request, State};
use breakglass::engine::{Decision, Error};
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use support::*;

/// Passes every call to the real backend behind it, keeping what it issued
/// (to look for in files afterwards) and what each probe found.
struct Witness {
    inner: Arc<dyn Backend>,
    secrets: Mutex<Vec<String>>,
    leases: Mutex<Vec<String>>,
    /// The target is unreachable for revocations.
    fail_revoke: std::sync::atomic::AtomicBool,
    /// Awaited after the first probe (something else happening meanwhile).
    after_probe: Mutex<Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>>,
    probes: Mutex<Vec<Result<String, String>>>,
    /// The target stops answering after the first probe (probe and check fail).
    down_after_probe: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Backend for Witness {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError> {
        let g = self.inner.grant(spec).await?;
        self.leases.lock().unwrap().push(g.lease_id.clone());
        for (k, v) in g.credential.reveal() {
            if matches!(k, "password" | "token" | "url") {
                self.secrets.lock().unwrap().push(v.to_string());
            }
        }
        Ok(g)
    }
    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError> {
        if self.fail_revoke.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(BackendError::Failed("target unreachable".into()));
        }
        self.inner.revoke(spec).await
    }
    async fn probe(&self, spec: &RevokeSpec, c: &Credential) -> Result<String, BackendError> {
        let down = self
            .down_after_probe
            .load(std::sync::atomic::Ordering::SeqCst)
            && !self.probes.lock().unwrap().is_empty();
        let r = if down {
            Err(BackendError::Failed("connection refused".into()))
        } else {
            self.inner.probe(spec, c).await
        };
        let after = self.after_probe.lock().unwrap().take();
        if let Some(f) = after {
            f.await;
        }
        self.probes
            .lock()
            .unwrap()
            .push(r.as_ref().map(|s| s.clone()).map_err(|e| e.to_string()));
        r
    }
    async fn check(&self) -> Result<String, BackendError> {
        if self
            .down_after_probe
            .load(std::sync::atomic::Ordering::SeqCst)
            && !self.probes.lock().unwrap().is_empty()
        {
            return Err(BackendError::Failed("connection refused".into()));
        }
        self.inner.check().await
    }
}

/// The demo config with `lines` added to the k8s role, its scope set to
/// `scope` (when given) and the `demo` backend (k8s's) behind a `Witness`, over
/// `real` when given, else the demo target.
fn drill_harness(
    lines: &str,
    scope: Option<&str>,
    real: Option<Arc<dyn Backend>>,
) -> (H, Arc<Witness>) {
    let slot: Arc<Mutex<Option<Arc<Witness>>>> = Default::default();
    let keep = slot.clone();
    let (lines, scope) = (lines.to_string(), scope.map(str::to_string));
    let h = harness_edited(
        move |text| {
            let anchor =
                "certifiers = [\"@security\"]\n\n[[roles]]\nname = \"payments-api-operator\"";
            assert!(text.contains(anchor), "the k8s role moved");
            // The drill's TTL is min_ttl: the demo's 1m, not the tests' 1s
            // (a real target must still honour it when the probe runs).
            let short = "min_ttl = \"1s\"\nmax_ttl = \"20m\"";
            assert!(text.contains(short));
            *text = text.replace(short, "min_ttl = \"1m\"\nmax_ttl = \"20m\"");
            *text = text.replace(
                anchor,
                &format!("certifiers = [\"@security\"]\n{lines}\n\n[[roles]]\nname = \"payments-api-operator\""),
            );
            if let Some(s) = scope {
                let old = "scope = { cluster = \"prod-eu-1\", cluster_role = \"cluster-admin\" }";
                assert!(text.contains(old), "the k8s scope moved");
                *text = text.replace(old, &format!("scope = {s}"));
            }
        },
        move |parts| {
            let inner = real.unwrap_or_else(|| parts.backends["demo"].clone());
            let w = Arc::new(Witness {
                inner,
                secrets: Default::default(),
                leases: Default::default(),
                fail_revoke: Default::default(),
                after_probe: Default::default(),
                probes: Default::default(),
                down_after_probe: Default::default(),
            });
            parts.backends.insert("demo".into(), w.clone());
            *keep.lock().unwrap() = Some(w);
        },
    );
    let w = slot.lock().unwrap().clone().unwrap();
    (h, w)
}

/// alice drills `role`: filed, approved by bob, then run.
async fn drilled(h: &H, role: &str) -> Request {
    let filed = h.engine.drill("alice", role).await.unwrap();
    assert_eq!(
        filed.state,
        State::Pending,
        "a person's drill waits for approval"
    );
    assert_eq!(filed.condition, "drill");
    assert_eq!(filed.approvals_required, 1);
    assert!(filed.drill.as_ref().unwrap().outcome.is_none());
    // The same call again, unapproved, is the same request still waiting.
    assert_eq!(h.engine.drill("alice", role).await.unwrap().id, filed.id);
    h.engine
        .decide("bob", filed.id, Decision::approve(None))
        .await
        .unwrap();
    let ran = h.engine.drill("alice", role).await.unwrap();
    assert_eq!(ran.id, filed.id);
    ran
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

/// None of the secrets the backend issued is in any file under the harness dir
/// (store, its WAL, alerts, the demo target, plugin state).
fn assert_never_written(h: &H, w: &Witness) {
    let secrets = w.secrets.lock().unwrap().clone();
    assert!(!secrets.is_empty(), "the witness saw the credential");
    let files = files_under(h.dir());
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for s in &secrets {
            assert!(
                !bytes.windows(s.len()).any(|win| win == s.as_bytes()),
                "the drill's credential is in {}",
                f.display()
            );
        }
    }
}

/// Alerts of `kind` raised so far: still in the outbox, or delivered to the
/// demo's file sink (the sweeper's drill pass delivers at once).
fn alerts(h: &H, kind: &str) -> usize {
    let delivered = std::fs::read_to_string(h.dir().join("alerts.jsonl")).unwrap_or_default();
    h.alerts_of_kind(kind)
        + delivered
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"] == kind)
            .count()
}

/// The audit actions of one request, in order.
fn actions_of(h: &H, id: breakglass::domain::RequestId) -> Vec<String> {
    audit_actions(h.dir())
        .into_iter()
        .filter(|(r, _)| *r == id.0)
        .map(|(_, a)| a)
        .collect()
}

/// A passing drill: closed (certified, no review owed), the role free, both
/// probes as they should be, its own audit events and alerts, nothing on disk.
async fn assert_passed_clean(h: &H, w: &Witness, r: &Request) {
    let outcome = r.drill.as_ref().unwrap().outcome.as_ref().unwrap();
    assert!(outcome.passed(), "{outcome:?}");
    assert_eq!(r.state, State::Certified, "no review is owed");
    let probes = w.probes.lock().unwrap().clone();
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert!(probes[0].is_ok(), "the credential worked: {probes:?}");
    assert!(probes[1].is_err(), "and no longer after revoke: {probes:?}");
    let actions = actions_of(h, r.id);
    if !r.drill.as_ref().unwrap().scheduled {
        assert!(
            actions.iter().any(|x| x == "request.approved"),
            "{actions:?}"
        );
    }
    for a in [
        "request.created",
        "drill.started",
        "grant.intent",
        "grant.active",
        "revoke.started",
        "revoke.confirmed",
        "drill.passed",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} missing: {actions:?}");
    }
    assert_eq!(actions.last().unwrap(), "drill.passed");
    assert!(alerts(h, "drill") >= 3, "started, granted, passed");
    assert_eq!(alerts(h, "activation"), 0, "a drill is not an emergency");
    assert_eq!(alerts(h, "drill_failed"), 0);
    let roles = h.engine.roles(Some("alice")).await.unwrap();
    let k8s = roles.iter().find(|x| x.name == K8S).unwrap();
    assert!(k8s.locked_by.is_none(), "{:?}", k8s.lock_reason);
    assert!(!k8s.drill.failing);
    assert!(k8s.drill.last.as_ref().unwrap().passed());
    assert!(h.engine.reviews_for("alice").await.unwrap().is_empty());
    // The role takes an emergency request right away.
    h.engine
        .request("alice", input(K8S, inc("INC-1042")))
        .await
        .unwrap();
    assert_never_written(h, w);
}

#[tokio::test]
async fn a_drill_on_the_demo_backend_passes_and_leaves_nothing_behind() {
    let (h, w) = drill_harness("", None, None);
    let r = drilled(&h, K8S).await;
    assert_passed_clean(&h, &w, &r).await;
    assert!(h.leases().is_empty(), "the demo target holds no lease");
    assert_eq!(r.ttl_seconds, 60, "the role's min_ttl (default 1m)");
    // Its credential is never shown: activate is refused for a drill.
    let again = drilled(&h, K8S).await; // a second drill, run by the same path
    assert!(again.drill.unwrap().outcome.unwrap().passed());
    let filed = h.engine.drill("alice", K8S).await.unwrap();
    h.engine
        .decide("carol", filed.id, Decision::approve(None))
        .await
        .unwrap();
    match h.engine.activate("alice", filed.id).await {
        Err(Error::Refused(f)) => assert!(f.message.contains("never shown"), "{f}"),
        other => panic!("activate on a drill: {other:?}"),
    }
}

#[tokio::test]
async fn a_persons_drill_with_drill_approvals_0_is_refused_and_audited() {
    let (h, _w) = drill_harness("drill_approvals = 0", None, None);
    match h.engine.drill("alice", K8S).await {
        Err(Error::Refused(f)) => assert!(f.message.contains("drill_approvals = 0"), "{f}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(h.leases().is_empty());
    let head = h.store.audit_range(1, 100).unwrap();
    assert!(
        head.iter().any(|e| e.action == "policy.refused"),
        "the refusal is audited"
    );
    // bob cannot approve his way around it either: nothing was filed.
    assert!(h.store.list(&Default::default()).unwrap().is_empty());
}

#[tokio::test]
async fn a_scheduled_drill_runs_from_the_sweeper_unapproved_and_once_per_period() {
    let (h, w) = drill_harness("drill_every = \"30d\"\ndrill_approvals = 0", None, None);
    // One pass of the sweeper's loop (stopped at once after it).
    h.engine
        .sweep_until(
            std::time::Duration::from_secs(60),
            std::future::ready(()),
            |p| {
                p.unwrap();
            },
        )
        .await;
    let drills: Vec<Request> = h
        .store
        .list(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.drill.is_some())
        .collect();
    assert_eq!(drills.len(), 1, "{drills:?}");
    let r = &drills[0];
    assert_eq!(r.requester, "breakglass-drill");
    assert!(r.drill.as_ref().unwrap().scheduled);
    assert!(r.approvals.is_empty());
    assert_passed_clean(&h, &w, r).await;
    // Not due again until drill_every has passed.
    assert_eq!(h.engine.drill_pass().await.unwrap(), (0, 0));
    h.clock.advance(chrono::Duration::days(31));
    // (the emergency request assert_passed_clean filed is still pending: it
    // lapsed meanwhile and does not hold the role)
    h.engine.recover().await.unwrap();
    assert_eq!(h.engine.drill_pass().await.unwrap(), (1, 0));
    let roles = h.engine.roles(None).await.unwrap();
    let k8s = roles.iter().find(|x| x.name == K8S).unwrap();
    assert!(!k8s.drill.overdue);
    assert_eq!(k8s.drill_every_seconds, Some(30 * 86400));
}

#[tokio::test]
async fn a_drill_whose_revoke_fails_keeps_the_role_locked_and_says_so() {
    let (h, w) = drill_harness("", None, None);
    w.fail_revoke
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = drilled(&h, K8S).await;
    let o = r.drill.as_ref().unwrap().outcome.clone().unwrap();
    assert_eq!(o.failed_step, Some(DrillStep::Revoke), "{o:?}");
    assert_eq!(r.state, State::Revoking, "access may still be out there");
    assert_eq!(alerts(&h, "drill_failed"), 1);
    let roles = h.engine.roles(None).await.unwrap();
    let k8s = roles.iter().find(|x| x.name == K8S).unwrap();
    assert!(k8s.locked_by.is_some() && k8s.drill.failing);
    // The sweeper's retry revokes it; then a person reviews it like any access.
    w.fail_revoke
        .store(false, std::sync::atomic::Ordering::SeqCst);
    h.clock.advance(chrono::Duration::minutes(5));
    h.engine.recover().await.unwrap();
    assert_eq!(h.state(r.id), State::Ended);
    assert!(h.leases().is_empty());
    h.engine.review("alice", r.id, answers()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_whose_access_the_sweeper_revoked_meanwhile_still_passes() {
    let (h, w) = drill_harness("", None, None);
    // Another process's sweeper, on the same clock: right after the probe the
    // drill's TTL runs out and that sweeper revokes it before the drill does.
    let mut parts = breakglass::engine::Parts::from_config(&h.cfg).unwrap();
    parts.clock = h.clock.clone();
    let sweeper = breakglass::engine::Engine::new(parts);
    let clock = h.clock.clone();
    *w.after_probe.lock().unwrap() = Some(Box::pin(async move {
        clock.advance(chrono::Duration::minutes(2));
        let rep = sweeper.recover().await.unwrap();
        assert_eq!(rep.expired_revoked.len(), 1, "{rep:?}");
    }));
    let r = drilled(&h, K8S).await;
    let probes = w.probes.lock().unwrap().clone();
    let o = r.drill.as_ref().unwrap().outcome.clone().unwrap();
    // The sweeper's revocation is the drill's: the credential worked, then not.
    assert!(o.passed(), "{o:?} {probes:?}");
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert_eq!(r.state, State::Certified, "no lock, no review: {r:?}");
    assert!(h.leases().is_empty());
}

#[tokio::test]
async fn a_drill_waits_while_an_emergency_holds_the_role() {
    let (h, _w) = drill_harness("", None, None);
    let filed = h.engine.drill("alice", K8S).await.unwrap();
    h.engine
        .decide("bob", filed.id, Decision::approve(None))
        .await
        .unwrap();
    // bob's emergency takes the role before alice runs her drill.
    let r = h
        .engine
        .request("bob", input(K8S, inc("INC-1042")))
        .await
        .unwrap();
    h.engine
        .decide("carol", r.id, Decision::approve(None))
        .await
        .unwrap();
    h.engine.activate("bob", r.id).await.unwrap();
    match h.engine.drill("alice", K8S).await {
        Err(Error::Locked { .. }) => {}
        other => panic!("expected the role's lock, got {other:?}"),
    }
    // No finding about the path: not red, still approved, runs once free.
    assert_eq!(h.state(filed.id), State::Approved);
    let roles = h.engine.roles(None).await.unwrap();
    assert!(!roles.iter().find(|x| x.name == K8S).unwrap().drill.failing);
    assert_eq!(alerts(&h, "drill_failed"), 0);
    // Nor announced: a drill that could not start is not a drill started
    // (a scheduled one is retried every sweeper pass).
    assert!(
        !actions_of(&h, filed.id)
            .iter()
            .any(|a| a == "drill.started"),
        "{:?}",
        actions_of(&h, filed.id)
    );
    assert_eq!(alerts(&h, "drill"), 0);
    h.engine.revoke("bob", r.id, "done").await.unwrap();
    h.engine.review("bob", r.id, answers()).await.unwrap();
    h.engine
        .decide("dave", r.id, Decision::certify("ok"))
        .await
        .unwrap();
    let ran = h.engine.drill("alice", K8S).await.unwrap();
    assert_eq!(ran.id, filed.id);
    assert!(ran.drill.unwrap().outcome.unwrap().passed());
}

#[tokio::test]
async fn a_drill_is_not_routine_use() {
    let (h, _w) = drill_harness("max_activations_per_person = \"1/30d\"", None, None);
    drilled(&h, K8S).await;
    let r = h
        .engine
        .request("alice", input(K8S, inc("INC-1042")))
        .await
        .unwrap();
    assert_eq!(r.approvals_required, 1, "{:?}", r.routine_use);
    assert!(!r.routine_use.unwrap().over);
}

/// The exec backend of the demo config (`payments-api-operator`), its plugin
/// replaced by `script`.
fn plugin_harness(lines: &str, script: Option<&str>) -> H {
    let lines = lines.to_string();
    let h = harness_edited(
        move |text| {
            let anchor = "name = \"payments-api-operator\"\n";
            assert!(text.contains(anchor));
            *text = text.replace(anchor, &format!("{anchor}{lines}\n"));
            let short = "min_ttl = \"1s\"\nmax_ttl = \"45m\"";
            assert!(text.contains(short));
            *text = text.replace(short, "min_ttl = \"1m\"\nmax_ttl = \"45m\"");
        },
        |_| {},
    );
    if let Some(s) = script {
        std::fs::write(h.dir().join("plugins/exec-plugin.sh"), s).unwrap();
    }
    h
}

/// Grants for real (a lease file), but the target refuses the credential.
const REFUSING_PLUGIN: &str = r#"#!/bin/sh
IFS= read -r line || true
op=$(printf '%s' "$line" | sed -n 's/.*"op":"\([^"]*\)".*/\1/p')
case "$op" in
grant) printf '{"ok":true,"lease_id":"lease-1","credential":{"username":"u","password":"Zq8rPx2vLm4nKt6wYb3cHd9f"}}\n' ;;
probe) printf '{"ok":false,"error":"login refused: account disabled on the target"}\n' ;;
*) printf '{"ok":true}\n' ;;
esac
"#;

#[tokio::test]
async fn a_drill_through_the_example_exec_plugin_passes_with_its_probe_op() {
    let h = plugin_harness("", None);
    let r = drilled(&h, PLUGIN_ROLE).await;
    let o = r.drill.as_ref().unwrap().outcome.clone().unwrap();
    assert!(o.passed(), "{o:?}");
    assert_eq!(r.state, State::Certified);
    let state = h.dir().join("plugin-state");
    assert_eq!(
        std::fs::read_dir(&state).map(|d| d.count()).unwrap_or(0),
        0,
        "the plugin's lease is gone"
    );
}

#[tokio::test]
async fn a_credential_the_target_refuses_fails_the_drill_at_the_probe_loudly() {
    let h = plugin_harness("", Some(REFUSING_PLUGIN));
    let r = drilled(&h, PLUGIN_ROLE).await;
    let o = r.drill.as_ref().unwrap().outcome.clone().unwrap();
    assert_eq!(o.failed_step, Some(DrillStep::Probe), "{o:?}");
    assert!(o.error.unwrap().contains("account disabled"));
    // Access was revoked all the same: no lock, no review owed.
    assert_eq!(r.state, State::Certified);
    assert_eq!(alerts(&h, "drill_failed"), 1);
    let failed = h
        .store
        .outbox_due(chrono::Utc::now() + chrono::Duration::days(1), 100)
        .unwrap()
        .into_iter()
        .find(|a| a.payload["kind"] == "drill_failed")
        .unwrap();
    assert_eq!(failed.payload["severity"], "high");
    assert!(actions_of(&h, r.id).contains(&"drill.failed".to_string()));
    let roles = h.engine.roles(Some("alice")).await.unwrap();
    let role = roles.iter().find(|x| x.name == PLUGIN_ROLE).unwrap();
    assert!(role.drill.failing);
    assert!(role.locked_by.is_none());
    assert!(role
        .drill
        .describe(chrono::Utc::now())
        .contains("FAILED at probe"));
    // The password the plugin issued is nowhere breakglass wrote.
    for f in files_under(h.dir()) {
        if f.ends_with("plugins/exec-plugin.sh") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(
            !text.contains("Zq8rPx2vLm4nKt6wYb3cHd9f"),
            "in {}",
            f.display()
        );
    }
    // The CLI says so, red in `roles` and --json.
    let cfg = h.dir().join("breakglass.toml");
    let out = bg(&cfg, Some("alice"), &["roles"]);
    assert!(
        stdout(&out).contains("DRILL FAILED at probe"),
        "{}",
        stdout(&out)
    );
    let v = ok_json(bg(&cfg, Some("alice"), &["--json", "roles"]));
    let role = v["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == PLUGIN_ROLE)
        .unwrap();
    assert_eq!(role["drill"]["failing"], true);
    assert_eq!(role["drill"]["last"]["failed_step"], "probe");
}

#[tokio::test]
async fn a_failing_scheduled_drill_raises_drill_overdue_once_per_period() {
    let h = plugin_harness(
        "drill_every = \"7d\"\ndrill_approvals = 0",
        Some(REFUSING_PLUGIN),
    );
    assert_eq!(h.engine.drill_pass().await.unwrap(), (1, 1));
    assert_eq!(alerts(&h, "drill_failed"), 1);
    assert_eq!(alerts(&h, "drill_overdue"), 1);
    // Neither due again nor alerted again within the period.
    assert_eq!(h.engine.drill_pass().await.unwrap(), (0, 0));
    assert_eq!(alerts(&h, "drill_overdue"), 1);
    let roles = h.engine.roles(None).await.unwrap();
    let role = roles.iter().find(|x| x.name == PLUGIN_ROLE).unwrap();
    assert!(role.drill.overdue && role.drill.failing);
}

fn pg_backend(admin_url: String) -> Arc<dyn Backend> {
    use breakglass::config::{PgTls, PgUrlSource, PostgresConfig};
    let cfg = PostgresConfig {
        url: PgUrlSource::Env("UNUSED_IN_TESTS".into()),
        tls: Some(PgTls::Disable),
        ca_file: None,
        timeout: std::time::Duration::from_secs(10),
        session_timeout: std::time::Duration::from_secs(10),
        connection_limit: 5,
        database: None,
        reassign_owned_to: None,
        host: None,
        port: None,
    };
    Arc::new(PostgresBackend::with_url_provider(
        cfg,
        Arc::new(move || Ok(SecretString::from(admin_url.clone()))),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_on_real_postgresql_passes_end_to_end() {
    let pg = support::pg::shared();
    let db = pg.create_database("drill").await;
    let (h, w) = drill_harness("", Some("{}"), Some(pg_backend(pg.admin_url(&db))));
    let r = drilled(&h, K8S).await;
    assert_passed_clean(&h, &w, &r).await;
    let probes = w.probes.lock().unwrap().clone();
    assert!(
        probes[0].as_ref().unwrap().contains("SELECT 1"),
        "{probes:?}"
    );
    // The issued role (the lease) is gone from the server.
    let lease = w.leases.lock().unwrap()[0].clone();
    assert!(lease.starts_with("bg_req_"), "{lease}");
    let left = pg
        .admin(&db)
        .await
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&lease])
        .await
        .unwrap();
    assert!(left.is_empty(), "role {lease} is left");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgresql_role_that_cannot_log_in_fails_the_drill_at_the_probe() {
    let pg = support::pg::shared();
    let db = pg.create_database("drill_noconnect").await;
    // The grant works (the admin creates the role), but nobody but the admin
    // may connect to this database: the issued role is refused at login.
    pg.admin("postgres")
        .await
        .batch_execute(&format!("REVOKE CONNECT ON DATABASE {db} FROM PUBLIC"))
        .await
        .unwrap();
    let (h, w) = drill_harness("", Some("{}"), Some(pg_backend(pg.admin_url(&db))));
    let r = drilled(&h, K8S).await;
    let o = r.drill.as_ref().unwrap().outcome.clone().unwrap();
    assert_eq!(o.failed_step, Some(DrillStep::Probe), "{o:?}");
    assert!(
        o.error.as_deref().unwrap().contains("permission denied"),
        "{o:?}"
    );
    assert_eq!(alerts(&h, "drill_failed"), 1);
    assert_eq!(r.state, State::Certified, "revoked all the same");
    assert_never_written(&h, &w);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_on_real_openbao_passes_end_to_end() {
    use support::openbao::BaoServer;
    let bao = BaoServer::start();
    // The role's policy lets its token look itself up: what the drill's probe
    // asks (breakglass's tokens carry no default policy).
    bao.put_policy(
        "drilled",
        r#"path "auth/token/lookup-self" { capabilities = ["read"] }"#,
    )
    .await;
    bao.put_policy(
        "breakglass-admin",
        r#"
path "auth/token/create-orphan"   { capabilities = ["update", "sudo"] }
path "auth/token/lookup-accessor" { capabilities = ["update"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "auth/token/renew-accessor"  { capabilities = ["update"] }
path "auth/token/accessors"       { capabilities = ["list", "sudo"] }
"#,
    )
    .await;
    let admin = bao.token(&["breakglass-admin"]).await;
    let backend: Arc<dyn Backend> = Arc::new(breakglass::backend::VaultBackend::new(
        &bao.addr,
        SecretString::from(admin),
        breakglass::backend::vault::VaultOptions {
            timeout: std::time::Duration::from_secs(5),
            connect_timeout: std::time::Duration::from_secs(2),
            ..Default::default()
        },
    ));
    let (h, w) = drill_harness("", Some("{ policies = [\"drilled\"] }"), Some(backend));
    let r = drilled(&h, K8S).await;
    assert_passed_clean(&h, &w, &r).await;
}

#[test]
fn the_cli_files_then_runs_a_drill_with_its_exit_codes() {
    let (_tmp, cfg) = demo_dir();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let short = "min_ttl = \"1s\"\nmax_ttl = \"20m\"";
    assert!(text.contains(short));
    std::fs::write(
        &cfg,
        text.replace(short, "min_ttl = \"1m\"\nmax_ttl = \"20m\""),
    )
    .unwrap();
    let o = bg(&cfg, Some("alice"), &["drill", K8S]);
    assert_eq!(o.status.code(), Some(5), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("needs 1 approval"), "{}", stdout(&o));
    let o = bg(&cfg, Some("bob"), &["approve", "REQ-1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // What comes next is the drill, not an activation (which refuses drills).
    assert!(
        stdout(&o).contains(&format!(
            "alice runs the drill with `breakglass drill {K8S}`"
        )),
        "{}",
        stdout(&o)
    );
    let o = bg(&cfg, Some("alice"), &["drill", K8S]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("passed"), "{}", stdout(&o));
    let out = stdout(&bg(&cfg, Some("alice"), &["roles"]));
    assert!(out.contains("ago, passed"), "{out}");
    let v = ok_json(bg(&cfg, Some("alice"), &["--json", "status", "REQ-1"]));
    assert_eq!(v["request"]["state"], "certified", "{v}");
    assert!(v["request"]["drill"]["outcome"]["at"].is_string(), "{v}");
}

/// A probe after revocation that fails because the target stopped answering
/// proves nothing: the drill fails at that step and says it could not tell,
/// instead of passing as if the credential were refused.
#[tokio::test]
async fn an_unreachable_target_after_revocation_fails_the_drill() {
    let (h, w) = drill_harness("", None, None);
    w.down_after_probe
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = drilled(&h, K8S).await;
    let outcome = r.drill.unwrap().outcome.expect("an outcome");
    assert!(!outcome.passed(), "{outcome:?}");
    assert_eq!(
        outcome.failed_step,
        Some(breakglass::domain::drill::DrillStep::ProbeAfterRevoke)
    );
    assert!(
        outcome.error.as_deref().unwrap().contains("could not tell"),
        "{outcome:?}"
    );
}
