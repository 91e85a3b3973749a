//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, nightly) and for
//! `tests/it/fuzz_seeds.rs` (stable): one function per target, each feeding raw
//! bytes to the real parsing code of one kind of untrusted input. None of them
//! may panic, whatever the bytes; each returns a short summary so the seed
//! tests can check that valid inputs are read as valid.
//!
//! - `config`: a config file (`breakglass.toml`), through `config::load_any_str`
//!   (a whole config, or a person's client config naming only the broker).
//! - `policy_file`: the policy file a config names (`policy = "policy.toml"`).
//! - `exec_reply`: what an exec plugin prints (stdout reply, stderr message).
//! - `http_reply`: the HTTP backend's answer; an optional first line
//!   `HTTP <status>` sets the status (default 200), the rest is the body.
//! - `incident_file`: a `file` incident source, read as JSON and as TOML.
//! - `pagerduty`, `opsgenie`: listing replies, one JSON document per page
//!   (concatenated), through the real paging loop; also each page as a lookup
//!   reply and as an error body.
//! - `incident_http`: a generic HTTP source's reply, read with two field maps
//!   (the incident sources chapter's and a flat one); also as an error body and, first line, as
//!   a `Retry-After` header.
//! - `broker_call`: the bytes a client sends the broker's socket, framed and
//!   parsed as `breakglass.broker/v1` calls (and as replies).
//!
//! Not a stable API: it exists for fuzzing only.

use crate::backend::{exec, http as http_backend};
use crate::config::{FieldMap, RemoteSource};
use crate::incident::{
    file::FileSource, http::HttpSource, opsgenie::OpsgenieSource, pagerduty::PagerDutySource,
    remote, SourceError,
};
use serde_json::Value;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// What one input came to: `Ok(n)` when it was read as valid (`n`: roles,
/// credential fields or incidents read), `Err(message)` when it was refused.
pub type Outcome = Result<usize, String>;

/// One fuzzing entry point.
pub type Target = fn(&[u8]) -> Outcome;

/// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs`.
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("policy_file", policy_file),
    ("exec_reply", exec_reply),
    ("http_reply", http_reply),
    ("incident_file", incident_file),
    ("pagerduty", pagerduty),
    ("opsgenie", opsgenie),
    ("incident_http", incident_http),
    ("broker_call", broker_call),
];

/// Listing pages taken from one input at most.
const MAX_PAGES: usize = 16;
/// `max_incidents` when a source does not set it (as in `config`).
const DEFAULT_MAX_INCIDENTS: usize = 10_000;

/// Whether `text` (TOML) names, under one of `keys` at its top level, a file
/// outside the directory it is resolved against. Validation reads the policy
/// and allowed_signers files it names; a fuzzer must not make it read
/// `/dev/zero` or a large file elsewhere on the machine, so such inputs are
/// skipped. Only these keys lead to reads (files holding secrets, such as
/// `url_file`, are only looked at: their mode, never their contents).
fn names_outside_file(text: &str, keys: &[&str]) -> bool {
    let Ok(table) = text.parse::<toml::Table>() else {
        return false; // not TOML: validation stops before reading anything
    };
    keys.iter().any(|k| match table.get(*k) {
        Some(toml::Value::String(p)) => !Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir)),
        _ => false,
    })
}

fn summary(r: Result<crate::config::Config, crate::config::Problems>) -> Outcome {
    r.map(|c| c.policy.roles.len()).map_err(|p| p.to_string())
}

/// A config file. Relative paths in it resolve under a directory that does not
/// exist, so nothing on the machine is read.
pub fn config(data: &[u8]) -> Outcome {
    let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
    if names_outside_file(text, &["policy", "allowed_signers"]) {
        return Err("skipped: names a file outside the config's directory".into());
    }
    let path = Path::new("/nonexistent/breakglass-fuzz/breakglass.toml");
    match crate::config::load_any_str(text, path) {
        Ok(crate::config::Loaded::Full(c)) => Ok(c.policy.roles.len()),
        // A person's client config: no roles of its own.
        Ok(crate::config::Loaded::Client(_)) => Ok(0),
        Err(p) => Err(p.to_string()),
    }
}

/// The config `policy_file` validates: it names `policy.toml` beside it and has
/// the backends the seed policies use.
const POLICY_CONFIG: &str = r#"policy = "policy.toml"

[store]
kind = "sqlite"
path = "breakglass.sqlite"

[backends.demo]
kind = "demo"

[backends.plugin]
kind = "exec"
command = "plugins/exec-plugin.sh"
timeout = "10s"
"#;

thread_local! {
    /// One directory per thread: parallel tests must not share `policy.toml`.
    static POLICY_DIR: Option<tempfile::TempDir> = tempfile::Builder::new()
        .prefix("breakglass-fuzz-")
        .tempdir()
        .ok();
}

