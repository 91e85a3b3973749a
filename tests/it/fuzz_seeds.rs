//! The fuzz targets on stable: every `breakglass::fuzzing` entry point over its
//! committed seeds (`fuzz/seeds/<target>/`), over the inputs fuzzing once
//! crashed it (`fuzz/regressions/<target>/`), and over a few thousand inputs
//! made here by mutating the seeds. Nightly and cargo-fuzz run the same entry
//! points for longer (`scripts/fuzz`).
//!
//! Seed names say what the seed must come to: `ok-N-...` is read as valid with
//! N roles, credential fields or incidents; `bad-...` is refused. Regression
//! inputs must not panic (and, when named so, come to what their name says).
//! `FUZZ_SEEDS_SHOW=1 cargo test --test fuzz_seeds seeds -- --nocapture` prints
//! what each seed came to.

use breakglass::fuzzing::{Outcome, Target, TARGETS};
use proptest::prelude::*;
use proptest::sample::Index;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files in `fuzz/<kind>/<target>/`, sorted; none when it does not exist.
fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), data)
        })
        .collect();
    out.sort();
    out
}

fn target(name: &str) -> Target {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzzing target {name}"))
        .1
}

/// Runs one input, turning a panic into a failure that names the input.
fn run(name: &str, what: &str, data: &[u8]) -> Outcome {
    let f = target(name);
    match catch_unwind(AssertUnwindSafe(|| f(data))) {
        Ok(o) => o,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("fuzzing::{name} panicked on {what}: {msg}")
        }
    }
}

/// What a file's name says it must come to: `Some(Ok(n))` for `ok-N-...`,
/// `Some(Err(()))` for `bad-...`, `None` for any other name.
fn expected(file: &str) -> Option<Result<usize, ()>> {
    if let Some(rest) = file.strip_prefix("ok-") {
        let n = rest.split('-').next().and_then(|n| n.parse().ok());
        Some(Ok(n.unwrap_or_else(|| {
            panic!("{file}: write ok-<count>-<what>")
        })))
    } else if file.starts_with("bad-") {
        Some(Err(()))
    } else {
        None
    }
}

fn check(name: &str, kind: &str, file: &str, data: &[u8]) -> Option<String> {
    let what = format!("fuzz/{kind}/{name}/{file}");
    let got = run(name, &what, data);
    if std::env::var_os("FUZZ_SEEDS_SHOW").is_some() {
        eprintln!("{what}: {got:?}");
    }
    match (expected(file), &got) {
        (Some(Ok(n)), Ok(m)) if n == *m => None,
        (Some(Err(())), Err(m)) if !m.starts_with("skipped") => None,
        (None, _) => None,
        (Some(want), _) => Some(format!("{what}: expected {want:?}, got {got:?}")),
    }
}

#[test]
fn every_target_has_a_cargo_fuzz_binary_and_seeds_both_ways() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("cargo-fuzz = true"), "{manifest}");
    assert_eq!(TARGETS.len(), 9);
    for (name, _) in TARGETS {
        let src = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
            .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{name}.rs: {e}"));
        assert!(
            src.contains(&format!("breakglass::fuzzing::{name}(data)")),
            "fuzz/fuzz_targets/{name}.rs must call breakglass::fuzzing::{name}(data)"
        );
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
            "fuzz/Cargo.toml has no [[bin]] for {name}"
        );
        let seeds = inputs("seeds", name);
        let ok = seeds.iter().filter(|(f, _)| f.starts_with("ok-")).count();
        let bad = seeds.iter().filter(|(f, _)| f.starts_with("bad-")).count();
        assert!(
            ok >= 2 && bad >= 2,
            "fuzz/seeds/{name}: {ok} ok- and {bad} bad- seeds; keep at least two of each"
        );
        assert_eq!(
            ok + bad,
            seeds.len(),
            "fuzz/seeds/{name}: name every seed ok-N-... or bad-..."
        );
    }
}

