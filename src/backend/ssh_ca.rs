//! The SSH certificate backend: short-lived OpenSSH user certificates, signed by
//! a CA key the broker holds; nothing runs on the servers, which trust the CA
//! (`TrustedUserCAKeys`) and read a Key Revocation List (`RevokedKeys`).
//!
//! Grant makes an Ed25519 key pair for this activation and signs a certificate
//! for it: the role's principals, valid from now (less a minute of clock skew)
//! until the grant's deadline, so a server refuses it after expiry even when no
//! breakglass process runs. The serial is random and written to the issue
//! journal beside the KRL (`<krl>.issued`: serial, valid-before, request id;
//! no key) *before* signing, so crash recovery can revoke by request id a
//! certificate whose grant was never recorded. The private key goes to the
//! caller once and is not kept.
//!
//! Extension (`extend_credential`) issues a new key and certificate with the
//! later expiry, then revokes the request's earlier ones.
//!
//! Revoke adds every serial issued for the request to the KRL with
//! `ssh-keygen -k -u` (ssh-key writes no KRLs), on a copy renamed over the
//! KRL, so a server never reads a half-written list. Journal and KRL writes
//! hold an exclusive `flock` on `<krl>.lock` (one writer across the broker, a
//! sweeper and direct-mode commands) and a mutex in this process.

use super::config::SshCaConfig;
use super::*;
use regex::Regex;
use ssh_key::{certificate, Algorithm, LineEnding, PrivateKey};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// What a principal (a login name on the servers) must look like.
pub const PRINCIPAL_RULE: &str =
    "lower-case ASCII letters, digits, '_' or '-', starting with a letter or '_', at most 32 bytes";
/// The certificate extensions a role may list; without a list, only `permit-pty`.
pub const EXTENSIONS: &[&str] = &[
    "permit-pty",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-X11-forwarding",
    "permit-user-rc",
];
/// In the `ssh` line: where the saved key and certificate go (the CLI's
/// `--key-dir` puts the files' paths there, and drops the note).
pub const SSH_LINE_FILES: &str = "-i KEY -o CertificateFile=CERT";
pub const SSH_LINE_NOTE: &str = "   (KEY: private_key saved 0600, CERT: certificate)";
/// How far before now a certificate's validity starts: servers' clocks drift.
const SKEW_SECONDS: i64 = 60;
/// Journal lines are kept this long after their certificate expired.
const JOURNAL_GRACE_SECONDS: i64 = 86_400;

fn principal_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-z_][a-z0-9_-]{0,31}$").expect("a valid literal pattern"))
}

fn failed(msg: impl Into<String>) -> BackendError {
    BackendError::Failed(msg.into())
}

/// The role's scope as the backend reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The login names the certificate is valid for.
    pub principals: Vec<String>,
    /// `source-address`: the client addresses (CIDR list) it may be used from.
    pub source_address: Option<String>,
    /// `force-command`: the one command a login runs.
    pub force_command: Option<String>,
    /// The extensions granted (default: `permit-pty` only).
    pub extensions: Vec<String>,
    /// The host shown in the `ssh` line (else the backend's `host`).
    pub host: Option<String>,
}

impl Scope {
    pub const KEYS: &'static str =
        "principals (a list of login names), source_address, force_command, extensions, host";

