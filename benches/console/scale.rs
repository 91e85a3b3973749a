//! The console at scale, as a user sees it: the demo with 10,000 more
//! incidents in its file source.
//!
//! 5. Typing into the incident filter of the release binary in a pty: from the
//!    key's bytes written to the pty until the screen above the status bar
//!    stopped changing (the settled frame), beside the in-process figures of
//!    part 4 (app.update + one render on TestBackend).
//! 7. CLI commands with one active grant, demo data vs 10,000 incidents.
//! 8. One console snapshot (what the watcher loads on each change and every
//!    15 s) in process and through the broker's socket, by call.
//!
//! (Part 6, the idle console with 10,000 incidents, is `bench_idle`.)

use crate::{
    cli, common, incident_list_complete, latency_header, latency_row, loadavg, many_incidents,
    prepare_demo, stats, verdict, InProcess, Opts, Pty, COLS, FILTER, ROWS,
};
use anyhow::{anyhow, ensure, Context, Result};
use breakglass::audit::{self, AuditRecord};
use breakglass::engine::Engine;
use breakglass::service::Service;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// No output for this long after a key: its frame is complete.
const QUIET: Duration = Duration::from_millis(40);

/// Appends `n` incidents (those of part 4) to the demo's incident file, dated
/// a minute back like a file synced a while ago (a file source reads a file
/// written within the last 2 s on every call).
pub fn write_incidents(dir: &Path, n: usize) -> Result<()> {
    let path = dir.join("incidents.toml");
    let mut text = std::fs::read_to_string(&path)?;
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    for i in many_incidents(n, chrono::Utc::now()) {
        let status = match i.status {
            breakglass::incident::IncidentStatus::Acknowledged => "acknowledged",
            _ => "open",
        };
        text.push_str(&format!(
            "\n[[incidents]]\nid = {}\ntitle = {}\nseverity = {}\nstatus = \"{status}\"\nopened_at = \"{}\"\n",
            quote(&i.id),
            quote(&i.title),
            quote(&i.severity),
            breakglass::domain::time::ts(i.opened_at.context("an opening time")?),
        ));
    }
    std::fs::write(&path, text)?;
    let minute_ago = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&path)?
        .set_modified(minute_ago)?;
    Ok(())
}

/// The incident list is drawn with its incidents (with `extra` incidents,
/// generated ones come first: they are the newest).
pub fn list_loaded(s: &vt100::Screen, extra: usize) -> bool {
    if extra == 0 {
        return incident_list_complete(s);
    }
    let lines: Vec<String> = s.rows(0, COLS).collect();
    lines.iter().any(|l| l.contains("Pick the incident"))
        && lines.iter().any(|l| l.contains("INC-2"))
        && lines.last().is_some_and(|l| l.contains("UTC"))
}

fn thousands(n: usize) -> String {
    common::thousands(n as u64)
}

// ---------------------------------------------------------------- 5. typing in a pty

/// Writes `bytes` (one key) and returns how long until the frame showing
/// `filter: {typed}` settled.
fn key_to_settled(pty: &mut Pty, bytes: &[u8], typed: &str) -> Result<Duration> {
    let want = format!("filter: {typed}▏");
    let t0 = Instant::now();
    pty.send(bytes)?;
    pty.wait_for(&format!("`{want}`"), Duration::from_secs(10), |s| {
        s.contents().contains(&want)
    })?;
    let settled = pty
        .settle(QUIET, Duration::from_secs(10))?
        .context("no frame")?;
    Ok(settled.saturating_duration_since(t0))
}

