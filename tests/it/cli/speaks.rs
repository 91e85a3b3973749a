//! The command line says things the way a person at 3 a.m. needs them: every
//! option described, times in their terms, the same words as the console about
//! what ends access, a printed command that works as printed, and one demo
//! directory instead of a new one per run.

use crate::support::daemon::spawn_owned;
use crate::support::pty::bg_pty;
use crate::support::*;
use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

/// What `activate` and the console's exit message say in direct mode with no
/// daemon on the store, and with a broker (src/cli/still_active.rs).
const NEXT_COMMAND: &str = "Closing this terminal does not end it: it is revoked at expiry by the next breakglass command on this store or by a `breakglass daemon` (none is sweeping it now).";
const DAEMON: &str = "The running `breakglass daemon` revokes it at expiry, whether or not this terminal stays open.";
const BROKER: &str = "The broker revokes it at expiry, whether or not this terminal stays open.";

#[test]
fn every_option_and_argument_of_every_command_says_what_it_is() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let said = a
                .get_help()
                .or(a.get_long_help())
                .is_some_and(|h| !h.to_string().trim().is_empty());
            if !said && !a.is_hide_set() {
                missing.push(format!("{path}: {}", a.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() {
                missing.push(format!("{path} {}: (the command itself)", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut cmd = breakglass::cli::Cli::command();
    cmd.build();
    let mut missing = vec![];
    walk(&cmd, "breakglass", &mut missing);
    assert!(missing.is_empty(), "undescribed in --help: {missing:#?}");
}

/// The lines of one `Heading:` section of a help text.
fn section<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

#[test]
fn help_lists_the_global_options_under_their_own_heading() {
    for args in [
        &["--help"][..],
        &["activate", "--help"],
        &["request", "--help"],
    ] {
        let o = Command::new(BIN)
            .args(args)
            .env("BREAKGLASS_CONFIG", "/srv/bg/breakglass.toml")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0));
        let help = stdout(&o);
        let listed = |heading: &str, opt: &str| {
            section(&help, heading)
                .iter()
                .any(|l| l.trim_start().starts_with(&format!("{opt} ")))
        };
        for opt in ["--config", "--as", "--json", "--theme"] {
            assert!(
                listed("Global options:", opt),
                "{opt} under Global options:\n{help}"
            );
            assert!(
                !listed("Options:", opt),
                "{opt} not among the command's own:\n{help}"
            );
        }
        let global = section(&help, "Global options:").join("\n");
        // The file it reads without --config, not something to always pass.
        assert!(
            global.contains("[default: /srv/bg/breakglass.toml, from $BREAKGLASS_CONFIG]"),
            "{help}"
        );
        assert!(!help.to_lowercase().contains("required"), "{help}");
    }
    let help = stdout(
        &Command::new(BIN)
            .args(["request", "--help"])
            .output()
            .unwrap(),
    );
    assert!(
        help.contains("--role <ROLE>") && help.contains("`breakglass roles` lists them"),
        "{help}"
    );
}

fn approved_dba(cfg: &Path) {
    ok_json(bg(cfg, Some("alice"), &[&["--json"], REQUEST_DBA].concat()));
    ok_json(bg(cfg, Some("bob"), &["--json", "approve", "REQ-1"]));
    ok_json(bg(cfg, Some("carol"), &["--json", "approve", "REQ-1"]));
}

/// `HH:MM:SS UTC (in Nm)` and friends; never RFC 3339.
fn assert_human_times(text: &str) {
    let rfc3339 = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d").unwrap();
    assert!(!rfc3339.is_match(text), "RFC 3339 in human output:\n{text}");
    assert!(!text.contains("+00:00"), "{text}");
}

#[test]
fn human_times_are_to_the_second_in_utc_with_how_far_and_json_keeps_rfc3339() {
    let (_tmp, cfg) = demo_dir();
    let o = bg(&cfg, Some("alice"), REQUEST_DBA);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let st = stdout(&bg(&cfg, None, &["status", "REQ-1"]));
    assert_human_times(&st);
    let decide = regex::Regex::new(r"decide by:  \d\d:\d\d:\d\d UTC \(in (29|30)m\)").unwrap();
    assert!(decide.is_match(&st), "{st}");

    ok_json(bg(&cfg, Some("bob"), &["--json", "approve", "REQ-1"]));
    ok_json(bg(&cfg, Some("carol"), &["--json", "approve", "REQ-1"]));
    let act = bg_pty(&cfg, Some("alice"), &["activate", "REQ-1"]);
    assert_eq!(act.code, 0, "{}", act.text());
    assert_human_times(&act.text());
    let until = regex::Regex::new(
        r"REQ-1 ACTIVE: prod-db-emergency-dba until \d\d:\d\d:\d\d UTC \(in 1[45]m\)",
    )
    .unwrap();
    assert!(until.is_match(&act.text()), "{}", act.text());

    let st = stdout(&bg(&cfg, None, &["status", "REQ-1"]));
    assert_human_times(&st);
    for line in [
        r"granted:    \d\d:\d\d:\d\d UTC \((now|\d+s ago)\)",
        r"expires:    \d\d:\d\d:\d\d UTC \(in 1[45]m\)",
    ] {
        assert!(
            regex::Regex::new(line).unwrap().is_match(&st),
            "{line}\n{st}"
        );
    }
    let extended = stdout(&bg(
        &cfg,
        Some("alice"),
        &[
            "extend",
            "REQ-1",
            "--by",
            "5m",
            "--reason",
            "still failing over",
        ],
    ));
    assert!(
        regex::Regex::new(r"\[active\] active until \d\d:\d\d:\d\d UTC \(in (19|20)m\)")
            .unwrap()
            .is_match(&extended),
        "{extended}"
    );
    let revoked = bg(&cfg, Some("alice"), &["revoke", "REQ-1"]);
    assert_human_times(&stdout(&revoked));
    let st = stdout(&bg(&cfg, None, &["status", "REQ-1"]));
    assert_human_times(&st);
    assert!(
        regex::Regex::new(r"ended:      \d\d:\d\d:\d\d UTC \((now|\d+s ago)\) by alice")
            .unwrap()
            .is_match(&st),
        "{st}"
    );

    // Machines keep RFC 3339.
    let v = ok_json(bg(&cfg, None, &["--json", "status", "REQ-1"]));
    for t in [
        &v["request"]["grant"]["expires_at"],
        &v["request"]["decide_by"],
    ] {
        chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap()).unwrap();
    }
}

/// The line after `prefix` in a terminal's output.
fn line_after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim_end_matches('\r').trim_start().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{text}"))
}

/// Runs a printed command as a person would paste it into a shell.
fn run_as_printed(cmd: &str) -> std::process::Output {
    Command::new("sh")
        .args(["-c", cmd])
        .env_remove("BREAKGLASS_CONFIG")
        .current_dir("/")
        .output()
        .unwrap()
}

#[test]
fn activate_says_what_ends_access_once_this_terminal_closes_and_how_to_end_it_now() {
    let (tmp, cfg) = demo_dir();
    approved_dba(&cfg);
    let act = bg_pty(&cfg, Some("alice"), &["activate", "REQ-1"]);
    let text = act.text();
    assert_eq!(act.code, 0, "{text}");
    // Direct mode, nothing sweeping this store: said as the console says it.
    assert!(text.contains(NEXT_COMMAND), "{text}");
    assert!(!text.contains("even if this terminal closes"), "{text}");
    // The command works as printed, from anywhere.
    let revoke = line_after(&text, "End it early with: ");
    assert!(revoke.ends_with("--as alice revoke REQ-1"), "{revoke}");
    let o = run_as_printed(revoke);
    assert_eq!(o.status.code(), Some(0), "{revoke}: {}", stderr(&o));
    let st = ok_json(bg(&cfg, None, &["--json", "status", "REQ-1"]));
    assert_eq!(st["request"]["state"], "ended");

    // A daemon on another store revokes nothing here; one on this store does
    // (started as people do: a relative --config from its own directory).
    let (_other_tmp, other) = demo_dir();
    let daemon = |config: &Path, dir: &Path| {
        let mut c = Command::new(BIN);
        c.current_dir(dir)
            .arg("--config")
            .arg(config)
            .args(["daemon", "--interval", "1s"])
            .env_remove("BREAKGLASS_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        spawn_owned(
            c,
            "daemon".into(),
            nix::sys::signal::Signal::SIGKILL,
            Some(nix::sys::signal::Signal::SIGTERM),
            |_| {},
        )
        .unwrap()
    };
    let elsewhere = daemon(&other, Path::new("/"));
    let iam = [
        "--json",
        "request",
        "--incident",
        "INC-1044",
        "--role",
        IAM,
        "--condition",
        "locked-out administrators",
        "--reason",
        "every SSO admin is locked out",
    ];
    ok_json(bg(&cfg, Some("alice"), &iam));
    ok_json(bg(&cfg, Some("bob"), &["--json", "approve", "REQ-2"]));
    std::thread::sleep(Duration::from_millis(300));
    let text = bg_pty(&cfg, Some("alice"), &["activate", "REQ-2"]).text();
    assert!(text.contains(NEXT_COMMAND), "{text}");
    drop(elsewhere);

    let here = daemon(Path::new("breakglass.toml"), tmp.path());
    ok_json(bg(
        &cfg,
        Some("alice"),
        &[&["--json"], REQUEST_K8S].concat(),
    ));
    ok_json(bg(&cfg, Some("bob"), &["--json", "approve", "REQ-3"]));
    std::thread::sleep(Duration::from_millis(300));
    let text = bg_pty(&cfg, Some("alice"), &["activate", "REQ-3"]).text();
    assert!(text.contains(DAEMON), "{text}");
    drop(here);
}

#[test]
fn through_a_broker_activate_says_the_broker_revokes_at_expiry() {
    let (tmp, cfg) = demo_dir();
    let socket = tmp.path().join("b.sock");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("\n[broker]\nsocket = \"{}\"\n", socket.display()));
    std::fs::write(&cfg, text).unwrap();
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(&cfg)
        .arg("broker")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let broker = spawn_owned(
        c,
        "broker".into(),
        nix::sys::signal::Signal::SIGKILL,
        Some(nix::sys::signal::Signal::SIGTERM),
        |_| {},
    )
    .unwrap();
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20) && !broker.has_exited());
        std::thread::sleep(Duration::from_millis(50));
    }
    approved_dba(&cfg);
    let act = bg_pty(&cfg, Some("alice"), &["activate", "REQ-1"]);
    let text = act.text();
    assert_eq!(act.code, 0, "{text}");
    assert!(text.contains(BROKER), "{text}");
    let o = run_as_printed(line_after(&text, "End it early with: "));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let st = ok_json(bg(&cfg, None, &["--json", "status", "REQ-1"]));
    assert_eq!(st["request"]["state"], "ended");
    drop(broker);
}

