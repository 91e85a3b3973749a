//! A throwaway PostgreSQL cluster for tests.
//!
//! `shared()` starts one cluster per test binary (each test makes its own
//! database and roles); `PgServer::start()` gives a test its own, stopped and
//! removed on drop. The server listens on a free port on 127.0.0.1 and on a
//! socket in its temp dir. Local (socket) logins are trusted; TCP logins need a
//! SCRAM password, so granted roles' passwords are really checked. Every
//! statement is logged (`log_statement = 'all'`) to `log_path()`.
//!
//! initdb refuses to run as root, and tests run as root here and in CI: then
//! the cluster belongs to `nobody` (its dir is chowned, initdb and postgres run
//! with that uid/gid).
//!
//! No stray servers: `postgres` runs as a direct child of a thread that lives as
//! long as the server is wanted, with `PR_SET_PDEATHSIG = SIGQUIT` (immediate
//! shutdown), so it goes when that thread or the whole test process does, even
//! on SIGKILL. A static is never dropped, so a small watchdog shell (`sh`, its
//! stdin a pipe only this process holds) waits for EOF, i.e. for the test
//! process to end however it ends, then stops the server if needed and removes
//! the directory.
//!
//! Missing server binaries are a failure with the install command, never a skip.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const INSTALL: &str = "apt-get install -y postgresql";

/// Where the PostgreSQL server binaries are: `pg_config --bindir`, else the
/// highest `/usr/lib/postgresql/*/bin`, else the directory of `initdb` on PATH.
/// `scripts/test` searches the same way.
pub fn bindir() -> Option<PathBuf> {
    let usable = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Ok(o) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        if o.status.success() && usable(&d) {
            return Some(d);
        }
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let d = e.path().join("bin");
            usable(&d).then_some((v, d))
        })
        .collect();
    versioned.sort();
    if let Some((_, d)) = versioned.pop() {
        return Some(d);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|d| {
        let initdb = std::fs::canonicalize(d.join("initdb")).ok()?;
        let d = initdb.parent()?.to_path_buf();
        usable(&d).then_some(d)
    })
}

