//! The ssh-ca backend against a real OpenSSH server (tests/it/support/sshd.rs)
//! that trusts the test's CA (`TrustedUserCAKeys`) and reads the backend's KRL
//! (`RevokedKeys`), with real accounts to log in to: the conformance suite, then
//! what only sshd can show (expiry enforced with no breakglass process, the
//! role's principals only, revocation by the KRL, the config's checks).

use crate::support;

use breakglass::backend::{Backend, Credential, GrantSpec, RevokeSpec, SshCaBackend};
use breakglass::clock::SystemClock;
use breakglass::config::SshCaConfig;
use chrono::{DateTime, Utc};
use nix::fcntl::{Flock, FlockArg};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::accounts::Account;
use support::backend_conformance::Target;
use support::sshd::Sshd;

static LOGINS: AtomicU32 = AtomicU32::new(0);

/// A CA, a KRL, an sshd trusting the one and reading the other, and two
/// accounts: `user` (the role's principal) and `other` (outside the role).
struct Site {
    dir: tempfile::TempDir,
    krl: PathBuf,
    ca_key: PathBuf,
    user: Account,
    other: Account,
    sshd: Sshd,
    /// The KRL's lock, held while the target is "down".
    down: Mutex<Option<Flock<std::fs::File>>>,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        // sshd reads the CA and the KRL as root; the directory stays root's.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ca_key = dir.path().join("ca");
        support::keygen(&ca_key, "breakglass-test-ca");
        let krl = dir.path().join("revoked.krl");
        let user = Account::person("sshca");
        let other = Account::person("sshcx");
        let sshd = Sshd::builder()
            .account(&user.name)
            .account(&other.name)
            .extra(&format!(
                "TrustedUserCAKeys {}\nRevokedKeys {}",
                dir.path().join("ca.pub").display(),
                krl.display()
            ))
            .start();
        Site {
            dir,
            krl,
            ca_key,
            user,
            other,
            sshd,
            down: Mutex::new(None),
        }
    }

    fn config(&self, krl: &Path, timeout: Duration) -> SshCaConfig {
        SshCaConfig {
            ca_key_file: self.ca_key.clone(),
            krl: krl.to_path_buf(),
            host: Some("127.0.0.1".into()),
            port: Some(self.sshd.port()),
            timeout,
        }
    }

    fn backend(&self) -> Arc<SshCaBackend> {
        Arc::new(SshCaBackend::new(
            self.config(&self.krl, Duration::from_secs(3)),
            Arc::new(SystemClock),
        ))
    }

    fn scope(&self) -> serde_json::Value {
        serde_json::json!({ "principals": [self.user.name] })
    }

    /// Logs in as `account` with the credential's key and certificate and runs
    /// `true`; Ok, or Err with the client's log.
    fn login_as(&self, account: &str, cred: &Credential) -> Result<(), String> {
        sshd_login(&self.sshd, account, cred)
    }
}

fn field<'a>(c: &'a Credential, k: &str) -> &'a str {
    c.reveal()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("credential has no {k}"))
}

fn grant_spec(site: &Site, request_id: &str, expires_at: DateTime<Utc>) -> GrantSpec {
    GrantSpec {
        request_id: request_id.into(),
        role: "ssh-test".into(),
        scope: site.scope(),
        requester: "alice".into(),
        ttl_seconds: (expires_at - Utc::now()).num_seconds(),
        expires_at,
        incident: "INC-1".into(),
    }
}

fn revoke_of(s: &GrantSpec, lease: Option<&str>) -> RevokeSpec {
    RevokeSpec {
        request_id: s.request_id.clone(),
        role: s.role.clone(),
        scope: s.scope.clone(),
        lease_id: lease.map(str::to_string),
    }
}

#[async_trait::async_trait]
impl Target for Site {
    fn backend(&self) -> Arc<dyn Backend> {
        Site::backend(self)
    }

    /// A KRL whose lock another process holds and never gives back.
    fn hanging(&self) -> Arc<dyn Backend> {
        let krl = self.dir.path().join("stuck.krl");
        let mut lock = krl.clone().into_os_string();
        lock.push(".lock");
        let f = std::fs::File::create(lock).unwrap();
        let held = Flock::lock(f, FlockArg::LockExclusive).unwrap();
        std::mem::forget(held);
        Arc::new(SshCaBackend::new(
            self.config(&krl, Duration::from_secs(2)),
            Arc::new(SystemClock),
        ))
    }

