//! `ExecBackend` against real child processes: the shipped example plugin and
//! small sh fixtures under `tests/fixtures/plugins/`.
//!
//! The fixtures are static files rather than scripts written at test time: a
//! script written while another test thread forks can fail to exec with
//! ETXTBSY ("text file busy"), which would make these tests flaky.

use breakglass::backend::{Backend, BackendError, ExecBackend, GrantSpec, RevokeSpec};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROTOCOL: &str = "breakglass.exec/v1";

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn fixture(name: &str) -> PathBuf {
    manifest_path("tests/fixtures/plugins").join(name)
}

fn backend(command: PathBuf, args: &[&str], timeout: Duration) -> ExecBackend {
    backend_env(command, args, timeout, &[])
}

fn backend_env(
    command: PathBuf,
    args: &[&str],
    timeout: Duration,
    env_allow: &[&str],
) -> ExecBackend {
    ExecBackend::new(
        command,
        args.iter().map(|s| s.to_string()).collect(),
        timeout,
        env_allow.iter().map(|s| s.to_string()).collect(),
    )
}

/// A plugin that prints `reply` whatever it is asked.
fn replying(reply: &str) -> ExecBackend {
    backend(fixture("reply.sh"), &[reply], Duration::from_secs(20))
}

fn grant_spec(request_id: &str) -> GrantSpec {
    GrantSpec {
        request_id: request_id.to_string(),
        role: "db-admin".to_string(),
        scope: json!({"db": "orders", "hosts": ["a", "b"]}),
        requester: "alice".to_string(),
        ttl_seconds: 3600,
        expires_at: Utc::now() + ChronoDuration::hours(1),
        incident: "INC-42".to_string(),
    }
}

fn revoke_spec(request_id: &str, lease_id: Option<&str>) -> RevokeSpec {
    RevokeSpec {
        request_id: request_id.to_string(),
        role: "db-admin".to_string(),
        scope: json!({"db": "orders", "hosts": ["a", "b"]}),
        lease_id: lease_id.map(str::to_string),
    }
}

fn leases(state: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("lease-"))
        .collect();
    v.sort();
    v
}

fn failed(r: Result<impl std::fmt::Debug, BackendError>) -> String {
    match r {
        Err(BackendError::Failed(m)) => m,
        other => panic!("expected BackendError::Failed, got {other:?}"),
    }
}

fn protocol(r: Result<impl std::fmt::Debug, BackendError>) -> String {
    match r {
        Err(BackendError::Protocol(m)) => m,
        other => panic!("expected BackendError::Protocol, got {other:?}"),
    }
}

// ---- the shipped example plugin ----

