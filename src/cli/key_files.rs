//! `--key-dir DIR` of `activate` and `extend`: an SSH credential's private key
//! and certificate written as the files `ssh` reads, instead of printed. Each
//! file is new (never over an existing one or through a symlink) and 0600; the
//! `ssh` line names them. breakglass does not delete them: the certificate is
//! refused by the servers after its expiry, and the requester removes them.

use super::Failure;
use crate::backend::ssh_ca::{SSH_LINE_FILES, SSH_LINE_NOTE};
use crate::backend::Credential;
use crate::domain::RequestId;
use crate::exit;
use secrecy::SecretString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Checked before anything is granted: the directory must exist.
pub fn check_dir(dir: &Path) -> Result<(), Failure> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Failure::new(
            exit::USAGE,
            format!(
                "--key-dir {} is not a directory; nothing was granted",
                crate::sanitize::line(&dir.to_string_lossy(), 200)
            ),
        )
        .with_hint("create it first (mkdir -m 700 DIR)"))
    }
}

/// A new file at `path`, mode 0600, holding `text`.
fn create(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::files::PRIVATE)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// `DIR/breakglass-REQ-7` (then `.2`, `.3`... for an extension's), and the
/// certificate beside it as `-cert.pub`, where `ssh -i` also looks for it.
fn write_pair(
    dir: &Path,
    id: RequestId,
    key: &str,
    cert: &str,
) -> std::io::Result<(PathBuf, PathBuf)> {
    for n in 1..=100 {
        let name = match n {
            1 => format!("breakglass-{id}"),
            n => format!("breakglass-{id}.{n}"),
        };
        let key_path = dir.join(&name);
        let cert_path = dir.join(format!("{name}-cert.pub"));
        if key_path.exists() || cert_path.exists() {
            continue;
        }
        create(&key_path, key)?;
        if let Err(e) = create(&cert_path, cert) {
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
        return Ok((key_path, cert_path));
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "100 key files of this request are already there",
    ))
}

/// The credential with its key and certificate written to `dir`: the key
/// fields become the files' paths and the `ssh` line names them. `Err` (with
/// the credential back, untouched, to be printed) when it holds no SSH key or
/// the files cannot be written.
pub fn write(
    dir: &Path,
    id: RequestId,
    cred: Credential,
) -> Result<Credential, (Credential, String)> {
    let get = |k: &str| {
        cred.reveal()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    let (Some(key), Some(cert)) = (get("private_key"), get("certificate")) else {
        return Err((cred, "this credential holds no SSH key".into()));
    };
    let (key_path, cert_path) = match write_pair(dir, id, &key, &cert) {
        Ok(p) => p,
        Err(e) => {
            return Err((
                cred,
                format!("cannot write the key files in {}: {e}", dir.display()),
            ))
        }
    };
    let q = |p: &Path| crate::files::shell_quote(&p.to_string_lossy());
    let files = format!("-i {} -o CertificateFile={}", q(&key_path), q(&cert_path));
    let mut out = vec![
        (
            "private_key_file".to_string(),
            SecretString::from(key_path.display().to_string()),
        ),
        (
            "certificate_file".to_string(),
            SecretString::from(cert_path.display().to_string()),
        ),
    ];
    for (k, v) in cred.reveal() {
        match k {
            "private_key" | "certificate" => {}
            "ssh" => out.push((
                k.to_string(),
                SecretString::from(v.replacen(SSH_LINE_FILES, &files, 1).replacen(
                    SSH_LINE_NOTE,
                    "",
                    1,
                )),
            )),
            _ => out.push((k.to_string(), SecretString::from(v.to_string()))),
        }
    }
    Ok(Credential(out))
}
