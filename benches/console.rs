//! Console (TUI) benchmarks (not tests): launch to first full frame in a real
//! pseudo-terminal, render time per screen, idle CPU of a live countdown, and key
//! latency over 10,000 incidents / audit events; then the same at scale as a
//! user sees it (`console/scale.rs`): typing into the incident filter of the
//! real binary in a pty with 10,000 incidents in the file source, its idle CPU,
//! CLI commands, and one snapshot in process and through the broker's socket.
//!
//!   full run:   cargo bench --bench console
//!   smoke run:  cargo bench --bench console -- --quick      (or BENCH_QUICK=1)
//!   overrides:  BENCH_LAUNCHES=<n> BENCH_IDLE_SECS=<s> BENCH_ITEMS=<n> BENCH_FRAMES=<n>
//!               BENCH_ROUNDS=<n> BENCH_RUNS=<n> BENCH_DIR=<parent dir for temp files>
//!               BENCH_PARTS=<list, e.g. 5,6,7> BENCH_BIN=<another breakglass binary>
//!
//! Parts 1, 3, 5 and 6 drive the release binary (`target/release/breakglass`,
//! built first if missing) in a pseudo-terminal (portable-pty) and parse its
//! output with vt100; part 7 runs it as commands. Parts 2 and 4 render
//! in-process on ratatui's TestBackend; part 8 calls the library.
#![allow(clippy::unwrap_used)] // a benchmark setup that fails should stop the run

mod common;

use anyhow::{anyhow, bail, ensure, Context, Result};
use breakglass::audit::AuditRecord;
use breakglass::domain::{RequestId, ReviewAnswers};
use breakglass::engine::{Decision, Engine, IncidentChoice, RequestInput};
use breakglass::incident::{Incident, IncidentStatus};
use breakglass::tui::app::{
    App, FormField, Msg, Pick, RequestForm, ReviewField, ReviewForm, Snapshot, Tab, Walk,
};
use breakglass::tui::input::Input;
use breakglass::tui::theme::Theme;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[path = "console/scale.rs"]
mod scale;

const COLS: u16 = 100;
/// What is typed into the incident filter, in process and in the pty.
const FILTER: &str = "checkout 503 eu";
const ROWS: u16 = 30;

struct Opts {
    quick: bool,
    launches: usize,
    idle: Duration,
    items: usize,
    frames: usize,
    rounds: usize,
    /// Runs of each CLI command.
    runs: usize,
    dir: PathBuf,
}

impl Opts {
    fn from_env() -> Result<Self> {
        let quick = common::quick();
        let (launches, idle, items, frames, rounds) = if quick {
            (3, 10, 1_000, 100, 2)
        } else {
            (10, 60, 10_000, 1_000, 20)
        };
        Ok(Opts {
            quick,
            launches: common::env_num("BENCH_LAUNCHES", launches)?.max(1) as usize,
            idle: Duration::from_secs(common::env_num("BENCH_IDLE_SECS", idle)?.max(1)),
            items: common::env_num("BENCH_ITEMS", items)?.max(1) as usize,
            frames: common::env_num("BENCH_FRAMES", frames)?.max(1) as usize,
            rounds: common::env_num("BENCH_ROUNDS", rounds)?.max(1) as usize,
            runs: common::env_num("BENCH_RUNS", if quick { 5 } else { 20 })?.max(1) as usize,
            dir: common::bench_dir(),
        })
    }
}

// ---------------------------------------------------------------- formatting

struct Stats {
    n: usize,
    min: Duration,
    mean: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut v = samples.to_vec();
    v.sort();
    Stats {
        n: v.len(),
        min: v[0],
        mean: v.iter().sum::<Duration>() / v.len() as u32,
        p50: common::pct(&v, 50.0),
        p99: common::pct(&v, 99.0),
        max: *v.last().unwrap(),
    }
}

fn latency_header(first: &str) {
    println!(
        "  {first:<44} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "n", "mean", "p50", "p99", "max"
    );
}

