//! What the HTTP incident sources share: the client (connect and total
//! timeouts, no redirects so the token never follows one), the token read from
//! its environment variable at every call, `429` handling with a bounded wait,
//! a cap on the reply size, errors an operator can act on, reading JSON fields
//! with messages that name the field, and the pager that reads an offset-paged
//! listing.

use super::config::RemoteSource;
use super::*;
use crate::sanitize;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// One reply larger than this is refused (10,000 incidents are ~5 MB).
pub(crate) const MAX_BODY: usize = 32 << 20;
/// The longest `Retry-After` honoured; a longer one fails with a clear error.
pub(crate) const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
/// 429 answers retried per call before giving up.
pub(crate) const MAX_RATE_LIMIT_RETRIES: u32 = 2;
pub(crate) const ID_CHARS: usize = 64;
pub(crate) const TITLE_CHARS: usize = 200;
pub(crate) const SEVERITY_CHARS: usize = 16;
pub(crate) const URL_CHARS: usize = 300;
/// Items asked for per page of a paged listing.
pub(crate) const PAGE: usize = 100;
/// Messages quoted from an API's error body.
const MESSAGE_CHARS: usize = 200;

#[derive(Clone, Copy)]
pub(crate) enum Auth {
    /// `Authorization: Token token=<token>`
    PagerDuty,
    /// `Authorization: GenieKey <key>`
    Opsgenie,
    /// `Authorization: Bearer <token>`, only when token_env is set.
    Bearer,
}

pub(crate) enum Reply {
    Json(Value),
    NotFound,
}

pub(crate) struct Remote {
    pub name: String,
    /// "PagerDuty", "Opsgenie", "the incident API": used in messages.
    pub service: &'static str,
    pub settings: RemoteSource,
    auth: Auth,
    /// The client, or why it could not be built (said on each use).
    client: reqwest::Result<reqwest::Client>,
    warnings: Mutex<Vec<String>>,
}

impl Remote {
    pub fn new(name: String, service: &'static str, settings: RemoteSource, auth: Auth) -> Self {
        let client = crate::net::http::client(settings.timeout, settings.connect_timeout);
        Remote {
            name,
            service,
            settings,
            auth,
            client,
            warnings: Mutex::new(Vec::new()),
        }
    }

    pub fn error(&self, message: impl Into<String>) -> SourceError {
        SourceError {
            source_name: self.name.clone(),
            message: message.into(),
        }
    }

    pub fn url(&self, text: &str) -> Result<Url, SourceError> {
        Url::parse(text).map_err(|e| self.error(format!("\"{text}\" is not a URL: {e}")))
    }

    /// Runs one listing or lookup within the source's total timeout; the
    /// deadline is handed in so rate-limit waits never overrun it.
    pub async fn bounded<T, F, Fut>(&self, f: F) -> Result<T, SourceError>
    where
        F: FnOnce(Instant) -> Fut,
        Fut: Future<Output = Result<T, SourceError>>,
    {
        let deadline = Instant::now() + self.settings.timeout;
        match tokio::time::timeout_at(deadline, f(deadline)).await {
            Ok(r) => r,
            Err(_) => Err(self.error(format!(
                "{} did not answer within {} (timeout)",
                self.service,
                human(self.settings.timeout)
            ))),
        }
    }

