//! `[broker]` in the config, a person's client config that names only the
//! broker, the files holding secrets and their ownership, and what
//! `breakglass config check` says about where the engine and its secrets live.

use crate::support::*;
use breakglass::config::{self, check_owner_only, secret_files, BrokerConfig, Loaded, SecretFile};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A whole config: a SQLite store in `dir/state`, a postgres backend whose admin
/// URL is in `dir/db.url` (mode 0600), a checkpoint key (0600), and `extra`.
fn whole(dir: &Path, extra: &str) -> PathBuf {
    let url = dir.join("db.url");
    std::fs::write(&url, "postgresql://admin:pw@db.internal/app\n").unwrap();
    chmod(&url, 0o600);
    let key = dir.join("checkpoint.key");
    std::fs::write(&key, "00").unwrap();
    chmod(&key, 0o600);
    let cfg = dir.join("broker.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[store]
kind = "sqlite"
path = "state/breakglass.sqlite"

[audit]
checkpoint_key_file = "checkpoint.key"

[backends.prod-db]
kind = "postgres"
url_file = "db.url"

[[roles]]
name = "dba"
backend = "prod-db"
scope = {{ member_of = ["emergency_dba"] }}
default_ttl = "5m"
max_ttl = "10m"
conditions = ["outage"]
ticket_pattern = "^INC-[0-9]+$"
requesters = ["*"]
approvers = ["*"]
certifiers = ["*"]
{extra}"#
        ),
    )
    .unwrap();
    cfg
}

fn client(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("client.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn problems(r: Result<Loaded, config::Problems>) -> Vec<(Option<usize>, String)> {
    match r {
        Ok(l) => panic!("loaded: {l:?}"),
        Err(p) => p.0.into_iter().map(|p| (p.line, p.message)).collect(),
    }
}

#[test]
fn a_client_config_names_only_the_broker() {
    let tmp = tempfile::tempdir().unwrap();
    let p = client(
        tmp.path(),
        "[broker]\nsocket = \"/run/bg/b.sock\"\ngroup = \"breakglass-users\"\n\n[ui]\ntheme = \"mono\"\n",
    );
    match config::load_any(&p).unwrap() {
        Loaded::Client(c) => {
            assert_eq!(
                c.broker,
                BrokerConfig {
                    socket: "/run/bg/b.sock".into(),
                    group: Some("breakglass-users".into())
                }
            );
            assert_eq!(c.ui_theme.as_deref(), Some("mono"));
            assert_eq!(c.path, p);
        }
        other => panic!("{other:?}"),
    }
    // The table alone: the default socket.
    let p = client(tmp.path(), "[broker]\n");
    match config::load_any(&p).unwrap() {
        Loaded::Client(c) => {
            assert_eq!(
                c.broker.socket,
                PathBuf::from("/run/breakglass/broker.sock")
            );
            assert_eq!(c.broker.group, None);
        }
        other => panic!("{other:?}"),
    }
    // config::load wants a whole config and says why this is not one.
    let e = config::load(&p).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].line, Some(1));
    assert!(
        e.0[0].message.contains("this config only names a broker")
            && e.0[0].message.contains("/run/breakglass/broker.sock")
            && e.0[0]
                .message
                .contains("the broker's own config holds the policy"),
        "{e}"
    );
    // Anything beyond [broker] and [ui] makes it a whole config, checked as one.
    let p = client(
        tmp.path(),
        "[broker]\n\n[store]\nkind = \"sqlite\"\npath = \"s.sqlite\"\n",
    );
    assert!(
        !matches!(config::load_any(&p), Ok(Loaded::Client(_))),
        "a [store] is not a client's"
    );
    // Unknown keys in [broker] are refused like everywhere else.
    let p = client(tmp.path(), "[broker]\nsocket_path = \"/run/x.sock\"\n");
    let p = problems(config::load_any(&p));
    assert!(
        p.iter()
            .any(|(l, m)| *l == Some(2) && m.contains("unknown field `socket_path`")),
        "{p:?}"
    );
}

