//! The console as a person runs it on a shared host: a real OS account
//! (`runuser`) with a client config that names only the broker's socket, in a
//! real PTY. Others act from their own CLIs; the console hears of it through
//! the broker, and rides out a broker restart.

use super::*;
use crate::support::accounts::{runuser, Account, SYSTEM_PATH};
use crate::support::broker_site::*;
use crate::support::REQUEST_K8S;
use std::os::unix::fs::MetadataExt;

const K8S: &str = "k8s-cluster-admin";
/// Wide enough for the status bar's store and socket paths.
const COLS: u16 = 220;
const ROWS: u16 = 40;

/// `breakglass --config CLIENT` (the console) as `who`, in a PTY.
fn console_as(site: &Site, who: &Account) -> Console {
    let mut cmd = CommandBuilder::new(runuser());
    cmd.args(["-u", &who.name, "--", BIN, "--config"]);
    cmd.arg(&site.client);
    // Only what a login would give them; HOME is theirs (drafts go there).
    cmd.env_clear();
    cmd.env("HOME", &who.home);
    cmd.env("USER", &who.name);
    cmd.env("LOGNAME", &who.name);
    cmd.env("PATH", SYSTEM_PATH);
    cmd.env("LANG", "C.UTF-8");
    cmd.env("TERM", "xterm-256color");
    cmd.cwd(&who.home);
    Console::command(cmd, COLS, ROWS)
}

/// Runs `f`; if it panics, the broker's log follows the panic's message.
fn showing_broker_log(site: &Site, f: impl FnOnce()) {
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        eprintln!("--- broker log ---\n{}", site.broker_log());
        std::panic::resume_unwind(e);
    }
}

