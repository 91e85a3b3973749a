//! `[[incident_sources]]`: file, pagerduty, opsgenie and http, each problem with
//! its line and what to write instead.

use super::super::raw::RawSource;
use super::super::*;
use super::{parse_duration, Ctx};
use toml::Spanned;

pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: u64 = 10;
pub const DEFAULT_CONNECT_TIMEOUT: u64 = 5;
pub const DEFAULT_MAX_INCIDENTS: usize = 10_000;
const MAX_MAX_INCIDENTS: i64 = 100_000;
const FIELD_KEYS: [&str; 6] = ["id", "title", "severity", "status", "url", "opened_at"];

fn default_open_values() -> Vec<String> {
    ["open", "triggered", "acknowledged"]
        .map(String::from)
        .to_vec()
}

/// `[[incident_sources]]`: names are unique and each table is a complete source.
pub(super) fn sources(
    ctx: &mut Ctx,
    raw: &[Spanned<RawSource>],
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Vec<SourceConfig> {
    let mut out = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for s in raw {
        let name = &s.get_ref().name;
        if !names.insert(name.get_ref().clone()) {
            ctx.at(
                name,
                format!(
                    "incident source \"{}\" is defined twice; give each a unique name",
                    name.get_ref()
                ),
            );
        }
        if let Some(c) = source(ctx, s, resolve) {
            out.push(c);
        }
    }
    out
}

/// One `[[incident_sources]]` table, or `None` after recording its problems.
pub(super) fn source(
    ctx: &mut Ctx,
    s: &Spanned<RawSource>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<SourceConfig> {
    let src = s.get_ref();
    let name = src.name.get_ref().clone();
    let before = ctx.problems.len();
    no_inline_tokens(ctx, src);
    foreign_keys(ctx, src);
    let cache_ttl = cache_ttl(ctx, src);
    let kind = kind(ctx, s, resolve)?;
    (ctx.problems.len() == before).then_some(SourceConfig {
        name,
        kind,
        cache_ttl,
    })
}

/// No `token` or `api_key`: the config is read by many and often committed.
fn no_inline_tokens(ctx: &mut Ctx, src: &RawSource) {
    let name = src.name.get_ref();
    for t in [&src.token, &src.api_key].into_iter().flatten() {
        ctx.at(
            t,
            format!(
                "incident source \"{name}\": tokens never go in the config file; write token_env = \"{}\" and set that variable",
                suggested_env(src.kind.get_ref())
            ),
        );
    }
}

/// Keys that do not apply to this kind are mistakes, not decoration.
fn foreign_keys(ctx: &mut Ctx, src: &RawSource) {
    let name = src.name.get_ref();
    let kind = src.kind.get_ref().as_str();
    let allowed: &[&str] = match kind {
        "file" => &["path"],
        "pagerduty" | "opsgenie" => &[
            "base_url",
            "token_env",
            "timeout",
            "connect_timeout",
            "max_incidents",
        ],
        "http" => &[
            "url",
            "token_env",
            "timeout",
            "connect_timeout",
            "max_incidents",
            "items_path",
            "fields",
            "open_values",
        ],
        // An unknown kind is reported once, by `kind`.
        _ => return,
    };
    let present: [(&str, Option<usize>); 10] = [
        ("path", src.path.as_ref().map(|v| v.span().start)),
        ("base_url", src.base_url.as_ref().map(|v| v.span().start)),
        ("url", src.url.as_ref().map(|v| v.span().start)),
        ("token_env", src.token_env.as_ref().map(|v| v.span().start)),
        ("timeout", src.timeout.as_ref().map(|v| v.span().start)),
        (
            "connect_timeout",
            src.connect_timeout.as_ref().map(|v| v.span().start),
        ),
        (
            "max_incidents",
            src.max_incidents.as_ref().map(|v| v.span().start),
        ),
        (
            "items_path",
            src.items_path.as_ref().map(|v| v.span().start),
        ),
        ("fields", src.fields.as_ref().map(|v| v.span().start)),
        (
            "open_values",
            src.open_values.as_ref().map(|v| v.span().start),
        ),
    ];
    for (key, at) in present {
        let Some(offset) = at else { continue };
        if allowed.contains(&key) {
            continue;
        }
        let hint = match (kind, key) {
            ("pagerduty" | "opsgenie", "url") => "; write base_url = \"https://...\"",
            ("http", "base_url") => "; write url = \"https://.../incidents\"",
            _ => "",
        };
        let line = Some(ctx.line_of(offset));
        ctx.problems.push(Problem {
            file: ctx.file.clone(),
            line,
            message: format!(
                "incident source \"{name}\": {key} does not apply to kind = \"{kind}\"{hint}"
            ),
        });
    }
}

/// `cache_ttl`: a duration up to an hour; by default none for a file (read in
/// microseconds and edited by hand) and 10 s for a remote source.
fn cache_ttl(ctx: &mut Ctx, src: &RawSource) -> Duration {
    let default_ttl = if src.kind.get_ref() == "file" {
        Duration::ZERO
    } else {
        DEFAULT_CACHE_TTL
    };
    let Some(t) = &src.cache_ttl else {
        return default_ttl;
    };
    match humantime::parse_duration(t.get_ref().trim()) {
        Ok(d) if d <= Duration::from_secs(3600) => d,
        _ => {
            ctx.at(
                t,
                format!(
                    "cache_ttl = \"{}\" is not a duration up to 1h; write e.g. \"10s\", or \"0s\" to always ask the source",
                    t.get_ref()
                ),
            );
            default_ttl
        }
    }
}

/// `kind`: one of file, pagerduty, opsgenie and http, with what it needs.
fn kind(
    ctx: &mut Ctx,
    s: &Spanned<RawSource>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<SourceKind> {
    let src = s.get_ref();
    match src.kind.get_ref().as_str() {
        "file" => match &src.path {
            Some(p) => Some(SourceKind::File {
                path: resolve(p.get_ref()),
            }),
            None => {
                ctx.at(s, "a file incident source needs path = \"incidents.toml\"");
                None
            }
        },
        "pagerduty" => Some(SourceKind::PagerDuty(remote(
            ctx,
            s,
            &src.base_url,
            Some("https://api.pagerduty.com"),
            true,
        )?)),
        "opsgenie" => Some(SourceKind::Opsgenie(remote(
            ctx,
            s,
            &src.base_url,
            Some("https://api.opsgenie.com"),
            true,
        )?)),
        "http" => http(ctx, s),
        other => {
            ctx.at(
                &src.kind,
                format!(
                    "incident source kind \"{other}\" is not known; write kind = \"file\", \"pagerduty\", \"opsgenie\" or \"http\""
                ),
            );
            None
        }
    }
}

/// A generic HTTP source: the remote settings, where the items are, which
/// field is which, and the status values that mean open.
fn http(ctx: &mut Ctx, s: &Spanned<RawSource>) -> Option<SourceKind> {
    let src = s.get_ref();
    // Every part is checked before giving up, so all problems show at once.
    let remote = remote(ctx, s, &src.url, None, false);
    let items_path = src.items_path.as_ref().and_then(|p| {
        dotted(ctx, p, p.get_ref(), "items_path").then(|| p.get_ref().trim().to_string())
    });
    let fields = fields(ctx, s);
    let open_values = match &src.open_values {
        None => default_open_values(),
        Some(v) if v.get_ref().iter().any(|x| !x.trim().is_empty()) => v
            .get_ref()
            .iter()
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
        Some(v) => {
            ctx.at(
                v,
                "open_values must list at least one status value, e.g. [\"open\", \"acknowledged\"]",
            );
            return None;
        }
    };
    Some(SourceKind::Http {
        remote: remote?,
        items_path,
        fields: fields?,
        open_values,
    })
}

fn suggested_env(kind: &str) -> &'static str {
    match kind {
        "pagerduty" => "PAGERDUTY_TOKEN",
        "opsgenie" => "OPSGENIE_API_KEY",
        _ => "INCIDENTS_TOKEN",
    }
}

/// URL, token variable, timeouts and cap, shared by every HTTP source.
fn remote(
    ctx: &mut Ctx,
    s: &Spanned<RawSource>,
    url: &Option<Spanned<String>>,
    default_url: Option<&str>,
    token_required: bool,
) -> Option<RemoteSource> {
    let src = s.get_ref();
    let name = src.name.get_ref();
    let kind = src.kind.get_ref();
    let before = ctx.problems.len();
    let token_env = match &src.token_env {
        Some(e) if is_env_name(e.get_ref()) => Some(e.get_ref().clone()),
        Some(e) => {
            ctx.at(
                e,
                format!(
                    "token_env = \"{}\" is not an environment variable name; write e.g. token_env = \"{}\"",
                    e.get_ref(),
                    suggested_env(kind)
                ),
            );
            None
        }
        None if token_required => {
            ctx.at(
                s,
                format!(
                    "incident source \"{name}\" ({kind}) needs token_env = \"{}\", the variable holding its API token",
                    suggested_env(kind)
                ),
            );
            None
        }
        None => None,
    };
    let url_text = match (url, default_url) {
        (Some(u), _) => {
            check_url(ctx, u, token_env.is_some() || token_required);
            u.get_ref().trim().trim_end_matches('/').to_string()
        }
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            ctx.at(
                s,
                format!(
                    "incident source \"{name}\" ({kind}) needs url = \"https://.../incidents\", the address of the list"
                ),
            );
            String::new()
        }
    };
    let timeout = src
        .timeout
        .as_ref()
        .map(|t| parse_duration(ctx, t, "timeout").unwrap_or(DEFAULT_TIMEOUT as i64) as u64)
        .unwrap_or(DEFAULT_TIMEOUT);
    let connect_timeout = src
        .connect_timeout
        .as_ref()
        .map(|t| {
            parse_duration(ctx, t, "connect_timeout").unwrap_or(DEFAULT_CONNECT_TIMEOUT as i64)
                as u64
        })
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT.min(timeout));
    let max_incidents = match &src.max_incidents {
        None => DEFAULT_MAX_INCIDENTS,
        Some(n) if (1..=MAX_MAX_INCIDENTS).contains(n.get_ref()) => *n.get_ref() as usize,
        Some(n) => {
            ctx.at(
                n,
                format!("max_incidents must be between 1 and {MAX_MAX_INCIDENTS}"),
            );
            DEFAULT_MAX_INCIDENTS
        }
    };
    (ctx.problems.len() == before).then_some(RemoteSource {
        url: url_text,
        token_env,
        timeout: Duration::from_secs(timeout),
        connect_timeout: Duration::from_secs(connect_timeout),
        max_incidents,
    })
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// https, or http only to this machine when a token is sent; never credentials
/// in the URL.
fn check_url(ctx: &mut Ctx, u: &Spanned<String>, sends_token: bool) {
    let text = u.get_ref().trim();
    let parsed = match reqwest::Url::parse(text) {
        Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => p,
        _ => {
            ctx.at(
                u,
                format!("\"{text}\" is not an http(s) URL; write e.g. \"https://api.example.com\""),
            );
            return;
        }
    };
    if super::urls::refuse_credentials(
        ctx,
        u,
        "incident source url",
        "put the token in an environment variable and name it in token_env",
    ) {
        return;
    }
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    if parsed.scheme() == "http" && sends_token && !loopback {
        ctx.at(
            u,
            format!(
                "\"{text}\" would send the token unencrypted; use https:// (http:// is accepted only for localhost)"
            ),
        );
    }
}

/// A dotted path like `data.items` or `fields.0.name`: no empty segments.
fn dotted<T>(ctx: &mut Ctx, at: &Spanned<T>, text: &str, what: &str) -> bool {
    let t = text.trim();
    if t.is_empty()
        || t.split('.')
            .any(|seg| seg.trim().is_empty() || seg != seg.trim())
    {
        ctx.at(
            at,
            format!("{what} = \"{text}\" is not a dotted path; write e.g. \"data.incidents\""),
        );
        return false;
    }
    true
}

fn fields(ctx: &mut Ctx, s: &Spanned<RawSource>) -> Option<FieldMap> {
    let src = s.get_ref();
    let Some(f) = &src.fields else {
        ctx.at(
            s,
            format!(
                "incident source \"{}\" (http) needs fields = {{ id = \"id\", title = \"title\" }} (also severity, status, url, opened_at), the dotted path of each in one item",
                src.name.get_ref()
            ),
        );
        return None;
    };
    let before = ctx.problems.len();
    let map = f.get_ref();
    for (k, v) in map {
        if !FIELD_KEYS.contains(&k.as_str()) {
            ctx.at(
                f,
                format!(
                    "fields: \"{k}\" is not a field; map some of: {}",
                    FIELD_KEYS.join(", ")
                ),
            );
        } else {
            dotted(ctx, f, v, &format!("fields.{k}"));
        }
    }
    for required in ["id", "title"] {
        if !map.contains_key(required) {
            ctx.at(
                f,
                format!("fields needs {required} = \"<dotted path in one item>\""),
            );
        }
    }
    let get = |k: &str| map.get(k).map(|v| v.trim().to_string());
    (ctx.problems.len() == before).then(|| FieldMap {
        id: get("id").unwrap_or_default(),
        title: get("title").unwrap_or_default(),
        severity: get("severity"),
        status: get("status"),
        url: get("url"),
        opened_at: get("opened_at"),
    })
}
