//! A real OpenSSH server for tests, and clients that log in to it.
//!
//! `Sshd::start(&[(account, key)])` runs Debian's `/usr/sbin/sshd -D` on a free
//! port of 127.0.0.1 with its own Ed25519 host key and config in a fresh
//! directory under `/run/breakglass-tests`: no PAM, public keys only, only the
//! given accounts may log in, socket forwarding both ways and local TCP
//! forwarding allowed (remote TCP, agent, X11 and tunnels not), LogLevel
//! VERBOSE to `sshd.log` (`Sshd::log`, shown when a client fails).
//!
//! Socket forwarding needs `AllowTcpForwarding local` (or yes) besides
//! `AllowStreamLocalForwarding`: OpenSSH gates `direct-streamlocal` channels
//! on both, and a `PermitOpen` list denies them too
//! (ssh_forwarding::tcp_forwarding_off_denies_socket_forwarding_too).
//! Extra config lines (e.g. `TrustedUserCAKeys`, `RevokedKeys`) are given to
//! `Sshd::builder().extra(..)`.
//!
//! Why /run and not a tempfile dir under /tmp: sshd reads a user's authorized
//! keys file as that user and, with StrictModes (kept on, as in production),
//! refuses it when the file or any directory above it is writable by others,
//! which /tmp is. So the directory is root's, mode 0755, the keys files 0644.
//!
//! No strays: sshd and every `ssh` client are children of owner threads
//! (`daemon::spawn_owned`) and die with them or with the test process; the
//! directory is removed by a `daemon::DirWatchdog`. An account sshd refuses
//! outright (locked password, as useradd leaves it) is a panic naming the fix.
#![allow(dead_code)]

use super::daemon::{spawn_owned, DirWatchdog, Owned};
use nix::sys::signal::Signal;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const INSTALL: &str = "apt-get install -y openssh-server openssh-client";
pub const SSHD: &str = "/usr/sbin/sshd";

static CLIENTS: AtomicU32 = AtomicU32::new(0);

/// A new Ed25519 client key `dir/name` (and `dir/name.pub`), no passphrase;
/// returns the private key's path.
pub fn client_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    super::keygen(&path, name);
    path
}

/// The public half of a key given by either path.
fn public_key(key: &Path) -> PathBuf {
    if key.extension().is_some_and(|e| e == "pub") {
        key.to_path_buf()
    } else {
        let mut p = key.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    }
}

/// What `Sshd::builder()` collects.
#[derive(Default)]
pub struct Builder {
    /// Accounts allowed to log in, each with the public keys authorized for it.
    users: Vec<(String, Vec<PathBuf>)>,
    extra: String,
}

impl Builder {
    /// `account` may log in with `key` (a private key path; its `.pub` is read).
    pub fn user(mut self, account: &str, key: &Path) -> Builder {
        match self.users.iter_mut().find(|(a, _)| a == account) {
            Some((_, keys)) => keys.push(public_key(key)),
            None => self
                .users
                .push((account.to_string(), vec![public_key(key)])),
        }
        self
    }

    /// `account` may log in, with no authorized key (e.g. certificates only).
    pub fn account(mut self, account: &str) -> Builder {
        if !self.users.iter().any(|(a, _)| a == account) {
            self.users.push((account.to_string(), Vec::new()));
        }
        self
    }

    /// Extra sshd_config lines. sshd keeps the *first* value of a keyword, so
    /// these go before the harness's defaults and win over them; from the
    /// first `Match` line on they go at the end, where Match blocks belong.
    pub fn extra(mut self, lines: &str) -> Builder {
        self.extra.push_str(lines);
        self.extra.push('\n');
        self
    }

    pub fn start(self) -> Sshd {
        Sshd::launch(self)
    }
}

pub struct Sshd {
    dir: PathBuf,
    port: u16,
    pid: u32,
    known_hosts: PathBuf,
    owner: Option<Owned>,
    _watchdog: DirWatchdog,
}

