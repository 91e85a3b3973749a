//! Incident sources against real local HTTP servers (tiny_http on 127.0.0.1)
//! that serve PagerDuty's and Opsgenie's documented request and response
//! shapes, a generic JSON endpoint, and hostile or broken variants of each;
//! then the engine's incident policy (revoke on resolve, extension re-check)
//! on top of them, with a manual clock.

use crate::support;

use breakglass::config::{self, FieldMap, RemoteSource, SourceConfig, SourceKind};
use breakglass::domain::{IncidentRef, RefusalKind, State};
use breakglass::engine::{Decision, Engine, Error};
use breakglass::incident::{self, IncidentSource, IncidentStatus};
use chrono::Duration as ChronoDuration;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::*;

// ---- environment --------------------------------------------------------

const PD_TOKEN_ENV: &str = "BG_TEST_PD_TOKEN";
const OG_KEY_ENV: &str = "BG_TEST_OG_KEY";
const HTTP_TOKEN_ENV: &str = "BG_TEST_HTTP_TOKEN";
const WRONG_TOKEN_ENV: &str = "BG_TEST_WRONG_TOKEN";
const UNSET_ENV: &str = "BG_TEST_NEVER_SET";
const PD_TOKEN: &str = "pd-token-y_x8Gh3";
const OG_KEY: &str = "eb243592-faa2-4ba2-a551-1afdf565c889";
const HTTP_TOKEN: &str = "http-token-123";

/// Set once, before any source reads them.
fn env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var(PD_TOKEN_ENV, PD_TOKEN);
        std::env::set_var(OG_KEY_ENV, OG_KEY);
        std::env::set_var(HTTP_TOKEN_ENV, HTTP_TOKEN);
        std::env::set_var(WRONG_TOKEN_ENV, "not-the-token");
        std::env::remove_var(UNSET_ENV);
    });
}

// ---- a local HTTP server --------------------------------------------------

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: Vec<(String, String)>,
    headers: HashMap<String, String>,
}

impl Seen {
    fn q(&self, k: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .get(&k.to_ascii_lowercase())
            .map(String::as_str)
    }
}

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    body: String,
    headers: Vec<(String, String)>,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        body: body.to_string(),
        headers: vec![("Content-Type".into(), "application/json".into())],
    }
}

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    fn count(&self, path_prefix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.path.starts_with(path_prefix))
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(handler: impl Fn(&Seen) -> Reply + Send + 'static) -> Server {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let port = server.server_addr().to_ip().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (srv, log) = (server.clone(), seen.clone());
    let thread = std::thread::spawn(move || {
        for rq in srv.incoming_requests() {
            let url = reqwest::Url::parse(&format!("http://x{}", rq.url())).unwrap();
            let s = Seen {
                path: url.path().to_string(),
                query: url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
                headers: rq
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_ascii_lowercase(),
                            h.value.as_str().to_string(),
                        )
                    })
                    .collect(),
            };
            log.lock().unwrap().push(s.clone());
            let r = handler(&s);
            let mut resp = tiny_http::Response::from_string(r.body).with_status_code(r.status);
            for (k, v) in r.headers {
                resp.add_header(tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap());
            }
            let _ = rq.respond(resp);
        }
    });
    Server {
        url: format!("http://127.0.0.1:{port}"),
        seen,
        server,
        thread: Some(thread),
    }
}

/// Accepts connections and never answers.
struct Hang {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Hang {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn hanging() -> Hang {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut held = vec![];
        while !s.load(Ordering::SeqCst) {
            match l.accept() {
                Ok((c, _)) => held.push(c),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    Hang {
        url,
        stop,
        thread: Some(thread),
    }
}

// ---- PagerDuty, as documented -------------------------------------------

fn pd_incident(n: u64, status: &str) -> Value {
    json!({
        "id": format!("Q{n:07}"),
        "type": "incident",
        "summary": format!("[#{n}] Checkout latency {n}"),
        "self": format!("https://api.pagerduty.com/incidents/Q{n:07}"),
        "html_url": format!("https://acme.pagerduty.com/incidents/Q{n:07}"),
        "incident_number": n,
        "title": format!("Checkout latency {n}"),
        "created_at": "2024-05-01T10:00:00Z",
        "updated_at": "2024-05-01T10:05:00Z",
        "status": status,
        "incident_key": format!("key-{n}"),
        "service": {
            "id": "PSVC001",
            "type": "service_reference",
            "summary": "checkout-api",
            "self": "https://api.pagerduty.com/services/PSVC001",
            "html_url": "https://acme.pagerduty.com/service-directory/PSVC001"
        },
        "assignments": [],
        "acknowledgements": [],
        "last_status_change_at": "2024-05-01T10:05:00Z",
        "urgency": if n % 2 == 0 { "high" } else { "low" },
        "priority": if n % 3 == 0 { json!({"id": "PQ1", "type": "priority", "summary": "P1"}) } else { Value::Null },
    })
}

#[derive(Default)]
struct Fake {
    items: Mutex<Vec<Value>>,
    /// Served (in order) instead of the normal answer, one per request.
    queued: Mutex<VecDeque<Reply>>,
    /// Served for every request while set.
    always: Mutex<Option<Reply>>,
    /// Every answer waits this long first.
    delay: Mutex<Option<Duration>>,
}

impl Fake {
    fn new(items: Vec<Value>) -> Arc<Fake> {
        Arc::new(Fake {
            items: Mutex::new(items),
            ..Default::default()
        })
    }
    fn special(&self) -> Option<Reply> {
        if let Some(d) = *self.delay.lock().unwrap() {
            std::thread::sleep(d);
        }
        if let Some(r) = self.always.lock().unwrap().clone() {
            return Some(r);
        }
        self.queued.lock().unwrap().pop_front()
    }
    fn set_status(&self, key: &str, id: &Value, status: &str) {
        for i in self.items.lock().unwrap().iter_mut() {
            if &i[key] == id {
                i["status"] = json!(status);
            }
        }
    }
}

fn pd_server(fake: Arc<Fake>) -> Server {
    serve(move |s| {
        if s.header("authorization") != Some(&format!("Token token={PD_TOKEN}")) {
            // PagerDuty's documented 401 body.
            return reply(
                401,
                json!({"error": {"message": "Authentication Required", "code": 2006}}),
            );
        }
        if s.header("accept") != Some("application/vnd.pagerduty+json;version=2") {
            return reply(
                406,
                json!({"error": {"message": "Not Acceptable", "code": 2001}}),
            );
        }
        if let Some(r) = fake.special() {
            return r;
        }
        let items = fake.items.lock().unwrap();
        if s.path == "/incidents" {
            assert_eq!(s.q("statuses[]"), ["triggered", "acknowledged"], "{s:?}");
            let limit: usize = s.q("limit")[0].parse().unwrap();
            let offset: usize = s.q("offset")[0].parse().unwrap();
            let open: Vec<&Value> = items.iter().filter(|i| i["status"] != "resolved").collect();
            let page: Vec<&Value> = open.iter().skip(offset).take(limit).copied().collect();
            return reply(
                200,
                json!({
                    "incidents": page,
                    "limit": limit,
                    "offset": offset,
                    "total": null,
                    "more": offset + limit < open.len(),
                }),
            );
        }
        if let Some(id) = s.path.strip_prefix("/incidents/") {
            let found = items.iter().find(|i| {
                i["id"] == id
                    || i["incident_number"]
                        .as_u64()
                        .is_some_and(|n| n.to_string() == id)
            });
            return match found {
                Some(i) => reply(200, json!({ "incident": i })),
                None => reply(
                    404,
                    json!({"error": {"message": "Not Found", "code": 2100}}),
                ),
            };
        }
        reply(
            404,
            json!({"error": {"message": "Not Found", "code": 2100}}),
        )
    })
}

fn remote(url: &str, token_env: Option<&str>) -> RemoteSource {
    env();
    RemoteSource {
        url: url.to_string(),
        token_env: token_env.map(String::from),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_incidents: 10_000,
    }
}

fn build(name: &str, kind: SourceKind, cache_ttl: Duration) -> Arc<dyn IncidentSource> {
    incident::build(&SourceConfig {
        name: name.into(),
        kind,
        cache_ttl,
    })
}

fn pd(url: &str) -> Arc<dyn IncidentSource> {
    build(
        "pd",
        SourceKind::PagerDuty(remote(url, Some(PD_TOKEN_ENV))),
        Duration::ZERO,
    )
}

fn err_text(e: breakglass::incident::SourceError) -> String {
    e.to_string()
}

// ---- PagerDuty ------------------------------------------------------------

#[tokio::test]
async fn pagerduty_lists_three_pages_with_the_documented_request_shape() {
    let fake = Fake::new(
        (1..=250)
            .map(|n| {
                pd_incident(
                    n,
                    if n % 5 == 0 {
                        "acknowledged"
                    } else {
                        "triggered"
                    },
                )
            })
            .collect(),
    );
    let srv = pd_server(fake);
    let list = pd(&srv.url).list_open().await.unwrap();
    assert_eq!(list.len(), 250);

    let seen = srv.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.path, "/incidents");
        assert_eq!(s.q("limit"), ["100"]);
        assert_eq!(s.q("offset"), [(i * 100).to_string().as_str()]);
        assert_eq!(s.q("statuses[]"), ["triggered", "acknowledged"]);
        assert_eq!(
            s.header("authorization").unwrap(),
            format!("Token token={PD_TOKEN}")
        );
        assert_eq!(
            s.header("accept").unwrap(),
            "application/vnd.pagerduty+json;version=2"
        );
    }

