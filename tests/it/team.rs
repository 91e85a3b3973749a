//! Team mode end to end: real `breakglass` processes sharing one PostgreSQL
//! store (a throwaway cluster, tests/it/support/pg.rs; each test its own database).
//! The demo config is pointed at PostgreSQL by rewriting its `[store]` table,
//! with the connection string in an environment variable given to every child.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

const URL_ENV: &str = "BG_TEAM_STORE_URL";

struct Team {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    cfg: PathBuf,
    url: String,
    db: String,
}

/// Four extra roles for the concurrency tests: 2 approvals, short TTLs.
fn team_roles() -> String {
    (0..4)
        .map(|i| {
            format!(
                r#"
[[roles]]
name = "team-{i}"
description = "team mode test role"
backend = "demo"
scope = {{}}
default_ttl = "2s"
min_ttl = "1s"
max_ttl = "1m"
conditions = ["production outage"]
requesters = ["alice", "bob"]
approvers = ["bob", "carol", "dave"]
approvals_required = 2
certifiers = ["dave"]
"#
            )
        })
        .collect()
}

/// A demo dir whose config uses a fresh database on the shared cluster.
fn team(extra: &str) -> Team {
    let server = support::pg::shared();
    let db = server.create_database_blocking("team");
    let (tmp, cfg) = demo_dir();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let sqlite = "[store]\nkind = \"sqlite\"\npath = \"breakglass.sqlite\"\n";
    assert!(text.contains(sqlite), "the demo's [store] table changed");
    let text = text.replace(
        sqlite,
        &format!("[store]\nkind = \"postgres\"\nurl_env = \"{URL_ENV}\"\ndata_dir = \".\"\n"),
    );
    std::fs::write(&cfg, format!("{text}{extra}")).unwrap();
    // Create the schema now, so the test can query it before any child runs.
    breakglass::store::PostgresStore::open(&server.admin_url(&db)).unwrap();
    Team {
        dir: tmp.path().to_path_buf(),
        _tmp: tmp,
        cfg,
        url: server.admin_url(&db),
        db,
    }
}

impl Team {
    fn run(&self, who: Option<&str>, args: &[&str]) -> Output {
        bg_env(&self.cfg, who, args, &[(URL_ENV, &self.url)])
    }

    fn ok(&self, who: Option<&str>, args: &[&str]) -> serde_json::Value {
        ok_json(self.run(who, &[&["--json"], args].concat()))
    }

    fn command(&self, who: Option<&str>, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_breakglass"));
        c.arg("--config").arg(&self.cfg);
        if let Some(w) = who {
            c.args(["--as", w]);
        }
        c.args(args)
            .env(URL_ENV, &self.url)
            .env_remove("BREAKGLASS_FAILPOINT");
        c
    }

    fn sql(&self) -> postgres::Client {
        support::pg::shared().admin_blocking(&self.db)
    }

    /// (seq, request_id, action, actor, detail, at) in chain order.
    fn audit(&self) -> Vec<AuditRow> {
        self.sql()
            .query(
                "SELECT seq, request_id, action, actor, detail, at FROM audit ORDER BY seq",
                &[],
            )
            .unwrap()
            .into_iter()
            .map(|r| AuditRow {
                seq: r.get(0),
                request: r.get(1),
                action: r.get(2),
                actor: r.get(3),
                detail: serde_json::from_str(r.get::<_, &str>(4)).unwrap(),
                at: r.get::<_, String>(5).parse().unwrap(),
            })
            .collect()
    }

    /// request id -> (role, state)
    fn requests(&self) -> BTreeMap<i64, (String, String)> {
        self.sql()
            .query("SELECT id, role, state FROM requests", &[])
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect()
    }

    fn state(&self, id: i64) -> String {
        self.requests()[&id].1.clone()
    }

    fn chain_verifies(&self) {
        let v = self.ok(None, &["audit", "verify"]);
        assert_eq!(v["ok"], true, "{v}");
    }

    fn leases(&self) -> Vec<(String, String)> {
        demo_leases(&self.dir)
    }
}

