//! Every relative link in README.md, ARCHITECTURE.md and docs/**/*.md points at a
//! file that exists, and every chapter of the book is in docs/src/SUMMARY.md, so
//! moving or renaming a page cannot leave a dead link behind (the mdBook site is
//! built from the same files).

use std::path::{Path, PathBuf};

fn markdown(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            markdown(&p, out);
        } else if p.extension().is_some_and(|x| x == "md") {
            out.push(p);
        }
    }
}

/// The targets of `[text](target)` links outside code blocks and code spans.
fn links(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop code spans: `[x](y)` inside backticks is not a link.
        let plain: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    markdown(&root.join("docs"), &mut files);
    let mut dead = vec![];
    let mut checked = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for target in links(&text) {
            let target = target.split_whitespace().next().unwrap_or("");
            if target.is_empty()
                || target.starts_with('#')
                || target.contains("://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let path = target.split('#').next().unwrap();
            checked += 1;
            if !f.parent().unwrap().join(path).exists() {
                dead.push(format!(
                    "{}: {target}",
                    f.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the reader broken?"
    );
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
}

#[test]
fn every_chapter_is_in_the_summary() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let listed = links(&summary);
    let mut pages = vec![];
    markdown(&src, &mut pages);
    let missing: Vec<String> = pages
        .iter()
        .map(|p| p.strip_prefix(&src).unwrap().display().to_string())
        .filter(|p| p != "SUMMARY.md" && !listed.iter().any(|l| l == p))
        .collect();
    assert!(missing.is_empty(), "not in SUMMARY.md: {missing:?}");
}

/// A capture shown in the docs (`<!-- capture: NAME -->` before a text block)
/// is the one `scripts/captures` took into docs/screens/NAME.txt: run
/// `scripts/sync-captures` after regenerating them.
#[test]
fn the_captures_shown_are_the_captures_taken() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![root.join("README.md")];
    markdown(&root.join("docs/src"), &mut docs);
    let mut seen = 0;
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (i, _) in text.match_indices("<!-- capture: ") {
            let rest = &text[i + "<!-- capture: ".len()..];
            let name = &rest[..rest.find(" -->").unwrap()];
            let block = rest.split_once("```text\n").unwrap().1;
            let shown = &block[..block.find("```").unwrap()];
            let taken = std::fs::read_to_string(root.join(format!("docs/screens/{name}.txt")))
                .unwrap_or_else(|e| panic!("{}: capture {name}: {e}", doc.display()));
            let trim = |s: &str| {
                s.trim_end()
                    .lines()
                    .map(str::trim_end)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(
                trim(shown),
                trim(&taken),
                "{}: capture {name} differs from docs/screens; run scripts/sync-captures",
                doc.display()
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 4,
        "the README and the console chapter show captures"
    );
}
