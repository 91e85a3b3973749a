//! A throwaway rsyslog for tests: what a SOC's collector really does with the
//! frames the syslog sink sends.
//!
//! `Rsyslog::start()` runs `rsyslogd -n` with its own config, work directory and
//! pid file in a temp dir, listening with imudp and imtcp on free ports of
//! 127.0.0.1. Every message received from the network is written to
//! `records.jsonl`, one JSON object per message with the fields rsyslog parsed
//! (input, hostname, app-name, msgid, structured data, msg); rsyslog's own
//! messages (errors such as an oversize frame) go to `internal.log`. The
//! message size limit is left at rsyslog's default (8096 bytes), the one a
//! stock collector has, so a frame longer than that is cut as it would be there.
//!
//! No stray daemons: rsyslogd is the child of a thread that lives as long as the
//! `Rsyslog`, with `PR_SET_PDEATHSIG = SIGTERM`, so it ends with that thread or
//! with the whole test process, even on SIGKILL; dropping the `Rsyslog` stops and
//! reaps it. A small watchdog shell (its stdin a pipe only this process holds)
//! removes the directory once the test process ends, however it ends. A
//! missing rsyslogd is a failure with the install command, never a skip.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const INSTALL: &str = "apt-get install -y rsyslog";

/// App-name of the probes that tell the UDP input is up; not in `records()`.
const PROBE_APP: &str = "harness-probe";

/// One message as rsyslog parsed and stored it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Record {
    /// `imudp` or `imtcp`.
    pub input: String,
    pub hostname: String,
    pub app: String,
    pub msgid: String,
    /// The structured data, as received (`-` when there is none).
    pub sd: String,
    pub msg: String,
}

pub struct Rsyslog {
    dir: PathBuf,
    /// `127.0.0.1:port` of the UDP and the TCP (RFC 6587) listener.
    pub udp: String,
    pub tcp: String,
    pid: u32,
    /// Dropping it makes the owner thread stop and reap rsyslogd.
    stop: Option<mpsc::Sender<()>>,
    owner: Option<std::thread::JoinHandle<()>>,
    /// Closing its stdin makes the watchdog remove `dir`.
    watchdog: Option<(Child, ChildStdin)>,
}

fn rsyslogd() -> PathBuf {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .map(|d| d.join("rsyslogd"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "rsyslogd not found (looked in /usr/sbin, /sbin and PATH). Install it with \
                 `{INSTALL}` (./scripts/test does this when it is missing)."
            )
        })
}

fn free_ports() -> (u16, u16) {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (
        udp.local_addr().unwrap().port(),
        tcp.local_addr().unwrap().port(),
    )
}

fn config(dir: &Path, udp: u16, tcp: u16) -> String {
    let d = dir.display();
    // No maxMessageSize: the default (8096 bytes) is what a stock rsyslog has.
    format!(
        r#"global(workDirectory="{d}/work")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="record" type="list" option.jsonf="on") {{
  property(outname="input" name="inputname" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}
if $inputname == "imudp" or $inputname == "imtcp" then {{
  action(type="omfile" file="{d}/records.jsonl" template="record")
}} else {{
  action(type="omfile" file="{d}/internal.log")
}}
"#
    )
}

