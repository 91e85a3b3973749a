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
    engine: &Engine,
    who: &str,
    id: RequestId,
    kind: DecisionKind,
    reason: Option<&str>,
    a: &SignArgs,
    json: bool,
) -> Result<Option<Option<SshSignature>>, Failure> {
    // The statement names the request's role and incident.
    let req = engine.load(id).await.map_err(Failure::from);
    sign_statement(
        engine,
        &format!("{kind} of {id}"),
        |at| match &req {
            Ok(req) => Ok(engine.decision_statement(req, who, kind, reason, at)),
            Err(e) => Err(Failure::new(e.code, e.message.clone())),
        },
        a,
        json,
    )
}

/// `sign_decision` for a decision about a role (`roles recertify`).
pub(super) fn sign_role_decision(
    engine: &Engine,
    who: &str,
    role: &str,
    a: &SignArgs,
    json: bool,
) -> Result<Option<Option<SshSignature>>, Failure> {
    sign_statement(
        engine,
        &format!("recertification of role {role}"),
        |at| Ok(engine.role_decision_statement(who, role, at)?),
        a,
        json,
    )
}

fn sign_statement(
    engine: &Engine,
    what: &str,
    statement_at: impl Fn(chrono::DateTime<chrono::Utc>) -> Result<String, Failure>,
    a: &SignArgs,
    json: bool,
) -> Result<Option<Option<SshSignature>>, Failure> {
    use chrono::SubsecRound;
    if a.print_statement {
        let text = statement_at(engine.now().trunc_subsecs(0))?;
        if json {
            output::print_json(&serde_json::json!({ "statement": text }));
        } else {
            outln!("{}", text.trim_end_matches('\n'));
        }
        return Ok(None);
    }
    if !engine.signing_required() {
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
    let at = engine.now().trunc_subsecs(0);
    let statement = statement_at(at)?;
    if !json && std::io::stderr().is_terminal() {
        errln!("signing the {what} with {} (ssh-keygen)", key.display());
    }
    let armored = ssh_sign::sign(&key, &statement).map_err(|e| Failure::new(exit::USAGE, e))?;
    Ok(Some(Some(SshSignature {
        signed_at: at,
        armored,
    })))
}
