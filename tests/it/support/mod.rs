//! Shared test scaffolding: a demo-config engine on a manual clock, and a way to
//! run the real binary.
#![allow(dead_code)]

use breakglass::backend::{Credential, DemoBackend};
use breakglass::clock::ManualClock;
use breakglass::config::{self, BackendConfig, Config};
use breakglass::domain::{Request, RequestId, ReviewAnswers, State};
use breakglass::engine::{Decision, Engine, IncidentChoice, Parts, RequestInput};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

pub const DBA: &str = "prod-db-emergency-dba"; // 2 approvals, max 1 extension
pub const VENDOR: &str = "vendor-db-support"; // added by `vendor_role`, not in the demo
pub const K8S: &str = "k8s-cluster-admin"; // ticket pattern, 1 approval
pub const PLUGIN_ROLE: &str = "payments-api-operator"; // exec backend
pub const IAM: &str = "iam-breakglass-admin";

pub struct H {
    pub tmp: tempfile::TempDir,
    pub cfg: Config,
    pub engine: Engine,
    /// The engine's store, for tests that look behind the engine.
    pub store: Arc<dyn breakglass::store::Store>,
    pub clock: Arc<ManualClock>,
}

pub fn harness() -> H {
    harness_with(|_| {})
}

/// A demo config in a temp dir, its engine on a manual clock; `f` may swap parts.
pub fn harness_with(f: impl FnOnce(&mut Parts)) -> H {
    harness_edited(|_| {}, f)
}

/// `harness_with` on the demo config text as changed by `edit`.
pub fn harness_edited(edit: impl FnOnce(&mut String), f: impl FnOnce(&mut Parts)) -> H {
    let tmp = tempfile::tempdir().unwrap();
    let path = prepare_demo(tmp.path());
    let mut text = std::fs::read_to_string(&path).unwrap();
    edit(&mut text);
    std::fs::write(&path, text).unwrap();
    let cfg = config::load(&path).unwrap();
    let mut parts = Parts::from_config(&cfg).unwrap();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    parts.clock = clock.clone();
    f(&mut parts);
    H {
        tmp,
        cfg,
        store: parts.store.clone(),
        engine: Engine::new(parts),
        clock,
    }
}

pub fn input(role: &str, incident: IncidentChoice) -> RequestInput {
    RequestInput {
        incident,
        role: role.into(),
        condition: "production outage".into(),
        reason: "checkout is down; need to fail over the primary".into(),
        ttl_seconds: None,
    }
}

pub fn inc(id: &str) -> IncidentChoice {
    IncidentChoice::Id(id.into())
}

pub fn answers() -> ReviewAnswers {
    ReviewAnswers {
        actions_taken: "promoted the replica".into(),
        systems_touched: "db-1".into(),
        access_necessary: true,
        credentials_copied: false,
        credentials_copied_where: String::new(),
        follow_ups: "automate failover".into(),
    }
}

impl H {
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The simulated target of the `demo` backend.
    pub fn demo_target(&self) -> DemoBackend {
        match &self.cfg.backends["demo"] {
            BackendConfig::Demo { state_path } => DemoBackend::new(state_path.clone()),
            _ => unreachable!(),
        }
    }

    pub fn leases(&self) -> Vec<(String, String)> {
        self.demo_target().active_leases().unwrap()
    }

    pub fn audit_len(&self) -> i64 {
        self.store.audit_head().unwrap().0
    }

    /// Read from the store itself, so sync tests can ask too.
    pub fn state(&self, id: RequestId) -> State {
        self.store.get(id).unwrap().unwrap().state
    }

    /// alice requests `role` for INC-1042.
    pub async fn requested(&self, role: &str) -> Request {
        self.engine
            .request("alice", input(role, inc("INC-1042")))
            .await
            .unwrap()
    }

    /// alice requests `role`, the needed approvers approve.
    pub async fn approved(&self, role: &str) -> Request {
        let r = self.requested(role).await;
        let mut last = r.clone();
        for who in ["bob", "carol"].iter().take(r.approvals_required as usize) {
            last = self
                .engine
                .decide(who, r.id, Decision::approve(None))
                .await
                .unwrap();
        }
        assert_eq!(last.state, State::Approved);
        last
    }

    pub async fn active(&self, role: &str) -> (Request, Credential) {
        let r = self.approved(role).await;
        self.engine.activate("alice", r.id).await.unwrap()
    }

    /// With `vendor_role` in the config: dave recertifies the role, alice files
    /// a request for Vera Vendor of DB Corp.
    pub async fn vendor_request(&self) -> Request {
        self.engine
            .recertify_role("dave", VENDOR, "reviewed")
            .await
            .unwrap();
        let vendor = breakglass::domain::vendor::VendorInfo {
            name: "Vera Vendor".into(),
            company: "DB Corp".into(),
        };
        self.engine
            .request_vendor("alice", input(VENDOR, inc("INC-1042")), Some(vendor))
            .await
            .unwrap()
    }

    /// What `breakglass shell` leaves behind on an approved vendor request
    /// (activated, ended, its recording audited), then alice's review.
    pub async fn vendor_session_reviewed(&self, id: RequestId) {
        self.engine.activate_for_shell("alice", id).await.unwrap();
        self.vendor_session_ended(id).await;
    }

    /// The end of an active vendor session, then alice's review.
    pub async fn vendor_session_ended(&self, id: RequestId) {
        self.engine
            .revoke("alice", id, "session closed")
            .await
            .unwrap();
        self.engine
            .audit_note(
                id,
                breakglass::domain::AuditAction::SessionRecorded,
                "alice",
                serde_json::json!({"path": "/nonexistent", "sha256": "00"}),
            )
            .await
            .unwrap();
        self.engine.review("alice", id, answers()).await.unwrap();
    }

