//! The identity path the broker relies on: a Unix socket server learns who is
//! calling from SO_PEERCRED, locally (the caller's own process) and through
//! OpenSSH socket forwarding (`ssh -L local.sock:broker.sock person@host`),
//! where the connection to the server comes from the sshd session of the
//! person sshd authenticated. Real accounts (useradd), a real sshd, a real
//! `ssh` client; the client runs as root, so a reply naming the person can
//! only come from the server side of the tunnel.

use crate::support::accounts::Account;
use crate::support::sshd::{client_key, Sshd};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A server answering each connection with `uid name command` of its peer, as
/// SO_PEERCRED and /proc tell them.
struct WhoServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WhoServer {
    /// Listens on `path` with mode 0666 (its directory must let callers in).
    fn start(path: &Path) -> WhoServer {
        let listener = UnixListener::bind(path).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => answer(s),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        WhoServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for WhoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(mut s: UnixStream) {
    s.set_nonblocking(false).unwrap();
    let cred = nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials)
        .expect("SO_PEERCRED");
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(cred.uid()))
        .ok()
        .flatten()
        .map_or_else(|| "?".to_string(), |u| u.name);
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", cred.pid()))
        .map_or_else(|_| "?".to_string(), |c| c.trim().to_string());
    let _ = writeln!(s, "{} {name} {comm}", cred.uid());
}

#[derive(Debug, PartialEq)]
struct Who {
    uid: u32,
    name: String,
    comm: String,
}

/// `None` when the reply is not `uid name command` (e.g. empty: the tunnel
/// closed without reaching the server).
fn parse(reply: &str) -> Option<Who> {
    let f: Vec<&str> = reply.split_whitespace().collect();
    match f[..] {
        [uid, name, comm] => Some(Who {
            uid: uid.parse().ok()?,
            name: name.into(),
            comm: comm.into(),
        }),
        _ => None,
    }
}

/// Connects to `path` as this (root) process and reads the reply.
fn ask(path: &Path) -> Option<Who> {
    let mut s =
        UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    parse(&reply)
}

/// Connects to `path` as `account` (runuser; the system python3, which every
/// account can run) and reads the reply.
fn ask_as(account: &Account, path: &Path) -> Who {
    const CLIENT: &str = "import socket, sys\n\
        s = socket.socket(socket.AF_UNIX)\n\
        s.connect(sys.argv[1])\n\
        data = b''\n\
        while True:\n    b = s.recv(256)\n    if not b: break\n    data += b\n\
        sys.stdout.write(data.decode())\n";
    let o = account
        .command("/usr/bin/python3")
        .args(["-c", CLIENT])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "connect as {}: {}",
        account.name,
        String::from_utf8_lossy(&o.stderr)
    );
    let reply = String::from_utf8_lossy(&o.stdout);
    parse(&reply).unwrap_or_else(|| panic!("reply: {reply:?}"))
}

/// A temp dir with the server's socket in `srv/` that `accounts` can reach.
fn server_dir(accounts: &[&Account]) -> (tempfile::TempDir, WhoServer) {
    let tmp = tempfile::tempdir().unwrap();
    let srv = tmp.path().join("srv");
    std::fs::create_dir(&srv).unwrap();
    std::fs::set_permissions(&srv, std::fs::Permissions::from_mode(0o755)).unwrap();
    for a in accounts {
        // Whatever mode the temp dir has (tempfile's default follows the
        // umask; a private one is 0700), let them through.
        a.grant_traverse(&srv);
    }
    let server = WhoServer::start(&srv.join("who.sock"));
    (tmp, server)
}

#[test]
fn forwarded_sockets_carry_each_persons_identity() {
    let alice = Account::person("alice");
    let bob = Account::person("bob");
    assert!(alice.uid != 0 && bob.uid != 0 && alice.uid != bob.uid);
    let (tmp, server) = server_dir(&[&alice, &bob]);
    let keys = tmp.path();
    let ka = client_key(keys, "alice_key");
    let kb = client_key(keys, "bob_key");
    let sshd = Sshd::start(&[(&alice.name, &ka), (&bob.name, &kb)]);

    let a_sock = tmp.path().join("alice.sock");
    let b_sock = tmp.path().join("bob.sock");
    let fa = sshd.forward(&alice.name, &ka, &a_sock, &server.path);
    let fb = sshd.forward(&bob.name, &kb, &b_sock, &server.path);

    // Twice each, interleaved: every connection is judged on its own.
    for _ in 0..2 {
        for (who, sock, fwd) in [(&alice, &a_sock, &fa), (&bob, &b_sock, &fb)] {
            let got = ask(sock);
            assert_eq!(
                got,
                Some(Who {
                    uid: who.uid,
                    name: who.name.clone(),
                    // The person's sshd session connected, not the root client.
                    comm: "sshd".into(),
                }),
                "through {}'s forwarded socket\n--- ssh log ---\n{}\n--- sshd log ---\n{}",
                who.name,
                fwd.log(),
                sshd.log()
            );
        }
    }
    // The client side is root, as a direct connection from here shows.
    assert_eq!(ask(&server.path).unwrap().uid, 0);
    let log = sshd.log();
    for who in [&alice, &bob] {
        assert!(
            log.contains(&format!("Accepted publickey for {}", who.name)),
            "{log}"
        );
    }
}

#[test]
fn direct_connections_name_the_account() {
    let alice = Account::person("alice");
    let svc = Account::service("broker");
    let (_tmp, server) = server_dir(&[&alice, &svc]);
    for who in [&alice, &svc] {
        let got = ask_as(who, &server.path);
        assert_eq!((got.uid, got.name.as_str()), (who.uid, who.name.as_str()));
        assert_eq!(got.comm, "python3");
    }
    let me = ask(&server.path).unwrap();
    assert_eq!((me.uid, me.name.as_str()), (0, "root"));
}

