//! The broker on one host with real OS accounts, set up as docs/src/broker-setup.md
//! says: a service account runs `breakglass broker` and alone owns the store, the
//! checkpoint key and the backend's state; four people, each their own account,
//! run the CLI (through `runuser`) with a client config that names only the
//! socket. The kernel tells the broker who they are.

use crate::support::accounts::{Account, RUN_DIR};
use crate::support::daemon::{spawn_owned, Owned};
use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

pub struct Site {
    pub svc: Account,
    pub alice: Account,
    pub bob: Account,
    pub carol: Account,
    pub dave: Account,
    /// The broker's own directory: config (root's), store, key, backend state.
    pub state: PathBuf,
    pub config: PathBuf,
    /// The people's side: the socket and the client config.
    pub public: PathBuf,
    pub client: PathBuf,
    pub socket: PathBuf,
    _dirs: Vec<tempfile::TempDir>,
}

fn chown(owner: &str, path: &Path) {
    let o = Command::new("chown")
        .args(["-R", owner])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
}

impl Site {
    pub fn new() -> Site {
        let svc = Account::service("brk");
        let (alice, bob, carol, dave) = (
            Account::person("al"),
            Account::person("bo"),
            Account::person("ca"),
            Account::person("da"),
        );
        let base = std::path::Path::new(RUN_DIR);
        crate::support::accounts::run_dir();
        let state_dir = tempfile::Builder::new()
            .prefix("broker-")
            .tempdir_in(base)
            .unwrap();
        let public_dir = tempfile::Builder::new()
            .prefix("socket-")
            .tempdir_in(base)
            .unwrap();
        let state = state_dir.path().to_path_buf();
        let public = public_dir.path().to_path_buf();
        let config = breakglass::demo::prepare(&state).unwrap();
        // The demo's policy with the people's account names, and no personas.
        let mut text = std::fs::read_to_string(&config).unwrap();
        text = text.replace(
            "[demo]\npersonas = [\"alice\", \"bob\", \"carol\", \"dave\"]\n",
            "",
        );
        for (persona, acct) in [
            ("alice", &alice),
            ("bob", &bob),
            ("carol", &carol),
            ("dave", &dave),
        ] {
            text = text.replace(&format!("\"{persona}\""), &format!("\"{}\"", acct.name));
        }
        text.push_str("\n[audit]\ncheckpoint_key_file = \"checkpoint.key\"\n");
        let socket = public.join("broker.sock");
        text.push_str(&format!("\n[broker]\nsocket = \"{}\"\n", socket.display()));
        std::fs::write(&config, text).unwrap();
        let key = Command::new(BIN)
            .args(["audit", "keygen", "--out"])
            .arg(state.join("checkpoint.key"))
            .output()
            .unwrap();
        assert!(key.status.success(), "{key:?}");
        // The broker's account owns its directory; the policy stays root's.
        chown(&svc.name, &state);
        chown("root", &config);
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        // The socket's directory: the broker writes there, people traverse it.
        chown(&svc.name, &public);
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o755)).unwrap();
        let client = base.join(format!(
            "client-{}.toml",
            public.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(
            &client,
            format!("[broker]\nsocket = \"{}\"\n", socket.display()),
        )
        .unwrap();
        std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o644)).unwrap();
        Site {
            svc,
            alice,
            bob,
            carol,
            dave,
            state,
            config,
            public,
            client,
            socket,
            _dirs: vec![state_dir, public_dir],
        }
    }

    /// Starts the broker as the service account; it is stopped when dropped.
    pub fn start_broker(&self, env: &[(&str, &str)]) -> Owned {
        let mut cmd = self.svc.command(BIN);
        cmd.arg("--config").arg(&self.config).arg("broker");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = std::fs::File::create(self.public.with_extension("log")).unwrap();
        cmd.stdout(log.try_clone().unwrap()).stderr(log);
        let owned = spawn_owned(
            cmd,
            "broker".into(),
            nix::sys::signal::Signal::SIGKILL,
            Some(nix::sys::signal::Signal::SIGTERM),
            |_| {},
        )
        .unwrap();
        let t = Instant::now();
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20) && !owned.has_exited(),
                "the broker did not come up: {}",
                self.broker_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        owned
    }

    pub fn broker_log(&self) -> String {
        std::fs::read_to_string(self.public.with_extension("log")).unwrap_or_default()
    }

    /// `breakglass --config CLIENT args...` as `who`.
    pub fn run(&self, who: &Account, args: &[&str]) -> Output {
        let mut c = who.command(BIN);
        c.arg("--config").arg(&self.client).args(args);
        c.output().unwrap()
    }
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn request_id(out: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    format!("REQ-{}", v["request"]["id"].as_i64().unwrap())
}

