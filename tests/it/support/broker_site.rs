//! A broker site on this host with real OS accounts, set up as
//! docs/src/broker-setup.md says: a service account runs `breakglass broker` and
//! alone owns the store, the checkpoint key and the backend's state; four people,
//! each their own account, run the CLI (through `runuser`) with a client config
//! that names only the socket.
#![allow(dead_code)]

use super::{stderr, stdout};
use crate::support::accounts::{Account, RUN_DIR};
use crate::support::daemon::{spawn_owned, Owned};
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

pub fn chown(owner: &str, path: &Path) {
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
        let config = super::prepare_demo(&state);
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

pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

pub fn request_id(out: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    format!("REQ-{}", v["request"]["id"].as_i64().unwrap())
}

/// Stops a broker and waits until it is gone (it removes its socket last).
pub fn stop(broker: Owned) {
    drop(broker.stop);
    broker.thread.join().unwrap();
}

/// Waits for `id` to reach `state` as `who` sees it through the broker.
pub fn wait_state(site: &Site, who: &Account, id: &str, state: &str) {
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

/// The actors of the events with `action` in an `audit export`, in order.
pub fn actors_of(export: &str, action: &str) -> Vec<String> {
    export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["action"] == action)
        .map(|e| e["actor"].as_str().unwrap_or("?").to_string())
        .collect()
}