    pub fn set_warnings(&self, warnings: Vec<String>) {
        for w in &warnings {
            tracing::warn!("incident source {}: {w}", self.name);
        }
        if let Ok(mut g) = self.warnings.lock() {
            *g = warnings;
        }
    }

    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().map(|g| g.clone()).unwrap_or_default()
    }

    fn token_env_hint(&self) -> String {
        match &self.settings.token_env {
            Some(e) => format!("the token in ${e}"),
            None => "the request (no token_env is set)".into(),
        }
    }

    fn auth_header(&self) -> Result<Option<HeaderValue>, SourceError> {
        let Some(env) = &self.settings.token_env else {
            return Ok(None);
        };
        let token = std::env::var(env).unwrap_or_default();
        let token = token.trim();
        if token.is_empty() {
            return Err(self.error(format!(
                "environment variable {env} (token_env) is not set; export the {} token in it",
                self.service
            )));
        }
        let text = match self.auth {
            Auth::PagerDuty => format!("Token token={token}"),
            Auth::Opsgenie => format!("GenieKey {token}"),
            Auth::Bearer => format!("Bearer {token}"),
        };
        let mut v = HeaderValue::from_str(&text).map_err(|_| {
            self.error(format!(
                "the token in ${env} has characters an HTTP header cannot carry"
            ))
        })?;
        v.set_sensitive(true);
        Ok(Some(v))
    }

    /// GETs `url` and parses the JSON reply. 404 is `NotFound`; 429 is retried
    /// after `Retry-After` (at most `MAX_RETRY_WAIT`, twice, within `deadline`);
    /// every other failure is an error that says what to do.
    pub async fn get_json(
        &self,
        url: &Url,
        accept: &str,
        deadline: Instant,
    ) -> Result<Reply, SourceError> {
        let client = self.client.as_ref().map_err(|e| {
            self.error(format!(
                "cannot set up an HTTP client: {}",
                crate::net::http::error_chain(e)
            ))
        })?;
        let auth = self.auth_header()?;
        let mut rate_limited = 0;
        loop {
            let mut req = client.get(url.clone()).header(ACCEPT, accept);
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a.clone());
            }
            let resp = req.send().await.map_err(|e| self.transport(url, e))?;
            let status = resp.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(resp.headers());
                rate_limited += 1;
                let remaining = deadline.saturating_duration_since(Instant::now());
                if rate_limited > MAX_RATE_LIMIT_RETRIES
                    || wait > MAX_RETRY_WAIT
                    || wait >= remaining
                {
                    return Err(self.error(format!(
                        "{} is rate limiting breakglass (HTTP 429, retry after {}); try again shortly",
                        self.service,
                        human(wait)
                    )));
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            let headers_location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|s| sanitize::line(s, URL_CHARS));
            let body = self.read_capped(url, resp).await?;
            return match status.as_u16() {
                200..=299 => serde_json::from_slice(&body).map(Reply::Json).map_err(|e| {
                    self.error(format!(
                        "{} answered {} with something that is not JSON ({e})",
                        self.service,
                        path_of(url)
                    ))
                }),
                404 => Ok(Reply::NotFound),
                300..=399 => Err(self.error(format!(
                    "{} redirected {} (HTTP {}){}; breakglass does not follow redirects with a token: set the final address in the config",
                    self.service,
                    path_of(url),
                    status.as_u16(),
                    headers_location.map(|l| format!(" to {l}")).unwrap_or_default()
                ))),
                401 => Err(self.error(format!(
                    "{} rejected {} (HTTP 401{}); check the token",
                    self.service,
                    self.token_env_hint(),
                    api_message(&body)
                ))),
                403 => Err(self.error(format!(
                    "{} refused {} access to incidents (HTTP 403{}); the token needs read access",
                    self.service,
                    self.token_env_hint(),
                    api_message(&body)
                ))),
                500..=599 => Err(self.error(format!(
                    "{} is failing (HTTP {}{})",
                    self.service,
                    status.as_u16(),
                    api_message(&body)
                ))),
                code => Err(self.error(format!(
                    "{} refused {} (HTTP {code}{})",
                    self.service,
                    path_of(url),
                    api_message(&body)
                ))),
            };
        }
    }

    async fn read_capped(
        &self,
        url: &Url,
        resp: reqwest::Response,
    ) -> Result<Vec<u8>, SourceError> {
        let too_big = || {
            self.error(format!(
                "{} sent a reply larger than {} MiB; lower the page size or max_incidents",
                self.service,
                MAX_BODY >> 20
            ))
        };
        match crate::net::http::read_capped(resp, MAX_BODY).await {
            Ok(body) => Ok(body.to_vec()),
            Err(crate::net::http::ReadError::TooLarge) => Err(too_big()),
            Err(crate::net::http::ReadError::Transport(e)) => Err(self.transport(url, e)),
        }
    }

    /// A transport failure, without the URL's query (a generic source's URL
    /// may carry a key there).
    fn transport(&self, url: &Url, e: reqwest::Error) -> SourceError {
        let e = e.without_url();
        if e.is_timeout() {
            return self.error(format!(
                "{} did not answer within {} (timeout)",
                self.service,
                human(self.settings.timeout)
            ));
        }
        let what = if e.is_connect() {
            "cannot connect to"
        } else {
            "request failed to"
        };
        self.error(sanitize::line(
            &format!(
                "{what} {}: {}",
                url.origin().ascii_serialization(),
                crate::net::http::error_chain(&e)
            ),
            500,
        ))
    }

    /// Turns per-item results into the listing: malformed items are skipped with
    /// a warning; if none of a non-empty reply could be read, it is an error.
    pub fn finish(
        &self,
        items: Vec<Result<Incident, String>>,
        truncated: bool,
        mut warnings: Vec<String>,
    ) -> Result<Vec<Incident>, SourceError> {
        let total = items.len();
        let mut ok = Vec::with_capacity(total);
        let mut bad = Vec::new();
        for it in items {
            match it {
                Ok(i) => ok.push(i),
                Err(m) => bad.push(m),
            }
        }
        if ok.is_empty() && !bad.is_empty() {
            let e = self.error(format!(
                "none of the {total} incidents {} sent could be read; first problem: {}",
                self.service, bad[0]
            ));
            self.set_warnings(vec![]);
            return Err(e);
        }
        if !bad.is_empty() {
            warnings.push(format!(
                "skipped {} of {total} incidents that could not be read; first problem: {}",
                bad.len(),
                bad[0]
            ));
        }
        if truncated {
            warnings.push(format!(
                "more than {} incidents; listing the first {} (max_incidents)",
                self.settings.max_incidents, self.settings.max_incidents
            ));
        }
        self.set_warnings(warnings);
        Ok(ok)
    }
}