#[test]
fn four_people_walk_the_lifecycle_through_the_broker_and_hold_nothing() {
    let site = Site::new();
    let _broker = site.start_broker(&[]);
    let (alice, bob, dave) = (&site.alice, &site.bob, &site.dave);

    let mut req = vec!["--json"];
    req.extend_from_slice(REQUEST_K8S);
    let id = request_id(&ok(site.run(alice, &req)));
    // Her own request is refused to her as approver, exit 3, through the socket.
    let own = site.run(alice, &["approve", &id]);
    assert_eq!(own.status.code(), Some(3), "{}", stderr(&own));
    ok(site.run(bob, &["approve", &id]));
    let cred = ok(site.run(alice, &["--json", "activate", &id]));
    let v: serde_json::Value = serde_json::from_str(&cred).unwrap();
    assert_eq!(v["request"]["state"], "active", "{v}");
    assert!(
        v["credential"].as_object().is_some_and(|c| !c.is_empty()),
        "{v}"
    );
    ok(site.run(bob, &["revoke", &id, "--reason", "incident over"]));
    ok(site.run(
        alice,
        &[
            "review",
            &id,
            "--actions-taken",
            "restarted the stuck deploy",
            "--systems-touched",
            "prod-eu-1",
            "--access-necessary",
            "yes",
            "--credentials-copied",
            "no",
        ],
    ));
    let mine = site.run(alice, &["certify", &id]);
    assert_eq!(mine.status.code(), Some(3), "{}", stderr(&mine));
    ok(site.run(dave, &["certify", &id, "--comment", "fine"]));

    // The log names each step's person as the kernel said, and verifies.
    ok(site.run(dave, &["audit", "verify"]));
    let export = ok(site.run(dave, &["audit", "export"]));
    let events: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actor_of = |action: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["actor"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(actor_of("request.created"), [alice.name.clone()]);
    assert_eq!(actor_of("request.approved"), [bob.name.clone()]);
    assert_eq!(actor_of("revoke.started"), [bob.name.clone()]);
    assert_eq!(actor_of("review.certified"), [dave.name.clone()]);
    assert_eq!(
        actor_of("policy.refused"),
        [alice.name.clone(), alice.name.clone()]
    );

    // What only the broker holds is closed to each person: EACCES, not a
    // missing file.
    for who in [alice, bob, dave] {
        for secret in [
            site.state.join("breakglass.sqlite"),
            site.state.join("checkpoint.key"),
            site.state.join("alerts.jsonl"),
        ] {
            assert!(secret.exists(), "{}", secret.display());
            let o = who
                .command("/usr/bin/python3")
                .args(["-c", "import sys; open(sys.argv[1], 'rb')"])
                .arg(&secret)
                .output()
                .unwrap();
            assert!(
                stderr(&o).contains("PermissionError"),
                "{} opened {}: {}",
                who.name,
                secret.display(),
                stderr(&o)
            );
        }
        // The broker's config is readable (it holds no secret) but theirs to
        // change it is not: using it sends them to the broker anyway.
        let o = who
            .command("/usr/bin/python3")
            .args(["-c", "import sys; open(sys.argv[1], 'a')"])
            .arg(&site.config)
            .output()
            .unwrap();
        assert!(stderr(&o).contains("PermissionError"), "{}", stderr(&o));
    }
}

#[test]
fn a_person_cannot_speak_for_another_through_the_socket() {
    let site = Site::new();
    let _broker = site.start_broker(&[]);
    let mut req = vec!["--json"];
    req.extend_from_slice(REQUEST_K8S);
    let id = request_id(&ok(site.run(&site.alice, &req)));
    let num: i64 = id.trim_start_matches("REQ-").parse().unwrap();
    // alice's own program writes the protocol by hand, naming bob every way it
    // can: as a persona (demo only), and in fields the protocol does not have.
    let script = r#"
import json, socket, struct, sys
def call(msg):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    b = json.dumps(msg).encode(); s.sendall(struct.pack('>I', len(b)) + b)
    n = struct.unpack('>I', s.recv(4, socket.MSG_WAITALL))[0]
    print(json.dumps(json.loads(s.recv(n, socket.MSG_WAITALL))))
v = "breakglass.broker/v1"
approve = {"op": "decide", "id": int(sys.argv[3]), "decision": {"decision": "approve", "comment": None, "signature": None}}
call({"v": v, "as_persona": sys.argv[2], "call": approve})
call({"v": v, "who": sys.argv[2], "call": approve})
call({"v": v, "call": dict(approve, who=sys.argv[2])})
call({"v": v, "call": {"op": "hello"}})
"#;
    let o = site
        .alice
        .command("/usr/bin/python3")
        .args(["-c", script])
        .arg(&site.socket)
        .arg(&site.bob.name)
        .arg(num.to_string())
        .output()
        .unwrap();
    let replies: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), 4, "{}", stderr(&o));
    assert_eq!(replies[0]["reply"], "error");
    assert_eq!(replies[0]["kind"], "identity", "{}", replies[0]);
    assert_eq!(replies[1]["kind"], "protocol", "{}", replies[1]);
    assert_eq!(replies[2]["kind"], "protocol", "{}", replies[2]);
    assert_eq!(
        replies[3]["who"]["Ok"],
        site.alice.name.as_str(),
        "{}",
        replies[3]
    );
    // Still pending: nothing counted as bob's.
    let st = ok(site.run(&site.bob, &["--json", "status", &id]));
    assert!(st.contains("\"pending\""), "{st}");
}

