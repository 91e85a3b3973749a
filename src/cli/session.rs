//! `breakglass shell` (a vendor's recorded emergency session) and
//! `breakglass replay` (watching it back before certifying).
//!
//! The shell runs in a pseudo-terminal (`crate::pty`: a new session with the
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
use crate::pty;
use crate::service::Service;
use serde_json::Value;
use std::io::{BufRead, IsTerminal, Write};
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
    let size = crossterm::terminal::size().unwrap_or((80, 24));
    let recorder = pty::Recorder::new(&cast_header(svc, id, &req.role, size));

    // The credential goes into the child's environment and nowhere else.
    let request = id.to_string();
    let env = std::iter::once(("BREAKGLASS_REQUEST".to_string(), request.as_str()))
        .chain(cred.reveal().map(|(k, v)| (env_name(k), v)));
    let started = pty::spawn(&program, size, env);
    drop(cred);
    let spawned = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = svc.revoke(id, "vendor session could not start").await;
            return Err(Failure::new(
                exit::FAILURE,
                format!("could not start `{program}`: {e}"),
            ));
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
    let raw = pty::RawMode::enable();
    let mut running = spawned.relay(recorder, session.record_input);

    let (ended_by, mut unsent) = watch(svc, id, &mut running).await;
    if let Some(why) = &ended_by {
        running.say(&format!(
            "\r\n[breakglass] {id}: {}; the session is being ended.\r\n",
            crate::sanitize::line(why, 300)
        ));
        running.hang_up();
    }
    let recorded = running.close();
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
    unsent.append(&mut recorded.take());
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

/// The recording's asciicast v2 header.
fn cast_header(svc: &Service, id: RequestId, role: &str, (cols, rows): (u16, u16)) -> Value {
    serde_json::json!({
        "version": 2,
        "width": cols,
        "height": rows,
        "timestamp": svc.now().timestamp(),
        "title": format!("{id} {role}"),
        "env": {
            "SHELL": std::env::var("SHELL").unwrap_or_default(),
            "TERM": std::env::var("TERM").unwrap_or_default(),
        },
    })
}

/// Until the command exits or the engine says the session must end (the
/// grant ended, was revoked...): about once a second, sends what was recorded
/// and asks. Returns why it must end (None: the command exited) and what could
/// not be sent yet.
async fn watch(
    svc: &Service,
    id: RequestId,
    running: &mut pty::Session,
) -> (Option<String>, Vec<u8>) {
    let mut last_poll = Instant::now() - Duration::from_secs(2);
    let mut unsent: Vec<u8> = vec![];
    let ended_by = loop {
        if running.exited() {
            break None;
        }
        if last_poll.elapsed() >= Duration::from_secs(1) {
            last_poll = Instant::now();
            // What could not be sent stays queued and goes with the next piece.
            unsent.append(&mut running.take_recorded());
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
    (ended_by, unsent)
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
