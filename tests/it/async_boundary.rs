//! The async boundary (ARCHITECTURE.md) as a test: the stores are blocking, so
//! only the engine calls them, and only through `Engine::db`, which runs the call
//! on tokio's blocking pool. It reads `src/` as text, like `layers.rs`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A file's code before its `#[cfg(test)]` module (last, by convention here).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// `text` without the body of `async fn db`, the one place the store is called.
fn without_helper(text: &str) -> Option<String> {
    let start = text.find("async fn db<")?;
    let open = start + text[start..].find('{')?;
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(format!("{}{}", &text[..start], &text[open + i + 1..]));
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether `line` uses the engine's `store` field (not `store_description`).
fn names_the_store(line: &str) -> bool {
    line.match_indices("self.store").any(|(i, m)| {
        !line[i + m.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_engine_calls_the_store_only_through_its_boundary() {
    let mut files = vec![];
    rust_files(&src().join("engine"), &mut files);
    let mut wrong = vec![];
    let mut helpers = 0;
    for f in &files {
        let mut text = code(f);
        if let Some(rest) = without_helper(&text) {
            helpers += 1;
            assert!(
                text.contains("spawn_blocking"),
                "Engine::db must run the call on the blocking pool"
            );
            text = rest;
        }
        for (n, line) in text.lines().enumerate() {
            if names_the_store(line) || line.contains("block_in_place") {
                wrong.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert_eq!(helpers, 1, "exactly one `async fn db` in src/engine");
    assert!(
        wrong.is_empty(),
        "store calls outside Engine::db (wrap them: `self.db(move |s| s.call(..)).await`):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn nothing_outside_the_store_and_the_engine_holds_a_store() {
    let mut files = vec![];
    rust_files(&src(), &mut files);
    let root = src();
    let mut wrong = vec![];
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap();
        if rel.starts_with("store") || rel.starts_with("engine") {
            continue;
        }
        let text = code(f);
        for name in [
            "SqliteStore",
            "PostgresStore",
            "dyn Store",
            "block_in_place",
        ] {
            if text.contains(name) {
                wrong.push(format!("{} names {name}", rel.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "front ends reach the store through the engine's async API:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_helper_reader_cuts_exactly_the_helper() {
    let text = "fn a() { self.store.x() }\nasync fn db<T>(&self) -> T { let s = self.store.clone(); { s } }\nfn b() {}";
    let rest = without_helper(text).unwrap();
    assert!(rest.contains("fn a() { self.store.x() }"));
    assert!(rest.contains("fn b() {}"));
    assert!(!rest.contains("clone"));
    assert!(names_the_store("let s = self.store.clone();"));
    assert!(names_the_store("f(&self.store)"));
    assert!(!names_the_store("self.store_description.clone()"));
}

/// `ssh-keygen` (a child process) runs off the async side too: in the engine
/// only `verify_signatures` (on the blocking pool) and the audit chain's
/// check (inside one `db` call) call `ssh_sign::verify`.
#[test]
fn signature_checks_run_on_the_blocking_pool() {
    let mut files = vec![];
    rust_files(&src().join("engine"), &mut files);
    let mut callers = vec![];
    for f in files {
        let text = code(&f);
        let mut current = String::new();
        for line in text.lines() {
            let t = line.trim_start();
            if let Some(rest) = t
                .strip_prefix("pub(crate) async fn ")
                .or_else(|| t.strip_prefix("pub async fn "))
                .or_else(|| t.strip_prefix("async fn "))
                .or_else(|| t.strip_prefix("pub(crate) fn "))
                .or_else(|| t.strip_prefix("pub fn "))
                .or_else(|| t.strip_prefix("fn "))
            {
                current = rest.split('(').next().unwrap_or("").to_string();
            }
            if line.contains("ssh_sign::verify(") {
                callers.push(current.clone());
            }
        }
    }
    callers.sort();
    callers.dedup();
    assert_eq!(
        callers,
        ["check", "check_role", "verify_signatures"],
        "ssh_sign::verify called outside the blocking pool"
    );
}
