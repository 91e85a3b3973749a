//! The real binary under a pseudo-terminal, and a scanner for the raw bytes it
//! wrote there: what a terminal would act on (escape sequences, control bytes,
//! bidi overrides) rather than what a person would read.
#![allow(dead_code)]

use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one command wrote to its terminal (stdout and stderr share it) and how
/// it exited.
pub struct PtyRun {
    pub raw: Vec<u8>,
    pub code: u32,
}

impl PtyRun {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// Runs the binary with stdin, stdout and stderr on a fresh PTY (so
/// `is_terminal()` is true for all three), as a demo persona when `who` is given.
/// Nothing is typed: a command that prompts would hang and fail the timeout.
pub fn bg_pty(config: &Path, who: Option<&str>, args: &[&str]) -> PtyRun {
    bg_pty_env(config, who, args, &[])
}

pub fn bg_pty_env(config: &Path, who: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> PtyRun {
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_breakglass"));
    cmd.arg("--config");
    cmd.arg(config);
    if let Some(w) = who {
        cmd.args(["--as", w]);
    }
    cmd.args(args);
    // A colour-capable terminal, nothing that would turn colour or logging off
    // or on from the outside.
    cmd.env("TERM", "xterm-256color");
    for k in [
        "NO_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "BREAKGLASS_FAILPOINT",
        "BREAKGLASS_CONFIG",
        "BREAKGLASS_LOG",
        "BREAKGLASS_SSH_KEY",
        "RUST_BACKTRACE",
        "RUST_LIB_BACKTRACE",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, &format!("breakglass {args:?}"))
}

/// Runs `cmd` with stdin, stdout and stderr on a fresh 200x50 PTY; `what` names
/// it when it does not exit within 60 s.
pub fn run(cmd: CommandBuilder, what: &str) -> PtyRun {
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 50,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("openpty");
    let mut child = pair.slave.spawn_command(cmd).expect("spawn under a pty");
    // Only the child holds the slave now: the reader ends when it exits.
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("pty reader");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(raw);
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not exit within 60s under a pty");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let raw = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the pty reader did not finish after the child exited");
    drop(pair.master);
    PtyRun {
        raw,
        code: status.exit_code(),
    }
}

/// What the scanner lets through besides printable text, `\t`, `\n` and `\r`.
#[derive(Clone, Copy, Debug)]
pub struct Allow {
    /// `ESC [ digits;… m` (Select Graphic Rendition: colours, bold).
    pub sgr: bool,
}

/// One thing a terminal would act on, at a byte offset of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub at: usize,
    pub what: String,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub violations: Vec<Violation>,
    /// SGR sequences seen (and allowed).
    pub sgr: usize,
    /// The longest run of one repeated byte, with the byte.
    pub longest_run: (u8, usize),
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

fn show(bytes: &[u8]) -> String {
    let end = bytes.len().min(40);
    format!("{:?}", String::from_utf8_lossy(&bytes[..end]))
}

/// Index just past the String Terminator (BEL, `ESC \` or 8-bit ST) of a
/// control string whose body starts at `from`, or the end of the input.
fn skip_control_string(b: &[u8], from: usize) -> usize {
    let mut j = from;
    while j < b.len() {
        match b[j] {
            0x07 | 0x9c => return j + 1,
            0x1b if b.get(j + 1) == Some(&b'\\') => return j + 2,
            _ => j += 1,
        }
    }
    j
}

/// Walks the raw bytes as a terminal would (ECMA-48 escape sequences, C0 and
/// C1 controls, UTF-8) and lists everything that is not plain text: any escape
/// sequence but an allowed SGR, control bytes other than `\t` `\n` `\r`, C1
/// controls as raw 8-bit bytes or as UTF-8 (U+0080..U+009F), bidi controls
/// and invalid UTF-8.
pub fn scan(b: &[u8], allow: Allow) -> Scan {
    let mut violations = Vec::new();
    let mut sgr = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            0x1b => {
                let Some(&next) = b.get(i + 1) else {
                    violations.push(Violation {
                        at: i,
                        what: "lone ESC at the end".into(),
                    });
                    break;
                };
                match next {
                    b'[' => {
                        // CSI: parameter bytes, intermediate bytes, one final byte.
                        let mut j = i + 2;
                        while j < b.len() && (0x30..=0x3f).contains(&b[j]) {
                            j += 1;
                        }
                        let params_end = j;
                        while j < b.len() && (0x20..=0x2f).contains(&b[j]) {
                            j += 1;
                        }
                        let intermediates = j > params_end;
                        match b.get(j) {
                            Some(&f) if (0x40..=0x7e).contains(&f) => {
                                let params = &b[i + 2..params_end];
                                let is_sgr = f == b'm'
                                    && !intermediates
                                    && params
                                        .iter()
                                        .all(|p| p.is_ascii_digit() || *p == b';' || *p == b':');
                                if is_sgr && allow.sgr {
                                    sgr += 1;
                                } else {
                                    violations.push(Violation {
                                        at: i,
                                        what: format!("CSI {}", show(&b[i..=j])),
                                    });
                                }
                                i = j + 1;
                            }
                            _ => {
                                violations.push(Violation {
                                    at: i,
                                    what: format!(
                                        "malformed or unterminated CSI {}",
                                        show(&b[i..])
                                    ),
                                });
                                i = j.max(i + 2);
                            }
                        }
                    }
                    b']' | b'P' | b'X' | b'^' | b'_' => {
                        let kind = match next {
                            b']' => "OSC",
                            b'P' => "DCS",
                            b'X' => "SOS",
                            b'^' => "PM",
                            _ => "APC",
                        };
                        let end = skip_control_string(b, i + 2);
                        violations.push(Violation {
                            at: i,
                            what: format!("{kind} {}", show(&b[i..end])),
                        });
                        i = end;
                    }
                    _ => {
                        // Any other escape (ESC c, ESC 7, ESC ( B, ESC D, ...):
                        // intermediates then one final byte.
                        let mut j = i + 1;
                        while j < b.len() && (0x20..=0x2f).contains(&b[j]) {
                            j += 1;
                        }
                        let end = (j + 1).min(b.len());
                        violations.push(Violation {
                            at: i,
                            what: format!("escape {}", show(&b[i..end])),
                        });
                        i = end;
                    }
                }
            }
            b'\t' | b'\n' | b'\r' => i += 1,
            0x07 => {
                violations.push(Violation {
                    at: i,
                    what: "BEL".into(),
                });
                i += 1;
            }
            0x00..=0x1f | 0x7f => {
                violations.push(Violation {
                    at: i,
                    what: format!("C0 control 0x{c:02x}"),
                });
                i += 1;
            }
            0x20..=0x7e => i += 1,
            _ => {
                let len = match c {
                    0xc2..=0xdf => 2,
                    0xe0..=0xef => 3,
                    0xf0..=0xf4 => 4,
                    _ => 0,
                };
                let ch = (len > 0 && i + len <= b.len())
                    .then(|| std::str::from_utf8(&b[i..i + len]).ok())
                    .flatten()
                    .and_then(|t| t.chars().next());
                match ch {
                    Some(ch) => {
                        if ('\u{80}'..='\u{9f}').contains(&ch) {
                            violations.push(Violation {
                                at: i,
                                what: format!("C1 control U+{:04X} (UTF-8)", ch as u32),
                            });
                        } else if is_bidi_control(ch) {
                            violations.push(Violation {
                                at: i,
                                what: format!("bidi control U+{:04X}", ch as u32),
                            });
                        }
                        i += len;
                    }
                    None => {
                        let what = if (0x80..=0x9f).contains(&c) {
                            format!("raw 8-bit C1 control 0x{c:02x}")
                        } else {
                            format!("invalid UTF-8 byte 0x{c:02x}")
                        };
                        violations.push(Violation { at: i, what });
                        i += 1;
                    }
                }
            }
        }
    }
    Scan {
        violations,
        sgr,
        longest_run: longest_run(b),
    }
}

fn longest_run(b: &[u8]) -> (u8, usize) {
    let mut best = (0u8, 0usize);
    let mut i = 0;
    while i < b.len() {
        let mut j = i;
        while j < b.len() && b[j] == b[i] {
            j += 1;
        }
        if j - i > best.1 {
            best = (b[i], j - i);
        }
        i = j;
    }
    best
}
