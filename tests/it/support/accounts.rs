//! Real OS accounts for tests where identity matters (who is on the other end
//! of a Unix socket, which user sshd authenticated): created with `useradd`,
//! removed with `userdel` when the `Account` is dropped. Tests run as root.
//!
//! Names are `bgt-<tag>-<pid>-<n>`: unique among live test processes (nextest
//! runs each test in its own process, `cargo test` runs them as threads of one),
//! at most 32 characters. Every change to the account database happens under
//! an exclusive `flock` on a file in `/run/breakglass-tests`, so parallel tests
//! never meet shadow's own lock files. Accounts a killed test process left
//! behind (their pid is gone) are removed the next time an account is made.
//!
//! Files: tempfile (3.x) makes its directories with the default mode, 0755
//! under the usual umask, so every account can read a test's temp dir unless
//! the test closes it (chmod 0700, or `tempfile::Builder::permissions`); a test
//! that shows someone *cannot* read a thing must close it first. Into a closed
//! directory, `grant_read`/`grant_write` let one account (not everyone) with
//! POSIX ACLs (`setfacl`, Debian package `acl`), plus traverse rights on the
//! ancestors that lack them. Connecting to a Unix socket takes write on the
//! socket file: make it 0666 in a directory the account can traverse, or
//! `grant_write` it (an ACL entry of `grant_read` would win over 0666's
//! "other" bits and deny the connect).
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const INSTALL: &str = "apt-get install -y passwd util-linux acl";

/// Where the harness keeps cross-process state (lock file, sshd dirs): owned by
/// root, not writable by others, so sshd's StrictModes accepts paths below it.
pub const RUN_DIR: &str = "/run/breakglass-tests";

const PREFIX: &str = "bgt-";

/// A PATH that holds only system directories every account can read (root's
/// own tool directories, such as a pyenv under /root, are unreachable to them).
pub const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

static COUNTER: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The home directory (created for people; `/` for service accounts).
    pub home: PathBuf,
    person: bool,
}

impl Account {
    /// A person: a home directory, `/bin/sh`, and a password field of `*` (no
    /// password can match, but not "locked" either: sshd without PAM refuses
    /// every login, key or not, to an account whose password starts with `!`,
    /// which is what useradd gives by default).
    pub fn person(tag: &str) -> Account {
        create(tag, true)
    }

    /// A system service account (a daemon such as the broker): no home, no
    /// login shell, locked password.
    pub fn service(tag: &str) -> Account {
        create(tag, false)
    }

