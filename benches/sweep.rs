//! Revoke lag (a bench binary, not a timed test): how long after its stored
//! `expires_at` access is really gone, with real `breakglass daemon` processes
//! (1 or 3) sweeping one PostgreSQL store and revoking on the demo backend.
//!
//! Scenarios:
//!   one        one grant at a time, expiring ~1.5 s after it is made, while the
//!              daemons run (they hear of it by NOTIFY and sleep until it is due);
//!              `BENCH_ROUNDS` rounds (default 30)
//!   staggered  100 grants made while the daemons run, expiring 50 ms apart
//!   mass       `BENCH_K` grants (default 10,000) expiring at one instant; made
//!              before the daemons start (with a far expiry, then moved to the
//!              instant in one UPDATE), the daemons started, then they wait for it
//!
//! Lag = the `at` of the request's `revoke.confirmed` audit event minus its stored
//! `expires_at`. Reported: p50, p99, max, and for each daemon its revocations and
//! CPU time. Every run checks that each grant was revoked exactly once (one
//! `revoke.started` and one `revoke.confirmed`) and that no lease is left on the
//! target. The floor, measured alone in the same run: one demo-backend revoke
//! and one store commit (a sweeper makes two commits per revocation, intent and
//! confirmation, batched when many are due).
//!
//!   full run:   cargo bench --bench sweep
//!   smoke run:  cargo bench --bench sweep -- --quick   (rounds 5, staggered 20, K = 500)
//!   overrides:  BENCH_K=<n>  BENCH_REPLICAS=<n,n,...>  BENCH_ROUNDS=<n>
//!               BENCH_SCENARIOS=one,staggered,mass
//!
//! The PostgreSQL cluster is the tests' throwaway one (tests/it/support/pg.rs)
//! with durable settings (fsync on, synchronous_commit on), statement logging off.
#![allow(clippy::unwrap_used)] // a benchmark setup that fails should stop the run

mod common;

#[path = "../tests/it/support/daemon.rs"]
mod daemon;
#[path = "../tests/it/support/pg.rs"]
mod pg;

use anyhow::{ensure, Context, Result};
use breakglass::backend::{Backend, DemoBackend, RevokeSpec};
use breakglass::config::Config;
use breakglass::domain::lifecycle::{self, NewRequest};
use breakglass::domain::time::ts;
use breakglass::domain::{IncidentRef, Owner};
use breakglass::store::{PostgresStore, Store};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const URL_ENV: &str = "BREAKGLASS_BENCH_STORE_URL";

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

