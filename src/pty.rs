//! A command run in a pseudo-terminal (portable-pty: a new session with the PTY
//! as its controlling terminal), relayed to and from this terminal and recorded
//! as asciicast v2: output always, input only when asked. It knows nothing of
//! requests or where the recording goes: `breakglass shell` (cli/session.rs)
//! takes what was recorded and sends it on.

use crate::sync::LockExt;
use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};
use std::io::{Read, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// An asciicast v2 recording being made: a header line, then `[time, code,
/// data]`. Lines collect until taken (`Session::take_recorded`).
pub struct Recorder {
    pending: Vec<u8>,
    start: Instant,
    /// Bytes of a UTF-8 sequence split across reads, per stream.
    carry_o: Vec<u8>,
    carry_i: Vec<u8>,
}

impl Recorder {
    /// A recording whose first line is `header` (asciicast v2's header object).
    pub fn new(header: &serde_json::Value) -> Self {
        Recorder {
            pending: format!("{header}\n").into_bytes(),
            start: Instant::now(),
            carry_o: vec![],
            carry_i: vec![],
        }
    }

    /// Records `bytes` of stream `code` ("o" output, "i" input), holding back
    /// an unfinished UTF-8 sequence until the rest arrives.
    pub fn event(&mut self, code: &str, bytes: &[u8]) {
        let carry = if code == "i" {
            &mut self.carry_i
        } else {
            &mut self.carry_o
        };
        carry.extend_from_slice(bytes);
        let upto = match std::str::from_utf8(carry) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => carry.len(),
        };
        let text = String::from_utf8_lossy(&carry[..upto]).into_owned();
        carry.drain(..upto);
        if text.is_empty() {
            return;
        }
        let t = (self.start.elapsed().as_micros() as f64) / 1e6;
        let line = serde_json::json!([t, code, text]);
        let _ = writeln!(self.pending, "{line}");
    }
}

/// This terminal in raw mode until dropped, however the session ends.
pub struct RawMode;

impl RawMode {
    pub fn enable() -> Option<RawMode> {
        crossterm::terminal::enable_raw_mode().ok().map(|_| RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// A command started in a PTY, not yet relayed.
pub struct Spawned {
    master: Box<dyn MasterPty + Send>,
    child: Box<dyn Child + Send + Sync>,
    reader: Box<dyn Read + Send>,
    writer: Box<dyn Write + Send>,
}

/// Starts `program` (split on whitespace: a command and its arguments) in a
/// `cols` x `rows` PTY, in this directory, with `env` added to its environment
/// (the only place a credential goes: never its command line).
pub fn spawn<'a>(
    program: &str,
    (cols, rows): (u16, u16),
    env: impl IntoIterator<Item = (String, &'a str)>,
) -> anyhow::Result<Spawned> {
    let pair = native_pty_system().openpty(PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    })?;
    let mut words = program.split_whitespace();
    let mut cmd = CommandBuilder::new(words.next().unwrap_or("/bin/sh"));
    cmd.args(words);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Ok(cwd) = std::env::current_dir() {
        cmd.cwd(cwd);
    }
    let child = pair.slave.spawn_command(cmd)?;
    drop(pair.slave);
    let reader = pair.master.try_clone_reader()?;
    let writer = pair.master.take_writer()?;
    Ok(Spawned {
        master: pair.master,
        child,
        reader,
        writer,
    })
}

/// A command in a PTY being relayed: its output to this terminal and the
/// recording, this terminal's input to it.
pub struct Session {
    master: Box<dyn MasterPty + Send>,
    child: Box<dyn Child + Send + Sync>,
    recorder: Arc<Mutex<Recorder>>,
    /// Signalled when the output relay has read the PTY to its end.
    drained: mpsc::Receiver<()>,
}

impl Spawned {
    /// Starts the two relay threads; input is recorded only with `record_input`.
    pub fn relay(self, recorder: Recorder, record_input: bool) -> Session {
        let Spawned {
            master,
            child,
            mut reader,
            mut writer,
        } = self;
        let recorder = Arc::new(Mutex::new(recorder));
        let (done_tx, drained) = mpsc::channel();
        {
            let rec = recorder.clone();
            std::thread::spawn(move || {
                let mut out = std::io::stdout();
                let mut buf = [0u8; 8192];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let _ = out.write_all(&buf[..n]);
                            let _ = out.flush();
                            rec.locked().event("o", &buf[..n]);
                        }
                    }
                }
                let _ = done_tx.send(());
            });
        }
        {
            let rec = recorder.clone();
            std::thread::spawn(move || {
                let mut input = std::io::stdin();
                let mut buf = [0u8; 1024];
                loop {
                    match input.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if writer.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            let _ = writer.flush();
                            if record_input {
                                rec.locked().event("i", &buf[..n]);
                            }
                        }
                    }
                }
            });
        }
        Session {
            master,
            child,
            recorder,
            drained,
        }
    }
}

impl Session {
    /// Whether the command has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// What was recorded since the last call.
    pub fn take_recorded(&self) -> Vec<u8> {
        std::mem::take(&mut self.recorder.locked().pending)
    }

    /// Shows `text` on this terminal and records it as output.
    pub fn say(&self, text: &str) {
        let _ = std::io::stdout().write_all(text.as_bytes());
        let _ = std::io::stdout().flush();
        self.recorder.locked().event("o", text.as_bytes());
    }

    /// Ends the command's process group: SIGHUP, then SIGKILL after 2 seconds.
    pub fn hang_up(&mut self) {
        if let Some(pid) = self.child.process_id() {
            signal_group(pid, nix::sys::signal::Signal::SIGHUP);
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && !self.exited() {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !self.exited() {
                signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }

    /// Lets the relay drain what the command wrote last (a background process
    /// still holding the terminal does not keep us more than 2 seconds), then
    /// closes the PTY. What was recorded is still there to take.
    pub fn close(self) -> Recorded {
        let _ = self.drained.recv_timeout(Duration::from_secs(2));
        drop(self.master);
        Recorded(self.recorder)
    }
}

/// The recording of a closed session, for what it recorded last.
pub struct Recorded(Arc<Mutex<Recorder>>);

impl Recorded {
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.locked().pending)
    }
}

fn signal_group(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
}
