//! `breakglass shell` (a vendor's recorded emergency session) and
//! `breakglass replay` (watching it back before certifying).
//!
//! The shell runs in a pseudo-terminal (portable-pty: a new session with the
//! PTY as its controlling terminal). The credential is put in the child's
//! environment only: never on a command line, never in the store or the
//! recording's header. The session's output is recorded as asciicast v2; input
//! only when the role sets `record_input = true`.

use super::args::RequestArgs;
use super::{CliResult, Failure};
use crate::cli::stdio::{errln, outln};
use crate::domain::vendor::VendorInfo;
use crate::domain::{RequestId, State};
use crate::exit;
use crate::service::Service;
use crate::sync::LockExt;
use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// `--vendor-name` / `--vendor-company` as given (checked by the engine).
pub(super) fn vendor_info(a: &RequestArgs) -> Option<VendorInfo> {
    match (&a.vendor_name, &a.vendor_company) {
        (None, None) => None,
        (n, c) => Some(VendorInfo {
            name: n.clone().unwrap_or_default(),
            company: c.clone().unwrap_or_default(),
        }),
    }
}

/// An asciicast v2 recording being made: a header line, then `[time, code,
/// data]`. Lines collect in `pending`, which the session sends where the engine
/// keeps the recording (the broker, or this process) about once a second.
struct Recorder {
    pending: Vec<u8>,
    start: Instant,
    /// Bytes of a UTF-8 sequence split across reads, per stream.
    carry_o: Vec<u8>,
    carry_i: Vec<u8>,
}

impl Recorder {
    fn event(&mut self, code: &str, bytes: &[u8]) {
        let carry = if code == "i" {
            &mut self.carry_i
        } else {
            &mut self.carry_o
        };
        carry.extend_from_slice(bytes);
        let upto = match std::str::from_utf8(carry) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => carry.len(),
        };
        let text = String::from_utf8_lossy(&carry[..upto]).into_owned();
        carry.drain(..upto);
        if text.is_empty() {
            return;
        }
        let t = (self.start.elapsed().as_micros() as f64) / 1e6;
        let line = serde_json::json!([t, code, text]);
        let _ = writeln!(self.pending, "{line}");
    }
}

/// Restores the terminal however the session ends.
struct RawMode;

impl RawMode {
    fn enable() -> Option<RawMode> {
        crossterm::terminal::enable_raw_mode().ok().map(|_| RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

fn env_name(field: &str) -> String {
    let f: String = field
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("BREAKGLASS_{f}")
}

fn signal_group(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
}

pub(super) async fn shell(svc: &Service, id: RequestId, command: Option<&str>) -> CliResult {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(Failure::new(
            exit::USAGE,
            "`breakglass shell` needs a terminal: the session runs interactively and is recorded",
        ));
    }
    let session = svc.open_shell(id).await?;
    let (req, cred) = (session.request, session.credential);
    let program = command
        .map(str::to_string)
        .or(session.shell_command.clone())
        .or_else(|| std::env::var("SHELL").ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "/bin/sh".into());
    let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 24));
    let failed = |m: String| Failure::new(exit::FAILURE, m);
    let header = serde_json::json!({
        "version": 2,
        "width": cols,
        "height": rows,
        "timestamp": svc.now().timestamp(),
        "title": format!("{id} {}", req.role),
        "env": {
            "SHELL": std::env::var("SHELL").unwrap_or_default(),
            "TERM": std::env::var("TERM").unwrap_or_default(),
        },
    });
    let rec = Arc::new(Mutex::new(Recorder {
        pending: format!("{header}\n").into_bytes(),
        start: Instant::now(),
        carry_o: vec![],
        carry_i: vec![],
    }));

