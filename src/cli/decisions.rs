//! Signed decisions (`approval_signing = "ssh"`): the signature an approval,
//! denial or certification carries.

use super::*;
use crate::cli::stdio::{errln, outln};

/// The signature a decision carries when the policy sets `approval_signing =
/// "ssh"`: made here by ssh-keygen with the approver's key, or one made elsewhere
/// (`--statement` + `--signature`). A denial signs its `reason` too. `Ok(None)` after `--print-statement` printed
/// the statement; `Ok(Some(None))` when there is nothing to sign with (signing
/// off, or no key: the engine then refuses, audited, and says how to sign).
pub(super) async fn sign_decision(
    svc: &Service,
    id: RequestId,
    kind: DecisionKind,
    reason: Option<&str>,
    a: &SignArgs,
    json: bool,
) -> Result<Option<Option<SshSignature>>, Failure> {
    // The statement names the request's role and incident: the engine writes it.
    sign_statement(
        svc,
        &format!("{kind} of {id}"),
        |at| svc.statement(id, kind, reason, at),
        a,
        json,
    )
    .await
}

/// `sign_decision` for a decision about a role (`roles recertify`).
pub(super) async fn sign_role_decision(
    svc: &Service,
    role: &str,
    a: &SignArgs,
    json: bool,
) -> Result<Option<Option<SshSignature>>, Failure> {
    sign_statement(
        svc,
        &format!("recertification of role {role}"),
        |at| svc.role_statement(role, at),
        a,
        json,
    )
    .await
}

async fn sign_statement<F>(
    svc: &Service,
    what: &str,
    statement_at: impl Fn(chrono::DateTime<chrono::Utc>) -> F,
    a: &SignArgs,
    json: bool,
) -> Result<Option<Option<SshSignature>>, Failure>
where
    F: std::future::Future<Output = Result<String, crate::service::Error>>,
{
    use chrono::SubsecRound;
    if a.print_statement {
        let text = statement_at(svc.now().trunc_subsecs(0)).await?;
        if json {
            output::print_json(&serde_json::json!({ "statement": text }));
        } else {
            outln!("{}", text.trim_end_matches('\n'));
        }
        return Ok(None);
    }
    if !svc.hello().await?.signing_required {
        return Ok(Some(None));
    }
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map_err(|e| Failure::new(exit::USAGE, format!("cannot read {}: {e}", p.display())))
    };
    if let (Some(st), Some(sig)) = (&a.statement, &a.signature) {
        let signed_at = ssh_sign::statement_at(&read(st)?).ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                format!("{}: not a statement from --print-statement", st.display()),
            )
        })?;
        return Ok(Some(Some(SshSignature {
            signed_at,
            armored: read(sig)?,
        })));
    }
    let Some(key) = a
        .ssh_key
        .as_deref()
        .map(ssh_sign::expand_home)
        .or_else(ssh_sign::default_key)
    else {
        return Ok(Some(None));
    };
    let at = svc.now().trunc_subsecs(0);
    let statement = statement_at(at).await?;
    if !json && std::io::stderr().is_terminal() {
        errln!("signing the {what} with {} (ssh-keygen)", key.display());
    }
    let armored =
        ssh_sign::sign(&key, &statement).map_err(|e| Failure::from_error(exit::USAGE, &e))?;
    Ok(Some(Some(SshSignature {
        signed_at: at,
        armored,
    })))
}

/// `approve`, `deny` and `certify [--reject]`: signed when the policy asks, then
/// decided, and the request's new state printed.
pub(super) async fn decide(
    svc: &Service,
    id: RequestId,
    decision: Decision,
    sign: &SignArgs,
    json: bool,
) -> CliResult {
    svc.whoami().await?;
    // A denial signs its reason too.
    let reason = match &decision {
        Decision::Deny { reason, .. } => Some(reason.clone()),
        _ => None,
    };
    let Some(sig) = sign_decision(svc, id, decision.kind(), reason.as_deref(), sign, json).await?
    else {
        return Ok(exit::OK);
    };
    let req = svc.decide(id, decision.signed(sig)).await?;
    output::request_result(svc, &req, json);
    Ok(exit::OK)
}