impl Sshd {
    /// sshd where each `(account, private key path)` may log in with that key.
    pub fn start(users: &[(&str, &Path)]) -> Sshd {
        users
            .iter()
            .fold(Sshd::builder(), |b, (a, k)| b.user(a, k))
            .start()
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's directory (config, host key, logs); readable by all.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A known_hosts file holding this server's host key for 127.0.0.1:port.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// What sshd logged so far (LogLevel VERBOSE).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// An `ssh` client (run as root: who logs in is `user`, whose `key` it
    /// offers) with a clean environment, no agent, no user config, this
    /// server's known_hosts and strict host key checking, logging to `log`.
    /// `options` go before the destination; append a remote command if wanted.
    pub fn ssh(&self, user: &str, key: &Path, log: &Path, options: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.env_clear()
            .env("PATH", super::accounts::SYSTEM_PATH)
            .env("HOME", &self.dir)
            .current_dir(&self.dir)
            .args(["-F", "/dev/null", "-i"])
            .arg(key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("-E")
            .arg(log);
        for o in [
            "GlobalKnownHostsFile=/dev/null",
            "StrictHostKeyChecking=yes",
            "CheckHostIP=no",
            "UpdateHostKeys=no",
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "BatchMode=yes",
            "LogLevel=VERBOSE",
        ] {
            c.args(["-o", o]);
        }
        c.args(options)
            .args(["-p", &self.port.to_string()])
            .arg(format!("{user}@127.0.0.1"));
        c
    }

    /// `ssh -N -L local:remote` as `user` with `key`, running until the
    /// `Forward` is dropped; returns once `local` is listening. Panics with
    /// the client's and the server's logs if it does not come up.
    pub fn forward(&self, user: &str, key: &Path, local: &Path, remote: &Path) -> Forward {
        self.try_forward(user, key, local, remote, &[])
            .unwrap_or_else(|e| panic!("{e}\n--- sshd log ---\n{}", self.log()))
    }

    /// `forward` with extra ssh options (e.g. `-o StreamLocalBindMask=0111`
    /// for a local socket other accounts may use), and an error instead of a
    /// panic (the client's log in it) when ssh gives up: refused login,
    /// forwarding failure.
    pub fn try_forward(
        &self,
        user: &str,
        key: &Path,
        local: &Path,
        remote: &Path,
        options: &[&str],
    ) -> Result<Forward, String> {
        let n = CLIENTS.fetch_add(1, Ordering::SeqCst);
        let log = self.dir.join(format!("ssh-{user}-{n}.log"));
        let spec = format!("{}:{}", local.display(), remote.display());
        let mut opts = vec!["-N", "-o", "ExitOnForwardFailure=yes"];
        opts.extend(["-o", "StreamLocalBindUnlink=yes", "-L", &spec]);
        opts.extend(options);
        let mut cmd = self.ssh(user, key, &log, &opts);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let owner = spawn_owned(
            cmd,
            format!("ssh-{user}-{n}"),
            Signal::SIGTERM,
            Some(Signal::SIGTERM),
            |_| {},
        )?;
        let client_log = || std::fs::read_to_string(&log).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if listening(local) {
                return Ok(Forward {
                    local: local.to_path_buf(),
                    log,
                    owner: Some(owner),
                });
            }
            if owner.has_exited() {
                let _ = owner.thread.join();
                return Err(format!(
                    "ssh -L {spec} as {user} exited\n--- ssh log ---\n{}",
                    client_log()
                ));
            }
            if Instant::now() > deadline {
                drop(owner.stop);
                let _ = owner.thread.join();
                return Err(format!(
                    "ssh -L {spec} as {user}: no listener after 30 s\n--- ssh log ---\n{}",
                    client_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn launch(b: Builder) -> Sshd {
        assert!(!b.users.is_empty(), "sshd needs at least one account");
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} not found; install it with `{INSTALL}` (./scripts/test does)"
        );
        for (account, _) in &b.users {
            refuse_locked(account);
        }
        // sshd's privilege separation directory, which it checks at start.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("sshd-")
            .tempdir_in(super::accounts::run_dir())
            .expect("temp dir for sshd")
            .keep();
        let watchdog = DirWatchdog::new(&dir, "breakglass-sshd-watchdog");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        super::keygen(&dir.join("host_ed25519"), "breakglass-test-sshd");
        let keys_dir = dir.join("authorized_keys");
        std::fs::create_dir(&keys_dir).unwrap();
        for (account, keys) in &b.users {
            let mut text = String::new();
            for k in keys {
                text.push_str(
                    &std::fs::read_to_string(k).unwrap_or_else(|e| {
                        panic!("public key {} for {account}: {e}", k.display())
                    }),
                );
            }
            let file = keys_dir.join(account);
            std::fs::write(&file, text).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let mut last = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            std::fs::write(dir.join("sshd_config"), config(&dir, port, &b)).unwrap();
            match start_on(&dir, port) {
                Ok(owner) => {
                    let known_hosts = dir.join("known_hosts");
                    let host = std::fs::read_to_string(dir.join("host_ed25519.pub")).unwrap();
                    let key: Vec<&str> = host.split_whitespace().take(2).collect();
                    std::fs::write(
                        &known_hosts,
                        format!("[127.0.0.1]:{port} {}\n", key.join(" ")),
                    )
                    .unwrap();
                    return Sshd {
                        pid: owner.pid,
                        dir,
                        port,
                        known_hosts,
                        owner: Some(owner),
                        _watchdog: watchdog,
                    };
                }
                Err(e) => last = e, // most likely the port was taken meanwhile
            }
        }
        panic!("sshd did not start: {last}");
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            drop(owner.stop);
            let _ = owner.thread.join();
        }
    }
}

/// A running `ssh -N -L`; dropping it ends the client.
pub struct Forward {
    pub local: PathBuf,
    log: PathBuf,
    owner: Option<Owned>,
}

impl Forward {
    /// What the client logged (LogLevel VERBOSE).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.owner.as_ref().is_some_and(|o| !o.has_exited())
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            drop(owner.stop);
            let _ = owner.thread.join();
        }
    }
}

/// Whether a Unix socket bound at `path` is listening, read from
/// /proc/net/unix so that checking opens no connection (a probe would reach
/// the far end through the tunnel, and a broker would see a stray client).
fn listening(path: &Path) -> bool {
    const ACCEPTING: u32 = 0x0001_0000; // __SO_ACCEPTCON
    let Some(want) = path.to_str() else {
        return false;
    };
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        cols.len() >= 8
            && cols[7] == want
            && u32::from_str_radix(cols[3], 16).is_ok_and(|f| f & ACCEPTING != 0)
    })
}