fn actors(site: &Site, action: &str) -> Vec<String> {
    let export = ok(site.run(&site.dave, &["audit", "export"]));
    export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["action"] == action)
        .map(|e| e["actor"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn state(site: &Site, id: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&ok(site.run(&site.bob, &["--json", "status", id]))).unwrap();
    v["request"]["state"].as_str().unwrap_or("?").to_string()
}

/// Whether the console's process is still there (runuser and its child).
fn running(c: &mut Console) -> bool {
    c.child.try_wait().expect("try_wait").is_none()
}

#[test]
fn a_person_files_from_the_console_and_sees_approval_arrive_through_the_broker() {
    let site = Site::new();
    let _broker = site.start_broker(&[]);
    let (alice, bob) = (&site.alice, &site.bob);
    let mut c = console_as(&site, alice);
    showing_broker_log(&site, || {
        // Who she is comes from the kernel, through the broker; the status bar
        // says the console talks to a broker, and where.
        c.wait_for("INC-1042", T);
        c.wait_me(&alice.name);
        let s = c.screen();
        let bar = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
        assert!(
            bar.contains(&format!("broker {}", site.socket.display())),
            "the status bar does not name the broker:\n{s}"
        );

        // Incident -> role -> form -> confirm.
        c.select("INC-1042");
        c.send(ENTER);
        c.wait_for("for INC-1042 Checkout API", T);
        c.select(K8S);
        c.send(ENTER);
        c.wait_for("Activation form", T);
        c.send(DOWN);
        c.wait_for("(•) production outage", T);
        c.send(DOWN);
        c.wait_for("(•) failed automation path", T);
        c.send(UP);
        c.wait_for("(•) production outage", T);
        c.send(TAB);
        c.send("deploy pipeline wedged");
        c.wait_for("deploy pipeline wedged", T);
        c.send(TAB);
        c.wait_for("TTL 10m", T);
        c.send(CTRL_S);
        c.wait_for("Type the role name", T);
        c.send(K8S);
        c.send(ENTER);
        c.wait_for("REQ-1 filed", T);
        c.wait_for("0 of 1 approvals", T);
        assert_eq!(state(&site, "REQ-1"), "pending");

        // bob approves from his own CLI; her console moves on by itself.
        ok(site.run(bob, &["approve", "REQ-1"]));
        let s = c.wait_for(" left of 10m", Duration::from_secs(8));
        assert!(s.contains("[active]"), "{s}");
        assert!(s.contains("••••••••••••"), "credential not masked:\n{s}");
        let first = remaining(&s).expect("a countdown");
        c.wait_until("the countdown to tick", T, |s| {
            remaining(s).is_some_and(|r| r != first)
        });
        assert_eq!(state(&site, "REQ-1"), "active");

        // She ends it from the console; the review form opens.
        c.send("x");
        c.wait_for("End REQ-1 now?", T);
        c.send("y");
        c.wait_for("After-action review of REQ-1", T);
        c.wait_for("access revoked (backend confirmed)", T);
        assert_eq!(state(&site, "REQ-1"), "ended");

        // A draft of her review goes to her own data dir, as her.
        c.send("restarted the stuck deploy");
        c.wait_for("restarted the stuck deploy", T);
        c.esc();
        c.wait_for("draft of REQ-1's review kept", T);
        let drafts = alice.home.join(".local/share/breakglass/drafts");
        let files: Vec<_> = std::fs::read_dir(&drafts)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", drafts.display(), c.screen()))
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(std::fs::metadata(&files[0]).unwrap().uid(), alice.uid);

        // Each step is the person's own, as the kernel named them.
        assert_eq!(
            actors(&site, "request.created"),
            std::slice::from_ref(&alice.name)
        );
        assert_eq!(
            actors(&site, "request.approved"),
            std::slice::from_ref(&bob.name)
        );
        assert_eq!(
            actors(&site, "revoke.started"),
            std::slice::from_ref(&alice.name)
        );

        // q asks for the owed review once; Esc then q quits.
        c.send("q");
        c.wait_for("owes its after-action review", T);
        c.esc();
        c.wait_gone("After-action review of REQ-1", T);
        c.quit_restored();
    });
}

/// The broker stops under an open console showing a live credential: the
/// console says so, keeps what it showed (the access has not ended, and the
/// credential was shown once), and once a broker answers again it carries on
/// with fresh data, no restart.
#[test]
fn the_console_rides_out_a_broker_restart() {
    let site = Site::new();
    let mut broker = Some(site.start_broker(&[]));
    let (alice, bob) = (&site.alice, &site.bob);
    let mut c = console_as(&site, alice);
    showing_broker_log(&site, || {
        c.wait_for("INC-1042", T);
        c.wait_me(&alice.name);
        let mut req = vec!["--json"];
        req.extend_from_slice(REQUEST_K8S);
        let id = request_id(&ok(site.run(alice, &req)));
        c.send("2");
        c.wait_row(&id, "pending");
        c.send(ENTER);
        c.wait_for("0 of 1 approvals", T);
        ok(site.run(bob, &["approve", &id]));
        let s = c.wait_for(" left of 10m", Duration::from_secs(8));
        assert!(s.contains("••••••••••••"), "credential not masked:\n{s}");

        // Down: said on screen, the console alive and the terminal its own.
        stop(broker.take().expect("the broker"));
        let s = c.wait_for("cannot reach the broker", T);
        assert!(s.contains(&site.socket.display().to_string()), "{s}");
        assert!(
            s.contains(" left of 10m") && s.contains("••••••••••••"),
            "the outage wiped the active access off the screen:\n{s}"
        );
        assert!(running(&mut c), "the console died:\n{s}");
        let (alt, hidden) = c.with_screen(|s| (s.alternate_screen(), s.hide_cursor()));
        assert!(alt && hidden, "the console let go of the terminal:\n{s}");
        // Keys still act (reveal and mask the credential it kept), and the
        // next turn says the broker is still away.
        c.send("r");
        c.wait_gone("••••••••••••", T);
        c.send("r");
        c.wait_for("••••••••••••", T);
        c.wait_for("cannot reach the broker", T);

        // Back: the console notices by itself, the credential still there.
        broker = Some(site.start_broker(&[]));
        let s = c.wait_for("the broker answers again", T);
        assert!(!s.contains("cannot reach the broker"), "{s}");
        assert!(
            s.contains(" left of 10m") && s.contains("••••••••••••"),
            "{s}"
        );
        assert!(!s.contains("not in this console"), "{s}");

        // Calls go to the new broker: end it from the console.
        c.send("x");
        c.wait_for(&format!("End {id} now?"), T);
        c.send("y");
        c.wait_for(&format!("After-action review of {id}"), T);
        c.wait_for("access revoked (backend confirmed)", T);
        assert_eq!(state(&site, &id), "ended");
        c.esc();
        c.wait_for("review kept", T);
        c.esc();
        c.wait_row(&id, "ended");

        // A request filed and approved after the restart shows up live (for
        // another role: this one stays locked until REQ-1's review).
        let id2 = request_id(&ok(site.run(
            alice,
            &[
                "--json",
                "request",
                "--incident",
                "INC-1043",
                "--role",
                "payments-api-operator",
                "--condition",
                "failed automation path",
                "--reason",
                "payments queue stuck",
            ],
        )));
        c.wait_row(&id2, "pending");
        ok(site.run(bob, &["approve", &id2]));
        c.wait_row(&id2, "approved");
        assert!(running(&mut c));
        c.send("q");
        c.wait_for("owes its after-action review", T);
        c.esc();
        c.wait_gone(&format!("After-action review of {id}"), T);
        c.quit_restored();
    });
    drop(broker);
}
