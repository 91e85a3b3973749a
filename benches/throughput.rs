//! Throughput benchmarks (not tests): audit-chain verification and lifecycle
//! transitions through the real engine, SQLite store and demo backend.
//!
//!   full run:   cargo bench --bench throughput
//!   smoke run:  cargo bench --bench throughput -- --quick      (or BENCH_QUICK=1)
//!   overrides:  BENCH_EVENTS=<n>  BENCH_CYCLES=<n>  BENCH_DIR=<parent dir for temp files>
//!
//! MB means 10^6 bytes throughout.
#![allow(clippy::unwrap_used)] // a benchmark setup that fails should stop the run

mod common;

use anyhow::{ensure, Context, Result};
use breakglass::audit::{self, AuditRecord, Verifier};
use breakglass::backend::{Backend, BackendError, DemoBackend, Grant, GrantSpec, RevokeSpec};
use breakglass::clock::SystemClock;
use breakglass::config::RecoveryConfig;
use breakglass::domain::policy::Principals;
use breakglass::domain::{
    AuditAction, Event, Policy, Request, RequestId, ReviewAnswers, RolePolicy, State,
};
use breakglass::engine::{Decision, Engine, IncidentChoice, Parts, RequestInput};
use breakglass::store::{AlertDraft, OutboxRow, Query, SqliteStore, Store, StoreError};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Opts {
    quick: bool,
    events: i64,
    cycles: usize,
    warmup: usize,
    reps: usize,
    dir: PathBuf,
}

impl Opts {
    fn from_env() -> Result<Self> {
        let quick = common::quick();
        let (events, cycles, reps) = if quick {
            (20_000, 20, 2)
        } else {
            (1_000_000, 500, 5)
        };
        Ok(Opts {
            quick,
            events: common::env_num("BENCH_EVENTS", events)?.max(1) as i64,
            cycles: common::env_num("BENCH_CYCLES", cycles)?.max(1) as usize,
            warmup: if quick { 1 } else { 3 },
            reps,
            dir: common::bench_dir(),
        })
    }
}

// ---------------------------------------------------------------- formatting

fn thousands_f(n: f64) -> String {
    common::thousands(n.round() as u64)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[(v.len() - 1) / 2]
}

fn latency_row(label: &str, samples: &[Duration], divide: u32) {
    let mut v: Vec<Duration> = samples.iter().map(|d| *d / divide).collect();
    v.sort();
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    println!(
        "  {label:<30} {:>7} {:>11} {:>11} {:>11} {:>11}",
        v.len(),
        common::secs(mean, 3),
        common::secs(common::pct(&v, 50.0), 3),
        common::secs(common::pct(&v, 99.0), 3),
        common::secs(*v.last().unwrap(), 3)
    );
}

fn latency_header() {
    println!(
        "  {:<30} {:>7} {:>11} {:>11} {:>11} {:>11}",
        "", "n", "mean", "p50", "p99", "max"
    );
}

// ---------------------------------------------------------------- machine context

/// The mount holding `path`: (mount point, fs type).
fn mount_of(path: &Path) -> Option<(String, String)> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let unescape = |s: &str| {
        s.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\134", "\\")
    };
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3).then(|| (unescape(f[1]), f[2].to_string()))
        })
        .filter(|(mp, _)| path.starts_with(mp))
        .max_by_key(|(mp, _)| mp.len())
}

fn print_context(o: &Opts) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let (mp, fs) = mount_of(&o.dir).unwrap_or_else(|| ("?".into(), "?".into()));
    let sha_ext = {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("sha") {
                "yes"
            } else {
                "no"
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            "n/a"
        }
    };
    println!("== machine ==");
    println!("  cores (available_parallelism)  {cores}");
    println!(
        "  temp dir                       {} on {mp} ({fs}; tmpfs: {})",
        o.dir.display(),
        if fs == "tmpfs" || fs == "ramfs" {
            "YES - fsync is free, commit latencies are not representative"
        } else {
            "no"
        }
    );
    println!("  x86 SHA extensions             {sha_ext}");
    println!(
        "  build                          {}",
        if cfg!(debug_assertions) {
            "DEBUG (figures meaningless)"
        } else {
            "optimised"
        }
    );
    println!(
        "  mode                           {} ({} audit events, {} lifecycle cycles)",
        if o.quick { "quick" } else { "full" },
        thousands_f(o.events as f64),
        o.cycles
    );
    println!();
}

