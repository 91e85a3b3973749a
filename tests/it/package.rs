//! The Debian package as an operator gets it. `scripts/package --binary` builds
//! it from the debug binary these tests already use (the release package is the
//! same script without `--binary`; a release build here would cost a quarter of
//! an hour). Its contents and maintainer scripts are checked; it is unpacked into
//! a scratch root and run from there; and its postinst runs for real in a private
//! mount namespace over a copy of /etc, after which the broker starts, as its
//! own account, on the files the package left.

use crate::support::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (scripts/test installs what it needs)"))
}

fn ok(cmd: &mut Command) -> Output {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// The package of the test binary, in a scratch dir.
fn build() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let o = ok(Command::new(repo("scripts/package"))
        .args(["--binary", BIN, "--out"])
        .arg(dir.path()));
    let deb = PathBuf::from(stdout(&o).trim());
    assert!(
        deb.starts_with(dir.path()) && deb.extension().is_some_and(|e| e == "deb"),
        "scripts/package printed {deb:?}, not the .deb it wrote:\n{}",
        stderr(&o)
    );
    (dir, deb)
}

/// `deb` unpacked into `<dir>/root` (dpkg -x: files only, no scripts run).
fn unpack(dir: &Path, deb: &Path) -> PathBuf {
    let root = dir.join("root");
    ok(Command::new("dpkg").arg("-x").arg(deb).arg(&root));
    root
}

/// Every man page the binary's command line calls for: breakglass.1 and one per
/// command and subcommand (breakglass-audit-verify.1).
fn man_page_names() -> Vec<String> {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        let name = format!("{prefix}{}", cmd.get_name());
        out.push(format!("{name}.1.gz"));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, &format!("{name}-"), out);
        }
    }
    let mut out = vec![];
    walk(&breakglass::cli::Cli::command(), "", &mut out);
    out
}

#[test]
fn the_package_holds_the_command_its_pages_completions_and_the_broker_files() {
    let (dir, deb) = build();
    // `dpkg-deb -c`: mode, owner, size, date, time, ./path
    let listing = stdout(&ok(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    let entries: Vec<(&str, &str, &str)> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0], f[1], f[5].trim_start_matches('.'))
        })
        .collect();
    let entry = |path: &str| {
        entries
            .iter()
            .find(|(_, _, p)| *p == path)
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"))
    };
    let mut wanted = vec![
        ("/usr/bin/breakglass", "-rwxr-xr-x"),
        (
            "/usr/share/bash-completion/completions/breakglass",
            "-rw-r--r--",
        ),
        (
            "/usr/share/zsh/vendor-completions/_breakglass",
            "-rw-r--r--",
        ),
        (
            "/usr/share/fish/vendor_completions.d/breakglass.fish",
            "-rw-r--r--",
        ),
        (
            "/usr/lib/systemd/system/breakglass-broker.service",
            "-rw-r--r--",
        ),
        ("/usr/lib/sysusers.d/breakglass.conf", "-rw-r--r--"),
        // The policy is never readable by everyone, not even before postinst.
        ("/etc/breakglass/broker.toml", "-rw-r-----"),
        ("/etc/breakglass/client.toml", "-rw-r--r--"),
    ];
    let pages: Vec<String> = man_page_names()
        .iter()
        .map(|p| format!("/usr/share/man/man1/{p}"))
        .collect();
    assert!(pages.len() > 25, "{pages:?}");
    wanted.extend(pages.iter().map(|p| (p.as_str(), "-rw-r--r--")));
    for (path, mode) in wanted {
        let (m, owner, _) = entry(path);
        assert_eq!((*m, *owner), (mode, "0/0"), "{path}");
    }
    for (mode, owner, path) in &entries {
        assert_eq!(*owner, "0/0", "{path}: everything is root's");
        assert!(
            !mode.ends_with('w') && !mode.ends_with("w-") && !mode.ends_with("wx"),
            "{path} is writable by others: {mode}"
        );
    }

    // What it installs for the broker is what dist/ holds (tests/it/dist.rs checks those).
    let root = unpack(dir.path(), &deb);
    for (installed, source) in [
        (
            "usr/lib/systemd/system/breakglass-broker.service",
            "dist/systemd/breakglass-broker.service",
        ),
        (
            "usr/lib/sysusers.d/breakglass.conf",
            "dist/sysusers.d/breakglass.conf",
        ),
        ("etc/breakglass/broker.toml", "dist/etc/broker.toml"),
        ("etc/breakglass/client.toml", "dist/etc/client.toml"),
    ] {
        assert_eq!(
            std::fs::read(root.join(installed)).unwrap(),
            std::fs::read(repo(source)).unwrap(),
            "{installed}"
        );
    }
    // The pages are roff, compressed, named after their command.
    let page = stdout(&ok(
        Command::new("zcat").arg(root.join("usr/share/man/man1/breakglass-audit-verify.1.gz"))
    ));
    assert!(page.contains(".TH breakglass-audit-verify 1"), "{page}");

    // Control: the conffiles, and maintainer scripts that parse.
    let control = dir.path().join("control");
    ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort();
    assert_eq!(
        conffiles,
        ["/etc/breakglass/broker.toml", "/etc/breakglass/client.toml"]
    );
    let fields = stdout(&ok(Command::new("dpkg-deb").arg("-f").arg(&deb)));
    assert!(fields.contains("Package: breakglass\n"), "{fields}");
    assert!(
        fields.contains(&format!("Version: {}-1\n", env!("CARGO_PKG_VERSION"))),
        "{fields}"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        assert!(
            std::fs::metadata(&path).unwrap().mode() & 0o111 != 0,
            "{script} is not executable"
        );
        ok(Command::new("sh").arg("-n").arg(&path));
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(
        postinst.contains("systemd-sysusers breakglass.conf"),
        "{postinst}"
    );
    // Nothing the package does enables or starts the broker before its policy is written.
    for script in ["postinst", "prerm", "postrm"] {
        let text = std::fs::read_to_string(control.join(script)).unwrap();
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            assert!(
                !line.contains("enable") && !line.contains("systemctl start"),
                "{script}: {line}"
            );
        }
    }
}

