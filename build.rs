//! Names the commit a binary was built from, for `breakglass --version`:
//! `BREAKGLASS_COMMIT` is `git rev-parse --short HEAD`, with `+dirty` when
//! tracked files differ from it, or `unknown` without git or a `.git` (a crate
//! unpacked from a registry, a source tarball). Plain git, no crate: the build
//! must not grow a dependency to say where it came from.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    println!("cargo:rustc-env=BREAKGLASS_COMMIT={}", commit(&dir));
    // Rerun when the commit moves (HEAD, the branch it names, packed refs) and
    // when sources change (they may make the tree dirty). Not on every file in
    // the package, which would rebuild the library for a test or doc edit.
    for path in watched(&dir) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    for rel in ["src", "Cargo.toml", "Cargo.lock", "build.rs"] {
        println!("cargo:rerun-if-changed={rel}");
    }
}

/// The short commit of the checkout at `dir`, `+dirty` when tracked files
/// differ from it; `unknown` when `dir` is not a checkout or git cannot say.
pub fn commit(dir: &Path) -> String {
    // Only the package's own checkout: git would otherwise find an enclosing
    // repository (a crate unpacked inside someone else's tree) and name its commit.
    if !dir.join(".git").exists() {
        return "unknown".into();
    }
    let Some(hash) = git(dir, &["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    // --no-optional-locks: a build must not rewrite the index under the user.
    match git(
        dir,
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    ) {
        Some(changes) if changes.is_empty() => hash,
        Some(_) => format!("{hash}+dirty"),
        None => "unknown".into(),
    }
}

/// The files whose change moves HEAD: HEAD itself, the ref it names, packed
/// refs. In a worktree `.git` is a file; git says where they really are.
fn watched(dir: &Path) -> Vec<PathBuf> {
    if !dir.join(".git").exists() {
        return vec![];
    }
    let mut paths = vec![];
    let mut add = |name: &str| {
        // A path that does not exist would rerun the script on every build.
        if let Some(p) = git(dir, &["rev-parse", "--git-path", name]).map(|p| dir.join(p)) {
            if p.exists() {
                paths.push(p);
            }
        }
    };
    add("HEAD");
    add("packed-refs");
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        add(&branch);
    }
    paths
}

/// One git command's trimmed stdout, if it ran and succeeded.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}
