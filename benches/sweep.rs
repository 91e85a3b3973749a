//! The highly available sweeper under load (a bench binary, not a timed test):
//! K active grants on the demo backend, all expiring at the same instant, in a
//! PostgreSQL store; 1 or 3 sweeper replicas. Measures the time from expiry until
//! the last grant is revoked and the per-grant revoke lag (p50/p99), and checks
//! that each grant was revoked exactly once.
//!
//!   full run:   cargo bench --bench sweep                 (K = 1,000 and 10,000)
//!   smoke run:  cargo bench --bench sweep -- --quick      (K = 200; or BENCH_QUICK=1)
//!   overrides:  BENCH_K=<n,n,...>  BENCH_REPLICAS=<n,n,...>  BENCH_INTERVAL_MS=<daemon interval>
//!               BENCH_TARGET_WAL=1 (diagnostic: the demo target's SQLite file in WAL mode)
//!
//! Replicas are in-process engines, each on its own OS thread with its own
//! current-thread tokio runtime and its own store connection (what `breakglass
//! daemon` runs, minus process start-up): that lets every replica share one
//! clock offset so the K grants are all expired at the instant the sweepers
//! start, however long setup took. The PostgreSQL cluster is the tests'
//! throwaway one (tests/it/support/pg.rs) with durable settings (fsync on,
//! synchronous_commit on) and statement logging off.
#![allow(clippy::unwrap_used)] // a benchmark setup that fails should stop the run

mod common;

#[path = "../tests/it/support/daemon.rs"]
mod daemon;
#[path = "../tests/it/support/pg.rs"]
mod pg;

use anyhow::{ensure, Context, Result};
use breakglass::backend::DemoBackend;
use breakglass::clock::Clock;
use breakglass::domain::lifecycle::{self, NewRequest};
use breakglass::domain::{IncidentRef, Owner};
use breakglass::engine::{Engine, Parts};
use breakglass::store::{PostgresStore, Store};
use chrono::{DateTime, Utc};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const URL_ENV: &str = "BREAKGLASS_BENCH_STORE_URL";

/// The system clock moved by a fixed offset: every replica reads the same
/// "now", which starts exactly at the grants' expiry.
struct OffsetClock(chrono::Duration);

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }
}

fn list(var: &str, default: &[usize]) -> Result<Vec<usize>> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|x| {
                x.trim()
                    .replace('_', "")
                    .parse()
                    .with_context(|| format!("{var}={v}"))
            })
            .collect(),
        _ => Ok(default.to_vec()),
    }
}