    pub fn parse(v: &serde_json::Value) -> Result<Scope, String> {
        let obj = match v {
            serde_json::Value::Object(o) => o,
            _ => return Err(format!("scope must be a table with {}", Scope::KEYS)),
        };
        let mut s = Scope {
            principals: Vec::new(),
            source_address: None,
            force_command: None,
            extensions: vec!["permit-pty".to_string()],
            host: None,
        };
        let strings = |k: &str, v: &serde_json::Value| -> Result<Vec<String>, String> {
            v.as_array()
                .and_then(|l| {
                    l.iter()
                        .map(|x| x.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| format!("scope {k} must be a list of strings"))
        };
        for (k, v) in obj {
            match k.as_str() {
                "principals" => {
                    for p in strings(k, v)? {
                        check_principal(&p)?;
                        s.principals.push(p);
                    }
                }
                "source_address" => {
                    let a = v.as_str().ok_or("scope source_address must be a string")?;
                    check_source_address(a)?;
                    s.source_address = Some(a.to_string());
                }
                "force_command" => {
                    let c = v.as_str().ok_or("scope force_command must be a string")?;
                    if c.trim().is_empty() || c.len() > 1024 || c.chars().any(char::is_control) {
                        return Err(
                            "scope force_command must be one line of at most 1024 bytes, not empty"
                                .into(),
                        );
                    }
                    s.force_command = Some(c.to_string());
                }
                "extensions" => {
                    let list = strings(k, v)?;
                    for e in &list {
                        if !EXTENSIONS.contains(&e.as_str()) {
                            return Err(format!(
                                "scope extension {:?} is not known; write any of {}",
                                crate::sanitize::line(e, 40),
                                EXTENSIONS.join(", ")
                            ));
                        }
                    }
                    s.extensions = list;
                }
                "host" => {
                    let h = v.as_str().ok_or("scope host must be a string")?;
                    check_host(h)?;
                    s.host = Some(h.to_string());
                }
                other => {
                    return Err(format!(
                        "scope key {:?} is not known to the ssh-ca backend; it reads {}",
                        crate::sanitize::line(other, 40),
                        Scope::KEYS
                    ))
                }
            }
        }
        if s.principals.is_empty() {
            return Err(
                "an ssh-ca role's scope needs principals = [\"LOGIN\", ...], the accounts its certificate may log in as"
                    .into(),
            );
        }
        Ok(s)
    }
}

/// A login name as a certificate principal.
pub fn check_principal(p: &str) -> Result<(), String> {
    if principal_re().is_match(p) {
        Ok(())
    } else {
        Err(format!(
            "scope principal {:?} is not a login name: write {PRINCIPAL_RULE}",
            crate::sanitize::line(p, 40)
        ))
    }
}

/// A comma-separated list of IP addresses or CIDR blocks, as sshd reads it.
fn check_source_address(a: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "scope source_address {:?} must be IP addresses or CIDR blocks separated by commas, e.g. \"10.0.0.0/8,192.0.2.7\"",
            crate::sanitize::line(a, 80)
        )
    };
    for part in a.split(',') {
        let (ip, bits) = match part.split_once('/') {
            Some((ip, bits)) => (ip, Some(bits)),
            None => (part, None),
        };
        let ip: std::net::IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if let Some(b) = bits {
            match b.parse::<u8>() {
                Ok(n) if n <= max => {}
                _ => return Err(bad()),
            }
        }
    }
    Ok(())
}

/// A host name or address for the `ssh` line shown with the credential.
pub fn check_host(h: &str) -> Result<(), String> {
    let ok = Regex::new(r"^[A-Za-z0-9][A-Za-z0-9.:\[\]-]{0,252}$")
        .expect("a valid literal pattern")
        .is_match(h);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "host {:?} is not a host name or IP address",
            crate::sanitize::line(h, 80)
        ))
    }
}

/// `<krl><suffix>`: the journal and the lock live beside the KRL.
fn beside(krl: &Path, suffix: &str) -> PathBuf {
    let mut p = krl.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// The serial a lease names (`ssh-ca-serial-N`).
fn lease_serial(lease: &str) -> Option<u64> {
    lease.strip_prefix("ssh-ca-serial-")?.parse().ok()
}

/// One journal line: a certificate issued.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Issued {
    serial: u64,
    valid_before: i64,
    request_id: String,
}

fn parse_journal(text: &str) -> Vec<Issued> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let serial = f.next()?.parse().ok()?;
            let valid_before = f.next()?.parse().ok()?;
            let request_id = f.next()?.to_string();
            Some(Issued {
                serial,
                valid_before,
                request_id,
            })
        })
        .collect()
}

pub struct SshCaBackend {
    cfg: SshCaConfig,
    clock: Arc<dyn Clock>,
    /// One writer of the journal and the KRL in this process.
    writer: tokio::sync::Mutex<()>,
}

