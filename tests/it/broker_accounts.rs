//! The broker on one host with real OS accounts (`support/broker_site.rs`): the
//! kernel tells the broker who each person is, and people hold nothing.

use crate::support::broker_site::*;
use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

#[test]
fn four_people_walk_the_lifecycle_through_the_broker_and_hold_nothing() {
    let site = Site::new();
    // A secret the broker holds in its environment (as a unit's EnvironmentFile
    // would give it): no person's process can see it.
    let _broker = site.start_broker(&[("BREAKGLASS_TEST_VAULT_TOKEN", "hvs.s3cr3t-broker-only")]);
    let (alice, bob, dave) = (&site.alice, &site.bob, &site.dave);

    let mut req = vec!["--json"];
    req.extend_from_slice(REQUEST_K8S);
    let id = request_id(&ok(site.run(alice, &req)));
    // Her own request is refused to her as approver, exit 3, through the socket.
    let own = site.run(alice, &["approve", &id]);
    assert_eq!(own.status.code(), Some(3), "{}", stderr(&own));
    ok(site.run(bob, &["approve", &id]));
    let cred = ok(site.run(alice, &["--json", "activate", &id]));
    let v: serde_json::Value = serde_json::from_str(&cred).unwrap();
    assert_eq!(v["request"]["state"], "active", "{v}");
    assert!(
        v["credential"].as_object().is_some_and(|c| !c.is_empty()),
        "{v}"
    );
    ok(site.run(bob, &["revoke", &id, "--reason", "incident over"]));
    ok(site.run(
        alice,
        &[
            "review",
            &id,
            "--actions-taken",
            "restarted the stuck deploy",
            "--systems-touched",
            "prod-eu-1",
            "--access-necessary",
            "yes",
            "--credentials-copied",
            "no",
        ],
    ));
    let mine = site.run(alice, &["certify", &id]);
    assert_eq!(mine.status.code(), Some(3), "{}", stderr(&mine));
    ok(site.run(dave, &["certify", &id, "--comment", "fine"]));

    // The log names each step's person as the kernel said, and verifies.
    ok(site.run(dave, &["audit", "verify"]));
    let export = ok(site.run(dave, &["audit", "export"]));
    let actor_of = |action: &str| actors_of(&export, action);
    assert_eq!(
        actor_of("request.created"),
        std::slice::from_ref(&alice.name)
    );
    assert_eq!(
        actor_of("request.approved"),
        std::slice::from_ref(&bob.name)
    );
    assert_eq!(actor_of("revoke.started"), std::slice::from_ref(&bob.name));
    assert_eq!(
        actor_of("review.certified"),
        std::slice::from_ref(&dave.name)
    );
    assert_eq!(
        actor_of("policy.refused"),
        [alice.name.clone(), alice.name.clone()]
    );

    // The auditor's bundle comes through the socket into dave's own directory,
    // and verifies there against the broker's checkpoint key.
    let bundle = dave.home.join("evidence");
    let out = ok(site.run(
        dave,
        &["evidence", &id, "--output", bundle.to_str().unwrap()],
    ));
    assert!(out.contains("a checkpoint signed now covers them"), "{out}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&bundle).unwrap().uid(), dave.uid);
    let verified = ok(site.run(dave, &["evidence", "verify", bundle.to_str().unwrap()]));
    assert!(verified.contains("files match manifest.json"), "{verified}");
    assert!(verified.contains("covers the log's first"), "{verified}");

    // The broker's own log (its journal under systemd) says who called what.
    let log = site.broker_log();
    assert!(
        log.lines().any(|l| l.contains("broker call")
            && l.contains(&alice.name)
            && l.contains("activate")),
        "{log}"
    );
    let broker_pid = site
        .broker_log()
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .map(str::to_string)
        .expect("the broker says its pid");
    for who in [alice, bob, dave] {
        let env = ok(who.command("/usr/bin/env").output().unwrap());
        assert!(!env.contains("s3cr3t"), "{env}");
        let o = who
            .command("/bin/cat")
            .arg(format!("/proc/{broker_pid}/environ"))
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "{} read the broker's environment",
            who.name
        );
        assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    }

    // What only the broker holds is closed to each person: EACCES, not a
    // missing file.
    for who in [alice, bob, dave] {
        for secret in [
            site.state.join("breakglass.sqlite"),
            site.state.join("checkpoint.key"),
            site.state.join("alerts.jsonl"),
        ] {
            assert!(secret.exists(), "{}", secret.display());
            let o = who
                .command("/usr/bin/python3")
                .args(["-c", "import sys; open(sys.argv[1], 'rb')"])
                .arg(&secret)
                .output()
                .unwrap();
            assert!(
                stderr(&o).contains("PermissionError"),
                "{} opened {}: {}",
                who.name,
                secret.display(),
                stderr(&o)
            );
        }
        // The broker's config is readable (it holds no secret) but theirs to
        // change it is not: using it sends them to the broker anyway.
        let o = who
            .command("/usr/bin/python3")
            .args(["-c", "import sys; open(sys.argv[1], 'a')"])
            .arg(&site.config)
            .output()
            .unwrap();
        assert!(stderr(&o).contains("PermissionError"), "{}", stderr(&o));
    }
}