impl Rsyslog {
    /// Starts rsyslogd and waits until both listeners take messages; panics
    /// (with the install command) when rsyslog is not installed.
    pub fn start() -> Rsyslog {
        let bin = rsyslogd();
        let dir = tempfile::Builder::new()
            .prefix("breakglass-rsyslog-")
            .tempdir()
            .expect("temp dir for rsyslog")
            .keep();
        // From here on the watchdog owns removing `dir`, even if we panic.
        let watchdog = watchdog(&dir);
        std::fs::create_dir(dir.join("work")).unwrap();
        let mut last = String::new();
        for _attempt in 0..5 {
            let (udp, tcp) = free_ports();
            std::fs::write(dir.join("rsyslog.conf"), config(&dir, udp, tcp)).unwrap();
            match launch(&bin, &dir, udp, tcp) {
                Ok((pid, stop, owner)) => {
                    return Rsyslog {
                        dir,
                        udp: format!("127.0.0.1:{udp}"),
                        tcp: format!("127.0.0.1:{tcp}"),
                        pid,
                        stop: Some(stop),
                        owner: Some(owner),
                        watchdog: Some(watchdog),
                    }
                }
                Err(e) => last = e, // most likely a port was taken meanwhile
            }
        }
        panic!("rsyslogd did not start: {last}");
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every message received from the network so far (probes left out).
    pub fn records(&self) -> Vec<Record> {
        read_records(&self.dir)
            .into_iter()
            .filter(|r| r.app != PROBE_APP)
            .collect()
    }

    /// rsyslog's own messages: start, errors about what it received.
    pub fn internal_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("internal.log")).unwrap_or_default()
    }

    /// Waits until at least `n` records arrived (or `within` passed), then a
    /// little longer so that any extra record a frame produced is there too.
    pub fn settle(&self, n: usize, within: Duration) -> Vec<Record> {
        let deadline = Instant::now() + within;
        while self.records().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        self.records()
    }
}

fn read_records(dir: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(dir.join("records.jsonl")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("rsyslog wrote `{l}`: {e}")))
        .collect()
}

/// Starts rsyslogd as the child of a dedicated thread and waits until the TCP
/// listener accepts and a UDP probe has been stored.
fn launch(
    bin: &Path,
    dir: &Path,
    udp: u16,
    tcp: u16,
) -> Result<(u32, mpsc::Sender<()>, std::thread::JoinHandle<()>), String> {
    let out = std::fs::File::create(dir.join("rsyslogd.out")).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(bin);
    cmd.arg("-n")
        .arg("-f")
        .arg(dir.join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LC_ALL", "C")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(out);
    let owned = super::daemon::spawn_owned(
        cmd,
        format!("rsyslogd-{tcp}"),
        nix::sys::signal::Signal::SIGTERM,
        Some(nix::sys::signal::Signal::SIGTERM),
        |_| {},
    )?;
    let super::daemon::Owned {
        pid,
        stop: stop_tx,
        thread: owner,
        exited,
    } = owned;

    let probe = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if exited.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = owner.join();
            let out = std::fs::read_to_string(dir.join("rsyslogd.out")).unwrap_or_default();
            return Err(format!("rsyslogd exited (ports {udp}/{tcp}): {out}"));
        }
        let tcp_up = std::net::TcpStream::connect(("127.0.0.1", tcp)).is_ok();
        if tcp_up {
            let _ = probe.send_to(
                format!("<14>1 - - {PROBE_APP} - ready - probe").as_bytes(),
                ("127.0.0.1", udp),
            );
            if read_records(dir).iter().any(|r| r.app == PROBE_APP) {
                return Ok((pid, stop_tx, owner));
            }
        }
        if Instant::now() > deadline {
            drop(stop_tx);
            let _ = owner.join();
            let out = std::fs::read_to_string(dir.join("rsyslogd.out")).unwrap_or_default();
            return Err(format!("rsyslogd did not take messages within 30 s: {out}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A shell that waits for its stdin to close (the `Rsyslog` was dropped, or
/// this process ended) and removes `dir`; rsyslogd is gone by then (reaped, or
/// ended by its death signal).
fn watchdog(dir: &Path) -> (Child, ChildStdin) {
    let mut child = Command::new("/bin/sh")
        .args([
            "-c",
            "trap '' INT HUP TERM; read _ignored; sleep 0.2; rm -rf \"$1\"",
            "breakglass-rsyslog-watchdog",
        ])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the rsyslog watchdog (/bin/sh)");
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

impl Drop for Rsyslog {
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
