//! The Vault backend against a fake Vault on 127.0.0.1 that serves the documented
//! shapes of the token API (create-orphan, lookup-accessor, revoke-accessor,
//! renew-accessor, lookup-self, accessors LIST) and sys/health, requires
//! X-Vault-Token, and answers errors as `{"errors": [...]}`. Runs the backend
//! conformance suite, then the Vault specifics. backend_openbao.rs runs the same
//! suite on a real OpenBao; this fake stays for the faults a real server will not
//! give on demand (canned errors, garbage JSON), and follows what the real one
//! showed: lookup-self needs the default policy, which grants lack, and a policy
//! refusal reads "1 error occurred: * permission denied".

use crate::support;

use breakglass::backend::vault::VaultOptions;
use breakglass::backend::{Backend, BackendError, Credential, GrantSpec, VaultBackend};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::backend_conformance::{revoke_spec, spec, Target};

const ADMIN: &str = "hvs.ADMIN-test-token";
const ADMIN_ACCESSOR: &str = "admin-accessor";
/// How OpenBao words a policy's refusal of a valid token (an unknown token
/// gets a bare "permission denied").
const POLICY_DENIED: &str = "1 error occurred:\n\t* permission denied\n\n";

#[derive(Clone)]
struct Token {
    accessor: String,
    policies: Vec<String>,
    meta: Option<BTreeMap<String, String>>,
    display_name: String,
    creation_time: i64,
    expire_at: i64,
    explicit_max_ttl: i64,
    renewable: bool,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, Token>,
    sealed: bool,
    /// Every request as (method, path).
    log: Vec<(String, String)>,
    creates: Vec<(String, Value)>,
    renews: Vec<Value>,
    namespaces: Vec<Option<String>>,
    /// Answers for the next authenticated requests, whatever they are.
    canned: VecDeque<(u16, String)>,
    seq: u64,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn header(req: &tiny_http::Request, name: &str) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

fn reply(req: tiny_http::Request, status: u16, body: Value) {
    let text = if status == 204 {
        String::new()
    } else {
        body.to_string()
    };
    let _ = req.respond(
        tiny_http::Response::from_string(text)
            .with_status_code(status)
            .with_header(
                tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
                    .unwrap(),
            ),
    );
}

fn errors(req: tiny_http::Request, status: u16, msgs: &[&str]) {
    reply(req, status, json!({ "errors": msgs }));
}

/// Vault durations: "600s", "10m", "1h" or plain seconds.
fn secs(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok().or_else(|| {
            humantime::parse_duration(s)
                .ok()
                .map(|d| d.as_secs() as i64)
        }),
        _ => None,
    }
}

fn token_data(t: &Token) -> Value {
    json!({
        "accessor": t.accessor, "creation_time": t.creation_time,
        "creation_ttl": t.expire_at - t.creation_time,
        "display_name": t.display_name, "entity_id": "",
        "expire_time": chrono::DateTime::from_timestamp(t.expire_at, 0).unwrap().to_rfc3339(),
        "explicit_max_ttl": t.explicit_max_ttl, "id": "", "meta": t.meta,
        "num_uses": 0, "orphan": true, "path": "auth/token/create-orphan",
        "policies": t.policies, "renewable": t.renewable, "ttl": (t.expire_at - now()).max(0),
        "type": "service",
    })
}

fn auth(token: &str, t: &Token, lease: i64) -> Value {
    json!({
        "request_id": "5f1e", "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": null, "wrap_info": null, "warnings": null,
        "auth": {
            "client_token": token, "accessor": t.accessor, "policies": t.policies,
            "token_policies": t.policies, "metadata": t.meta, "lease_duration": lease,
            "renewable": t.renewable, "entity_id": "", "token_type": "service", "orphan": true,
        },
    })
}

fn live<'a>(s: &'a State, token: &str) -> Option<&'a Token> {
    s.tokens.get(token).filter(|t| t.expire_at > now())
}

fn by_accessor(s: &State, accessor: &str) -> Option<String> {
    s.tokens
        .iter()
        .find(|(_, t)| t.accessor == accessor && t.expire_at > now())
        .map(|(k, _)| k.clone())
}

