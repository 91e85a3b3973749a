//! The policy: roles and groups inline in the config, or in the policy file it
//! names, and approval signing from whichever of the two sets it.

use super::*;
use crate::domain::policy::{ApprovalSigning, Policy};

/// Roles and groups from the config or its policy file; signing set in the
/// policy file replaces `approval_signing` (set in one place only).
pub(super) fn policy(
    ctx: &mut Ctx,
    raw: &RawConfig,
    demo_personas: Option<Vec<String>>,
    approval_signing: Option<ApprovalSigning>,
    backends: &BTreeMap<String, BackendConfig>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Policy {
    let mut policy = Policy {
        roles: BTreeMap::new(),
        demo_personas,
        approval_signing,
    };
    let Some(pfile) = &raw.policy else {
        policy.roles = build_roles(
            ctx,
            &raw.groups,
            &raw.roles,
            backends,
            &raw.backends,
            &policy.demo_personas,
        );
        return policy;
    };
    if raw.roles.is_some() || raw.groups.is_some() {
        ctx.at(pfile, "roles and groups are in the policy file named here; remove [[roles]] and [groups] from this file");
    }
    let ppath = resolve(pfile.get_ref());
    let ptext = match std::fs::read_to_string(&ppath) {
        Ok(t) => t,
        Err(e) => {
            ctx.at(
                pfile,
                format!("cannot read policy file {}: {e}", ppath.display()),
            );
            return policy;
        }
    };
    let p = match toml::from_str::<RawPolicyFile>(&ptext) {
        Ok(p) => p,
        Err(e) => {
            ctx.problems.push(toml_problem(&ppath, &ptext, &e));
            return policy;
        }
    };
    // Reported against the config, after the policy file's own signing problems.
    let twice = raw
        .approval_signing
        .as_ref()
        .or(raw.allowed_signers.as_ref())
        .map(|k| Problem {
            file: ctx.file.clone(),
            line: Some(ctx.line_of(k.span().start)),
            message: format!(
                "approval signing is also set in the policy file {}; keep it in one place",
                ppath.display()
            ),
        });
    let mut pctx = Ctx {
        file: ppath.clone(),
        text: &ptext,
        problems: &mut *ctx.problems,
    };
    if p.approval_signing.is_some() || p.allowed_signers.is_some() {
        policy.approval_signing = file_signing(&mut pctx, &p, &ppath);
        pctx.problems.extend(twice);
    }
    policy.roles = build_roles(
        &mut pctx,
        &p.groups,
        &p.roles,
        backends,
        &raw.backends,
        &policy.demo_personas,
    );
    policy
}

/// Signing set in the policy file, its paths relative to that file.
fn file_signing(ctx: &mut Ctx, p: &RawPolicyFile, ppath: &Path) -> Option<ApprovalSigning> {
    let pdir = ppath.parent().unwrap_or(Path::new(".")).to_path_buf();
    let presolve = |f: &str| pdir.join(f);
    signing::approval_signing(ctx, &p.approval_signing, &p.allowed_signers, &presolve)
}
