//! The HTTP backend against a real HTTP server on 127.0.0.1: a small reference
//! target that checks the HMAC signature and timestamp, keeps leases in memory and
//! honours Idempotency-Key. Runs the backend conformance suite, then the error
//! mapping, retry policy and signing specifics.

use crate::support;

use breakglass::backend::http::{signature, HttpOptions};
use breakglass::backend::{Backend, BackendError, Credential, GrantSpec, HttpBackend};
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::backend_conformance::{revoke_spec, spec, Target};

const SECRET: &str = "test-shared-secret-7f3a9c";

/// A canned answer for the next request to one op (after the signature check).
struct Canned {
    status: u16,
    body: String,
    delay: Duration,
}

struct Lease {
    request_id: String,
    token: String,
}

#[derive(Default)]
struct State {
    leases: HashMap<String, Lease>,
    down: bool,
    /// Requests that reached each op, rejected ones included.
    counts: HashMap<String, usize>,
    canned: HashMap<String, VecDeque<Canned>>,
    /// Grant replies by Idempotency-Key: a retried grant gets the same lease.
    idempotent: HashMap<String, String>,
    idempotency_keys: Vec<Option<String>>,
    /// Why requests were refused with 401.
    rejected: Vec<String>,
    seq: u64,
}

fn header(req: &tiny_http::Request, name: &str) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

fn json_response(status: u16, body: String) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(
            tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]).unwrap(),
        )
}

/// The server-side check the README documents: HMAC-SHA256 over
/// "<timestamp>.<body>", compared in constant time, timestamp within 5 minutes.
fn verify(req: &tiny_http::Request, body: &[u8]) -> Result<(), String> {
    let ts = header(req, "X-Breakglass-Timestamp").ok_or("missing timestamp")?;
    let sig = header(req, "X-Breakglass-Signature").ok_or("missing signature")?;
    let ts_num: i64 = ts.parse().map_err(|_| "bad timestamp")?;
    if (chrono::Utc::now().timestamp() - ts_num).abs() > 300 {
        return Err("stale timestamp".into());
    }
    let hex_sig = sig.strip_prefix("sha256=").ok_or("bad signature scheme")?;
    let given = hex::decode(hex_sig).map_err(|_| "bad signature encoding")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| "bad signature".to_string())
}