    let i3 = list.iter().find(|i| i.id == "3").unwrap();
    assert_eq!(i3.source, "pd");
    assert_eq!(i3.title, "checkout-api: Checkout latency 3");
    assert_eq!(i3.severity, "P1", "priority.summary wins");
    assert_eq!(i3.status, IncidentStatus::Open);
    assert_eq!(
        i3.opened_at.unwrap().to_rfc3339(),
        "2024-05-01T10:00:00+00:00"
    );
    assert_eq!(
        i3.url.as_deref(),
        Some("https://acme.pagerduty.com/incidents/Q0000003")
    );
    let i4 = list.iter().find(|i| i.id == "4").unwrap();
    assert_eq!(i4.severity, "high", "urgency without a priority");
    let i5 = list.iter().find(|i| i.id == "5").unwrap();
    assert_eq!(i5.status, IncidentStatus::Acknowledged);
}

#[tokio::test]
async fn pagerduty_get_accepts_the_number_shown_or_the_pagerduty_id() {
    let fake = Fake::new(vec![
        pd_incident(1234, "triggered"),
        pd_incident(7, "resolved"),
    ]);
    let srv = pd_server(fake);
    let src = pd(&srv.url);
    for id in ["1234", "#1234", "Q0001234", " 1234 "] {
        let i = src.get(id).await.unwrap().unwrap_or_else(|| panic!("{id}"));
        assert_eq!(i.id, "1234");
        assert!(i.status.is_open());
    }
    let resolved = src.get("7").await.unwrap().unwrap();
    assert_eq!(resolved.status, IncidentStatus::Resolved);
    assert!(src.get("999").await.unwrap().is_none(), "404 is unknown");
    // Not a PagerDuty id at all: not even asked.
    let before = srv.seen().len();
    assert!(src.get("../../admin?x=1").await.unwrap().is_none());
    assert_eq!(srv.seen().len(), before);
    assert!(srv.seen().iter().any(|s| s.path == "/incidents/1234"));
    assert!(srv.seen().iter().any(|s| s.path == "/incidents/Q0001234"));
}

#[tokio::test]
async fn pagerduty_wrong_or_missing_token_is_a_clear_error() {
    let srv = pd_server(Fake::new(vec![pd_incident(1, "triggered")]));
    let wrong = build(
        "pd",
        SourceKind::PagerDuty(remote(&srv.url, Some(WRONG_TOKEN_ENV))),
        Duration::ZERO,
    );
    let e = err_text(wrong.list_open().await.unwrap_err());
    assert!(e.contains("incident source pd is unavailable"), "{e}");
    assert!(
        e.contains("PagerDuty rejected the token in $BG_TEST_WRONG_TOKEN"),
        "{e}"
    );
    assert!(e.contains("HTTP 401: Authentication Required"), "{e}");
    assert!(!e.contains("not-the-token"), "the token never shows: {e}");
    let e = err_text(wrong.get("1").await.unwrap_err());
    assert!(e.contains("401"), "{e}");

    let unset = build(
        "pd",
        SourceKind::PagerDuty(remote(&srv.url, Some(UNSET_ENV))),
        Duration::ZERO,
    );
    let e = err_text(unset.list_open().await.unwrap_err());
    assert!(
        e.contains("BG_TEST_NEVER_SET (token_env) is not set"),
        "{e}"
    );
}

#[tokio::test]
async fn pagerduty_429_waits_for_retry_after_then_succeeds() {
    let fake = Fake::new((1..=3).map(|n| pd_incident(n, "triggered")).collect());
    let mut limited = reply(
        429,
        json!({"error": {"message": "Rate Limit Exceeded", "code": 2020}}),
    );
    limited.headers.push(("Retry-After".into(), "1".into()));
    fake.queued.lock().unwrap().push_back(limited);
    let srv = pd_server(fake);
    let t = Instant::now();
    let list = pd(&srv.url).list_open().await.unwrap();
    assert_eq!(list.len(), 3);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "honoured Retry-After"
    );
    assert_eq!(srv.count("/incidents"), 2);
}

#[tokio::test]
async fn pagerduty_rate_limit_that_persists_or_asks_too_long_is_a_clear_error() {
    let fake = Fake::new(vec![pd_incident(1, "triggered")]);
    let mut limited = reply(
        429,
        json!({"error": {"message": "Rate Limit Exceeded", "code": 2020}}),
    );
    limited.headers.push(("Retry-After".into(), "0".into()));
    *fake.always.lock().unwrap() = Some(limited.clone());
    let srv = pd_server(fake.clone());
    let e = err_text(pd(&srv.url).list_open().await.unwrap_err());
    assert!(e.contains("rate limiting") && e.contains("429"), "{e}");
    assert_eq!(srv.count("/incidents"), 3, "two retries, then the error");

    limited.headers = vec![("Retry-After".into(), "3600".into())];
    *fake.always.lock().unwrap() = Some(limited);
    let t = Instant::now();
    let e = err_text(pd(&srv.url).list_open().await.unwrap_err());
    assert!(e.contains("retry after 1h"), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "does not sit out an hour"
    );
}

#[tokio::test]
async fn pagerduty_server_errors_and_forbidden_are_clear() {
    let fake = Fake::new(vec![pd_incident(1, "triggered")]);
    let srv = pd_server(fake.clone());
    *fake.always.lock().unwrap() = Some(reply(
        503,
        json!({"error": {"message": "Service Unavailable", "code": 2999}}),
    ));
    let e = err_text(pd(&srv.url).list_open().await.unwrap_err());
    assert!(
        e.contains("PagerDuty is failing (HTTP 503: Service Unavailable)"),
        "{e}"
    );
    *fake.always.lock().unwrap() = Some(reply(
        403,
        json!({"error": {"message": "Access Denied", "code": 2010, "errors": ["Read-only key cannot list"]}}),
    ));
    let e = err_text(pd(&srv.url).get("1").await.unwrap_err());
    assert!(
        e.contains("HTTP 403: Access Denied; Read-only key cannot list"),
        "{e}"
    );
    *fake.always.lock().unwrap() = Some(Reply {
        status: 200,
        body: "<html>captive portal</html>".into(),
        headers: vec![],
    });
    let e = err_text(pd(&srv.url).list_open().await.unwrap_err());
    assert!(e.contains("not JSON"), "{e}");
    *fake.always.lock().unwrap() = Some(reply(302, json!({})));
    let e = err_text(pd(&srv.url).list_open().await.unwrap_err());
    assert!(e.contains("redirect"), "{e}");
}

fn hostile_text() -> String {
    let unit = "\u{1b}[2J\u{1b}[31mDB down\u{1b}[0m \u{1b}]0;pwned title\u{7} \u{1b}]52;c;Y3VybCBldmlsfHNo\u{7}\u{202E}txt.exe\u{202C}\u{2066}x\u{2069} \u{9b}31m\r\n\t";
    let mut s = String::new();
    while s.len() < 100 * 1024 {
        s.push_str(unit);
    }
    s
}

fn assert_clean(s: &str, max_chars: usize) {
    assert!(
        s.chars().count() <= max_chars + 1,
        "{} chars",
        s.chars().count()
    );
    for c in s.chars() {
        assert!(!c.is_control(), "control {:?} in {s:?}", c);
        assert!(
            !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'),
            "bidi control in {s:?}"
        );
    }
    assert!(!s.contains("pwned"), "OSC payload leaked: {s:?}");
}

#[tokio::test]
async fn pagerduty_hostile_text_is_sanitised_and_truncated() {
    let hostile = hostile_text();
    let mut i = pd_incident(1, "triggered");
    i["title"] = json!(hostile);
    i["service"]["summary"] = json!(hostile);
    i["html_url"] = json!(hostile);
    i["priority"] = json!({"summary": hostile});
    let srv = pd_server(Fake::new(vec![i]));
    let src = pd(&srv.url);
    let list = src.list_open().await.unwrap();
    let inc = &list[0];
    assert_clean(&inc.title, 200);
    assert!(inc.title.ends_with('…'));
    assert!(inc.title.contains("DB down"));
    assert_clean(&inc.severity, 16);
    assert_clean(inc.url.as_deref().unwrap(), 300);
    let got = src.get("1").await.unwrap().unwrap();
    assert_eq!(got, *inc);
}

#[tokio::test]
async fn pagerduty_malformed_items_are_skipped_with_a_warning_naming_the_field() {
    let mut no_title = pd_incident(2, "triggered");
    no_title.as_object_mut().unwrap().remove("title");
    let mut number_title = pd_incident(3, "triggered");
    number_title["title"] = json!(12345);
    let mut bad_time = pd_incident(4, "triggered");
    bad_time["created_at"] = json!("yesterday-ish");
    let mut bad_status = pd_incident(5, "triggered");
    bad_status["status"] = json!("on fire");
    let mut bad_priority = pd_incident(6, "triggered");
    bad_priority["priority"] = json!("P1");
    let items = vec![
        pd_incident(1, "triggered"),
        no_title,
        number_title,
        bad_time,
        bad_status,
        bad_priority,
        json!(null),
        json!(42),
    ];
    let srv = pd_server(Fake::new(items));
    let src = pd(&srv.url);
    let list = src.list_open().await.unwrap();
    assert_eq!(
        list.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["1"]
    );
    let w = src.warnings().join("\n");
    assert!(w.contains("skipped 7 of 8"), "{w}");
    assert!(
        w.contains("incidents[1] (id 2): field `title` is missing"),
        "{w}"
    );

    // Each problem, through get, names its field.
    for (id, needle) in [
        ("2", "field `title` is missing"),
        ("3", "field `title` is a number, expected text"),
        (
            "4",
            "field `created_at` = \"yesterday-ish\" is not an RFC 3339 time",
        ),
        ("5", "field `status` = \"on fire\""),
        ("6", "field `priority` is not an object"),
    ] {
        let e = err_text(src.get(id).await.unwrap_err());
        assert!(e.contains(needle), "{id}: {e}");
    }
}

#[tokio::test]
async fn pagerduty_entirely_wrong_replies_are_errors_not_panics() {
    let fake = Fake::new(vec![]);
    let srv = pd_server(fake.clone());
    let src = pd(&srv.url);
    let mut no_title = pd_incident(1, "triggered");
    no_title.as_object_mut().unwrap().remove("title");
    let cases: Vec<(Value, &str)> = vec![
        (json!({"incidents": "nope"}), "no `incidents` list"),
        (json!([1, 2, 3]), "no `incidents` list"),
        (
            json!({"incidents": [no_title], "more": false}),
            "none of the 1 incidents",
        ),
        (
            json!({"incidents": [{"incident_number": {"a": 1}}]}),
            "field `incident_number` is an object",
        ),
        (json!("just a string"), "no `incidents` list"),
        (json!(null), "no `incidents` list"),
    ];
    for (body, needle) in cases {
        *fake.always.lock().unwrap() = Some(reply(200, body.clone()));
        let e = err_text(src.list_open().await.unwrap_err());
        assert!(e.contains(needle), "{body}: {e}");
    }
    // A reply claiming more pages forever, with empty pages: ends with a warning.
    *fake.always.lock().unwrap() = Some(reply(
        200,
        json!({"incidents": [], "more": true, "limit": 100}),
    ));
    assert!(src.list_open().await.unwrap().is_empty());
    // get with odd shapes.
    for body in [
        json!({}),
        json!({"incident": null}),
        json!({"incident": [1]}),
        json!([]),
    ] {
        *fake.always.lock().unwrap() = Some(reply(200, body.clone()));
        assert!(src.get("1").await.is_err(), "{body}");
    }
}

#[tokio::test]
async fn pagerduty_ten_thousand_incidents_within_the_cap() {
    let fake = Fake::new((1..=10_000).map(|n| pd_incident(n, "triggered")).collect());
    let srv = pd_server(fake.clone());
    let mut settings = remote(&srv.url, Some(PD_TOKEN_ENV));
    settings.timeout = Duration::from_secs(60);
    let src = build("pd", SourceKind::PagerDuty(settings), Duration::ZERO);
    let t = Instant::now();
    let list = src.list_open().await.unwrap();
    let took = t.elapsed();
    eprintln!("10,000 PagerDuty incidents over 100 pages: {took:?}");
    assert_eq!(list.len(), 10_000);
    assert!(src.warnings().is_empty(), "{:?}", src.warnings());
    assert_eq!(srv.count("/incidents"), 100);
    assert!(took < Duration::from_secs(30), "took {took:?}");

    // Beyond the cap: the first max_incidents, and a warning.
    fake.items
        .lock()
        .unwrap()
        .extend((10_001..=10_150).map(|n| pd_incident(n, "triggered")));
    let list = src.list_open().await.unwrap();
    assert_eq!(list.len(), 10_000);
    let w = src.warnings().join("\n");
    assert!(
        w.contains("more than 10000 incidents; listing the first 10000"),
        "{w}"
    );
}

// ---- Opsgenie -------------------------------------------------------------

fn og_incident(n: u64, status: &str) -> Value {
    json!({
        "id": format!("70413a06-38d6-4c85-92b8-5ebc900d{n:04}"),
        "tinyId": n.to_string(),
        "message": format!("Payments API 5xx {n}"),
        "status": status,
        "tags": ["payments"],
        "createdAt": "2024-05-02T08:15:30.123Z",
        "updatedAt": "2024-05-02T08:20:00.000Z",
        "priority": format!("P{}", 1 + n % 5),
        "ownerTeam": "",
        "responders": [{"type": "team", "id": "fc1448b7-46b2-401d-9da8-c726c8d21b1e"}],
        "extraProperties": {},
        "links": {
            "web": format!("https://acme.app.opsgenie.com/incident/detail/{n}"),
            "api": format!("https://api.opsgenie.com/v1/incidents/{n}")
        },
        "impactStartDate": "2024-05-02T08:15:30.123Z",
        "impactedServices": []
    })
}

fn og_error(status: u16, message: &str) -> Reply {
    reply(
        status,
        json!({"message": message, "took": 0.002, "requestId": "9ae63dd7-ed00-4c81-86f0-c4ffd33142c9"}),
    )
}

/// `next_host`: where paging.next points (the server itself unless given).
fn og_server(fake: Arc<Fake>, next_host: Option<String>) -> Server {
    let next_host = Arc::new(Mutex::new(next_host));
    let server = serve({
        let next_host = next_host.clone();
        move |s| {
            if s.header("authorization") != Some(&format!("GenieKey {OG_KEY}")) {
                return og_error(401, "Could not authenticate");
            }
            if let Some(r) = fake.special() {
                return r;
            }
            let items = fake.items.lock().unwrap();
            if s.path == "/v1/incidents" {
                assert_eq!(s.q("query"), ["status:open"], "{s:?}");
                let limit: usize = s.q("limit")[0].parse().unwrap();
                let offset: usize = s.q("offset")[0].parse().unwrap();
                let open: Vec<&Value> = items.iter().filter(|i| i["status"] == "open").collect();
                let page: Vec<&Value> = open.iter().skip(offset).take(limit).copied().collect();
                let host = next_host.lock().unwrap().clone().unwrap_or_default();
                let mut paging = json!({
                    "first": format!("{host}/v1/incidents?query=status%3Aopen&offset=0&limit={limit}&sort=createdAt&order=desc"),
                });
                if offset + limit < open.len() {
                    paging["next"] = json!(format!(
                        "{host}/v1/incidents?query=status%3Aopen&offset={}&limit={limit}&sort=createdAt&order=desc",
                        offset + limit
                    ));
                }
                return reply(
                    200,
                    json!({"data": page, "paging": paging, "took": 0.113, "requestId": "5d2a7b8f"}),
                );
            }
            if let Some(id) = s.path.strip_prefix("/v1/incidents/") {
                let key = match s.q("identifierType").first() {
                    Some(&"tiny") => "tinyId",
                    Some(&"id") | None => "id",
                    Some(other) => {
                        return og_error(422, &format!("Invalid identifierType {other}"))
                    }
                };
                return match items.iter().find(|i| i[key] == id) {
                    Some(i) => reply(200, json!({"data": i, "took": 0.01, "requestId": "r"})),
                    None => og_error(404, &format!("Could not find incident with id: {id}")),
                };
            }
            og_error(404, "Not found")
        }
    });
    if next_host.lock().unwrap().is_none() {
        *next_host.lock().unwrap() = Some(server.url.clone());
    }
    server
}

fn og(url: &str) -> Arc<dyn IncidentSource> {
    build(
        "og",
        SourceKind::Opsgenie(remote(url, Some(OG_KEY_ENV))),
        Duration::ZERO,
    )
}

#[tokio::test]
async fn opsgenie_follows_paging_next_across_three_pages() {
    let mut items: Vec<Value> = (1..=230).map(|n| og_incident(n, "open")).collect();
    items.push(og_incident(999, "resolved"));
    let srv = og_server(Fake::new(items), None);
    let list = og(&srv.url).list_open().await.unwrap();
    assert_eq!(list.len(), 230);
    let seen = srv.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.path, "/v1/incidents");
        assert_eq!(s.q("query"), ["status:open"]);
        assert_eq!(s.q("limit"), ["100"]);
        assert_eq!(s.q("offset"), [(i * 100).to_string().as_str()]);
        assert_eq!(
            s.header("authorization").unwrap(),
            format!("GenieKey {OG_KEY}")
        );
    }
    let i = list.iter().find(|i| i.id == "7").unwrap();
    assert_eq!(i.source, "og");
    assert_eq!(i.title, "Payments API 5xx 7");
    assert_eq!(i.severity, "P3");
    assert_eq!(i.status, IncidentStatus::Open);
    assert_eq!(
        i.opened_at.unwrap().to_rfc3339(),
        "2024-05-02T08:15:30.123+00:00"
    );
    assert_eq!(
        i.url.as_deref(),
        Some("https://acme.app.opsgenie.com/incident/detail/7")
    );
}

