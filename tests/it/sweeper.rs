//! The sweeper sleeps until the next deadline, not a fixed interval: a real
//! `breakglass daemon` with a 30 s longest sleep revokes an expired grant within
//! a second of its expiry. The grant is made after the daemon went to sleep with
//! nothing to do, so only the store's change signal can have told it (a poll of
//! the audit head on SQLite; NOTIFY on PostgreSQL: team.rs).

use crate::support;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// A daemon process, killed when the test ends however it ends.
pub struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `breakglass daemon --interval 30s`, once it has said it sweeps; its stderr is
/// drained on a thread.
pub fn daemon(cfg: &Path, env: &[(&str, &str)]) -> Daemon {
    let mut c = Command::new(env!("CARGO_BIN_EXE_breakglass"));
    c.arg("--config")
        .arg(cfg)
        .args(["daemon", "--interval", "30s"])
        .env_remove("BREAKGLASS_FAILPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("sweeping"), "{line}");
    assert!(line.contains("at least every 30s"), "{line}");
    std::thread::spawn(move || {
        let mut sink = String::new();
        while err.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    Daemon(child)
}

/// Seconds from a request's stored expiry to its `revoke.confirmed`, and who
/// started the revocation; None until confirmed.
fn lag(dir: &Path, id: i64) -> Option<(f64, String)> {
    let c = rusqlite::Connection::open(dir.join("breakglass.sqlite")).unwrap();
    let expires: String = c
        .query_row("SELECT expires_at FROM requests WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    let at = |action: &str| -> Option<(String, String)> {
        c.query_row(
            "SELECT at, actor FROM audit WHERE request_id = ?1 AND action = ?2",
            rusqlite::params![id, action],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()
    };
    let (confirmed, _) = at("revoke.confirmed")?;
    let (_, by) = at("revoke.started")?;
    let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    Some((
        (t(&confirmed) - t(&expires)).num_microseconds().unwrap() as f64 / 1e6,
        by,
    ))
}

#[test]
fn the_daemon_revokes_within_a_second_of_expiry_not_at_its_interval() {
    let (tmp, cfg) = demo_dir();
    let _d = daemon(&cfg, &[]);
    // Its first pass found nothing to do: it sleeps, for up to 30 s.
    std::thread::sleep(Duration::from_millis(500));
    approved(&cfg, &[REQUEST_K8S, &["--ttl", "2s"]].concat());
    ok_json(bg(&cfg, Some("alice"), &["--json", "activate", "1"]));
    // From here on no command runs (each would sweep first): only the daemon
    // can end the access.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (lag, by) = loop {
        if let Some(l) = lag(tmp.path(), 1) {
            break l;
        }
        assert!(Instant::now() < deadline, "not revoked within 15 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("SQLite: revoked {lag:.3} s after its expiry");
    assert_eq!(by, "breakglass-sweeper");
    assert!(
        (0.0..1.0).contains(&lag),
        "revoked {lag:.3} s after its expiry"
    );
    assert!(demo_leases(tmp.path()).is_empty());
}
