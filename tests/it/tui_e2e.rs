//! The console end to end in a real pseudo-terminal: the real binary under a PTY,
//! keystrokes written to the master, its output parsed by a terminal emulator
//! (vt100), and assertions on what a person would see.

use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The console as a real OS account through a broker.
mod broker;

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");
const DBA: &str = "prod-db-emergency-dba";

const UP: &str = "\x1b[A";
const DOWN: &str = "\x1b[B";
const HOME: &str = "\x1b[H";
const TAB: &str = "\t";
const ENTER: &str = "\r";
const CTRL_S: &str = "\x13";
const CTRL_C: &str = "\x03";

/// What the emulator saw besides the screen: window titles and OSC 52 copies.
#[derive(Default)]
struct Seen {
    titles: Vec<String>,
    clipboard: Vec<String>,
}

impl vt100::Callbacks for Seen {
    fn set_window_title(&mut self, _: &mut vt100::Screen, title: &[u8]) {
        self.titles
            .push(String::from_utf8_lossy(title).into_owned());
    }
    fn set_window_icon_name(&mut self, _: &mut vt100::Screen, name: &[u8]) {
        self.titles.push(String::from_utf8_lossy(name).into_owned());
    }
    fn copy_to_clipboard(&mut self, _: &mut vt100::Screen, _ty: &[u8], data: &[u8]) {
        self.clipboard
            .push(String::from_utf8_lossy(data).into_owned());
    }
}

/// The console running under a PTY.
struct Console {
    parser: Arc<Mutex<vt100::Parser<Seen>>>,
    /// Every byte the child wrote, unparsed.
    raw: Arc<Mutex<Vec<u8>>>,
    eof: Arc<AtomicBool>,
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    exited: Option<portable_pty::ExitStatus>,
}

impl Console {
    /// `breakglass demo --dir DIR` in a `cols` x `rows` terminal.
    fn demo(dir: &Path, cols: u16, rows: u16) -> Console {
        Console::spawn(dir, cols, rows, &[])
    }