pub fn bench_typing(
    o: &Opts,
    bin: &Path,
    tmp: &Path,
    in_process: Option<&InProcess>,
) -> Result<()> {
    let n = o.items;
    println!(
        "== 5. typing into the incident filter as a user sees it: `breakglass demo` in a pty ({COLS}x{ROWS}), {} incidents in the file source ==",
        thousands(n + 4)
    );
    println!(
        "  (the demo's broker runs in the console's process and the console is its client over the socket;"
    );
    println!(
        "   each key: its bytes written to the pty -> the screen above the status bar settled, i.e. no output for {} ms after it)",
        QUIET.as_millis()
    );
    let dir = tmp.join("typing");
    prepare_demo(bin, &dir)?;
    write_incidents(&dir, n)?;
    let dir_s = dir.to_string_lossy().into_owned();
    let load0 = loadavg();
    let t0 = Instant::now();
    let mut pty = Pty::spawn(bin, &["demo", "--dir", &dir_s], &dir, &[])?;
    let listed = pty.wait_for("the incident list", Duration::from_secs(60), |s| {
        list_loaded(s, n)
    })?;
    let first_list = listed.saturating_duration_since(t0);
    // The watcher's start-up loads land before anything is timed.
    std::thread::sleep(Duration::from_millis(1500));
    pty.settle(QUIET, Duration::from_secs(10))?;
    let (mut typing, mut backspace) = (vec![], vec![]);
    for _ in 0..o.rounds {
        pty.send(b"/")?;
        pty.wait_for("the filter", Duration::from_secs(10), |s| {
            s.contents().contains("filter: ▏")
        })?;
        pty.settle(QUIET, Duration::from_secs(10))?;
        let mut typed = String::new();
        for c in FILTER.chars() {
            typed.push(c);
            typing.push(key_to_settled(&mut pty, c.to_string().as_bytes(), &typed)?);
        }
        while typed.pop().is_some() {
            backspace.push(key_to_settled(&mut pty, b"\x7f", &typed)?);
        }
        pty.send(b"\x1b")?;
        pty.wait_for("the filter closed", Duration::from_secs(10), |s| {
            s.contents().contains("/ filters")
        })?;
        pty.settle(QUIET, Duration::from_secs(10))?;
    }
    pty.quit()?;
    println!(
        "  load average (1/5/15 min)          start {load0}   end {}",
        loadavg()
    );
    println!(
        "  start to the first full incident list   {}",
        common::secs(first_list, 1)
    );
    println!(
        "  filter typed: \"{FILTER}\", {} round(s), each char then Backspace to empty",
        o.rounds
    );
    latency_header("key");
    let pty_typing = latency_row("pty: type a filter char", &typing);
    latency_row("pty: Backspace in filter", &backspace);
    let mut all = typing.clone();
    all.extend(&backspace);
    let both = stats(&all);
    if let Some(ip) = in_process {
        let ipt = latency_row("in process: type a filter char", &ip.typing);
        latency_row("in process: Backspace in filter", &ip.backspace);
        println!(
            "  (in process = part 4: app.update + one render on TestBackend, no terminal, no socket)"
        );
        println!(
            "  pty / in process, p50 of a char: {:.1}x",
            pty_typing.p50.as_secs_f64() / ipt.p50.as_secs_f64().max(1e-9)
        );
    }
    println!(
        "  goal: p99 under 16 ms -> {} (chars and Backspace: p50 {}, p99 {})",
        verdict(both.p99 < Duration::from_millis(16)),
        common::secs(both.p50, 2),
        common::secs(both.p99, 2)
    );
    println!();
    Ok(())
}

// ---------------------------------------------------------------- 7. CLI commands

/// A demo dir with `extra` more incidents and one active grant (alice's REQ-1
/// on INC-1042, whose role revokes on resolve).
fn active_demo(bin: &Path, dir: &Path, extra: usize) -> Result<PathBuf> {
    let config = prepare_demo(bin, dir)?;
    if extra > 0 {
        write_incidents(dir, extra)?;
    }
    let as_ = |who: &'static str, args: &[&'static str]| {
        let mut v = vec!["--as", who];
        v.extend(args);
        v
    };
    cli(
        bin,
        &config,
        &as_(
            "alice",
            &[
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
        ),
    )?;
    cli(bin, &config, &as_("bob", &["approve", "REQ-1"]))?;
    cli(
        bin,
        &config,
        &as_("alice", &["--json", "activate", "REQ-1"]),
    )?;
    Ok(config)
}