    pub fn alerts_of_kind(&self, kind: &str) -> usize {
        self.store
            .outbox_due(chrono::Utc::now() + chrono::Duration::days(3650), 10_000)
            .unwrap()
            .iter()
            .filter(|r| r.payload["kind"] == kind)
            .count()
    }
}

/// Runs the real binary against a config, as a demo persona when `who` is given.
pub fn bg(config: &Path, who: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_breakglass"));
    c.arg("--config").arg(config);
    if let Some(w) = who {
        c.args(["--as", w]);
    }
    c.args(args).env_remove("BREAKGLASS_FAILPOINT");
    c.output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn demo_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = prepare_demo(tmp.path());
    (tmp, path)
}

/// The demo config in `dir`, with `min_ttl = "1s"` on every role but
/// prod-db-emergency-dba, so tests can watch access expire in seconds (the
/// demo keeps the 1m default; prod-db keeps it here, for the tests of that floor).
pub fn prepare_demo(dir: &Path) -> PathBuf {
    let path = breakglass::demo::prepare(dir).unwrap();
    let mut text = std::fs::read_to_string(&path).unwrap();
    if !text.contains("min_ttl = \"1s\"") {
        for role in [
            "k8s-cluster-admin",
            "payments-api-operator",
            "iam-breakglass-admin",
        ] {
            let name = format!("name = \"{role}\"");
            let (head, tail) = text.split_once(&name).expect("a demo role");
            let tail = tail.replacen("max_ttl = ", "min_ttl = \"1s\"\nmax_ttl = ", 1);
            text = format!("{head}{name}{tail}");
        }
        std::fs::write(&path, text).unwrap();
    }
    path
}

/// Runs the binary with extra environment (e.g. a fail point).
pub fn bg_env(config: &Path, who: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_breakglass"));
    c.arg("--config").arg(config);
    if let Some(w) = who {
        c.args(["--as", w]);
    }
    c.args(args).env_remove("BREAKGLASS_FAILPOINT");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// Asserts success and returns the JSON document printed.
pub fn ok_json(o: Output) -> serde_json::Value {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    json(&o)
}

/// The demo backend's simulated target for a demo dir.
pub fn demo_leases(dir: &Path) -> Vec<(String, String)> {
    DemoBackend::new(dir.join("demo-target-demo.sqlite"))
        .active_leases()
        .unwrap()
}

/// Audit actions about requests in order, read straight from the store file.
pub fn audit_actions(dir: &Path) -> Vec<(i64, String)> {
    let c = rusqlite::Connection::open(dir.join("breakglass.sqlite")).unwrap();
    let mut st = c
        .prepare("SELECT request_id, action FROM audit WHERE request_id IS NOT NULL ORDER BY seq")
        .unwrap();
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

pub const REQUEST_DBA: &[&str] = &[
    "request",
    "--incident",
    "INC-1042",
    "--role",
    "prod-db-emergency-dba",
    "--condition",
    "production outage",
    "--reason",
    "primary is read-only",
];
pub const REQUEST_K8S: &[&str] = &[
    "request",
    "--ticket",
    "CHG-77",
    "--role",
    "k8s-cluster-admin",
    "--condition",
    "failed automation path",
    "--reason",
    "deploy pipeline wedged",
];

#[macro_use]
pub mod store_conformance;

pub mod tui;

#[macro_use]
pub mod backend_conformance;

pub mod accounts;
pub mod broker_site;
pub mod daemon;
pub mod pg;
pub mod sshd;

pub mod openbao;

pub mod receivers;

pub mod ocsf;
pub mod rsyslog;

pub mod pty;

/// A vendor role for the demo config (oncall requests, sre-leads approve,
/// security certifies); `extra` lines go at the end of its table.
pub fn vendor_role(extra: &str) -> String {
    format!(
        r#"
[[roles]]
name = "{VENDOR}"
description = "The database vendor's support engineer"
backend = "demo"
scope = {{ member_of = ["vendor_support"] }}
default_ttl = "15m"
max_ttl = "30m"
min_ttl = "1s"
vendor = true
conditions = ["production outage"]
requesters = ["@oncall"]
approvers = ["@sre-leads"]
certifiers = ["@security"]
{extra}
"#
    )
}

/// A new Ed25519 key pair at `path` (and `path.pub`), no passphrase.
pub fn keygen(path: &Path, comment: &str) {
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("ssh-keygen is needed: apt-get install -y openssh-client ({e})")
        });
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The binary with no SSH key to fall back on: HOME is `home`, no agent, no
/// BREAKGLASS_SSH_KEY (signing tests say which key, or none).
pub fn bg_no_ssh_key(config: &Path, home: &Path, who: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_breakglass"));
    c.arg("--config").arg(config);
    if let Some(w) = who {
        c.args(["--as", w]);
    }
    c.args(args)
        .env("HOME", home)
        .env_remove("BREAKGLASS_SSH_KEY")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("BREAKGLASS_FAILPOINT");
    c.output().unwrap()
}

/// REQ-1 filed by alice with `request_args` (e.g. `REQUEST_K8S`) and approved by bob.
pub fn approved(cfg: &Path, request_args: &[&str]) {
    ok_json(bg(
        cfg,
        Some("alice"),
        &[&["--json"], request_args].concat(),
    ));
    ok_json(bg(cfg, Some("bob"), &["--json", "approve", "1"]));
}

/// `approved`, then activated by alice (the credential goes to JSON, unread).
pub fn activated(cfg: &Path, request_args: &[&str]) {
    approved(cfg, request_args);
    ok_json(bg(cfg, Some("alice"), &["--json", "activate", "1"]));
}
