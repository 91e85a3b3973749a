//! Validation of OCSF output against the real OCSF JSON Schema: the one the
//! `ocsf-json-schema` package generates from the OCSF schema it bundles, per
//! event class and declared profiles, checked by Python's `jsonschema`
//! (tests/it/support/ocsf_validate.py). scripts/test installs both into
//! target/ocsf-venv; without them the test fails and says how to install them.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What scripts/test runs, from the repository root.
pub const INSTALL: &str = "python3 -m venv target/ocsf-venv && target/ocsf-venv/bin/pip install ocsf-json-schema==1.2.0 jsonschema==4.26.0";

/// `BREAKGLASS_OCSF_PYTHON`, or the venv scripts/test makes.
fn python() -> PathBuf {
    let py = std::env::var_os("BREAKGLASS_OCSF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ocsf-venv/bin/python")
        });
    let has = Command::new(&py)
        .args(["-c", "import ocsf_json_schema, jsonschema"])
        .output();
    match has {
        Ok(o) if o.status.success() => py,
        Ok(o) => panic!(
            "{} lacks ocsf-json-schema or jsonschema ({}); install them from the repository root with `{INSTALL}` (scripts/test does), or point BREAKGLASS_OCSF_PYTHON at a python that has them",
            py.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "no OCSF validator at {} ({e}); install it from the repository root with `{INSTALL}` (scripts/test does), or point BREAKGLASS_OCSF_PYTHON at a python that has ocsf-json-schema and jsonschema",
            py.display()
        ),
    }
}

/// Validates every event in the JSON Lines `files`, each against the schema of
/// its class with the profiles it declares. Panics naming every invalid event
/// (with the schema's complaints); returns the events, all valid.
pub fn assert_valid(files: &[&Path]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/ocsf_validate.py");
    let o = Command::new(python())
        .arg(script)
        .args(files)
        .output()
        .expect("the OCSF validator runs");
    assert!(
        o.status.success(),
        "the OCSF validator failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let verdicts: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a verdict is JSON"))
        .collect();
    let mut events = vec![];
    let mut bad = vec![];
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v = verdicts
                .iter()
                .find(|v| v["file"] == f.to_str().unwrap() && v["line"] == n + 1)
                .unwrap_or_else(|| panic!("no verdict for {}:{}", f.display(), n + 1));
            if v["ok"] != true {
                bad.push(format!(
                    "{}:{} {}\n  {line}",
                    f.display(),
                    n + 1,
                    v["errors"]
                ));
            }
            events.push(serde_json::from_str(line).expect("an event is JSON"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} OCSF events are not valid OCSF:\n{}",
        bad.len(),
        events.len(),
        bad.join("\n")
    );
    assert!(!events.is_empty(), "no OCSF event to validate");
    events
}

/// Null anywhere in an event: SIEMs (and the OCSF schema) want absent fields
/// left out. Returns the JSON paths of the nulls found.
pub fn nulls(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Null => out.push(at),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| walk(x, format!("{at}[{i}]"), out)),
            Value::Object(m) => m
                .iter()
                .for_each(|(k, x)| walk(x, format!("{at}.{k}"), out)),
            _ => {}
        }
    }
    let mut out = vec![];
    walk(v, String::new(), &mut out);
    out
}