    let started = (|| -> anyhow::Result<_> {
        let pair = native_pty_system().openpty(PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })?;
        let mut words = program.split_whitespace();
        let mut cmd = CommandBuilder::new(words.next().unwrap_or("/bin/sh"));
        cmd.args(words);
        cmd.env("BREAKGLASS_REQUEST", id.to_string());
        for (k, v) in cred.reveal() {
            cmd.env(env_name(k), v);
        }
        if let Ok(cwd) = std::env::current_dir() {
            cmd.cwd(cwd);
        }
        let child = pair.slave.spawn_command(cmd)?;
        drop(pair.slave);
        let reader = pair.master.try_clone_reader()?;
        let writer = pair.master.take_writer()?;
        Ok((pair.master, child, reader, writer))
    })();
    drop(cred);
    let (master, mut child, mut reader, mut writer) = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = svc.revoke(id, "vendor session could not start").await;
            return Err(failed(format!("could not start `{program}`: {e}")));
        }
    };
    errln!(
        "breakglass: {id} active; session recorded to {}{} (output{}). It ends when the grant ends.",
        session.recording.display(),
        svc.socket()
            .map(|s| format!(" by the broker at {}", s.display()))
            .unwrap_or_default(),
        if session.record_input {
            " and input"
        } else {
            " only"
        }
    );
    let raw = RawMode::enable();

    // PTY -> terminal (and the recording).
    let (done_tx, done_rx) = mpsc::channel();
    {
        let rec = rec.clone();
        std::thread::spawn(move || {
            let mut out = std::io::stdout();
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = out.write_all(&buf[..n]);
                        let _ = out.flush();
                        rec.locked().event("o", &buf[..n]);
                    }
                }
            }
            let _ = done_tx.send(());
        });
    }
    // Terminal -> PTY (recorded only with record_input).
    {
        let rec = rec.clone();
        let record_input = session.record_input;
        std::thread::spawn(move || {
            let mut input = std::io::stdin();
            let mut buf = [0u8; 1024];
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if writer.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        let _ = writer.flush();
                        if record_input {
                            rec.locked().event("i", &buf[..n]);
                        }
                    }
                }
            }
        });
    }

    let mut last_poll = Instant::now() - Duration::from_secs(2);
    let mut unsent: Vec<u8> = vec![];
    let ended_by = loop {
        if let Ok(Some(_)) = child.try_wait() {
            break None;
        }
        if last_poll.elapsed() >= Duration::from_secs(1) {
            last_poll = Instant::now();
            // What could not be sent stays queued and goes with the next piece.
            unsent.append(&mut rec.locked().pending);
            if !unsent.is_empty() && svc.append_recording(id, &unsent).await.is_ok() {
                unsent.clear();
            }
            match svc.session_end_reason(id).await {
                Ok(Some(why)) => break Some(why),
                Ok(None) => {}
                Err(e) => tracing::warn!("checking {id}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if let Some(why) = &ended_by {
        let msg = format!(
            "\r\n[breakglass] {id}: {}; the session is being ended.\r\n",
            crate::sanitize::line(why, 300)
        );
        let _ = std::io::stdout().write_all(msg.as_bytes());
        let _ = std::io::stdout().flush();
        rec.locked().event("o", msg.as_bytes());
        if let Some(pid) = child.process_id() {
            signal_group(pid, nix::sys::signal::Signal::SIGHUP);
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !matches!(child.try_wait(), Ok(Some(_))) {
                signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = child.wait();
    }
    // Let the relay drain what the shell wrote last (a background process still
    // holding the terminal does not keep us).
    let _ = done_rx.recv_timeout(Duration::from_secs(2));
    drop(master);
    drop(raw);

    let revoked = match svc.load(id).await.map(|r| r.state) {
        Ok(State::Active) => {
            let reason = match &ended_by {
                Some(why) => format!("vendor session ended: {why}"),
                None => "vendor session ended".to_string(),
            };
            svc.revoke(id, &reason).await.map(|_| ())
        }
        _ => Ok(()),
    };
    unsent.append(&mut rec.locked().pending);
    svc.append_recording(id, &unsent).await?;
    let recording = svc.close_recording(id).await?;
    let (path, sha) = (recording.path, recording.sha256);
    match &ended_by {
        Some(why) => errln!("breakglass: {id}: {why}; the session was ended."),
        None => errln!("breakglass: {id}: session closed."),
    }
    errln!(
        "breakglass: recording {} (sha256 {sha}) is in the audit trail",
        path.display()
    );
    revoked?;
    Ok(exit::OK)
}

pub(super) async fn replay(svc: &Service, id: RequestId, speed: f64) -> CliResult {
    if !speed.is_finite() || speed < 0.0 {
        return Err(Failure::new(
            exit::USAGE,
            "--speed is a factor >= 0 (0 prints at once)",
        ));
    }
    let (recording, bytes) = svc.read_recording(id).await?;
    let Some(bytes) = bytes else {
        return Err(Failure::new(
            exit::AUDIT_BROKEN,
            format!(
                "the recording of {id} ({}) is missing or does not match its audited SHA-256; run `breakglass audit verify`",
                recording.path.display()
            ),
        ));
    };
    let mut out = std::io::stdout();
    // A recording is untrusted output: replay keeps colours and movement but not
    // what could act on the reviewer's terminal (clipboard, title, answerback).
    let mut filter = crate::sanitize::ReplayFilter::default();
    let mut prev = 0.0f64;
    for line in bytes.lines().skip(1) {
        let Ok(line) = line else { break };
        let Ok(serde_json::Value::Array(ev)) = serde_json::from_str::<serde_json::Value>(&line)
        else {
            continue;
        };
        let (Some(t), Some("o"), Some(data)) = (
            ev.first().and_then(|v| v.as_f64()),
            ev.get(1).and_then(|v| v.as_str()),
            ev.get(2).and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        if speed > 0.0 && t > prev {
            // Long idle stretches are capped, as asciinema's idle limit does.
            let wait = ((t - prev) / speed).min(5.0);
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
        prev = t.max(prev);
        let _ = out.write_all(filter.feed(data).as_bytes());
        let _ = out.flush();
    }
    outln!("\r\n[breakglass] end of the recording of {id}");
    svc.replayed(id, speed).await?;
    Ok(exit::OK)
}