#[tokio::test]
async fn example_plugin_grants_revokes_and_checks() {
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().to_str().unwrap();
    let b = backend(
        manifest_path("examples/exec-plugin.sh"),
        &["--state", state_arg],
        Duration::from_secs(20),
    );
    assert_eq!(b.kind(), "exec");

    let g3 = b.grant(&grant_spec("REQ-3")).await.unwrap();
    assert!(g3.lease_id.starts_with("lease-REQ-3-"), "{}", g3.lease_id);
    let cred: Vec<(String, String)> = g3
        .credential
        .reveal()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |name: &str| {
        cred.iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("no {name} in credential {:?}", g3.credential))
            .1
            .clone()
    };
    assert_eq!(get("username"), "bg_req_3");
    let password = get("password");
    assert_eq!(password.len(), 32, "{password:?}");
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    // The lease exists on the "target", recording its request.
    let lease_file = state.path().join(&g3.lease_id);
    assert_eq!(
        std::fs::read_to_string(&lease_file).unwrap().trim(),
        "REQ-3"
    );

    // Each grant gets a fresh lease and password.
    let g3b = b.grant(&grant_spec("REQ-3")).await.unwrap();
    let g30 = b.grant(&grant_spec("REQ-30")).await.unwrap();
    assert_ne!(g3b.lease_id, g3.lease_id);
    let p3b = g3b.credential.reveal().find(|(k, _)| *k == "password");
    assert_ne!(p3b.unwrap().1, password);
    assert_eq!(leases(state.path()).len(), 3);

    let msg = b.check().await.unwrap();
    assert!(msg.contains("3 active lease(s)"), "{msg}");
    assert!(msg.contains(state_arg), "{msg}");

    // Revoke by lease id removes exactly that lease, and is idempotent.
    b.revoke(&revoke_spec("REQ-3", Some(&g3.lease_id)))
        .await
        .unwrap();
    assert!(!lease_file.exists());
    assert_eq!(
        leases(state.path()),
        sorted(vec![g3b.lease_id.clone(), g30.lease_id.clone()])
    );
    b.revoke(&revoke_spec("REQ-3", Some(&g3.lease_id)))
        .await
        .unwrap();

    // Revoke by request id (lease outcome lost): REQ-3's leases go, REQ-30's stays.
    b.revoke(&revoke_spec("REQ-3", None)).await.unwrap();
    assert_eq!(leases(state.path()), vec![g30.lease_id.clone()]);
    b.revoke(&revoke_spec("REQ-3", None)).await.unwrap();
    assert_eq!(leases(state.path()), vec![g30.lease_id.clone()]);

    // Revoking something never issued succeeds too.
    b.revoke(&revoke_spec("REQ-999", None)).await.unwrap();
    b.revoke(&revoke_spec("REQ-999", Some("lease-REQ-999-1")))
        .await
        .unwrap();

    let msg = b.check().await.unwrap();
    assert!(msg.contains("1 active lease(s)"), "{msg}");

    // extend and rotate are accepted.
    b.extend(
        &revoke_spec("REQ-30", Some(&g30.lease_id)),
        Utc::now() + ChronoDuration::hours(2),
    )
    .await
    .unwrap();
    b.rotate("db-admin", &json!({})).await.unwrap();

    b.revoke(&revoke_spec("REQ-30", Some(&g30.lease_id)))
        .await
        .unwrap();
    assert!(leases(state.path()).is_empty());
    let msg = b.check().await.unwrap();
    assert!(msg.contains("0 active lease(s)"), "{msg}");
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn credential_debug_never_shows_the_password() {
    let state = tempfile::tempdir().unwrap();
    let b = backend(
        manifest_path("examples/exec-plugin.sh"),
        &["--state", state.path().to_str().unwrap()],
        Duration::from_secs(20),
    );
    let g = b.grant(&grant_spec("REQ-5")).await.unwrap();
    let password = g
        .credential
        .reveal()
        .find(|(k, _)| *k == "password")
        .unwrap()
        .1
        .to_string();
    assert_eq!(password.len(), 32);
    for rendered in [
        format!("{:?}", g.credential),
        format!("{:#?}", g.credential),
        format!("{g:?}"),
        format!("{g:#?}"),
    ] {
        assert!(!rendered.contains(&password), "{rendered}");
        assert!(rendered.contains("password=<redacted>"), "{rendered}");
    }
}

// ---- timeouts and process-group kill ----

/// Live (not zombie) processes whose process group is `pgid`, from /proc.
fn live_group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ..."; comm may contain spaces and parens.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 3 && f[2].parse() == Ok(pgid) && f[0] != "Z" && f[0] != "X" {
            out.push(pid);
        }
    }
    out
}

async fn poll_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn read_pid(path: &Path) -> i32 {
    let mut pid = None;
    poll_until("the plugin's pid file", Duration::from_secs(10), || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        pid.is_some()
    })
    .await;
    pid.unwrap()
}