    fn scope(&self) -> serde_json::Value {
        Site::scope(self)
    }

    async fn usable(&self, cred: &Credential, _spec: &GrantSpec) -> bool {
        self.login_as(&self.user.name, cred).is_ok()
    }

    async fn set_down(&self, down: bool) {
        let mut held = self.down.lock().unwrap();
        if down {
            let mut lock = self.krl.clone().into_os_string();
            lock.push(".lock");
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(lock)
                .unwrap();
            *held = Some(Flock::lock(f, FlockArg::LockExclusive).unwrap());
        } else {
            *held = None;
        }
    }
}

mod conformance {
    use super::*;
    backend_conformance!(Site::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_works_while_active_and_the_krl_refuses_it_after_revoke() {
    let site = Site::new();
    let b = site.backend();
    let s = grant_spec(&site, "REQ-1", Utc::now() + chrono::Duration::minutes(10));
    let g = b.grant(&s).await.unwrap();
    site.login_as(&site.user.name, &g.credential)
        .unwrap_or_else(|log| panic!("login refused while active:\n{log}\n{}", site.sshd.log()));
    assert_eq!(
        g.expires_at,
        Some(s.expires_at),
        "the server enforces the deadline"
    );
    let ssh = field(&g.credential, "ssh");
    assert!(
        ssh.contains(&format!(
            "-p {} {}@127.0.0.1",
            site.sshd.port(),
            site.user.name
        )),
        "{ssh}"
    );
    b.revoke(&revoke_of(&s, Some(&g.lease_id))).await.unwrap();
    assert!(site.login_as(&site.user.name, &g.credential).is_err());
    assert!(
        site.sshd.log().contains("revoked by file"),
        "sshd refused it for the KRL:\n{}",
        site.sshd.log()
    );
    // Another activation's certificate is untouched by that revocation.
    let s2 = grant_spec(&site, "REQ-2", Utc::now() + chrono::Duration::minutes(10));
    let g2 = b.grant(&s2).await.unwrap();
    site.login_as(&site.user.name, &g2.credential).unwrap();
    // Nothing breakglass wrote beside the KRL holds the private key.
    let key_body = secret_line(&g.credential);
    for entry in std::fs::read_dir(site.dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("revoked.krl")
        {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&key_body),
                "{} holds the private key",
                p.display()
            );
        }
    }
    // The KRL is world-readable (servers read it), the journal is not.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&site.krl), 0o644);
    assert_eq!(mode(&site.dir.path().join("revoked.krl.issued")), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_refuses_the_certificate_after_expiry_with_no_breakglass_running() {
    let site = Site::new();
    let b = site.backend();
    let s = grant_spec(&site, "REQ-3", Utc::now() + chrono::Duration::seconds(4));
    let g = b.grant(&s).await.unwrap();
    drop(b); // nothing of breakglass is left to end it
    site.login_as(&site.user.name, &g.credential).unwrap();
    let wait = (s.expires_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(2);
    tokio::time::sleep(wait).await;
    let refused = site.login_as(&site.user.name, &g.credential);
    assert!(
        refused.is_err(),
        "the certificate still works after valid-before"
    );
    assert!(
        site.sshd.log().contains("expired"),
        "sshd refused it as expired:\n{}",
        site.sshd.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_logs_in_only_as_the_roles_principals() {
    let site = Site::new();
    let b = site.backend();
    let s = grant_spec(&site, "REQ-4", Utc::now() + chrono::Duration::minutes(10));
    let g = b.grant(&s).await.unwrap();
    site.login_as(&site.user.name, &g.credential).unwrap();
    assert!(
        site.login_as(&site.other.name, &g.credential).is_err(),
        "a login as an account outside the role's principals was accepted"
    );
    assert!(
        site.sshd.log().contains("not in list of principals")
            || site.sshd.log().contains("name is not a listed principal"),
        "{}",
        site.sshd.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_carries_the_roles_options_and_nothing_more() {
    let site = Site::new();
    let b = site.backend();
    let mut s = grant_spec(&site, "REQ-5", Utc::now() + chrono::Duration::minutes(10));
    s.scope = serde_json::json!({
        "principals": [site.user.name],
        "source_address": "192.0.2.0/24",
    });
    let g = b.grant(&s).await.unwrap();
    let cert = site.dir.path().join("inspect-cert.pub");
    std::fs::write(&cert, field(&g.credential, "certificate")).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .args(["-L", "-f"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Key ID: \"breakglass REQ-5 alice\""),
        "{text}"
    );
    assert!(text.contains("source-address 192.0.2.0/24"), "{text}");
    assert!(text.contains("permit-pty"), "{text}");
    for absent in [
        "permit-agent-forwarding",
        "permit-port-forwarding",
        "permit-X11-forwarding",
        "permit-user-rc",
    ] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
    // 127.0.0.1 is outside source-address: sshd refuses the login.
    assert!(site.login_as(&site.user.name, &g.credential).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_the_ca_and_refuses_a_missing_key() {
    let site = Site::new();
    let said = site.backend().check().await.unwrap();
    assert!(said.contains("SHA256:"), "{said}");
    assert!(site.krl.exists(), "check leaves a KRL sshd can read");
    let mut cfg = site.config(&site.krl, Duration::from_secs(2));
    cfg.ca_key_file = site.dir.path().join("missing");
    let e = SshCaBackend::new(cfg, Arc::new(SystemClock))
        .check()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot read ca_key_file"), "{e}");
}

/// The config loader: the CA key must be its owner's alone, the scope's
/// principals login names, its options known; each problem on its line.
#[test]
fn the_config_refuses_an_open_ca_key_and_a_bad_scope() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    support::keygen(&ca, "ca");
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = |principals: &str| {
        format!(
            r#"
[store]
kind = "sqlite"

[[incident_sources]]
name = "incidents"
kind = "file"
path = "incidents.toml"

[backends.ssh]
kind = "ssh-ca"
ca_key_file = "{}"
krl = "revoked.krl"

[[alerts.sinks]]
kind = "file"
path = "alerts.jsonl"

[[roles]]
name = "prod-shell"
backend = "ssh"
scope = {{ principals = {principals} }}
default_ttl = "15m"
max_ttl = "30m"
conditions = ["production outage"]
requesters = ["alice"]
approvers = ["bob"]
certifiers = ["carol"]
"#,
            ca.display()
        )
    };
    let path = dir.path().join("c.toml");
    let problems = |t: &str| match breakglass::config::load_str(t, &path) {
        Ok(_) => panic!("loaded:\n{t}"),
        Err(p) => p.to_string(),
    };
    let p = problems(&text("[\"root\"]"));
    assert!(p.contains("ca_key_file") && p.contains("chmod 600"), "{p}");
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o600)).unwrap();
    breakglass::config::load_str(&text("[\"root\"]"), &path).expect("a valid ssh-ca config");
    let p = problems(&text("[\"root; rm -rf /\"]"));
    assert!(
        p.contains("not a login name") && p.contains("c.toml:"),
        "{p}"
    );
    let p = problems(&text("[]"));
    assert!(p.contains("needs principals"), "{p}");
}

/// The valid-before of a credential's certificate, read by ssh-key.
fn valid_before(c: &Credential) -> u64 {
    ssh_key::Certificate::from_openssh(field(c, "certificate").trim())
        .unwrap()
        .valid_before()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_issues_a_later_certificate_and_the_old_one_is_refused() {
    let site = Site::new();
    let b = site.backend();
    let s = grant_spec(&site, "REQ-6", Utc::now() + chrono::Duration::minutes(10));
    let g = b.grant(&s).await.unwrap();
    site.login_as(&site.user.name, &g.credential).unwrap();
    let later = s.expires_at + chrono::Duration::minutes(10);
    let new = b
        .extend_credential(&revoke_of(&s, Some(&g.lease_id)), "alice", later)
        .await
        .unwrap()
        .expect("ssh-ca extends with a new certificate");
    assert_eq!(valid_before(&new), later.timestamp() as u64);
    assert!(valid_before(&new) > valid_before(&g.credential));
    site.login_as(&site.user.name, &new)
        .unwrap_or_else(|log| panic!("the new certificate is refused:\n{log}"));
    assert!(
        site.login_as(&site.user.name, &g.credential).is_err(),
        "the old certificate still logs in after the extension"
    );
    // Revoke with the lease of the first grant ends the extended one too.
    b.revoke(&revoke_of(&s, Some(&g.lease_id))).await.unwrap();
    assert!(site.login_as(&site.user.name, &new).is_err());
}

/// Through the engine, as `activate`, `extend` and `revoke` run it: the
/// credential logs in, the extension's replaces it, revoke ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_activates_extends_and_revokes_an_ssh_role() {
    use breakglass::domain::policy::{Policy, RolePolicy};
    use breakglass::domain::State;
    use breakglass::engine::{Decision, Engine, IncidentChoice, Parts, RequestInput};
    use std::collections::BTreeMap;
    let site = Site::new();
    let store_dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(breakglass::store::SqliteStore::open(&store_dir.path().join("s.sqlite")).unwrap());
    let role = RolePolicy {
        backend: "ssh".into(),
        scope: site.scope(),
        require_open_incident: false,
        revoke_on_resolve: false,
        ..support::store_conformance::role("prod-shell")
    };
    let engine = Engine::new(Parts {
        policy: Policy {
            roles: BTreeMap::from([(role.name.clone(), role)]),
            demo_personas: None,
            approval_signing: None,
        },
        store,
        backends: BTreeMap::from([("ssh".to_string(), site.backend() as Arc<dyn Backend>)]),
        sources: vec![],
        sinks: vec![],
        alerts: Default::default(),
        clock: Arc::new(SystemClock),
        recovery: Default::default(),
    });
    let r = engine
        .request(
            "alice",
            RequestInput {
                incident: IncidentChoice::Ticket("INC-7".into()),
                role: "prod-shell".into(),
                condition: "outage".into(),
                reason: "disk full on db1".into(),
                ttl_seconds: None,
            },
        )
        .await
        .unwrap();
    engine
        .decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();
    let (active, cred) = engine.activate("alice", r.id).await.unwrap();
    let expires = active.expires_at().unwrap();
    assert_eq!(valid_before(&cred), expires.timestamp() as u64);
    site.login_as(&site.user.name, &cred).unwrap();
    let (extended, new) = engine
        .extend_access("alice", r.id, 300, "replica still catching up")
        .await
        .unwrap();
    let new = new.expect("the extension carries the new certificate");
    let new_expiry = extended.expires_at().unwrap();
    assert_eq!(new_expiry, expires + chrono::Duration::seconds(300));
    assert_eq!(valid_before(&new), new_expiry.timestamp() as u64);
    site.login_as(&site.user.name, &new).unwrap();
    assert!(site.login_as(&site.user.name, &cred).is_err());
    let ended = engine.revoke("alice", r.id, "fixed").await.unwrap();
    assert_eq!(ended.state, State::Ended);
    assert!(site.login_as(&site.user.name, &new).is_err());
}

/// The whole path on a broker site with real accounts: the broker (its own
/// account) holds the CA key and refuses one others can read; alice requests,
/// bob approves, alice activates and logs in with what `activate --json`
/// printed, extends (refused into a pipe, printed with --json), and revokes.
#[test]
fn a_broker_site_grants_extends_and_revokes_a_shell() {
    use support::broker_site::{self, ok, request_id};
    let site = broker_site::Site::new();
    let target = Account::person("sshct");
    let ca = site.state.join("ssh-ca");
    support::keygen(&ca, "breakglass CA");
    let krl = site.state.join("revoked.krl");
    let sshd = Sshd::builder()
        .account(&target.name)
        .extra(&format!(
            "TrustedUserCAKeys {}\nRevokedKeys {}",
            site.state.join("ssh-ca.pub").display(),
            krl.display()
        ))
        .start();
    let mut text = std::fs::read_to_string(&site.config).unwrap();
    text.push_str(&format!(
        r#"
[backends.ssh]
kind = "ssh-ca"
ca_key_file = "ssh-ca"
krl = "revoked.krl"
host = "127.0.0.1"
port = {port}

[[roles]]
name = "prod-shell"
description = "a shell on the database host"
backend = "ssh"
scope = {{ principals = ["{target}"] }}
default_ttl = "10m"
max_ttl = "20m"
max_extensions = 1
conditions = ["production outage"]
ticket_pattern = "^CHG-[0-9]+$"
requesters = ["{alice}"]
approvers = ["{bob}"]
certifiers = ["{dave}"]
"#,
        port = sshd.port(),
        target = target.name,
        alice = site.alice.name,
        bob = site.bob.name,
        dave = site.dave.name,
    ));
    std::fs::write(&site.config, text).unwrap();
    let broker_refuses = |why: &str| {
        let o = site
            .svc
            .command(env!("CARGO_BIN_EXE_breakglass"))
            .arg("--config")
            .arg(&site.config)
            .arg("broker")
            .output()
            .unwrap();
        let err = support::stderr(&o);
        assert!(!o.status.success(), "the broker started with {why}");
        assert!(err.contains("ca_key_file"), "{why}: {err}");
        err
    };
    // A CA key of another account (root's here, 0600): the broker does not start.
    let err = broker_refuses("root's CA key");
    assert!(err.contains(&format!("chown {}", site.svc.name)), "{err}");
    // Its own, but the group may read it: refused too (by the loader as well).
    broker_site::chown(&site.svc.name, &ca);
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = broker_refuses("a group-readable CA key");
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o600)).unwrap();

    let _broker = site.start_broker(&[]);
    let login = |c: &Credential| sshd_login(&sshd, &target.name, c);
    let id = request_id(&ok(site.run(
        &site.alice,
        &[
            "--json",
            "request",
            "--ticket",
            "CHG-7",
            "--role",
            "prod-shell",
            "--condition",
            "production outage",
            "--reason",
            "disk full on db1",
        ],
    )));
    ok(site.run(&site.bob, &["approve", &id]));
    // Activated in a terminal: the key and certificate are printed as lines
    // that paste into files as they are.
    let first = activate_in_a_terminal(&site, &id);
    login(&first).unwrap_or_else(|l| panic!("{l}\n{}", sshd.log()));

    // Into a pipe the new certificate would be lost: refused, nothing extended.
    let piped = site.run(
        &site.alice,
        &[
            "extend",
            &id,
            "--by",
            "5m",
            "--reason",
            "replica catching up",
        ],
    );
    assert_eq!(piped.status.code(), Some(2), "{}", support::stderr(&piped));
    assert!(support::stderr(&piped).contains("nothing was extended"));
    login(&first).expect("the refused extension revoked nothing");

    // The new key and certificate as files in alice's directory (--key-dir).
    let keys = tempfile::Builder::new()
        .prefix("keys-")
        .tempdir_in(support::accounts::run_dir())
        .unwrap();
    site.alice.own(keys.path());
    let kd = keys.path().to_str().unwrap();
    let out = ok(site.run(
        &site.alice,
        &[
            "--json",
            "extend",
            &id,
            "--by",
            "5m",
            "--reason",
            "replica catching up",
            "--key-dir",
            kd,
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["request"]["grant"]["extensions"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    assert!(
        v["credential"]["private_key"].is_null(),
        "written, not printed: {v}"
    );
    let key_file = PathBuf::from(v["credential"]["private_key_file"].as_str().unwrap());
    let cert_file = PathBuf::from(v["credential"]["certificate_file"].as_str().unwrap());
    assert_eq!(key_file, keys.path().join(format!("breakglass-{id}")));
    assert_eq!(
        cert_file,
        keys.path().join(format!("breakglass-{id}-cert.pub"))
    );
    let ssh = v["credential"]["ssh"].as_str().unwrap();
    assert!(
        ssh.starts_with(&format!(
            "ssh -i {} -o CertificateFile={} -p ",
            key_file.display(),
            cert_file.display()
        )),
        "{ssh}"
    );
    for f in [&key_file, &cert_file] {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", f.display());
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&m), site.alice.uid);
    }
    let second = Credential(vec![
        (
            "private_key".into(),
            std::fs::read_to_string(&key_file).unwrap().into(),
        ),
        (
            "certificate".into(),
            std::fs::read_to_string(&cert_file).unwrap().into(),
        ),
    ]);
    login(&second).unwrap_or_else(|l| panic!("{l}\n{}", sshd.log()));
    assert!(
        login(&first).is_err(),
        "the first certificate outlived the extension"
    );

    // Other commands while access lasts leave the key files alone.
    ok(site.run(&site.alice, &["status", &id]));
    assert!(key_file.exists() && cert_file.exists());
    let revoked = site.run(&site.alice, &["revoke", &id, "--reason", "fixed"]);
    assert_eq!(
        revoked.status.code(),
        Some(0),
        "{}",
        support::stderr(&revoked)
    );
    assert!(login(&second).is_err(), "the certificate outlived revoke");
    // The end of access deletes the files --key-dir wrote, and says so.
    assert!(
        support::stderr(&revoked).contains("access has ended: deleted its key files"),
        "{}",
        support::stderr(&revoked)
    );
    assert!(
        !key_file.exists() && !cert_file.exists(),
        "key files left behind"
    );

    // Nothing the broker keeps holds either private key.
    for c in [&first, &second] {
        let body = secret_line(c);
        let grep = std::process::Command::new("grep")
            .args(["-rlF", &body])
            .arg(&site.state)
            .output()
            .unwrap();
        assert!(grep.stdout.is_empty(), "{}", support::stdout(&grep));
    }
}

/// A line of the private key's base64 that holds key material (the first lines
/// are a header every unencrypted Ed25519 key shares).
fn secret_line(c: &Credential) -> String {
    let lines: Vec<&str> = field(c, "private_key").lines().collect();
    assert!(lines.len() >= 6, "{} lines", lines.len());
    lines[3].to_string()
}

/// `breakglass activate ID` as alice on a PTY, and the key and certificate
/// cut from what it printed.
fn activate_in_a_terminal(site: &support::broker_site::Site, id: &str) -> Credential {
    let mut cmd = portable_pty::CommandBuilder::new(support::accounts::runuser());
    cmd.args([
        "-u",
        &site.alice.name,
        "--",
        env!("CARGO_BIN_EXE_breakglass"),
        "--config",
    ]);
    cmd.arg(&site.client);
    cmd.args(["activate", id]);
    cmd.env_clear();
    cmd.env("PATH", support::accounts::SYSTEM_PATH);
    cmd.env("HOME", &site.alice.home);
    cmd.env("LANG", "C.UTF-8");
    cmd.env("TERM", "xterm-256color");
    cmd.cwd(&site.alice.home);
    let run = support::pty::run(cmd, "activate in a terminal");
    let text = run.text().replace("\r\n", "\n");
    assert_eq!(run.code, 0, "{text}");
    assert!(!text.contains("shown escaped"), "{text}");
    let begin = text
        .find("-----BEGIN OPENSSH PRIVATE KEY-----")
        .unwrap_or_else(|| panic!("{text}"));
    let end_mark = "-----END OPENSSH PRIVATE KEY-----";
    let end = text.find(end_mark).unwrap() + end_mark.len();
    let key = format!("{}\n", &text[begin..end]);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == "certificate:")
        .unwrap_or_else(|| panic!("{text}"));
    let cert = lines[at + 1];
    assert!(
        cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{text}"
    );
    assert!(
        text.contains("ssh: ssh -i KEY -o CertificateFile=CERT -p "),
        "{text}"
    );
    Credential(vec![
        ("private_key".into(), key.into()),
        ("certificate".into(), format!("{cert}\n").into()),
    ])
}

/// `ssh ... true` as `account` with the credential's key and certificate.
fn sshd_login(sshd: &Sshd, account: &str, cred: &Credential) -> Result<(), String> {
    let n = LOGINS.fetch_add(1, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join(format!("id-{n}"));
    let cert = dir.path().join(format!("id-{n}-cert.pub"));
    std::fs::write(&key, field(cred, "private_key")).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&cert, field(cred, "certificate")).unwrap();
    let log = dir.path().join("ssh.log");
    let cert_opt = format!("CertificateFile={}", cert.display());
    let status = sshd
        .ssh(
            account,
            &key,
            &log,
            &["-o", &cert_opt, "-o", "ConnectTimeout=10"],
        )
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    if status.success() {
        Ok(())
    } else {
        Err(std::fs::read_to_string(&log).unwrap_or_default())
    }
}

/// A drill's probe: the certificate a real sshd accepts proves valid, and once
/// revoked the probe finds it in the KRL, as sshd does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_agrees_with_sshd_before_and_after_revoke() {
    let site = Site::new();
    let b = site.backend();
    let s = grant_spec(&site, "REQ-1", Utc::now() + chrono::Duration::minutes(10));
    let g = b.grant(&s).await.unwrap();
    let spec = revoke_of(&s, Some(&g.lease_id));
    site.login_as(&site.user.name, &g.credential).unwrap();
    let ok = b.probe(&spec, &g.credential).await.unwrap();
    assert!(ok.contains("not revoked"), "{ok}");
    b.revoke(&spec).await.unwrap();
    assert!(site.login_as(&site.user.name, &g.credential).is_err());
    let e = b.probe(&spec, &g.credential).await.unwrap_err().to_string();
    assert!(e.contains("revoked"), "{e}");
    // Another CA's certificate is refused as a server trusting ours would.
    let other = Site::new();
    let g2 = other
        .backend()
        .grant(&grant_spec(&other, "REQ-2", s.expires_at))
        .await
        .unwrap();
    let e = b
        .probe(&spec, &g2.credential)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("would refuse"), "{e}");
}
