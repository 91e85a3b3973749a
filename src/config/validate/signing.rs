//! `approval_signing = "ssh"` and `allowed_signers = "FILE"`: top-level keys of
//! the config, or of the policy file it names. The allowed_signers file is
//! checked line by line, since a broken one would refuse every approval.

use super::super::*;
use super::Ctx;
use crate::domain::policy::ApprovalSigning;
use toml::Spanned;

const KEY_TYPES: [&str; 6] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-",
    "ssh-dss",
];

/// The signing settings, or `None` (off, or after recording the problems).
pub(super) fn approval_signing(
    ctx: &mut Ctx,
    kind: &Option<Spanned<String>>,
    signers: &Option<Spanned<String>>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<ApprovalSigning> {
    match (kind, signers) {
        (None, None) => None,
        (None, Some(s)) => {
            ctx.at(
                s,
                "allowed_signers is only read with approval_signing = \"ssh\"; add that line, or remove this one",
            );
            None
        }
        (Some(k), _) if k.get_ref() != "ssh" => {
            ctx.at(
                k,
                format!(
                    "approval_signing = \"{}\" is not known; write approval_signing = \"ssh\" (or remove the line to leave decisions unsigned)",
                    k.get_ref()
                ),
            );
            None
        }
        (Some(k), None) => {
            ctx.at(
                k,
                "approval_signing = \"ssh\" needs allowed_signers = \"allowed_signers\": an OpenSSH allowed_signers file with one line per person who decides, e.g. `bob ssh-ed25519 AAAA...`",
            );
            None
        }
        (Some(_), Some(s)) => {
            let path = resolve(s.get_ref());
            match std::fs::read_to_string(&path) {
                Err(e) => ctx.at(
                    s,
                    format!("cannot read allowed_signers file {}: {e}", path.display()),
                ),
                Ok(text) => check_file(ctx, s, &path, &text),
            }
            Some(ApprovalSigning {
                allowed_signers: path,
            })
        }
    }
}

fn check_file(ctx: &mut Ctx, at: &Spanned<String>, path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o022 != 0 {
            ctx.at(
                at,
                format!(
                    "allowed_signers file {} is writable by other users, who could add their own key; run chmod go-w on it",
                    path.display()
                ),
            );
        }
    }
    let mut keys = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let key_at = fields
            .iter()
            .position(|f| KEY_TYPES.iter().any(|t| f.starts_with(t)));
        match key_at {
            Some(k) if k >= 1 && k + 1 < fields.len() => keys += 1,
            _ => ctx.problems.push(Problem {
                file: path.to_path_buf(),
                line: Some(i + 1),
                message: "not an allowed_signers line; write `<breakglass user name> <key type> <base64 key>`, e.g. `bob ssh-ed25519 AAAA...` (the contents of bob's .pub after his name)".into(),
            }),
        }
    }
    if keys == 0 {
        ctx.at(
            at,
            format!(
                "allowed_signers file {} lists no keys; add one line per person who approves or certifies",
                path.display()
            ),
        );
    }
}