/// Runs a grant against a hanging fixture and checks it times out and that its
/// whole process group is gone afterwards. `min_members` is how many live
/// processes the group must have while the plugin hangs.
async fn assert_times_out_and_group_dies(script: &str, min_members: usize) {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let timeout = Duration::from_secs(2);
    let b = Arc::new(backend(
        fixture(script),
        &[pidfile.to_str().unwrap()],
        timeout,
    ));
    let start = Instant::now();
    let task = {
        let b = b.clone();
        tokio::spawn(async move { b.grant(&grant_spec("REQ-1")).await })
    };

    // The plugin leads its own process group, and the group has the expected
    // sleeping members before the timeout fires.
    let pid = read_pid(&pidfile).await;
    poll_until(
        "the plugin's group to fill",
        Duration::from_secs(10),
        || live_group_members(pid).len() >= min_members,
    )
    .await;
    assert!(!task.is_finished(), "the call ended before its timeout");

    let res = task.await.unwrap();
    let elapsed = start.elapsed();
    match res {
        Err(BackendError::Timeout(d)) => assert_eq!(d, timeout),
        other => panic!("expected a Timeout, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");

    poll_until(
        "the plugin's process group to be killed",
        Duration::from_secs(5),
        || live_group_members(pid).is_empty(),
    )
    .await;
}

#[tokio::test]
async fn hanging_plugin_times_out_and_is_killed() {
    // sh and its foreground `sleep 1000`.
    assert_times_out_and_group_dies("hang.sh", 2).await;
}

#[tokio::test]
async fn grandchild_holding_stdout_times_out_and_is_killed() {
    // sh has exited; its background `sleep 1000` keeps stdout open.
    assert_times_out_and_group_dies("hang-grandchild.sh", 1).await;
}

// ---- failures ----

#[tokio::test]
async fn crashing_plugin_reports_the_signal() {
    let b = backend(fixture("crash.sh"), &[], Duration::from_secs(20));
    let m = failed(b.grant(&grant_spec("REQ-1")).await);
    assert!(m.contains("crashed (signal 11)"), "{m}");
    assert!(m.contains("grant"), "{m}");
}

#[tokio::test]
async fn stdout_garbage_is_a_protocol_error() {
    let m = protocol(
        replying("this is not json")
            .grant(&grant_spec("REQ-1"))
            .await,
    );
    assert!(m.contains("plugin protocol in docs/"), "{m}");
    let m = protocol(replying("").check().await);
    assert!(m.contains("plugin protocol in docs/"), "{m}");
    // Valid JSON that lacks "ok" is malformed too.
    protocol(replying(r#"{"lease_id":"L"}"#).check().await);
}

#[tokio::test]
async fn nonzero_exit_reports_sanitised_stderr() {
    let b = backend(fixture("fail-escapes.sh"), &[], Duration::from_secs(20));
    let err = b.grant(&grant_spec("REQ-1")).await.unwrap_err();
    let shown = err.to_string();
    let m = failed(Err::<(), _>(err));
    assert!(m.contains("boom"), "{m:?}");
    assert!(m.contains("exited with status 3"), "{m:?}");
    for s in [&m, &shown] {
        assert!(!s.contains('\u{1b}'), "ESC in {s:?}");
        assert!(!s.contains('\u{7}'), "BEL in {s:?}");
        assert!(!s.contains("pwned"), "OSC payload in {s:?}");
        assert!(!s.chars().any(char::is_control), "control char in {s:?}");
    }
}

#[tokio::test]
async fn refusal_carries_the_plugins_error() {
    let b = replying(r#"{"ok":false,"error":"quota exceeded"}"#);
    let m = failed(b.grant(&grant_spec("REQ-1")).await);
    assert!(m.contains("quota exceeded"), "{m}");
    let m = failed(b.revoke(&revoke_spec("REQ-1", None)).await);
    assert!(m.contains("quota exceeded"), "{m}");
    // A refusal's message is sanitised too.
    let b = replying(r#"{"ok":false,"error":"\u001b[31mred\u0007"}"#);
    let m = failed(b.check().await);
    assert!(
        m.contains("red") && !m.contains('\u{1b}') && !m.contains('\u{7}'),
        "{m:?}"
    );
}

#[tokio::test]
async fn grant_reply_must_have_lease_and_credential() {
    let m = protocol(
        replying(r#"{"ok":true,"credential":{"password":"pw"}}"#)
            .grant(&grant_spec("REQ-1"))
            .await,
    );
    assert!(m.contains("lease_id"), "{m}");
    let m = protocol(
        replying(r#"{"ok":true,"lease_id":"  ","credential":{"password":"pw"}}"#)
            .grant(&grant_spec("REQ-1"))
            .await,
    );
    assert!(m.contains("lease_id"), "{m}");
    let m = protocol(
        replying(r#"{"ok":true,"lease_id":"L-1"}"#)
            .grant(&grant_spec("REQ-1"))
            .await,
    );
    assert!(m.contains("credential"), "{m}");

    // The same reply shape is fine where no lease is expected.
    replying(r#"{"ok":true}"#)
        .revoke(&revoke_spec("REQ-1", None))
        .await
        .unwrap();
    // And a complete grant reply works, with the optional expiry.
    let g = replying(
        r#"{"ok":true,"lease_id":"L-1","expires_at":"2030-01-01T00:00:00Z","credential":{"token":"t"}}"#,
    )
    .grant(&grant_spec("REQ-1"))
    .await
    .unwrap();
    assert_eq!(g.lease_id, "L-1");
    assert_eq!(
        g.expires_at,
        Some("2030-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap())
    );
}

#[tokio::test]
async fn missing_plugin_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-plugin");
    let b = backend(path.clone(), &[], Duration::from_secs(20));
    let m = failed(b.grant(&grant_spec("REQ-1")).await);
    assert!(m.starts_with("cannot start plugin "), "{m}");
    assert!(m.contains(path.to_str().unwrap()), "{m}");

    // Not executable: also refused at start.
    use std::os::unix::fs::PermissionsExt;
    let plain = dir.path().join("not-executable.sh");
    std::fs::write(&plain, "#!/bin/sh\necho '{\"ok\":true}'\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let m = failed(backend(plain, &[], Duration::from_secs(20)).check().await);
    assert!(m.starts_with("cannot start plugin "), "{m}");
}

#[tokio::test]
async fn huge_stdout_is_capped_not_hung() {
    let b = backend(fixture("huge-stdout.sh"), &[], Duration::from_secs(30));
    let start = Instant::now();
    let m = protocol(b.grant(&grant_spec("REQ-1")).await);
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(m.contains("more than 1 MiB on stdout"), "{m}");
    assert!(m.contains("plugin protocol in docs/"), "{m}");
}

#[tokio::test]
async fn huge_stderr_is_capped_not_hung() {
    let b = backend(fixture("huge-stderr.sh"), &[], Duration::from_secs(30));
    let start = Instant::now();
    let m = failed(b.grant(&grant_spec("REQ-1")).await);
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(m.contains("exited with status 1"), "{m}");
    // The operator sees a bounded message, not megabytes.
    assert!(m.chars().count() < 1000, "{} chars", m.chars().count());
}

// ---- what the plugin sees ----

const SECRET_VAR: &str = "BREAKGLASS_TEST_SECRET";

fn set_secret_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // Only this test file's env tests read it; set once, never removed.
    ONCE.call_once(|| std::env::set_var(SECRET_VAR, "hunter2"));
}

fn env_lines(dir: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join("env.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn environment_is_cleared_except_the_allow_list() {
    set_secret_once();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    backend(fixture("record.sh"), &[d], Duration::from_secs(20))
        .check()
        .await
        .unwrap();
    let env = env_lines(dir.path());
    let raw = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert!(!raw.contains("hunter2"), "{raw}");
    assert!(!env.iter().any(|(k, _)| k == SECRET_VAR), "{raw}");
    assert!(
        env.contains(&("BREAKGLASS_PROTOCOL".into(), PROTOCOL.into())),
        "{raw}"
    );
    assert!(
        env.contains(&("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())),
        "{raw}"
    );
    // Nothing else of ours leaks (the shell itself may set PWD and the like).
    for (k, v) in std::env::vars() {
        if ["PATH", "PWD", "OLDPWD", "SHLVL", "_"].contains(&k.as_str()) {
            continue;
        }
        assert!(!env.contains(&(k.clone(), v)), "{k} leaked into the plugin");
    }

    // Listed: passed through. Listed but unset: simply absent.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    backend_env(
        fixture("record.sh"),
        &[d],
        Duration::from_secs(20),
        &[SECRET_VAR, "BREAKGLASS_TEST_UNSET_VARIABLE"],
    )
    .check()
    .await
    .unwrap();
    let env = env_lines(dir.path());
    assert!(
        env.contains(&(SECRET_VAR.into(), "hunter2".into())),
        "{env:?}"
    );
    assert!(!env
        .iter()
        .any(|(k, _)| k == "BREAKGLASS_TEST_UNSET_VARIABLE"));
    assert!(env.contains(&("BREAKGLASS_PROTOCOL".into(), PROTOCOL.into())));
}

fn request(dir: &Path) -> serde_json::Value {
    let raw = std::fs::read_to_string(dir.join("stdin.json")).unwrap();
    assert!(raw.ends_with('\n'), "request is one line: {raw:?}");
    assert_eq!(raw.lines().count(), 1, "request is one line: {raw:?}");
    serde_json::from_str(&raw).unwrap()
}

#[tokio::test]
async fn request_json_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let b = backend(fixture("record.sh"), &[d], Duration::from_secs(20));

    let spec = grant_spec("REQ-7");
    let g = b.grant(&spec).await.unwrap();
    assert_eq!(g.lease_id, "L-1");
    let r = request(dir.path());
    assert_eq!(r["protocol"], PROTOCOL);
    assert_eq!(r["op"], "grant");
    assert_eq!(r["request_id"], "REQ-7");
    assert_eq!(r["role"], "db-admin");
    assert_eq!(r["scope"], spec.scope);
    assert_eq!(r["requester"], "alice");
    assert_eq!(r["ttl_seconds"], 3600);
    assert_eq!(r["incident"], "INC-42");
    let at: DateTime<Utc> = r["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(at, spec.expires_at);

    b.revoke(&revoke_spec("REQ-7", Some("L-1"))).await.unwrap();
    let r = request(dir.path());
    assert_eq!(r["protocol"], PROTOCOL);
    assert_eq!(r["op"], "revoke");
    assert_eq!(r["request_id"], "REQ-7");
    assert_eq!(r["lease_id"], "L-1");
    assert_eq!(r["scope"], spec.scope);

    b.revoke(&revoke_spec("REQ-7", None)).await.unwrap();
    let r = request(dir.path());
    assert_eq!(r["op"], "revoke");
    assert!(r["lease_id"].is_null(), "{r}");

    let new_expiry = Utc::now() + ChronoDuration::hours(3);
    b.extend(&revoke_spec("REQ-7", Some("L-1")), new_expiry)
        .await
        .unwrap();
    let r = request(dir.path());
    assert_eq!(r["op"], "extend");
    assert_eq!(r["lease_id"], "L-1");
    let at: DateTime<Utc> = r["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(at, new_expiry);

    b.rotate("db-admin", &json!({"db": "orders"}))
        .await
        .unwrap();
    let r = request(dir.path());
    assert_eq!(r["protocol"], PROTOCOL);
    assert_eq!(r["op"], "rotate");
    assert_eq!(r["role"], "db-admin");
    assert_eq!(r["scope"], json!({"db": "orders"}));

    b.check().await.unwrap();
    let r = request(dir.path());
    assert_eq!(r, json!({"protocol": PROTOCOL, "op": "check"}));
}