/// A policy file, written beside a fixed config that names it.
pub fn policy_file(data: &[u8]) -> Outcome {
    if let Ok(text) = std::str::from_utf8(data) {
        if names_outside_file(text, &["allowed_signers"]) {
            return Err("skipped: names a file outside the policy's directory".into());
        }
    }
    let dir: PathBuf = POLICY_DIR
        .with(|d| d.as_ref().map(|d| d.path().to_path_buf()))
        .ok_or("skipped: no temporary directory")?;
    std::fs::write(dir.join("policy.toml"), data).map_err(|e| format!("skipped: {e}"))?;
    summary(crate::config::load_str(
        POLICY_CONFIG,
        &dir.join("breakglass.toml"),
    ))
}

/// What an exec plugin printed: stdout as the reply to a grant (and to a
/// check), the same bytes as stderr, which becomes an error message.
pub fn exec_reply(data: &[u8]) -> Outcome {
    let _stderr_message = exec::clean(&String::from_utf8_lossy(data));
    let reply = exec::parse_reply("grant", data).map_err(|e| e.to_string())?;
    let _check_message = exec::clean(reply.message.as_deref().unwrap_or("ok"));
    Ok(reply
        .into_grant()
        .map(|g| g.credential.0.len())
        .unwrap_or(0))
}

/// An HTTP backend answer: `HTTP <status>\n` then the body, or just a body
/// (status 200).
pub fn http_reply(data: &[u8]) -> Outcome {
    let (status, body) = match data.strip_prefix(b"HTTP ") {
        Some(rest) if rest.len() >= 4 && rest[3] == b'\n' => {
            match std::str::from_utf8(&rest[..3])
                .ok()
                .and_then(|s| s.parse().ok())
            {
                Some(s) => (s, &rest[4..]),
                None => (200, data),
            }
        }
        _ => (200, data),
    };
    let reply = http_backend::read_reply("grant", status, body).map_err(|a| a.error.to_string())?;
    let _check_message = exec::clean(reply.message.as_deref().unwrap_or("ok"));
    Ok(reply
        .into_grant()
        .map(|g| g.credential.0.len())
        .unwrap_or(0))
}

/// A `file` incident source's file, as `incidents.json` and as `incidents.toml`:
/// the number of incidents read by either.
pub fn incident_file(data: &[u8]) -> Outcome {
    static SOURCES: OnceLock<[FileSource; 2]> = OnceLock::new();
    let sources = SOURCES.get_or_init(|| {
        ["incidents.json", "incidents.toml"]
            .map(|p| FileSource::new("fuzz".into(), PathBuf::from(p)))
    });
    let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
    for s in sources {
        same_lookups(s, text);
    }
    first_ok(sources.iter().map(|s| s.parse(text).map(|l| l.len())))
}

/// A lookup (which may read one block of the file) finds what a search of the
/// whole parsed file finds: for the ids in it, for every quoted string in the
/// text (ids the lookup might wrongly see), and for one that is nowhere.
fn same_lookups(source: &FileSource, text: &str) {
    let Ok(all) = source.parse(text) else {
        return;
    };
    // Between any two quotes, inside strings or not (a `'''` shifts them).
    let quoted = text
        .split(['"', '\''])
        .filter(|s| !s.is_empty() && s.len() <= 64 && !s.contains('\n'));
    let mut ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).take(16).collect();
    ids.extend(quoted.take(64));
    ids.push("no-such-incident");
    for id in ids {
        let whole = all.iter().find(|i| i.id == id);
        let looked_up = source.lookup_in(text, id);
        assert!(
            matches!(&looked_up, Ok(l) if l.as_ref() == whole),
            "lookup of {id:?} gave {looked_up:?}, the whole file {whole:?}"
        );
    }
}

/// The first success, else every error. Every reading runs, whatever the
/// first one came to.
fn first_ok(results: impl Iterator<Item = Result<usize, SourceError>>) -> Outcome {
    let results: Vec<_> = results.collect();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(n) => return Ok(n),
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(errors.join("; "))
}

fn remote_settings(url: &str, max_incidents: usize) -> RemoteSource {
    RemoteSource {
        url: url.into(),
        token_env: None,
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        max_incidents,
    }
}

/// The JSON documents in `data`, one per page, up to the first that is not JSON.
fn pages(data: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(data)
        .into_iter::<Value>()
        .take(MAX_PAGES)
        .map_while(Result::ok)
        .collect()
}

/// What the paging loops fetch pages with here.
type Fetch<'p> = Box<dyn FnMut(usize) -> std::future::Ready<Result<Value, SourceError>> + 'p>;

/// Runs a paging loop over `pages`: page N answers the Nth fetch; past the
/// last, the fetch fails as a dead connection would. Offsets must grow.
fn list_from<'p, Fut>(
    pages: &'p [Value],
    list: impl FnOnce(Fetch<'p>) -> Fut,
) -> Result<usize, SourceError>
where
    Fut: std::future::Future<Output = Result<Vec<crate::incident::Incident>, SourceError>>,
{
    let mut next = pages.iter();
    let mut last: Option<usize> = None;
    let fetch: Fetch<'p> = Box::new(move |offset: usize| {
        assert!(
            last.is_none_or(|l| offset > l),
            "the listing asked for offset {offset} after {last:?}"
        );
        last = Some(offset);
        std::future::ready(next.next().cloned().ok_or_else(|| SourceError {
            source_name: "fuzz".into(),
            message: "no more pages in the input".into(),
        }))
    });
    futures::executor::block_on(list(fetch)).map(|l| l.len())
}

