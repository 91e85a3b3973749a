//! Signed approvals (`approval_signing = "ssh"`). A decision (approve, deny,
//! certify, reject) is a canonical statement signed with the decider's own SSH
//! key through `ssh-keygen -Y sign` (namespace `breakglass`). The engine checks
//! it with `ssh-keygen -Y verify` against the policy's allowed_signers file
//! before the decision counts, and `audit verify` checks every one again.
//!
//! The private key never leaves ssh-keygen (or ssh-agent, when `-f` names a
//! `.pub`); ssh-keygen runs as a child process with an argument vector, never
//! through a shell, and its files live in a private (0700) temp dir.

use crate::domain::{AuditAction, RequestId};
use chrono::{DateTime, SecondsFormat, Utc};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `-n` namespace: a signature made for breakglass is useless elsewhere
/// (git commits, ssh logins) and the other way round.
pub const NAMESPACE: &str = "breakglass";
pub const VERSION: &str = "breakglass-approval/v1";
/// Decisions about a role itself (vendor recertification).
pub const ROLE_VERSION: &str = "breakglass-role-decision/v1";
/// How far a statement's `at=` may be from the engine's clock when it is presented.
pub const MAX_SKEW_SECONDS: i64 = 300;
const MAX_SIGNATURE_BYTES: usize = 16 * 1024;
const ARMOR_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const ARMOR_END: &str = "-----END SSH SIGNATURE-----";

/// What is being decided; part of the statement, so an approval's signature is
/// no certification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Approve,
    Deny,
    Certify,
    Reject,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Approve => "approve",
            DecisionKind::Deny => "deny",
            DecisionKind::Certify => "certify",
            DecisionKind::Reject => "reject",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            DecisionKind::Approve => "approval",
            DecisionKind::Deny => "denial",
            DecisionKind::Certify => "certification",
            DecisionKind::Reject => "rejection",
        }
    }

    /// The audit action that records this decision.
    pub fn action(self) -> AuditAction {
        match self {
            DecisionKind::Approve => AuditAction::RequestApproved,
            DecisionKind::Deny => AuditAction::RequestDenied,
            DecisionKind::Certify => AuditAction::ReviewCertified,
            DecisionKind::Reject => AuditAction::ReviewRejected,
        }
    }

    pub fn from_action(action: &str) -> Option<DecisionKind> {
        [
            DecisionKind::Approve,
            DecisionKind::Deny,
            DecisionKind::Certify,
            DecisionKind::Reject,
        ]
        .into_iter()
        .find(|d| d.action().as_str() == action)
    }

    /// The breakglass command that makes this decision.
    pub fn command(self) -> &'static str {
        match self {
            DecisionKind::Approve => "approve",
            DecisionKind::Deny => "deny",
            DecisionKind::Certify => "certify",
            DecisionKind::Reject => "certify --reject",
        }
    }
}

impl std::fmt::Display for DecisionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The canonical statement one decision signs.
#[derive(Debug, Clone)]
pub struct Statement<'a> {
    pub request: RequestId,
    pub role: &'a str,
    /// `IncidentRef::label()` of the request.
    pub incident: &'a str,
    pub decision: DecisionKind,
    /// A denial's reason: signed with it, so the reason on record is the one
    /// the denier gave. `None` for the other decisions.
    pub reason: Option<&'a str>,
    pub signer: &'a str,
    pub at: DateTime<Utc>,
}

/// One value on one line: backslashes and control characters (newlines
/// included) are escaped, so no value can forge another line.
fn field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

impl Statement<'_> {
    /// `breakglass-approval/v1`, then `key=value` lines in a fixed order, each
    /// ending in `\n`; `at` in RFC 3339 UTC to the second. A denial carries a
    /// `reason=` line after `decision=`.
    pub fn text(&self) -> String {
        let reason = self
            .reason
            .map(|r| format!("reason={}\n", field(r)))
            .unwrap_or_default();
        format!(
            "{VERSION}\nrequest={}\nrole={}\nincident={}\ndecision={}\n{reason}signer={}\nat={}\n",
            self.request,
            field(self.role),
            field(self.incident),
            self.decision,
            field(self.signer),
            self.at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}

/// The canonical statement a decision about a role (not a request) signs.
#[derive(Debug, Clone)]
pub struct RoleStatement<'a> {
    pub role: &'a str,
    /// "recertify".
    pub decision: &'a str,
    pub signer: &'a str,
    pub at: DateTime<Utc>,
}