#[tokio::test]
async fn opsgenie_never_sends_the_key_to_another_host_named_by_paging_next() {
    let evil = serve(|_| reply(200, json!({"data": []})));
    let items: Vec<Value> = (1..=150).map(|n| og_incident(n, "open")).collect();
    let srv = og_server(Fake::new(items), Some(evil.url.clone()));
    let list = og(&srv.url).list_open().await.unwrap();
    assert_eq!(
        list.len(),
        150,
        "the offset of next was used against base_url"
    );
    assert_eq!(srv.count("/v1/incidents"), 2);
    assert!(evil.seen().is_empty(), "the other host was never called");
}

#[tokio::test]
async fn opsgenie_get_by_tiny_id_or_id_and_unknown_is_none() {
    let srv = og_server(
        Fake::new(vec![og_incident(8, "open"), og_incident(9, "closed")]),
        None,
    );
    let src = og(&srv.url);
    let a = src.get("8").await.unwrap().unwrap();
    let b = src
        .get("70413a06-38d6-4c85-92b8-5ebc900d0008")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.id, "8");
    assert_eq!(
        src.get("9").await.unwrap().unwrap().status,
        IncidentStatus::Resolved
    );
    assert!(src.get("404").await.unwrap().is_none());
    let seen = srv.seen();
    assert!(seen
        .iter()
        .any(|s| s.path == "/v1/incidents/8" && s.q("identifierType") == ["tiny"]));
    assert!(seen
        .iter()
        .any(|s| s.path.ends_with("0008") && s.q("identifierType") == ["id"]));
}