fn handle(state: &Mutex<State>, mut req: tiny_http::Request) {
    let mut body = Vec::new();
    req.as_reader().read_to_end(&mut body).unwrap();
    let path = req.url().to_string();

    // The target itself: is this token still good? (What `usable` asks.)
    if path == "/token-check" {
        let token = header(&req, "Authorization").unwrap_or_default();
        let ok = state
            .lock()
            .unwrap()
            .leases
            .values()
            .any(|l| format!("Bearer {}", l.token) == token);
        let _ = req.respond(json_response(if ok { 200 } else { 401 }, "{}".into()));
        return;
    }

    let op = path.trim_start_matches('/').to_string();
    let canned = {
        let mut s = state.lock().unwrap();
        *s.counts.entry(op.clone()).or_default() += 1;
        if s.down {
            drop(s);
            let _ = req.respond(json_response(
                503,
                r#"{"ok":false,"error":"maintenance"}"#.into(),
            ));
            return;
        }
        if let Err(why) = verify(&req, &body) {
            s.rejected.push(why.clone());
            drop(s);
            let _ = req.respond(json_response(
                401,
                serde_json::json!({"ok": false, "error": why}).to_string(),
            ));
            return;
        }
        s.canned.get_mut(&op).and_then(|q| q.pop_front())
    };
    if let Some(c) = canned {
        std::thread::sleep(c.delay);
        let _ = req.respond(json_response(c.status, c.body));
        return;
    }
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            let _ = req.respond(json_response(
                400,
                r#"{"ok":false,"error":"body is not JSON"}"#.into(),
            ));
            return;
        }
    };
    if v["protocol"] != "breakglass.exec/v1" || v["op"] != op.as_str() {
        let _ = req.respond(json_response(
            400,
            r#"{"ok":false,"error":"protocol or op mismatch"}"#.into(),
        ));
        return;
    }
    let mut s = state.lock().unwrap();
    let (status, reply) = match op.as_str() {
        "grant" => {
            let key = header(&req, "Idempotency-Key");
            s.idempotency_keys.push(key.clone());
            match key.as_ref().and_then(|k| s.idempotent.get(k)) {
                Some(previous) => (200, previous.clone()),
                None => {
                    s.seq += 1;
                    let lease = format!("lease-{}", s.seq);
                    let token = format!("tok-{}-{}", s.seq, rand_suffix());
                    s.leases.insert(
                        lease.clone(),
                        Lease {
                            request_id: v["request_id"].as_str().unwrap().to_string(),
                            token: token.clone(),
                        },
                    );
                    let reply = serde_json::json!({
                        "ok": true, "lease_id": lease,
                        "credential": {"token": token},
                        "expires_at": v["expires_at"],
                    })
                    .to_string();
                    if let Some(k) = key {
                        s.idempotent.insert(k, reply.clone());
                    }
                    (200, reply)
                }
            }
        }
        "revoke" => {
            match v["lease_id"].as_str() {
                Some(l) => {
                    s.leases.remove(l);
                }
                None => {
                    let rid = v["request_id"].as_str().unwrap().to_string();
                    s.leases.retain(|_, l| l.request_id != rid);
                }
            }
            (200, r#"{"ok":true}"#.to_string())
        }
        "extend" => match v["lease_id"].as_str() {
            Some(l) if s.leases.contains_key(l) => (200, r#"{"ok":true}"#.to_string()),
            _ => (404, r#"{"ok":false,"error":"unknown lease"}"#.to_string()),
        },
        "rotate" => (200, r#"{"ok":true}"#.to_string()),
        // A drill: is the credential sent with the lease still good?
        "probe" => {
            let good = v["lease_id"]
                .as_str()
                .and_then(|l| s.leases.get(l))
                .is_some_and(|l| v["credential"]["token"] == l.token.as_str());
            if good {
                (200, r#"{"ok":true,"message":"token accepted"}"#.to_string())
            } else {
                (200, r#"{"ok":false,"error":"token refused"}"#.to_string())
            }
        }
        "check" => (
            200,
            serde_json::json!({"ok": true, "message": format!("fake target: {} active lease(s)", s.leases.len())})
                .to_string(),
        ),
        _ => (404, r#"{"ok":false,"error":"no such op"}"#.to_string()),
    };
    drop(s);
    let _ = req.respond(json_response(status, reply));
}

fn rand_suffix() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

/// A real HTTP server on 127.0.0.1:<random port>, one thread per request.
struct Fake {
    url: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
}

impl Fake {
    fn start() -> Fake {
        let state = Arc::new(Mutex::new(State::default()));
        let (url, server) = support::receivers::serve(state.clone(), handle);
        Fake { url, state, server }
    }
    fn backend_with(&self, secret: &str, opts: HttpOptions) -> HttpBackend {
        HttpBackend::new(&self.url, SecretString::from(secret.to_string()), opts)
    }
    fn backend(&self) -> HttpBackend {
        self.backend_with(SECRET, quick())
    }
    fn can(&self, op: &str, status: u16, body: &str, delay: Duration) {
        self.state
            .lock()
            .unwrap()
            .canned
            .entry(op.into())
            .or_default()
            .push_back(Canned {
                status,
                body: body.into(),
                delay,
            });
    }
    fn count(&self, op: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .counts
            .get(op)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn quick() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        revoke_retries: 3,
    }
}

fn token_of(cred: &Credential) -> String {
    cred.reveal()
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_string())
        .expect("the credential has a token")
}

struct HttpTarget {
    fake: Fake,
}

impl HttpTarget {
    fn new() -> Self {
        HttpTarget {
            fake: Fake::start(),
        }
    }
}

#[async_trait::async_trait]
impl Target for HttpTarget {
    fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(self.fake.backend())
    }
    fn hanging(&self) -> Arc<dyn Backend> {
        Arc::new(HttpBackend::new(
            support::receivers::silent_http_url(),
            SecretString::from(SECRET),
            quick(),
        ))
    }
    fn scope(&self) -> serde_json::Value {
        serde_json::json!({"service": "payments-api"})
    }
    async fn usable(&self, cred: &Credential, _spec: &GrantSpec) -> bool {
        let r = reqwest::Client::new()
            .get(format!("{}/token-check", self.fake.url))
            .bearer_auth(token_of(cred))
            .send()
            .await
            .unwrap();
        r.status() == 200
    }
    async fn set_down(&self, down: bool) {
        self.fake.state.lock().unwrap().down = down;
    }
}

mod conformance {
    use super::*;
    backend_conformance!(HttpTarget::new());
}

fn target_spec(id: &str) -> GrantSpec {
    spec(&HttpTarget::new(), id)
}

fn failed(r: Result<impl std::fmt::Debug, BackendError>) -> String {
    match r {
        Err(BackendError::Failed(m)) => m,
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_4xx_surfaces_the_servers_sanitised_message() {
    let f = Fake::start();
    f.can(
        "grant",
        403,
        r#"{"ok":false,"error":"role \u001b[31mpayments-admin\u001b[0m is frozen\nby change control"}"#,
        Duration::ZERO,
    );
    let m = failed(f.backend().grant(&target_spec("REQ-1")).await);
    assert!(m.contains("HTTP 403"), "{m}");
    assert!(
        m.contains("role payments-admin is frozen by change control"),
        "{m}"
    );
    assert!(!m.contains('\u{1b}') && !m.contains('\n'), "{m:?}");

    // A plain-text error body is used as is, truncated.
    f.can("revoke", 422, &"x".repeat(5000), Duration::ZERO);
    let r = f
        .backend()
        .revoke(&revoke_spec(&target_spec("REQ-1"), None))
        .await;
    let m = failed(r);
    assert!(m.contains("HTTP 422") && m.len() < 600, "{m}");
    assert_eq!(f.count("revoke"), 1, "a 4xx is not retried, even on revoke");
}

#[tokio::test]
async fn a_5xx_on_grant_is_not_retried() {
    let f = Fake::start();
    for _ in 0..5 {
        f.can(
            "grant",
            503,
            r#"{"ok":false,"error":"overloaded"}"#,
            Duration::ZERO,
        );
    }
    let m = failed(f.backend().grant(&target_spec("REQ-2")).await);
    assert!(m.contains("HTTP 503") && m.contains("overloaded"), "{m}");
    assert_eq!(f.count("grant"), 1, "a grant is never retried blindly");
}

#[tokio::test]
async fn a_5xx_on_revoke_is_retried_until_the_server_recovers() {
    let f = Fake::start();
    let s = target_spec("REQ-3");
    let g = f.backend().grant(&s).await.unwrap();
    f.can("revoke", 502, "bad gateway", Duration::ZERO);
    f.can(
        "revoke",
        503,
        r#"{"ok":false,"error":"busy"}"#,
        Duration::ZERO,
    );
    f.can("revoke", 500, "oops", Duration::ZERO);
    f.backend()
        .revoke(&revoke_spec(&s, Some(g.lease_id.clone())))
        .await
        .expect("the fourth attempt succeeds");
    assert_eq!(f.count("revoke"), 4, "1 attempt + revoke_retries (3)");
    assert!(f.state.lock().unwrap().leases.is_empty());
}

#[tokio::test]
async fn revoke_retries_are_bounded() {
    let f = Fake::start();
    for _ in 0..10 {
        f.can("revoke", 503, "down", Duration::ZERO);
    }
    let b = f.backend_with(
        SECRET,
        HttpOptions {
            revoke_retries: 2,
            ..quick()
        },
    );
    let m = failed(b.revoke(&revoke_spec(&target_spec("REQ-4"), None)).await);
    assert!(m.contains("after 3 attempts"), "{m}");
    assert_eq!(f.count("revoke"), 3);
}

#[tokio::test]
async fn a_slow_answer_past_the_timeout_is_a_timeout() {
    let f = Fake::start();
    f.can("grant", 200, r#"{"ok":true}"#, Duration::from_secs(4));
    let b = f.backend_with(
        SECRET,
        HttpOptions {
            timeout: Duration::from_secs(1),
            ..quick()
        },
    );
    let started = Instant::now();
    match b.grant(&target_spec("REQ-5")).await {
        Err(BackendError::Timeout(d)) => assert_eq!(d, Duration::from_secs(1)),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(2500));
}

#[tokio::test]
async fn malformed_json_is_a_protocol_error() {
    let f = Fake::start();
    f.can("grant", 200, "<html>surprise</html>", Duration::ZERO);
    f.can(
        "grant",
        200,
        r#"{"ok":true,"lease_id":"l-1"}"#,
        Duration::ZERO,
    );
    for want in ["not the plugin protocol", "no credential"] {
        match f.backend().grant(&target_spec("REQ-6")).await {
            Err(BackendError::Protocol(m)) => assert!(m.contains(want), "{m}"),
            other => panic!("expected Protocol, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_wrong_secret_is_rejected_by_the_server_with_a_clear_error() {
    let f = Fake::start();
    let b = f.backend_with("not-the-secret", quick());
    let m = failed(b.grant(&target_spec("REQ-7")).await);
    assert!(m.contains("HTTP 401") && m.contains("bad signature"), "{m}");
    assert!(
        m.contains("secret_env"),
        "the message says what to check: {m}"
    );
    assert!(f.state.lock().unwrap().leases.is_empty());
    assert_eq!(f.state.lock().unwrap().rejected, vec!["bad signature"]);
}

#[tokio::test]
async fn a_secret_from_an_unset_variable_is_a_clear_error_before_any_request() {
    let f = Fake::start();
    let b = HttpBackend::from_env(&f.url, "BREAKGLASS_TEST_NEVER_SET_7Q", quick());
    let m = failed(b.check().await);
    assert!(
        m.contains("$BREAKGLASS_TEST_NEVER_SET_7Q") && m.contains("secret_env"),
        "{m}"
    );
    assert_eq!(f.count("check"), 0);
}

#[tokio::test]
async fn grant_sends_the_request_id_as_idempotency_key_and_the_server_honours_it() {
    let f = Fake::start();
    let s = target_spec("REQ-8");
    let a = f.backend().grant(&s).await.unwrap();
    let b = f.backend().grant(&s).await.unwrap();
    let st = f.state.lock().unwrap();
    assert_eq!(
        st.idempotency_keys,
        vec![Some("REQ-8".to_string()), Some("REQ-8".to_string())]
    );
    assert_eq!(
        a.lease_id, b.lease_id,
        "a repeated grant gets the same lease"
    );
    assert_eq!(st.leases.len(), 1);
}

#[tokio::test]
async fn extend_and_check_round_trip() {
    let f = Fake::start();
    let s = target_spec("REQ-9");
    let g = f.backend().grant(&s).await.unwrap();
    f.backend()
        .extend(
            &revoke_spec(&s, Some(g.lease_id.clone())),
            s.expires_at + chrono::Duration::minutes(5),
        )
        .await
        .unwrap();
    let m = failed(
        f.backend()
            .extend(&revoke_spec(&s, Some("lease-nope".into())), s.expires_at)
            .await,
    );
    assert!(m.contains("HTTP 404") && m.contains("unknown lease"), "{m}");
    assert_eq!(
        f.backend().check().await.unwrap(),
        "fake target: 1 active lease(s)"
    );
}

/// A proxy between backend and server that rewrites the body and keeps the
/// headers: the signature no longer matches, so the server refuses.
fn tampering_proxy(upstream: String, tamper: bool) -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = reqwest::Client::new();
        for mut req in server.incoming_requests() {
            let mut body = String::new();
            req.as_reader().read_to_string(&mut body).unwrap();
            if tamper {
                body = body.replace("\"requester\":\"alice\"", "\"requester\":\"mallory\"");
            }
            let mut fwd = client.post(format!("{upstream}{}", req.url())).body(body);
            for h in [
                "X-Breakglass-Timestamp",
                "X-Breakglass-Signature",
                "Idempotency-Key",
            ] {
                if let Some(v) = header(&req, h) {
                    fwd = fwd.header(h, v);
                }
            }
            let (status, text) = rt.block_on(async {
                let r = fwd.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            });
            let _ = req.respond(json_response(status, text));
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn the_signature_covers_the_body() {
    let f = Fake::start();
    let s = target_spec("REQ-10");
    let honest = HttpBackend::new(
        tampering_proxy(f.url.clone(), false),
        SecretString::from(SECRET),
        quick(),
    );
    honest
        .grant(&s)
        .await
        .expect("an untouched request passes the proxy");

    let s = target_spec("REQ-11");
    let tampered = HttpBackend::new(
        tampering_proxy(f.url.clone(), true),
        SecretString::from(SECRET),
        quick(),
    );
    let m = failed(tampered.grant(&s).await);
    assert!(m.contains("HTTP 401") && m.contains("bad signature"), "{m}");
    let st = f.state.lock().unwrap();
    assert_eq!(st.leases.len(), 1, "only the untouched grant happened");
    assert_eq!(st.rejected, vec!["bad signature"]);
}

/// Requests are dated by the backend's clock (the engine's): one an hour behind
/// signs stale requests, which the reference server refuses.
#[tokio::test]
async fn requests_are_dated_by_the_injected_clock() {
    let f = Fake::start();
    let behind = chrono::Utc::now() - chrono::Duration::hours(1);
    let clock = Arc::new(breakglass::clock::ManualClock::new(behind));
    let m = failed(f.backend().with_clock(clock.clone()).check().await);
    assert!(m.contains("HTTP 401"), "{m}");
    assert_eq!(f.state.lock().unwrap().rejected, vec!["stale timestamp"]);
    clock.set(chrono::Utc::now());
    f.backend().with_clock(clock).check().await.unwrap();
}

#[tokio::test]
async fn the_reference_server_refuses_stale_timestamps() {
    let f = Fake::start();
    let body = br#"{"protocol":"breakglass.exec/v1","op":"check"}"#;
    let client = reqwest::Client::new();
    for (age, want) in [(0i64, 200u16), (299, 200), (301, 401), (-400, 401)] {
        let ts = chrono::Utc::now().timestamp() - age;
        let r = client
            .post(format!("{}/check", f.url))
            .header("X-Breakglass-Timestamp", ts.to_string())
            .header(
                "X-Breakglass-Signature",
                signature(SECRET.as_bytes(), ts, body),
            )
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "timestamp {age} s old");
    }
    assert_eq!(
        f.state.lock().unwrap().rejected,
        vec!["stale timestamp", "stale timestamp"]
    );
}

#[test]
fn signature_is_hmac_sha256_over_timestamp_dot_body() {
    // Independently computed: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
    assert_eq!(
        signature(b"key", 1_700_000_000, br#"{"a":1}"#),
        format!("sha256={}", {
            let mut m = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
            m.update(br#"1700000000.{"a":1}"#);
            hex::encode(m.finalize().into_bytes())
        })
    );
}

fn config_with(backend: &str) -> String {
    format!(
        r#"
[backends.api]
{backend}

[[roles]]
name = "r"
backend = "api"
scope = {{ policies = ["p"] }}
default_ttl = "15m"
max_ttl = "30m"
conditions = ["outage"]
requesters = ["alice"]
approvers = ["bob"]
certifiers = ["carol"]
"#
    )
}

fn problems(text: &str) -> Vec<String> {
    match breakglass::config::load_str(text, std::path::Path::new("/etc/bg/breakglass.toml")) {
        Ok(_) => vec![],
        Err(p) => p.0.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn http_config_is_validated_with_file_and_line() {
    let ok = config_with(
        "kind = \"http\"\nurl = \"https://access.example.com/bg\"\nsecret_env = \"BG_SECRET\"\ntimeout = \"10s\"\nconnect_timeout = \"2s\"\nrevoke_retries = 5",
    );
    let cfg =
        breakglass::config::load_str(&ok, std::path::Path::new("/etc/bg/breakglass.toml")).unwrap();
    match &cfg.backends["api"] {
        breakglass::config::BackendConfig::Http {
            url,
            secret_env,
            timeout,
            connect_timeout,
            revoke_retries,
        } => {
            assert_eq!(url, "https://access.example.com/bg");
            assert_eq!(secret_env, "BG_SECRET");
            assert_eq!(*timeout, Duration::from_secs(10));
            assert_eq!(*connect_timeout, Duration::from_secs(2));
            assert_eq!(*revoke_retries, 5);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        breakglass::backend::build(
            &cfg.backends["api"],
            Arc::new(breakglass::clock::SystemClock)
        )
        .kind(),
        "http"
    );

    let p = problems(&config_with(
        "kind = \"http\"\nurl = \"https://a.example\"\nsecret = \"hunter2\"",
    ));
    assert!(
        p.iter()
            .any(|m| m.starts_with("/etc/bg/breakglass.toml:5:") && m.contains("write secret_env")),
        "{p:?}"
    );
    assert!(p.iter().all(|m| !m.contains("hunter2")), "{p:?}");
    let p = problems(&config_with(
        "kind = \"http\"\nurl = \"http://access.example.com\"\nsecret_env = \"S\"",
    ));
    assert!(
        p.iter()
            .any(|m| m.contains(":4:") && m.contains("use https://")),
        "{p:?}"
    );
    let p = problems(&config_with(
        "kind = \"http\"\nsecret_env = \"not a name\"\nrevoke_retries = 99",
    ));
    assert!(p.iter().any(|m| m.contains("needs url")), "{p:?}");
    assert!(
        p.iter()
            .any(|m| m.contains(":4:") && m.contains("not an environment variable name")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains(":5:") && m.contains("between 0 and 10")),
        "{p:?}"
    );
}

/// A drill's probe: the signed `POST /probe` carries the lease and the
/// credential; the target accepts it while the lease lives, refuses it after.
#[tokio::test]
async fn probe_sends_the_credential_and_reads_the_targets_answer() {
    let fake = Fake::start();
    let b = fake.backend();
    let s = target_spec("REQ-9");
    let g = b.grant(&s).await.unwrap();
    let spec = breakglass::backend::RevokeSpec {
        request_id: s.request_id.clone(),
        role: s.role.clone(),
        scope: s.scope.clone(),
        lease_id: Some(g.lease_id.clone()),
    };
    assert_eq!(
        b.probe(&spec, &g.credential).await.unwrap(),
        "token accepted"
    );
    b.revoke(&spec).await.unwrap();
    let e = failed(b.probe(&spec, &g.credential).await);
    assert!(e.contains("token refused"), "{e}");
    assert_eq!(fake.count("probe"), 2);
    assert!(
        fake.state.lock().unwrap().rejected.is_empty(),
        "both were signed"
    );
}