// ---------------------------------------------------------------- 1. audit verify

const ROLES: [&str; 4] = [
    "db-admin",
    "k8s-prod-admin",
    "aws-billing-root",
    "payments-ssh",
];
const REASONS: [&str; 4] = [
    "primary database refuses connections after failover; need to promote the replica",
    "pods crash-looping in prod after the 14:02 deploy, rolling back the release",
    "card authorisations timing out; restart the gateway pool and inspect the queue",
    "disk full on payments-db-2: rotate logs and extend the volume",
];
/// The eight events of one full request lifecycle, in order.
const STEPS: [(&str, Option<&str>, &str, &str); 8] = [
    ("request.created", None, "pending", "alice"),
    ("request.approved", Some("pending"), "approved", "bob"),
    ("grant.intent", Some("approved"), "granting", "alice"),
    ("grant.active", Some("granting"), "active", "alice"),
    ("revoke.started", Some("active"), "revoking", "alice"),
    ("revoke.confirmed", Some("revoking"), "ended", "alice"),
    ("review.submitted", Some("ended"), "reviewed", "alice"),
    ("review.certified", Some("reviewed"), "certified", "bob"),
];

/// An unsealed event shaped like a real one: role, incident and reason in detail.
fn synthetic(seq: i64, base: DateTime<Utc>) -> AuditRecord {
    let i = seq - 1;
    let req = i / 8 + 1;
    let (action, from, to, actor) = STEPS[(i % 8) as usize];
    let k = (req % 4) as usize;
    let detail = serde_json::json!({
        "role": ROLES[k],
        "incident": {"kind": "ticket", "reference": format!("INC-{}", 100_000 + req)},
        "reason": REASONS[k],
        "ttl_seconds": 3600,
        "approvals_required": 1,
    });
    AuditRecord {
        seq,
        at: breakglass::domain::time::ts(base + chrono::Duration::milliseconds(seq * 1500)),
        actor: actor.into(),
        request_id: Some(req),
        action: action.into(),
        from_state: from.map(Into::into),
        to_state: Some(to.into()),
        detail: audit::canonical_detail(&detail),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// Creates the store (schema via `SqliteStore::open`), then bulk-inserts `n`
/// sealed, chained events with rusqlite in one transaction.
fn build_audit_db(path: &Path, n: i64) -> Result<(u64, usize, usize)> {
    drop(SqliteStore::open(path)?);
    let base: DateTime<Utc> = "2026-01-05T09:00:00Z".parse()?;
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    let (mut detail_sum, mut dmin, mut dmax) = (0u64, usize::MAX, 0usize);
    {
        let mut st = tx.prepare(
            "INSERT INTO audit (seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut prev = audit::GENESIS.to_string();
        for seq in 1..=n {
            let r = audit::seal(synthetic(seq, base), &prev);
            let d = r.detail.len();
            detail_sum += d as u64;
            dmin = dmin.min(d);
            dmax = dmax.max(d);
            st.execute(rusqlite::params![
                r.seq,
                r.at,
                r.actor,
                r.request_id,
                r.action,
                r.from_state,
                r.to_state,
                r.detail,
                r.prev_hash,
                r.hash
            ])?;
            prev = r.hash;
        }
    }
    tx.commit()?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok((detail_sum / n as u64, dmin, dmax))
}

fn empty_engine(
    store: Arc<dyn Store>,
    backends: BTreeMap<String, Arc<dyn Backend>>,
    policy: Policy,
) -> Engine {
    Engine::new(Parts {
        policy,
        store,
        backends,
        sources: vec![],
        sinks: vec![],
        alerts: Default::default(),
        clock: Arc::new(SystemClock),
        recovery: RecoveryConfig {
            grant_timeout: Duration::from_secs(300),
            revoke_timeout: Duration::from_secs(60),
            ..Default::default()
        },
    })
}

fn bench_verify(o: &Opts, tmp: &Path) -> Result<()> {
    let n = o.events;
    println!(
        "== 1. audit verify over {} events ==",
        thousands_f(n as f64)
    );
    let path = tmp.join("audit-bench.db");
    let t = Instant::now();
    let (dmean, dmin, dmax) = build_audit_db(&path, n)?;
    let setup = t.elapsed();
    let db_bytes = std::fs::metadata(&path)?.len();
    println!(
        "  setup (seal + bulk insert, untimed)  {}; store file {:.1} MB",
        common::secs(setup, 3),
        mb(db_bytes)
    );
    println!("  detail JSON per event                mean {dmean} B (min {dmin}, max {dmax})");

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path)?);
    let engine = empty_engine(
        store,
        BTreeMap::new(),
        Policy {
            roles: BTreeMap::new(),
            demo_personas: None,
            approval_signing: None,
        },
    );

    // The real path: `breakglass audit verify` -> Engine::verify_audit.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut runs = vec![];
    for _ in 0..o.reps {
        let t = Instant::now();
        let (count, broken) = rt.block_on(engine.verify_audit())?;
        runs.push(t.elapsed());
        ensure!(broken.is_none(), "chain broken: {broken:?}");
        ensure!(count == n as u64, "verified {count} of {n}");
    }

    // Decomposition, part 1: the same batched reads with no verification, each
    // batch dropped as verify_audit drops it (SQLite read + row -> AuditRecord).
    let mut read_runs = vec![];
    for _ in 0..o.reps {
        let t = Instant::now();
        let (mut from, mut rows) = (1, 0usize);
        loop {
            let batch = rt.block_on(engine.audit_events(from, 10_000))?;
            let Some(last) = batch.last() else { break };
            from = last.seq + 1;
            rows += black_box(&batch).len();
        }
        read_runs.push(t.elapsed());
        ensure!(rows == n as usize);
    }

    // Part 2: hashing only, over every record already in memory (untimed load).
    let mut all: Vec<AuditRecord> = Vec::with_capacity(n as usize);
    let mut from = 1;
    loop {
        let batch = rt.block_on(engine.audit_events(from, 10_000))?;
        let Some(last) = batch.last() else { break };
        from = last.seq + 1;
        all.extend(batch);
    }
    ensure!(all.len() == n as usize);

    let mut mem_runs = vec![];
    for _ in 0..o.reps {
        let t = Instant::now();
        let mut v = Verifier::default();
        for r in &all {
            v.push(r).map_err(|b| anyhow::anyhow!("broken: {b:?}"))?;
        }
        black_box(v.head());
        mem_runs.push(t.elapsed());
    }

    let t = Instant::now();
    let mut canon_bytes = 0usize;
    for r in &all {
        canon_bytes += black_box(audit::canonical(r)).len();
    }
    let canon_only = t.elapsed();

    // Exactly the bytes that get hashed: prev_hash hex + canonical JSON, per event.
    let mut hashed = Vec::with_capacity(canon_bytes + all.len() * 64);
    for r in &all {
        hashed.extend_from_slice(r.prev_hash.as_bytes());
        hashed.extend_from_slice(&audit::canonical(r));
    }
    let bytes = hashed.len() as u64;
    drop(all);

    let t = Instant::now();
    black_box(Sha256::digest(&hashed));
    let sha2_stream = t.elapsed();

    let floor_path = tmp.join("hashed-bytes.bin");
    std::fs::write(&floor_path, &hashed)?;
    drop(hashed);
    let mut sum_runs = vec![];
    for _ in 0..o.reps.max(2) {
        let t = Instant::now();
        let out = Command::new("sha256sum")
            .arg(&floor_path)
            .output()
            .context("running sha256sum")?;
        sum_runs.push(t.elapsed());
        ensure!(out.status.success(), "sha256sum failed: {:?}", out.status);
    }
    std::fs::remove_file(&floor_path)?;

    let best = *runs.iter().min().unwrap();
    let mem_best = *mem_runs.iter().min().unwrap();
    let sum_best = *sum_runs.iter().min().unwrap();
    let rate = |d: Duration| {
        format!(
            "{:>11} events/s  {:>7.1} MB/s",
            thousands_f(n as f64 / d.as_secs_f64()),
            mb(bytes) / d.as_secs_f64()
        )
    };
    println!(
        "  bytes hashed                         {:.1} MB ({} B/event: 64 B prev_hash + canonical JSON)",
        mb(bytes),
        bytes / n as u64
    );
    println!();
    println!(
        "  Engine::verify_audit                 best {}  median {}  (runs: {})",
        common::secs(best, 3),
        common::secs(median(&runs), 3),
        runs.iter()
            .map(|d| common::secs(*d, 3))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("    throughput                         {}", rate(best));
    println!("  breakdown (page cache warm)");
    println!(
        "    Store::audit_range only            {}  (same 10k batches, no hashing: SQLite read + row -> AuditRecord)",
        common::secs(*read_runs.iter().min().unwrap(), 3)
    );
    println!(
        "    Verifier over a Vec in memory      {}  {}  (all records resident)",
        common::secs(mem_best, 3),
        rate(mem_best)
    );
    println!(
        "      of which canonical() alone       {}",
        common::secs(canon_only, 3)
    );
    println!("  floors over the same bytes");
    println!(
        "    sha256sum (coreutils, file)        {}  {:>7.1} MB/s  -> verify / sha256sum = {:.2}x",
        common::secs(sum_best, 3),
        mb(bytes) / sum_best.as_secs_f64(),
        best.as_secs_f64() / sum_best.as_secs_f64()
    );
    println!(
        "    sha2 crate, one stream in memory   {}  {:>7.1} MB/s  -> verify / sha2 stream = {:.2}x",
        common::secs(sha2_stream, 3),
        mb(bytes) / sha2_stream.as_secs_f64(),
        best.as_secs_f64() / sha2_stream.as_secs_f64()
    );
    println!();
    drop(engine);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}

// ---------------------------------------------------------------- 2. lifecycle

/// Times every store transaction that commits a transition.
struct TimedStore {
    inner: SqliteStore,
    commits: Mutex<Vec<(&'static str, Duration)>>,
}

impl TimedStore {
    fn record<T>(&self, action: &'static str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.commits.lock().unwrap().push((action, t.elapsed()));
        out
    }
}

impl Store for TimedStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn insert_request(
        &self,
        req: &Request,
        event: &Event,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<Request, StoreError> {
        self.record(event.action.as_str(), || {
            self.inner.insert_request(req, event, alerts, now)
        })
    }
    fn commit(
        &self,
        req: &Request,
        event: &Event,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<Request, StoreError> {
        self.record(event.action.as_str(), || {
            self.inner.commit(req, event, alerts, now)
        })
    }
    fn get(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        self.inner.get(id)
    }
    fn list(&self, q: &Query) -> Result<Vec<Request>, StoreError> {
        self.inner.list(q)
    }
    fn role_lock(
        &self,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(RequestId, State)>, StoreError> {
        self.inner.role_lock(role, now)
    }
    fn audit_head(&self) -> Result<(i64, String), StoreError> {
        self.inner.audit_head()
    }
    fn audit_range(&self, from: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_range(from, limit)
    }
    fn request_events(
        &self,
        id: RequestId,
        action: AuditAction,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.request_events(id, action)
    }
    fn activations_since(
        &self,
        role: &str,
        requester: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        self.inner.activations_since(role, requester, since)
    }
    fn last_role_event(
        &self,
        role: &str,
        action: AuditAction,
    ) -> Result<Option<AuditRecord>, StoreError> {
        self.inner.last_role_event(role, action)
    }
    fn outbox_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.inner.outbox_due(now, limit)
    }
    fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.outbox_delivered(id, now)
    }
    fn outbox_failed(
        &self,
        id: i64,
        delivered_to: &[String],
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.outbox_failed(id, delivered_to, error, retry_at)
    }
    fn outbox_undelivered(&self) -> Result<u64, StoreError> {
        self.inner.outbox_undelivered()
    }
    fn outbox_next_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.outbox_next_attempt()
    }
    fn earliest_deadline(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.earliest_deadline()
    }
    fn outbox_undelivered_for(&self, request: RequestId) -> Result<u64, StoreError> {
        self.inner.outbox_undelivered_for(request)
    }
    fn append_note(
        &self,
        request: Option<RequestId>,
        note: &breakglass::store::Note,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.append_note(request, note, alerts, now)
    }
    fn claim(
        &self,
        key: breakglass::store::ClaimKey,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.claim(key, owner, now, until)
    }
    fn release(&self, key: breakglass::store::ClaimKey, owner: &str) -> Result<(), StoreError> {
        self.inner.release(key, owner)
    }
    fn claim_holder(
        &self,
        key: breakglass::store::ClaimKey,
    ) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        self.inner.claim_holder(key)
    }
    fn take_over(
        &self,
        key: breakglass::store::ClaimKey,
        gone: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.take_over(key, gone, owner, now, until)
    }
}

/// Times the demo backend's grant and revoke calls.
struct TimedBackend {
    inner: DemoBackend,
    calls: Mutex<Vec<(&'static str, Duration)>>,
}

impl TimedBackend {
    fn push(&self, what: &'static str, d: Duration) {
        self.calls.lock().unwrap().push((what, d));
    }
}

#[async_trait::async_trait]
impl Backend for TimedBackend {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError> {
        let t = Instant::now();
        let out = self.inner.grant(spec).await;
        self.push("grant", t.elapsed());
        out
    }
    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError> {
        let t = Instant::now();
        let out = self.inner.revoke(spec).await;
        self.push("revoke", t.elapsed());
        out
    }
    async fn extend(
        &self,
        spec: &RevokeSpec,
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        self.inner.extend(spec, expires_at).await
    }
    async fn rotate(&self, role: &str, scope: &serde_json::Value) -> Result<(), BackendError> {
        self.inner.rotate(role, scope).await
    }
    async fn check(&self) -> Result<String, BackendError> {
        self.inner.check().await
    }
}

fn principals(user: &str) -> Principals {
    Principals {
        users: BTreeSet::from([user.to_string()]),
        anyone: false,
        written: vec![user.to_string()],
    }
}

fn bench_policy() -> Result<Policy> {
    let role = RolePolicy {
        name: "db-admin".into(),
        description: "emergency DBA on the primary cluster".into(),
        backend: "demo".into(),
        scope: serde_json::json!({"member_of": ["emergency_dba"]}),
        default_ttl: 3600,
        max_ttl: 4 * 3600,
        max_extensions: 2,
        max_total: 8 * 3600,
        min_ttl: 60,
        conditions: vec!["database down".into()],
        ticket_pattern: Some(regex::Regex::new("^INC-[0-9]+$")?),
        requesters: principals("alice"),
        approvers: principals("bob"),
        certifiers: principals("bob"),
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
    };
    Ok(Policy {
        roles: BTreeMap::from([(role.name.clone(), role)]),
        demo_personas: None,
        approval_signing: None,
    })
}

/// (engine call, transitions it commits)
const CALLS: [(&str, u32); 6] = [
    ("request", 1),
    ("approve", 1),
    ("activate", 2),
    ("revoke", 2),
    ("review", 1),
    ("certify", 1),
];
const TRANSITIONS_PER_CYCLE: usize = 8;

fn bench_lifecycle(o: &Opts, tmp: &Path) -> Result<()> {
    println!(
        "== 2. lifecycle on the demo backend, SQLite store (WAL, synchronous=FULL), {} cycles ==",
        o.cycles
    );
    println!("  cycle = request -> approve (1 of 1) -> activate -> revoke -> review -> certify");
    println!("        = 6 engine calls, 8 committed transitions");
    let store = Arc::new(TimedStore {
        inner: SqliteStore::open(&tmp.join("lifecycle.db"))?,
        commits: Mutex::new(vec![]),
    });
    let backend = Arc::new(TimedBackend {
        inner: DemoBackend::new(tmp.join("demo-target.db")),
        calls: Mutex::new(vec![]),
    });
    let engine = empty_engine(
        store.clone(),
        BTreeMap::from([("demo".to_string(), backend.clone() as Arc<dyn Backend>)]),
        bench_policy()?,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answers = ReviewAnswers {
        actions_taken: "promoted replica db-2, re-pointed the pooler, verified writes".into(),
        systems_touched: "db-1, db-2, pgbouncer".into(),
        access_necessary: true,
        credentials_copied: false,
        credentials_copied_where: String::new(),
        follow_ups: "postmortem INC review on Thursday".into(),
    };

    let mut calls: Vec<(usize, Duration)> = vec![];
    let mut wall = Duration::ZERO;
    for i in 0..o.warmup + o.cycles {
        if i == o.warmup {
            calls.clear();
            store.commits.lock().unwrap().clear();
            backend.calls.lock().unwrap().clear();
        }
        let start = Instant::now();
        let mut lap = Instant::now();
        let mut mark = |k: usize, calls: &mut Vec<(usize, Duration)>| {
            calls.push((k, lap.elapsed()));
            lap = Instant::now();
        };
        let req = rt.block_on(engine.request(
            "alice",
            RequestInput {
                incident: IncidentChoice::Ticket(format!("INC-{}", 40_000 + i)),
                role: "db-admin".into(),
                condition: "database down".into(),
                reason: REASONS[i % 4].into(),
                ttl_seconds: None,
            },
        ))?;
        mark(0, &mut calls);
        let id = req.id;
        rt.block_on(engine.decide("bob", id, Decision::approve(Some("go ahead".into()))))?;
        mark(1, &mut calls);
        let (_, credential) = rt.block_on(engine.activate("alice", id))?;
        drop(credential);
        mark(2, &mut calls);
        rt.block_on(engine.revoke("alice", id, "fixed"))?;
        mark(3, &mut calls);
        rt.block_on(engine.review("alice", id, answers.clone()))?;
        mark(4, &mut calls);
        let done = rt.block_on(engine.decide("bob", id, Decision::certify("review complete")))?;
        mark(5, &mut calls);
        ensure!(done.state == State::Certified, "{id} ended {}", done.state);
        if i >= o.warmup {
            wall += start.elapsed();
        }
    }

    let commits = store.commits.lock().unwrap().clone();
    let bcalls = backend.calls.lock().unwrap().clone();
    let transitions = o.cycles * TRANSITIONS_PER_CYCLE;
    ensure!(commits.len() == transitions, "{} commits", commits.len());
    let (count, broken) = rt.block_on(engine.verify_audit())?;
    ensure!(broken.is_none() && count as usize == (o.warmup + o.cycles) * TRANSITIONS_PER_CYCLE);

    let w = wall.as_secs_f64();
    println!();
    println!(
        "  throughput        {:.1} transitions/s   ({} transitions in {}; {:.1} engine calls/s, {:.1} full cycles/s)",
        transitions as f64 / w,
        transitions,
        common::secs(wall, 3),
        (o.cycles * CALLS.len()) as f64 / w,
        o.cycles as f64 / w
    );
    let in_commits: Duration = commits.iter().map(|c| c.1).sum();
    let in_backend: Duration = bcalls.iter().map(|c| c.1).sum();
    println!(
        "  where wall time goes: store commits {:.0}%, demo backend calls {:.0}%, rest (loads, engine, runtime) {:.0}%",
        100.0 * in_commits.as_secs_f64() / w,
        100.0 * in_backend.as_secs_f64() / w,
        100.0 * (w - in_commits.as_secs_f64() - in_backend.as_secs_f64()) / w
    );

    println!();
    println!("  A) per engine call (measured: wall time of the call)");
    latency_header();
    for (k, (name, _)) in CALLS.iter().enumerate() {
        let v: Vec<Duration> = calls.iter().filter(|c| c.0 == k).map(|c| c.1).collect();
        latency_row(name, &v, 1);
    }
    let all: Vec<Duration> = calls.iter().map(|c| c.1).collect();
    latency_row("any call", &all, 1);

    println!();
    println!("  B) per transition, derived (call time / transitions it commits; activate and revoke halved, backend call included)");
    latency_header();
    let mut derived = vec![];
    for (k, (name, per)) in CALLS.iter().enumerate() {
        for c in calls.iter().filter(|c| c.0 == k) {
            for _ in 0..*per {
                derived.push(c.1 / *per);
            }
        }
        if *per > 1 {
            let v: Vec<Duration> = calls.iter().filter(|c| c.0 == k).map(|c| c.1).collect();
            latency_row(&format!("{name} / {per}"), &v, *per);
        }
    }
    latency_row("any transition (derived)", &derived, 1);

    println!();
    println!("  C) per transition, measured at the store (one BEGIN IMMEDIATE..COMMIT incl. fsync; excludes load and backend)");
    latency_header();
    let mut actions: Vec<&str> = vec![];
    for (a, _) in &commits {
        if !actions.contains(a) {
            actions.push(a);
        }
    }
    for a in actions {
        let v: Vec<Duration> = commits.iter().filter(|c| c.0 == a).map(|c| c.1).collect();
        latency_row(a, &v, 1);
    }
    let v: Vec<Duration> = commits.iter().map(|c| c.1).collect();
    latency_row("any transition (store)", &v, 1);

    println!();
    println!("  D) demo backend calls (measured; each opens the target SQLite file)");
    latency_header();
    for what in ["grant", "revoke"] {
        let v: Vec<Duration> = bcalls.iter().filter(|c| c.0 == what).map(|c| c.1).collect();
        latency_row(what, &v, 1);
    }
    println!();
    Ok(())
}

fn main() -> Result<()> {
    let o = Opts::from_env()?;
    print_context(&o);
    let tmp = tempfile::Builder::new()
        .prefix("breakglass-bench-")
        .tempdir_in(&o.dir)?;
    let t = Instant::now();
    bench_verify(&o, tmp.path())?;
    bench_lifecycle(&o, tmp.path())?;
    println!("total bench time {}", common::secs(t.elapsed(), 3));
    Ok(())
}