fn config(dir: &Path, roles: usize) -> String {
    let mut s = format!(
        r#"[store]
kind = "postgres"
url_env = "{URL_ENV}"
data_dir = "{}"

[backends.demo]
kind = "demo"
"#,
        dir.display()
    );
    for i in 0..roles {
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

/// One database, one config with `roles` roles, the demo target beside it.
struct Site {
    _tmp: tempfile::TempDir,
    cfg_path: PathBuf,
    cfg: Config,
    url: String,
    db: String,
    target: PathBuf,
}

impl Site {
    fn new(server: &pg::PgServer, roles: usize) -> Result<Site> {
        let db = server.create_database_blocking("lag");
        let url = server.admin_url(&db);
        let tmp = tempfile::tempdir_in(common::bench_dir())?;
        let cfg_path = tmp.path().join("breakglass.toml");
        std::fs::write(&cfg_path, config(tmp.path(), roles))?;
        std::env::set_var(URL_ENV, &url);
        let cfg = breakglass::config::load(&cfg_path).map_err(|p| anyhow::anyhow!("{p}"))?;
        PostgresStore::open(&url)?; // the schema, before any daemon
        let target = tmp.path().join("demo-target-demo.sqlite");
        DemoBackend::new(target.clone()).active_leases()?;
        Ok(Site {
            _tmp: tmp,
            cfg_path,
            cfg,
            url,
            db,
            target,
        })
    }

    /// Role `bench-{i}` granted to alice through the store (request, approval,
    /// intent, active: four commits), expiring at `expiry`; its lease on the target.
    fn grant(&self, store: &dyn Store, i: usize, expiry: DateTime<Utc>) -> Result<()> {
        let role = &self.cfg.policy.roles[&format!("bench-{i}")];
        let now = Utc::now();
        let owner = Owner {
            host: "bench-setup".into(),
            pid: 1,
        };
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
        let ev = lifecycle::begin_grant(&mut r, "alice", owner, now)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut r = store.commit(&r, &ev, &[], now)?;
        let lease = format!("demo-{}-bench", r.id);
        let c = rusqlite::Connection::open(&self.target)?;
        c.busy_timeout(Duration::from_secs(10))?;
        c.execute(
            "INSERT INTO leases (lease_id, request_id, role, expires_at) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![lease, r.id.to_string(), r.role, ts(expiry)],
        )?;
        let ev = lifecycle::granted(&mut r, &lease, Some(expiry), now)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        store.commit(&r, &ev, &[], now)?;
        Ok(())
    }

    fn sql(&self, server: &pg::PgServer) -> postgres::Client {
        server.admin_blocking(&self.db)
    }

    /// Waits until nothing is Active or Revoking.
    fn wait_all_ended(&self, c: &mut postgres::Client, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let left: i64 = c
                .query_one(
                    "SELECT count(*) FROM requests WHERE state IN ('active', 'revoking')",
                    &[],
                )?
                .get(0);
            if left == 0 {
                return Ok(());
            }
            ensure!(
                start.elapsed() < timeout,
                "{left} grants still active or revoking after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A `breakglass daemon` process; killed if the bench stops early. With
/// `BENCH_PERF_DIR` set (a diagnostic), `perf record` follows each one.
struct Daemon {
    child: Child,
    perf: Option<Child>,
}

impl Daemon {
    /// Started and past its start-up line ("sweeping ...").
    fn start(site: &Site) -> Result<Daemon> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_breakglass"))
            .arg("--config")
            .arg(&site.cfg_path)
            .args(["daemon", "--interval", "30s"])
            .env(URL_ENV, &site.url)
            .env_remove("BREAKGLASS_FAILPOINT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line)?;
        ensure!(line.contains("sweeping"), "the daemon said: {line}");
        std::thread::spawn(move || {
            let mut l = String::new();
            while err.read_line(&mut l).is_ok_and(|n| n > 0) {
                if l.contains("error") || l.contains("failed") {
                    eprint!("  daemon: {l}");
                }
                l.clear();
            }
        });
        let perf = match std::env::var_os("BENCH_PERF_DIR") {
            Some(dir) => Some(
                Command::new("perf")
                    .args(["record", "-F", "499", "-g", "-o"])
                    .arg(PathBuf::from(dir).join(format!("daemon-{}.data", child.id())))
                    .args(["-p", &child.id().to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            ),
            None => None,
        };
        Ok(Daemon { child, perf })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU time so far (/proc/pid/stat).
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // Fields 14 and 15 (utime, stime) are at 11 and 12 after the ')'.
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as u64;
        Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
    }

    fn stop(mut self) -> Result<()> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let status = self.child.wait()?;
        ensure!(status.success(), "daemon exited with {status}");
        if let Some(mut p) = self.perf.take() {
            p.wait()?;
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Lags {
    sorted: Vec<f64>,
    per_daemon: Vec<(usize, Duration)>,
}

/// Lags from the audit log, after checking each grant was revoked exactly once
/// and nothing is left on the target.
fn lags(site: &Site, c: &mut postgres::Client, n: usize, daemons: &[Daemon]) -> Result<Lags> {
    let rows = c.query(
        "SELECT r.expires_at, a.at, r.data::jsonb #>> '{grant,revoker,pid}',
                (SELECT count(*) FROM audit s WHERE s.request_id = r.id AND s.action = 'revoke.started'),
                (SELECT count(*) FROM audit s WHERE s.request_id = r.id AND s.action = 'revoke.confirmed')
         FROM requests r JOIN audit a ON a.request_id = r.id AND a.action = 'revoke.confirmed'",
        &[],
    )?;
    ensure!(
        rows.len() == n,
        "{} of {n} grants confirmed revoked",
        rows.len()
    );
    let mut sorted = vec![];
    let mut by_pid: BTreeMap<u32, usize> = BTreeMap::new();
    for r in &rows {
        let expires: DateTime<Utc> = r.get::<_, &str>(0).parse()?;
        let at: DateTime<Utc> = r.get::<_, &str>(1).parse()?;
        let (started, confirmed): (i64, i64) = (r.get(3), r.get(4));
        ensure!(
            started == 1 && confirmed == 1,
            "a grant was revoked {started} / confirmed {confirmed} times"
        );
        let pid: Option<&str> = r.get(2);
        *by_pid
            .entry(pid.and_then(|p| p.parse().ok()).unwrap_or(0))
            .or_default() += 1;
        sorted.push((at - expires).num_microseconds().unwrap_or(0) as f64 / 1e6);
    }
    ensure!(
        DemoBackend::new(site.target.clone())
            .active_leases()?
            .is_empty(),
        "leases left on the target"
    );
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let per_daemon = daemons
        .iter()
        .map(|d| (by_pid.get(&d.pid()).copied().unwrap_or(0), d.cpu()))
        .collect();
    Ok(Lags { sorted, per_daemon })
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(s: f64) -> String {
    if s.abs() >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

fn report(scenario: &str, n: usize, replicas: usize, l: &Lags, extra: &str) {
    let per: Vec<String> = l
        .per_daemon
        .iter()
        .map(|(k, cpu)| format!("{k} ({:.2} s cpu)", cpu.as_secs_f64()))
        .collect();
    println!(
        "  {:<10} {:>6} {:>3}   {:>9} {:>9} {:>9}   {}{}",
        scenario,
        n,
        replicas,
        ms(pct(&l.sorted, 50.0)),
        ms(pct(&l.sorted, 99.0)),
        ms(*l.sorted.last().unwrap()),
        per.join(" / "),
        extra
    );
}

/// One grant at a time, each expiring 1.5 s after it is made.
fn one(server: &pg::PgServer, rounds: usize, replicas: usize) -> Result<()> {
    let site = Site::new(server, rounds)?;
    let daemons: Vec<Daemon> = (0..replicas)
        .map(|_| Daemon::start(&site))
        .collect::<Result<_>>()?;
    let store = PostgresStore::open(&site.url)?;
    let mut c = site.sql(server);
    for i in 0..rounds {
        site.grant(&store, i, Utc::now() + chrono::Duration::milliseconds(1500))?;
        site.wait_all_ended(&mut c, Duration::from_secs(60))?;
    }
    let l = lags(&site, &mut c, rounds, &daemons)?;
    for d in daemons {
        d.stop()?;
    }
    report("one", rounds, replicas, &l, "");
    Ok(())
}

/// `n` grants made while the daemons run, expiring 50 ms apart from 3 s on.
fn staggered(server: &pg::PgServer, n: usize, replicas: usize) -> Result<()> {
    let site = Site::new(server, n)?;
    let daemons: Vec<Daemon> = (0..replicas)
        .map(|_| Daemon::start(&site))
        .collect::<Result<_>>()?;
    let store = PostgresStore::open(&site.url)?;
    let first = Utc::now() + chrono::Duration::seconds(3);
    for i in 0..n {
        site.grant(
            &store,
            i,
            first + chrono::Duration::milliseconds(50 * i as i64),
        )?;
    }
    let made = Utc::now();
    let mut c = site.sql(server);
    site.wait_all_ended(&mut c, Duration::from_secs(120))?;
    let l = lags(&site, &mut c, n, &daemons)?;
    for d in daemons {
        d.stop()?;
    }
    let late = if made > first {
        format!(
            "   (setup ran {} past the first expiry)",
            ms((made - first).num_milliseconds() as f64 / 1e3)
        )
    } else {
        String::new()
    };
    report("staggered", n, replicas, &l, &late);
    Ok(())
}

/// `k` grants expiring at one instant T. Made first with a far expiry (4
/// threads); the daemons start (and sleep: nothing is due); the expiries move
/// to T (2 s ahead) in one UPDATE, and a new request's commit wakes the
/// daemons, who read the new schedule and sleep until T.
fn mass(server: &pg::PgServer, k: usize, replicas: usize) -> Result<()> {
    let site = Site::new(server, k + 1)?;
    let t0 = Instant::now();
    let far = Utc::now() + chrono::Duration::minutes(50);
    std::thread::scope(|s| -> Result<()> {
        let threads: Vec<_> = (0..4)
            .map(|w| {
                let site = &site;
                s.spawn(move || -> Result<()> {
                    let store = PostgresStore::open(&site.url)?;
                    for i in (w..k).step_by(4) {
                        site.grant(&store, i, far)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for t in threads {
            t.join().expect("setup thread")?;
        }
        Ok(())
    })?;
    let setup = t0.elapsed();
    let daemons: Vec<Daemon> = (0..replicas)
        .map(|_| Daemon::start(&site))
        .collect::<Result<_>>()?;
    // Past their first pass (each lists the k active grants).
    std::thread::sleep(Duration::from_secs(3));
    let expiry = Utc::now() + chrono::Duration::seconds(2);
    let mut c = site.sql(server);
    let moved = c.execute(
        "UPDATE requests SET expires_at = $1,
             data = jsonb_set(data::jsonb, '{grant,expires_at}', to_jsonb($1::text))::text
         WHERE state = 'active'",
        &[&ts(expiry)],
    )?;
    ensure!(moved as usize == k, "moved {moved} of {k} expiries");
    // Any commit wakes the sweepers: a new request on the spare role.
    let store = PostgresStore::open(&site.url)?;
    let role = &site.cfg.policy.roles[&format!("bench-{k}")];
    let now = Utc::now();
    let (req, ev) = lifecycle::new_request(
        role,
        NewRequest {
            incident: IncidentRef::Ticket {
                reference: "INC-2".into(),
            },
            condition: "outage".into(),
            reason: "wakes the sweepers".into(),
            ttl_seconds: None,
        },
        "alice",
        now,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    store.insert_request(&req, &ev, &[], now)?;
    site.wait_all_ended(&mut c, Duration::from_secs(600))?;
    let l = lags(&site, &mut c, k, &daemons)?;
    for d in daemons {
        d.stop()?;
    }
    report(
        "mass",
        k,
        replicas,
        &l,
        &format!("   (setup {:.0} s)", setup.as_secs_f64()),
    );
    Ok(())
}

/// The floor: one demo-backend revoke and one store commit (Active -> Revoking),
/// each measured alone, `n` times.
fn floor(server: &pg::PgServer, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let site = Site::new(server, n)?;
    let store = PostgresStore::open(&site.url)?;
    let far = Utc::now() + chrono::Duration::minutes(50);
    for i in 0..n {
        site.grant(&store, i, far)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let backend = DemoBackend::new(site.target.clone());
    let mut revokes = vec![];
    let mut commits = vec![];
    let active = store.list(&breakglass::store::Query::default())?;
    for r in active {
        let spec = RevokeSpec {
            request_id: r.id.to_string(),
            role: r.role.clone(),
            scope: serde_json::json!({}),
            lease_id: r.grant.as_ref().and_then(|g| g.lease_id.clone()),
        };
        let t = Instant::now();
        rt.block_on(backend.revoke(&spec))?;
        revokes.push(t.elapsed().as_secs_f64());
        let mut req = r.clone();
        let now = Utc::now();
        let owner = Owner {
            host: "bench".into(),
            pid: 1,
        };
        let ev = lifecycle::begin_revoke(&mut req, "bench", "floor", now, now, owner)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let t = Instant::now();
        store.commit(&req, &ev, &[], now)?;
        commits.push(t.elapsed().as_secs_f64());
    }
    revokes.sort_by(|a, b| a.partial_cmp(b).unwrap());
    commits.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok((revokes, commits))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() -> Result<()> {
    let quick = common::quick();
    let k = list("BENCH_K", &[if quick { 500 } else { 10_000 }])?[0];
    let replicas = list("BENCH_REPLICAS", &[1, 3])?;
    let rounds = list("BENCH_ROUNDS", &[if quick { 5 } else { 30 }])?[0];
    let staggered_n = if quick { 20 } else { 100 };
    let scenarios: Vec<String> = std::env::var("BENCH_SCENARIOS")
        .unwrap_or_else(|_| "one,staggered,mass".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    println!("== machine ==");
    println!(
        "  cores (available_parallelism)  {} ({cpu})",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("  load average at start          {}", loadavg());
    println!(
        "  build                          {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "optimised"
        }
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
    println!("  sweepers                       `breakglass daemon --interval 30s` processes, default [recovery] (revoke_concurrency 32)");
    println!();

    let (revokes, commits) = floor(&server, 200)?;
    println!("== floor: one demo-backend revoke + one store commit, each alone (200 of each) ==");
    println!(
        "  backend revoke   p50 {}  p99 {}",
        ms(pct(&revokes, 50.0)),
        ms(pct(&revokes, 99.0))
    );
    println!(
        "  store commit     p50 {}  p99 {}",
        ms(pct(&commits, 50.0)),
        ms(pct(&commits, 99.0))
    );
    println!(
        "  floor (sum)      p50 {}  p99 {}",
        ms(pct(&revokes, 50.0) + pct(&commits, 50.0)),
        ms(pct(&revokes, 99.0) + pct(&commits, 99.0))
    );
    println!(
        "  {k} revokes one after another on the demo target (one SQLite file, its writes serial): {}",
        ms(k as f64 * pct(&revokes, 50.0))
    );
    println!();
    println!("== revoke lag: stored expires_at -> revoke.confirmed in the audit log ==");
    println!(
        "  {:<10} {:>6} {:>3}   {:>9} {:>9} {:>9}   revoked per daemon (its CPU time)",
        "scenario", "grants", "sw", "p50", "p99", "max"
    );
    for &r in &replicas {
        if scenarios.iter().any(|s| s == "one") {
            one(&server, rounds, r)?;
        }
        if scenarios.iter().any(|s| s == "staggered") {
            staggered(&server, staggered_n, r)?;
        }
    }
    if scenarios.iter().any(|s| s == "mass") {
        for &r in &replicas {
            mass(&server, k, r)?;
        }
    }
    println!();
    println!("  load average at end            {}", loadavg());
    Ok(())
}