fn config(dir: &Path, k: usize, revoke_timeout: &str) -> String {
    let mut s = format!(
        r#"[store]
kind = "postgres"
url_env = "{URL_ENV}"
data_dir = "{}"

[backends.demo]
kind = "demo"

[recovery]
revoke_timeout = "{revoke_timeout}"
"#,
        dir.display()
    );
    for i in 0..k {
        s.push_str(&format!(
            r#"
[[roles]]
name = "bench-{i}"
backend = "demo"
default_ttl = "1h"
max_ttl = "2h"
conditions = ["outage"]
ticket_pattern = "^INC-[0-9]+$"
requesters = ["alice"]
approvers = ["bob"]
certifiers = ["bob"]
require_open_incident = false
revoke_on_resolve = false
"#
        ));
    }
    s
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct RunResult {
    to_last: f64,
    p50: f64,
    p99: f64,
    per_replica: Vec<usize>,
    setup: Duration,
}

fn run(server: &pg::PgServer, k: usize, replicas: usize, interval: Duration) -> Result<RunResult> {
    let db = server.create_database_blocking("sweep");
    let url = server.admin_url(&db);
    std::env::set_var(URL_ENV, &url);
    let tmp = tempfile::tempdir()?;
    let cfg_path = tmp.path().join("breakglass.toml");
    std::fs::write(&cfg_path, config(tmp.path(), k, "1m"))?;
    let cfg = breakglass::config::load(&cfg_path).map_err(|p| anyhow::anyhow!("{p}"))?;

    // Setup (untimed): K requests driven to Active through the store, 4 threads,
    // each grant's backend-reported expiry the same instant T.
    let t0 = Instant::now();
    let expiry = Utc::now() + chrono::Duration::minutes(30);
    let leases: Vec<(String, String, String)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|w| {
                let (url, cfg) = (&url, &cfg);
                s.spawn(move || -> Result<Vec<(String, String, String)>> {
                    let store = PostgresStore::open(url)?;
                    let owner = Owner {
                        host: "bench-setup".into(),
                        pid: 1,
                    };
                    let mut out = vec![];
                    for i in (w..k).step_by(4) {
                        let role = &cfg.policy.roles[&format!("bench-{i}")];
                        let now = Utc::now();
                        let (req, ev) = lifecycle::new_request(
                            role,
                            NewRequest {
                                incident: IncidentRef::Ticket {
                                    reference: "INC-1".into(),
                                },
                                condition: "outage".into(),
                                reason: "bench".into(),
                                ttl_seconds: None,
                            },
                            "alice",
                            now,
                        )
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                        let mut r = store.insert_request(&req, &ev, &[], now)?;
                        let ev = lifecycle::approve(&mut r, role, "bob", None, Ok(None), now)
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                        let mut r = store.commit(&r, &ev, &[], now)?;
                        let ev = lifecycle::begin_grant(&mut r, "alice", owner.clone(), now)
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                        let mut r = store.commit(&r, &ev, &[], now)?;
                        let lease = format!("demo-{}-bench", r.id);
                        let ev = lifecycle::granted(&mut r, &lease, Some(expiry), now)
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                        let r = store.commit(&r, &ev, &[], now)?;
                        out.push((lease, r.id.to_string(), r.role.clone()));
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut all = vec![];
        for t in threads {
            all.extend(t.join().expect("setup thread")?);
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    // The demo target's leases, in one transaction (what K grant calls would leave).
    let target = tmp.path().join("demo-target-demo.sqlite");
    DemoBackend::new(target.clone()).active_leases()?;
    {
        let mut c = rusqlite::Connection::open(&target)?;
        if std::env::var("BENCH_TARGET_WAL").is_ok_and(|v| v == "1") {
            // Diagnostic only: the demo target in WAL mode, to separate its
            // file-lock contention from the sweepers' own cost.
            c.pragma_update(None, "journal_mode", "WAL")?;
        }
        let tx = c.transaction()?;
        for (lease, req, role) in &leases {
            tx.execute(
                "INSERT INTO leases (lease_id, request_id, role, expires_at) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![lease, req, role, breakglass::domain::time::ts(expiry)],
            )?;
        }
        tx.commit()?;
    }
    let setup = t0.elapsed();

    // Replicas: engines whose clock reads T at the start.
    let offset = expiry - Utc::now();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..replicas)
        .map(|_| {
            let mut parts = Parts::from_config(&cfg).expect("engine parts");
            parts.clock = Arc::new(OffsetClock(offset));
            let engine = Engine::new(parts);
            let stop = stop.clone();
            std::thread::spawn(move || -> usize {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let mut revoked = 0;
                    while !stop.load(Ordering::SeqCst) {
                        match engine.recover().await {
                            Ok(rep) => {
                                revoked += rep.expired_revoked.len() + rep.revokes_retried.len();
                                for e in rep.errors.iter().take(3) {
                                    eprintln!("  replica error: {e}");
                                }
                            }
                            Err(e) => eprintln!("  replica: {e}"),
                        }
                        let t = Instant::now();
                        while t.elapsed() < interval && !stop.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    revoked
                })
            })
        })
        .collect();
    let mut c = server.admin_blocking(&db);
    loop {
        let left: i64 = c
            .query_one(
                "SELECT count(*) FROM requests WHERE state IN ('active', 'revoking')",
                &[],
            )?
            .get(0);
        if left == 0 {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(3600),
            "sweepers did not finish within an hour"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let per_replica: Vec<usize> = handles
        .into_iter()
        .map(|h| h.join().expect("replica thread"))
        .collect();

    // Exactly once: one revoke.started and one revoke.confirmed per grant.
    let rows = c.query(
        "SELECT request_id, action, at FROM audit WHERE action IN ('revoke.started', 'revoke.confirmed')",
        &[],
    )?;
    let mut started = std::collections::BTreeMap::<i64, usize>::new();
    let mut lags = vec![];
    for r in &rows {
        let id: i64 = r.get(0);
        let action: &str = r.get(1);
        if action == "revoke.started" {
            *started.entry(id).or_default() += 1;
        } else {
            let at: DateTime<Utc> = r.get::<_, &str>(2).parse()?;
            lags.push((at - expiry).num_microseconds().unwrap_or(0) as f64 / 1e6);
        }
    }
    ensure!(
        lags.len() == k && started.len() == k && started.values().all(|n| *n == 1),
        "expected {k} grants revoked exactly once: {} confirmations, {} started",
        lags.len(),
        started.len()
    );
    ensure!(
        DemoBackend::new(target).active_leases()?.is_empty(),
        "leases left on the target"
    );
    ensure!(
        per_replica.iter().sum::<usize>() == k,
        "replicas report {per_replica:?} revocations for {k} grants"
    );
    lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(RunResult {
        to_last: *lags.last().unwrap_or(&f64::NAN),
        p50: pct(&lags, 50.0),
        p99: pct(&lags, 99.0),
        per_replica,
        setup,
    })
}

fn main() -> Result<()> {
    let quick = common::quick();
    let ks = list("BENCH_K", if quick { &[200] } else { &[1_000, 10_000] })?;
    let replicas = list("BENCH_REPLICAS", &[1, 3])?;
    let interval = Duration::from_millis(list("BENCH_INTERVAL_MS", &[1000])?[0] as u64);
    println!("== machine ==");
    println!(
        "  cores (available_parallelism)  {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  build                          {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "optimised"
        }
    );
    println!(
        "  mode                           {}",
        if quick { "quick" } else { "full" }
    );
    let server = pg::PgServer::start_with(|_| {
        vec![
            "fsync=on".into(),
            "synchronous_commit=on".into(),
            "full_page_writes=on".into(),
            "log_statement=none".into(),
        ]
    });
    let version = server
        .admin_blocking("postgres")
        .query_one("SHOW server_version", &[])?
        .get::<_, String>(0);
    println!("  PostgreSQL                     {version} (fsync on, synchronous_commit on)");
    println!(
        "  replicas                       in-process engines, one thread + runtime + connection each, sweep interval {} ms",
        interval.as_millis()
    );
    println!();
    println!("== expiry of K grants at one instant, demo backend, PostgreSQL store ==");
    println!(
        "  {:>7} {:>8} {:>14} {:>10} {:>10}   {:<18} setup",
        "K", "replicas", "expiry->last", "p50 lag", "p99 lag", "revoked per replica"
    );
    for &k in &ks {
        for &r in &replicas {
            let res = run(&server, k, r, interval)?;
            println!(
                "  {:>7} {:>8} {:>12.2} s {:>8.2} s {:>8.2} s   {:<18} {:.1} s",
                k,
                r,
                res.to_last,
                res.p50,
                res.p99,
                format!("{:?}", res.per_replica),
                res.setup.as_secs_f64()
            );
        }
    }
    Ok(())
}
