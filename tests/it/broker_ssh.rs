//! Team mode across machines: people reach the broker from their own machine
//! through OpenSSH socket forwarding (`ssh -N -L mine.sock:broker.sock
//! person@host`), each with their own key. The CLI runs as root here, on the
//! "laptop" end with a client config naming the *local* forwarded socket; the
//! broker must still see each person, because what connects to its socket is
//! the sshd session sshd authenticated them into.

use crate::support::broker_site::*;
use crate::support::sshd::{client_key, Forward, Sshd};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

/// One person's machine: their tunnel and a client config naming its local end.
struct Laptop {
    fwd: Option<Forward>,
    client: PathBuf,
    home: PathBuf,
}

impl Laptop {
    fn open(site: &Site, sshd: &Sshd, who: &str, key: &Path, dir: &Path) -> Laptop {
        let home = dir.join(format!("{who}-home"));
        std::fs::create_dir(&home).unwrap();
        let local = dir.join(format!("{who}.sock"));
        let fwd = sshd.forward(who, key, &local, &site.socket);
        let client = dir.join(format!("{who}-client.toml"));
        std::fs::write(
            &client,
            format!("[broker]\nsocket = \"{}\"\n", local.display()),
        )
        .unwrap();
        Laptop {
            fwd: Some(fwd),
            client,
            home,
        }
    }

    /// Ends the tunnel (the `ssh` client exits).
    fn close(&mut self) {
        self.fwd = None;
    }

    /// The CLI as root on this laptop: nothing of root's (HOME, SSH agent or
    /// key, config) to lean on, only the client config.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(&self.client)
            .args(args)
            .env_clear()
            .env("PATH", accounts::SYSTEM_PATH)
            .env("HOME", &self.home)
            .env("LANG", "C.UTF-8")
            .output()
            .unwrap()
    }
}

/// Everything that explains a failure: the tunnels, sshd and the broker.
fn logs(site: &Site, sshd: &Sshd, laptops: &[&Laptop]) -> String {
    let mut s = String::new();
    for l in laptops {
        s.push_str(&format!(
            "--- ssh {} ---\n{}\n",
            l.client.display(),
            l.fwd.as_ref().map(Forward::log).unwrap_or_default()
        ));
    }
    format!(
        "{s}--- sshd ---\n{}\n--- broker ---\n{}",
        sshd.log(),
        site.broker_log()
    )
}

fn must(o: Output, site: &Site, sshd: &Sshd, laptops: &[&Laptop]) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}\n{}",
        o.status.code(),
        stdout(&o),
        stderr(&o),
        logs(site, sshd, laptops)
    );
    stdout(&o)
}

#[test]
fn two_people_walk_the_lifecycle_through_their_own_ssh_tunnels() {
    let site = Site::new();
    let _broker = site.start_broker(&[]);
    let (alice, bob) = (&site.alice, &site.bob);
    let tmp = tempfile::tempdir().unwrap();
    let ka = client_key(tmp.path(), "alice_key");
    let kb = client_key(tmp.path(), "bob_key");
    // The server's defaults allow socket forwarding (AllowStreamLocalForwarding
    // yes) and say AllowTcpForwarding local, which OpenSSH also requires.
    let sshd = Sshd::start(&[(&alice.name, &ka), (&bob.name, &kb)]);
    let mut a = Laptop::open(&site, &sshd, &alice.name, &ka, tmp.path());
    let b = Laptop::open(&site, &sshd, &bob.name, &kb, tmp.path());
    let all = [&a, &b];
    let must = |o| must(o, &site, &sshd, &all);

    let mut req = vec!["--json"];
    req.extend_from_slice(REQUEST_K8S);
    let id = request_id(&must(a.run(&req)));

    // Her own tunnel is hers: approving her own request is refused, exit 3.
    let own = a.run(&["approve", &id]);
    assert_eq!(
        own.status.code(),
        Some(3),
        "stdout: {}\nstderr: {}\n{}",
        stdout(&own),
        stderr(&own),
        logs(&site, &sshd, &all)
    );
    must(b.run(&["approve", &id]));
    let v: serde_json::Value =
        serde_json::from_str(&must(a.run(&["--json", "activate", &id]))).unwrap();
    assert_eq!(v["request"]["state"], "active", "{v}");
    assert!(
        v["credential"].as_object().is_some_and(|c| !c.is_empty()),
        "{v}"
    );
    must(a.run(&["revoke", &id, "--reason", "done through the tunnel"]));
    let st: serde_json::Value =
        serde_json::from_str(&must(b.run(&["--json", "status", &id]))).unwrap();
    assert_eq!(st["request"]["state"], "ended", "{st}");

    // The log names each step's person as sshd authenticated them.
    let export = must(b.run(&["audit", "export"]));
    let actor_of = |action: &str| actors_of(&export, action);
    let context = || format!("{export}\n{}", logs(&site, &sshd, &all));
    assert_eq!(
        actor_of("request.created"),
        std::slice::from_ref(&alice.name),
        "{}",
        context()
    );
    assert_eq!(
        actor_of("policy.refused"),
        std::slice::from_ref(&alice.name),
        "{}",
        context()
    );
    assert_eq!(
        actor_of("request.approved"),
        std::slice::from_ref(&bob.name),
        "{}",
        context()
    );
    assert_eq!(
        actor_of("revoke.started"),
        std::slice::from_ref(&alice.name),
        "{}",
        context()
    );
    // Nothing was done as the account that ran the CLI (root), nor as the
    // broker's own account beyond what it does by itself.
    for line in export.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_ne!(e["actor"], "root", "{e}\n{}", context());
    }
    must(b.run(&["audit", "verify"]));

    // sshd authenticated each of them with their own key.
    let log = sshd.log();
    for who in [alice, bob] {
        assert!(
            log.contains(&format!("Accepted publickey for {}", who.name)),
            "{log}"
        );
    }

    // Without her tunnel, her laptop reaches nothing.
    a.close();
    let o = a.run(&["status", &id]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("cannot reach the broker"),
        "{}",
        stderr(&o)
    );
}