/// The lock on `<krl>.lock`, released when dropped.
struct Held(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl SshCaBackend {
    pub fn new(cfg: SshCaConfig, clock: Arc<dyn Clock>) -> Self {
        SshCaBackend {
            cfg,
            clock,
            writer: tokio::sync::Mutex::new(()),
        }
    }

    fn timeout(&self) -> Duration {
        self.cfg.timeout
    }

    fn journal(&self) -> PathBuf {
        beside(&self.cfg.krl, ".issued")
    }

    /// The CA's key, read at every call (so a rotated key takes effect).
    fn ca_key(&self) -> Result<PrivateKey, BackendError> {
        let path = &self.cfg.ca_key_file;
        // The key's text is wiped from memory once parsed.
        let text = std::fs::read_to_string(path)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| {
                failed(format!(
                    "ssh-ca: cannot read ca_key_file {}: {e}",
                    path.display()
                ))
            })?;
        let key = PrivateKey::from_openssh(text.trim_start()).map_err(|e| {
            failed(format!(
                "ssh-ca: ca_key_file {} is not an OpenSSH private key: {e}",
                path.display()
            ))
        })?;
        if key.is_encrypted() {
            return Err(failed(format!(
                "ssh-ca: ca_key_file {} is encrypted; the broker signs unattended and needs it unencrypted (and readable by its account alone)",
                path.display()
            )));
        }
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(failed(format!(
                "ssh-ca: ca_key_file {} is an {} key; this backend signs with Ed25519 CA keys (ssh-keygen -t ed25519)",
                path.display(),
                key.algorithm()
            )));
        }
        Ok(key)
    }

    /// Takes the lock beside the KRL, waiting at most the timeout.
    async fn lock(&self) -> Result<Held, BackendError> {
        use nix::fcntl::{Flock, FlockArg};
        let path = beside(&self.cfg.krl, ".lock");
        let deadline = tokio::time::Instant::now() + self.timeout();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                failed(format!(
                    "ssh-ca: cannot open the lock {}: {e}",
                    path.display()
                ))
            })?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(held) => return Ok(Held(held)),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => file = f,
                Err((_, e)) => return Err(failed(format!("ssh-ca: lock {}: {e}", path.display()))),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BackendError::Timeout(self.timeout()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `ssh-keygen` with `args`, within the timeout.
    async fn ssh_keygen(&self, args: &[&std::ffi::OsStr]) -> Result<(), BackendError> {
        let mut cmd = tokio::process::Command::new("ssh-keygen");
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(self.timeout(), cmd.output())
            .await
            .map_err(|_| BackendError::Timeout(self.timeout()))?
            .map_err(|e| failed(format!("ssh-ca: cannot run ssh-keygen: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(failed(format!(
            "ssh-ca: ssh-keygen {}: {}",
            out.status,
            crate::sanitize::line(last, 300)
        )))
    }

    /// A temp path in the KRL's directory (so a rename replaces atomically).
    fn temp_in_dir(&self, what: &str) -> Result<tempfile::TempPath, BackendError> {
        let dir = self
            .cfg
            .krl
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        tempfile::Builder::new()
            .prefix(&format!(".breakglass-{what}-"))
            .tempfile_in(dir)
            .map(|f| f.into_temp_path())
            .map_err(|e| {
                failed(format!(
                    "ssh-ca: cannot write in the KRL's directory {}: {e}",
                    dir.display()
                ))
            })
    }

    /// Replaces `target` with `text` (temp file, fsync, rename), mode `mode`.
    fn replace(&self, target: &Path, text: &str, mode: u32) -> Result<(), BackendError> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let tmp = self.temp_in_dir("write")?;
        let io = |e: std::io::Error| failed(format!("ssh-ca: writing {}: {e}", target.display()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
        f.sync_all().map_err(io)?;
        tmp.persist(target)
            .map_err(|e| failed(format!("ssh-ca: replacing {}: {e}", target.display())))
    }

    fn read_journal(&self) -> Result<Vec<Issued>, BackendError> {
        match std::fs::read_to_string(self.journal()) {
            Ok(t) => Ok(parse_journal(&t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(failed(format!(
                "ssh-ca: cannot read the issue journal {}: {e}",
                self.journal().display()
            ))),
        }
    }

    /// Adds `entry` to the journal, dropping lines long expired. Lock held.
    fn record(&self, entry: Issued) -> Result<(), BackendError> {
        let horizon = self.clock.now().timestamp() - JOURNAL_GRACE_SECONDS;
        let mut text = String::new();
        for i in self
            .read_journal()?
            .into_iter()
            .filter(|i| i.valid_before > horizon)
            .chain(std::iter::once(entry))
        {
            text.push_str(&format!(
                "{} {} {}\n",
                i.serial, i.valid_before, i.request_id
            ));
        }
        self.replace(&self.journal(), &text, 0o600)
    }

    /// Creates an empty KRL when there is none: sshd refuses every key while
    /// the file `RevokedKeys` names is missing. Lock held.
    async fn ensure_krl(&self) -> Result<(), BackendError> {
        if self.cfg.krl.exists() {
            return Ok(());
        }
        let tmp = self.temp_in_dir("krl")?;
        // ssh-keygen writes a new KRL only where no file is.
        let _ = std::fs::remove_file(&tmp);
        self.ssh_keygen(&["-k".as_ref(), "-f".as_ref(), tmp.as_os_str()])
            .await?;
        publish(&tmp)?;
        tmp.persist(&self.cfg.krl)
            .map_err(|e| failed(format!("ssh-ca: replacing {}: {e}", self.cfg.krl.display())))
    }

    /// Adds `serials` to the KRL: a copy updated by ssh-keygen, renamed over it.
    /// Lock held.
    async fn revoke_serials(&self, ca: &PrivateKey, serials: &[u64]) -> Result<(), BackendError> {
        self.ensure_krl().await?;
        let ca_pub = self.temp_in_dir("ca")?;
        let public = ca
            .public_key()
            .to_openssh()
            .map_err(|e| failed(format!("ssh-ca: the CA's public key: {e}")))?;
        std::fs::write(&ca_pub, format!("{public}\n"))
            .map_err(|e| failed(format!("ssh-ca: writing the CA's public key: {e}")))?;
        let spec = self.temp_in_dir("spec")?;
        let lines: String = serials.iter().map(|s| format!("serial: {s}\n")).collect();
        std::fs::write(&spec, lines)
            .map_err(|e| failed(format!("ssh-ca: writing the revocation spec: {e}")))?;
        let tmp = self.temp_in_dir("krl")?;
        std::fs::copy(&self.cfg.krl, &tmp).map_err(|e| {
            failed(format!(
                "ssh-ca: copying the KRL {}: {e}",
                self.cfg.krl.display()
            ))
        })?;
        self.ssh_keygen(&[
            "-k".as_ref(),
            "-u".as_ref(),
            "-f".as_ref(),
            tmp.as_os_str(),
            "-s".as_ref(),
            ca_pub.as_os_str(),
            spec.as_os_str(),
        ])
        .await?;
        publish(&tmp)?;
        tmp.persist(&self.cfg.krl)
            .map_err(|e| failed(format!("ssh-ca: replacing {}: {e}", self.cfg.krl.display())))
    }

    /// The `ssh` line shown with the credential.
    fn ssh_line(&self, scope: &Scope) -> String {
        let host = scope
            .host
            .as_deref()
            .or(self.cfg.host.as_deref())
            .unwrap_or("HOST");
        let port = self
            .cfg
            .port
            .map(|p| format!(" -p {p}"))
            .unwrap_or_default();
        format!(
            "ssh {SSH_LINE_FILES}{port} {}@{host}{SSH_LINE_NOTE}",
            scope.principals[0]
        )
    }

    /// A new key pair and its certificate for `request_id`, valid until
    /// `expires_at`; the serial is journaled first. Returns the serial and the
    /// credential.
    async fn issue(
        &self,
        request_id: &str,
        requester: &str,
        scope: &serde_json::Value,
        expires_at: DateTime<Utc>,
    ) -> Result<(u64, Credential), BackendError> {
        let scope = Scope::parse(scope).map_err(|m| failed(format!("ssh-ca: {m}")))?;
        if request_id.is_empty()
            || request_id.len() > 64
            || !request_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
        {
            return Err(failed(format!(
                "ssh-ca: request id {:?} is not accepted: write {}",
                crate::sanitize::line(request_id, 80),
                super::postgres::REQUEST_ID_RULE
            )));
        }
        let now = self.clock.now();
        if expires_at <= now {
            return Err(failed("ssh-ca: the certificate's expiry has passed"));
        }
        let ca = self.ca_key()?;
        let mut rng = rand::rngs::OsRng;
        let mut key = PrivateKey::random(&mut rng, Algorithm::Ed25519)
            .map_err(|e| failed(format!("ssh-ca: generating a key: {e}")))?;
        let requester = crate::sanitize::line(requester, 64).replace(' ', "_");
        key.set_comment(format!("breakglass {request_id} {requester}"));
        let serial = loop {
            let s = rand::random::<u64>();
            if s != 0 {
                break s;
            }
        };
        let valid_after = (now.timestamp() - SKEW_SECONDS).max(0) as u64;
        let valid_before = expires_at.timestamp();
        {
            // Recorded before signing: no certificate exists that revoke by
            // request id could not find.
            let _in_process = self.writer.lock().await;
            let _held = self.lock().await?;
            self.record(Issued {
                serial,
                valid_before,
                request_id: request_id.to_string(),
            })?;
            self.ensure_krl().await?;
        }
        let cert_err = |e: ssh_key::Error| failed(format!("ssh-ca: signing the certificate: {e}"));
        let mut b = certificate::Builder::new_with_random_nonce(
            &mut rng,
            key.public_key().key_data().clone(),
            valid_after,
            valid_before as u64,
        )
        .map_err(cert_err)?;
        b.serial(serial).map_err(cert_err)?;
        b.cert_type(certificate::CertType::User).map_err(cert_err)?;
        b.key_id(format!("breakglass {request_id} {requester}"))
            .map_err(cert_err)?;
        for p in &scope.principals {
            b.valid_principal(p.clone()).map_err(cert_err)?;
        }
        if let Some(a) = &scope.source_address {
            b.critical_option("source-address", a.clone())
                .map_err(cert_err)?;
        }
        if let Some(c) = &scope.force_command {
            b.critical_option("force-command", c.clone())
                .map_err(cert_err)?;
        }
        for e in &scope.extensions {
            b.extension(e.clone(), "").map_err(cert_err)?;
        }
        let cert = b.sign(&ca).map_err(cert_err)?;
        let cert_text = cert.to_openssh().map_err(cert_err)?;
        let private = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| failed(format!("ssh-ca: encoding the key: {e}")))?;
        Ok((
            serial,
            Credential(vec![
                (
                    "private_key".into(),
                    SecretString::from(private.to_string()),
                ),
                (
                    "certificate".into(),
                    SecretString::from(format!("{cert_text}\n")),
                ),
                ("ssh".into(), SecretString::from(self.ssh_line(&scope))),
            ]),
        ))
    }

    /// Every serial journaled for `request_id`, and the lease's.
    fn serials_of(&self, request_id: &str, lease: Option<&str>) -> Result<Vec<u64>, BackendError> {
        let mut serials: Vec<u64> = self
            .read_journal()?
            .into_iter()
            .filter(|i| i.request_id == request_id)
            .map(|i| i.serial)
            .collect();
        // A lease this backend did not issue names nothing to revoke.
        if let Some(s) = lease.and_then(lease_serial) {
            if !serials.contains(&s) {
                serials.push(s);
            }
        }
        Ok(serials)
    }
}

/// A KRL is public: servers (and whoever copies it to them) read it.
fn publish(path: &Path) -> Result<(), BackendError> {
    use std::os::unix::fs::PermissionsExt;
    // On disk before it is renamed over the KRL sshd reads: after a crash the
    // list is the old one or the new one, never an empty file (no revocations).
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .and_then(|()| std::fs::File::open(path)?.sync_all())
        .map_err(|e| failed(format!("ssh-ca: {}: {e}", path.display())))
}

#[async_trait::async_trait]
impl Backend for SshCaBackend {
    fn kind(&self) -> &'static str {
        "ssh-ca"
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError> {
        let (serial, credential) = self
            .issue(
                &spec.request_id,
                &spec.requester,
                &spec.scope,
                spec.expires_at,
            )
            .await?;
        Ok(Grant {
            lease_id: format!("ssh-ca-serial-{serial}"),
            expires_at: Some(spec.expires_at),
            credential,
        })
    }

    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError> {
        let _in_process = self.writer.lock().await;
        let _held = self.lock().await?;
        let serials = self.serials_of(&spec.request_id, spec.lease_id.as_deref())?;
        if serials.is_empty() {
            return Ok(());
        }
        let ca = self.ca_key()?;
        self.revoke_serials(&ca, &serials).await
    }

    fn extension_issues_credential(&self) -> bool {
        true
    }

    async fn extend(
        &self,
        _spec: &RevokeSpec,
        _expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        // The expiry is signed into the certificate: a later one is a new
        // certificate for the requester, which only extend_credential returns.
        Err(BackendError::NotSupported(
            "extend without a new credential (an SSH certificate's expiry is signed into it)",
        ))
    }

    /// A new key and certificate valid until `expires_at`; once it exists,
    /// every earlier certificate of the request goes into the KRL.
    async fn extend_credential(
        &self,
        spec: &RevokeSpec,
        requester: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Option<Credential>, BackendError> {
        let (serial, credential) = self
            .issue(&spec.request_id, requester, &spec.scope, expires_at)
            .await?;
        let _in_process = self.writer.lock().await;
        let _held = self.lock().await?;
        let old: Vec<u64> = self
            .serials_of(&spec.request_id, spec.lease_id.as_deref())?
            .into_iter()
            .filter(|s| *s != serial)
            .collect();
        if !old.is_empty() {
            let ca = self.ca_key()?;
            self.revoke_serials(&ca, &old).await?;
        }
        Ok(Some(credential))
    }

    /// Proves the certificate locally, as a server trusting the CA would
    /// judge it: signed by this CA, valid now, for the key the credential
    /// holds, and not in the KRL (`ssh-keygen -Q`). No server is contacted.
    async fn probe(
        &self,
        _spec: &RevokeSpec,
        credential: &Credential,
    ) -> Result<String, BackendError> {
        let (Some(cert), Some(key)) =
            (credential.get("certificate"), credential.get("private_key"))
        else {
            return Err(failed(
                "ssh-ca: the credential has no certificate or private key",
            ));
        };
        let cert = certificate::Certificate::from_openssh(cert.trim())
            .map_err(|e| failed(format!("ssh-ca: the certificate does not parse: {e}")))?;
        let key = PrivateKey::from_openssh(key.trim_start())
            .map_err(|e| failed(format!("ssh-ca: the private key does not parse: {e}")))?;
        if key.public_key().key_data() != cert.public_key() {
            return Err(failed(
                "ssh-ca: the certificate is not for the credential's key",
            ));
        }
        let ca = self
            .ca_key()?
            .public_key()
            .fingerprint(ssh_key::HashAlg::Sha256);
        let now = self.clock.now().timestamp().max(0) as u64;
        cert.validate_at(now, [&ca]).map_err(|e| {
            failed(format!(
                "ssh-ca: a server trusting the CA would refuse it: {e}"
            ))
        })?;
        // ssh-keygen reads the certificate (public) from a file; the key stays here.
        let file = self.temp_in_dir("probe")?;
        let text = cert
            .to_openssh()
            .map_err(|e| failed(format!("ssh-ca: encoding the certificate: {e}")))?;
        std::fs::write(&file, text)
            .map_err(|e| failed(format!("ssh-ca: writing the probe's certificate: {e}")))?;
        self.ssh_keygen(&[
            "-Q".as_ref(),
            "-f".as_ref(),
            self.cfg.krl.as_os_str(),
            file.as_os_str(),
        ])
        .await
        .map_err(|e| {
            failed(format!(
                "ssh-ca: the certificate is revoked in the KRL ({e})"
            ))
        })?;
        Ok(format!(
            "ssh-ca: certificate serial {} valid for {} and not revoked",
            cert.serial(),
            cert.valid_principals().join(",")
        ))
    }

    async fn check(&self) -> Result<String, BackendError> {
        let ca = self.ca_key()?;
        let _in_process = self.writer.lock().await;
        let _held = self.lock().await?;
        self.ensure_krl().await?;
        // Writable: the KRL is rewritten as it is, through the same path as a revoke.
        self.revoke_serials(&ca, &[]).await?;
        Ok(format!(
            "ssh-ca: CA {} ready, KRL {} writable",
            ca.fingerprint(ssh_key::HashAlg::Sha256),
            self.cfg.krl.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scope_needs_valid_principals_and_known_options() {
        let s = Scope::parse(&json!({"principals": ["root", "deploy"]})).unwrap();
        assert_eq!(s.extensions, vec!["permit-pty"]);
        assert!(Scope::parse(&json!({})).unwrap_err().contains("principals"));
        assert!(Scope::parse(&json!({"principals": ["Root Admin"]}))
            .unwrap_err()
            .contains("not a login name"));
        assert!(
            Scope::parse(&json!({"principals": ["a"], "extensions": ["permit-everything"]}))
                .unwrap_err()
                .contains("not known")
        );
        assert!(
            Scope::parse(&json!({"principals": ["a"], "source_address": "10.0.0.0/33"})).is_err()
        );
        assert!(
            Scope::parse(&json!({"principals": ["a"], "source_address": "10.0.0.0/8,::1"})).is_ok()
        );
        assert!(Scope::parse(&json!({"principals": ["a"], "pty": true}))
            .unwrap_err()
            .contains("not known"));
    }

    #[test]
    fn journal_lines_round_trip_and_junk_is_skipped() {
        let j = parse_journal("5 100 REQ-1\ngarbage\n7 200 REQ-2\n");
        assert_eq!(j.len(), 2);
        assert_eq!(j[1].request_id, "REQ-2");
        assert_eq!(lease_serial("ssh-ca-serial-42"), Some(42));
        assert_eq!(lease_serial("bg-never-issued"), None);
    }
}