    fn spawn(dir: &Path, cols: u16, rows: u16, env: &[(&str, &str)]) -> Console {
        let mut cmd = CommandBuilder::new(BIN);
        cmd.args(["demo", "--dir"]);
        cmd.arg(dir);
        cmd.env("TERM", "xterm-256color");
        for k in [
            "BREAKGLASS_FAILPOINT",
            "NO_COLOR",
            "BREAKGLASS_CONFIG",
            "BREAKGLASS_LOG",
            "RUST_BACKTRACE",
            "RUST_LIB_BACKTRACE",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Console::command(cmd, cols, rows)
    }

    /// Any command (the console however it is started) in a `cols` x `rows` terminal.
    fn command(cmd: CommandBuilder, cols: u16, rows: u16) -> Console {
        let pair = native_pty_system()
            .openpty(size(cols, rows))
            .expect("openpty");
        let child = pair.slave.spawn_command(cmd).expect("spawn the console");
        // Only the child holds the slave now, so the reader sees EOF when it exits.
        drop(pair.slave);
        let parser = Arc::new(Mutex::new(vt100::Parser::new_with_callbacks(
            rows,
            cols,
            0,
            Seen::default(),
        )));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let eof = Arc::new(AtomicBool::new(false));
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        {
            let (parser, raw, eof) = (parser.clone(), raw.clone(), eof.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            raw.lock().unwrap().extend_from_slice(&buf[..n]);
                            parser.lock().unwrap().process(&buf[..n]);
                        }
                    }
                }
                eof.store(true, Ordering::SeqCst);
            });
        }
        let writer = pair.master.take_writer().expect("pty writer");
        Console {
            parser,
            raw,
            eof,
            master: pair.master,
            writer,
            child,
            exited: None,
        }
    }

    fn pid(&self) -> i32 {
        self.child.process_id().expect("child pid") as i32
    }

    fn send(&mut self, keys: &str) {
        self.writer
            .write_all(keys.as_bytes())
            .expect("write to pty");
        self.writer.flush().expect("flush pty");
    }

    /// Esc alone, with a pause so the next key is not read as Alt+key.
    fn esc(&mut self) {
        std::thread::sleep(Duration::from_millis(100));
        self.send("\x1b");
        std::thread::sleep(Duration::from_millis(150));
    }

    fn screen(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    fn with_screen<T>(&self, f: impl FnOnce(&vt100::Screen) -> T) -> T {
        f(self.parser.lock().unwrap().screen())
    }

    fn with_seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(self.parser.lock().unwrap().callbacks())
    }

    fn raw(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }

    /// Polls the screen every 50 ms until `ok` holds; on timeout panics with it.
    fn wait_until(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting for {what}; the screen:\n{s}\n---");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for(&self, text: &str, timeout: Duration) -> String {
        self.wait_until(&format!("{text:?}"), timeout, |s| s.contains(text))
    }

    /// Waits for a row showing both texts.
    fn wait_row(&self, a: &str, b: &str) -> String {
        self.wait_until(&format!("a row with {a:?} and {b:?}"), T, |s| {
            s.lines().any(|l| l.contains(a) && l.contains(b))
        })
    }

    fn wait_gone(&self, text: &str, timeout: Duration) -> String {
        self.wait_until(&format!("{text:?} to disappear"), timeout, |s| {
            !s.contains(text)
        })
    }

    /// Presses Down until the highlighted row (`› `) shows `text`.
    fn select(&mut self, text: &str) {
        let target = format!("› {text}");
        for _ in 0..12 {
            let before = self.screen();
            if before.contains(&target) {
                return;
            }
            let marked = selected_row(&before);
            self.send(DOWN);
            self.wait_until("the selection to move", T, |s| selected_row(s) != marked);
        }
        panic!("{text} never got selected; the screen:\n{}", self.screen());
    }

    /// Switches demo persona with the picker (`p`, Home, Down n times, Enter).
    fn persona(&mut self, who: &str) {
        let index = ["alice", "bob", "carol", "dave"]
            .iter()
            .position(|p| *p == who)
            .expect("a demo persona");
        self.send("p");
        self.wait_for("act as another persona", T);
        self.send(HOME);
        for _ in 0..index {
            self.send(DOWN);
        }
        self.send(ENTER);
        self.wait_gone("act as another persona", T);
        self.wait_me(who);
    }

    /// Waits until the status bar names `who` as the acting identity.
    fn wait_me(&self, who: &str) {
        self.wait_until(&format!("{who} in the status bar"), T, |s| {
            acting(s).as_deref() == Some(who)
        });
    }

    fn resize(&mut self, cols: u16, rows: u16) {
        // The emulator first, so the redraw after SIGWINCH lands on the new size.
        self.parser
            .lock()
            .unwrap()
            .screen_mut()
            .set_size(rows, cols);
        self.master
            .resize(size(cols, rows))
            .expect("resize the pty");
    }

    /// Waits for the child to exit and for its last output to be parsed.
    fn wait_exit(&mut self, timeout: Duration) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                panic!(
                    "the console did not exit within {timeout:?}; the screen:\n{}",
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while !self.eof.load(Ordering::SeqCst) && Instant::now() < deadline + T {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.exited = Some(status.clone());
        status
    }

    /// On the open review form: actions and systems typed, "necessary" yes,
    /// "credentials copied" no; the cursor left on the follow-ups field's way.
    fn answer_review(&mut self, actions: &str, systems: &str) {
        self.send(actions);
        self.send(TAB);
        self.send(systems);
        self.send(TAB);
        self.send("y");
        self.send(TAB);
        self.send("n");
    }

    /// In Reviews, certifies the selected review with a comment.
    fn certify(&mut self, id: &str, comment: &str) {
        self.send("c");
        self.wait_for(&format!("Certify {id}"), T);
        self.send(comment);
        self.send(ENTER);
        self.wait_for(&format!("{id} certified"), T);
    }

    /// `q`, a clean exit, and the terminal restored.
    fn quit_restored(&mut self) {
        self.send("q");
        let status = self.wait_exit(T);
        assert!(status.success(), "exit {status:?}:\n{}", self.screen());
        self.assert_restored();
    }

    /// The terminal is back to normal: main screen, cursor visible.
    fn assert_restored(&self) {
        let (alt, hidden) = self.with_screen(|s| (s.alternate_screen(), s.hide_cursor()));
        assert!(
            !alt && !hidden,
            "terminal not restored (alternate screen {alt}, cursor hidden {hidden}); the screen:\n{}",
            self.screen()
        );
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("kill");
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The default wait: generous, for a loaded CI machine.
const T: Duration = Duration::from_secs(10);

fn size(cols: u16, rows: u16) -> PtySize {
    PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

/// Who the status bar (the last line) says is acting.
fn acting(screen: &str) -> Option<String> {
    let last = screen.lines().rev().find(|l| !l.trim().is_empty())?;
    let word = last.split_whitespace().next()?;
    Some(word.to_string())
}

fn selected_row(screen: &str) -> Option<String> {
    screen
        .lines()
        .find(|l| l.contains("› "))
        .map(str::to_string)
}

/// The countdown as the gauge label shows it: `HH:MM:SS` before " left of".
fn remaining(screen: &str) -> Option<String> {
    let line = screen.lines().find(|l| l.contains(" left of "))?;
    let at = line.find(" left of ")?;
    let clock = line[..at]
        .rsplit(|c: char| !(c.is_ascii_digit() || c == ':'))
        .next()?;
    (clock.len() == 8).then(|| clock.to_string())
}

/// A prepared demo directory (no console).
/// The review form's answer to a yes/no question: the text after its label.
fn answer(screen: &str, question: &str) -> String {
    screen
        .lines()
        .find_map(|l| l.split_once(question))
        .map(|(_, rest)| rest.trim().trim_end_matches('│').trim().to_string())
        .unwrap_or_default()
}

fn demo_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["demo", "--no-console", "--dir"])
        .arg(tmp.path())
        .env_remove("BREAKGLASS_FAILPOINT")
        .output()
        .unwrap();
    assert!(out.status.success(), "demo --no-console: {out:?}");
    let cfg = tmp.path().join("breakglass.toml");
    assert!(cfg.exists());
    (tmp, cfg)
}

/// The CLI as a separate process against the same config.
fn cli(cfg: &Path, who: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.arg("--config").arg(cfg);
    if let Some(w) = who {
        c.args(["--as", w]);
    }
    c.args(args)
        .env_remove("BREAKGLASS_FAILPOINT")
        .env_remove("BREAKGLASS_CONFIG")
        .output()
        .unwrap()
}

fn cli_ok(cfg: &Path, who: Option<&str>, args: &[&str]) -> String {
    let out = cli(cfg, who, args);
    assert!(
        out.status.success(),
        "breakglass {args:?} as {who:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cli_json(cfg: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&cli_ok(cfg, None, &a)).expect("json output")
}

/// REQ-1 for the DBA role, approved by bob and carol, activated by alice.
fn active_via_cli(cfg: &Path) {
    cli_ok(
        cfg,
        Some("alice"),
        &[
            "request",
            "--incident",
            "INC-1042",
            "--role",
            DBA,
            "--condition",
            "production outage",
            "--reason",
            "primary is read-only; need to fail over",
        ],
    );
    cli_ok(cfg, Some("bob"), &["approve", "REQ-1"]);
    cli_ok(cfg, Some("carol"), &["approve", "REQ-1"]);
    cli_ok(cfg, Some("alice"), &["--json", "activate", "REQ-1"]);
}

#[test]
fn full_walk_request_approve_countdown_resize_review_certify() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("breakglass.toml");
    let mut c = Console::demo(tmp.path(), 100, 30);

    // Incidents -> roles -> form -> confirm, as alice.
    c.wait_for("INC-1042", T);
    c.wait_me("alice");
    c.select("INC-1042");
    c.send(ENTER);
    c.wait_for("for INC-1042 Checkout API", T);
    c.select(DBA);
    c.send(ENTER);
    c.wait_for("Activation form", T);
    // Nothing is picked until the person picks.
    assert!(!c.screen().contains("(•)"), "{}", c.screen());
    c.send(DOWN);
    c.wait_for("(•) production outage", T);
    c.send(DOWN);
    c.wait_for("(•) locked-out administrators", T);
    c.send(UP);
    c.wait_for("(•) production outage", T);
    c.send(TAB);
    c.send("primary is read-only; need to fail over");
    c.wait_for("primary is read-only; need to fail over", T);
    c.send(TAB); // TTL: left at the default
    c.wait_for("TTL 15m", T);
    c.send(CTRL_S);
    c.wait_for("Type the role name", T);
    c.send("prod-db-emergency");
    c.send(ENTER); // not the full name: refused
    c.wait_for(&format!("type the role name `{DBA}` to confirm"), T);
    c.send("-dba");
    c.send(ENTER);
    c.wait_for("0 of 2 approvals", T);
    c.wait_for("REQ-1 filed", T);

    // bob approves from the same console, through the persona switcher.
    c.persona("bob");
    c.send("3");
    c.wait_for("ready for you", T);
    assert!(c.screen().contains("REQ-1"), "{}", c.screen());
    c.send(ENTER);
    c.wait_for("Approve REQ-1?", T);
    c.send("y");
    c.wait_for("REQ-1: 1 of 2 approvals", T);

    // Back to alice, on the waiting screen.
    c.persona("alice");
    c.send("2");
    // The row itself (the flash above also names REQ-1): Enter needs the list.
    c.wait_row("REQ-1", "pending");
    c.send(ENTER);
    c.wait_for("1 of 2 approvals", T);
    c.wait_for("✓ bob at", T);

    // carol approves from another terminal; the console activates on its own.
    cli_ok(&cfg, Some("carol"), &["approve", "REQ-1"]);
    c.wait_for(" left of 15m", Duration::from_secs(8));
    // The store may say active a moment before the grant's answer (with the
    // credential) reaches the console; then it arrives, masked.
    let s = c.wait_for("••••••••••••", T);
    assert!(s.contains("[active]"), "{s}");
    assert!(!s.contains("not in this console"), "{s}");
    assert!(s.contains("███"), "no big clock:\n{s}");

    // The countdown ticks.
    let first = remaining(&s).expect("a countdown");
    assert!(
        first.starts_with("00:14:") || first == "00:15:00",
        "{first}"
    );
    c.wait_until("the countdown to tick", Duration::from_secs(5), |s| {
        remaining(s).is_some_and(|r| r != first)
    });

    // Reveal, mask again, copy (OSC 52).
    c.send("r");
    c.wait_gone("••••••••••••", T);
    c.send("r");
    c.wait_for("••••••••••••", T);
    c.send("y");
    c.wait_for("credential copied", T);
    c.wait_until("the OSC 52 copy", T, |_| {
        c.with_seen(|seen| !seen.clipboard.is_empty())
    });

    // Resize mid-countdown: smaller, too small, back.
    c.resize(80, 24);
    c.wait_until("the countdown at 80x24", T, |s| {
        s.lines().count() <= 24 && s.contains(" left of 15m") && s.contains("█")
    });
    c.resize(60, 20);
    c.wait_for("Terminal too small", T);
    c.wait_gone(" left of ", T);
    c.resize(100, 30);
    let s = c.wait_for(" left of 15m", T);
    assert!(!s.contains("Terminal too small"), "{s}");
    assert!(
        s.contains("r reveal/mask the credential · e extend (with a reason) · x end access now"),
        "the hint line names the keys: {s}"
    );

    // End now; the review form opens by itself.
    c.send("x");
    c.wait_for("End REQ-1 now?", T);
    c.send("y");
    c.wait_for("After-action review of REQ-1", T);
    c.wait_for("access revoked (backend confirmed)", T);
    c.answer_review("promoted the replica", "db-1");
    c.send(TAB);
    c.send(TAB);
    c.send("add a runbook step");
    c.wait_for("add a runbook step", T);
    let s = c.screen();
    assert!(
        s.contains("promoted the replica") && s.contains("db-1"),
        "{s}"
    );
    c.send(CTRL_S);
    c.wait_for("REQ-1 reviewed", T);
    c.wait_for("awaiting certification by someone else", T);

    // dave certifies.
    c.persona("dave");
    c.send("4");
    c.wait_for("ready for you", T);
    c.wait_for("promoted the replica", T);
    c.certify("REQ-1", "reviewed with the team");
    c.quit_restored();

    let v = cli_json(&cfg, &["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["verified_events"].as_u64().unwrap() >= 8, "{v}");
    let roles = cli_json(&cfg, &["roles"]);
    let dba = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == DBA)
        .expect("the DBA role");
    assert!(dba["lock_reason"].is_null(), "still locked: {dba}");
    let st = cli_json(&cfg, &["status", "REQ-1"]);
    assert_eq!(st["request"]["state"], "certified", "{st}");
}

#[test]
fn restores_the_terminal_on_q() {
    let (tmp, _) = demo_dir();
    let mut c = Console::demo(tmp.path(), 100, 30);
    c.wait_for("INC-1042", T);
    let (alt, hidden) = c.with_screen(|s| (s.alternate_screen(), s.hide_cursor()));
    assert!(
        alt && hidden,
        "the console should own the screen while running"
    );
    c.quit_restored();
}

#[test]
fn restores_the_terminal_on_sighup() {
    let (tmp, _) = demo_dir();
    let mut c = Console::demo(tmp.path(), 100, 30);
    c.wait_for("INC-1042", T);
    c.signal(nix::sys::signal::Signal::SIGHUP);
    c.wait_exit(T);
    c.assert_restored();
}

#[test]
fn restores_the_terminal_on_sigint() {
    // Ctrl-C is a key in raw mode; a SIGINT (kill -INT) must still end cleanly.
    let (tmp, _) = demo_dir();
    let mut c = Console::demo(tmp.path(), 100, 30);
    c.wait_for("INC-1042", T);
    c.signal(nix::sys::signal::Signal::SIGINT);
    let status = c.wait_exit(T);
    assert!(status.success(), "{status:?}");
    c.assert_restored();
}

#[test]
fn restores_the_terminal_on_sigterm_and_says_access_is_still_active() {
    let (tmp, cfg) = demo_dir();
    active_via_cli(&cfg);
    let mut c = Console::demo(tmp.path(), 100, 30);
    c.wait_for("INC-1042", T);
    c.send("2");
    c.wait_row("REQ-1", "active");
    c.signal(nix::sys::signal::Signal::SIGTERM);
    c.wait_exit(T);
    c.assert_restored();
    let s = c.wait_for("is still ACTIVE", T);
    assert!(s.contains("REQ-1 is still ACTIVE until"), "{s}");
    assert!(s.contains("--as alice revoke REQ-1"), "{s}");
}

#[test]
fn restores_the_terminal_after_a_panic() {
    let (tmp, _) = demo_dir();
    let mut c = Console::spawn(tmp.path(), 100, 30, &[("BREAKGLASS_FAILPOINT", "tui.key")]);
    c.wait_for("INC-1042", T);
    c.send("j");
    let status = c.wait_exit(T);
    assert!(!status.success(), "a panic must not exit 0: {status:?}");
    c.assert_restored();
    c.wait_for("fail point tui.key", T);
}

#[test]
fn hostile_incident_titles_cannot_drive_the_terminal() {
    let (tmp, _) = demo_dir();
    std::fs::write(
        tmp.path().join("incidents.toml"),
        r#"
[[incidents]]
id = "INC-\u001b[8m666"
title = "DB \u001b]0;pwned\u0007\u001b[2J\u001b[31mdown"
severity = "SEV1"
status = "open"
"#,
    )
    .unwrap();
    let mut c = Console::demo(tmp.path(), 100, 30);
    c.wait_for("DB down", T);
    c.wait_for("INC-666", T);
    c.send(ENTER);
    c.wait_for("for INC-666 DB down", T);
    c.send("q");
    c.wait_exit(T);
    c.assert_restored();
    let titles = c.with_seen(|s| s.titles.clone());
    assert!(!titles.iter().any(|t| t.contains("pwned")), "{titles:?}");
    let raw = String::from_utf8_lossy(&c.raw()).into_owned();
    assert!(!raw.contains("]0;pwned"), "the raw output carried the OSC");
    assert!(!raw.contains("pwned"), "the raw output carried the payload");
    assert!(
        !raw.contains("\x1b[8m"),
        "the raw output carried the id's escape"
    );
}

#[test]
fn keys_do_nothing_behind_the_too_small_notice() {
    let (tmp, cfg) = demo_dir();
    active_via_cli(&cfg);
    cli_ok(
        &cfg,
        Some("alice"),
        &[
            "request",
            "--ticket",
            "CHG-77",
            "--role",
            "k8s-cluster-admin",
            "--condition",
            "failed automation path",
            "--reason",
            "deploy pipeline wedged",
        ],
    );
    let mut c = Console::demo(tmp.path(), 100, 30);
    c.wait_for("INC-1042", T);
    // bob, on his Approvals queue with REQ-2 ready: `a` then `y` would approve it.
    c.persona("bob");
    c.send("3");
    c.wait_for("ready for you", T);
    c.resize(60, 20);
    c.wait_for("Terminal too small", T);
    for k in ["a", "y", ENTER, "y"] {
        c.send(k);
    }
    // Nothing shows while the notice does, so only time tells the keys were read.
    std::thread::sleep(Duration::from_millis(500));
    let st = cli_json(&cfg, &["status", "REQ-2"]);
    assert_eq!(st["request"]["state"], "pending", "{st}");
    // alice, on her active REQ-1: `x` then `y` would end it.
    c.resize(100, 30);
    c.wait_gone("Terminal too small", T);
    assert!(!c.screen().contains("Approve REQ-2?"), "{}", c.screen());
    // Her console opens on her live access.
    c.persona("alice");
    c.wait_for(" left of 15m", T);
    c.resize(60, 20);
    c.wait_for("Terminal too small", T);
    for k in ["x", "y", "e", "r"] {
        c.send(k);
    }
    std::thread::sleep(Duration::from_millis(500));
    let st = cli_json(&cfg, &["status", "REQ-1"]);
    assert_eq!(st["request"]["state"], "active", "{st}");
    c.resize(100, 30);
    let s = c.wait_for(" left of 15m", T);
    assert!(!s.contains("End REQ-1 now?"), "{s}");
    assert!(!s.contains("Extend REQ-1"), "{s}");
    // q still quits while the notice shows.
    c.resize(60, 20);
    c.wait_for("q quits", T);
    c.send("q");
    let status = c.wait_exit(T);
    assert!(status.success(), "{status:?}");
    c.assert_restored();
}

/// A long paste arrives as one bracketed event: the key after it is answered
/// at once, and the text lands whole (capped) in the focused field.
#[test]
fn a_long_paste_is_one_edit_and_the_next_key_is_answered() {
    // 4,000 characters, the issue's case, in one write with the Tab before
    // it: crossterm's default reader (mio, edge-triggered) returned the Tab
    // and left the rest of the paste unread until another key came.
    paste_then_submit(4000);
}

fn paste_then_submit(n: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Console::demo(tmp.path(), 100, 30);
    c.wait_for("INC-1042", T);
    c.select("INC-1042");
    c.send(ENTER);
    c.wait_for("for INC-1042 Checkout API", T);
    c.select(DBA);
    c.send(ENTER);
    c.wait_for("Activation form", T);
    c.send(DOWN);
    c.wait_for("(•) production outage", T);
    // Bracketed paste is on: the console asked the terminal for it.
    let raw = String::from_utf8_lossy(&c.raw()).into_owned();
    assert!(raw.contains("\x1b[?2004h"), "bracketed paste not enabled");
    let body = format!("paste-start {}", "y".repeat(n));
    c.send(&format!("{TAB}\x1b[200~{body}\x1b[201~"));
    c.wait_for("paste-start", T);
    c.wait_for("yyyyyyyyyyyyyyyyyyyy", T);
    c.send(CTRL_S);
    c.wait_for("Type the role name", Duration::from_secs(3));
    c.send(CTRL_C);
    let status = c.wait_exit(T);
    assert!(status.success(), "{status:?}");
    c.assert_restored();
    let raw = String::from_utf8_lossy(&c.raw()).into_owned();
    assert!(raw.contains("\x1b[?2004l"), "bracketed paste left on");
}

#[test]
fn a_review_draft_survives_quitting() {
    let (tmp, cfg) = demo_dir();
    active_via_cli(&cfg);
    let mut c = Console::demo(tmp.path(), 100, 30);
    c.wait_for("INC-1042", T);
    c.send("2");
    c.wait_row("REQ-1", "active");
    c.send(ENTER);
    c.wait_for(" left of 15m", T);
    c.wait_for("not in this console", T);
    c.send("x");
    c.wait_for("End REQ-1 now?", T);
    c.send("y");
    c.wait_for("After-action review of REQ-1", T);
    c.send("rolled back the config push");
    c.send(TAB);
    c.send("db-1, db-2");
    c.wait_for("db-1, db-2", T);
    // One question answered, one left open: the draft must keep it open.
    c.send(TAB);
    c.send("y");
    c.wait_until("necessary: yes", T, |s| {
        answer(s, "was the access necessary?") == "yes"
    });
    c.send(CTRL_C);
    let status = c.wait_exit(T);
    assert!(status.success(), "{status:?}");
    c.assert_restored();
    drop(c);

    let mut c = Console::demo(tmp.path(), 100, 30);
    let s = c.wait_for("Resumed your saved draft", T);
    assert!(s.contains("After-action review of REQ-1"), "{s}");
    assert!(s.contains("rolled back the config push"), "{s}");
    assert!(s.contains("db-1, db-2"), "{s}");
    assert_eq!(answer(&s, "was the access necessary?"), "yes", "{s}");
    assert_eq!(answer(&s, "credentials copied anywhere?"), "(y/n)", "{s}");
    // Submitting with a question unanswered is refused, and nothing was sent.
    c.send(CTRL_S);
    c.wait_for("answer both yes/no questions", T);
    let review = cli_json(&cfg, &["status", "REQ-1"]);
    assert_eq!(review["request"]["state"], "ended", "{review}");

    // Esc keeps the draft; q asks for the owed review once; Esc then q quits.
    c.esc();
    c.wait_for("draft of REQ-1's review kept", T);
    c.wait_gone("After-action review of REQ-1", T);
    c.send("q");
    c.wait_for("owes its after-action review", T);
    c.wait_for("rolled back the config push", T);
    c.esc();
    c.wait_gone("After-action review of REQ-1", T);
    c.quit_restored();
}

#[test]
fn vendor_session_opens_from_the_console_and_the_certifier_replays_it_there() {
    let (tmp, cfg) = demo_dir();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        r#"
[[roles]]
name = "vendor-db-support"
description = "The database vendor's support engineer"
backend = "demo"
scope = { member_of = ["vendor_support"] }
default_ttl = "15m"
max_ttl = "30m"
vendor = true
shell_command = "sh"
conditions = ["production outage"]
requesters = ["@oncall"]
approvers = ["@sre-leads"]
certifiers = ["@security"]
"#,
    );
    std::fs::write(&cfg, text).unwrap();
    cli_ok(
        &cfg,
        Some("dave"),
        &[
            "roles",
            "recertify",
            "vendor-db-support",
            "--comment",
            "reviewed",
        ],
    );
    cli_ok(
        &cfg,
        Some("alice"),
        &[
            "request",
            "--incident",
            "INC-1042",
            "--role",
            "vendor-db-support",
            "--condition",
            "production outage",
            "--reason",
            "vendor must inspect the replication slot",
            "--vendor-name",
            "Vera Vendor",
            "--vendor-company",
            "DB Corp",
        ],
    );
    cli_ok(&cfg, Some("bob"), &["approve", "REQ-1"]);

    // alice: the approved vendor request waits for her, not auto-activated.
    let mut c = Console::demo(tmp.path(), 100, 30);
    c.wait_for("INC-1042", T);
    c.send("2");
    c.wait_row("REQ-1", "approved");
    c.send(ENTER);
    c.wait_for("press s to open it", T);
    std::thread::sleep(Duration::from_millis(1500));
    let st = cli_json(&cfg, &["status", "REQ-1"]);
    assert_eq!(st["request"]["state"], "approved", "{st}");

    // s hands the terminal to the recorded session; exit comes back.
    c.send("s");
    c.wait_for("session recorded to", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    c.send("echo vendor-was-$((40+2))\r");
    c.wait_for("vendor-was-42", T);
    c.send("exit\r");
    c.wait_for("press Enter to return to the console", T);
    c.send(ENTER);
    c.wait_for("After-action review of REQ-1", T);
    c.wait_for("the recorded session ended", T);
    c.answer_review("looked at the replication slot", "db-1");
    c.send(CTRL_S);
    c.wait_for("REQ-1 reviewed", T);

    // dave: certify is held until he watched it; w replays it in the console.
    c.persona("dave");
    c.send("4");
    c.wait_for("watch it before certifying (w)", T);
    c.send("c");
    c.wait_for("watch its recording first", T);
    c.send("w");
    c.wait_for("end of the recording of REQ-1", Duration::from_secs(30));
    assert!(c.screen().contains("vendor-was-42"), "{}", c.screen());
    // The prompt after the replay, not the one left above it by the session.
    c.wait_until("the prompt after the replay", T, |s| {
        s.split("end of the recording of REQ-1")
            .nth(1)
            .is_some_and(|after| after.contains("press Enter to return to the console"))
    });
    c.send(ENTER);
    c.wait_for("you watched it", T);
    c.certify("REQ-1", "watched the session; nothing unexpected");
    c.quit_restored();

    let v = cli_json(&cfg, &["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    let events = cli_ok(&cfg, None, &["audit", "export"]);
    let who_did = |action: &str| -> Vec<String> {
        events
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["action"] == action)
            .map(|e| e["actor"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(who_did("session.recorded"), ["alice"]);
    assert_eq!(who_did("session.replayed"), ["dave"]);
    let st = cli_json(&cfg, &["status", "REQ-1"]);
    assert_eq!(st["request"]["state"], "certified", "{st}");
}
