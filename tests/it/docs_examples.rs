//! Every ```toml block in README.md and docs/**/*.md loads through the config
//! loader, so the docs cannot drift from the code: the loader refuses unknown keys,
//! so a renamed or removed key fails here.
//!
//! The rules, so a docs writer knows what a block must be:
//! - A block with both `[store]` and `[[roles]]` is a complete config and is loaded
//!   exactly as written.
//! - A block with `[broker]` and nothing else but `[ui]` is a person's client
//!   config: it is loaded as written through `config::load_any`, and must come out
//!   a client config (a broker's own `[broker]` is shown in a whole config, or
//!   beside another table).
//! - Any other block is a fragment, laid over `BASE` (a small valid config): its
//!   top-level keys and tables replace the base's, `[backends.NAME]` tables are
//!   added to the base's, and each of its `[[roles]]` gets the keys it leaves out
//!   (`# ...` in the docs) from the base's role.
//! - A commented-out setting (`# key = value`) is documented too: the block is also
//!   loaded with that line uncommented, one line at a time. When its comment starts
//!   with `or` (`# url_file = "..."  # or from a file`), it replaces the setting on
//!   the nearest line above it instead of adding to it.
//! - A config that names `policy = "FILE"` gets its roles and groups written to that
//!   file; one that names `allowed_signers = "FILE"` gets the docs' own
//!   allowed_signers example (the text block starting `# allowed_signers:`).
//! - ```toml,ignore skips a block. Only the blocks in `IGNORED` may carry it
//!   (none today): a block that cannot be made to load should say why in the docs
//!   and here.

use std::path::{Path, PathBuf};

/// Blocks allowed to carry ```toml,ignore, by "file:line" of their fence.
const IGNORED: &[&str] = &[];

/// What a fragment is laid over: one of each thing a config needs.
const BASE: &str = r#"
[store]
kind = "sqlite"

[[incident_sources]]
name = "incidents"
kind = "file"
path = "incidents.toml"

[backends.plugin]
kind = "exec"
command = "/usr/local/libexec/breakglass/my-plugin"
timeout = "30s"

[[alerts.sinks]]
kind = "file"
path = "alerts.jsonl"

[groups]
oncall = ["alice", "bob"]
sre-leads = ["carol", "dave"]
security = ["erin"]
bots = ["svc-failover"]

[[roles]]
name = "base-role"
description = "what a fragment's role leaves out"
backend = "plugin"
scope = { member_of = ["emergency_dba"] }
default_ttl = "15m"
max_ttl = "30m"
conditions = ["production outage", "failed automation path"]
requesters = ["@oncall"]
approvers = ["@sre-leads"]
certifiers = ["@security"]
"#;

struct Block {
    /// "file:line" of the opening fence.
    at: String,
    info: String,
    text: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                // mdBook's output, when someone built the book locally.
                if p.file_name().is_some_and(|n| n == "book") {
                    continue;
                }
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "md") {
                out.push(p);
            }
        }
    }
    let mut files = vec![root().join("README.md")];
    walk(&root().join("docs"), &mut files);
    files
}

/// Fenced blocks of one Markdown file, indented ones (in list items) included.
fn fenced_blocks(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).unwrap();
    let rel = path.strip_prefix(root()).unwrap().display().to_string();
    let mut blocks = Vec::new();
    let mut open: Option<(usize, usize, String, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = Some((i + 1, indent, info.trim().to_string(), Vec::new()));
                }
            }
            Some((start, ind, info, body)) => {
                if trimmed.starts_with("```") {
                    blocks.push(Block {
                        at: format!("{rel}:{start}"),
                        info: std::mem::take(info),
                        text: body.join("\n") + "\n",
                    });
                    open = None;
                } else {
                    let cut = (*ind).min(indent);
                    body.push(line[cut..].to_string());
                }
            }
        }
    }
    assert!(open.is_none(), "{rel}: a fenced block is never closed");
    blocks
}

fn all_blocks() -> Vec<Block> {
    markdown_files()
        .iter()
        .flat_map(|f| fenced_blocks(f))
        .collect()
}

fn is_toml(info: &str) -> bool {
    info.split([',', ' ']).next() == Some("toml")
}

fn is_ignored(info: &str) -> bool {
    info.split([',', ' ']).any(|w| w == "ignore")
}

