//! The files a config names that hold a secret (or, for the store, people's
//! words), which the process running the engine must hold alone: the broker
//! checks each is owned by its account and closed to everyone else.

use super::{BackendConfig, Config, PgUrlSource, StoreConfig};
use std::path::PathBuf;

/// One file (or directory) holding a secret, and which setting names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// The setting, e.g. `backend "prod-db" url_file`.
    pub what: String,
    pub path: PathBuf,
}

/// Every file the config names that holds a secret: PostgreSQL connection
/// strings (`url_file` of the store and of each backend), SSH CA keys
/// (`ca_key_file`), the checkpoint key,
/// and the SQLite store with its -wal and -shm files and its directory (where
/// SQLite creates those, drafts and recordings live, and whoever may write could
/// swap the store). Secrets from environment variables are not files.
pub fn secret_files(cfg: &Config) -> Vec<SecretFile> {
    let mut out = Vec::new();
    let mut add = |what: String, path: PathBuf| out.push(SecretFile { what, path });
    match &cfg.store {
        StoreConfig::Sqlite { path } => {
            add("[store] path (the SQLite store)".into(), path.clone());
            for suffix in ["-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                add(format!("the SQLite store's {suffix} file"), p.into());
            }
        }
        StoreConfig::Postgres(pg) => {
            if let PgUrlSource::File(f) = &pg.url {
                add("[store] url_file".into(), f.clone());
            }
        }
    }
    add(
        "the data directory (the store's directory: drafts, recordings)".into(),
        cfg.data_dir(),
    );
    for (name, b) in &cfg.backends {
        match b {
            BackendConfig::Postgres(pg) => {
                if let PgUrlSource::File(f) = &pg.url {
                    add(format!("backend \"{name}\" url_file"), f.clone());
                }
            }
            BackendConfig::SshCa(ca) => {
                add(
                    format!("backend \"{name}\" ca_key_file (the SSH CA's private key)"),
                    ca.ca_key_file.clone(),
                );
            }
            _ => {}
        }
    }
    if let Some(k) = &cfg.checkpoint_key {
        add("[audit] checkpoint_key_file".into(), k.clone());
    }
    out
}

/// `f` is owned by `owner_uid` and closed to group and others (a directory: not
/// writable by them). The error names the setting and the file and gives the
/// `chown ACCOUNT PATH` / `chmod 600 PATH` that fixes it. A file that does not
/// exist passes (it exposes nothing; the store creates its own, 0600). The
/// error is one line in a list of problems the broker prints before refusing.
pub fn check_owner_only(f: &SecretFile, owner_uid: u32) -> Result<(), String> {
    crate::files::check_private_owned_by(&f.path, owner_uid).map_err(|e| format!("{}: {e}", f.what))
}
