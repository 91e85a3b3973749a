//! Files that hold people's words (reasons, names, comments) or policy: created
//! readable by their owner only. A mode passed at creation does not change a file
//! that already exists, so an existing one is narrowed too. And the check that a
//! file holding a secret is its owner's alone, with the command that fixes it.

use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Owner read/write only.
pub const PRIVATE: u32 = 0o600;

/// Creates or truncates `path` with mode 0600 (narrowing an existing file).
pub fn create_private(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE)
        .open(path)?;
    f.set_permissions(Permissions::from_mode(PRIVATE))?;
    Ok(f)
}

/// Writes `bytes` to `path`, mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = create_private(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Whether `path` is its owner's alone, for a file that holds a secret (or the
/// directory that holds one): a file with any group or other permission bit is
/// refused; a directory only when group or others may write in it (they could
/// replace or plant files, e.g. SQLite's -wal; listing names reveals nothing).
/// The error names the path and the exact command that fixes it. A missing path
/// passes: it exposes nothing, and whoever reads it reports it missing.
pub fn check_private(path: &Path) -> Result<(), NotPrivate> {
    check(path, None)
}

/// [`check_private`], and owned by `owner_uid` (the account that alone reads it).
pub fn check_private_owned_by(path: &Path, owner_uid: u32) -> Result<(), NotPrivate> {
    check(path, Some(owner_uid))
}

/// Why a path is not its owner's alone, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum NotPrivate {
    #[error("cannot check {}: {source}", path.display())]
    Unreadable {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// What is wrong and the command that fixes it, for a person.
    #[error("{0}")]
    Open(String),
}

fn check(path: &Path, owner_uid: Option<u32>) -> Result<(), NotPrivate> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(NotPrivate::Unreadable {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let q = shell_quote(&path.to_string_lossy());
    let mode = meta.mode() & 0o7777;
    let dir = meta.is_dir();
    let loose = if dir { mode & 0o022 } else { mode & 0o077 };
    let mut wrong = Vec::new();
    let mut fixes = Vec::new();
    if let Some(want) = owner_uid.filter(|u| *u != meta.uid()) {
        wrong.push(format!(
            "is owned by {}, not {}",
            account(meta.uid()),
            account(want)
        ));
        fixes.push(format!("chown {} {q}", account_name(want)));
    }
    if loose != 0 {
        wrong.push(format!("is {} (mode {mode:04o})", access(loose)));
        fixes.push(if dir {
            format!("chmod go-w {q}")
        } else {
            format!("chmod {:o} {q}", PRIVATE)
        });
    }
    if wrong.is_empty() {
        return Ok(());
    }
    Err(NotPrivate::Open(format!(
        "{} {}; run: {}",
        path.display(),
        wrong.join(" and "),
        fixes.join(" && ")
    )))
}

/// "readable by group", "readable by group and others", "readable by group,
/// readable and writable by others" for the bits in `bits`.
fn access(bits: u32) -> String {
    let verbs = |b: u32| -> String {
        [(4, "readable"), (2, "writable"), (1, "executable")]
            .iter()
            .filter(|(bit, _)| b & bit != 0)
            .map(|(_, v)| *v)
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let (group, others) = (verbs((bits >> 3) & 0o7), verbs(bits & 0o7));
    match (group.is_empty(), others.is_empty()) {
        (false, false) if group == others => format!("{group} by group and others"),
        (false, false) => format!("{group} by group, {others} by others"),
        (false, true) => format!("{group} by group"),
        _ => format!("{others} by others"),
    }
}

/// The account's name for a command line, else the number (chown takes both).
fn account_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

/// "breakglass (uid 998)" for a message.
fn account(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("{} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// `s` as one shell word: as is when it is plainly safe, else single-quoted.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%=".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_and_existing_files_end_up_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"new").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
    }

    fn mode_of(p: &Path, mode: u32) {
        std::fs::set_permissions(p, Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_secret_file_open_to_group_or_others_is_refused_with_the_chmod_that_fixes_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("prod db.url");
        std::fs::write(&p, "postgresql://x").unwrap();
        let shown = format!("'{}'", p.display());
        for (mode, says) in [
            (0o640, "readable by group (mode 0640)"),
            (0o604, "readable by others (mode 0604)"),
            (0o644, "readable by group and others (mode 0644)"),
            (
                0o664,
                "readable and writable by group, readable by others (mode 0664)",
            ),
        ] {
            mode_of(&p, mode);
            let e = check_private(&p).unwrap_err().to_string();
            assert!(e.starts_with(&p.display().to_string()), "{e}");
            assert!(e.contains(says), "{e}");
            assert!(e.ends_with(&format!("run: chmod 600 {shown}")), "{e}");
        }
        mode_of(&p, 0o600);
        check_private(&p).unwrap();
        mode_of(&p, 0o400);
        check_private(&p).unwrap();
        // Nothing there, nothing exposed.
        check_private(&dir.path().join("missing")).unwrap();
    }

    #[test]
    fn a_directory_is_refused_only_when_others_may_write_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("store");
        std::fs::create_dir(&d).unwrap();
        for mode in [0o700, 0o750, 0o755] {
            mode_of(&d, mode);
            check_private(&d).unwrap();
        }
        mode_of(&d, 0o775);
        let e = check_private(&d).unwrap_err().to_string();
        assert!(e.contains("writable by group (mode 0775)"), "{e}");
        assert!(
            e.ends_with(&format!("run: chmod go-w {}", d.display())),
            "{e}"
        );
    }

    #[test]
    fn the_owner_must_be_the_account_named_and_the_fix_names_it() {
        use nix::unistd::{getuid, Uid, User};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint.key");
        std::fs::write(&p, "k").unwrap();
        mode_of(&p, 0o600);
        let me = getuid().as_raw();
        check_private_owned_by(&p, me).unwrap();
        // Someone else: by name when the account exists, by number otherwise.
        let other = if me == 0 { 65534 } else { 0 };
        let name = User::from_uid(Uid::from_raw(other))
            .unwrap()
            .map(|u| u.name)
            .unwrap_or_else(|| other.to_string());
        let e = check_private_owned_by(&p, other).unwrap_err().to_string();
        assert!(e.contains("is owned by"), "{e}");
        assert!(
            e.ends_with(&format!("run: chown {name} {}", p.display())),
            "{e}"
        );
        let e = check_private_owned_by(&p, 4_242_424)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not uid 4242424"), "{e}");
        mode_of(&p, 0o644);
        let e = check_private_owned_by(&p, 4_242_424)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with(&format!(
                "run: chown 4242424 {0} && chmod 600 {0}",
                p.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn shell_words_are_quoted_when_they_need_it() {
        assert_eq!(
            shell_quote("/etc/breakglass/x.url"),
            "/etc/breakglass/x.url"
        );
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(rm)"), "'$(rm)'");
        assert_eq!(shell_quote(""), "''");
    }
}
