//! A server a test starts (PostgreSQL, rsyslogd, OpenBao) that can never outlive
//! it. The child gets `PR_SET_PDEATHSIG`, which fires when the *thread* that
//! forked it ends, so it is forked from a thread that lives exactly as long as
//! the server is wanted: dropping the `stop` sender (or the test process dying,
//! even on SIGKILL) ends it. It runs in its own process group, so Ctrl-C goes
//! to the tests, not to it.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

pub struct Owned {
    pub pid: u32,
    /// Send or drop to stop the server (with `stop_signal`) and reap it.
    pub stop: mpsc::Sender<()>,
    pub thread: std::thread::JoinHandle<()>,
    /// Set when the server exited on its own.
    pub exited: Arc<AtomicBool>,
}

impl Owned {
    pub fn has_exited(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
    }
}

/// Spawns `cmd` from an owner thread named `name`. `death` is the signal the
/// kernel sends if the owner goes; `stop_signal` is sent on `stop` (None: kill).
/// `with_child` runs on the owner thread right after the spawn (e.g. to take
/// piped output).
pub fn spawn_owned(
    mut cmd: Command,
    name: String,
    death: nix::sys::signal::Signal,
    stop_signal: Option<nix::sys::signal::Signal>,
    with_child: impl FnOnce(&mut Child) + Send + 'static,
) -> Result<Owned, String> {
    cmd.process_group(0);
    let parent = std::process::id();
    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            // Runs after any uid change, which would otherwise clear it.
            nix::sys::prctl::set_pdeathsig(death).map_err(std::io::Error::from)?;
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(std::io::Error::other("parent already gone"));
            }
            Ok(())
        });
    }
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (pid_tx, pid_rx) = mpsc::channel::<Result<u32, String>>();
    let exited = Arc::new(AtomicBool::new(false));
    let exited2 = exited.clone();
    let label = name.clone();
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = pid_tx.send(Err(format!("cannot start {label}: {e}")));
                    return;
                }
            };
            with_child(&mut child);
            let _ = pid_tx.send(Ok(child.id()));
            loop {
                match stop_rx.recv_timeout(Duration::from_millis(200)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Ok(Some(_)) = child.try_wait() {
                            exited2.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                    _ => {
                        match stop_signal {
                            Some(sig) => {
                                let _ = nix::sys::signal::kill(
                                    nix::unistd::Pid::from_raw(child.id() as i32),
                                    sig,
                                );
                            }
                            None => {
                                let _ = child.kill();
                            }
                        }
                        let _ = child.wait();
                        return;
                    }
                }
            }
        })
        .map_err(|e| e.to_string())?;
    let pid = pid_rx.recv().map_err(|e| e.to_string())??;
    Ok(Owned {
        pid,
        stop: stop_tx,
        thread,
        exited,
    })
}

/// Removes a directory once its owner is dropped or this process ends, however
/// it ends (even SIGKILL): a small shell waits for its stdin, a pipe only this
/// process holds, to close. Servers in the directory are gone by then (reaped,
/// or ended by their death signal); the short sleep lets their last writes land.
pub struct DirWatchdog {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
}

impl DirWatchdog {
    pub fn new(dir: &std::path::Path, name: &str) -> DirWatchdog {
        let mut child = Command::new("/bin/sh")
            .args([
                "-c",
                "trap '' INT HUP TERM; read _ignored; sleep 0.2; rm -rf \"$1\"",
                name,
            ])
            .arg(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start a directory watchdog (/bin/sh)");
        let stdin = child.stdin.take();
        DirWatchdog { child, stdin }
    }
}

impl Drop for DirWatchdog {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
