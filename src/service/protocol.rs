//! `breakglass.broker/v1`: what a console or CLI asks the broker, and what it
//! answers. One frame each way per call: a 4-byte big-endian length, then that
//! many bytes of JSON. docs/src/broker-protocol.md is the reference.
//!
//! Nothing in a call says who is asking: the broker learns that from the kernel
//! (`SO_PEERCRED`). The one exception, `as_persona`, is refused unless the
//! broker's policy is a demo's.

use crate::audit::{AuditRecord, Broken};
use crate::domain::{Request, RequestId, ReviewAnswers, SshSignature};
use crate::engine::{
    Decision, Query, QueueItem, RecoveryReport, RequestInput, RoleCertification, RoleView,
};
use crate::identity::ssh_sign::DecisionKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const VERSION: &str = "breakglass.broker/v1";

/// Largest call a broker reads: a reason or a review is at most a few KiB.
pub const MAX_CALL_BYTES: usize = 256 * 1024;
/// Largest reply a client reads (an audit page, the console's snapshot).
pub const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;
/// Longest `wait_for_change` a broker grants one call.
pub const MAX_WAIT_MS: u64 = 30_000;

/// One call as it travels: the protocol version, the demo persona (if any) and
/// the call.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub v: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_persona: Option<String>,
    pub call: Call,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
// Calls without arguments are empty structs, not unit variants: serde ignores
// extra fields on a unit variant, and no field may ride along unread.
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Call {
    /// Who the broker takes the caller for, and what it serves.
    Hello {},
    Incidents {},
    Roles {},
    Requests {
        query: Query,
    },
    Get {
        id: RequestId,
    },
    /// The caller's approval queue.
    Approvals {},
    /// The caller's certification queue.
    Reviews {},
    AuditHead {},
    AuditTail {
        n: usize,
    },
    AuditEvents {
        from: i64,
        limit: usize,
    },
    UndeliveredAlerts {},
    WaitForChange {
        after: i64,
        timeout_ms: u64,
    },
    Recover {},
    DeliverAlerts {},
    Request {
        input: RequestInput,
        #[serde(default)]
        vendor: Option<crate::domain::vendor::VendorInfo>,
    },
    Activate {
        id: RequestId,
    },
    Decide {
        id: RequestId,
        decision: Decision,
    },
    Cancel {
        id: RequestId,
    },
    /// A drill of `role` by the caller: runs their approved drill, or files one
    /// (it waits for `drill_approvals` approvers), or returns the one waiting.
    /// The credential never leaves the engine; the reply is the drill request.
    Drill {
        role: String,
    },
    Revoke {
        id: RequestId,
        reason: String,
    },
    Extend {
        id: RequestId,
        seconds: i64,
        reason: String,
    },
    Review {
        id: RequestId,
        answers: ReviewAnswers,
    },
    RecertifyRole {
        role: String,
        comment: String,
        signature: Option<SshSignature>,
    },
    /// The text the caller signs to make `kind` on `id` at `at`.
    Statement {
        id: RequestId,
        kind: DecisionKind,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    RoleStatement {
        role: String,
        at: DateTime<Utc>,
    },
    VerifyAudit {},
    Checkpoint {},
    /// Whether the log still extends a checkpoint (its signature is checked by
    /// the caller).
    CheckCheckpoint {
        checkpoint: crate::audit::checkpoint::Checkpoint,
    },
    /// The evidence bundle of `id`, as files (the caller writes them).
    Evidence {
        id: RequestId,
    },
    /// A vendor request's recorded session: activate it and start its recording.
    OpenShell {
        id: RequestId,
    },
    /// The next piece of the session's asciicast (at most `MAX_RECORDING_PIECE`).
    AppendRecording {
        id: RequestId,
        base64: String,
    },
    /// The session is over: hash the recording into the audit trail.
    CloseRecording {
        id: RequestId,
    },
    /// The recording, for someone who may replay it.
    ReadRecording {
        id: RequestId,
    },
    /// Why a running session must end now (None: it may go on).
    SessionEndReason {
        id: RequestId,
    },
    /// The caller watched the recording (certifying a vendor session needs it).
    Replayed {
        id: RequestId,
        speed: f64,
    },
}

/// Largest piece of a recording in one call (base64 adds a third; the call
/// stays under `MAX_CALL_BYTES`).
pub const MAX_RECORDING_PIECE: usize = 128 * 1024;

impl Call {
    /// Whether the call may change state (and so wait on a backend).
    pub fn changes_state(&self) -> bool {
        matches!(
            self,
            Call::Recover {}
                | Call::DeliverAlerts {}
                | Call::Request { .. }
                | Call::Activate { .. }
                | Call::Decide { .. }
                | Call::Cancel { .. }
                | Call::Drill { .. }
                | Call::Revoke { .. }
                | Call::Extend { .. }
                | Call::Review { .. }
                | Call::RecertifyRole { .. }
                | Call::OpenShell { .. }
                | Call::AppendRecording { .. }
                | Call::CloseRecording { .. }
                | Call::Replayed { .. }
        )
    }

    /// The name of the call, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Hello {} => "hello",
            Call::Incidents {} => "incidents",
            Call::Roles {} => "roles",
            Call::Requests { .. } => "requests",
            Call::Get { .. } => "get",
            Call::Approvals {} => "approvals",
            Call::Reviews {} => "reviews",
            Call::AuditHead {} => "audit_head",
            Call::AuditTail { .. } => "audit_tail",
            Call::AuditEvents { .. } => "audit_events",
            Call::UndeliveredAlerts {} => "undelivered_alerts",
            Call::WaitForChange { .. } => "wait_for_change",
            Call::Recover {} => "recover",
            Call::DeliverAlerts {} => "deliver_alerts",
            Call::Request { .. } => "request",
            Call::Activate { .. } => "activate",
            Call::Decide { .. } => "decide",
            Call::Cancel { .. } => "cancel",
            Call::Drill { .. } => "drill",
            Call::Revoke { .. } => "revoke",
            Call::Extend { .. } => "extend",
            Call::Review { .. } => "review",
            Call::RecertifyRole { .. } => "recertify_role",
            Call::Statement { .. } => "statement",
            Call::RoleStatement { .. } => "role_statement",
            Call::VerifyAudit {} => "verify_audit",
            Call::Checkpoint {} => "checkpoint",
            Call::CheckCheckpoint { .. } => "check_checkpoint",
            Call::Evidence { .. } => "evidence",
            Call::OpenShell { .. } => "open_shell",
            Call::AppendRecording { .. } => "append_recording",
            Call::CloseRecording { .. } => "close_recording",
            Call::ReadRecording { .. } => "read_recording",
            Call::Replayed { .. } => "replayed",
            Call::SessionEndReason { .. } => "session_end_reason",
        }
    }
}