#[test]
fn a_person_cannot_speak_for_another_through_the_socket() {
    let site = Site::new();
    let _broker = site.start_broker(&[]);
    let mut req = vec!["--json"];
    req.extend_from_slice(REQUEST_K8S);
    let id = request_id(&ok(site.run(&site.alice, &req)));
    let num: i64 = id.trim_start_matches("REQ-").parse().unwrap();
    // alice's own program writes the protocol by hand, naming bob every way it
    // can: as a persona (demo only), and in fields the protocol does not have.
    let script = r#"
import json, socket, struct, sys
def call(msg):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    b = json.dumps(msg).encode(); s.sendall(struct.pack('>I', len(b)) + b)
    n = struct.unpack('>I', s.recv(4, socket.MSG_WAITALL))[0]
    print(json.dumps(json.loads(s.recv(n, socket.MSG_WAITALL))))
v = "breakglass.broker/v1"
approve = {"op": "decide", "id": int(sys.argv[3]), "decision": {"decision": "approve", "comment": None, "signature": None}}
call({"v": v, "as_persona": sys.argv[2], "call": approve})
call({"v": v, "who": sys.argv[2], "call": approve})
call({"v": v, "call": dict(approve, who=sys.argv[2])})
call({"v": v, "call": {"op": "hello"}})
"#;
    let o = site
        .alice
        .command("/usr/bin/python3")
        .args(["-c", script])
        .arg(&site.socket)
        .arg(&site.bob.name)
        .arg(num.to_string())
        .output()
        .unwrap();
    let replies: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), 4, "{}", stderr(&o));
    assert_eq!(replies[0]["reply"], "error");
    assert_eq!(replies[0]["kind"], "identity", "{}", replies[0]);
    assert_eq!(replies[1]["kind"], "protocol", "{}", replies[1]);
    assert_eq!(replies[2]["kind"], "protocol", "{}", replies[2]);
    assert_eq!(
        replies[3]["who"]["Ok"],
        site.alice.name.as_str(),
        "{}",
        replies[3]
    );
    // Still pending: nothing counted as bob's.
    let st = ok(site.run(&site.bob, &["--json", "status", &id]));
    assert!(st.contains("\"pending\""), "{st}");
}

#[test]
fn the_broker_refuses_to_start_while_a_secret_or_the_policy_is_open() {
    let site = Site::new();
    let key = site.state.join("checkpoint.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = {
        let mut c = site.svc.command(BIN);
        c.arg("--config").arg(&site.config).arg("broker");
        c.output().unwrap()
    };
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );
    // Closed, but someone else's: the broker would not hold it alone.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    chown(&site.alice.name, &key);
    let o = {
        let mut c = site.svc.command(BIN);
        c.arg("--config").arg(&site.config).arg("broker");
        c.output().unwrap()
    };
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("will not start"), "{err}");
    assert!(
        err.contains(&format!("chown {} {}", site.svc.name, key.display())),
        "{err}"
    );
    chown(&site.svc.name, &key);
    // A policy a person could rewrite is as bad as a leaked key.
    chown(&site.alice.name, &site.config);
    let o = {
        let mut c = site.svc.command(BIN);
        c.arg("--config").arg(&site.config).arg("broker");
        c.output().unwrap()
    };
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("chown root"), "{}", stderr(&o));
    assert!(!site.socket.exists());
}

#[test]
fn a_broker_that_is_down_is_named_and_people_get_exit_1() {
    let site = Site::new();
    let o = site.run(&site.alice, &["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "cannot reach the broker at {}",
            site.socket.display()
        )),
        "{err}"
    );
    assert!(err.contains("is the broker running?"), "{err}");
}

/// Waits for a broker that hit its fail point to be gone.
fn died(broker: crate::support::daemon::Owned) {
    let t = Instant::now();
    while !broker.has_exited() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the broker did not die"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(broker);
}

/// The existing crash guarantees, with the broker as the process that dies:
/// SIGKILLed between grant intent and grant, and between revoke start and
/// confirmation, a restarted broker ends the access on its first sweep.
#[test]
fn a_broker_killed_mid_grant_or_mid_revoke_leaves_nothing_granted_after_restart() {
    let site = Site::new();
    let mut req = vec!["--json"];
    req.extend_from_slice(REQUEST_K8S);

    // Mid-grant.
    let broker = site.start_broker(&[("BREAKGLASS_FAILPOINT", "grant.after_intent")]);
    let id = request_id(&ok(site.run(&site.alice, &req)));
    ok(site.run(&site.bob, &["approve", &id]));
    let o = site.run(&site.alice, &["--json", "activate", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("closed the connection"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("credential"), "{}", stdout(&o));
    died(broker);
    let broker = site.start_broker(&[]);
    wait_state(&site, &site.alice, &id, "failed");
    assert_eq!(demo_leases(&site.state), []);
    stop(broker);
    let broker = site.start_broker(&[("BREAKGLASS_FAILPOINT", "revoke.after_intent")]);

    // Mid-revoke (this broker dies when it starts revoking).
    let id = request_id(&ok(site.run(&site.alice, &req)));
    ok(site.run(&site.bob, &["approve", &id]));
    ok(site.run(&site.alice, &["--json", "activate", &id]));
    assert_eq!(demo_leases(&site.state).len(), 1);
    let o = site.run(&site.alice, &["revoke", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    died(broker);
    let _broker = site.start_broker(&[]);
    wait_state(&site, &site.alice, &id, "ended");
    assert_eq!(demo_leases(&site.state), []);
    ok(site.run(&site.dave, &["audit", "verify"]));
}