#[derive(Debug, Clone)]
struct AuditRow {
    seq: i64,
    request: Option<i64>,
    action: String,
    actor: String,
    detail: serde_json::Value,
    at: chrono::DateTime<chrono::Utc>,
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn request_args<'a>(role: &'a str, ttl: &'a str) -> Vec<&'a str> {
    vec![
        "request",
        "--incident",
        "INC-1042",
        "--role",
        role,
        "--condition",
        "production outage",
        "--reason",
        "team mode test",
        "--ttl",
        ttl,
    ]
}

/// requester requests `role`, two approvers approve (as separate processes),
/// the requester activates. Returns the request id.
fn grant(t: &Team, requester: &str, role: &str, ttl: &str) -> i64 {
    let r = t.ok(Some(requester), &request_args(role, ttl));
    let id = r["request"]["id"].as_i64().unwrap();
    let sid = id.to_string();
    let approvers: Vec<&str> = ["bob", "carol", "dave"]
        .into_iter()
        .filter(|a| *a != requester)
        .take(2)
        .collect();
    for a in approvers {
        t.ok(Some(a), &["approve", &sid]);
    }
    let act = t.ok(Some(requester), &["activate", &sid]);
    assert_eq!(act["request"]["state"], "active");
    id
}

fn stop(mut c: Child) -> Output {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = c.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    c.wait_with_output().unwrap()
}

/// Per request: how often each action happened.
fn actions_per_request(audit: &[AuditRow]) -> BTreeMap<i64, BTreeMap<String, usize>> {
    let mut out: BTreeMap<i64, BTreeMap<String, usize>> = BTreeMap::new();
    for a in audit {
        if let Some(r) = a.request {
            *out.entry(r)
                .or_default()
                .entry(a.action.clone())
                .or_default() += 1;
        }
    }
    out
}

/// The invariants every team test ends with.
fn assert_consistent(t: &Team) {
    let audit = t.audit();
    let reqs = t.requests();
    let per = actions_per_request(&audit);
    let n = |r: i64, a: &str| per.get(&r).and_then(|m| m.get(a)).copied().unwrap_or(0);
    for (&id, (role, state)) in &reqs {
        assert!(
            !matches!(state.as_str(), "granting" | "active" | "revoking"),
            "REQ-{id} ({role}) left {state}"
        );
        assert!(n(id, "grant.active") <= 1, "REQ-{id} has two grants");
        if n(id, "grant.active") == 1 || n(id, "grant.failed") == 1 {
            assert_eq!(n(id, "revoke.confirmed"), 1, "REQ-{id}: {:?}", per[&id]);
        }
        if n(id, "grant.active") == 1 {
            assert_eq!(n(id, "revoke.started"), 1, "REQ-{id}: {:?}", per[&id]);
        }
        // Each approval counted once, by distinct people, never past the need.
        let approvers: Vec<&str> = audit
            .iter()
            .filter(|a| a.request == Some(id) && a.action == "request.approved")
            .map(|a| a.actor.as_str())
            .collect();
        let distinct: BTreeSet<&str> = approvers.iter().copied().collect();
        assert_eq!(approvers.len(), distinct.len(), "REQ-{id}: {approvers:?}");
        assert!(approvers.len() <= 2, "REQ-{id}: {approvers:?}");
        assert!(!distinct.contains(
            audit
                .iter()
                .find(|a| a.request == Some(id) && a.action == "request.created")
                .unwrap()
                .actor
                .as_str()
        ));
    }
    // At most one holder per role at any point of the chain.
    let mut holder: BTreeMap<String, i64> = BTreeMap::new();
    for a in &audit {
        let Some(r) = a.request else { continue };
        let role = &reqs[&r].0;
        match a.action.as_str() {
            "grant.intent" => {
                if let Some(other) = holder.insert(role.clone(), r) {
                    panic!(
                        "#{}: REQ-{r} granted {role} while REQ-{other} held it",
                        a.seq
                    );
                }
            }
            "revoke.confirmed" => {
                assert_eq!(holder.remove(role), Some(r), "#{}", a.seq);
            }
            _ => {}
        }
    }
    assert!(holder.is_empty(), "{holder:?}");
    assert!(t.leases().is_empty(), "{:?}", t.leases());
    t.chain_verifies();
}

#[test]
fn concurrent_processes_request_approve_revoke_and_sweep() {
    let t = team(&team_roles());
    // Two daemon replicas sweep throughout.
    let daemons: Vec<Child> = (0..2)
        .map(|_| {
            t.command(None, &["daemon", "--interval", "1s"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..8usize {
            let t = &t;
            s.spawn(move || {
                let role = format!("team-{}", w % 4);
                let requester = if w < 4 { "alice" } else { "bob" };
                let mut rounds = 0;
                let deadline = Instant::now() + Duration::from_secs(90);
                while rounds < 2 && Instant::now() < deadline {
                    let o = t.run(
                        Some(requester),
                        &[&["--json"], request_args(&role, "2s").as_slice()].concat(),
                    );
                    if code(&o) == 3 {
                        // Locked by the other worker's request: try again shortly.
                        std::thread::sleep(Duration::from_millis(200 + 50 * w as u64));
                        continue;
                    }
                    let id = ok_json(o)["request"]["id"].as_i64().unwrap().to_string();
                    // Every approver at once (the requester too, refused): two count.
                    let approvals: Vec<Child> = ["bob", "carol", "dave"]
                        .into_iter()
                        .map(|a| {
                            t.command(Some(a), &["approve", &id])
                                .stdout(Stdio::null())
                                .stderr(Stdio::null())
                                .spawn()
                                .unwrap()
                        })
                        .collect();
                    for a in approvals {
                        a.wait_with_output().unwrap();
                    }
                    let st = t.ok(None, &["status", &id]);
                    if st["request"]["state"] != "approved" {
                        // bob requested: carol and dave must both have counted.
                        panic!("REQ-{id} not approved: {st}");
                    }
                    let act = t.run(Some(requester), &["--json", "activate", &id]);
                    if code(&act) != 0 {
                        // The other worker holds the role; withdraw and retry.
                        assert_eq!(code(&act), 3, "{}", stderr(&act));
                        let c = t.run(Some(requester), &["cancel", &id]);
                        assert_eq!(code(&c), 0, "{}", stderr(&c));
                        continue;
                    }
                    if (w + rounds) % 2 == 0 {
                        // End early from two terminals and a sweep, all at once.
                        let racers: Vec<Child> = [
                            t.command(Some(requester), &["revoke", &id]),
                            t.command(Some("dave"), &["revoke", &id]),
                            t.command(None, &["sweep"]),
                        ]
                        .into_iter()
                        .map(|mut c| {
                            c.stdout(Stdio::null())
                                .stderr(Stdio::null())
                                .spawn()
                                .unwrap()
                        })
                        .collect();
                        for r in racers {
                            r.wait_with_output().unwrap();
                        }
                    } else {
                        // Let it expire; two sweeps race the daemons for it.
                        std::thread::sleep(Duration::from_millis(2100));
                        let sweeps: Vec<Child> = (0..2)
                            .map(|_| {
                                t.command(None, &["sweep"])
                                    .stdout(Stdio::null())
                                    .stderr(Stdio::null())
                                    .spawn()
                                    .unwrap()
                            })
                            .collect();
                        for s in sweeps {
                            s.wait_with_output().unwrap();
                        }
                    }
                    wait_until("the revocation", Duration::from_secs(30), || {
                        t.state(id.parse().unwrap()) == "ended"
                    });
                    t.ok(
                        Some(requester),
                        &[
                            "review",
                            &id,
                            "--actions-taken",
                            "load test",
                            "--systems-touched",
                            "none",
                            "--access-necessary",
                            "yes",
                            "--credentials-copied",
                            "no",
                        ],
                    );
                    t.ok(Some("dave"), &["certify", &id]);
                    rounds += 1;
                }
                assert_eq!(rounds, 2, "worker {w} did not finish its rounds");
            });
        }
    });
    for d in daemons {
        let o = stop(d);
        assert_eq!(code(&o), 0, "daemon: {}", stderr(&o));
    }
    ok_json(t.run(None, &["--json", "sweep"]));
    eprintln!("8 workers, 2 rounds each: {:?}", started.elapsed());

    assert_consistent(&t);
    let audit = t.audit();
    let per = actions_per_request(&audit);
    let grants: Vec<i64> = per
        .iter()
        .filter(|(_, m)| m.get("grant.active") == Some(&1))
        .map(|(r, _)| *r)
        .collect();
    assert_eq!(grants.len(), 16, "two grants per worker");
    let expired: Vec<i64> = audit
        .iter()
        .filter(|a| a.action == "revoke.started" && a.detail["reason"] == "expired")
        .map(|a| a.request.unwrap())
        .collect();
    let unique: BTreeSet<i64> = expired.iter().copied().collect();
    assert_eq!(
        expired.len(),
        unique.len(),
        "an expired grant was revoked twice"
    );
    assert!(!expired.is_empty(), "no grant expired");
    // Refused self-approvals were noted, not counted.
    assert!(audit.iter().any(|a| a.action == "policy.refused"));
}

#[test]
fn dual_approval_across_terminals() {
    let t = team("");
    // The incident commander waits in one terminal...
    let waiter = t
        .command(Some("alice"), &["--json"])
        .args(REQUEST_DBA)
        .args(["--wait", "--wait-timeout", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the request", Duration::from_secs(30), || {
        t.requests().contains_key(&1)
    });
    assert_eq!(t.state(1), "pending");
    // ...two approvers act from two others...
    let a = t.ok(Some("bob"), &["approve", "REQ-1", "--comment", "go"]);
    assert_eq!(a["request"]["state"], "pending");
    assert_eq!(
        t.run(Some("bob"), &["approve", "REQ-1"]).status.code(),
        Some(3)
    );
    let a = t.ok(Some("carol"), &["approve", "REQ-1"]);
    let approved_at = Instant::now();
    assert_eq!(a["request"]["state"], "approved");
    // ...and the waiting terminal activates on its own.
    let out = waiter.wait_with_output().unwrap();
    let waited = approved_at.elapsed();
    let act = ok_json(out);
    assert_eq!(act["request"]["state"], "active");
    assert!(act["credential"]["password"].is_string());
    assert!(
        waited < Duration::from_secs(5),
        "activation came {waited:?} after approval"
    );
    let st = t.ok(Some("dave"), &["status", "REQ-1"]);
    assert_eq!(st["request"]["state"], "active");

    let rv = t.ok(Some("alice"), &["revoke", "REQ-1", "--reason", "done"]);
    assert_eq!(rv["request"]["state"], "ended");
    t.ok(
        Some("alice"),
        &[
            "review",
            "REQ-1",
            "--actions-taken",
            "failed over",
            "--systems-touched",
            "db-1",
            "--access-necessary",
            "yes",
            "--credentials-copied",
            "no",
        ],
    );
    assert_eq!(
        t.run(Some("bob"), &["certify", "REQ-1"]).status.code(),
        Some(3)
    );
    let c = t.ok(Some("dave"), &["certify", "REQ-1", "--comment", "ok"]);
    assert_eq!(c["request"]["state"], "certified");

    let audit = t.audit();
    let who: Vec<(&str, &str)> = audit
        .iter()
        .filter(|a| a.action != "policy.refused")
        .map(|a| (a.action.as_str(), a.actor.as_str()))
        .collect();
    assert_eq!(
        who,
        vec![
            ("request.created", "alice"),
            ("request.approved", "bob"),
            ("request.approved", "carol"),
            ("grant.intent", "alice"),
            ("grant.active", "alice"),
            ("revoke.started", "alice"),
            ("revoke.confirmed", "alice"),
            ("review.submitted", "alice"),
            ("review.certified", "dave"),
        ]
    );
    assert_consistent(&t);
}

/// `unshare --uts` with another host name, where we may (root): the killed
/// replica then looks like one on another machine, so the survivor cannot see
/// that its process is gone and must wait out the lease.
fn other_host(mut c: Command) -> (Command, bool) {
    let ok = Command::new("unshare")
        .args(["--uts", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return (c, false);
    }
    let program = c.get_program().to_owned();
    let args: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
    let mut u = Command::new("unshare");
    u.args([
        "--uts",
        "sh",
        "-c",
        "hostname replica-a && exec \"$@\"",
        "sh",
    ])
    .arg(program)
    .args(args);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => u.env(k, v),
            None => u.env_remove(k),
        };
    }
    c = u;
    (c, true)
}

fn killed_replica_is_finished_by_another(failpoint: &str) {
    let lease = Duration::from_secs(4);
    let t = team(&format!(
        "{}\n[recovery]\nrevoke_timeout = \"{}s\"\n",
        team_roles(),
        lease.as_secs()
    ));
    // Replica B runs; it is paused while A sweeps so that A, not B, takes the
    // first expired grant (otherwise who wins is a coin toss).
    let mut b = t
        .command(None, &["--json", "daemon", "--interval", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(b.stderr.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("sweeping"), "{line}");
    }
    // Let its first (empty) pass finish: it must hold nothing while paused.
    std::thread::sleep(Duration::from_millis(500));
    let pid_b = nix::unistd::Pid::from_raw(b.id() as i32);
    nix::sys::signal::kill(pid_b, nix::sys::signal::Signal::SIGSTOP).unwrap();

    // Long enough that no CLI command's own recovery pass sweeps the first
    // grant while the others are being made.
    let ids: Vec<i64> = (0..3)
        .map(|i| grant(&t, "alice", &format!("team-{i}"), "10s"))
        .collect();
    assert_eq!(t.leases().len(), 3);
    std::thread::sleep(Duration::from_millis(10_500));

    // Replica A takes the expired grants (a batch: all three, or fewer if
    // it loses a race) and is SIGKILLed mid-revoke.
    let mut a = t.command(None, &["daemon", "--interval", "1s"]);
    a.env("BREAKGLASS_FAILPOINT", failpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let (mut a, elsewhere) = other_host(a);
    let out = a.output().unwrap();
    assert_eq!(out.status.signal(), Some(9), "replica A was not killed");
    let reqs = t.requests();
    let orphan: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|i| reqs[i].1 == "revoking")
        .collect();
    assert!(!orphan.is_empty(), "{reqs:?}");
    assert!(ids
        .iter()
        .filter(|i| !orphan.contains(i))
        .all(|i| reqs[i].1 == "active"));

    // B resumes: it revokes any others at once, and the orphans once A's lease
    // (revoke_timeout) has run out.
    nix::sys::signal::kill(pid_b, nix::sys::signal::Signal::SIGCONT).unwrap();
    wait_until("replica B to finish", Duration::from_secs(40), || {
        t.requests()
            .values()
            .all(|(_, s)| !matches!(s.as_str(), "active" | "revoking"))
    });
    let out = stop(b);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let audit = t.audit();
    let at = |r: i64, action: &str| {
        audit
            .iter()
            .find(|a| a.request == Some(r) && a.action == action)
            .unwrap()
            .at
    };
    for orphan in orphan {
        let waited = at(orphan, "revoke.confirmed") - at(orphan, "revoke.started");
        eprintln!("REQ-{orphan}: replica A killed ({failpoint}); B confirmed after {waited} (A on another host: {elsewhere})");
        if elsewhere {
            assert!(
                waited >= chrono::Duration::from_std(lease).unwrap(),
                "B took over after {waited}, before A's lease ran out"
            );
        }
    }
    for r in &ids {
        assert_eq!(t.state(*r), "ended");
    }
    assert_consistent(&t);
}

#[test]
fn a_replica_killed_after_the_revoke_intent_is_finished_by_another() {
    killed_replica_is_finished_by_another("revoke.after_intent");
}

#[test]
fn a_replica_killed_after_the_backend_revoked_is_finished_by_another() {
    killed_replica_is_finished_by_another("revoke.after_backend");
}

#[test]
fn the_daemon_hears_a_new_grant_and_revokes_it_within_a_second_of_expiry() {
    let t = team(&team_roles());
    // `daemon --interval 30s`: after its first (empty) pass it sleeps; only the
    // NOTIFY of the grant's commit can wake it before 30 s.
    let _d = crate::sweeper::daemon(&t.cfg, &[(URL_ENV, &t.url)]);
    std::thread::sleep(Duration::from_millis(500));
    let id = grant(&t, "alice", "team-0", "2s");
    // No command runs now (each would sweep first): only the daemon can end it.
    wait_until("the revocation", Duration::from_secs(15), || {
        t.state(id) == "ended"
    });
    let expires: String = t
        .sql()
        .query_one("SELECT expires_at FROM requests WHERE id = $1", &[&id])
        .unwrap()
        .get(0);
    let expires: chrono::DateTime<chrono::Utc> = expires.parse().unwrap();
    let audit = t.audit();
    let row = |action: &str| {
        audit
            .iter()
            .find(|a| a.request == Some(id) && a.action == action)
            .unwrap()
            .clone()
    };
    assert_eq!(row("revoke.started").actor, "breakglass-sweeper");
    let lag = (row("revoke.confirmed").at - expires).num_milliseconds();
    eprintln!("PostgreSQL: revoked {lag} ms after its expiry");
    assert!(
        (0..1000).contains(&lag),
        "revoked {lag} ms after its expiry"
    );
    assert_consistent(&t);
}

#[test]
fn claims_held_by_dead_processes_are_taken_over_at_once() {
    // The issue's reproduction on PostgreSQL: the activation's alert delivery dies
    // holding the row's claim, then two sweeps die after the revoke intent of the
    // expired exec-plugin grant (the second holding the retry's claim, a lease of
    // a minute). One more sweep must finish both, not wait for the leases.
    let t = team("");
    let mut req = REQUEST_DBA.to_vec();
    req[4] = "payments-api-operator";
    t.ok(Some("alice"), &[&req[..], &["--ttl", "1s"]].concat());
    t.ok(Some("bob"), &["approve", "1"]);
    let env = |fp: &'static str| [(URL_ENV, t.url.as_str()), ("BREAKGLASS_FAILPOINT", fp)];
    let killed = |o: Output| assert_eq!(o.status.signal(), Some(9), "{}", stderr(&o));
    killed(bg_env(
        &t.cfg,
        Some("alice"),
        &["--json", "activate", "1"],
        &env("alert.after_claim"),
    ));
    assert_eq!(t.state(1), "active");
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..2 {
        killed(bg_env(
            &t.cfg,
            None,
            &["sweep"],
            &env("revoke.after_intent"),
        ));
    }
    assert_eq!(t.state(1), "revoking");
    let held: Vec<String> = t
        .sql()
        .query("SELECT key FROM claims", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(held.contains(&"request:1".to_string()), "{held:?}");
    assert!(held.iter().any(|k| k.starts_with("outbox:")), "{held:?}");

    let started = Instant::now();
    let rep = t.ok(None, &["sweep"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(rep["recovery"]["revokes_retried"][0], "REQ-1", "{rep}");
    assert!(
        rep["recovery"]["alerts_delivered"].as_u64().unwrap() >= 1,
        "{rep}"
    );
    assert_eq!(t.state(1), "ended");
    let plugin_leases = std::fs::read_dir(t.dir.join("plugin-state"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(plugin_leases, 0);
    let alerts = std::fs::read_to_string(t.dir.join("alerts.jsonl")).unwrap();
    assert!(alerts.contains("\"activation\""), "{alerts}");
    let undelivered: i64 = t
        .sql()
        .query_one(
            "SELECT count(*) FROM outbox WHERE delivered_at IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(undelivered, 0);
    assert_consistent(&t);
}

#[test]
fn a_sqlite_store_migrates_to_postgres_with_its_chain() {
    // A full walk on SQLite first.
    let (tmp, cfg) = demo_dir();
    let sq =
        |who: Option<&str>, args: &[&str]| ok_json(bg(&cfg, who, &[&["--json"], args].concat()));
    sq(Some("alice"), REQUEST_DBA);
    sq(Some("bob"), &["approve", "1"]);
    sq(Some("carol"), &["approve", "1"]);
    sq(Some("alice"), &["activate", "1"]);
    sq(Some("alice"), &["revoke", "1"]);
    // Refused (the role is locked); audited as policy.refused.
    let _ = bg(&cfg, Some("alice"), REQUEST_DBA);
    let before = sq(None, &["audit", "verify"]);
    let export_before = stdout(&bg(&cfg, None, &["audit", "export"]));
    let status_before = sq(None, &["status", "1"]);

    let server = support::pg::shared();
    let db = server.create_database_blocking("migrate");
    let url = server.admin_url(&db);
    let m = bg_env(
        &cfg,
        None,
        &[
            "--json",
            "store",
            "migrate",
            "--to",
            "postgres",
            "--url-env",
            URL_ENV,
        ],
        &[(URL_ENV, &url)],
    );
    let m = ok_json(m);
    assert_eq!(m["ok"], true, "{m}");
    assert_eq!(m["copied"]["requests"], 1);
    assert_eq!(m["verified_events"], before["verified_events"]);
    // A second copy into the same (now non-empty) store is refused.
    let again = bg_env(
        &cfg,
        None,
        &["store", "migrate", "--to", "postgres", "--url-env", URL_ENV],
        &[(URL_ENV, &url)],
    );
    assert_eq!(code(&again), 1);
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));

    // Point the config at the copy: same chain, same requests, and it goes on.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[store]\nkind = \"sqlite\"\npath = \"breakglass.sqlite\"\n",
        &format!("[store]\nkind = \"postgres\"\nurl_env = \"{URL_ENV}\"\ndata_dir = \".\"\n"),
    );
    std::fs::write(&cfg, text).unwrap();
    let pg = |who: Option<&str>, args: &[&str]| {
        ok_json(bg_env(
            &cfg,
            who,
            &[&["--json"], args].concat(),
            &[(URL_ENV, &url)],
        ))
    };
    let after = pg(None, &["audit", "verify"]);
    assert_eq!(after["ok"], true);
    assert_eq!(after["verified_events"], before["verified_events"]);
    let export_after = stdout(&bg_env(
        &cfg,
        None,
        &["audit", "export"],
        &[(URL_ENV, &url)],
    ));
    assert_eq!(export_after, export_before, "the chain is copied verbatim");
    let status_after = pg(None, &["status", "1"]);
    assert_eq!(
        status_after["request"]["state"],
        status_before["request"]["state"]
    );
    assert_eq!(
        status_after["request"]["approvals"],
        status_before["request"]["approvals"]
    );
    pg(
        Some("alice"),
        &[
            "review",
            "1",
            "--actions-taken",
            "x",
            "--systems-touched",
            "y",
            "--access-necessary",
            "yes",
            "--credentials-copied",
            "no",
        ],
    );
    pg(Some("dave"), &["certify", "1"]);
    let r = pg(Some("alice"), REQUEST_K8S);
    assert_eq!(r["request"]["id"], 2, "ids continue after the copied ones");
    assert_eq!(pg(None, &["audit", "verify"])["ok"], true);
    // Copied rows carry the migrating login: the actor = db_login check of
    // identity = "database" starts after them.
    let through: String = server
        .admin_blocking(&db)
        .query_one(
            "SELECT value FROM breakglass_meta WHERE key = 'imported_through'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        Some(through.parse::<u64>().unwrap()),
        before["verified_events"].as_u64()
    );
    let _ = tmp;
}

/// The tables created by the owner (the admin login), then one login per
/// person with the rights the README gives them, owning nothing. Returns an
/// admin connection to `db`.
fn people_logins(server: &support::pg::PgServer, db: &str, logins: &[&str]) -> postgres::Client {
    breakglass::store::PostgresStore::open(&server.admin_url(db)).unwrap();
    let mut c = server.admin_blocking(db);
    for login in logins {
        c.batch_execute(&format!(
            "CREATE ROLE {login} LOGIN PASSWORD 'pw';
             GRANT SELECT, INSERT, UPDATE ON requests, audit, outbox TO {login};
             GRANT SELECT, INSERT, UPDATE, DELETE ON claims TO {login};
             GRANT SELECT ON breakglass_meta TO {login};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {login};"
        ))
        .unwrap();
    }
    c
}

/// The top of a team-mode config: the store at $URL_ENV with
/// `identity = "database"`, the incident file of `one_incident_dir`, a demo backend.
fn database_identity_header() -> String {
    format!(
        r#"
[store]
kind = "postgres"
url_env = "{URL_ENV}"
identity = "database"
data_dir = "."

[[incident_sources]]
name = "f"
kind = "file"
path = "incidents.toml"

[backends.demo]
kind = "demo"
"#
    )
}

/// A temp dir with one open incident (INC-1) and the path of its config.
fn one_incident_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("incidents.toml"),
        "[[incidents]]\nid = \"INC-1\"\ntitle = \"t\"\nseverity = \"SEV1\"\nstatus = \"open\"\n",
    )
    .unwrap();
    let cfg = dir.path().join("breakglass.toml");
    (dir, cfg)
}

#[test]
fn database_identity_is_the_login_and_config_problems_name_their_line() {
    let server = support::pg::shared();
    let db = server.create_database_blocking("ident");
    let admin = server.admin_url(&db);
    let login = support::pg::unique("carol");
    let mut c = people_logins(server, &db, &[&login]);
    let (_dir, cfg) = one_incident_dir();
    let policy = format!(
        r#"{}
[[roles]]
name = "db-role"
backend = "demo"
default_ttl = "5m"
max_ttl = "10m"
conditions = ["outage"]
requesters = ["{login}", "postgres"]
approvers = ["postgres", "{login}"]
certifiers = ["postgres", "{login}"]
"#,
        database_identity_header()
    );
    std::fs::write(&cfg, &policy).unwrap();
    let as_login = server.url(&login, "pw", &db);
    let run = |url: &str, args: &[&str]| bg_env(&cfg, None, args, &[(URL_ENV, url)]);
    let r = ok_json(run(
        &as_login,
        &[
            "--json",
            "request",
            "--incident",
            "INC-1",
            "--role",
            "db-role",
            "--condition",
            "outage",
            "--reason",
            "r",
        ],
    ));
    assert_eq!(r["request"]["requester"], login.as_str());
    // The same login cannot approve its own request; another login can.
    assert_eq!(code(&run(&as_login, &["approve", "1"])), 3);
    let a = ok_json(run(&admin, &["--json", "approve", "1"]));
    assert_eq!(a["request"]["approvals"][0]["by"], "postgres");
    // --as stays demo-only.
    let o = bg_env(&cfg, Some("postgres"), &["roles"], &[(URL_ENV, &as_login)]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    // The server recorded which login wrote each event.
    let logins: Vec<(String, String)> = c
        .query(
            "SELECT actor, db_login FROM audit WHERE action <> 'policy.refused' ORDER BY seq",
            &[],
        )
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        logins,
        vec![
            (login.clone(), login.clone()),
            ("postgres".to_string(), "postgres".to_string())
        ]
    );

    // Config problems with file:line.
    let bad = policy
        .replace(
            &format!("url_env = \"{URL_ENV}\""),
            "url = \"postgresql://u:secret@db/x\"",
        )
        .replace("identity = \"database\"", "identity = \"ldap\"");
    std::fs::write(&cfg, bad).unwrap();
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(
        e.contains("breakglass.toml:4: [store] the connection string"),
        "{e}"
    );
    assert!(
        e.contains("breakglass.toml:5: identity = \"ldap\" is not known"),
        "{e}"
    );
    assert!(!e.contains("secret"), "{e}");
    let sqlite_db = policy.replace("kind = \"postgres\"", "kind = \"sqlite\"");
    std::fs::write(&cfg, sqlite_db).unwrap();
    let e = stderr(&bg(&cfg, None, &["config", "check"]));
    assert!(
        e.contains("breakglass.toml:4: [store] url_env is for kind = \"postgres\""),
        "{e}"
    );
    assert!(
        e.contains("breakglass.toml:5: identity = \"database\" needs kind = \"postgres\""),
        "{e}"
    );
}

/// A person's own login may write the tables, so it can edit a request row or
/// append an event under another name. With `identity = "database"` neither
/// grants anything, and `audit verify` names the forged event.
#[test]
fn hand_edited_rows_and_forged_events_grant_nothing_with_database_identity() {
    let server = support::pg::shared();
    let db = server.create_database_blocking("forge");
    let alice = support::pg::unique("alice");
    let bob = support::pg::unique("bob");
    people_logins(server, &db, &[&alice, &bob]);
    let (_dir, cfg) = one_incident_dir();
    let role = |name: &str| {
        format!(
            r#"
[[roles]]
name = "{name}"
backend = "demo"
default_ttl = "5m"
max_ttl = "10m"
conditions = ["outage"]
requesters = ["{alice}"]
approvers = ["{bob}"]
certifiers = ["{bob}"]
"#
        )
    };
    std::fs::write(
        &cfg,
        format!(
            "{}{}{}",
            database_identity_header(),
            role("role-a"),
            role("role-b")
        ),
    )
    .unwrap();
    let (as_alice, as_bob) = (server.url(&alice, "pw", &db), server.url(&bob, "pw", &db));
    let run = |url: &str, args: &[&str]| bg_env(&cfg, None, args, &[(URL_ENV, url)]);
    let request = |role: &str| {
        ok_json(run(
            &as_alice,
            &[
                "--json",
                "request",
                "--incident",
                "INC-1",
                "--role",
                role,
                "--condition",
                "outage",
                "--reason",
                "r",
            ],
        ))["request"]["id"]
            .as_i64()
            .unwrap()
    };

    // The real thing still works: bob approves, alice activates.
    let legit = request("role-b");
    ok_json(run(&as_bob, &["--json", "approve", &legit.to_string()]));
    ok_json(run(&as_alice, &["--json", "activate", &legit.to_string()]));

    // alice approves her own request by editing the row with her own login.
    let forged = request("role-a");
    let mut mine = postgres::Client::connect(&as_alice, postgres::NoTls).unwrap();
    let data: String = mine
        .query_one("SELECT data FROM requests WHERE id = $1", &[&forged])
        .unwrap()
        .get(0);
    let mut req: breakglass::domain::Request = serde_json::from_str(&data).unwrap();
    req.approvals.push(breakglass::domain::Approval {
        by: bob.clone(),
        at: chrono::Utc::now(),
        comment: None,
        signature: None,
    });
    req.state = breakglass::domain::State::Approved;
    mine.execute(
        "UPDATE requests SET state = 'approved', data = $2 WHERE id = $1",
        &[&forged, &serde_json::to_string(&req).unwrap()],
    )
    .unwrap();
    let o = run(&as_alice, &["--json", "activate", &forged.to_string()]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "the approval by {bob} has no request.approved event written by database login {bob}"
        )),
        "{}",
        stderr(&o)
    );
    // Nothing was granted; the chain is whole, but audit verify names the row.
    let st = ok_json(run(&as_alice, &["--json", "status", &forged.to_string()]));
    assert_eq!(st["request"]["state"], "approved", "{st}");
    let v = run(&as_alice, &["--json", "audit", "verify"]);
    assert_eq!(code(&v), 6, "{}", stdout(&v));
    assert!(
        json(&v)["broken"]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "REQ-{forged}: the approval by {bob} has no request.approved event"
            )),
        "{}",
        stdout(&v)
    );