fn latency_row(label: &str, samples: &[Duration]) -> Stats {
    let s = stats(samples);
    println!(
        "  {label:<44} {:>6} {:>10} {:>10} {:>10} {:>10}",
        s.n,
        common::secs(s.mean, 2),
        common::secs(s.p50, 2),
        common::secs(s.p99, 2),
        common::secs(s.max, 2)
    );
    s
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------- the binary

/// The release binary. Cargo builds it for benches and says where
/// (CARGO_BIN_EXE_*); otherwise it is computed from the manifest dir and built
/// with `cargo build --release` when missing.
fn release_bin() -> Result<PathBuf> {
    // Another build of the binary (say, before a change), same harness.
    if let Some(p) = std::env::var_os("BENCH_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_breakglass") {
        let p = PathBuf::from(p);
        if p.exists() {
            return Ok(p);
        }
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { manifest.join(p) })
        .unwrap_or_else(|| manifest.join("target"));
    let bin = target.join("release/breakglass");
    if !bin.exists() {
        println!("  {} missing: cargo build --release", bin.display());
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--release", "--bin", "breakglass"])
            .current_dir(&manifest)
            .status()
            .context("running cargo build --release")?;
        ensure!(st.success(), "cargo build --release failed");
    }
    Ok(bin)
}

/// `breakglass demo --dir D --no-console`: the demo files and the SQLite store,
/// created before anything is timed.
fn prepare_demo(bin: &Path, dir: &Path) -> Result<PathBuf> {
    let out = Command::new(bin)
        .args(["demo", "--no-console", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .context("running breakglass demo --no-console")?;
    ensure!(
        out.status.success(),
        "breakglass demo --no-console failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(dir.join("breakglass.toml"))
}

fn cli(bin: &Path, config: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running breakglass {}", args.join(" ")))?;
    ensure!(
        out.status.success(),
        "breakglass {} failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------- a console in a pty

struct Shared {
    parser: vt100::Parser,
    bytes: u64,
    reads: u64,
    /// Largest single read since the counters were last taken.
    max_read: usize,
    /// When the newest output arrived (read returned).
    last_read: Option<Instant>,
    /// The screen above the status bar (whose clock changes every second), and
    /// when output last changed it.
    body: String,
    last_body_change: Option<Instant>,
    eof: bool,
}

struct Pty {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    shared: Arc<(Mutex<Shared>, Condvar)>,
    reader: Option<std::thread::JoinHandle<()>>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
    pid: i32,
}

impl Pty {
    /// Spawns `bin args` on a fresh pty of COLS x ROWS; a thread drains and
    /// parses everything it writes.
    fn spawn(bin: &Path, args: &[&str], cwd: &Path, env: &[(&str, &Path)]) -> Result<Pty> {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .map_err(|e| anyhow!("openpty: {e}"))?;
        let mut cmd = CommandBuilder::new(bin);
        cmd.args(args);
        cmd.cwd(cwd);
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("NO_COLOR");
        cmd.env_remove("BREAKGLASS_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut reader = pair
            .master
            .try_clone_reader()
            .map_err(|e| anyhow!("pty reader: {e}"))?;
        let writer = pair
            .master
            .take_writer()
            .map_err(|e| anyhow!("pty writer: {e}"))?;
        let shared = Arc::new((
            Mutex::new(Shared {
                parser: vt100::Parser::new(ROWS, COLS, 0),
                bytes: 0,
                reads: 0,
                max_read: 0,
                last_read: None,
                body: String::new(),
                last_body_change: None,
                eof: false,
            }),
            Condvar::new(),
        ));
        let child = pair
            .slave
            .spawn_command(cmd)
            .map_err(|e| anyhow!("spawning {}: {e}", bin.display()))?;
        drop(pair.slave); // so the reader sees EOF when the child exits
        let pid = child.process_id().context("child pid")? as i32;
        let sh = shared.clone();
        let handle = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = reader.read(&mut buf).unwrap_or(0);
                let at = Instant::now();
                let (lock, cv) = &*sh;
                let mut s = lock.lock().unwrap();
                if n == 0 {
                    s.eof = true;
                    cv.notify_all();
                    return;
                }
                s.parser.process(&buf[..n]);
                let body: String = s
                    .parser
                    .screen()
                    .rows(0, COLS)
                    .take(ROWS as usize - 1)
                    .collect();
                if body != s.body {
                    s.body = body;
                    s.last_body_change = Some(at);
                }
                s.bytes += n as u64;
                s.reads += 1;
                s.max_read = s.max_read.max(n);
                s.last_read = Some(at);
                cv.notify_all();
            }
        });
        Ok(Pty {
            child,
            writer,
            shared,
            reader: Some(handle),
            _master: pair.master,
            pid,
        })
    }

    /// Waits until `pred` holds for the parsed screen; returns when the output
    /// that made it hold arrived.
    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&vt100::Screen) -> bool,
    ) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.shared;
        let mut s = lock.lock().unwrap();
        loop {
            if pred(s.parser.screen()) {
                return Ok(s.last_read.unwrap_or_else(Instant::now));
            }
            let now = Instant::now();
            if s.eof || now >= deadline {
                bail!(
                    "{} waiting for {what}; screen:\n{}",
                    if s.eof { "console exited" } else { "timed out" },
                    s.parser.screen().contents()
                );
            }
            s = cv.wait_timeout(s, deadline - now).unwrap().0;
        }
    }

    /// Waits until nothing was written for `quiet`; returns when the screen
    /// above the status bar last changed (the settled frame).
    fn settle(&self, quiet: Duration, timeout: Duration) -> Result<Option<Instant>> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.shared;
        let mut s = lock.lock().unwrap();
        loop {
            let now = Instant::now();
            let idle = s
                .last_read
                .map_or(quiet, |t| now.saturating_duration_since(t));
            if idle >= quiet {
                return Ok(s.last_body_change);
            }
            ensure!(!s.eof && now < deadline, "the console never went quiet");
            s = cv.wait_timeout(s, quiet - idle).unwrap().0;
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()?;
        Ok(())
    }

    /// (bytes, reads, largest read) so far; resets the largest read.
    fn counters(&self) -> (u64, u64, usize) {
        let mut s = self.shared.0.lock().unwrap();
        let max = std::mem::take(&mut s.max_read);
        (s.bytes, s.reads, max)
    }

    fn contents(&self) -> String {
        self.shared.0.lock().unwrap().parser.screen().contents()
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<portable_pty::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `q`, then SIGTERM after 2 s, then kill. Returns whether SIGTERM was needed.
    fn quit(&mut self) -> Result<bool> {
        let _ = self.send(b"q");
        let mut termed = false;
        if self.wait_exit(Duration::from_secs(2)).is_none() {
            termed = true;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                self.wait_exit(Duration::from_secs(3));
                bail!("console ignored q and SIGTERM; killed");
            }
        }
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
        Ok(termed)
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn row_of(lines: &[String], needle: &str) -> Option<usize> {
    lines.iter().position(|l| l.contains(needle))
}

/// The incident list as loaded: heading, INC-1042 above the ticket row (which
/// sits alone at the top of the list before the first load), status bar drawn.
fn incident_list_complete(s: &vt100::Screen) -> bool {
    let lines: Vec<String> = s.rows(0, COLS).collect();
    let (Some(inc), Some(ticket)) = (
        row_of(&lines, "INC-1042"),
        row_of(&lines, "enter a ticket reference"),
    ) else {
        return false;
    };
    row_of(&lines, "Pick the incident").is_some()
        && inc < ticket
        && lines.last().is_some_and(|l| l.contains("UTC"))
}

// ---------------------------------------------------------------- 1. launch

fn bench_launch(o: &Opts, bin: &Path, tmp: &Path) -> Result<()> {
    println!("== 1. launch to first full frame of the incident list (demo, pty {COLS}x{ROWS}) ==");
    // The floor: starting the same binary for nothing.
    let mut floor = vec![];
    for _ in 0..o.launches.max(3) {
        let t = Instant::now();
        let st = Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .status()?;
        floor.push(t.elapsed());
        ensure!(st.success(), "breakglass --version failed");
    }
    let mut first_paint = vec![];
    let mut full = vec![];
    // One untimed launch first, so every timed one finds the binary in page cache.
    for i in 0..=o.launches {
        let dir = tmp.join(format!("launch-{i}"));
        prepare_demo(bin, &dir)?;
        let dir_s = dir.to_string_lossy().into_owned();
        let t0 = Instant::now();
        let mut pty = Pty::spawn(bin, &["demo", "--dir", &dir_s], &dir, &[])?;
        let chrome = pty.wait_for("the first frame", Duration::from_secs(10), |s| {
            s.contents().contains("Pick the incident")
        })?;
        let list = pty.wait_for(
            "the incident list",
            Duration::from_secs(10),
            incident_list_complete,
        )?;
        if i > 0 {
            first_paint.push(chrome.saturating_duration_since(t0));
            full.push(list.saturating_duration_since(t0));
        }
        pty.quit()?;
    }
    let fl = stats(&floor);
    let fp = stats(&first_paint);
    let fu = stats(&full);
    println!(
        "  (each launch gets its own demo dir made by `demo --no-console` beforehand; 1 untimed warm-up)"
    );
    println!(
        "  {:<44} {:>6} {:>10} {:>10} {:>10}",
        "", "n", "min", "median", "max"
    );
    for (label, s) in [
        ("`breakglass --version` (process floor)", &fl),
        ("first frame (chrome, list not loaded yet)", &fp),
        ("first full frame of the incident list", &fu),
    ] {
        println!(
            "  {label:<44} {:>6} {:>10} {:>10} {:>10}",
            s.n,
            common::secs(s.min, 2),
            common::secs(s.p50, 2),
            common::secs(s.max, 2)
        );
    }
    println!(
        "  goal: under 100 ms -> {} (median {}, max {})",
        verdict(fu.max < Duration::from_millis(100)),
        common::secs(fu.p50, 2),
        common::secs(fu.max, 2)
    );
    println!();
    Ok(())
}

// ---------------------------------------------------------------- fixtures

fn input(incident: &str, role: &str, condition: &str) -> RequestInput {
    RequestInput {
        incident: IncidentChoice::Id(incident.into()),
        role: role.into(),
        condition: condition.into(),
        reason: "primary is read-only; need to fail over to the replica".into(),
        ttl_seconds: None,
    }
}

struct Fixture {
    snap: Snapshot,
    store: String,
    now: chrono::DateTime<chrono::Utc>,
    pending: RequestId,
    active: (RequestId, breakglass::backend::Credential),
    ended: RequestId,
}

/// A real engine on a demo config, driven as alice/bob/carol/dave to leave
/// requests in every interesting state; alice's snapshot, with bob's approvals
/// queue and dave's reviews queue (alice may approve and certify nothing).
async fn fixture(dir: &Path) -> Result<Fixture> {
    let path = breakglass::demo::prepare(dir)?;
    let cfg = breakglass::config::load(&path).map_err(|p| anyhow!("demo config: {p}"))?;
    let e = std::sync::Arc::new(Engine::from_config(&cfg)?);
    let answers = ReviewAnswers {
        actions_taken: "reset the admin password, rotated the IdP certificate".into(),
        systems_touched: "corp-sso".into(),
        access_necessary: true,
        credentials_copied: false,
        credentials_copied_where: String::new(),
        follow_ups: "alert on certificate expiry".into(),
    };
    // Reviewed (awaiting dave's certification).
    let r = e
        .request(
            "alice",
            input(
                "INC-1044",
                "iam-breakglass-admin",
                "locked-out administrators",
            ),
        )
        .await?;
    e.decide("bob", r.id, Decision::approve(None)).await?;
    e.activate("alice", r.id).await?;
    e.revoke("alice", r.id, "done").await?;
    e.review("alice", r.id, answers).await?;
    // Ended (review owed).
    let r = e
        .request(
            "alice",
            input("INC-1042", "prod-db-emergency-dba", "production outage"),
        )
        .await?;
    e.decide("bob", r.id, Decision::approve(None)).await?;
    e.decide("carol", r.id, Decision::approve(None)).await?;
    e.activate("alice", r.id).await?;
    e.revoke("alice", r.id, "failover done").await?;
    let ended = r.id;
    // Active, with the credential this console would have received.
    let r = e
        .request(
            "alice",
            input("INC-1042", "k8s-cluster-admin", "production outage"),
        )
        .await?;
    e.decide("bob", r.id, Decision::approve(None)).await?;
    let (r, cred) = e.activate("alice", r.id).await?;
    let active = (r.id, cred);
    // Denied, cancelled, pending.
    let r = e
        .request(
            "alice",
            input("INC-1043", "payments-api-operator", "production outage"),
        )
        .await?;
    e.decide("bob", r.id, Decision::deny("use the runbook restart first"))
        .await?;
    let r = e
        .request(
            "alice",
            input(
                "INC-1043",
                "payments-api-operator",
                "failed automation path",
            ),
        )
        .await?;
    e.cancel("alice", r.id).await?;
    let r = e
        .request(
            "alice",
            input("INC-1042", "payments-api-operator", "production outage"),
        )
        .await?;
    let pending = r.id;
    let as_persona = |e: &std::sync::Arc<Engine>, who: &str| {
        breakglass::service::Service::local(e.clone()).as_persona(Some(who.to_string()))
    };
    let mut snap = breakglass::tui::snapshot(&as_persona(&e, "alice"), "alice").await;
    snap.approvals = breakglass::tui::snapshot(&as_persona(&e, "bob"), "bob")
        .await
        .approvals;
    snap.reviews = breakglass::tui::snapshot(&as_persona(&e, "dave"), "dave")
        .await
        .reviews;
    ensure!(
        snap.source_errors.is_empty(),
        "fixture snapshot: {:?}",
        snap.source_errors
    );
    Ok(Fixture {
        snap,
        store: e.store_description(),
        now: e.now(),
        pending,
        active,
        ended,
    })
}

fn copy_credential(c: &breakglass::backend::Credential) -> breakglass::backend::Credential {
    breakglass::backend::Credential(
        c.reveal()
            .map(|(k, v)| (k.to_string(), secrecy::SecretString::from(v.to_string())))
            .collect(),
    )
}

fn demo_app(f: &Fixture) -> App {
    let mut app = App::new(
        "alice".into(),
        Some(
            breakglass::demo::PERSONAS
                .iter()
                .map(|p| p.to_string())
                .collect(),
        ),
        f.store.clone(),
        f.now,
    );
    // Loaded as the runtime loads it, so the incident filter's matches are made.
    app.update(Msg::Loaded(Box::new(f.snap.clone())));
    app.flash = None;
    app
}

fn form_for(f: &Fixture) -> Box<RequestForm> {
    let role = f
        .snap
        .roles
        .iter()
        .find(|r| r.name == "k8s-cluster-admin")
        .or(f.snap.roles.first())
        .cloned()
        .expect("the demo has roles");
    Box::new(RequestForm {
        pick: Pick::Incident {
            id: "INC-1042".into(),
            label: "INC-1042 Checkout API returning 503 for EU customers".into(),
        },
        condition: Some(0),
        reason: Input::multiline(2000).with("checkout pods crash-looping\nneed to roll back"),
        ttl: Input::new(10).with("10m"),
        focus: FormField::Reason,
        problems: vec![],
        attempted: false,
        role,
    })
}

/// Every screen: a name, how to reach it, and a string that proves it is shown.
type Setup = fn(&mut App, &Fixture);
fn screens() -> Vec<(&'static str, Setup, &'static str)> {
    vec![
        ("incidents", |_, _| {}, "Pick the incident"),
        (
            "roles",
            |a, _| {
                a.walk = Walk::Roles {
                    pick: Pick::Incident {
                        id: "INC-1042".into(),
                        label: "INC-1042 Checkout API returning 503".into(),
                    },
                    selected: 1,
                }
            },
            "BACKEND",
        ),
        (
            "form",
            |a, f| a.walk = Walk::Form(form_for(f)),
            "Activation form",
        ),
        (
            "confirm",
            |a, f| {
                a.walk = Walk::Confirm {
                    form: form_for(f),
                    typed: Input::new(80).with("k8s-clus"),
                }
            },
            "Confirm the request",
        ),
        (
            "my access (list)",
            |a, _| a.tab = Tab::MyAccess,
            "payments-api-operator",
        ),
        (
            "waiting",
            |a, f| {
                a.tab = Tab::MyAccess;
                a.focus = Some(f.pending);
            },
            "waiting for an approver",
        ),
        (
            "active (big countdown)",
            |a, f| {
                a.tab = Tab::MyAccess;
                a.focus = Some(f.active.0);
                a.credential = Some((f.active.0, copy_credential(&f.active.1)));
            },
            "left of",
        ),
        (
            "review form",
            |a, f| {
                a.tab = Tab::MyAccess;
                a.focus = Some(f.ended);
                let mut form = ReviewForm::new(f.ended, None);
                form.actions = Input::multiline(2000).with("promoted the replica");
                form.necessary = Some(true);
                form.focus = ReviewField::Systems;
                a.review = Some(form);
            },
            "After-action review",
        ),
        ("approvals", |a, _| a.tab = Tab::Approvals, "ready for you"),
        ("reviews", |a, _| a.tab = Tab::Reviews, "ready for you"),
        (
            "audit",
            |a, _| {
                a.tab = Tab::Audit;
                a.verified = Some((a.data.audit_head, Ok(a.data.audit.len() as u64)));
            },
            "chain verified",
        ),
    ]
}

fn buffer_text(t: &Terminal<TestBackend>) -> String {
    let b = t.backend().buffer();
    let mut s = String::new();
    for y in 0..b.area.height {
        for x in 0..b.area.width {
            s.push_str(b[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

fn draw(t: &mut Terminal<TestBackend>, app: &App, theme: &Theme) -> Result<()> {
    t.draw(|f| breakglass::tui::ui::render(f, app, theme))?;
    Ok(())
}

// ---------------------------------------------------------------- 2. render per screen

fn bench_render(o: &Opts, f: &Fixture, theme: &Theme) -> Result<()> {
    println!(
        "== 2. one frame per screen: terminal.draw(ui::render) on TestBackend, {} frames each ==",
        o.frames
    );
    println!(
        "  fixture: real engine on a demo config; {} incidents, {} roles, {} of alice's requests, {} approvals, {} reviews, {} audit events",
        f.snap.incidents.len(),
        f.snap.roles.len(),
        f.snap.mine.len(),
        f.snap.approvals.len(),
        f.snap.reviews.len(),
        f.snap.audit.len()
    );
    println!("  (the clock advances 1 s per frame, as on the tick, so every frame has a diff)");
    for (w, h) in [(100u16, 30u16), (200, 60)] {
        println!("  -- {w}x{h}");
        latency_header("screen");
        for (name, setup, marker) in screens() {
            let mut app = demo_app(f);
            setup(&mut app, f);
            let mut t = Terminal::new(TestBackend::new(w, h))?;
            draw(&mut t, &app, theme)?;
            let text = buffer_text(&t);
            ensure!(
                text.contains(marker),
                "screen {name}: `{marker}` not shown:\n{text}"
            );
            for _ in 0..10 {
                draw(&mut t, &app, theme)?;
            }
            let mut v = Vec::with_capacity(o.frames);
            for i in 0..o.frames {
                app.now = f.now + chrono::Duration::seconds((i % 240) as i64);
                let t0 = Instant::now();
                draw(&mut t, &app, theme)?;
                v.push(t0.elapsed());
            }
            latency_row(name, &v);
        }
    }
    println!();
    Ok(())
}

// ---------------------------------------------------------------- 4. big lists

const SERVICES: [&str; 12] = [
    "checkout-api",
    "payments",
    "search",
    "auth",
    "db-primary",
    "cache",
    "queue",
    "cdn",
    "billing",
    "k8s-prod",
    "ledger",
    "notifications",
];
const SYMPTOMS: [&str; 8] = [
    "returning 503",
    "latency above SLO",
    "replica lag above 10 minutes",
    "certificate expires today",
    "error rate spike",
    "disk full",
    "OOM kills",
    "connection resets",
];
const REGIONS: [&str; 5] = ["eu-west", "eu-central", "us-east", "us-west", "ap-south"];

fn many_incidents(n: usize, now: chrono::DateTime<chrono::Utc>) -> Vec<Incident> {
    (0..n)
        .map(|i| Incident {
            source: "bench".into(),
            id: format!("INC-{}", 20_000 + i),
            title: format!(
                "{} {} in {} (customer report {})",
                SERVICES[i % SERVICES.len()],
                SYMPTOMS[(i / SERVICES.len()) % SYMPTOMS.len()],
                REGIONS[(i / 7) % REGIONS.len()],
                i * 37 % 1000
            ),
            severity: format!("SEV{}", 1 + i % 3),
            status: if i % 4 == 0 {
                IncidentStatus::Acknowledged
            } else {
                IncidentStatus::Open
            },
            opened_at: Some(now - chrono::Duration::minutes((i % 5000) as i64)),
            url: None,
        })
        .collect()
}

fn many_audit(n: usize) -> Vec<AuditRecord> {
    const STEPS: [(&str, &str, &str); 6] = [
        ("request.created", "-", "Pending"),
        ("request.approved", "Pending", "Approved"),
        ("grant.intent", "Approved", "Granting"),
        ("grant.active", "Granting", "Active"),
        ("revoke.started", "Active", "Revoking"),
        ("revoke.confirmed", "Revoking", "Ended"),
    ];
    (1..=n as i64)
        .map(|seq| {
            let (action, from, to) = STEPS[seq as usize % STEPS.len()];
            AuditRecord {
                seq,
                at: format!(
                    "2025-03-01T{:02}:{:02}:{:02}.000Z",
                    (seq / 3600) % 24,
                    (seq / 60) % 60,
                    seq % 60
                ),
                actor: ["alice", "bob", "carol", "dave"][seq as usize % 4].into(),
                request_id: Some(seq / 6 + 1),
                action: action.into(),
                from_state: (from != "-").then(|| from.into()),
                to_state: Some(to.into()),
                detail: r#"{"incident":"INC-1042","reason":"bench","role":"k8s-cluster-admin"}"#
                    .into(),
                prev_hash: "0".repeat(64),
                hash: "f".repeat(64),
            }
        })
        .collect()
}

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

#[derive(Default)]
struct KeyTimes {
    update: Vec<Duration>,
    render: Vec<Duration>,
    total: Vec<Duration>,
}

impl KeyTimes {
    fn press(
        &mut self,
        app: &mut App,
        t: &mut Terminal<TestBackend>,
        theme: &Theme,
        code: KeyCode,
    ) -> Result<()> {
        let t0 = Instant::now();
        let _cmds = app.update(key(code));
        let t1 = Instant::now();
        draw(t, app, theme)?;
        let t2 = Instant::now();
        self.update.push(t1 - t0);
        self.render.push(t2 - t1);
        self.total.push(t2 - t0);
        Ok(())
    }
}

fn key_rows(label: &str, k: &KeyTimes) -> Stats {
    let s = latency_row(label, &k.total);
    let (u, r) = (stats(&k.update), stats(&k.render));
    println!(
        "  {:<44} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "    of which app.update",
        "",
        common::secs(u.mean, 2),
        common::secs(u.p50, 2),
        common::secs(u.p99, 2),
        common::secs(u.max, 2)
    );
    println!(
        "  {:<44} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "    of which render",
        "",
        common::secs(r.mean, 2),
        common::secs(r.p50, 2),
        common::secs(r.p99, 2),
        common::secs(r.max, 2)
    );
    s
}

/// The in-process key times of typing into the incident filter (characters,
/// Backspace), for printing beside the pty's.
pub struct InProcess {
    typing: Vec<Duration>,
    backspace: Vec<Duration>,
}

fn bench_keys(o: &Opts, f: &Fixture, theme: &Theme) -> Result<InProcess> {
    let n = o.items;
    println!(
        "== 4. per key with {} incidents and {} audit events loaded ({COLS}x{ROWS}; key = app.update + one render) ==",
        common::thousands(n as u64),
        common::thousands(n as u64)
    );
    let mut app = demo_app(f);
    let mut snap = f.snap.clone();
    snap.incidents = many_incidents(n, f.now);
    snap.audit = many_audit(n);
    snap.audit_head = n as i64;
    app.update(Msg::Loaded(Box::new(snap)));
    app.flash = None;
    app.verified = Some((n as i64, Ok(n as u64)));
    let mut t = Terminal::new(TestBackend::new(COLS, ROWS))?;
    draw(&mut t, &app, theme)?;

    let (mut slash, mut typing, mut backspace, mut down) = Default::default();
    let (slash, typing, backspace, down): (
        &mut KeyTimes,
        &mut KeyTimes,
        &mut KeyTimes,
        &mut KeyTimes,
    ) = (&mut slash, &mut typing, &mut backspace, &mut down);
    let mut matches_after = vec![];
    for round in 0..o.rounds {
        slash.press(&mut app, &mut t, theme, KeyCode::Char('/'))?;
        for c in FILTER.chars() {
            typing.press(&mut app, &mut t, theme, KeyCode::Char(c))?;
            if round == 0 {
                matches_after.push(app.filtered_incidents().len());
            }
        }
        if round == 0 {
            let text = buffer_text(&t);
            ensure!(
                text.contains("filter: checkout 503 eu"),
                "the filter is not shown:\n{text}"
            );
        }
        for _ in FILTER.chars() {
            backspace.press(&mut app, &mut t, theme, KeyCode::Backspace)?;
        }
        typing.press(&mut app, &mut t, theme, KeyCode::Esc)?; // leaves filter mode
        for _ in 0..10 {
            down.press(&mut app, &mut t, theme, KeyCode::Down)?;
        }
        app.update(key(KeyCode::Home));
    }
    println!(
        "  filter typed: \"{FILTER}\", {} round(s); matches after each char: {}",
        o.rounds,
        matches_after
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    latency_header("key");
    let mut worst = Duration::ZERO;
    for (label, k) in [
        ("incidents: / (start filtering)", &*slash),
        ("incidents: type a filter char", &*typing),
        ("incidents: Backspace in filter", &*backspace),
        ("incidents: Down, unfiltered", &*down),
    ] {
        worst = worst.max(key_rows(label, k).p99);
    }

    // Audit tab: scroll the whole list.
    app.tab = Tab::Audit;
    app.audit_scroll = 0;
    draw(&mut t, &app, theme)?;
    let (mut dn, mut pgdn, mut pgup) = (
        KeyTimes::default(),
        KeyTimes::default(),
        KeyTimes::default(),
    );
    for _ in 0..(n / 2).min(2_000) {
        dn.press(&mut app, &mut t, theme, KeyCode::Down)?;
    }
    while app.audit_scroll + 1 < n {
        pgdn.press(&mut app, &mut t, theme, KeyCode::PageDown)?;
    }
    let text = buffer_text(&t);
    ensure!(
        text.contains(&format!("#{n}")),
        "the last audit event is not shown after paging down:\n{text}"
    );
    while app.audit_scroll > 0 {
        pgup.press(&mut app, &mut t, theme, KeyCode::PageUp)?;
    }
    for (label, k) in [
        ("audit: Down", &dn),
        ("audit: PgDown (to the end)", &pgdn),
        ("audit: PgUp (back to the top)", &pgup),
    ] {
        if !k.total.is_empty() {
            worst = worst.max(key_rows(label, k).p99);
        }
    }
    println!(
        "  goal: under one frame (16 ms) per key -> {} (worst p99 {})",
        verdict(worst < Duration::from_millis(16)),
        common::secs(worst, 2)
    );
    println!();
    Ok(InProcess {
        typing: typing.total.clone(),
        backspace: backspace.total.clone(),
    })
}

// ---------------------------------------------------------------- 3. idle CPU

struct ProcSample {
    ticks: u64,
    child_ticks: u64,
    threads: u64,
    ctx_switches: u64,
    /// Sum of se.sum_exec_runtime over live threads (ms, ns resolution), where
    /// the kernel has /proc/<pid>/task/<tid>/sched.
    sched_ms: Option<f64>,
}

fn proc_sample(pid: i32) -> Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after "(comm) ": state is field 3, utime 14, stime 15, cutime 16,
    // cstime 17, num_threads 20.
    let rest = &stat[stat.rfind(')').context("malformed stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| -> Result<u64> { Ok(f.get(i - 3).context("short stat")?.parse()?) };
    let mut ctx = 0;
    let mut sched_ms = Some(0.0);
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        let ms = std::fs::read_to_string(t.path().join("sched"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("se.sum_exec_runtime"))
                    .and_then(|l| l.split(':').nth(1))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            });
        sched_ms = sched_ms.zip(ms).map(|(a, b)| a + b);
        let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        for l in s.lines() {
            if let Some(v) = l
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                ctx += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Ok(ProcSample {
        ticks: n(14)? + n(15)?,
        child_ticks: n(16)? + n(17)?,
        threads: n(20)?,
        ctx_switches: ctx,
        sched_ms,
    })
}

/// The idle console, with the demo's incidents (`extra` = 0) or with `extra`
/// more in its file source.
fn bench_idle(o: &Opts, bin: &Path, tmp: &Path, extra: usize) -> Result<()> {
    let tck = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    if extra == 0 {
        println!(
            "== 3. idle console showing a live countdown, {} s window (pty {COLS}x{ROWS}) ==",
            o.idle.as_secs()
        );
    } else {
        println!(
            "== 6. idle console showing a live countdown with {} incidents in the file source, {} s window (pty {COLS}x{ROWS}) ==",
            common::thousands(extra as u64 + 4),
            o.idle.as_secs()
        );
    }
    let dir = tmp.join(format!("idle-{extra}"));
    let config = prepare_demo(bin, &dir)?;
    if extra > 0 {
        scale::write_incidents(&dir, extra)?;
    }
    cli(
        bin,
        &config,
        &[
            "--as",
            "alice",
            "request",
            "--incident",
            "INC-1042",
            "--role",
            "k8s-cluster-admin",
            "--condition",
            "production outage",
            "--reason",
            "bench",
            "--ttl",
            "20m",
        ],
    )?;
    cli(bin, &config, &["--as", "bob", "approve", "REQ-1"])?;
    let stats_file = dir.join("tui-stats.json");
    let dir_s = dir.to_string_lossy().into_owned();
    let spawned = Instant::now();
    let mut pty = Pty::spawn(
        bin,
        &["demo", "--dir", &dir_s],
        &dir,
        &[("BREAKGLASS_TUI_STATS", &stats_file)],
    )?;
    pty.wait_for("the incident list", Duration::from_secs(30), |s| {
        scale::list_loaded(s, extra)
    })?;
    pty.send(b"2")?;
    pty.wait_for("REQ-1 in My access", Duration::from_secs(10), |s| {
        let c = s.contents();
        c.contains("My access ") && c.contains("REQ-1")
    })?;
    pty.send(b"\r")?;
    pty.wait_for("the countdown", Duration::from_secs(15), |s| {
        s.contents().contains("left of")
    })?;
    // Let the activation's refresh land before the window opens.
    std::thread::sleep(Duration::from_millis(1500));
    let before_screen = pty.contents();
    let load0 = loadavg();
    let (b0, r0, _) = pty.counters();
    let s0 = proc_sample(pty.pid)?;
    let t0 = Instant::now();
    std::thread::sleep(o.idle);
    let s1 = proc_sample(pty.pid)?;
    let window = t0.elapsed();
    let (b1, r1, max_read) = pty.counters();
    let load1 = loadavg();
    let after_screen = pty.contents();
    ensure!(
        after_screen.contains("left of"),
        "the countdown is gone:\n{after_screen}"
    );
    let clock_moved = before_screen != after_screen;
    let termed = pty.quit()?;
    let session = spawned.elapsed();
    let frames: u64 = std::fs::read_to_string(&stats_file)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["frames"].as_u64())
        .context("no frame count in BREAKGLASS_TUI_STATS")?;

    let w = window.as_secs_f64();
    let cpu_s = (s1.ticks - s0.ticks) as f64 / tck;
    let pct = cpu_s / w * 100.0;
    let sched = s0
        .sched_ms
        .zip(s1.sched_ms)
        .map(|(a, b)| (b - a) / 1e3 / w * 100.0);
    let writes_per_s = (r1 - r0) as f64 / w;
    let session_fps = frames as f64 / session.as_secs_f64();
    println!(
        "  clock ticks/s (sysconf CLK_TCK)   {tck}  (stat resolution {:.0} ms = {:.3}% of the window)",
        1e3 / tck,
        100.0 / tck / w
    );
    println!("  load average (1/5/15 min)         start {load0}   end {load1}");
    println!("  threads in the console            {}", s1.threads);
    println!(
        "  CPU in window (stat utime+stime)  {} ticks = {:.3} s of {:.1} s -> {:.3}% of one core",
        s1.ticks - s0.ticks,
        cpu_s,
        w,
        pct
    );
    if let Some(p) = sched {
        println!(
            "  CPU in window (task sched, ns)    {:.1} ms -> {p:.4}% of one core (sum of se.sum_exec_runtime over live threads)",
            p / 100.0 * w * 1e3
        );
    }
    if s1.child_ticks != s0.child_ticks {
        println!(
            "  + children (cutime+cstime)        {} ticks",
            s1.child_ticks - s0.child_ticks
        );
    }
    println!(
        "  context switches, all threads     {} in window = {:.1}/s",
        s1.ctx_switches - s0.ctx_switches,
        (s1.ctx_switches - s0.ctx_switches) as f64 / w
    );
    println!(
        "  pty output in window              {} bytes in {} reads = {:.0} B/s; {writes_per_s:.2} reads/s, largest {max_read} B (screen changed: {})",
        b1 - b0,
        r1 - r0,
        (b1 - b0) as f64 / w,
        if clock_moved { "yes" } else { "NO" }
    );
    println!(
        "  frames (BREAKGLASS_TUI_STATS)     {frames} in the whole session of {:.1} s = {session_fps:.2} frames/s (incl. start-up, load, 2, Enter, activation)",
        session.as_secs_f64(),
    );
    println!(
        "  frames in window (estimate)       {writes_per_s:.2}/s: an idle frame is one write of < 1 KiB, so one read per frame{}",
        if termed { "  [quit needed SIGTERM]" } else { "" }
    );
    let cpu_pct = sched.unwrap_or(pct);
    println!(
        "  goals: under 0.5% of one core -> {} ({cpu_pct:.3}%); about one frame a second -> {} ({writes_per_s:.2}/s in the window)",
        verdict(cpu_pct < 0.5 && pct < 0.5),
        verdict((0.8..=1.5).contains(&writes_per_s))
    );
    println!();
    Ok(())
}

// ---------------------------------------------------------------- main

/// Which parts run: `BENCH_PARTS=5,6,7` (default all).
struct Parts(Option<Vec<u32>>);

impl Parts {
    fn from_env() -> Self {
        Parts(
            std::env::var("BENCH_PARTS")
                .ok()
                .map(|v| v.split(',').filter_map(|p| p.trim().parse().ok()).collect()),
        )
    }
    fn has(&self, part: u32) -> bool {
        self.0.as_ref().is_none_or(|p| p.contains(&part))
    }
}

fn main() -> Result<()> {
    let o = Opts::from_env()?;
    let t = Instant::now();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("== machine ==");
    println!("  cores (available_parallelism)  {cores}");
    println!("  load average at start          {}", loadavg());
    println!(
        "  build                          {}",
        if cfg!(debug_assertions) {
            "DEBUG (figures meaningless)"
        } else {
            "optimised"
        }
    );
    println!(
        "  mode                           {} ({} launches, {} s idle window, {} items, {} frames per screen)",
        if o.quick { "quick" } else { "full" },
        o.launches,
        o.idle.as_secs(),
        common::thousands(o.items as u64),
        o.frames
    );
    let bin = release_bin()?;
    println!("  binary                         {}", bin.display());
    println!();
    let tmp = tempfile::Builder::new()
        .prefix("breakglass-console-bench-")
        .tempdir_in(&o.dir)?;

    let parts = Parts::from_env();
    if parts.has(1) {
        bench_launch(&o, &bin, tmp.path())?;
    }
    let theme = Theme::builtin("default").context("the default theme")?;
    let rt = tokio::runtime::Runtime::new()?;
    let fx = rt.block_on(fixture(&tmp.path().join("fixture")))?;
    if parts.has(2) {
        bench_render(&o, &fx, &theme)?;
    }
    let in_process = if parts.has(4) || parts.has(5) {
        Some(bench_keys(&o, &fx, &theme)?)
    } else {
        None
    };
    if parts.has(5) {
        scale::bench_typing(&o, &bin, tmp.path(), in_process.as_ref())?;
    }
    if parts.has(7) {
        scale::bench_cli(&o, &bin, tmp.path())?;
    }
    if parts.has(8) {
        rt.block_on(scale::bench_snapshot(&o, tmp.path()))?;
    }
    drop(rt);
    if parts.has(3) {
        bench_idle(&o, &bin, tmp.path(), 0)?;
    }
    if parts.has(6) {
        bench_idle(&o, &bin, tmp.path(), o.items)?;
    }
    println!("total bench time {}", common::secs(t.elapsed(), 2));
    Ok(())
}
