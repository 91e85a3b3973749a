//! What a person can ask of breakglass, as one type the console and the CLI use:
//! answered by an engine in this process (direct mode: this process holds the
//! backend secrets) or by the broker over its Unix socket (this process holds
//! none). Both run the same `handle`, so views, messages and exit codes match.

pub mod client;
pub mod handle;
pub mod protocol;

use crate::audit::{AuditRecord, Broken};
use crate::backend::Credential;
use crate::domain::{Request, RequestId, ReviewAnswers, SshSignature};
use crate::engine::{
    Decision, Engine, Query, QueueItem, RecoveryReport, RequestInput, RequestView,
    RoleCertification, RoleView,
};
use crate::identity::ssh_sign::DecisionKind;
use chrono::{DateTime, Utc};
use protocol::{Call, Hello, Reply, WireError};
use std::path::PathBuf;
use std::sync::Arc;

pub use protocol::{ErrorKind, WireError as Error};

#[derive(Clone)]
enum Inner {
    Local(Arc<Engine>),
    Broker(Arc<PathBuf>),
}

/// The front ends' one way in. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Inner,
    /// Demo mode only: the persona calls act as (the engine or broker refuses
    /// it outside a demo).
    persona: Option<String>,
}

type R<T> = Result<T, WireError>;

fn unexpected<T>(call: &str, r: Reply) -> R<T> {
    let got = match r {
        Reply::Error(e) => return Err(e),
        other => format!("{other:?}").chars().take(40).collect::<String>(),
    };
    Err(WireError::protocol(format!(
        "unexpected answer to `{call}`: {}",
        crate::sanitize::line(&got, 60)
    )))
}