/// The docs' example allowed_signers file.
fn allowed_signers_example(blocks: &[Block]) -> String {
    blocks
        .iter()
        .find(|b| b.text.starts_with("# allowed_signers:"))
        .expect("the signed approvals chapter shows an allowed_signers file in a text block starting `# allowed_signers:`")
        .text
        .clone()
}

/// The block laid over BASE (or as written, when it is a whole config).
fn complete(block: &toml::Table) -> toml::Table {
    if block.contains_key("store") && block.contains_key("roles") {
        return block.clone();
    }
    let mut cfg: toml::Table = toml::from_str(BASE).unwrap();
    let base_role = cfg["roles"].as_array().unwrap()[0]
        .as_table()
        .unwrap()
        .clone();
    for (key, value) in block {
        match (key.as_str(), value) {
            ("backends", toml::Value::Table(backends)) => {
                let mine = cfg["backends"].as_table_mut().unwrap();
                for (name, b) in backends {
                    mine.insert(name.clone(), b.clone());
                }
            }
            ("roles", toml::Value::Array(roles)) => {
                let filled = roles
                    .iter()
                    .map(|r| {
                        let mut role = base_role.clone();
                        for (k, v) in r.as_table().expect("a [[roles]] entry is a table") {
                            role.insert(k.clone(), v.clone());
                        }
                        toml::Value::Table(role)
                    })
                    .collect();
                cfg.insert("roles".into(), toml::Value::Array(filled));
            }
            _ => {
                cfg.insert(key.clone(), value.clone());
            }
        }
    }
    cfg
}

/// A person's client config: `[broker]`, and at most `[ui]` beside it.
fn is_client(block: &toml::Table) -> bool {
    block.contains_key("broker") && block.keys().all(|k| k == "broker" || k == "ui")
}

/// Loads one config text the way `breakglass config check` would, in a fresh
/// directory with the files it names.
fn load(text: &str, signers: &str) -> Result<(), String> {
    let block: toml::Table = toml::from_str(text).map_err(|e| format!("not TOML: {e}"))?;
    let dir = tempfile::tempdir().unwrap();
    if is_client(&block) {
        let path = dir.path().join("client.toml");
        std::fs::write(&path, text).unwrap();
        return match breakglass::config::load_any(&path) {
            Ok(breakglass::config::Loaded::Client(_)) => Ok(()),
            Ok(breakglass::config::Loaded::Full(_)) => Err(format!(
                "loaded as a whole config, not a client config:\n{text}"
            )),
            Err(p) => Err(format!("{p}\n--- as loaded:\n{text}")),
        };
    }
    let mut cfg = complete(&block);
    if let Some(policy) = cfg.get("policy").and_then(|p| p.as_str()).map(String::from) {
        let mut file = toml::Table::new();
        for k in ["groups", "roles"] {
            if let Some(v) = cfg.remove(k) {
                file.insert(k.into(), v);
            }
        }
        std::fs::write(dir.path().join(policy), toml::to_string(&file).unwrap()).unwrap();
    }
    if let Some(s) = cfg.get("allowed_signers").and_then(|p| p.as_str()) {
        std::fs::write(dir.path().join(s), signers).unwrap();
    }
    let path = dir.path().join("breakglass.toml");
    let text = toml::to_string(&cfg).unwrap();
    std::fs::write(&path, &text).unwrap();
    breakglass::config::load(&path)
        .map(|_| ())
        .map_err(|p| format!("{p}\n--- as loaded:\n{text}"))
}