impl RoleStatement<'_> {
    /// `breakglass-role-decision/v1`, then `key=value` lines in a fixed order;
    /// its own first line, so it can never pass for a request's statement.
    pub fn text(&self) -> String {
        format!(
            "{ROLE_VERSION}\nrole={}\ndecision={}\nsigner={}\nat={}\n",
            field(self.role),
            field(self.decision),
            field(self.signer),
            self.at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}

/// The `at=` of a statement (one printed by `--print-statement` and signed elsewhere).
pub fn statement_at(text: &str) -> Option<DateTime<Utc>> {
    let mut lines = text.lines();
    if !matches!(lines.next(), Some(VERSION | ROLE_VERSION)) {
        return None;
    }
    lines
        .find_map(|l| l.strip_prefix("at="))
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn ssh_keygen() -> Command {
    Command::new("ssh-keygen")
}

/// Why a statement could not be signed or a signature does not verify.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A file for ssh-keygen could not be written or read; `what` says which.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run ssh-keygen (OpenSSH 8.9 or later is needed): {0}")]
    NoSshKeygen(#[source] std::io::Error),
    /// ssh-keygen ran and refused to sign; `reason` is its last line, cleaned.
    #[error("ssh-keygen could not sign with {key}: {reason}")]
    SignRefused { key: String, reason: String },
    #[error("not an SSH signature (expected the {ARMOR_BEGIN} block `ssh-keygen -Y sign` writes)")]
    NotArmored,
    /// ssh-keygen ran and the signature does not verify; its last line, cleaned.
    #[error("{0}")]
    DoesNotVerify(String),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> SigningError {
    move |source| SigningError::Io { what, source }
}

fn private_dir() -> Result<tempfile::TempDir, SigningError> {
    // tempfile creates the directory with mode 0700.
    tempfile::Builder::new()
        .prefix("breakglass-ssh-")
        .tempdir()
        .map_err(io("cannot create a private temp dir"))
}

/// ssh-keygen's reason for a failure: the last meaningful line of stderr, else
/// of stdout (OpenSSH 9 prints `Could not verify signature.` on stdout).
fn last_line(out: &std::process::Output) -> String {
    let pick = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(str::trim)
            .rfind(|l| {
                !l.is_empty() && !l.starts_with("Signing file") && !l.starts_with("Write signature")
            })
            .map(str::to_string)
    };
    let line = pick(&out.stderr)
        .or_else(|| pick(&out.stdout))
        .unwrap_or_else(|| "no message".into());
    crate::sanitize::line(&line, 300)
}

/// `~/x` in a key path taken from the environment.
pub fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => p.to_path_buf(),
    }
}

/// The key used when none is named: `~/.ssh/id_ed25519`, else `~/.ssh/id_ecdsa`.
pub fn default_key() -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME")?);
    ["id_ed25519", "id_ecdsa"]
        .into_iter()
        .map(|k| home.join(".ssh").join(k))
        .find(|p| p.exists())
}

/// Signs `statement` with `key` (a private key, or a `.pub` whose private half
/// is in ssh-agent). A passphrase prompt goes to the terminal, as with ssh.
/// Returns the armored signature.
pub fn sign(key: &Path, statement: &str) -> Result<String, SigningError> {
    let dir = private_dir()?;
    let msg = dir.path().join("statement");
    std::fs::write(&msg, statement).map_err(io("cannot write the statement"))?;
    let out = ssh_keygen()
        .args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(key)
        .arg(&msg)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(SigningError::NoSshKeygen)?;
    if !out.status.success() {
        return Err(SigningError::SignRefused {
            key: key.display().to_string(),
            reason: last_line(&out),
        });
    }
    let armored = std::fs::read_to_string(dir.path().join("statement.sig"))
        .map_err(io("ssh-keygen wrote no signature"))?;
    check_armor(&armored)?;
    Ok(armored)
}

/// A signature someone presents is text breakglass writes to a file for
/// ssh-keygen: bounded, and shaped like an armored SSH signature.
pub fn check_armor(armored: &str) -> Result<(), SigningError> {
    let t = armored.trim();
    let ok = t.len() <= MAX_SIGNATURE_BYTES
        && t.starts_with(ARMOR_BEGIN)
        && t.ends_with(ARMOR_END)
        && t[ARMOR_BEGIN.len()..t.len() - ARMOR_END.len()]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '\n' | '\r'));
    if ok {
        Ok(())
    } else {
        Err(SigningError::NotArmored)
    }
}