    // She appends a well-chained request.approved event under bob's name.
    let (seq, prev): (i64, String) = {
        let r = mine
            .query_one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    let ev = breakglass::audit::seal(
        breakglass::audit::AuditRecord {
            seq: seq + 1,
            at: breakglass::domain::time::ts(chrono::Utc::now()),
            actor: bob.clone(),
            request_id: Some(forged),
            action: "request.approved".into(),
            from_state: Some("pending".into()),
            to_state: Some("approved".into()),
            detail: breakglass::audit::canonical_detail(&serde_json::json!({})),
            prev_hash: String::new(),
            hash: String::new(),
        },
        &prev,
    );
    mine.execute(
        "INSERT INTO audit (seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &ev.seq, &ev.at, &ev.actor, &ev.request_id, &ev.action, &ev.from_state,
            &ev.to_state, &ev.detail, &ev.prev_hash, &ev.hash,
        ],
    )
    .unwrap();
    let o = run(&as_alice, &["--json", "activate", &forged.to_string()]);
    assert_eq!(
        code(&o),
        3,
        "a forged event is not an approval: {}",
        stderr(&o)
    );
    let v = run(&as_bob, &["audit", "verify"]);
    assert_eq!(code(&v), 6, "{}{}", stdout(&v), stderr(&v));
    let all = format!("{}{}", stdout(&v), stderr(&v));
    assert!(
        all.contains(&format!(
            "event {} names {bob} as its actor but was written by database login {alice}",
            ev.seq
        )),
        "{all}"
    );
}