#[test]
fn the_unpacked_command_says_its_version_walks_the_demo_and_its_unit_verifies() {
    let (dir, deb) = build();
    let root = unpack(dir.path(), &deb);
    let bin = root.join("usr/bin/breakglass");

    let v = stdout(&ok(Command::new(&bin).arg("--version")));
    let built = stdout(&ok(Command::new(BIN).arg("--version")));
    assert_eq!(v, built, "the package holds the binary it was given");
    assert!(
        v.starts_with(&format!(
            "breakglass {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{v}"
    );

    // The demo, non-interactively, with the packaged binary.
    let demo = dir.path().join("demo");
    let o = ok(Command::new(&bin)
        .args(["demo", "--no-console", "--dir"])
        .arg(&demo)
        .env_remove("BREAKGLASS_CONFIG"));
    assert!(
        stdout(&o).contains("breakglass DEMO is ready"),
        "{}",
        stdout(&o)
    );
    let cfg = demo.join("breakglass.toml");
    let as_ = |who: &str, args: &[&str]| {
        ok_json(run(Command::new(&bin)
            .arg("--config")
            .arg(&cfg)
            .args(["--as", who, "--json"])
            .args(args)))
    };
    let r = as_("alice", REQUEST_DBA);
    assert_eq!(r["request"]["state"], "pending", "{r}");
    assert_eq!(
        as_("bob", &["approve", "REQ-1"])["request"]["state"],
        "pending"
    );
    assert_eq!(
        as_("carol", &["approve", "REQ-1"])["request"]["state"],
        "approved"
    );
    let act = as_("alice", &["activate", "REQ-1"]);
    assert_eq!(act["request"]["state"], "active", "{act}");
    assert_eq!(act["credential"]["password"].as_str().unwrap().len(), 32);
    let rv = as_("alice", &["revoke", "REQ-1", "--reason", "done"]);
    assert_eq!(rv["request"]["state"], "ended", "{rv}");

    // The unit as installed, pointing at the binary as installed.
    let (_unit_dir, unit) = crate::dist::unit_copy_of(
        &root.join("usr/lib/systemd/system/breakglass-broker.service"),
        &bin,
    );
    crate::dist::verifies_clean(&unit);
}

/// `args` in a private mount namespace whose /etc is `etc` (a copy of the
/// real one) and where systemd does not appear to run: what the package's
/// scripts do to accounts and /etc lands in the copy.
fn namespaced(etc: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "set -e; mount --bind \"$1\" /etc; \
             if [ -d /run/systemd/system ]; then mount -t tmpfs none /run/systemd; fi; \
             shift; exec \"$@\"",
        )
        .arg("sh")
        .arg(etc)
        .args(args);
    cmd
}

fn in_namespace(etc: &Path, args: &[&str]) -> Output {
    run(&mut namespaced(etc, args))
}

/// A field of the line for `name` in an /etc/passwd or /etc/group file.
fn id_of(file: &Path, name: &str) -> u32 {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {}:\n{text}", file.display()));
    line.split(':').nth(2).unwrap().parse().unwrap()
}

/// /etc as dpkg leaves it before postinst (a copy of the host's, with the
/// package's files unpacked in it and its sysusers.d entry where
/// systemd-sysusers finds it), in `<dir>/etc`.
fn etc_before_postinst(dir: &Path, root: &Path) -> PathBuf {
    let etc = dir.join("etc");
    std::fs::create_dir(&etc).unwrap();
    ok(Command::new("cp").args(["-a", "/etc/."]).arg(&etc));
    // Other tests make accounts on the host meanwhile: a lock file of theirs
    // caught in the copy would stop useradd here, where nobody holds it.
    for db in ["passwd", "group", "shadow", "gshadow", "subuid", "subgid"] {
        let _ = std::fs::remove_file(etc.join(format!("{db}.lock")));
    }
    std::fs::create_dir_all(etc.join("sysusers.d")).unwrap();
    std::fs::copy(
        root.join("usr/lib/sysusers.d/breakglass.conf"),
        etc.join("sysusers.d/breakglass.conf"),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(etc.join("breakglass"));
    ok(Command::new("cp")
        .arg("-a")
        .arg(root.join("etc/breakglass"))
        .arg(&etc));
    // As on a host that never had the package (this one may have).
    for db in ["passwd", "group", "shadow", "gshadow"] {
        let Ok(text) = std::fs::read_to_string(etc.join(db)) else {
            continue;
        };
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("breakglass:") && !l.starts_with("breakglass-users:"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(etc.join(db), kept).unwrap();
    }
    etc
}

/// The account, the groups and the owner and mode of the package's files in
/// `etc` after postinst; returns the account's uid and gid.
fn as_the_broker_requires(etc: &Path) -> (u32, u32) {
    let uid = id_of(&etc.join("passwd"), "breakglass");
    let gid = id_of(&etc.join("group"), "breakglass");
    id_of(&etc.join("group"), "breakglass-users");
    assert!(uid > 0 && uid < 1000, "a system account: {uid}");
    let meta = |rel: &str| std::fs::metadata(etc.join(rel)).unwrap();
    let policy = meta("breakglass/broker.toml");
    assert_eq!(
        (policy.uid(), policy.gid(), policy.mode() & 0o7777),
        (0, gid, 0o640),
        "the policy: root:breakglass 0640"
    );
    let client = meta("breakglass/client.toml");
    assert_eq!((client.uid(), client.mode() & 0o7777), (0, 0o644));
    let secrets = meta("breakglass/secrets");
    assert!(secrets.is_dir());
    assert_eq!(
        (secrets.uid(), secrets.gid(), secrets.mode() & 0o7777),
        (uid, gid, 0o700),
        "the secrets directory: the broker's alone"
    );

    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap();
    let account: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("breakglass:"))
        .unwrap()
        .split(':')
        .collect();
    assert_eq!(account[5], "/var/lib/breakglass", "{account:?}");
    assert!(account[6].ends_with("nologin"), "{account:?}");
    (uid, gid)
}

#[test]
fn postinst_creates_the_account_and_leaves_the_files_as_the_broker_requires() {
    let (dir, deb) = build();
    let root = unpack(dir.path(), &deb);
    let control = dir.path().join("control");
    ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    // The broker's account must reach the binary and the socket's directory.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let etc = etc_before_postinst(dir.path(), &root);
    let postinst = control.join("postinst");
    let o = in_namespace(&etc, &[postinst.to_str().unwrap(), "configure", ""]);
    assert!(
        o.status.success(),
        "postinst:\n{}{}",
        stdout(&o),
        stderr(&o)
    );

    let (uid, gid) = as_the_broker_requires(&etc);
    let meta = |rel: &str| std::fs::metadata(etc.join(rel)).unwrap();

    // As the broker's account: it reads its policy, and keeps a secret where
    // the docs say (a checkpoint key, 0600, its own).
    let bin = root.join("usr/bin/breakglass");
    let bin = bin.to_str().unwrap();
    let as_broker = |args: &[&str]| {
        let mut all = vec![
            "setpriv",
            "--reuid=breakglass",
            "--regid=breakglass",
            "--groups=breakglass-users",
            "--reset-env",
            bin,
            "--config",
            "/etc/breakglass/broker.toml",
        ];
        all.extend_from_slice(args);
        in_namespace(&etc, &all)
    };
    let o = as_broker(&["config", "check"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ok"), "{}", stdout(&o));
    let o = as_broker(&[
        "audit",
        "keygen",
        "--out",
        "/etc/breakglass/secrets/checkpoint.key",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let key = meta("breakglass/secrets/checkpoint.key");
    assert_eq!((key.uid(), key.mode() & 0o7777), (uid, 0o600));

    // Nobody else reads either.
    for path in [
        "/etc/breakglass/broker.toml",
        "/etc/breakglass/secrets/checkpoint.key",
    ] {
        let o = in_namespace(&etc, &["runuser", "-u", "nobody", "--", "cat", path]);
        assert!(!o.status.success(), "nobody read {path}");
        assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    }

    // The broker itself starts on these files, as the unit runs it: its own
    // account with breakglass-users, its state directories as systemd makes
    // them (StateDirectory=, LogsDirectory=), the socket in a scratch dir.
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    std::fs::set_permissions(
        &run_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let socket = run_dir.join("broker.sock");
    let script = format!(
        "set -e
        mount -t tmpfs none /var/lib
        install -d -o breakglass -g breakglass -m 0700 /var/lib/breakglass
        mount -t tmpfs none /var/log
        install -d -o breakglass -g breakglass -m 0750 /var/log/breakglass
        setpriv --reuid=breakglass --regid=breakglass --groups=breakglass-users --reset-env \
            {bin} --config /etc/breakglass/broker.toml broker --socket {socket} &
        pid=$!
        i=0
        while [ ! -S {socket} ]; do
            i=$((i + 1))
            if [ $i -gt 300 ] || ! kill -0 $pid 2>/dev/null; then break; fi
            sleep 0.1
        done
        ls -ln {socket}
        kill -TERM $pid
        wait $pid",
        socket = socket.display()
    );
    let o = in_namespace(&etc, &["sh", "-c", &script]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "the broker:\n{out}{err}");
    assert!(err.contains("breakglass broker: serving"), "{err}");
    // srw-rw---- 1 UID GID ...: the socket is the broker's, for breakglass-users.
    let users = id_of(&etc.join("group"), "breakglass-users");
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        (f[0], f[2], f[3]),
        (
            "srw-rw----",
            uid.to_string().as_str(),
            users.to_string().as_str()
        ),
        "{out}"
    );

    // Configured again (an upgrade): the same, and the key kept.
    let o = in_namespace(&etc, &[postinst.to_str().unwrap(), "configure", "0.0.1-1"]);
    assert!(
        o.status.success(),
        "postinst again:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(id_of(&etc.join("passwd"), "breakglass"), uid);
    assert!(etc.join("breakglass/secrets/checkpoint.key").is_file());
    let policy = meta("breakglass/broker.toml");
    assert_eq!(
        (policy.uid(), policy.gid(), policy.mode() & 0o7777),
        (0, gid, 0o640)
    );
}

#[test]
fn without_systemd_sysusers_postinst_makes_the_same_account_with_the_shadow_tools() {
    let (dir, deb) = build();
    let root = unpack(dir.path(), &deb);
    let control = dir.path().join("control");
    ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let etc = etc_before_postinst(dir.path(), &root);
    // A PATH with every command of this host but systemd-sysusers (a chroot or
    // container without systemd).
    let path = dir.path().join("bin");
    std::fs::create_dir(&path).unwrap();
    for d in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if name != "systemd-sysusers" && !path.join(&name).exists() {
                std::os::unix::fs::symlink(e.path(), path.join(&name)).unwrap();
            }
        }
    }
    let postinst = control.join("postinst");
    let postinst = postinst.to_str().unwrap();
    let o = run(namespaced(&etc, &[postinst, "configure", ""]).env("PATH", &path));
    assert!(
        o.status.success(),
        "postinst:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    as_the_broker_requires(&etc);
    // Again: nothing to add, nothing fails.
    let o = run(namespaced(&etc, &[postinst, "configure", "0.0.1-1"]).env("PATH", &path));
    assert!(
        o.status.success(),
        "postinst again:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
}
