//! Crash tests: the real binary is SIGKILLed at each I/O boundary of grant and
//! revoke; the next command's recovery must leave no access granted and no
//! transition lost or doubled.

use crate::support;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use support::*;

fn killed(o: &std::process::Output) {
    assert_eq!(
        o.status.signal(),
        Some(9),
        "expected SIGKILL; stdout {} stderr {}",
        stdout(o),
        stderr(o)
    );
}

fn count(dir: &Path, action: &str) -> usize {
    audit_actions(dir)
        .iter()
        .filter(|(_, a)| a == action)
        .count()
}

fn plugin_leases(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("plugin-state"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn state(cfg: &Path) -> String {
    ok_json(bg(cfg, None, &["--json", "status", "1"]))["request"]["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn chain_ok(cfg: &Path) {
    assert_eq!(
        ok_json(bg(cfg, None, &["--json", "audit", "verify"]))["ok"],
        true
    );
}

#[test]
fn killed_after_the_grant_intent_is_stored() {
    let (tmp, cfg) = demo_dir();
    approved(&cfg, REQUEST_K8S);
    killed(&bg_env(
        &cfg,
        Some("alice"),
        &["--json", "activate", "1"],
        &[("BREAKGLASS_FAILPOINT", "grant.after_intent")],
    ));
    assert_eq!(count(tmp.path(), "grant.intent"), 1);
    // The next command (any) recovers: the dead process's grant is revoked by request id.
    let o = bg(&cfg, None, &["roles"]);
    assert!(
        stderr(&o).contains("interrupted grant was revoked"),
        "{}",
        stderr(&o)
    );
    assert_eq!(state(&cfg), "failed");
    assert!(demo_leases(tmp.path()).is_empty());
    assert_eq!(count(tmp.path(), "grant.failed"), 1);
    assert_eq!(count(tmp.path(), "revoke.confirmed"), 1);
    assert_eq!(count(tmp.path(), "grant.active"), 0);
    chain_ok(&cfg);
}

#[test]
fn killed_after_the_backend_granted_but_before_the_state_commit() {
    let (tmp, cfg) = demo_dir();
    approved(&cfg, REQUEST_K8S);
    killed(&bg_env(
        &cfg,
        Some("alice"),
        &["--json", "activate", "1"],
        &[("BREAKGLASS_FAILPOINT", "grant.after_backend")],
    ));
    // The target holds a lease the store never recorded.
    assert_eq!(demo_leases(tmp.path()).len(), 1);
    bg(&cfg, None, &["status"]);
    assert!(
        demo_leases(tmp.path()).is_empty(),
        "recovery revoked the unrecorded lease"
    );
    assert_eq!(state(&cfg), "failed");
    assert_eq!(count(tmp.path(), "grant.active"), 0);
    assert_eq!(count(tmp.path(), "revoke.confirmed"), 1);
    chain_ok(&cfg);
    // The role is usable again (a failed grant owes no review).
    let o = bg(&cfg, Some("alice"), REQUEST_K8S);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn the_exec_plugin_grant_is_revoked_too_after_a_crash() {
    let (tmp, cfg) = demo_dir();
    let mut req = REQUEST_DBA.to_vec();
    req[4] = "payments-api-operator";
    approved(&cfg, &req);
    killed(&bg_env(
        &cfg,
        Some("alice"),
        &["--json", "activate", "1"],
        &[("BREAKGLASS_FAILPOINT", "grant.after_backend")],
    ));
    assert_eq!(plugin_leases(tmp.path()), 1);
    bg(&cfg, None, &["status"]);
    assert_eq!(plugin_leases(tmp.path()), 0);
    assert_eq!(state(&cfg), "failed");
}

#[test]
fn killed_after_the_revoke_intent_is_stored() {
    let (tmp, cfg) = demo_dir();
    activated(&cfg, REQUEST_K8S);
    killed(&bg_env(
        &cfg,
        Some("alice"),
        &["revoke", "1"],
        &[("BREAKGLASS_FAILPOINT", "revoke.after_intent")],
    ));
    assert_eq!(state_raw(tmp.path()), "revoking");
    assert_eq!(
        demo_leases(tmp.path()).len(),
        1,
        "the backend was not called yet"
    );
    // The revoker is gone, so recovery retries at once rather than after the timeout.
    bg(&cfg, None, &["roles"]);
    assert!(demo_leases(tmp.path()).is_empty());
    assert_eq!(state(&cfg), "ended");
    assert_eq!(count(tmp.path(), "revoke.started"), 1);
    assert_eq!(count(tmp.path(), "revoke.confirmed"), 1);
    chain_ok(&cfg);
}

#[test]
fn killed_after_the_backend_revoked_but_before_the_state_commit() {
    let (tmp, cfg) = demo_dir();
    activated(&cfg, REQUEST_K8S);
    killed(&bg_env(
        &cfg,
        Some("alice"),
        &["revoke", "1"],
        &[("BREAKGLASS_FAILPOINT", "revoke.after_backend")],
    ));
    assert!(demo_leases(tmp.path()).is_empty());
    // Not recorded as revoked until confirmed: still Revoking in the store.
    assert_eq!(state_raw(tmp.path()), "revoking");
    bg(&cfg, None, &["roles"]);
    assert_eq!(state(&cfg), "ended");
    assert_eq!(count(tmp.path(), "revoke.confirmed"), 1);
    chain_ok(&cfg);
}

#[test]
fn killed_while_the_sweeper_revokes_an_expired_grant() {
    let (tmp, cfg) = demo_dir();
    approved(&cfg, &[REQUEST_K8S, &["--ttl", "1s"]].concat());
    ok_json(bg(&cfg, Some("alice"), &["--json", "activate", "1"]));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    killed(&bg_env(
        &cfg,
        None,
        &["sweep"],
        &[("BREAKGLASS_FAILPOINT", "revoke.after_intent")],
    ));
    let o = bg(&cfg, None, &["sweep"]);
    assert!(
        stdout(&o).contains("revocation completed on retry"),
        "{}",
        stdout(&o)
    );
    assert!(demo_leases(tmp.path()).is_empty());
    assert_eq!(state(&cfg), "ended");
    assert_eq!(count(tmp.path(), "revoke.started"), 1);
    assert_eq!(count(tmp.path(), "revoke.confirmed"), 1);
}

/// The state as stored, without running recovery first.
fn state_raw(dir: &Path) -> String {
    let c = rusqlite::Connection::open(dir.join("breakglass.sqlite")).unwrap();
    c.query_row("SELECT state FROM requests WHERE id = 1", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_paused_daemon_does_not_stretch_access() {
    // Expiry is the stored instant: a console stopped with SIGSTOP past expiry
    // does not keep access alive; any sweep ends it.
    let (tmp, cfg) = demo_dir();
    approved(&cfg, &[REQUEST_K8S, &["--ttl", "1s"]].concat());
    let mut waiter = std::process::Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .arg("--config")
        .arg(&cfg)
        .args(["--as", "alice", "daemon", "--interval", "1s"])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(waiter.id() as i32);
    ok_json(bg(&cfg, Some("alice"), &["--json", "activate", "1"]));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    bg(&cfg, None, &["sweep"]);
    assert!(demo_leases(tmp.path()).is_empty());
    assert_eq!(state(&cfg), "ended");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    waiter.wait().unwrap();
}

/// The sweeper claims in the store file: (key, owner, until).
fn claims(dir: &Path) -> Vec<(String, String, String)> {
    let c = rusqlite::Connection::open(dir.join("breakglass.sqlite")).unwrap();
    let mut st = c.prepare("SELECT key, owner, until FROM claims").unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

#[test]
fn a_revoke_retry_claimed_by_a_dead_sweeper_is_taken_over_at_once() {
    // The reproduction: the exec plugin's grant expires, two sweeps die
    // after the revoke intent; the second dies holding the retry's claim (a lease
    // of revoke_timeout, a minute). The next sweep must not wait for it to run out.
    let (tmp, cfg) = demo_dir();
    let mut req = REQUEST_DBA.to_vec();
    req[4] = "payments-api-operator";
    approved(&cfg, &[&req[..], &["--ttl", "1s"]].concat());
    ok_json(bg(&cfg, Some("alice"), &["--json", "activate", "1"]));
    assert_eq!(plugin_leases(tmp.path()), 1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for _ in 0..2 {
        killed(&bg_env(
            &cfg,
            None,
            &["sweep"],
            &[("BREAKGLASS_FAILPOINT", "revoke.after_intent")],
        ));
    }
    assert_eq!(state_raw(tmp.path()), "revoking");
    let held = claims(tmp.path());
    assert!(
        held.iter().any(|(k, _, _)| k == "request:1"),
        "the second sweep died holding the retry's claim: {held:?}"
    );
    let o = bg(&cfg, None, &["sweep"]);
    assert!(
        stdout(&o).contains("revocation completed on retry"),
        "stdout {} stderr {}",
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(plugin_leases(tmp.path()), 0);
    assert_eq!(state(&cfg), "ended");
    assert_eq!(count(tmp.path(), "revoke.started"), 1);
    assert_eq!(count(tmp.path(), "revoke.confirmed"), 1);
    assert!(
        !claims(tmp.path()).iter().any(|(k, _, _)| k == "request:1"),
        "the taker released the claim"
    );
    chain_ok(&cfg);
}

#[test]
fn an_alert_claimed_by_a_dead_process_is_delivered_at_once() {
    let (tmp, cfg) = demo_dir();
    approved(&cfg, REQUEST_K8S);
    // Activation succeeds; its alert's delivery dies right after claiming the row.
    killed(&bg_env(
        &cfg,
        Some("alice"),
        &["--json", "activate", "1"],
        &[("BREAKGLASS_FAILPOINT", "alert.after_claim")],
    ));
    let alerts = || std::fs::read_to_string(tmp.path().join("alerts.jsonl")).unwrap_or_default();
    assert!(!alerts().contains("\"activation\""), "not sent yet");
    assert!(
        claims(tmp.path())
            .iter()
            .any(|(k, _, _)| k.starts_with("outbox:")),
        "the dead process holds the row's claim"
    );
    let rep = ok_json(bg(&cfg, None, &["--json", "sweep"]));
    assert!(
        rep["recovery"]["alerts_delivered"].as_u64().unwrap() >= 1,
        "{rep}"
    );
    assert!(alerts().contains("\"activation\""), "{}", alerts());
    let o = bg(&cfg, None, &["--json", "status"]);
    assert_eq!(json(&o)["undelivered_alerts"], 0, "{}", stdout(&o));
}