#[tokio::test]
async fn opsgenie_wrong_key_rate_limit_and_errors() {
    let fake = Fake::new(vec![og_incident(1, "open")]);
    let srv = og_server(fake.clone(), None);
    let wrong = build(
        "og",
        SourceKind::Opsgenie(remote(&srv.url, Some(WRONG_TOKEN_ENV))),
        Duration::ZERO,
    );
    let e = err_text(wrong.list_open().await.unwrap_err());
    assert!(e.contains("Opsgenie rejected the token in $BG_TEST_WRONG_TOKEN (HTTP 401: Could not authenticate)"), "{e}");

    let mut limited = og_error(
        429,
        "You are making too many requests! To avoid errors, we recommend you limit requests.",
    );
    limited.headers.push(("Retry-After".into(), "1".into()));
    fake.queued.lock().unwrap().push_back(limited);
    let t = Instant::now();
    assert_eq!(og(&srv.url).list_open().await.unwrap().len(), 1);
    assert!(t.elapsed() >= Duration::from_millis(900));

    *fake.always.lock().unwrap() = Some(og_error(500, "Internal Server Error"));
    let e = err_text(og(&srv.url).list_open().await.unwrap_err());
    assert!(
        e.contains("Opsgenie is failing (HTTP 500: Internal Server Error)"),
        "{e}"
    );

    let mut m = og_incident(2, "open");
    m["message"] = json!(["not", "text"]);
    *fake.always.lock().unwrap() = Some(reply(200, json!({"data": m})));
    let e = err_text(og(&srv.url).get("2").await.unwrap_err());
    assert!(
        e.contains("field `message` is a list, expected text"),
        "{e}"
    );
}