impl Service {
    pub fn local(engine: Arc<Engine>) -> Self {
        Service {
            inner: Inner::Local(engine),
            persona: None,
        }
    }
    pub fn broker(socket: PathBuf) -> Self {
        Service {
            inner: Inner::Broker(Arc::new(socket)),
            persona: None,
        }
    }
    /// The same service, acting as a demo persona (None: as yourself).
    pub fn as_persona(&self, persona: Option<String>) -> Self {
        Service {
            inner: self.inner.clone(),
            persona,
        }
    }
    pub fn persona(&self) -> Option<&str> {
        self.persona.as_deref()
    }
    /// The broker's socket, when calls go to a broker.
    pub fn socket(&self) -> Option<&std::path::Path> {
        match &self.inner {
            Inner::Broker(s) => Some(s),
            Inner::Local(_) => None,
        }
    }
    /// The in-process engine (direct mode), for what only runs beside it today.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        match &self.inner {
            Inner::Local(e) => Some(e),
            Inner::Broker(_) => None,
        }
    }

    /// Where the secrets are, said plainly for status lines.
    pub fn holder(&self) -> String {
        match &self.inner {
            Inner::Local(_) => "direct mode: this process holds the secrets".to_string(),
            Inner::Broker(s) => format!("broker {}", s.display()),
        }
    }

    pub async fn call(&self, call: Call) -> R<Reply> {
        match &self.inner {
            Inner::Local(engine) => {
                let caller = engine
                    .whoami(self.persona.as_deref())
                    .map_err(WireError::from);
                // Boxed: one future holds every call's state, too big for the
                // stack of a test thread (2 MiB) in a debug build.
                Box::pin(handle::handle(engine, &caller, call)).await
            }
            Inner::Broker(socket) => client::call(socket, self.persona.as_deref(), call).await,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.inner {
            Inner::Local(e) => e.now(),
            Inner::Broker(_) => Utc::now(),
        }
    }
    pub fn view(&self, request: Request) -> RequestView {
        let remaining_seconds = request.remaining(self.now()).map(|d| d.num_seconds());
        RequestView {
            request,
            remaining_seconds,
        }
    }

    pub async fn hello(&self) -> R<Hello> {
        match self.call(Call::Hello {}).await? {
            Reply::Hello(h) => Ok(h),
            r => unexpected("hello", r),
        }
    }
    /// Who calls act as.
    pub async fn whoami(&self) -> R<String> {
        if let Inner::Local(engine) = &self.inner {
            return engine
                .whoami(self.persona.as_deref())
                .map_err(WireError::from);
        }
        self.hello()
            .await?
            .who
            .map_err(|m| WireError::new(protocol::ErrorKind::Identity, crate::exit::USAGE, m))
    }
    /// Open incidents, what each failing source said, and source warnings.
    #[allow(clippy::type_complexity)]
    pub async fn incidents(
        &self,
    ) -> R<(
        Vec<crate::incident::Incident>,
        Vec<crate::incident::SourceError>,
        Vec<String>,
    )> {
        match self.call(Call::Incidents {}).await? {
            Reply::Incidents {
                incidents,
                errors,
                warnings,
            } => Ok((incidents, errors, warnings)),
            r => unexpected("incidents", r),
        }
    }
    pub async fn roles(&self) -> R<Vec<RoleView>> {
        match self.call(Call::Roles {}).await? {
            Reply::Roles { roles } => Ok(roles),
            r => unexpected("roles", r),
        }
    }
    pub async fn requests(&self, query: &Query) -> R<Vec<Request>> {
        let call = Call::Requests {
            query: query.clone(),
        };
        match self.call(call).await? {
            Reply::Requests { requests } => Ok(requests),
            r => unexpected("requests", r),
        }
    }
    pub async fn load(&self, id: RequestId) -> R<Request> {
        self.request_reply("get", Call::Get { id }).await
    }
    pub async fn approvals(&self) -> R<Vec<QueueItem>> {
        match self.call(Call::Approvals {}).await? {
            Reply::Queue { items } => Ok(items),
            r => unexpected("approvals", r),
        }
    }
    pub async fn reviews(&self) -> R<Vec<QueueItem>> {
        match self.call(Call::Reviews {}).await? {
            Reply::Queue { items } => Ok(items),
            r => unexpected("reviews", r),
        }
    }
    pub async fn audit_head(&self) -> R<(i64, String)> {
        match self.call(Call::AuditHead {}).await? {
            Reply::Head { seq, hash } => Ok((seq, hash)),
            r => unexpected("audit_head", r),
        }
    }
    pub async fn audit_tail(&self, n: usize) -> R<Vec<AuditRecord>> {
        match self.call(Call::AuditTail { n }).await? {
            Reply::Audit { records } => Ok(records),
            r => unexpected("audit_tail", r),
        }
    }
    pub async fn audit_events(&self, from: i64, limit: usize) -> R<Vec<AuditRecord>> {
        match self.call(Call::AuditEvents { from, limit }).await? {
            Reply::Audit { records } => Ok(records),
            r => unexpected("audit_events", r),
        }
    }
    pub async fn undelivered_alerts(&self) -> R<u64> {
        match self.call(Call::UndeliveredAlerts {}).await? {
            Reply::Count { n } => Ok(n),
            r => unexpected("undelivered_alerts", r),
        }
    }
    /// Waits until the audit log moves past `after` or `timeout` passes. A
    /// broker that cannot be reached is waited for the same time, so callers
    /// looping on this do not spin.
    pub async fn wait_for_change(&self, after: i64, timeout: std::time::Duration) -> bool {
        let call = Call::WaitForChange {
            after,
            timeout_ms: timeout.as_millis() as u64,
        };
        match self.call(call).await {
            Ok(Reply::Changed { changed }) => changed,
            _ => {
                if self.socket().is_some() {
                    tokio::time::sleep(timeout).await;
                }
                false
            }
        }
    }
    pub async fn recover(&self) -> R<RecoveryReport> {
        match self.call(Call::Recover {}).await? {
            Reply::Recovery { report } => Ok(report),
            r => unexpected("recover", r),
        }
    }
    pub async fn deliver_alerts(&self) -> R<()> {
        match self.call(Call::DeliverAlerts {}).await? {
            Reply::Done => Ok(()),
            r => unexpected("deliver_alerts", r),
        }
    }

    async fn request_reply(&self, name: &str, call: Call) -> R<Request> {
        match self.call(call).await? {
            Reply::Request { request } => Ok(request),
            r => unexpected(name, r),
        }
    }
    pub async fn request(
        &self,
        input: RequestInput,
        vendor: Option<crate::domain::vendor::VendorInfo>,
    ) -> R<Request> {
        self.request_reply("request", Call::Request { input, vendor })
            .await
    }
    /// Grants access; the credential is shown once and never kept.
    pub async fn activate(&self, id: RequestId) -> R<(Request, Credential)> {
        match self.call(Call::Activate { id }).await? {
            Reply::Activated {
                request,
                credential,
            } => Ok((request, credential_of(credential))),
            r => unexpected("activate", r),
        }
    }
    pub async fn decide(&self, id: RequestId, decision: Decision) -> R<Request> {
        self.request_reply("decide", Call::Decide { id, decision })
            .await
    }
    pub async fn cancel(&self, id: RequestId) -> R<Request> {
        self.request_reply("cancel", Call::Cancel { id }).await
    }
    /// A drill of `role` (`Engine::drill`): the drill request as it stands.
    pub async fn drill(&self, role: &str) -> R<Request> {
        let role = role.to_string();
        self.request_reply("drill", Call::Drill { role }).await
    }
    pub async fn revoke(&self, id: RequestId, reason: &str) -> R<Request> {
        let reason = reason.to_string();
        self.request_reply("revoke", Call::Revoke { id, reason })
            .await
    }
    /// Extends access; a backend whose credential carries its expiry (ssh-ca)
    /// returns a new one, shown once like a grant's (the old one is revoked).
    pub async fn extend(
        &self,
        id: RequestId,
        seconds: i64,
        reason: &str,
    ) -> R<(Request, Option<Credential>)> {
        let reason = reason.to_string();
        let call = Call::Extend {
            id,
            seconds,
            reason,
        };
        match self.call(call).await? {
            Reply::Request { request } => Ok((request, None)),
            Reply::Extended {
                request,
                credential,
            } => Ok((request, Some(credential_of(credential)))),
            r => unexpected("extend", r),
        }
    }
    pub async fn review(&self, id: RequestId, answers: ReviewAnswers) -> R<Request> {
        self.request_reply("review", Call::Review { id, answers })
            .await
    }
    pub async fn recertify_role(
        &self,
        role: &str,
        comment: &str,
        signature: Option<SshSignature>,
    ) -> R<RoleCertification> {
        let call = Call::RecertifyRole {
            role: role.to_string(),
            comment: comment.to_string(),
            signature,
        };
        match self.call(call).await? {
            Reply::Certified { certification } => Ok(certification),
            r => unexpected("recertify_role", r),
        }
    }
    /// The statement the caller signs to make `kind` on `id`, dated `at`.
    pub async fn statement(
        &self,
        id: RequestId,
        kind: DecisionKind,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> R<String> {
        let call = Call::Statement {
            id,
            kind,
            reason: reason.map(str::to_string),
            at,
        };
        match self.call(call).await? {
            Reply::Statement { text } => Ok(text),
            r => unexpected("statement", r),
        }
    }
    pub async fn role_statement(&self, role: &str, at: DateTime<Utc>) -> R<String> {
        let call = Call::RoleStatement {
            role: role.to_string(),
            at,
        };
        match self.call(call).await? {
            Reply::Statement { text } => Ok(text),
            r => unexpected("role_statement", r),
        }
    }
    pub async fn verify_audit(&self) -> R<(u64, Option<Broken>)> {
        match self.call(Call::VerifyAudit {}).await? {
            Reply::Verified { count, broken } => Ok((count, broken)),
            r => unexpected("verify_audit", r),
        }
    }
    /// Whether the log still extends `cp` (Err: why not).
    pub async fn check_checkpoint(
        &self,
        cp: &crate::audit::checkpoint::Checkpoint,
    ) -> R<Result<(), String>> {
        let call = Call::CheckCheckpoint {
            checkpoint: cp.clone(),
        };
        match self.call(call).await? {
            Reply::Checked { verdict } => Ok(verdict),
            r => unexpected("check_checkpoint", r),
        }
    }
    /// The evidence bundle of `id` written into `dir`: by the engine in process,
    /// or received from the broker. `Ok(Err(broken))`: the chain did not verify
    /// and nothing was written.
    pub async fn write_evidence(
        &self,
        id: RequestId,
        dir: &std::path::Path,
    ) -> R<Result<crate::audit::evidence::Built, Broken>> {
        if let Inner::Local(engine) = &self.inner {
            return Ok(engine.write_evidence(id, dir).await?);
        }
        match self.call(Call::Evidence { id }).await? {
            Reply::Evidence {
                built: Some(mut built),
                files,
                ..
            } => {
                let to = dir.to_path_buf();
                tokio::task::spawn_blocking(move || {
                    crate::audit::evidence::transfer::write_files(&to, &files)
                })
                .await
                .map_err(|e| WireError::protocol(e.to_string()))?
                .map_err(|e| {
                    WireError::with_causes(protocol::ErrorKind::Config, crate::exit::FAILURE, &e)
                })?;
                built.dir = dir.to_path_buf();
                Ok(Ok(built))
            }
            Reply::Evidence {
                broken: Some(b), ..
            } => Ok(Err(b)),
            r => unexpected("evidence", r),
        }
    }
    /// Activates a vendor request for its recorded session.
    pub async fn open_shell(&self, id: RequestId) -> R<crate::engine::ShellSession> {
        match self.call(Call::OpenShell { id }).await? {
            Reply::Shell {
                request,
                credential,
                shell_command,
                record_input,
                recording,
            } => Ok(crate::engine::ShellSession {
                request,
                credential: credential_of(credential),
                shell_command,
                record_input,
                recording,
            }),
            r => unexpected("open_shell", r),
        }
    }
    /// Sends the next piece of the session's recording (split as needed).
    pub async fn append_recording(&self, id: RequestId, bytes: &[u8]) -> R<()> {
        use base64::Engine as _;
        for piece in bytes.chunks(protocol::MAX_RECORDING_PIECE) {
            let base64 = base64::engine::general_purpose::STANDARD.encode(piece);
            match self.call(Call::AppendRecording { id, base64 }).await? {
                Reply::Done => {}
                r => return unexpected("append_recording", r),
            }
        }
        Ok(())
    }
    pub async fn close_recording(&self, id: RequestId) -> R<crate::engine::Recording> {
        match self.call(Call::CloseRecording { id }).await? {
            Reply::Recorded { recording } => Ok(recording),
            r => unexpected("close_recording", r),
        }
    }
    /// The recording of `id` and its bytes; None when it no longer matches its
    /// audited hash (or is missing).
    pub async fn read_recording(
        &self,
        id: RequestId,
    ) -> R<(crate::engine::Recording, Option<Vec<u8>>)> {
        use base64::Engine as _;
        match self.call(Call::ReadRecording { id }).await? {
            Reply::RecordingData { recording, base64 } => {
                let bytes = base64
                    .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
                    .transpose()
                    .map_err(|e| WireError::protocol(format!("a recording: {e}")))?;
                Ok((recording, bytes))
            }
            r => unexpected("read_recording", r),
        }
    }
    /// Why the session of `id` must end now (None: it may go on).
    pub async fn session_end_reason(&self, id: RequestId) -> R<Option<String>> {
        match self.call(Call::SessionEndReason { id }).await? {
            Reply::EndReason { reason } => Ok(reason),
            r => unexpected("session_end_reason", r),
        }
    }
    pub async fn replayed(&self, id: RequestId, speed: f64) -> R<()> {
        match self.call(Call::Replayed { id, speed }).await? {
            Reply::Done => Ok(()),
            r => unexpected("replayed", r),
        }
    }
    pub async fn checkpoint(&self) -> R<crate::audit::checkpoint::Checkpoint> {
        match self.call(Call::Checkpoint {}).await? {
            Reply::Checkpoint { checkpoint } => Ok(checkpoint),
            r => unexpected("checkpoint", r),
        }
    }
}

fn credential_of(values: Vec<(String, String)>) -> Credential {
    Credential(
        values
            .into_iter()
            .map(|(k, v)| (k, secrecy::SecretString::from(v)))
            .collect(),
    )
}