fn handle(state: &Mutex<State>, mut req: tiny_http::Request) {
    let mut body = Vec::new();
    req.as_reader().read_to_end(&mut body).unwrap();
    let method = req.method().to_string();
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let path = path.to_string();
    let is_list = method == "LIST" || (method == "GET" && query.contains("list=true"));
    let token = header(&req, "X-Vault-Token");
    let mut s = state.lock().unwrap();
    s.log.push((method.clone(), path.clone()));
    s.namespaces.push(header(&req, "X-Vault-Namespace"));
    if s.sealed {
        drop(s);
        return errors(req, 503, &["Vault is sealed"]);
    }
    if path == "/v1/sys/health" {
        drop(s);
        return reply(
            req,
            200,
            json!({"initialized": true, "sealed": false, "standby": false,
                   "performance_standby": false, "replication_performance_mode": "disabled",
                   "replication_dr_mode": "disabled", "server_time_utc": now(),
                   "version": "1.17.2", "cluster_name": "vault-cluster-test", "cluster_id": "c1"}),
        );
    }
    let Some(token) = token else {
        drop(s);
        return errors(req, 403, &["permission denied"]);
    };
    if path == "/v1/auth/token/lookup-self" && method == "GET" {
        if token == ADMIN {
            drop(s);
            return reply(
                req,
                200,
                json!({"data": {"accessor": ADMIN_ACCESSOR, "ttl": 0, "policies": ["root"], "meta": null}}),
            );
        }
        // Only the default policy allows lookup-self, and grants come without it.
        let data =
            live(&s, &token).map(|t| (t.policies.iter().any(|p| p == "default"), token_data(t)));
        drop(s);
        return match data {
            Some((true, d)) => reply(req, 200, json!({ "data": d })),
            Some((false, _)) => errors(req, 403, &[POLICY_DENIED]),
            None => errors(req, 403, &["permission denied"]),
        };
    }
    // A KV v2 read as a role would allow it: here policy P reads secret/data/P.
    if let (Some(name), "GET") = (path.strip_prefix("/v1/secret/data/"), method.as_str()) {
        let allowed = if token == ADMIN {
            Some(true)
        } else {
            live(&s, &token).map(|t| t.policies.iter().any(|p| p == name))
        };
        drop(s);
        return match allowed {
            Some(true) => reply(
                req,
                200,
                json!({"data": {"data": {"password": format!("pw-{name}")}}}),
            ),
            Some(false) => errors(req, 403, &[POLICY_DENIED]),
            None => errors(req, 403, &["permission denied"]),
        };
    }
    // Everything else needs the admin token.
    if token != ADMIN {
        drop(s);
        return errors(req, 403, &["permission denied"]);
    }
    if let Some((status, text)) = s.canned.pop_front() {
        drop(s);
        let _ = req.respond(tiny_http::Response::from_string(text).with_status_code(status));
        return;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let accessor = v["accessor"].as_str().unwrap_or("").to_string();
    match (method.as_str(), path.as_str()) {
        ("POST", "/v1/auth/token/create-orphan") | ("POST", "/v1/auth/token/create") => {
            s.creates.push((path.clone(), v.clone()));
            let Some(policies) = v["policies"].as_array().map(|p| {
                p.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect::<Vec<_>>()
            }) else {
                drop(s);
                return errors(req, 400, &["policies must be a list"]);
            };
            let meta: Option<BTreeMap<String, String>> = match &v["meta"] {
                Value::Null => None,
                m => match serde_json::from_value(m.clone()) {
                    Ok(m) => Some(m),
                    Err(_) => {
                        drop(s);
                        return errors(req, 400, &["meta values must be strings"]);
                    }
                },
            };
            let ttl = secs(&v["ttl"]).unwrap_or(2_764_800);
            let max = secs(&v["explicit_max_ttl"]).unwrap_or(0);
            let lease = if max > 0 { ttl.min(max) } else { ttl };
            s.seq += 1;
            let id = format!("hvs.T{}{:012x}", s.seq, rand::random::<u64>() >> 16);
            let t = Token {
                accessor: format!("acc-{}-{:08x}", s.seq, rand::random::<u32>()),
                policies,
                meta,
                display_name: format!("token-{}", v["display_name"].as_str().unwrap_or("")),
                creation_time: now(),
                expire_at: now() + lease,
                explicit_max_ttl: max,
                renewable: v["renewable"].as_bool().unwrap_or(true),
            };
            s.tokens.insert(id.clone(), t.clone());
            drop(s);
            reply(req, 200, auth(&id, &t, lease))
        }
        ("POST", "/v1/auth/token/lookup-accessor") => {
            let data = by_accessor(&s, &accessor).map(|id| token_data(&s.tokens[&id]));
            drop(s);
            match data {
                Some(d) => reply(req, 200, json!({ "data": d })),
                None if accessor == ADMIN_ACCESSOR => reply(
                    req,
                    200,
                    json!({"data": {"accessor": ADMIN_ACCESSOR, "meta": null, "ttl": 0}}),
                ),
                None => errors(req, 400, &["invalid accessor"]),
            }
        }
        ("POST", "/v1/auth/token/revoke-accessor") => match by_accessor(&s, &accessor) {
            Some(id) => {
                s.tokens.remove(&id);
                drop(s);
                reply(req, 204, Value::Null)
            }
            None => {
                drop(s);
                errors(req, 400, &["invalid accessor"])
            }
        },
        ("POST", "/v1/auth/token/renew-accessor") => {
            s.renews.push(v.clone());
            let Some(id) = by_accessor(&s, &accessor) else {
                drop(s);
                return errors(req, 400, &["invalid accessor"]);
            };
            let t = s.tokens.get_mut(&id).unwrap();
            if !t.renewable {
                drop(s);
                return errors(req, 400, &["lease is not renewable"]);
            }
            let mut lease = secs(&v["increment"]).unwrap_or(0);
            if t.explicit_max_ttl > 0 {
                lease = lease.min(t.creation_time + t.explicit_max_ttl - now());
            }
            t.expire_at = now() + lease;
            let t = t.clone();
            drop(s);
            let mut a = auth("", &t, lease);
            a["auth"]["client_token"] = json!("");
            reply(req, 200, a)
        }
        (_, "/v1/auth/token/accessors") if is_list => {
            let mut keys: Vec<String> = s
                .tokens
                .values()
                .filter(|t| t.expire_at > now())
                .map(|t| t.accessor.clone())
                .collect();
            keys.push(ADMIN_ACCESSOR.into());
            drop(s);
            reply(req, 200, json!({"data": {"keys": keys}}))
        }
        _ => {
            drop(s);
            errors(req, 404, &[])
        }
    }
}

struct FakeVault {
    addr: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
}

impl FakeVault {
    fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let (addr, server) = support::receivers::serve(state.clone(), handle);
        FakeVault {
            addr,
            state,
            server,
        }
    }
    fn backend_with(&self, opts: VaultOptions) -> VaultBackend {
        VaultBackend::new(&self.addr, SecretString::from(ADMIN), opts)
    }
    fn backend(&self) -> VaultBackend {
        self.backend_with(quick())
    }
    fn requests_to(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|(_, p)| p == path)
            .count()
    }
}