#[test]
fn the_broker_refuses_to_start_while_a_secret_or_the_policy_is_open() {
    let site = Site::new();
    let key = site.state.join("checkpoint.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = {
        let mut c = site.svc.command(BIN);
        c.arg("--config").arg(&site.config).arg("broker");
        c.output().unwrap()
    };
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );
    // Closed, but someone else's: the broker would not hold it alone.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    chown(&site.alice.name, &key);
    let o = {
        let mut c = site.svc.command(BIN);
        c.arg("--config").arg(&site.config).arg("broker");
        c.output().unwrap()
    };
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("will not start"), "{err}");
    assert!(
        err.contains(&format!("chown {} {}", site.svc.name, key.display())),
        "{err}"
    );
    chown(&site.svc.name, &key);
    // A policy a person could rewrite is as bad as a leaked key.
    chown(&site.alice.name, &site.config);
    let o = {
        let mut c = site.svc.command(BIN);
        c.arg("--config").arg(&site.config).arg("broker");
        c.output().unwrap()
    };
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("chown root"), "{}", stderr(&o));
    assert!(!site.socket.exists());
}

#[test]
fn a_broker_that_is_down_is_named_and_people_get_exit_1() {
    let site = Site::new();
    let o = site.run(&site.alice, &["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "cannot reach the broker at {}",
            site.socket.display()
        )),
        "{err}"
    );
    assert!(err.contains("is the broker running?"), "{err}");
}

/// Stops a broker and waits until it is gone (it removes its socket last).
fn stop(broker: Owned) {
    drop(broker.stop);
    broker.thread.join().unwrap();
}

/// Waits for `id` to reach `state` as `who` sees it through the broker.
fn wait_state(site: &Site, who: &Account, id: &str, state: &str) {
    let t = Instant::now();
    loop {
        let o = site.run(who, &["--json", "status", id]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap_or_default();
        if v["request"]["state"] == state {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{id} never became {state}: {}{}\nbroker: {}",
            stdout(&o),
            stderr(&o),
            site.broker_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The existing crash guarantees, with the broker as the process that dies:
/// SIGKILLed between grant intent and grant, and between revoke start and
/// confirmation, a restarted broker ends the access on its first sweep.
#[test]
fn a_broker_killed_mid_grant_or_mid_revoke_leaves_nothing_granted_after_restart() {
    let site = Site::new();
    let mut req = vec!["--json"];
    req.extend_from_slice(REQUEST_K8S);

    // Mid-grant.
    let broker = site.start_broker(&[("BREAKGLASS_FAILPOINT", "grant.after_intent")]);
    let id = request_id(&ok(site.run(&site.alice, &req)));
    ok(site.run(&site.bob, &["approve", &id]));
    let o = site.run(&site.alice, &["--json", "activate", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("closed the connection"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("credential"), "{}", stdout(&o));
    let t = Instant::now();
    while !broker.has_exited() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(broker);
    let broker = site.start_broker(&[]);
    wait_state(&site, &site.alice, &id, "failed");
    assert!(
        demo_leases(&site.state).is_empty(),
        "{:?}",
        demo_leases(&site.state)
    );
    stop(broker);
    let broker = site.start_broker(&[("BREAKGLASS_FAILPOINT", "revoke.after_intent")]);

    // Mid-revoke (this broker dies when it starts revoking).
    let id = request_id(&ok(site.run(&site.alice, &req)));
    ok(site.run(&site.bob, &["approve", &id]));
    ok(site.run(&site.alice, &["--json", "activate", &id]));
    assert_eq!(demo_leases(&site.state).len(), 1);
    let o = site.run(&site.alice, &["revoke", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let t = Instant::now();
    while !broker.has_exited() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(broker);
    let _broker = site.start_broker(&[]);
    wait_state(&site, &site.alice, &id, "ended");
    assert!(
        demo_leases(&site.state).is_empty(),
        "{:?}",
        demo_leases(&site.state)
    );
    ok(site.run(&site.dave, &["audit", "verify"]));
}