#[tokio::test]
async fn opsgenie_hostile_message_is_sanitised() {
    let mut i = og_incident(1, "open");
    i["message"] = json!(hostile_text());
    i["tinyId"] = json!("1\u{1b}[2J");
    let srv = og_server(Fake::new(vec![i]), None);
    let list = og(&srv.url).list_open().await.unwrap();
    assert_clean(&list[0].title, 200);
    assert_eq!(list[0].id, "1");
}

// ---- generic HTTP -----------------------------------------------------------

fn generic_item(n: u64, state: &str) -> Value {
    json!({
        "key": n,
        "attributes": {"name": format!("Queue backlog {n}"), "state": state},
        "meta": {"sev": n % 4},
        "links": [{"rel": "self", "href": format!("https://status.example/{n}")}],
        "timestamps": {"opened": 1_714_550_400 + n},
    })
}

fn generic_fields() -> FieldMap {
    FieldMap {
        id: "key".into(),
        title: "attributes.name".into(),
        severity: Some("meta.sev".into()),
        status: Some("attributes.state".into()),
        url: Some("links.0.href".into()),
        opened_at: Some("timestamps.opened".into()),
    }
}

fn generic(url: &str, items_path: Option<&str>, max: usize) -> Arc<dyn IncidentSource> {
    let mut r = remote(url, Some(HTTP_TOKEN_ENV));
    r.max_incidents = max;
    build(
        "status-page",
        SourceKind::Http {
            remote: r,
            items_path: items_path.map(String::from),
            fields: generic_fields(),
            open_values: vec!["open".into(), "triggered".into(), "acknowledged".into()],
        },
        Duration::ZERO,
    )
}

fn generic_server(body: Arc<Mutex<Value>>) -> Server {
    serve(move |s| {
        if s.header("authorization") != Some(&format!("Bearer {HTTP_TOKEN}")) {
            return reply(401, json!({"message": "bad token"}));
        }
        reply(200, body.lock().unwrap().clone())
    })
}

