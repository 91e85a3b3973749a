//! The layer map (ARCHITECTURE.md) as a test: a module may import only modules on
//! lower layers. It reads `src/` as text: every `crate::name` and `use crate::{..}`
//! outside `#[cfg(test)]` code names a top-level module it depends on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules of `src/`, lowest first. Same layer: no imports either way.
const LAYERS: &[&[&str]] = &[
    // Poison-tolerant locks, used by leaves such as the clock.
    &["sync"],
    // Leaves: plain types and helpers with no breakglass dependency.
    &[
        "domain",
        "sanitize",
        "clock",
        "signing",
        "files",
        "exit",
        "failpoint",
        "net",
        "pty",
    ],
    &["identity"],
    &["audit"],
    // What alerts are (kinds, formats, schema): the store queues them, config names them.
    &["alert_vocab"],
    // The parts behind traits.
    &["store", "backend", "incident"],
    &["alert"],
    // The file format, parsed into each part's own settings.
    &["config"],
    &["engine", "demo"],
    // What a person may ask, in process or over the broker's socket (`broker.rs`
    // serves it); the front ends reach the engine only through it.
    &["service"],
    &["broker"],
    // The two front ends (the CLI opens the console) and the fuzzing entry points.
    &["tui", "fuzzing"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

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

/// The top-level module a file under `src/` belongs to.
fn owner(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Modules named by `crate::x` paths and `use crate::{x, y::z}` lists, outside
/// `#[cfg(test)]` (a file's test module comes last, by convention here).
fn imports(text: &str) -> BTreeSet<String> {
    let code = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let end = list.find('}').unwrap_or(list.len());
            for item in list[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out.retain(|n| !n.is_empty() && n != "self");
    out
}

#[test]
fn no_module_imports_a_higher_or_equal_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for f in &files {
        let from = owner(&src, f);
        if matches!(from.as_str(), "lib" | "main") {
            continue;
        }
        for to in imports(&std::fs::read_to_string(f).unwrap()) {
            if to != from {
                edges
                    .entry((from.clone(), to))
                    .or_default()
                    .push(f.strip_prefix(&src).unwrap().display().to_string());
            }
        }
    }
    let mut wrong = vec![];
    for ((from, to), files) in &edges {
        match (layer_of(from), layer_of(to)) {
            (None, _) => wrong.push(format!("{from} is not on the layer map (add it to LAYERS)")),
            (_, None) => wrong.push(format!("{to} (imported by {from}) is not on the layer map")),
            (Some(a), Some(b)) if b >= a => wrong.push(format!(
                "{from} (layer {a}) imports {to} (layer {b}) in {}",
                files.join(", ")
            )),
            _ => {}
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "imports against the layer map:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_import_reader_sees_paths_and_lists() {
    let text = "use crate::{alert::Format, store};\nfn f() { crate::net::http::client(); }\n#[cfg(test)]\nmod tests { use crate::engine; }";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["alert", "net", "store"]);
}