/// Wall time of `breakglass [--config C --as alice] args`, `runs` times after
/// one untimed run.
fn time_runs(
    bin: &Path,
    config: Option<&Path>,
    args: &[&str],
    runs: usize,
) -> Result<Vec<Duration>> {
    let mut v = vec![];
    for i in 0..=runs {
        let mut cmd = Command::new(bin);
        if let Some(c) = config {
            cmd.arg("--config").arg(c).args(["--as", "alice"]);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t = Instant::now();
        let st = cmd.status()?;
        let d = t.elapsed();
        ensure!(st.success(), "breakglass {} failed: {st}", args.join(" "));
        if i > 0 {
            v.push(d);
        }
    }
    Ok(v)
}

pub fn bench_cli(o: &Opts, bin: &Path, tmp: &Path) -> Result<()> {
    println!(
        "== 7. CLI commands with one active grant: demo incidents (4) vs {} in the file source, {} runs each ==",
        thousands(o.items + 4),
        o.runs
    );
    let small = active_demo(bin, &tmp.join("cli-small"), 0)?;
    let big = active_demo(bin, &tmp.join("cli-big"), o.items)?;
    let load0 = loadavg();
    let floor = stats(&time_runs(bin, None, &["--version"], o.runs)?);
    let big_n = thousands(o.items + 4);
    println!(
        "  {:<12} {:>12} {:>12} {:>12} {:>12} {:>8}  goal",
        "command",
        "demo p50",
        format!("{big_n} p50"),
        format!("{big_n} p90"),
        format!("{big_n} max"),
        "ratio"
    );
    println!(
        "  {:<12} {:>12}   (process start, the floor)",
        "--version",
        common::secs(floor.p50, 1)
    );
    for cmd in ["status", "roles", "incidents"] {
        let a = stats(&time_runs(bin, Some(&small), &[cmd], o.runs)?);
        let mut big_runs = time_runs(bin, Some(&big), &[cmd], o.runs)?;
        big_runs.sort();
        let b = stats(&big_runs);
        let goal = if cmd == "incidents" {
            "(none: it prints them all)".to_string()
        } else {
            format!(
                "under 30 ms -> {}",
                verdict(b.p50 < Duration::from_millis(30))
            )
        };
        println!(
            "  {cmd:<12} {:>12} {:>12} {:>12} {:>12} {:>7.1}x  {goal}",
            common::secs(a.p50, 1),
            common::secs(b.p50, 1),
            common::secs(common::pct(&big_runs, 90.0), 1),
            common::secs(b.max, 1),
            b.p50.as_secs_f64() / a.p50.as_secs_f64().max(1e-9),
        );
    }
    println!(
        "  load average (1/5/15 min)  start {load0}   end {}",
        loadavg()
    );
    println!();
    Ok(())
}

// ---------------------------------------------------------------- 8. one snapshot

/// Appends `n` sealed events after the store's head, as the engine would.
fn append_audit(db: &Path, n: usize) -> Result<()> {
    let mut conn = rusqlite::Connection::open(db)?;
    let (head, mut prev): (i64, String) = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap_or((0, audit::GENESIS.to_string()));
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare(
            "INSERT INTO audit (seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (k, mut r) in crate::many_audit(n).into_iter().enumerate() {
            r.seq = head + 1 + k as i64;
            r.request_id = None;
            r.detail = audit::canonical_detail(&serde_json::json!({"reason": "bench"}));
            let r: AuditRecord = audit::seal(r, &prev);
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
    Ok(())
}

async fn timed<T, F: std::future::Future<Output = T>>(
    runs: usize,
    mut f: impl FnMut() -> F,
) -> (Vec<Duration>, T) {
    let mut last = f().await; // warm-up
    let mut v = vec![];
    for _ in 0..runs {
        let t = Instant::now();
        last = f().await;
        v.push(t.elapsed());
    }
    (v, last)
}

pub async fn bench_snapshot(o: &Opts, tmp: &Path) -> Result<()> {
    let n = o.items;
    println!(
        "== 8. one console snapshot with {} incidents and {} audit events: in process and through the broker's socket, {} runs ==",
        thousands(n + 4),
        thousands(n),
        o.runs
    );
    let dir = tmp.join("snapshot");
    let config = breakglass::demo::prepare(&dir)?;
    write_incidents(&dir, n)?;
    let cfg = breakglass::config::load(&config).map_err(|p| anyhow!("demo config: {p}"))?;
    drop(Engine::from_config(&cfg)?); // the store's schema
    append_audit(&dir.join("breakglass.sqlite"), n)?;
    let engine = Arc::new(Engine::from_config(&cfg)?);
    let socket = dir.join("bench.sock");
    let listener = breakglass::broker::bind(&socket, None).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(breakglass::broker::serve(
        engine.clone(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    let alice = Some("alice".to_string());
    let services = [
        (
            "in process",
            Service::local(engine.clone()).as_persona(alice.clone()),
        ),
        (
            "broker socket",
            Service::broker(socket.clone()).as_persona(alice),
        ),
    ];
    println!(
        "  {:<44} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "call", "n", "mean", "p50", "p99", "max"
    );
    for (label, svc) in &services {
        let (v, snap) = timed(o.runs, || breakglass::tui::snapshot(svc, "alice")).await;
        ensure!(
            snap.incidents.len() >= n && snap.audit.len() == n.min(10_000),
            "{label}: the snapshot holds {} incidents and {} events",
            snap.incidents.len(),
            snap.audit.len()
        );
        latency_row(&format!("{label}: tui::snapshot (all of it)"), &v);
        // The watcher's way: the audit events it holds are not fetched again.
        let mut rows = breakglass::tui::AuditRows::default();
        let mut v = vec![];
        for i in 0..=o.runs {
            let t = Instant::now();
            breakglass::tui::snapshot_with(svc, "alice", &mut rows).await;
            if i > 0 {
                v.push(t.elapsed());
            }
        }
        latency_row(&format!("{label}: tui::snapshot_with (the watcher)"), &v);
        let (v, _) = timed(o.runs, || svc.incidents()).await;
        latency_row(&format!("{label}:   incidents"), &v);
        let (v, _) = timed(o.runs, || svc.audit_tail(10_000)).await;
        latency_row(&format!("{label}:   audit_tail(10,000)"), &v);
        let (v, _) = timed(o.runs, || svc.roles()).await;
        latency_row(&format!("{label}:   roles"), &v);
        let mine = breakglass::engine::Query {
            requester: Some("alice".into()),
            limit: Some(200),
            ..Default::default()
        };
        let (v, _) = timed(o.runs, || svc.requests(&mine)).await;
        latency_row(&format!("{label}:   requests (mine)"), &v);
        let (v, _) = timed(o.runs, || svc.approvals()).await;
        latency_row(&format!("{label}:   approvals"), &v);
        let (v, _) = timed(o.runs, || svc.reviews()).await;
        latency_row(&format!("{label}:   reviews"), &v);
        let head = svc.audit_head().await?.0;
        let (v, _) = timed(o.runs, || svc.audit_events(head + 1, 10_000)).await;
        latency_row(&format!("{label}:   audit_events after the head"), &v);
        if *label == "broker socket" {
            println!(
                "  (as JSON: incidents {} KiB, audit tail {} KiB)",
                serde_json::to_vec(&snap.incidents)?.len() / 1024,
                serde_json::to_vec(&snap.audit)?.len() / 1024
            );
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    println!();
    Ok(())
}