/// What the broker says about itself and the caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub v: String,
    /// The caller, as the broker knows them (the kernel's uid, or a demo persona).
    /// An error when the uid has no account name.
    pub who: Result<String, String>,
    pub store: String,
    /// Demo mode: the personas the console may switch between.
    pub personas: Option<Vec<String>>,
    pub signing_required: bool,
    /// The public half of the broker's checkpoint key (hex), when it has one.
    pub checkpoint_public_key: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Hello(Hello),
    Incidents {
        incidents: Vec<crate::incident::Incident>,
        errors: Vec<crate::incident::SourceError>,
        warnings: Vec<String>,
    },
    Roles {
        roles: Vec<RoleView>,
    },
    Requests {
        requests: Vec<Request>,
    },
    Request {
        request: Request,
    },
    Queue {
        items: Vec<QueueItem>,
    },
    Head {
        seq: i64,
        hash: String,
    },
    Audit {
        records: Vec<AuditRecord>,
    },
    Count {
        n: u64,
    },
    Changed {
        changed: bool,
    },
    Recovery {
        report: RecoveryReport,
    },
    /// The credential travels here once, to the requester, and nowhere else.
    Activated {
        request: Request,
        credential: Vec<(String, String)>,
    },
    /// An extension that came with a new credential (an SSH certificate with
    /// the later expiry): it travels here once, to the requester. Without one
    /// the reply to `extend` is `Request`.
    Extended {
        request: Request,
        credential: Vec<(String, String)>,
    },
    Certified {
        certification: RoleCertification,
    },
    Statement {
        text: String,
    },
    Verified {
        count: u64,
        broken: Option<Broken>,
    },
    Checkpoint {
        checkpoint: crate::audit::checkpoint::Checkpoint,
    },
    /// `Ok` or why the log does not extend the checkpoint.
    Checked {
        verdict: Result<(), String>,
    },
    /// A vendor session to run: the credential travels here once, to the requester.
    Shell {
        request: Request,
        credential: Vec<(String, String)>,
        shell_command: Option<String>,
        record_input: bool,
        recording: std::path::PathBuf,
    },
    Recorded {
        recording: crate::engine::Recording,
    },
    EndReason {
        reason: Option<String>,
    },
    /// `base64` is absent when the file no longer matches its audited hash.
    RecordingData {
        recording: crate::engine::Recording,
        base64: Option<String>,
    },
    /// A bundle; `broken`: the chain did not verify and nothing was built.
    Evidence {
        built: Option<crate::audit::evidence::Built>,
        broken: Option<Broken>,
        files: Vec<crate::audit::evidence::transfer::BundleFile>,
    },
    Done,
    Error(WireError),
}