/// Checks that `armored` is `signer`'s signature over `statement` under the
/// `breakglass` namespace, with a key `allowed_signers` lists for `signer` and
/// that was valid at `at` (so an old approval still verifies after its key is
/// retired with `valid-before`).
pub fn verify(
    allowed_signers: &Path,
    signer: &str,
    armored: &str,
    statement: &str,
    at: DateTime<Utc>,
) -> Result<(), SigningError> {
    check_armor(armored)?;
    let dir = private_dir()?;
    let sig = dir.path().join("statement.sig");
    std::fs::write(&sig, armored.trim().as_bytes()).map_err(io("cannot write the signature"))?;
    let mut child = ssh_keygen()
        .args(["-Y", "verify", "-n", NAMESPACE, "-f"])
        .arg(allowed_signers)
        .arg("-I")
        .arg(signer)
        .arg("-s")
        .arg(&sig)
        .arg("-O")
        .arg(format!("verify-time={}", at.format("%Y%m%d%H%M%SZ")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(SigningError::NoSshKeygen)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error shows up as a failed verification below.
        let _ = stdin.write_all(statement.as_bytes());
    }
    let out = child.wait_with_output().map_err(io("ssh-keygen"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SigningError::DoesNotVerify(last_line(&out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T03:14:15.926Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn st<'a>(incident: &'a str, signer: &'a str) -> Statement<'a> {
        Statement {
            request: RequestId(7),
            role: "prod-db-emergency-dba",
            incident,
            decision: DecisionKind::Approve,
            reason: None,
            signer,
            at: at(),
        }
    }

    #[test]
    fn the_statement_is_fixed_lines_in_a_fixed_order() {
        assert_eq!(
            st("INC-1042 (demo-incidents): Checkout API down", "bob").text(),
            "breakglass-approval/v1\nrequest=REQ-7\nrole=prod-db-emergency-dba\n\
             incident=INC-1042 (demo-incidents): Checkout API down\ndecision=approve\n\
             signer=bob\nat=2026-11-25T03:14:15Z\n"
        );
    }

    #[test]
    fn every_part_of_the_decision_changes_the_statement() {
        let base = st("ticket CHG-1", "bob");
        let text = base.text();
        let variants = [
            Statement {
                request: RequestId(8),
                ..base.clone()
            },
            Statement {
                role: "k8s-cluster-admin",
                ..base.clone()
            },
            Statement {
                incident: "ticket CHG-2",
                ..base.clone()
            },
            Statement {
                decision: DecisionKind::Certify,
                ..base.clone()
            },
            Statement {
                signer: "carol",
                ..base.clone()
            },
            Statement {
                reason: Some("not an outage"),
                ..base.clone()
            },
            Statement {
                at: at() + chrono::Duration::seconds(1),
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.text(), text, "{v:?}");
        }
        let denial = |reason| Statement {
            decision: DecisionKind::Deny,
            reason: Some(reason),
            ..base.clone()
        };
        assert_ne!(denial("no").text(), denial("no\nsigner=x").text());
        assert!(denial("a\nb").text().contains("reason=a\\u{a}b\n"));
    }

    #[test]
    fn values_cannot_inject_lines() {
        let t = st("INC-1\ndecision=certify\nsigner=mallory", "bob\\").text();
        assert_eq!(t.lines().count(), 7, "{t}");
        assert!(t.contains("incident=INC-1\\u{a}decision=certify\\u{a}signer=mallory\n"));
        assert!(t.contains("signer=bob\\\\\n"));
        assert_eq!(t.lines().filter(|l| l.starts_with("decision=")).count(), 1);
    }

    #[test]
    fn the_signing_time_reads_back_from_a_statement() {
        let t = st("ticket CHG-1", "bob").text();
        assert_eq!(
            statement_at(&t),
            Some(chrono::SubsecRound::trunc_subsecs(at(), 0))
        );
        assert_eq!(statement_at("at=2026-11-25T03:14:15Z\n"), None);
    }

    #[test]
    fn decisions_map_to_their_audit_actions() {
        for d in [
            DecisionKind::Approve,
            DecisionKind::Deny,
            DecisionKind::Certify,
            DecisionKind::Reject,
        ] {
            assert_eq!(DecisionKind::from_action(d.action().as_str()), Some(d));
        }
        assert_eq!(DecisionKind::from_action("request.created"), None);
    }

    #[test]
    fn only_armored_signatures_are_accepted() {
        assert!(check_armor(
            "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"
        )
        .is_ok());
        assert!(check_armor("U1NIU0lH").is_err());
        assert!(check_armor(
            "-----BEGIN SSH SIGNATURE-----\n$(rm -rf)\n-----END SSH SIGNATURE-----"
        )
        .is_err());
        let huge = format!(
            "{ARMOR_BEGIN}\n{}\n{ARMOR_END}",
            "A".repeat(MAX_SIGNATURE_BYTES)
        );
        assert!(check_armor(&huge).is_err());
    }
}