#[test]
fn broker_settings_are_checked_and_named_by_line() {
    let tmp = tempfile::tempdir().unwrap();
    let long = format!("/run/{}.sock", "s".repeat(120));
    for (text, needle) in [
        ("socket = \"broker.sock\"", "is not an absolute path"),
        ("socket = \"/run/breakglass/\"", "names a directory"),
        (&*format!("socket = \"{long}\""), "at most 107"),
        ("socket = \"/run/a\\u001b[2Jb.sock\"", "control character"),
        ("group = \"ops team\"", "is not a group name"),
        ("group = \"\"", "is not a group name"),
    ] {
        let p = client(
            tmp.path(),
            &format!("# a person's config\n[broker]\n{text}\n"),
        );
        let p = problems(config::load_any(&p));
        assert!(
            p.iter().any(|(l, m)| *l == Some(3) && m.contains(needle)),
            "{text}: {p:?}"
        );
    }
    // The same checks in a whole config, where the table sits beside the policy.
    let cfg = whole(tmp.path(), "\n[broker]\nsocket = \"relative.sock\"\n");
    let e = config::load(&cfg).unwrap_err();
    assert!(
        e.0.iter()
            .any(|p| p.message.contains("is not an absolute path")),
        "{e}"
    );
    let cfg = whole(tmp.path(), "\n[broker]\ngroup = \"breakglass-users\"\n");
    let c = config::load(&cfg).unwrap();
    assert_eq!(
        c.broker,
        Some(BrokerConfig {
            socket: "/run/breakglass/broker.sock".into(),
            group: Some("breakglass-users".into())
        })
    );
    assert!(matches!(config::load_any(&cfg).unwrap(), Loaded::Full(_)));
    assert_eq!(config::load(&whole(tmp.path(), "")).unwrap().broker, None);
}

#[test]
fn secret_files_lists_every_file_holding_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = config::load(&whole(d, "")).unwrap();
    let got: Vec<(String, PathBuf)> = secret_files(&cfg)
        .into_iter()
        .map(|f| (f.what, f.path))
        .collect();
    let want = vec![
        (
            "[store] path (the SQLite store)",
            d.join("state/breakglass.sqlite"),
        ),
        (
            "the SQLite store's -wal file",
            d.join("state/breakglass.sqlite-wal"),
        ),
        (
            "the SQLite store's -shm file",
            d.join("state/breakglass.sqlite-shm"),
        ),
        (
            "the data directory (the store's directory: drafts, recordings)",
            d.join("state"),
        ),
        ("backend \"prod-db\" url_file", d.join("db.url")),
        ("[audit] checkpoint_key_file", d.join("checkpoint.key")),
    ];
    let want: Vec<(String, PathBuf)> = want.into_iter().map(|(w, p)| (w.to_string(), p)).collect();
    assert_eq!(got, want);

    // A PostgreSQL store: its url_file and its data_dir instead.
    let text = std::fs::read_to_string(d.join("broker.toml"))
        .unwrap()
        .replace(
            "kind = \"sqlite\"\npath = \"state/breakglass.sqlite\"",
            "kind = \"postgres\"\nurl_file = \"store.url\"\ndata_dir = \"data\"",
        );
    let cfg = config::load_str(&text, &d.join("team.toml")).unwrap();
    let got: Vec<PathBuf> = secret_files(&cfg).into_iter().map(|f| f.path).collect();
    assert_eq!(
        got,
        vec![
            d.join("store.url"),
            d.join("data"),
            d.join("db.url"),
            d.join("checkpoint.key")
        ]
    );
}

#[test]
fn check_owner_only_wants_the_accounts_file_closed_to_everyone_else() {
    use nix::unistd::{chown, Uid, User};
    let tmp = tempfile::tempdir().unwrap();
    let me = nix::unistd::getuid().as_raw();
    let cfg = config::load(&whole(tmp.path(), "")).unwrap();
    let files = secret_files(&cfg);
    // The store does not exist yet: it exposes nothing (SQLite creates it 0600).
    for f in &files {
        check_owner_only(f, me).unwrap_or_else(|e| panic!("{e}"));
    }
    let url = files
        .iter()
        .find(|f| f.what.contains("url_file"))
        .unwrap()
        .clone();
    chmod(&url.path, 0o640);
    let e = check_owner_only(&url, me).unwrap_err();
    assert!(
        e.starts_with("backend \"prod-db\" url_file: ")
            && e.contains("readable by group (mode 0640)")
            && e.ends_with(&format!("run: chmod 600 {}", url.path.display())),
        "{e}"
    );
    chmod(&url.path, 0o600);

    // Another real account: the broker's would be `breakglass`; `nobody` is one
    // every Debian has.
    let nobody = User::from_name("nobody")
        .unwrap()
        .expect("the nobody account");
    let e = check_owner_only(&url, nobody.uid.as_raw()).unwrap_err();
    assert!(
        e.contains(&format!(
            "is owned by {}",
            User::from_uid(Uid::from_raw(me)).unwrap().unwrap().name
        )) && e.ends_with(&format!("run: chown nobody {}", url.path.display())),
        "{e}"
    );
    if me == 0 {
        chown(&url.path, Some(nobody.uid), None).unwrap();
        check_owner_only(&url, nobody.uid.as_raw()).unwrap();
        let e = check_owner_only(&url, 0).unwrap_err();
        assert!(
            e.ends_with(&format!("run: chown root {}", url.path.display())),
            "{e}"
        );
    }

    // The store's directory: writable by others, it lets them swap the store.
    let dir = files.iter().find(|f| f.what.contains("directory")).unwrap();
    std::fs::create_dir(&dir.path).unwrap();
    chmod(&dir.path, 0o777);
    let e = check_owner_only(dir, me).unwrap_err();
    assert!(
        e.ends_with(&format!("run: chmod go-w {}", dir.path.display())),
        "{e}"
    );
    chmod(&dir.path, 0o700);
    check_owner_only(dir, me).unwrap();

    let odd = SecretFile {
        what: "x".into(),
        path: tmp.path().join("with space"),
    };
    std::fs::write(&odd.path, "s").unwrap();
    chmod(&odd.path, 0o604);
    let e = check_owner_only(&odd, me).unwrap_err();
    assert!(
        e.ends_with(&format!("run: chmod 600 '{}'", odd.path.display())),
        "{e}"
    );
}