impl Drop for FakeVault {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn quick() -> VaultOptions {
    VaultOptions {
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        ..Default::default()
    }
}

fn token_of(cred: &Credential) -> String {
    cred.reveal()
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_string())
        .expect("the credential is a token")
}

/// Asks Vault itself whether the token still works: it reads the secret its
/// policy allows (lookup-self would not do: grants lack the default policy).
async fn token_works(addr: &str, token: &str, policy: &str) -> bool {
    let r = reqwest::Client::new()
        .get(format!("{addr}/v1/secret/data/{policy}"))
        .header("X-Vault-Token", token)
        .send()
        .await
        .unwrap();
    match r.status().as_u16() {
        200 => true,
        403 => {
            let v: Value = r.json().await.unwrap();
            assert!(
                v["errors"][0]
                    .as_str()
                    .unwrap()
                    .contains("permission denied"),
                "{v}"
            );
            false
        }
        s => panic!("the secret read answered {s}"),
    }
}

struct VaultTarget {
    vault: FakeVault,
}

impl VaultTarget {
    fn new() -> Self {
        VaultTarget {
            vault: FakeVault::start(),
        }
    }
}

#[async_trait::async_trait]
impl Target for VaultTarget {
    fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(self.vault.backend())
    }
    fn hanging(&self) -> Arc<dyn Backend> {
        Arc::new(VaultBackend::new(
            support::receivers::silent_http_url(),
            SecretString::from(ADMIN),
            quick(),
        ))
    }
    fn scope(&self) -> Value {
        json!({"policies": ["breakglass-conformance"]})
    }
    async fn usable(&self, cred: &Credential, _spec: &GrantSpec) -> bool {
        token_works(&self.vault.addr, &token_of(cred), "breakglass-conformance").await
    }
    async fn set_down(&self, down: bool) {
        self.vault.state.lock().unwrap().sealed = down;
    }
}

