//! One call run through the engine for one caller. The in-process front ends
//! and the broker both come here, so a call means the same thing either way.

use super::protocol::{Call, Hello, Reply, WireError, VERSION};
use crate::engine::Engine;

/// Who a call acts for: the kernel's account (broker), the OS account or a demo
/// persona (in process), or why that could not be told. Calls that need no
/// identity (listing incidents, verifying the log) work without one.
pub type Caller = Result<String, WireError>;

pub async fn handle(engine: &Engine, caller: &Caller, call: Call) -> Result<Reply, WireError> {
    let who = || caller.clone();
    Ok(match call {
        Call::Hello {} => Reply::Hello(Hello {
            v: VERSION.to_string(),
            who: caller.clone().map_err(|e| e.message),
            store: engine.store_description(),
            personas: engine.policy().demo_personas.clone(),
            signing_required: engine.signing_required(),
            checkpoint_public_key: engine.checkpoint_signer().map(|s| s.public_hex()),
        }),
        Call::Incidents {} => {
            let (incidents, errors) = engine.incidents().await;
            Reply::Incidents {
                incidents,
                errors,
                warnings: engine.incident_warnings(),
            }
        }
        Call::Roles {} => Reply::Roles {
            roles: engine.roles(caller.as_deref().ok()).await?,
        },
        Call::Requests { query } => Reply::Requests {
            requests: engine.requests(&query).await?,
        },
        Call::Get { id } => Reply::Request {
            request: engine.load(id).await?,
        },
        Call::Approvals {} => Reply::Queue {
            items: engine.approvals_for(&who()?).await?,
        },
        Call::Reviews {} => Reply::Queue {
            items: engine.reviews_for(&who()?).await?,
        },
        Call::AuditHead {} => {
            let (seq, hash) = engine.audit_head().await?;
            Reply::Head { seq, hash }
        }
        Call::AuditTail { n } => Reply::Audit {
            records: engine.audit_tail(n.min(10_000)).await?,
        },
        Call::AuditEvents { from, limit } => Reply::Audit {
            records: engine.audit_events(from, limit.min(10_000)).await?,
        },
        Call::UndeliveredAlerts {} => Reply::Count {
            n: engine.undelivered_alerts().await?,
        },
        Call::WaitForChange { after, timeout_ms } => {
            let wait =
                std::time::Duration::from_millis(timeout_ms.min(super::protocol::MAX_WAIT_MS));
            Reply::Changed {
                changed: engine.wait_for_change(after, wait).await,
            }
        }
        Call::Recover {} => Reply::Recovery {
            report: engine.recover().await?,
        },
        Call::DeliverAlerts {} => {
            engine
                .deliver_alerts()
                .await
                .map_err(|e| WireError::from(crate::engine::Error::from(e)))?;
            Reply::Done
        }
        Call::Request { input, vendor } => Reply::Request {
            request: engine.request_vendor(&who()?, input, vendor).await?,
        },
        Call::Activate { id } => {
            let (request, cred) = engine.activate(&who()?, id).await?;
            Reply::Activated {
                request,
                credential: reveal(&cred),
            }
        }
        Call::Decide { id, decision } => Reply::Request {
            request: engine.decide(&who()?, id, decision).await?,
        },
        Call::Cancel { id } => Reply::Request {
            request: engine.cancel(&who()?, id).await?,
        },
        Call::Drill { role } => Reply::Request {
            request: engine.drill(&who()?, &role).await?,
        },
        Call::Revoke { id, reason } => Reply::Request {
            request: engine.revoke(&who()?, id, &reason).await?,
        },
        Call::Extend {
            id,
            seconds,
            reason,
        } => match engine.extend_access(&who()?, id, seconds, &reason).await? {
            (request, None) => Reply::Request { request },
            (request, Some(cred)) => Reply::Extended {
                request,
                credential: reveal(&cred),
            },
        },
        Call::Review { id, answers } => Reply::Request {
            request: engine.review(&who()?, id, answers).await?,
        },
        Call::RecertifyRole {
            role,
            comment,
            signature,
        } => Reply::Certified {
            certification: engine
                .recertify_role_signed(&who()?, &role, &comment, signature)
                .await?,
        },
        Call::Statement {
            id,
            kind,
            reason,
            at,
        } => {
            let req = engine.load(id).await?;
            Reply::Statement {
                text: engine.decision_statement(&req, &who()?, kind, reason.as_deref(), at),
            }
        }
        Call::RoleStatement { role, at } => Reply::Statement {
            text: engine.role_decision_statement(&who()?, &role, at)?,
        },
        Call::VerifyAudit {} => {
            let (count, broken) = engine.verify_audit().await?;
            Reply::Verified { count, broken }
        }
        Call::CheckCheckpoint { checkpoint } => Reply::Checked {
            verdict: engine.check_checkpoint(&checkpoint).await?,
        },
        Call::Evidence { id } => evidence(engine, id).await?,
        Call::OpenShell { id } => {
            let s = engine.open_shell(&who()?, id).await?;
            Reply::Shell {
                request: s.request,
                credential: reveal(&s.credential),
                shell_command: s.shell_command,
                record_input: s.record_input,
                recording: s.recording,
            }
        }
        Call::AppendRecording { id, base64 } => {
            use base64::Engine as _;
            if base64.len() > super::protocol::MAX_RECORDING_PIECE * 4 / 3 + 4 {
                return Err(WireError::protocol("a recording piece over the limit"));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map_err(|e| WireError::protocol(format!("a recording piece: {e}")))?;
            engine.append_recording(&who()?, id, bytes).await?;
            Reply::Done
        }
        Call::CloseRecording { id } => Reply::Recorded {
            recording: engine.close_recording(&who()?, id).await?,
        },
        Call::ReadRecording { id } => {
            use base64::Engine as _;
            let (recording, bytes) = engine.read_recording(&who()?, id).await?;
            Reply::RecordingData {
                recording,
                base64: bytes.map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            }
        }
        Call::SessionEndReason { id } => Reply::EndReason {
            reason: engine.session_end_reason(id).await?,
        },
        Call::Replayed { id, speed } => {
            engine.note_replayed(&who()?, id, speed).await?;
            Reply::Done
        }
        Call::Checkpoint {} => {
            let signer = engine.checkpoint_signer().ok_or_else(|| {
                WireError::new(
                    super::protocol::ErrorKind::Config,
                    crate::exit::USAGE,
                    "no checkpoint key: set [audit] checkpoint_key_file (create one with `breakglass audit keygen --out FILE`)",
                )
            })?;
            let (size, head) = engine.audit_head().await?;
            Reply::Checkpoint {
                checkpoint: signer.sign(size, &head, &crate::domain::time::ts(engine.now())),
            }
        }
    })
}

/// Builds the bundle in a private temporary directory and sends its files.
async fn evidence(engine: &Engine, id: crate::domain::RequestId) -> Result<Reply, WireError> {
    use crate::audit::evidence::transfer;
    let failed =
        |m: String| WireError::new(super::protocol::ErrorKind::Config, crate::exit::FAILURE, m);
    let tmp = tempfile::tempdir().map_err(|e| failed(format!("a temporary directory: {e}")))?;
    let dir = tmp.path().join("bundle");
    Ok(match engine.write_evidence(id, &dir).await? {
        Err(broken) => Reply::Evidence {
            built: None,
            broken: Some(broken),
            files: vec![],
        },
        Ok(built) => {
            let files = tokio::task::spawn_blocking(move || transfer::read_files(&dir))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(|e| {
                    WireError::with_causes(
                        super::protocol::ErrorKind::Config,
                        crate::exit::FAILURE,
                        &e,
                    )
                })?;
            Reply::Evidence {
                built: Some(built),
                broken: None,
                files,
            }
        }
    })
}

/// A credential's values for the one reply that carries them to the requester.
fn reveal(cred: &crate::backend::Credential) -> Vec<(String, String)> {
    cred.reveal()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