/// The parts every remote source shares: error bodies and `Retry-After`.
fn remote_extras(data: &[u8]) {
    let _ = remote::api_message(data);
    let first_line = data.split(|b| *b == b'\n').next().unwrap_or_default();
    if let Ok(v) = reqwest::header::HeaderValue::from_bytes(first_line) {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, v);
        let _ = remote::human(remote::retry_after(&h));
    }
}

/// PagerDuty listing pages (`{"incidents": [...], "more": ..., "limit": ...}`),
/// with a small and the default `max_incidents`; each page also as the reply
/// to a lookup (`{"incident": {...}}`).
pub fn pagerduty(data: &[u8]) -> Outcome {
    static SOURCES: OnceLock<[PagerDutySource; 2]> = OnceLock::new();
    let sources = SOURCES.get_or_init(|| {
        [5, DEFAULT_MAX_INCIDENTS].map(|max| {
            PagerDutySource::new(
                "fuzz".into(),
                remote_settings("https://api.pagerduty.com", max),
            )
        })
    });
    remote_extras(data);
    let pages = pages(data);
    for p in &pages {
        if let Some(item) = p.get("incident") {
            let _ = sources[0].parse(item);
        }
    }
    first_ok(
        sources
            .iter()
            .map(|s| list_from(&pages, |fetch| s.list_pages(fetch))),
    )
}

/// Opsgenie listing pages (`{"data": [...], "paging": {"next": URL}}`), with a
/// small and the default `max_incidents`; each page also as the reply to a
/// lookup (`{"data": {...}}`).
pub fn opsgenie(data: &[u8]) -> Outcome {
    static SOURCES: OnceLock<[OpsgenieSource; 2]> = OnceLock::new();
    let sources = SOURCES.get_or_init(|| {
        [5, DEFAULT_MAX_INCIDENTS].map(|max| {
            OpsgenieSource::new(
                "fuzz".into(),
                remote_settings("https://api.opsgenie.com", max),
            )
        })
    });
    remote_extras(data);
    let pages = pages(data);
    for p in &pages {
        if let Some(item @ Value::Object(_)) = p.get("data") {
            let _ = sources[0].parse(item);
        }
    }
    first_ok(
        sources
            .iter()
            .map(|s| list_from(&pages, |fetch| s.list_pages(fetch))),
    )
}

/// A generic HTTP source's reply, read with the docs' field map (list at
/// `data.incidents`) and with a flat one (the reply is the list).
pub fn incident_http(data: &[u8]) -> Outcome {
    static SOURCES: OnceLock<[HttpSource; 2]> = OnceLock::new();
    let sources = SOURCES.get_or_init(|| {
        let open = ["open", "triggered", "acknowledged"]
            .map(String::from)
            .to_vec();
        let path = |s: &str| Some(s.to_string());
        [
            HttpSource::new(
                "fuzz".into(),
                remote_settings("https://status.example.com/api/incidents", 5),
                path("data.incidents"),
                FieldMap {
                    id: "number".into(),
                    title: "attributes.name".into(),
                    severity: path("meta.sev"),
                    status: path("attributes.state"),
                    url: path("links.0.href"),
                    opened_at: path("created_at"),
                },
                open.clone(),
            ),
            HttpSource::new(
                "fuzz".into(),
                remote_settings(
                    "https://status.example.com/api/incidents",
                    DEFAULT_MAX_INCIDENTS,
                ),
                None,
                FieldMap {
                    id: "id".into(),
                    title: "title".into(),
                    severity: path("severity"),
                    status: path("status"),
                    url: path("url"),
                    opened_at: path("opened_at"),
                },
                open,
            ),
        ]
    });
    remote_extras(data);
    let v: Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    first_ok(sources.iter().map(|s| s.items(&v).map(|l| l.len())))
}

/// What a client can send the broker (`breakglass.broker/v1`): the input is the
/// byte stream on the socket, read frame by frame (bounded) and parsed as calls
/// the way the broker does; each frame is also read as a reply, as a client would.
/// `Ok(n)`: n calls were valid.
pub fn broker_call(data: &[u8]) -> Outcome {
    use crate::service::protocol::{parse_call, read_frame, Reply, MAX_CALL_BYTES};
    futures::executor::block_on(async {
        let mut stream = data;
        let mut valid = 0;
        loop {
            match read_frame(&mut stream, MAX_CALL_BYTES).await {
                Ok(Some(frame)) => {
                    let _ = serde_json::from_slice::<Reply>(&frame);
                    match parse_call(&frame) {
                        Ok(_) => valid += 1,
                        Err(e) if valid == 0 => return Err(e.message),
                        Err(_) => return Ok(valid),
                    }
                }
                Ok(None) => return Ok(valid),
                Err(e) if valid == 0 => return Err(e.to_string()),
                Err(_) => return Ok(valid),
            }
        }
    })
}