mod conformance {
    use super::*;
    backend_conformance!(VaultTarget::new());
}

fn grant_spec(id: &str, scope: Value) -> GrantSpec {
    GrantSpec {
        scope,
        ..spec(&VaultTarget::new(), id)
    }
}

#[tokio::test]
async fn grant_creates_an_orphan_token_with_the_fields_vault_expects() {
    let v = FakeVault::start();
    let b = v.backend_with(VaultOptions {
        namespace: Some("ops/emergency".into()),
        ..quick()
    });
    let s = grant_spec("REQ-7", json!({"policies": ["db-admin", "kv-read"]}));
    let g = b.grant(&s).await.unwrap();
    {
        let st = v.state.lock().unwrap();
        let (path, body) = &st.creates[0];
        assert_eq!(path, "/v1/auth/token/create-orphan");
        assert_eq!(
            *body,
            json!({
                "policies": ["db-admin", "kv-read"],
                "ttl": "600s",
                "explicit_max_ttl": "600s",
                "renewable": false,
                "no_default_policy": true,
                "display_name": "breakglass-REQ-7",
                "meta": {"request_id": "REQ-7", "incident": "INC-1", "requester": "alice",
                         "role": "conformance", "issued_by": "breakglass"},
            })
        );
        assert!(st
            .namespaces
            .iter()
            .all(|n| n.as_deref() == Some("ops/emergency")));
        let (id, t) = st.tokens.iter().next().unwrap();
        assert_eq!(g.lease_id, t.accessor, "the lease id is the accessor");
        assert_eq!(token_of(&g.credential), *id, "the credential is the token");
        assert_eq!(format!("{:?}", g.credential), "[\"token=<redacted>\"]");
        let left = (g.expires_at.unwrap() - chrono::Utc::now()).num_seconds();
        assert!((595..=600).contains(&left), "{left}");
    }

    // The role's explicit_max_ttl, when the scope sets one.
    let s = grant_spec(
        "REQ-8",
        json!({"policies": ["p"], "explicit_max_ttl": "1h"}),
    );
    b.grant(&s).await.unwrap();
    assert_eq!(
        v.state.lock().unwrap().creates[1].1["explicit_max_ttl"],
        "3600s"
    );
}