/// sshd without PAM refuses any login to an account whose password field
/// starts with `!` (locked), which is what a bare useradd leaves.
fn refuse_locked(account: &str) {
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    let Some(line) = shadow
        .lines()
        .find(|l| l.split(':').next() == Some(account))
    else {
        panic!("sshd: no account {account} (make it with accounts::Account::person)");
    };
    let password = line.split(':').nth(1).unwrap_or("");
    assert!(
        !password.starts_with('!'),
        "sshd would refuse {account}: its password is locked (`!`); make it with \
         accounts::Account::person, or run `usermod -p '*' {account}`"
    );
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn config(dir: &Path, port: u16, b: &Builder) -> String {
    let d = dir.display();
    let (head, matches) = match b.extra.lines().position(|l| {
        l.trim_start()
            .get(..5)
            .is_some_and(|w| w.eq_ignore_ascii_case("match"))
    }) {
        Some(i) => {
            let lines: Vec<&str> = b.extra.lines().collect();
            (lines[..i].join("\n"), lines[i..].join("\n"))
        }
        None => (b.extra.clone(), String::new()),
    };
    let users: Vec<&str> = b.users.iter().map(|(a, _)| a.as_str()).collect();
    format!(
        r#"# breakglass test sshd; the first value of a keyword wins.
{head}
ListenAddress 127.0.0.1:{port}
HostKey {d}/host_ed25519
PidFile {d}/sshd.pid
UsePAM no
PermitRootLogin no
AllowUsers {users}
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
AuthorizedKeysFile {d}/authorized_keys/%u
StrictModes yes
AllowStreamLocalForwarding yes
StreamLocalBindUnlink yes
AllowTcpForwarding local
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
PermitUserEnvironment no
PrintMotd no
UseDNS no
LogLevel VERBOSE
{matches}
"#,
        users = users.join(" ")
    )
}

/// Starts sshd on `port` and waits until it listens and greets with its banner.
fn start_on(dir: &Path, port: u16) -> Result<Owned, String> {
    let mut cmd = Command::new(SSHD);
    cmd.arg("-D")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .arg("-E")
        .arg(dir.join("sshd.log"))
        .env_clear()
        .env("PATH", super::accounts::SYSTEM_PATH)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let owner = spawn_owned(
        cmd,
        format!("sshd-{port}"),
        Signal::SIGTERM,
        Some(Signal::SIGTERM),
        |_| {},
    )?;
    let log = || std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if owner.has_exited() {
            let _ = owner.thread.join();
            return Err(format!("sshd exited (port {port}): {}", log()));
        }
        // The log line tells it is ours that listens: another test's server
        // may have taken the port and would greet just the same.
        if log().contains(&format!("Server listening on 127.0.0.1 port {port}.")) && banner(port) {
            return Ok(owner);
        }
        if Instant::now() > deadline {
            drop(owner.stop);
            let _ = owner.thread.join();
            return Err(format!("sshd sent no banner within 30 s: {}", log()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether something on `port` greets with an SSH version line.
fn banner(port: u16) -> bool {
    let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("SSH-2.0-")
}