/// Why a call failed, with the exit code the CLI uses for it, so a thin client
/// exits as the in-process engine would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    pub kind: ErrorKind,
    pub code: i32,
    pub message: String,
    #[serde(default)]
    pub causes: Vec<String>,
    /// For a refusal: why, for programs (the message says it to people).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<crate::domain::lifecycle::Reason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The lifecycle or the policy said no.
    Refused,
    /// Input the policy cannot evaluate.
    Input,
    NotFound,
    Locked,
    Backend,
    Source,
    Store,
    Config,
    /// Who the caller is could not be told, or `as_persona` outside a demo.
    Identity,
    /// The broker could not be reached or answered out of protocol.
    Unavailable,
    Protocol,
}

impl WireError {
    pub fn new(kind: ErrorKind, code: i32, message: impl Into<String>) -> Self {
        WireError {
            kind,
            code,
            message: message.into(),
            causes: vec![],
            reason: None,
        }
    }
    /// `e` as the message and its source chain as the causes; a cause whose
    /// text the message already holds is not repeated.
    pub fn with_causes(kind: ErrorKind, code: i32, e: &dyn std::error::Error) -> Self {
        let mut w = WireError::new(kind, code, e.to_string());
        let mut src = e.source();
        while let Some(c) = src {
            let text = c.to_string();
            if !w.message.contains(&text) && !w.causes.iter().any(|x| x.contains(&text)) {
                w.causes.push(text);
            }
            src = c.source();
        }
        w
    }
    pub fn protocol(message: impl Into<String>) -> Self {
        WireError::new(ErrorKind::Protocol, crate::exit::FAILURE, message)
    }
}

impl From<crate::engine::Error> for WireError {
    fn from(e: crate::engine::Error) -> Self {
        use crate::domain::RefusalKind;
        use crate::engine::Error as E;
        let kind = match &e {
            E::Refused(r) if r.kind == RefusalKind::Input => ErrorKind::Input,
            E::Refused(_) => ErrorKind::Refused,
            E::NotFound(_) => ErrorKind::NotFound,
            E::Locked { .. } => ErrorKind::Locked,
            E::Backend { .. } => ErrorKind::Backend,
            E::Source(_) => ErrorKind::Source,
            E::Store(_) => ErrorKind::Store,
            E::Config(_) | E::Evidence(_) | E::Checkpoint(_) => ErrorKind::Config,
        };
        let mut w = WireError::with_causes(kind, e.exit_code(), &e);
        w.reason = match &e {
            E::Refused(r) => Some(r.reason),
            E::Locked { .. } => Some(crate::domain::lifecycle::Reason::Locked),
            _ => None,
        };
        w
    }
}

impl From<crate::identity::IdentityError> for WireError {
    fn from(e: crate::identity::IdentityError) -> Self {
        WireError::new(ErrorKind::Identity, crate::exit::USAGE, e.to_string())
    }
}

/// Reads one frame of at most `max` bytes. `Ok(None)`: the peer closed cleanly
/// before a frame began.
pub async fn read_frame<R: AsyncReadExt + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is over the limit of {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

pub async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too large"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await
}

/// Parses a call frame as the broker does: the version first, so an old or new
/// client hears which version this broker speaks.
pub fn parse_call(body: &[u8]) -> Result<Envelope, WireError> {
    #[derive(Deserialize)]
    struct Version {
        v: Option<String>,
    }
    let v: Version = serde_json::from_slice(body)
        .map_err(|e| WireError::protocol(format!("not a {VERSION} call: {e}")))?;
    if v.v.as_deref() != Some(VERSION) {
        return Err(WireError::protocol(format!(
            "this broker speaks {VERSION}; the call said {}",
            crate::sanitize::line(v.v.as_deref().unwrap_or("no version"), 60)
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        WireError::protocol(crate::sanitize::line(
            &format!("bad {VERSION} call: {e}"),
            300,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::evidence::EvidenceError;

    /// An error under an error, to see both come through.
    #[derive(Debug, thiserror::Error)]
    #[error("connection reset")]
    struct Reset;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the audit log")]
    struct Reading(#[source] Reset);

    #[test]
    fn an_evidence_error_crosses_the_socket_with_its_words_and_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied");
        let e = crate::engine::Error::Evidence(EvidenceError::Io {
            what: "/srv/bundle/events.jsonl".into(),
            source: io,
        });
        let w = WireError::from(e);
        assert_eq!(w.message, "/srv/bundle/events.jsonl: Permission denied");
        assert_eq!((w.kind, w.code), (ErrorKind::Config, crate::exit::USAGE));
        assert!(w.causes.is_empty(), "said once: {:?}", w.causes);

        let e = crate::engine::Error::Evidence(EvidenceError::Log(Box::new(Reading(Reset))));
        let w = WireError::from(e);
        assert_eq!(w.message, "reading the audit log");
        assert_eq!(w.causes, ["connection reset"]);
    }
}
