//! `--key-dir DIR` of `activate` and `extend`: an SSH credential's private key
//! and certificate written as the files `ssh` reads, instead of printed. Each
//! file is new (never over an existing one or through a symlink) and 0600; the
//! `ssh` line names them. Their paths (never their contents) go into a ledger
//! of this account's (`$XDG_STATE_HOME/breakglass/key-files.json`), and the
//! first breakglass command this person runs once the access has ended
//! (`revoke` itself included) deletes them. Until then, or should nobody run
//! one, the servers refuse the certificate after its expiry all the same.

use super::Failure;
use crate::backend::ssh_ca::{SSH_LINE_FILES, SSH_LINE_NOTE};
use crate::backend::Credential;
use crate::cli::stdio::errln;
use crate::domain::RequestId;
use crate::exit;
use secrecy::SecretString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Key files written for a request: paths only.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
struct Written {
    /// Which store the request is in (`store_of`): the same number in another
    /// store is another request.
    store: String,
    request: i64,
    files: Vec<PathBuf>,
}

/// The store `svc` reaches, as the ledger names it: the broker's socket, or
/// the store this process opened.
pub fn store_of(svc: &crate::service::Service) -> String {
    match (svc.engine(), svc.socket()) {
        (Some(e), _) => e.store_description(),
        (None, Some(socket)) => format!("broker {}", socket.display()),
        (None, None) => String::new(),
    }
}

/// This account's ledger of key files, or None without a home.
fn ledger_path() -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "breakglass")?;
    let dir = dirs.state_dir().unwrap_or(dirs.data_local_dir());
    Some(dir.join("key-files.json"))
}

fn read_ledger(path: &Path) -> Vec<Written> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_ledger(path: &Path, entries: &[Written]) -> std::io::Result<()> {
    if entries.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let body = serde_json::to_vec_pretty(entries).expect("paths serialise");
    // A new file beside it, renamed over: a crash leaves the old ledger whole.
    let tmp = path.with_extension("json.new");
    let _ = std::fs::remove_file(&tmp);
    create(&tmp, &String::from_utf8_lossy(&body))?;
    std::fs::rename(&tmp, path)
}

/// Remembers the files written for `id`, to delete once its access ends.
fn remember(store: &str, id: RequestId, files: &[&Path]) -> std::io::Result<()> {
    let Some(path) = ledger_path() else {
        return Ok(());
    };
    let mut entries = read_ledger(&path);
    entries.push(Written {
        store: store.to_string(),
        request: id.0,
        files: files.iter().map(|p| p.to_path_buf()).collect(),
    });
    write_ledger(&path, &entries)
}

/// Deletes `path` if it is still a plain file of this account's (not a link
/// or something put there since).
fn delete_own(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.uid() == nix::unistd::geteuid().as_raw() => {
            std::fs::remove_file(path).is_ok()
        }
        _ => false,
    }
}

/// Deletes the key files of requests whose access has ended, and says so on
/// stderr. A request the service cannot answer for (the broker down) keeps
/// its files for a later command.
pub async fn clean_ended(svc: &crate::service::Service) {
    use crate::domain::State;
    let Some(path) = ledger_path() else {
        return;
    };
    let entries = read_ledger(&path);
    if entries.is_empty() {
        return;
    }
    let here = store_of(svc);
    let mut kept = vec![];
    for e in entries {
        if e.store != here {
            kept.push(e);
            continue;
        }
        let live = match svc.load(RequestId(e.request)).await {
            Ok(r) => matches!(r.state, State::Granting | State::Active | State::Revoking),
            Err(e) if e.kind == crate::service::protocol::ErrorKind::NotFound => false,
            Err(_) => true,
        };
        if live {
            kept.push(e);
            continue;
        }
        let gone: Vec<String> = e
            .files
            .iter()
            .filter(|f| delete_own(f))
            .map(|f| crate::sanitize::line(&f.to_string_lossy(), 300))
            .collect();
        if !gone.is_empty() {
            errln!(
                "breakglass: REQ-{}'s access has ended: deleted its key files {}",
                e.request,
                gone.join(", ")
            );
        }
    }
    if let Err(e) = write_ledger(&path, &kept) {
        errln!("breakglass: cannot update {}: {e}", path.display());
    }
}

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
    store: &str,
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
        // A name taken by anything, a dangling link included, is skipped.
        let taken = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        if taken(&key_path) || taken(&cert_path) {
            continue;
        }
        create(&key_path, key)?;
        if let Err(e) = create(&cert_path, cert) {
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
        if let Err(e) = remember(store, id, &[&key_path, &cert_path]) {
            // Written and usable: said, and left to expire at the servers.
            errln!("breakglass: the key files will not be deleted when access ends: {e}");
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
    store: &str,
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
    let (key_path, cert_path) = match write_pair(store, dir, id, &key, &cert) {
        Ok(p) => p,
        Err(e) => {
            return Err((
                cred,
                format!(
                    "cannot write the key files in {}: {e}",
                    crate::sanitize::line(&dir.to_string_lossy(), 200)
                ),
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