#[tokio::test]
async fn generic_http_with_nested_items_path_and_dotted_fields() {
    let body = Arc::new(Mutex::new(json!({
        "result": {"data": {"incidents": [
            generic_item(1, "open"),
            generic_item(2, "Acknowledged"),
            generic_item(3, "resolved"),
        ]}}
    })));
    let srv = generic_server(body.clone());
    let src = generic(
        &format!("{}/api/incidents?team=sre", srv.url),
        Some("result.data.incidents"),
        10_000,
    );
    let list = src.list_open().await.unwrap();
    assert_eq!(
        list.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    let i = &list[0];
    assert_eq!(i.source, "status-page");
    assert_eq!(i.title, "Queue backlog 1");
    assert_eq!(i.severity, "1");
    assert_eq!(i.url.as_deref(), Some("https://status.example/1"));
    assert_eq!(i.opened_at.unwrap().timestamp(), 1_714_550_401);
    assert_eq!(list[1].status, IncidentStatus::Acknowledged);
    let r = src.get("3").await.unwrap().unwrap();
    assert_eq!(
        r.status,
        IncidentStatus::Resolved,
        "get sees resolved items"
    );
    assert!(src.get("4").await.unwrap().is_none());
    let s = &srv.seen()[0];
    assert_eq!(s.path, "/api/incidents");
    assert_eq!(s.q("team"), ["sre"]);

    // Wrong shapes: clear errors.
    *body.lock().unwrap() = json!({"result": {"data": {"incidents": {"not": "a list"}}}});
    let e = err_text(src.list_open().await.unwrap_err());
    assert!(
        e.contains("items_path `result.data.incidents` in the reply is not a list"),
        "{e}"
    );
    *body.lock().unwrap() = json!({"result": {}});
    let e = err_text(src.list_open().await.unwrap_err());
    assert!(
        e.contains("items_path `result.data.incidents` is not in the reply"),
        "{e}"
    );
    let flat = generic(&srv.url, None, 10_000);
    let e = err_text(flat.list_open().await.unwrap_err());
    assert!(e.contains("set items_path"), "{e}");

    // Some malformed: skipped with a warning; all malformed: an error naming the field.
    let mut bad = generic_item(5, "open");
    bad["attributes"]["name"] = json!({"nested": true});
    *body.lock().unwrap() =
        json!({"result": {"data": {"incidents": [generic_item(4, "open"), bad.clone()]}}});
    assert_eq!(src.list_open().await.unwrap().len(), 1);
    assert!(src
        .warnings()
        .join(" ")
        .contains("items[1] (id 5): field `attributes.name` is an object"));
    *body.lock().unwrap() = json!({"result": {"data": {"incidents": [bad]}}});
    let e = err_text(src.list_open().await.unwrap_err());
    assert!(e.contains("field `attributes.name`"), "{e}");
}

#[tokio::test]
async fn generic_http_caps_a_huge_list() {
    let items: Vec<Value> = (1..=12_000).map(|n| generic_item(n, "open")).collect();
    let srv = generic_server(Arc::new(Mutex::new(Value::Array(items))));
    let src = generic(&srv.url, None, 10_000);
    let t = Instant::now();
    let list = src.list_open().await.unwrap();
    assert_eq!(list.len(), 10_000);
    assert!(t.elapsed() < Duration::from_secs(20));
    assert!(src.warnings().join(" ").contains("listing the first 10000"));
}

// ---- timeouts, unreachable sources, the merge, the cache ------------------

#[tokio::test]
async fn a_hanging_source_times_out_and_the_others_are_still_listed() {
    let hang = hanging();
    let mut r = remote(&hang.url, Some(PD_TOKEN_ENV));
    r.timeout = Duration::from_secs(1);
    let slow = build("pd-hang", SourceKind::PagerDuty(r), Duration::from_secs(10));
    let og_srv = og_server(Fake::new(vec![og_incident(5, "open")]), None);
    let h = harness_with(|p| {
        p.sources.push(slow);
        p.sources.push(og(&og_srv.url));
    });
    let t = Instant::now();
    let (list, errors) = h.engine.incidents().await;
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(list
        .iter()
        .any(|i| i.id == "INC-1042" && i.source == "demo-incidents"));
    assert!(list.iter().any(|i| i.id == "5" && i.source == "og"));
    assert_eq!(errors.len(), 1);
    let e = errors[0].to_string();
    assert_eq!(errors[0].source_name, "pd-hang");
    assert!(e.contains("incident source pd-hang is unavailable"), "{e}");
    assert!(e.contains("did not answer within 1s (timeout)"), "{e}");

    // The cached failure answers at once the second time.
    let t = Instant::now();
    let (_, errors) = h.engine.incidents().await;
    assert_eq!(errors.len(), 1);
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn skipped_items_are_shown_beside_the_listing_in_the_console() {
    let mut broken = pd_incident(2, "triggered");
    broken.as_object_mut().unwrap().remove("title");
    let srv = pd_server(Fake::new(vec![pd_incident(1, "triggered"), broken]));
    let h = harness_with(|p| p.sources.push(pd(&srv.url)));
    let (list, errors) = h.engine.incidents().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(list.iter().any(|i| i.source == "pd" && i.id == "1"));
    let w = h.engine.incident_warnings().join("\n");
    assert!(w.starts_with("pd: skipped 1 of 2"), "{w}");
    let url = srv.url.clone();
    let mut d = support::tui::Driver::new_with(h, "alice", |p| p.sources.push(pd(&url)));
    d.refresh().await;
    d.assert_sees("pd: skipped 1 of 2");
}

#[tokio::test]
async fn an_unreachable_source_says_it_cannot_connect() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = err_text(
        pd(&format!("http://127.0.0.1:{port}"))
            .list_open()
            .await
            .unwrap_err(),
    );
    assert!(e.contains("cannot connect to http://127.0.0.1"), "{e}");
}

#[tokio::test]
async fn the_cache_spares_the_api_within_its_ttl() {
    let fake = Fake::new((1..=3).map(|n| pd_incident(n, "triggered")).collect());
    let srv = pd_server(fake.clone());
    let src = build(
        "pd",
        SourceKind::PagerDuty(remote(&srv.url, Some(PD_TOKEN_ENV))),
        Duration::from_millis(400),
    );
    assert_eq!(src.list_open().await.unwrap().len(), 3);
    assert_eq!(src.list_open().await.unwrap().len(), 3);
    assert_eq!(srv.count("/incidents"), 1, "second listing from the cache");
    // An id in the fresh listing: no lookup at all.
    assert_eq!(src.get("2").await.unwrap().unwrap().id, "2");
    assert_eq!(srv.seen().len(), 1);
    // Another id: one lookup, then cached.
    assert!(src.get("77").await.unwrap().is_none());
    assert!(src.get("77").await.unwrap().is_none());
    assert_eq!(srv.count("/incidents/77"), 1);
    // After the ttl, the source is asked again.
    std::thread::sleep(Duration::from_millis(450));
    fake.set_status("incident_number", &json!(2), "resolved");
    assert_eq!(src.list_open().await.unwrap().len(), 2);
    assert_eq!(
        src.get("2").await.unwrap().unwrap().status,
        IncidentStatus::Resolved
    );
    assert_eq!(srv.count("/incidents"), 4);
}

// ---- the file source: read again only when changed ------------------------

fn file_incident(id: &str, status: &str) -> String {
    format!("[[incidents]]\nid = \"{id}\"\ntitle = \"t {id}\"\nstatus = \"{status}\"\n\n")
}

/// Writes `text` to `path`, modified `when` (in the past: a settled file).
fn write_aged(path: &std::path::Path, text: &str, when: std::time::SystemTime) {
    std::fs::write(path, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(
            std::fs::FileTimes::new()
                .set_modified(when)
                .set_accessed(when),
        )
        .unwrap();
}

#[tokio::test]
async fn a_file_source_reads_its_file_again_only_when_it_changed() {
    use breakglass::incident::file::{FileSource, Reads};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidents.toml");
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let later = hour_ago + Duration::from_secs(60);
    write_aged(&path, &file_incident("INC-1", "open"), hour_ago);
    let src = FileSource::new("f".into(), path.clone());
    let reads = |reads, whole| Reads { reads, whole };

    assert_eq!(src.list_open().await.unwrap().len(), 1);
    assert_eq!(src.reads(), reads(1, 1));
    // Unchanged: listings and lookups come from the parsed file.
    assert_eq!(src.list_open().await.unwrap().len(), 1);
    assert_eq!(src.get("INC-1").await.unwrap().unwrap().title, "t INC-1");
    assert!(src.get("INC-2").await.unwrap().is_none());
    assert_eq!(src.reads(), reads(1, 1), "an unchanged file is not read");

    // Another size, the same mtime: read again.
    let two = file_incident("INC-1", "open") + &file_incident("INC-2", "open");
    write_aged(&path, &two, hour_ago);
    assert_eq!(src.list_open().await.unwrap().len(), 2);
    assert_eq!(src.reads(), reads(2, 2));

    // The same size, another mtime: read again.
    let same_size = file_incident("INC-1", "open") + &file_incident("INC-X", "open");
    assert_eq!(same_size.len(), two.len());
    write_aged(&path, &same_size, later);
    assert_eq!(src.list_open().await.unwrap()[1].id, "INC-X");
    assert_eq!(src.reads(), reads(3, 3));

    // The same size and mtime, but another file renamed over it: read again.
    let other = dir.path().join("next.toml");
    let same_again = file_incident("INC-1", "open") + &file_incident("INC-Y", "open");
    write_aged(&other, &same_again, later);
    std::fs::rename(&other, &path).unwrap();
    assert_eq!(src.list_open().await.unwrap()[1].id, "INC-Y");
    assert_eq!(src.list_open().await.unwrap()[1].id, "INC-Y");
    assert_eq!(src.reads(), reads(4, 4), "and then not again");

    // Written just now: a second write in the same instant with the same size
    // would look unchanged, so a fresh file is read every time until it settles.
    std::fs::write(&path, file_incident("INC-1", "resolved")).unwrap();
    assert!(src.list_open().await.unwrap().is_empty());
    assert!(src.list_open().await.unwrap().is_empty());
    assert_eq!(src.reads(), reads(6, 6));
    // Once settled, what was read while it was fresh is not trusted: read once
    // more, then kept.
    std::thread::sleep(breakglass::incident::file::SETTLE + Duration::from_millis(100));
    assert!(src.list_open().await.unwrap().is_empty());
    assert!(src.get("INC-1").await.unwrap().is_some());
    assert_eq!(src.reads(), reads(7, 7));

    // A broken file is an error until it changes, and not parsed again meanwhile.
    write_aged(&path, "[[incidents]]\nid = 3\n", hour_ago);
    let e = err_text(src.list_open().await.unwrap_err());
    assert!(e.contains("incidents.toml"), "{e}");
    assert!(src.list_open().await.is_err());
    assert!(src.get("INC-1").await.is_err());
    assert_eq!(src.reads(), reads(8, 8));
    std::fs::remove_file(&path).unwrap();
    let e = err_text(src.list_open().await.unwrap_err());
    assert!(e.contains("cannot read"), "{e}");
}

/// A command's revoke-on-resolve check looks up one incident: in a file of
/// 10,000 it parses that incident's block, not the whole file (~70 ms of TOML).
#[tokio::test]
async fn a_lookup_in_a_large_file_parses_only_its_incident() {
    use breakglass::incident::file::{FileSource, Reads};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidents.toml");
    let mut text = String::from("# synced from the incident tool\n\n");
    for n in 0..10_000 {
        let status = if n == 7_000 { "resolved" } else { "open" };
        text.push_str(&file_incident(&format!("INC-{n}"), status));
    }
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    write_aged(&path, &text, hour_ago);

    let src = FileSource::new("f".into(), path.clone());
    let inc = src.get("INC-7000").await.unwrap().unwrap();
    assert_eq!(
        (inc.title.as_str(), inc.status, inc.source.as_str()),
        ("t INC-7000", IncidentStatus::Resolved, "f")
    );
    assert!(src.get("INC-10000").await.unwrap().is_none());
    assert_eq!(src.reads(), Reads { reads: 2, whole: 0 });
    // Asked again, unchanged: remembered.
    assert!(src.get("INC-7000").await.unwrap().is_some());
    assert!(src.get("INC-10000").await.unwrap().is_none());
    assert_eq!(src.reads(), Reads { reads: 2, whole: 0 });
    // Once the whole file is parsed (a listing), lookups use it.
    assert_eq!(src.list_open().await.unwrap().len(), 9_999);
    assert_eq!(src.get("INC-9999").await.unwrap().unwrap().id, "INC-9999");
    assert_eq!(src.reads(), Reads { reads: 3, whole: 1 });

    // A layout the scan does not vouch for: the whole file is parsed, and the
    // answer is the parser's (here a "header" inside a multi-line title, its
    // block valid on its own).
    let tricky = concat!(
        "[[incidents]]\nid = \"INC-1\"\ntitle = '''\n",
        "[[incidents]]\nid = \"INC-2\"\ntitle = \"fake\"\n# '''\n",
        "status = \"resolved\"\n"
    );
    write_aged(&path, tricky, hour_ago);
    let fresh = FileSource::new("f".into(), path.clone());
    assert!(fresh.get("INC-2").await.unwrap().is_none());
    let one = fresh.get("INC-1").await.unwrap().unwrap();
    assert!(one.title.contains("INC-2"), "{one:?}");
    assert_eq!(fresh.reads(), Reads { reads: 1, whole: 1 });
}

// ---- the engine's incident policy ------------------------------------------

struct World {
    h: H,
    fake: Arc<Fake>,
    srv: Server,
}

/// The demo harness with a PagerDuty source (no cache: the engine's own bound is
/// what is tested) holding incident 4242, open.
fn world() -> World {
    let fake = Fake::new(vec![pd_incident(4242, "triggered")]);
    let srv = pd_server(fake.clone());
    let src = pd(&srv.url);
    let h = harness_with(|p| p.sources.push(src));
    World { h, fake, srv }
}

async fn active_on_4242(e: &Engine, role: &str) -> breakglass::domain::Request {
    let r = e.request("alice", input(role, inc("4242"))).await.unwrap();
    assert!(
        matches!(&r.incident, IncidentRef::Source { source, id, .. } if source == "pd" && id == "4242")
    );
    for who in ["bob", "carol"].iter().take(r.approvals_required as usize) {
        e.decide(who, r.id, Decision::approve(None)).await.unwrap();
    }
    e.activate("alice", r.id).await.unwrap().0
}

#[tokio::test]
async fn access_is_revoked_by_the_sweeper_once_its_incident_is_resolved() {
    let w = world();
    let r = active_on_4242(&w.h.engine, DBA).await;
    assert_eq!(r.state, State::Active);
    let rep = w.h.engine.recover().await.unwrap();
    assert!(rep.resolved_revoked.is_empty());
    assert_eq!(
        w.srv.count("/incidents/4242"),
        2,
        "request + one sweep check"
    );

    w.fake
        .set_status("incident_number", &json!(4242), "resolved");
    // Within the interval the source is not asked again.
    for _ in 0..5 {
        w.h.clock.advance(ChronoDuration::seconds(5));
        w.h.engine.recover().await.unwrap();
    }
    assert_eq!(w.h.state(r.id), State::Active);
    assert_eq!(
        w.srv.count("/incidents/4242"),
        2,
        "bounded: no call per sweep"
    );

    w.h.clock.advance(ChronoDuration::seconds(6));
    let rep = w.h.engine.recover().await.unwrap();
    assert_eq!(rep.resolved_revoked, vec![r.id.to_string()]);
    let done = w.h.engine.load(r.id).await.unwrap();
    assert_eq!(done.state, State::Ended);
    let end = done.grant.unwrap().end.unwrap();
    assert_eq!(end.reason, "incident resolved");
    assert_eq!(end.by, breakglass::engine::SWEEPER);
    assert!(w.h.leases().is_empty(), "the backend revoked it");
    assert_eq!(w.srv.count("/incidents/4242"), 3);
}

#[tokio::test]
async fn a_source_error_never_revokes() {
    let w = world();
    let r = active_on_4242(&w.h.engine, DBA).await;
    for failure in [
        reply(503, json!({"error": {"message": "Service Unavailable"}})),
        reply(
            401,
            json!({"error": {"message": "Authentication Required", "code": 2006}}),
        ),
        reply(
            404,
            json!({"error": {"message": "Not Found", "code": 2100}}),
        ),
        reply(200, json!({"incident": {"garbage": true}})),
    ] {
        *w.fake.always.lock().unwrap() = Some(failure);
        w.h.clock.advance(ChronoDuration::seconds(31));
        let rep = w.h.engine.recover().await.unwrap();
        assert!(rep.resolved_revoked.is_empty());
        assert_eq!(w.h.state(r.id), State::Active);
    }
    // Once the source answers "resolved", it does revoke.
    *w.fake.always.lock().unwrap() = None;
    w.fake
        .set_status("incident_number", &json!(4242), "resolved");
    w.h.clock.advance(ChronoDuration::seconds(31));
    let rep = w.h.engine.recover().await.unwrap();
    assert_eq!(rep.resolved_revoked, vec![r.id.to_string()]);
}

#[tokio::test]
async fn a_hanging_source_does_not_revoke_either() {
    let fake = Fake::new(vec![pd_incident(4242, "triggered")]);
    let srv = pd_server(fake.clone());
    let mut settings = remote(&srv.url, Some(PD_TOKEN_ENV));
    settings.timeout = Duration::from_millis(500);
    let src = build("pd", SourceKind::PagerDuty(settings), Duration::ZERO);
    let h = harness_with(|p| p.sources.push(src));
    let r = active_on_4242(&h.engine, DBA).await;
    // Resolved, but the answer never arrives in time.
    fake.set_status("incident_number", &json!(4242), "resolved");
    *fake.delay.lock().unwrap() = Some(Duration::from_secs(2));
    h.clock.advance(ChronoDuration::seconds(31));
    let t = Instant::now();
    let rep = h.engine.recover().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert!(rep.resolved_revoked.is_empty());
    assert_eq!(h.state(r.id), State::Active);
    drop(h);
    drop(srv);
}

#[tokio::test]
async fn an_extension_is_refused_once_the_incident_is_resolved() {
    let w = world();
    let r = active_on_4242(&w.h.engine, K8S).await;
    let ext =
        w.h.engine
            .extend("alice", r.id, 300, "still draining the queue")
            .await
            .unwrap();
    assert_eq!(ext.grant.unwrap().extensions.len(), 1);

    // The source cannot answer: fail closed, access untouched.
    *w.fake.always.lock().unwrap() = Some(reply(503, json!({"error": {"message": "down"}})));
    let e =
        w.h.engine
            .extend("alice", r.id, 300, "more")
            .await
            .unwrap_err();
    assert!(matches!(e, Error::Source(_)), "{e:?}");
    assert!(
        e.to_string().contains("incident source pd is unavailable"),
        "{e}"
    );
    *w.fake.always.lock().unwrap() = None;

    w.fake
        .set_status("incident_number", &json!(4242), "resolved");
    let e =
        w.h.engine
            .extend("alice", r.id, 300, "more")
            .await
            .unwrap_err();
    match e {
        Error::Refused(f) => {
            assert_eq!(f.kind, RefusalKind::Policy);
            assert!(
                f.message.contains("incident 4242 (pd) is resolved"),
                "{}",
                f.message
            );
            assert!(f.message.contains("cannot be extended"), "{}", f.message);
        }
        other => panic!("{other:?}"),
    }
    let now = w.h.engine.load(r.id).await.unwrap();
    assert_eq!(now.state, State::Active);
    assert_eq!(now.grant.unwrap().extensions.len(), 1, "nothing recorded");
}

#[tokio::test]
async fn roles_without_require_open_incident_accept_a_resolved_one() {
    let fake = Fake::new(vec![pd_incident(4242, "resolved")]);
    let srv = pd_server(fake);
    let src = pd(&srv.url);
    let h = harness_with(|p| {
        p.sources.push(src);
        let k8s = p.policy.roles.get_mut(K8S).unwrap();
        k8s.require_open_incident = false;
        k8s.revoke_on_resolve = false;
    });
    // The default role still refuses it.
    let e = h
        .engine
        .request("alice", input(DBA, inc("4242")))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("resolved"), "{e}");
    let r = active_on_4242(&h.engine, K8S).await;
    h.clock.advance(ChronoDuration::seconds(31));
    let rep = h.engine.recover().await.unwrap();
    assert!(rep.resolved_revoked.is_empty());
    h.engine.extend("alice", r.id, 60, "cleanup").await.unwrap();
    assert_eq!(h.state(r.id), State::Active);
}

// ---- configuration --------------------------------------------------------

fn demo_text() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let (tmp, path) = demo_dir();
    let text = std::fs::read_to_string(&path).unwrap();
    (tmp, path, text)
}

fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).unwrap_or_else(|| panic!("{needle}"))]
        .matches('\n')
        .count()
        + 1
}

#[test]
fn config_accepts_every_kind_with_defaults() {
    let (_tmp, path, mut text) = demo_text();
    text.push_str(
        r#"
[[incident_sources]]
name = "pagerduty"
kind = "pagerduty"
token_env = "PAGERDUTY_TOKEN"

[[incident_sources]]
name = "opsgenie-eu"
kind = "opsgenie"
base_url = "https://api.eu.opsgenie.com/"
token_env = "OPSGENIE_API_KEY"
timeout = "5s"
connect_timeout = "2s"
cache_ttl = "0s"
max_incidents = 500

[[incident_sources]]
name = "status"
kind = "http"
url = "http://127.0.0.1:8080/api/incidents"
token_env = "STATUS_TOKEN"
items_path = "data.incidents"
fields = { id = "number", title = "attributes.name", status = "attributes.state", opened_at = "ts.opened" }
"#,
    );
    let cfg = config::load_str(&text, &path).unwrap_or_else(|p| panic!("{p}"));
    let s = &cfg.incident_sources;
    assert_eq!(s.len(), 4);
    assert!(matches!(s[0].kind, SourceKind::File { .. }));
    assert_eq!(
        s[0].cache_ttl,
        Duration::ZERO,
        "files are not cached by default"
    );
    match &s[1].kind {
        SourceKind::PagerDuty(r) => {
            assert_eq!(r.url, "https://api.pagerduty.com");
            assert_eq!(r.token_env.as_deref(), Some("PAGERDUTY_TOKEN"));
            assert_eq!(r.timeout, Duration::from_secs(10));
            assert_eq!(r.max_incidents, 10_000);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s[1].cache_ttl, Duration::from_secs(10));
    match &s[2].kind {
        SourceKind::Opsgenie(r) => {
            assert_eq!(r.url, "https://api.eu.opsgenie.com");
            assert_eq!(r.timeout, Duration::from_secs(5));
            assert_eq!(r.connect_timeout, Duration::from_secs(2));
            assert_eq!(r.max_incidents, 500);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s[2].cache_ttl, Duration::ZERO);
    match &s[3].kind {
        SourceKind::Http {
            remote,
            items_path,
            fields,
            open_values,
        } => {
            assert_eq!(remote.url, "http://127.0.0.1:8080/api/incidents");
            assert_eq!(items_path.as_deref(), Some("data.incidents"));
            assert_eq!(fields.title, "attributes.name");
            assert_eq!(fields.severity, None);
            assert_eq!(open_values, &["open", "triggered", "acknowledged"]);
        }
        other => panic!("{other:?}"),
    }
    // Role defaults: both on.
    let role = &cfg.policy.roles[DBA];
    assert!(role.require_open_incident && role.revoke_on_resolve);
}

#[test]
fn config_problems_name_the_line_and_what_to_write() {
    let (_tmp, path, mut text) = demo_text();
    text.push_str(
        r#"
[[incident_sources]]
name = "pd-inline"
kind = "pagerduty"
token = "u+abcdefg"

[[incident_sources]]
name = "og-plain"
kind = "opsgenie"
base_url = "http://opsgenie.internal"
token_env = "OG"

[[incident_sources]]
name = "gen"
kind = "http"
url = "https://x.example/incidents"
fields = { id = "id", name = "title" }
path = "incidents.toml"

[[incident_sources]]
name = "gen2"
kind = "http"
url = "https://user:secret@x.example/incidents"
items_path = "data..list"
fields = { id = "id", title = "title" }
open_values = []

[[incident_sources]]
name = "weird"
kind = "servicenow"
"#,
    );
    let text = text.replacen(
        "name = \"k8s-cluster-admin\"\n",
        "name = \"k8s-cluster-admin\"\nrequire_open_incident = false\n",
        1,
    );
    let problems = config::load_str(&text, &path).unwrap_err().to_string();
    let expect = |needle: &str, line_needle: &str| {
        let line = line_of(&text, line_needle);
        let hit = problems
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{problems}"));
        assert!(
            hit.contains(&format!(":{line}: ")),
            "`{hit}` is not at line {line}"
        );
    };
    expect(
        "tokens never go in the config file; write token_env = \"PAGERDUTY_TOKEN\"",
        "token = \"u+abcdefg\"",
    );
    assert!(
        problems.contains(
            "incident source \"pd-inline\" (pagerduty) needs token_env = \"PAGERDUTY_TOKEN\""
        ),
        "{problems}"
    );
    expect(
        "would send the token unencrypted",
        "base_url = \"http://opsgenie.internal\"",
    );
    expect(
        "fields: \"name\" is not a field",
        "fields = { id = \"id\", name",
    );
    expect("fields needs title", "fields = { id = \"id\", name");
    expect(
        "path does not apply to kind = \"http\"",
        "path = \"incidents.toml\"\n\n[[incident_sources]]\nname = \"gen2\"",
    );
    expect(
        "credentials never go in a URL",
        "url = \"https://user:secret@",
    );
    expect(
        "items_path = \"data..list\" is not a dotted path",
        "items_path = \"data..list\"",
    );
    expect("open_values must list at least one", "open_values = []");
    expect("kind \"servicenow\" is not known; write kind = \"file\", \"pagerduty\", \"opsgenie\" or \"http\"", "kind = \"servicenow\"");
    expect(
        "require_open_incident = false lets access start on a resolved incident",
        "require_open_incident = false",
    );
    assert!(
        !problems.contains("u+abcdefg"),
        "the inline token is not echoed"
    );
}