#[test]
fn config_check_refuses_a_url_file_or_checkpoint_key_others_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = whole(tmp.path(), "");
    let url = tmp.path().join("db.url");
    let key = tmp.path().join("checkpoint.key");
    chmod(&url, 0o640);
    chmod(&key, 0o644);
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    for (line, needle) in [
        (
            10,
            format!(
                "backend \"prod-db\" url_file holds a secret, but {} is readable by group (mode 0640); run: chmod 600 {}",
                url.display(),
                url.display()
            ),
        ),
        (
            6,
            format!(
                "[audit] checkpoint_key_file holds a secret, but {} is readable by group and others (mode 0644); run: chmod 600 {}",
                key.display(),
                key.display()
            ),
        ),
    ] {
        let want = format!("{}:{line}: {needle}", cfg.display());
        assert!(err.lines().any(|l| l == want), "missing `{want}` in:\n{err}");
    }
    // The secret itself is never read into the message.
    assert!(!err.contains("admin:pw"), "{err}");
    chmod(&url, 0o600);
    chmod(&key, 0o400);
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // So does every command, which loads the same way.
    chmod(&url, 0o660);
    let o = bg(&cfg, None, &["roles"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
}

#[test]
fn config_check_says_where_the_engine_and_its_secrets_are() {
    let tmp = tempfile::tempdir().unwrap();
    // No [broker]: this process is the engine.
    let cfg = whole(tmp.path(), "");
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("no [broker]: whoever runs breakglass with this config runs the engine in their own process and holds the backend secrets"),
        "{}",
        stdout(&o)
    );
    let v = json(&bg(&cfg, None, &["--json", "config", "check"]));
    assert_eq!(v["engine"], "this process", "{v}");
    assert_eq!(v["broker"], serde_json::Value::Null, "{v}");

    // The broker's config: people's commands go to its socket. A group that is
    // not on this host is a warning, not a problem.
    let cfg = whole(
        tmp.path(),
        "\n[broker]\nsocket = \"/run/bg-test/broker.sock\"\ngroup = \"bg-no-such-group\"\n",
    );
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("[broker]: the broker's config")
            && out.contains("people's commands go to it at /run/bg-test/broker.sock, where members of group bg-no-such-group may connect")
            && !out.contains("no [broker]"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("warning: group bg-no-such-group does not exist on this host"),
        "{}",
        stderr(&o)
    );
    let v = json(&bg(&cfg, None, &["--json", "config", "check"]));
    assert_eq!(v["engine"], "broker", "{v}");
    assert_eq!(v["broker"]["socket"], "/run/bg-test/broker.sock", "{v}");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1, "{v}");
    // A group that exists: no warning.
    let cfg = whole(tmp.path(), "\n[broker]\ngroup = \"root\"\n");
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(code(&o), 0);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

#[test]
fn config_check_on_a_client_config_says_it_holds_no_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    chmod(tmp.path(), 0o755);
    let sock = tmp.path().join("broker.sock");
    let p = client(
        tmp.path(),
        &format!("[broker]\nsocket = \"{}\"\n", sock.display()),
    );
    chmod(&p, 0o644);
    let o = bg(&p, None, &["config", "check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        format!(
            "{}: ok (a client config: this process holds no secrets; commands go to the broker at {})",
            p.display(),
            sock.display()
        )
    );
    assert!(
        stderr(&o).contains(&format!(
            "warning: there is no socket at {} yet",
            sock.display()
        )),
        "{}",
        stderr(&o)
    );
    // With a socket there, no warning.
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let v = json(&bg(&p, None, &["--json", "config", "check"]));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["client"], true, "{v}");
    assert_eq!(v["broker"]["socket"], sock.display().to_string(), "{v}");
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");

    // A person who can read nothing of the broker's checks it the same way.
    let o = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(env!("CARGO_BIN_EXE_breakglass"))
        .arg("--config")
        .arg(&p)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("holds no secrets"), "{}", stdout(&o));

    // Any other command with it goes to the broker, and says so when it is down.
    drop(_listener);
    let o = bg(&p, None, &["roles"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(&format!("cannot reach the broker at {}", sock.display())),
        "{}",
        stderr(&o)
    );
}