fn require_bindir() -> PathBuf {
    bindir().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries (initdb, postgres) not found: looked at `pg_config --bindir`, \
             /usr/lib/postgresql/*/bin and PATH. Install them with `{INSTALL}` \
             (./scripts/test does this when they are missing)."
        )
    })
}

/// The uid/gid to run the cluster as: `nobody` when we are root.
fn run_as() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let u = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect(
        "running as root: initdb refuses root, and there is no user `nobody` to run PostgreSQL as",
    );
    Some((u.uid.as_raw(), u.gid.as_raw()))
}

fn command(bin: &Path, dir: &Path, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(bin);
    c.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env("HOME", dir)
        .current_dir(dir);
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct PgServer {
    /// The cluster's directory: `data/`, the socket and `postgres.log`.
    pub dir: PathBuf,
    pub port: u16,
    /// The `postgres` superuser's password (TCP logins need it).
    pub password: String,
    pid: u32,
    /// Dropping it makes the owner thread stop and reap the server.
    stop: Option<mpsc::Sender<()>>,
    owner: Option<std::thread::JoinHandle<()>>,
    /// Closing its stdin makes the watchdog remove `dir`.
    watchdog: Option<(Child, ChildStdin)>,
}

/// The cluster shared by every test of this binary, started on first use.
pub fn shared() -> &'static PgServer {
    static SHARED: OnceLock<PgServer> = OnceLock::new();
    SHARED.get_or_init(PgServer::start)
}

/// A name no other test of this process uses: `<prefix>_<8 hex>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(rand::random::<[u8; 4]>()))
}

impl PgServer {
    /// initdb and start a new cluster; panics (with the install command) when
    /// PostgreSQL is not installed.
    pub fn start() -> PgServer {
        Self::start_with(|_| vec![])
    }

    /// Like `start`, with `configure(dir)` run after initdb: it may write files
    /// into the cluster dir (they are handed to the server's user) and returns
    /// extra `name=value` settings for `postgres -c`.
    pub fn start_with(configure: impl FnOnce(&Path) -> Vec<String>) -> PgServer {
        let bindir = require_bindir();
        let user = run_as();
        // /tmp rather than $TMPDIR: `nobody` must be able to reach the directory.
        let base = if user.is_some() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("breakglass-pg-")
            .tempdir_in(base)
            .expect("temp dir for PostgreSQL")
            .keep();
        // From here on the watchdog owns removing `dir`, even if we panic.
        let watchdog = watchdog(&dir);
        if let Some((uid, gid)) = user {
            nix::unistd::chown(
                &dir,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .expect("chown the cluster dir to nobody");
        }
        let password = hex::encode(rand::random::<[u8; 16]>());
        let pwfile = dir.join("pwfile");
        {
            let mut f = std::fs::File::create(&pwfile).unwrap();
            writeln!(f, "{password}").unwrap();
        }
        if let Some((uid, gid)) = user {
            nix::unistd::chown(
                &pwfile,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .unwrap();
        }
        let out = command(&bindir.join("initdb"), &dir, user)
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "--pwfile"])
            .arg(&pwfile)
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        let _ = std::fs::remove_file(&pwfile);
        assert!(
            out.status.success(),
            "initdb failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let settings = configure(&dir);
        if let Some((uid, gid)) = user {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    nix::unistd::chown(
                        &e.path(),
                        Some(nix::unistd::Uid::from_raw(uid)),
                        Some(nix::unistd::Gid::from_raw(gid)),
                    )
                    .unwrap();
                }
            }
        }

        let mut last = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            match launch(&bindir, &dir, user, port, &settings) {
                Ok((pid, stop, owner)) => {
                    return PgServer {
                        dir,
                        port,
                        password,
                        pid,
                        stop: Some(stop),
                        owner: Some(owner),
                        watchdog: Some(watchdog),
                    }
                }
                Err(e) => last = e, // most likely the port was taken meanwhile
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// A superuser connection string for `db`, over TCP with a password.
    pub fn admin_url(&self, db: &str) -> String {
        self.url("postgres", &self.password, db)
    }

    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgresql://{user}:{password}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// A connected superuser client on `db`.
    pub async fn admin(&self, db: &str) -> tokio_postgres::Client {
        connect(&self.admin_url(db))
            .await
            .unwrap_or_else(|e| panic!("admin connection to {db}: {e}"))
    }

    /// A new, empty database with a unique name.
    pub async fn create_database(&self, prefix: &str) -> String {
        let db = unique(prefix);
        self.admin("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        db
    }
}

impl PgServer {
    /// `create_database` for code outside a tokio runtime (the sync `postgres`
    /// client runs its own; it must not be called from inside another).
    pub fn create_database_blocking(&self, prefix: &str) -> String {
        let db = unique(prefix);
        let mut c = postgres::Client::connect(&self.admin_url("postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("admin connection: {e}"));
        c.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
        db
    }

    /// A sync superuser client on `db` (outside a tokio runtime).
    pub fn admin_blocking(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.admin_url(db), postgres::NoTls)
            .unwrap_or_else(|e| panic!("admin connection to {db}: {e}"))
    }
}

/// Connects (no TLS) and drives the connection in the background.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Starts `postgres` as the child of a dedicated thread and waits until it
/// accepts connections. The thread reaps the server when `stop` is dropped or
/// signalled; the server gets SIGQUIT if the thread (or the process) dies.
fn launch(
    bindir: &Path,
    dir: &Path,
    user: Option<(u32, u32)>,
    port: u16,
    settings: &[String],
) -> Result<(u32, mpsc::Sender<()>, std::thread::JoinHandle<()>), String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("postgres.log"))
        .map_err(|e| e.to_string())?;
    let mut cmd = command(&bindir.join("postgres"), dir, user);
    cmd.arg("-D")
        .arg(dir.join("data"))
        .arg("-k")
        .arg(dir)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "log_statement=all"])
        .args(["-c", "logging_collector=off"])
        .args(["-c", "fsync=off"])
        .args(["-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off"])
        .args(["-c", "max_connections=200"]);
    for s in settings {
        cmd.args(["-c", s]);
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    let owned = super::daemon::spawn_owned(
        cmd,
        format!("postgres-{port}"),
        nix::sys::signal::Signal::SIGQUIT,
        Some(nix::sys::signal::Signal::SIGQUIT),
        |_| {},
    )?;
    let super::daemon::Owned {
        pid,
        stop: stop_tx,
        thread: owner,
        exited,
    } = owned;

    // Ready when postmaster.pid's status line (the 8th) says so, as pg_ctl -w checks.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if exited.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = owner.join();
            let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(format!("postgres exited on port {port}: {tail:?}"));
        }
        let status = std::fs::read_to_string(dir.join("data/postmaster.pid")).unwrap_or_default();
        let lines: Vec<&str> = status.lines().collect();
        if lines.len() >= 8 && lines[0].trim() == pid.to_string() && lines[7].trim() == "ready" {
            return Ok((pid, stop_tx, owner));
        }
        if Instant::now() > deadline {
            drop(stop_tx);
            let _ = owner.join();
            return Err("postgres did not become ready within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A shell that waits for its stdin to close (this process ended, or the server
/// was dropped), then stops the server if it still runs and removes `dir`.
fn watchdog(dir: &Path) -> (Child, ChildStdin) {
    const SCRIPT: &str = r#"
trap '' INT HUP TERM
read _ignored
pidfile="$1/data/postmaster.pid"
pid=$(head -n 1 "$pidfile" 2>/dev/null)
[ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null
i=0
while [ -e "$pidfile" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
rm -rf "$1"
"#;
    let mut child = Command::new("/bin/sh")
        .args(["-c", SCRIPT, "breakglass-pg-watchdog"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the cluster watchdog (/bin/sh)");
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

impl Drop for PgServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.owner.take() {
            let _ = t.join();
        }
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}