#[test]
fn seeds_come_to_what_their_names_say() {
    let mut wrong = Vec::new();
    let mut ran = 0;
    for (name, _) in TARGETS {
        for (file, data) in inputs("seeds", name) {
            ran += 1;
            wrong.extend(check(name, "seeds", &file, &data));
        }
    }
    assert!(ran >= 40, "only {ran} seeds ran");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn crashes_fuzzing_found_stay_fixed() {
    let mut wrong = Vec::new();
    for (name, _) in TARGETS {
        for (file, data) in inputs("regressions", name) {
            wrong.extend(check(name, "regressions", &file, &data));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Tokens the mutator splices in: the syntax of TOML and JSON, the keys the
/// parsers look for, and values at the edges (huge numbers and durations,
/// control and bidi characters, invalid UTF-8).
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"=",
    b"\n",
    b"\r\n",
    b"\\",
    b"null",
    b"true",
    b"false",
    b"0",
    b"-1",
    b"1e400",
    b"18446744073709551615",
    b"-9223372036854775808",
    b"9223372036854775807",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\xff\xfe",
    "é\u{202e}".as_bytes(),
    b"\x1b[31m",
    b"\"ok\":true,",
    b"\"ok\":false,",
    b"\"lease_id\":\"l\",",
    b"\"credential\":{\"k\":\"v\"},",
    b"\"expires_at\":\"2024-05-01T10:15:00Z\",",
    b"\"more\":true,",
    b"\"limit\":18446744073709551615,",
    b"\"limit\":0,",
    b"\"incidents\":[",
    b"\"incident\":{",
    b"\"data\":[",
    b"\"data\":{",
    b"\"paging\":{\"next\":\"?offset=18446744073709551615\"},",
    b"\"paging\":{\"next\":\"https://x/?offset=3\"},",
    b"\"status\":\"triggered\",",
    b"\"created_at\":1e300,",
    b"\"createdAt\":-1,",
    b"HTTP 500\n",
    b"HTTP 200\n",
    b"HTTP 401\n",
    b"\n[[roles]]\n",
    b"\n[groups]\n",
    b"\n[store]\n",
    b"\n[[incident_sources]]\n",
    b"name = \"x\"\n",
    b"\"\"\"",
    b"'''",
    b"1979-05-27T07:32:00Z",
    b"inf",
    b"nan",
    b"\"15m\"",
    b"\"0s\"",
    b"\"5000000000000000000s\"",
    b"\"10000000000000000000s\"",
    b"\"300000000000y\"",
    b"\"@oncall\"",
    b"\"*\"",
    b"max_ttl = ",
    b"max_total = ",
    b"default_ttl = ",
    b"approvals_required = ",
    b"ticket_pattern = \"^(a+)+$\"\n",
    b"policy = \"policy.toml\"\n",
    b"approval_signing = \"ssh\"\n",
];

#[derive(Debug, Clone)]
enum Edit {
    Byte(Index, u8),
    Insert(Index, Index),
    Delete(Index, usize),
    Copy(Index, usize, Index),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Byte(i, b)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Edit::Insert(i, t)),
        1 => (any::<Index>(), 1usize..32).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => (any::<Index>(), 1usize..64, any::<Index>()).prop_map(|(i, n, j)| Edit::Copy(i, n, j)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for e in edits {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
        match e {
            Edit::Byte(i, b) if !d.is_empty() => {
                let k = i.index(d.len());
                d[k] = *b;
            }
            Edit::Byte(..) => d.push(0),
            Edit::Insert(i, t) => {
                let k = at(i, d.len());
                let tok = TOKENS[t.index(TOKENS.len())];
                d.splice(k..k, tok.iter().copied());
            }
            Edit::Delete(i, n) => {
                let k = at(i, d.len());
                let end = (k + n).min(d.len());
                d.drain(k..end);
            }
            Edit::Copy(i, n, j) => {
                let k = at(i, d.len());
                let part = d[k..(k + n).min(d.len())].to_vec();
                let to = at(j, d.len());
                d.splice(to..to, part);
            }
            Edit::Truncate(i) => d.truncate(at(i, d.len())),
        }
    }
    d
}

/// Mutated seeds (most cases), random bytes, and token soup.
fn input(name: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = inputs("seeds", name).into_iter().map(|(_, d)| d).collect();
    assert!(!seeds.is_empty(), "no seeds for {name}");
    let n = seeds.len();
    prop_oneof![
        6 => (0..n, prop::collection::vec(edit(), 1..12))
            .prop_map(move |(i, edits)| apply(&seeds[i], &edits)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
        1 => prop::collection::vec(any::<Index>(), 0..48).prop_map(|ts| {
            ts.iter().flat_map(|t| TOKENS[t.index(TOKENS.len())].iter().copied()).collect()
        }),
    ]
}

/// Never panics, and gives the same answer twice (the parsers are pure).
fn survives(name: &str, data: &[u8]) -> Result<(), TestCaseError> {
    let what = format!(
        "{} generated bytes {:?}",
        data.len(),
        String::from_utf8_lossy(data)
    );
    let first = run(name, &what, data);
    let again = run(name, &what, data);
    prop_assert_eq!(first, again);
    Ok(())
}

macro_rules! mutation_tests {
    ($($name:ident),* $(,)?) => {$(
        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 3000,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]
            #[test]
            fn $name(data in input(stringify!($name))) {
                survives(stringify!($name), &data)?;
            }
        }
    )*};
}

mod mutated_seeds {
    use super::*;
    mutation_tests!(
        config,
        policy_file,
        exec_reply,
        http_reply,
        incident_file,
        pagerduty,
        opsgenie,
        incident_http,
        broker_call,
    );
}
