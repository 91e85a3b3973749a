//! A bundle sent as files: the broker writes it in its own temporary directory
//! and sends the files; the client writes them into the auditor's directory.

use super::error::{io, EvidenceError, EvidenceError::Invalid};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path};

/// One file of a bundle: its path inside the bundle and its bytes (base64).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleFile {
    pub path: String,
    pub base64: String,
}

/// Largest bundle sent whole (recordings can be large; the reply is bounded).
pub const MAX_SENT_BYTES: u64 = 40 * 1024 * 1024;

/// Every file under `dir`, with paths relative to it.
pub fn read_files(dir: &Path) -> Result<Vec<BundleFile>, EvidenceError> {
    use base64::Engine as _;
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut Vec<BundleFile>,
        total: &mut u64,
    ) -> Result<(), EvidenceError> {
        let entries = std::fs::read_dir(dir).map_err(io(format!("{}", dir.display())))?;
        for e in entries.flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).map_err(io(format!("{}", p.display())))?;
            if meta.is_dir() {
                walk(root, &p, out, total)?;
            } else if meta.is_file() {
                *total += meta.len();
                if *total > MAX_SENT_BYTES {
                    return Err(Invalid(format!(
                        "the bundle is over {} MiB, too large to send; write it on the broker's host as its account",
                        MAX_SENT_BYTES / (1024 * 1024)
                    )));
                }
                let bytes = std::fs::read(&p).map_err(io(format!("{}", p.display())))?;
                let rel = p.strip_prefix(root).expect("walked from root");
                out.push(BundleFile {
                    path: rel.to_string_lossy().into_owned(),
                    base64: base64::engine::general_purpose::STANDARD.encode(bytes),
                });
            }
        }
        Ok(())
    }
    let mut out = vec![];
    walk(dir, dir, &mut out, &mut 0)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Writes received files into `dir` (new or empty, made 0700), refusing any path
/// that would leave it: the sender is trusted to build, not to choose places.
pub fn write_files(dir: &Path, files: &[BundleFile]) -> Result<(), EvidenceError> {
    use base64::Engine as _;
    super::build::prepare_dir(dir)?;
    for f in files {
        let rel = Path::new(&f.path);
        let plain =
            !f.path.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(Invalid(format!(
                "the bundle names a file outside its directory: {}",
                crate::sanitize::line(&f.path, 200)
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&f.base64)
            .map_err(|source| EvidenceError::Base64 {
                what: crate::sanitize::line(&f.path, 200),
                source,
            })?;
        let to = dir.join(rel);
        if let Some(parent) = to.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io(format!("{}", parent.display())))?;
        }
        crate::files::write_private(&to, &bytes).map_err(io(format!("{}", to.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_files_stay_inside_the_bundle_and_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("recordings")).expect("mkdir");
        std::fs::write(src.join("manifest.json"), b"{}").expect("write");
        std::fs::write(src.join("recordings/REQ-1.cast"), b"\x00\x01bytes").expect("write");
        let files = read_files(&src).expect("read");
        assert_eq!(files.len(), 2);
        let to = tmp.path().join("to");
        write_files(&to, &files).expect("write");
        assert_eq!(
            std::fs::read(to.join("recordings/REQ-1.cast")).expect("read"),
            b"\x00\x01bytes"
        );
        for evil in ["../outside", "/etc/passwd", "a/../../b", ""] {
            let bad = vec![BundleFile {
                path: evil.to_string(),
                base64: String::new(),
            }];
            let e = write_files(&tmp.path().join(format!("t{}", evil.len())), &bad);
            assert!(e.is_err(), "{evil}");
        }
        assert!(!tmp.path().join("outside").exists());
    }
}