pub(crate) fn human(d: Duration) -> String {
    if d.subsec_millis() != 0 && d.as_secs() < 10 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        crate::domain::time::human(d.as_secs() as i64)
    }
}

fn path_of(url: &Url) -> String {
    sanitize::line(url.path(), 100)
}

/// `Retry-After` in seconds or as an HTTP date; 1 s when absent or unreadable.
pub(crate) fn retry_after(h: &HeaderMap) -> Duration {
    let Some(v) = h.get(RETRY_AFTER).and_then(|v| v.to_str().ok()) else {
        return Duration::from_secs(1);
    };
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Duration::from_secs(secs);
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc2822(v) {
        let secs = (at.with_timezone(&Utc) - Utc::now())
            .num_milliseconds()
            .max(0);
        return Duration::from_millis(secs as u64);
    }
    Duration::from_secs(1)
}

/// The message of an API's error body (PagerDuty `{"error": {"message",
/// "errors"}}`, Opsgenie `{"message"}`, or plain text), as ": message".
pub(crate) fn api_message(body: &[u8]) -> String {
    let msg = match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let mut parts: Vec<String> = Vec::new();
            let main = v
                .pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("error").filter(|e| e.is_string()))
                .and_then(Value::as_str);
            if let Some(m) = main {
                parts.push(m.to_string());
            }
            if let Some(errs) = v.pointer("/error/errors").and_then(Value::as_array) {
                parts.extend(errs.iter().filter_map(Value::as_str).map(String::from));
            }
            parts.join("; ")
        }
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
    };
    let msg = sanitize::line(msg.trim(), MESSAGE_CHARS);
    if msg.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", msg.trim())
    }
}

// ---- reading fields -------------------------------------------------------

/// A dotted path (`service.summary`, `links.web`, `items.0.id`) into a value.
pub(crate) fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A text field; `None` when absent or null and not required.
pub(crate) fn text(item: &Value, path: &str, required: bool) -> Result<Option<String>, String> {
    match at(item, path) {
        None | Some(Value::Null) if required => Err(format!("field `{path}` is missing")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "field `{path}` is {}, expected text",
            kind_of(other)
        )),
    }
}

/// Text or a number (ids, severities, statuses in generic APIs).
pub(crate) fn scalar(item: &Value, path: &str, required: bool) -> Result<Option<String>, String> {
    match at(item, path) {
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        _ => text(item, path, required)
            .map_err(|e| e.replace("expected text", "expected text or a number")),
    }
}

/// An id: text or an integer, not empty once sanitised.
pub(crate) fn id(item: &Value, path: &str) -> Result<String, String> {
    let raw = scalar(item, path, true)?.unwrap_or_default();
    let clean = sanitize::line(raw.trim(), ID_CHARS);
    if clean.is_empty() {
        return Err(format!("field `{path}` is empty"));
    }
    Ok(clean)
}

/// An instant: RFC 3339 text, or seconds (or milliseconds) since the epoch.
pub(crate) fn time(item: &Value, path: &str) -> Result<Option<DateTime<Utc>>, String> {
    match at(item, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                format!(
                    "field `{path}` = \"{}\" is not an RFC 3339 time",
                    sanitize::line(s, 40)
                )
            }),
        Some(Value::Number(n)) => {
            let Some(x) = n.as_f64().filter(|x| x.is_finite() && *x >= 0.0) else {
                return Err(format!("field `{path}` is not a time"));
            };
            let ms = if x > 1e12 { x } else { x * 1000.0 };
            DateTime::from_timestamp_millis(ms as i64)
                .map(Some)
                .ok_or_else(|| format!("field `{path}` is not a time"))
        }
        Some(other) => Err(format!(
            "field `{path}` is {}, expected a time",
            kind_of(other)
        )),
    }
}