/// `breakglass demo` with only the environment a person's session gives it.
fn demo_cmd(env: &[(&str, &Path)]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(["demo", "--no-console"]);
    for k in [
        "BREAKGLASS_CONFIG",
        "XDG_RUNTIME_DIR",
        "XDG_DATA_HOME",
        "TMPDIR",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn demo_without_dir_reuses_one_directory_per_user_and_starts_it_afresh() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, home, t) = (
        tmp.path().join("run"),
        tmp.path().join("home"),
        tmp.path().join("tmp"),
    );
    for d in [&run, &home, &t] {
        std::fs::create_dir(d).unwrap();
    }
    let env = [
        ("XDG_RUNTIME_DIR", run.as_path()),
        ("HOME", &home),
        ("TMPDIR", &t),
    ];
    let o = demo_cmd(&env);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dir = run.join("breakglass/demo");
    let cfg = dir.join("breakglass.toml");
    assert!(
        stdout(&o).contains(&format!("ready in {} (started afresh", dir.display())),
        "says where: {}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains(&format!("export BREAKGLASS_CONFIG={}", cfg.display())),
        "{}",
        stdout(&o)
    );
    ok_json(bg(
        &cfg,
        Some("alice"),
        &[&["--json"], REQUEST_DBA].concat(),
    ));
    // Again: the same directory, started afresh; nothing left in the temp dir.
    let o = demo_cmd(&env);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let all = ok_json(bg(&cfg, None, &["--json", "status", "--all"]));
    assert_eq!(all["requests"].as_array().unwrap().len(), 0, "{all}");
    assert_eq!(
        std::fs::read_dir(&t).unwrap().count(),
        0,
        "litter in TMPDIR"
    );
    assert_eq!(std::fs::read_dir(&run).unwrap().count(), 1);

    // Without a runtime dir: the data dir, the same way.
    let o = demo_cmd(&[("HOME", &home), ("TMPDIR", &t)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let data = home.join(".local/share/breakglass/demo");
    assert!(data.join("breakglass.toml").is_file(), "{}", stdout(&o));
    assert_eq!(
        std::fs::read_dir(&t).unwrap().count(),
        0,
        "litter in TMPDIR"
    );

    // Something else where the demo goes is never emptied.
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("notes.txt"), "mine").unwrap();
    let o = demo_cmd(&[("HOME", &home), ("TMPDIR", &t)]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("left as it is"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--dir"), "{}", stderr(&o));
    assert!(data.join("notes.txt").is_file());
}

#[test]
fn the_consoles_exit_message_prints_a_revoke_command_that_works_as_printed() {
    let (tmp, cfg) = demo_dir();
    approved_dba(&cfg);
    ok_json(bg(&cfg, Some("alice"), &["--json", "activate", "REQ-1"]));

    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 30,
            cols: 100,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(BIN);
    cmd.args(["demo", "--dir"]);
    cmd.arg(tmp.path());
    cmd.cwd("/");
    cmd.env("TERM", "xterm-256color");
    for k in [
        "BREAKGLASS_FAILPOINT",
        "NO_COLOR",
        "BREAKGLASS_CONFIG",
        "BREAKGLASS_LOG",
    ] {
        cmd.env_remove(k);
    }
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let raw = Arc::new(Mutex::new(Vec::new()));
    let mut reader = pair.master.try_clone_reader().unwrap();
    {
        let raw = raw.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                raw.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
    }
    let text = || String::from_utf8_lossy(&raw.lock().unwrap()).into_owned();
    let t = Instant::now();
    while !text().contains("INC-1042") {
        assert!(t.elapsed() < Duration::from_secs(30), "{}", text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = nix::unistd::Pid::from_raw(child.process_id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the console did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    while !text().contains("end it now with: ") || !text().ends_with('\n') {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = text();
    // Until when, in the person's terms, and the same sentence as `activate`:
    // the demo's broker and sweeper end with the console.
    assert!(
        regex::Regex::new(r"REQ-1 is still ACTIVE until \d\d:\d\d:\d\d UTC \(in 1[45]m\)\. ")
            .unwrap()
            .is_match(&out),
        "{out}"
    );
    assert!(out.contains(NEXT_COMMAND), "{out}");
    let revoke = line_after(&out, "end it now with: ");
    let demo_cfg = std::fs::canonicalize(&cfg).unwrap();
    assert!(
        revoke.ends_with(&format!(
            " --config {} --as alice revoke REQ-1",
            demo_cfg.display()
        )),
        "{revoke}"
    );
    let o = run_as_printed(revoke);
    assert_eq!(o.status.code(), Some(0), "{revoke}: {}", stderr(&o));
    let st = ok_json(bg(&cfg, None, &["--json", "status", "REQ-1"]));
    assert_eq!(st["request"]["state"], "ended");
}