    /// `program` run as this account through `runuser -u NAME --`, with a clean
    /// environment (nothing of the test's, secrets included, leaks through):
    /// HOME, USER, LOGNAME, SHELL, a system PATH and LANG, working directory
    /// the home. `program` should be an absolute path the account can run.
    /// With `daemon::spawn_owned` the death signal goes to runuser, which
    /// passes SIGTERM on to the program.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(runuser());
        c.args(["-u", &self.name, "--"])
            .arg(program)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("SHELL", if self.person { "/bin/sh" } else { NOLOGIN })
            .env("PATH", SYSTEM_PATH)
            .env("LANG", "C.UTF-8")
            .current_dir(&self.home);
        c
    }

    /// Lets this account read `path` (recursively, files created later in its
    /// directories too) and reach it: an ACL entry for this account only, and
    /// an execute-only entry on each ancestor it could not traverse.
    pub fn grant_read(&self, path: &Path) {
        self.grant(path, "rX")
    }

    /// Like `grant_read`, and write too (e.g. a directory it makes files in).
    pub fn grant_write(&self, path: &Path) {
        self.grant(path, "rwX")
    }

    fn grant(&self, path: &Path, perms: &str) {
        self.grant_traverse(path);
        let mut spec = format!("u:{}:{perms}", self.name);
        if path.is_dir() {
            spec.push_str(&format!(",d:u:{}:{perms}", self.name));
        }
        setfacl(&["-R", "-m", &spec], path);
    }

    /// Traverse (execute, not list) rights on every ancestor of `path` whose
    /// mode does not already let others through.
    pub fn grant_traverse(&self, path: &Path) {
        let path = std::fs::canonicalize(path)
            .unwrap_or_else(|e| panic!("grant on {}: {e}", path.display()));
        for dir in path.ancestors().skip(1) {
            let meta = std::fs::metadata(dir).unwrap();
            let through = meta.mode() & 0o001 != 0
                || meta.uid() == self.uid
                || (meta.gid() == self.gid && meta.mode() & 0o010 != 0);
            if !through {
                setfacl(&["-m", &format!("u:{}:x", self.name)], dir);
            }
        }
    }

    /// Hands `path` (recursively) over to this account and its group, and
    /// lets it through the ancestors (`grant_traverse`).
    pub fn own(&self, path: &Path) {
        self.grant_traverse(path);
        let o = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(path)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "chown {}: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        // Processes of the account (an sshd session closing after its client
        // went) make userdel refuse for a moment; retry, then leave it to the
        // stale sweep of a later run rather than fail the test in drop.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let result = {
                let _lock = lock();
                userdel(&self.name)
            };
            match result {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => {
                    eprintln!("accounts: leaving {} behind: {e}", self.name);
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

const NOLOGIN: &str = "/usr/sbin/nologin";

pub fn runuser() -> &'static str {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or_else(|| panic!("runuser not found; install it with `{INSTALL}`"))
}

fn setfacl(args: &[&str], path: &Path) {
    let o = Command::new("setfacl")
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("setfacl is needed: `{INSTALL}` ({e})"));
    assert!(
        o.status.success(),
        "setfacl {args:?} {}: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The harness's run directory, made once (race-safe: create_dir_all accepts
/// a directory another process made meanwhile).
pub fn run_dir() -> PathBuf {
    let dir = PathBuf::from(RUN_DIR);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {RUN_DIR}: {e}"));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// An exclusive lock over account changes, across threads and processes (each
/// call opens its own file description, so threads exclude each other too).
fn lock() -> nix::fcntl::Flock<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(run_dir().join("accounts.lock"))
        .unwrap();
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("lock accounts: {e}"))
}

/// `bgt-<tag>-<pid>-<n>`, the tag cut to lowercase letters and digits, at most 8.
fn unique_name(tag: &str) -> String {
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(8)
        .collect();
    let tag = if tag.is_empty() { "u".into() } else { tag };
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("{PREFIX}{tag}-{}-{n}", std::process::id());
    assert!(name.len() <= 32, "account name too long: {name}");
    name
}

fn create(tag: &str, person: bool) -> Account {
    let name = unique_name(tag);
    {
        let _lock = lock();
        sweep_stale();
        // This process hands out each counter value once, so an account of
        // this name is a leftover of a dead process that had our pid.
        if nix::unistd::User::from_name(&name).unwrap().is_some() {
            userdel(&name).unwrap_or_else(|e| panic!("remove stale {name}: {e}"));
        }
        let mut c = Command::new("useradd");
        c.args(["--user-group", "--comment", "breakglass test account"]);
        if person {
            c.args(["--create-home", "--shell", "/bin/sh", "--password", "*"]);
        } else {
            c.args(["--system", "--no-create-home", "--home-dir", "/"])
                .args(["--shell", NOLOGIN]);
        }
        let o = c
            .arg(&name)
            .output()
            .unwrap_or_else(|e| panic!("useradd is needed: `{INSTALL}` ({e})"));
        assert!(
            o.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let user = nix::unistd::User::from_name(&name)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} missing right after useradd"));
    Account {
        name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir,
        person,
    }
}

/// `userdel --remove`, under the caller's lock.
fn userdel(name: &str) -> Result<(), String> {
    let o = Command::new("userdel")
        .args(["--remove", name])
        .output()
        .map_err(|e| format!("userdel: {e}"))?;
    // 6: no such user (already gone); 12: home could not be removed (the
    // account itself is gone, which is what matters).
    match o.status.code() {
        Some(0 | 6 | 12) => Ok(()),
        _ => Err(format!(
            "userdel {name}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
    }
}

/// Removes `bgt-*-<pid>-<n>` accounts whose process is gone (a test killed
/// before its drops ran). Under the caller's lock.
fn sweep_stale() {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for line in passwd.lines() {
        let Some(name) = line.split(':').next() else {
            continue;
        };
        let Some(pid) = stale_pid(name) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            if let Err(e) = userdel(name) {
                eprintln!("accounts: stale {name}: {e}");
            }
        }
    }
}

/// The pid in a harness account name, if `name` is one.
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.rsplitn(3, '-');
    let _n: u32 = parts.next()?.parse().ok()?;
    let pid: u32 = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(pid)
}