/// The sanitised, truncated text fields of an incident.
pub(crate) fn incident(
    source: &str,
    id: String,
    title: &str,
    severity: Option<String>,
    status: IncidentStatus,
    opened_at: Option<DateTime<Utc>>,
    url: Option<String>,
) -> Incident {
    Incident {
        source: source.to_string(),
        id,
        title: sanitize::line(title.trim(), TITLE_CHARS),
        severity: severity
            .map(|s| sanitize::line(s.trim(), SEVERITY_CHARS))
            .unwrap_or_default(),
        status,
        opened_at,
        url: url
            .map(|u| sanitize::line(u.trim(), URL_CHARS))
            .filter(|u| !u.is_empty()),
    }
}

/// Whether `id` can be put into a URL path as is (alphanumerics, `-`, `_`).
/// Anything else cannot be an id of these APIs, so it is not looked up.
pub(crate) fn path_safe(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Labels a per-item problem: `incidents[3] (id 17): field ...`.
pub(crate) fn item_problem(
    list: &str,
    index: usize,
    item: &Value,
    id_path: &str,
    m: String,
) -> String {
    match scalar(item, id_path, false).ok().flatten() {
        Some(id) => format!("{list}[{index}] (id {}): {m}", sanitize::line(&id, 40)),
        None => format!("{list}[{index}]: {m}"),
    }
}

/// A listing read in pages by offset: what each API says its own way.
pub(crate) trait Paged {
    /// The reply's key holding one page of items ("incidents").
    const ITEMS: &'static str;
    /// The item field that names it in a problem ("incident_number").
    const ITEM_ID: &'static str;
    fn remote(&self) -> &Remote;
    /// One listed item. The error says which field is wrong: a warning for a
    /// person, with no underlying error to keep.
    fn read_item(&self, item: &Value) -> Result<Incident, String>;
    /// Where the page after `reply` (`len` items from `offset`) starts; `None`
    /// at the end, with a warning when the reply stopped somewhere odd.
    fn next_offset(
        reply: &Value,
        offset: usize,
        len: usize,
        warnings: &mut Vec<String>,
    ) -> Option<usize>;
}

/// The open incidents of a paged listing, from the pages `fetch(offset)`
/// answers: the paging and per-item rules without the HTTP, so they can be
/// fuzzed. At most `max_incidents` are kept, and one page past them is read to
/// learn whether the list was cut.
pub(crate) async fn list_pages<S, F, Fut>(
    source: &S,
    mut fetch: F,
) -> Result<Vec<Incident>, SourceError>
where
    S: Paged,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<Value, SourceError>>,
{
    let remote = source.remote();
    let max = remote.settings.max_incidents;
    // Each page holds up to PAGE; one more page to learn whether there is more.
    let page_cap = max.div_ceil(PAGE) + 1;
    let mut items: Vec<Result<Incident, String>> = Vec::new();
    let mut seen = HashSet::new();
    let mut warnings = Vec::new();
    let mut truncated = false;
    let mut offset = 0usize;
    for page in 0.. {
        if page >= page_cap {
            truncated = true;
            break;
        }
        let v = fetch(offset).await?;
        let Some(list) = v.get(S::ITEMS).and_then(Value::as_array) else {
            return Err(remote.error(format!(
                "{}'s reply has no `{}` list; check base_url",
                remote.service,
                S::ITEMS
            )));
        };
        for (i, item) in list.iter().enumerate() {
            if items.len() >= max {
                truncated = true;
                break;
            }
            let parsed = source
                .read_item(item)
                .map_err(|m| item_problem(S::ITEMS, offset.saturating_add(i), item, S::ITEM_ID, m));
            // Offset paging can repeat an item that moved between pages.
            if let Ok(inc) = &parsed {
                if !seen.insert(inc.id.clone()) || !inc.status.is_open() {
                    continue;
                }
            }
            items.push(parsed);
        }
        if truncated {
            break;
        }
        match S::next_offset(&v, offset, list.len(), &mut warnings) {
            Some(next) => offset = next,
            None => break,
        }
    }
    remote.finish(items, truncated, warnings)
}