#[test]
fn a_persons_key_does_not_log_in_as_another() {
    let alice = Account::person("alice");
    let bob = Account::person("bob");
    let (tmp, server) = server_dir(&[&alice, &bob]);
    let ka = client_key(tmp.path(), "alice_key");
    let kb = client_key(tmp.path(), "bob_key");
    let sshd = Sshd::start(&[(&alice.name, &ka), (&bob.name, &kb)]);
    let local = tmp.path().join("stolen.sock");
    let err = match sshd.try_forward(&alice.name, &kb, &local, &server.path, &[]) {
        Ok(f) => panic!(
            "bob's key logged in as {}\n{}\n{}",
            alice.name,
            f.log(),
            sshd.log()
        ),
        Err(e) => e,
    };
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!local.exists(), "no local socket without a login");
    // The real owner of the key still gets in.
    let f = sshd.forward(&bob.name, &kb, &local, &server.path);
    let got = ask(&f.local);
    assert_eq!(
        got.as_ref().map(|w| w.uid),
        Some(bob.uid),
        "{got:?}\n{}\n{}",
        f.log(),
        sshd.log()
    );
}

#[test]
fn account_runs_with_a_clean_environment() {
    let alice = Account::person("alice");
    let o = alice.command("/usr/bin/env").output().unwrap();
    let env = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Only what `command` sets: nothing of the test's environment.
    let mut names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["HOME", "LANG", "LOGNAME", "PATH", "SHELL", "USER"],
        "{env}"
    );
    assert!(
        env.contains(&format!("HOME={}", alice.home.display())),
        "{env}"
    );
    assert!(env.contains(&format!("USER={}", alice.name)), "{env}");
    let id = alice.command("/usr/bin/id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&id.stdout).trim(),
        alice.uid.to_string()
    );
}

/// Extra config lines: a `Match` block goes last and applies to its user only.
#[test]
fn extra_config_can_match_a_user() {
    let alice = Account::person("alice");
    let bob = Account::person("bob");
    let (tmp, server) = server_dir(&[&alice, &bob]);
    let ka = client_key(tmp.path(), "alice_key");
    let kb = client_key(tmp.path(), "bob_key");
    let sshd = Sshd::builder()
        .user(&alice.name, &ka)
        .user(&bob.name, &kb)
        .extra(&format!("Match User {}\n  DisableForwarding yes", bob.name))
        .start();
    let fa = sshd.forward(&alice.name, &ka, &tmp.path().join("a.sock"), &server.path);
    let fb = sshd.forward(&bob.name, &kb, &tmp.path().join("b.sock"), &server.path);
    assert_eq!(
        ask(&fa.local).map(|w| w.uid),
        Some(alice.uid),
        "{}",
        sshd.log()
    );
    assert_eq!(ask(&fb.local), None, "{}", sshd.log());
}

/// A pitfall for the broker's host, pinned here: OpenSSH gates socket
/// forwarding (`direct-streamlocal`) on AllowTcpForwarding as well as on
/// AllowStreamLocalForwarding (and PermitOpen restrictions deny it too), so
/// `AllowTcpForwarding no` breaks `ssh -L local.sock:broker.sock`. The harness
/// therefore says `AllowTcpForwarding local`. Extra lines before the defaults win.
#[test]
fn tcp_forwarding_off_denies_socket_forwarding_too() {
    let alice = Account::person("alice");
    let (tmp, server) = server_dir(&[&alice]);
    let ka = client_key(tmp.path(), "alice_key");
    let sshd = Sshd::builder()
        .user(&alice.name, &ka)
        .extra("AllowTcpForwarding no")
        .start();
    let fa = sshd.forward(&alice.name, &ka, &tmp.path().join("a.sock"), &server.path);
    assert_eq!(ask(&fa.local), None);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sshd.log().contains("but the request was denied") {
        assert!(std::time::Instant::now() < deadline, "{}", sshd.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private (0700, root's) directory opened to one account, not to everyone.
#[test]
fn grants_open_a_private_dir_to_one_account_only() {
    let alice = Account::person("alice");
    let bob = Account::person("bob");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let inner = tmp.path().join("conf");
    std::fs::create_dir(&inner).unwrap();
    let file = inner.join("config.toml");
    std::fs::write(&file, "x = 1\n").unwrap();
    let cat = |who: &Account| {
        who.command("/bin/cat")
            .arg(&file)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!cat(&alice), "readable before the grant");
    alice.grant_read(&inner);
    assert!(cat(&alice));
    assert!(!cat(&bob), "the grant is alice's only");

    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let touch = |who: &Account, name: &str| {
        who.command("/usr/bin/touch")
            .arg(state.join(name))
            .output()
            .unwrap()
            .status
            .success()
    };
    alice.grant_read(&state);
    assert!(!touch(&alice, "a"), "read is not write");
    alice.grant_write(&state);
    assert!(touch(&alice, "a"));
    bob.own(&state);
    assert!(touch(&bob, "b"), "bob owns it now");
}

/// `Sshd::ssh` runs a remote command as the person (what Emergency SSH tests
/// build on).
#[test]
fn a_session_runs_as_the_person() {
    let alice = Account::person("alice");
    let tmp = tempfile::tempdir().unwrap();
    let ka = client_key(tmp.path(), "alice_key");
    let sshd = Sshd::start(&[(&alice.name, &ka)]);
    let log = tmp.path().join("ssh.log");
    let o = sshd
        .ssh(&alice.name, &ka, &log, &[])
        .arg("id -un; echo $HOME")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        sshd.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{}\n{}\n", alice.name, alice.home.display())
    );
}