/// `# key = value` (a setting left at its default in the docs): the key, and whether
/// its comment says it is an alternative to the line above (`# or ...`).
fn commented_setting(line: &str) -> Option<(usize, bool)> {
    let re = regex::Regex::new(r#"^(\s*)#\s?[A-Za-z_][A-Za-z0-9_-]*\s*=\s*\S"#).unwrap();
    let caps = re.captures(line)?;
    let alternative = regex::Regex::new(r#"=.*\s#\s*or\s"#)
        .unwrap()
        .is_match(line);
    Some((caps[1].len(), alternative))
}

fn is_setting(line: &str) -> bool {
    regex::Regex::new(r#"^\s*[A-Za-z_][A-Za-z0-9_-]*\s*="#)
        .unwrap()
        .is_match(line)
}

/// The block with commented line `i` uncommented (replacing the setting above it
/// when it is an alternative).
fn uncommented(lines: &[&str], i: usize, indent: usize, alternative: bool) -> String {
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let rest = lines[i][indent..].trim_start_matches('#');
    out[i] = format!(
        "{}{}",
        &lines[i][..indent],
        rest.strip_prefix(' ').unwrap_or(rest)
    );
    if alternative {
        let above = (0..i)
            .rev()
            .find(|&j| is_setting(lines[j]))
            .unwrap_or_else(|| {
                panic!(
                    "`{}` is marked `# or`, but no setting is above it",
                    lines[i]
                )
            });
        out[above] = String::new();
    }
    out.join("\n")
}

#[test]
fn every_toml_example_in_the_docs_loads() {
    let blocks = all_blocks();
    let signers = allowed_signers_example(&blocks);
    let mut failures = Vec::new();
    let (mut loaded, mut settings) = (0, 0);
    for b in blocks.iter().filter(|b| is_toml(&b.info)) {
        if is_ignored(&b.info) {
            assert!(
                IGNORED.contains(&b.at.as_str()),
                "{}: ```{} is not in IGNORED; make the block load, or add it there with the reason",
                b.at,
                b.info
            );
            continue;
        }
        loaded += 1;
        if let Err(e) = load(&b.text, &signers) {
            failures.push(format!("{}: the block as written:\n{e}", b.at));
        }
        let lines: Vec<&str> = b.text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some((indent, alternative)) = commented_setting(line) else {
                continue;
            };
            settings += 1;
            let variant = uncommented(&lines, i, indent, alternative);
            if let Err(e) = load(&variant, &signers) {
                failures.push(format!(
                    "{}: with `{}` uncommented:\n{e}",
                    b.at,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} docs example(s) do not load:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // The docs hold a dozen and more of each; far fewer means the scan broke.
    assert!(loaded >= 12, "only {loaded} toml blocks found");
    assert!(settings >= 30, "only {settings} commented settings found");
}

/// The harness itself: a renamed key in a fragment, in a whole config and in a
/// commented setting is caught, so the test above cannot pass by accident.
#[test]
fn a_renamed_key_fails() {
    let blocks = all_blocks();
    let signers = allowed_signers_example(&blocks);
    let toml_blocks: Vec<&Block> = blocks.iter().filter(|b| is_toml(&b.info)).collect();

    let whole = toml_blocks
        .iter()
        .find(|b| {
            b.text.contains("[store]")
                && b.text.contains("[[roles]]")
                && b.text.contains("max_extensions =")
        })
        .expect("the configuration chapter has a whole config");
    load(&whole.text, &signers).unwrap();
    let renamed = whole.text.replace("max_extensions =", "max_extension =");
    assert_ne!(renamed, whole.text);
    assert!(load(&renamed, &signers).is_err());

    let http = toml_blocks
        .iter()
        .find(|b| b.text.contains("kind = \"http\"") && b.text.contains("[backends."))
        .expect("the HTTP backend chapter has a block");
    let lines: Vec<&str> = http.text.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with("# revoke_retries"))
        .expect("revoke_retries is documented commented out");
    let (indent, alt) = commented_setting(lines[i]).unwrap();
    load(&uncommented(&lines, i, indent, alt), &signers).unwrap();
    let renamed: Vec<&str> = {
        let mut v = lines.clone();
        v[i] = "# revoke_retry = 3";
        v
    };
    assert!(load(&uncommented(&renamed, i, 0, false), &signers).is_err());

    // A person's client config: loaded as written, its keys checked too.
    let client = toml_blocks
        .iter()
        .find(|b| b.text.trim_start().starts_with("[broker]") && !b.text.contains("[store]"))
        .expect("the broker chapter shows a person's client config");
    load(&client.text, &signers).unwrap();
    let renamed = client.text.replace("socket =", "sockets =");
    assert_ne!(renamed, client.text);
    assert!(load(&renamed, &signers).is_err());

    // A fragment's role: filled from the base, but its own keys still checked.
    let fragment = "[[roles]]\nname = \"r\"\nrequire_open_incidents = true\n";
    assert!(load(fragment, &signers).is_err());
    load(&fragment.replace("incidents", "incident"), &signers).unwrap();
}