#[tokio::test]
async fn a_scope_without_policies_is_refused_before_calling_vault() {
    let v = FakeVault::start();
    for scope in [
        json!({}),
        json!({"policies": []}),
        json!({"policies": ["ok", 3]}),
    ] {
        let m = match v.backend().grant(&grant_spec("REQ-1", scope)).await {
            Err(BackendError::Failed(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(m.contains("policies"), "{m}");
    }
    assert!(
        v.state.lock().unwrap().log.is_empty(),
        "Vault was never asked"
    );
}

#[tokio::test]
async fn extend_is_refused_when_tokens_are_not_renewable() {
    let v = FakeVault::start();
    let s = grant_spec(
        "REQ-2",
        json!({"policies": ["p"], "explicit_max_ttl": "1h"}),
    );
    let g = v.backend().grant(&s).await.unwrap();
    let r = v
        .backend()
        .extend(
            &revoke_spec(&s, Some(g.lease_id)),
            s.expires_at + chrono::Duration::minutes(5),
        )
        .await;
    match r {
        Err(BackendError::NotSupported(m)) => assert!(m.contains("request it again"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(v.requests_to("/v1/auth/token/renew-accessor"), 0);
}

#[tokio::test]
async fn extend_renews_renewable_tokens_up_to_explicit_max_ttl_and_no_further() {
    let v = FakeVault::start();
    let b = v.backend_with(VaultOptions {
        renewable: true,
        ..quick()
    });
    let s = grant_spec(
        "REQ-3",
        json!({"policies": ["p"], "explicit_max_ttl": "20m"}),
    );
    let g = b.grant(&s).await.unwrap();
    assert_eq!(v.state.lock().unwrap().creates[0].1["renewable"], true);
    let r = revoke_spec(&s, Some(g.lease_id.clone()));
    let target = chrono::Utc::now() + chrono::Duration::minutes(15);
    b.extend(&r, target).await.expect("within explicit_max_ttl");
    {
        let st = v.state.lock().unwrap();
        let inc = secs(&st.renews[0]["increment"]).unwrap();
        assert!((895..=900).contains(&inc), "{}", st.renews[0]);
        assert_eq!(st.renews[0]["accessor"], g.lease_id.as_str());
        let t = st.tokens.values().next().unwrap();
        assert!((t.expire_at - target.timestamp()).abs() <= 2);
    }
    let past = chrono::Utc::now() + chrono::Duration::minutes(30);
    match b.extend(&r, past).await {
        Err(BackendError::NotSupported(m)) => assert!(m.contains("explicit_max_ttl"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        v.requests_to("/v1/auth/token/renew-accessor"),
        1,
        "never asked past the cap"
    );
    assert!(token_works(&v.addr, &token_of(&g.credential), "p").await);
}

/// Vault answers durations; the instants made of them are on the engine's clock
/// (an hour behind here), like every other instant the engine stores.
#[tokio::test]
async fn lease_instants_are_on_the_engines_clock() {
    let at = chrono::Utc::now() - chrono::Duration::hours(1);
    let clock = Arc::new(breakglass::clock::ManualClock::new(at));
    let v = FakeVault::start();
    let b = v
        .backend_with(VaultOptions {
            renewable: true,
            ..quick()
        })
        .with_clock(clock);
    let s = grant_spec(
        "REQ-5",
        json!({"policies": ["p"], "explicit_max_ttl": "20m"}),
    );
    let g = b.grant(&s).await.unwrap();
    assert_eq!(g.expires_at, Some(at + chrono::Duration::seconds(600)));
    let r = revoke_spec(&s, Some(g.lease_id.clone()));
    b.extend(&r, at + chrono::Duration::minutes(15))
        .await
        .expect("within explicit_max_ttl");
    let st = v.state.lock().unwrap();
    assert_eq!(
        secs(&st.renews[0]["increment"]),
        Some(900),
        "{}",
        st.renews[0]
    );
}

#[tokio::test]
async fn revoking_an_unknown_accessor_is_fine() {
    let v = FakeVault::start();
    let s = grant_spec("REQ-4", json!({"policies": ["p"]}));
    v.backend()
        .revoke(&revoke_spec(&s, Some("acc-never-issued".into())))
        .await
        .expect("Vault's 400 invalid accessor means already gone");
    assert_eq!(v.requests_to("/v1/auth/token/revoke-accessor"), 1);
}

#[tokio::test]
async fn revoke_by_request_id_looks_up_every_accessor_and_revokes_only_its_own() {
    let v = FakeVault::start();
    let b = v.backend();
    let mine = grant_spec("REQ-5", json!({"policies": ["p"]}));
    let other = grant_spec("REQ-6", json!({"policies": ["p"]}));
    let g1 = b.grant(&mine).await.unwrap();
    let g1b = b.grant(&mine).await.unwrap();
    let g2 = b.grant(&other).await.unwrap();
    b.revoke(&revoke_spec(&mine, None)).await.unwrap();
    assert!(!token_works(&v.addr, &token_of(&g1.credential), "p").await);
    assert!(!token_works(&v.addr, &token_of(&g1b.credential), "p").await);
    assert!(token_works(&v.addr, &token_of(&g2.credential), "p").await);
    assert!(
        token_works(&v.addr, ADMIN, "p").await,
        "the admin token is untouched"
    );
    let st = v.state.lock().unwrap();
    assert!(st
        .log
        .contains(&("GET".into(), "/v1/auth/token/accessors".into())));
    // The cost: one lookup per token in Vault (3 issued + the admin's).
    assert_eq!(
        st.log
            .iter()
            .filter(|(_, p)| p == "/v1/auth/token/lookup-accessor")
            .count(),
        4
    );
}

#[tokio::test]
async fn vault_errors_surface_sanitised() {
    let v = FakeVault::start();
    let wrong = VaultBackend::new(&v.addr, SecretString::from("hvs.wrong"), quick());
    let s = grant_spec("REQ-9", json!({"policies": ["p"]}));
    let m = match wrong.grant(&s).await {
        Err(BackendError::Failed(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(
        m.contains("HTTP 403") && m.contains("permission denied"),
        "{m}"
    );

    v.state.lock().unwrap().canned.push_back((
        400,
        r#"{"errors":["1 error occurred:\n\t* policy \u001b[1m\"root\"\u001b[0m cannot be granted\n\n"]}"#.into(),
    ));
    let m = match v.backend().grant(&s).await {
        Err(BackendError::Failed(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(
        m.contains("HTTP 400") && m.contains("policy \"root\" cannot be granted"),
        "{m}"
    );
    assert!(!m.contains('\n') && !m.contains('\u{1b}'), "{m:?}");

    v.state
        .lock()
        .unwrap()
        .canned
        .push_back((200, "{not json".into()));
    assert!(matches!(
        v.backend().grant(&s).await,
        Err(BackendError::Protocol(_))
    ));
    v.state
        .lock()
        .unwrap()
        .canned
        .push_back((500, r#"{"errors":["internal error"]}"#.into()));
    let r = v
        .backend()
        .revoke(&revoke_spec(&s, Some("acc-1".into())))
        .await;
    assert!(matches!(r, Err(BackendError::Failed(m)) if m.contains("internal error")));
}

#[tokio::test]
async fn check_reports_health_and_the_admin_token() {
    let v = FakeVault::start();
    let m = v.backend().check().await.unwrap();
    assert!(
        m.contains("Vault 1.17.2") && m.contains("active, unsealed"),
        "{m}"
    );
    assert!(m.contains("admin token does not expire"), "{m}");
    let wrong = VaultBackend::new(&v.addr, SecretString::from("hvs.wrong"), quick());
    let e = wrong.check().await.unwrap_err().to_string();
    assert!(
        e.contains("does not accept the admin token") && e.contains("permission denied"),
        "{e}"
    );
    v.state.lock().unwrap().sealed = true;
    let e = v.backend().check().await.unwrap_err().to_string();
    assert!(e.contains("sealed"), "{e}");
}

#[tokio::test]
async fn address_and_token_from_unset_variables_are_clear_errors() {
    let v = FakeVault::start();
    let b = VaultBackend::from_env(
        Some(v.addr.clone()),
        "BREAKGLASS_TEST_NEVER_SET_V1",
        quick(),
    );
    let e = b.check().await.unwrap_err().to_string();
    assert!(
        e.contains("$BREAKGLASS_TEST_NEVER_SET_V1") && e.contains("token_env"),
        "{e}"
    );
    assert!(v.state.lock().unwrap().log.is_empty(), "nothing was sent");
}

fn config_with(backend: &str, scope: &str) -> String {
    format!(
        r#"
[backends.vault]
{backend}

[[roles]]
name = "r"
backend = "vault"
scope = {scope}
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
fn vault_config_is_validated_with_file_and_line() {
    let text = config_with(
        "kind = \"vault\"\naddr = \"https://vault.example:8200\"\nrenewable = true\nnamespace = \"ops\"",
        "{ policies = [\"db-admin\"], explicit_max_ttl = \"1h\" }",
    );
    let cfg = breakglass::config::load_str(&text, std::path::Path::new("/etc/bg/breakglass.toml"))
        .unwrap();
    match &cfg.backends["vault"] {
        breakglass::config::BackendConfig::Vault {
            addr,
            token_env,
            namespace,
            renewable,
            ..
        } => {
            assert_eq!(addr.as_deref(), Some("https://vault.example:8200"));
            assert_eq!(token_env, "VAULT_TOKEN");
            assert_eq!(namespace.as_deref(), Some("ops"));
            assert!(*renewable);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        breakglass::backend::build(
            &cfg.backends["vault"],
            Arc::new(breakglass::clock::SystemClock)
        )
        .kind(),
        "vault"
    );

    let p = problems(&config_with(
        "kind = \"vault\"\ntoken = \"hvs.inline\"",
        "{ policies = [\"p\"] }",
    ));
    assert!(
        p.iter()
            .any(|m| m.starts_with("/etc/bg/breakglass.toml:4:") && m.contains("VAULT_TOKEN")),
        "{p:?}"
    );
    assert!(p.iter().all(|m| !m.contains("hvs.inline")), "{p:?}");
    let p = problems(&config_with(
        "kind = \"vault\"\naddr = \"http://vault.example:8200\"",
        "{}",
    ));
    assert!(
        p.iter()
            .any(|m| m.contains(":4:") && m.contains("use https://")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains(":6:") && m.contains("needs policies")),
        "a vault role without policies would inherit the admin token's: {p:?}"
    );
    let p = problems(&config_with(
        "kind = \"vault\"",
        "{ policies = [\"p\"], explicit_max_ttl = \"soon\" }",
    ));
    assert!(p.iter().any(|m| m.contains("explicit_max_ttl")), "{p:?}");
}
