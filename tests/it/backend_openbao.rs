//! The Vault backend against a real OpenBao dev server (tests/it/support/openbao.rs),
//! one per test. The admin token is not root: it holds only the policy README.md
//! documents for breakglass, so these tests also prove those permissions suffice.
//! The roles' policies and a KV secret are created through the real API, and
//! "the credential works" means the token reads the secret its policy allows.
//! The fake in backend_vault.rs stays for the faults a real server will not
//! produce on demand (garbage answers, canned errors).

use crate::support;

use breakglass::backend::vault::VaultOptions;
use breakglass::backend::{Backend, BackendError, Credential, GrantSpec, VaultBackend};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use support::backend_conformance::{revoke_spec, Target};
use support::openbao::BaoServer;

/// The role policy of the conformance scope: read one KV v2 secret.
const ROLE_POLICY: &str = "breakglass-conformance";
const SECRET: &str = "emergency-db-password";

/// What breakglass's admin token needs, as README.md's Vault section lists it.
const ADMIN_POLICY: &str = r#"
path "auth/token/create-orphan"   { capabilities = ["update", "sudo"] }
path "auth/token/lookup-accessor" { capabilities = ["update"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "auth/token/renew-accessor"  { capabilities = ["update"] }
path "auth/token/accessors"       { capabilities = ["list", "sudo"] }
"#;

struct Bao {
    server: BaoServer,
    /// A token of the admin policy (and Vault's default policy, for lookup-self).
    admin: String,
}

impl Bao {
    async fn start() -> Bao {
        let server = BaoServer::start();
        server
            .put_policy(
                ROLE_POLICY,
                &format!(r#"path "secret/data/{ROLE_POLICY}" {{ capabilities = ["read"] }}"#),
            )
            .await;
        server
            .kv_put(ROLE_POLICY, json!({ "password": SECRET }))
            .await;
        server
            .kv_put("other", json!({ "password": "not yours" }))
            .await;
        server.put_policy("breakglass-admin", ADMIN_POLICY).await;
        let admin = server.token(&["breakglass-admin"]).await;
        Bao { server, admin }
    }

    fn backend_with(&self, opts: VaultOptions) -> VaultBackend {
        VaultBackend::new(
            &self.server.addr,
            SecretString::from(self.admin.clone()),
            opts,
        )
    }

    fn backend(&self) -> VaultBackend {
        self.backend_with(quick())
    }

    /// Reads `secret/data/<path>` with `token`: the secret's password, or the
    /// HTTP status and errors of a refusal.
    async fn read(&self, token: &str, path: &str) -> Result<String, (u16, String)> {
        let (status, v) = self
            .server
            .api(Method::GET, &format!("/v1/secret/data/{path}"), None, token)
            .await;
        match status {
            200 => Ok(v["data"]["data"]["password"].as_str().unwrap().into()),
            _ => Err((status, v["errors"].to_string())),
        }
    }

    /// The token behind `accessor`, as the admin sees it (`None`: gone).
    async fn lookup(&self, accessor: &str) -> Option<Value> {
        let (status, v) = self
            .server
            .api(
                Method::POST,
                "/v1/auth/token/lookup-accessor",
                Some(json!({ "accessor": accessor })),
                &self.admin,
            )
            .await;
        match status {
            200 => Some(v["data"].clone()),
            400 => {
                assert!(v["errors"].to_string().contains("invalid accessor"), "{v}");
                None
            }
            s => panic!("lookup-accessor answered {s}: {v}"),
        }
    }
}

fn quick() -> VaultOptions {
    VaultOptions {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    }
}

fn token_of(cred: &Credential) -> String {
    cred.reveal()
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_string())
        .expect("the credential is a token")
}

fn denied(r: Result<String, (u16, String)>) -> bool {
    match r {
        Ok(_) => false,
        Err((403, e)) if e.contains("permission denied") => true,
        Err(e) => panic!("expected 403 permission denied, got {e:?}"),
    }
}

fn grant_spec(id: &str, scope: Value, ttl_seconds: i64) -> GrantSpec {
    GrantSpec {
        request_id: id.into(),
        role: "conformance".into(),
        scope,
        requester: "alice".into(),
        ttl_seconds,
        expires_at: chrono::Utc::now() + chrono::Duration::seconds(ttl_seconds),
        incident: "INC-1".into(),
    }
}

fn scope() -> Value {
    json!({ "policies": [ROLE_POLICY] })
}

#[async_trait::async_trait]
impl Target for Bao {
    fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(Bao::backend(self))
    }
    fn hanging(&self) -> Arc<dyn Backend> {
        Arc::new(VaultBackend::new(
            support::receivers::silent_http_url(),
            SecretString::from(self.admin.clone()),
            quick(),
        ))
    }
    fn scope(&self) -> Value {
        scope()
    }
    async fn usable(&self, cred: &Credential, _spec: &GrantSpec) -> bool {
        match self.read(&token_of(cred), ROLE_POLICY).await {
            Ok(p) => {
                assert_eq!(p, SECRET);
                true
            }
            r => !denied(r),
        }
    }
    /// Sealed: every API call answers 503 until it is unsealed again.
    async fn set_down(&self, down: bool) {
        if down {
            self.server.seal().await
        } else {
            self.server.unseal().await
        }
    }
}

mod conformance {
    use super::*;
    backend_conformance!(Bao::start().await);
}

#[tokio::test]
async fn a_grant_is_an_orphan_token_of_exactly_the_role_policies() {
    let bao = Bao::start().await;
    let s = grant_spec("REQ-201", scope(), 600);
    let g = bao.backend().grant(&s).await.expect("grant");
    let token = token_of(&g.credential);
    assert_eq!(bao.read(&token, ROLE_POLICY).await.unwrap(), SECRET);
    assert!(
        denied(bao.read(&token, "other").await),
        "a path its policy does not allow"
    );

    let info = bao
        .lookup(&g.lease_id)
        .await
        .expect("the lease id is the accessor");
    assert_eq!(info["policies"], json!([ROLE_POLICY]), "{info}");
    assert_eq!(info["display_name"], "token-breakglass-REQ-201", "{info}");
    assert_eq!(info["orphan"], true);
    assert_eq!(info["renewable"], false);
    assert_eq!(info["path"], "auth/token/create-orphan");
    assert_eq!(
        info["meta"],
        json!({"request_id": "REQ-201", "incident": "INC-1", "requester": "alice",
               "role": "conformance", "issued_by": "breakglass"})
    );
    let ttl = info["ttl"].as_i64().unwrap();
    assert!((590..=600).contains(&ttl), "{ttl}");
    assert_eq!(info["explicit_max_ttl"], 600);

    // No default policy: the holder cannot look itself up, nor renew or revoke itself.
    for (method, path) in [
        (Method::GET, "/v1/auth/token/lookup-self"),
        (Method::POST, "/v1/auth/token/renew-self"),
        (Method::POST, "/v1/auth/token/revoke-self"),
    ] {
        let (status, v) = bao.server.api(method, path, None, &token).await;
        assert_eq!(status, 403, "{path}: {v}");
    }
    assert_eq!(bao.read(&token, ROLE_POLICY).await.unwrap(), SECRET);

    // README's way to let holders see their token: a policy of lookup-self only.
    bao.server
        .put_policy(
            "token-lookup-self",
            r#"path "auth/token/lookup-self" { capabilities = ["read"] }"#,
        )
        .await;
    let s = grant_spec(
        "REQ-208",
        json!({"policies": [ROLE_POLICY, "token-lookup-self"]}),
        600,
    );
    let token = token_of(&bao.backend().grant(&s).await.unwrap().credential);
    let (status, v) = bao
        .server
        .api(Method::GET, "/v1/auth/token/lookup-self", None, &token)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["display_name"], "token-breakglass-REQ-208");
    let (status, _) = bao
        .server
        .api(Method::POST, "/v1/auth/token/renew-self", None, &token)
        .await;
    assert_eq!(status, 403, "still no renew-self");
}

#[tokio::test]
async fn the_server_ends_the_token_at_its_ttl_without_breakglass() {
    let bao = Bao::start().await;
    let s = grant_spec("REQ-202", scope(), 2);
    let g = bao.backend().grant(&s).await.expect("grant");
    let token = token_of(&g.credential);
    assert_eq!(bao.read(&token, ROLE_POLICY).await.unwrap(), SECRET);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(denied(bao.read(&token, ROLE_POLICY).await), "expired");
    assert!(bao.lookup(&g.lease_id).await.is_none(), "Vault forgot it");
    bao.backend()
        .revoke(&revoke_spec(&s, Some(g.lease_id)))
        .await
        .expect("revoking an expired token is fine");
}

#[tokio::test]
async fn revoke_by_request_id_takes_only_that_requests_tokens() {
    let bao = Bao::start().await;
    let b = bao.backend();
    let mine = grant_spec("REQ-203", scope(), 600);
    let other = grant_spec("REQ-204", scope(), 600);
    let g1 = b.grant(&mine).await.unwrap();
    let g1b = b.grant(&mine).await.unwrap();
    let g2 = b.grant(&other).await.unwrap();
    b.revoke(&revoke_spec(&mine, None)).await.unwrap();
    assert!(denied(
        bao.read(&token_of(&g1.credential), ROLE_POLICY).await
    ));
    assert!(denied(
        bao.read(&token_of(&g1b.credential), ROLE_POLICY).await
    ));
    assert_eq!(
        bao.read(&token_of(&g2.credential), ROLE_POLICY)
            .await
            .unwrap(),
        SECRET
    );
    assert!(bao.lookup(&g2.lease_id).await.is_some());
    let (status, _) = bao
        .server
        .api(Method::GET, "/v1/auth/token/lookup-self", None, &bao.admin)
        .await;
    assert_eq!(status, 200, "the admin token is untouched");
}

#[tokio::test]
async fn renewable_tokens_extend_through_breakglass_only_and_never_past_the_cap() {
    let bao = Bao::start().await;
    let b = bao.backend_with(VaultOptions {
        renewable: true,
        ..quick()
    });
    let s = grant_spec(
        "REQ-205",
        json!({"policies": [ROLE_POLICY], "explicit_max_ttl": "20m"}),
        300,
    );
    let g = b.grant(&s).await.unwrap();
    let token = token_of(&g.credential);
    // The holder cannot stretch its own access: without the default policy
    // renew-self is denied even on a renewable token.
    let (status, v) = bao
        .server
        .api(
            Method::POST,
            "/v1/auth/token/renew-self",
            Some(json!({"increment": "15m"})),
            &token,
        )
        .await;
    assert_eq!(status, 403, "{v}");

    let r = revoke_spec(&s, Some(g.lease_id.clone()));
    b.extend(&r, chrono::Utc::now() + chrono::Duration::minutes(15))
        .await
        .expect("within explicit_max_ttl");
    let ttl = bao.lookup(&g.lease_id).await.unwrap()["ttl"]
        .as_i64()
        .unwrap();
    assert!((880..=900).contains(&ttl), "renewed to 15 min: {ttl}");
    match b
        .extend(&r, chrono::Utc::now() + chrono::Duration::minutes(30))
        .await
    {
        Err(BackendError::NotSupported(m)) => assert!(m.contains("explicit_max_ttl"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(bao.read(&token, ROLE_POLICY).await.unwrap(), SECRET);

    // Without renewable = true extend is refused before Vault is asked.
    let plain = grant_spec("REQ-206", scope(), 300);
    let g = bao.backend().grant(&plain).await.unwrap();
    assert!(matches!(
        bao.backend()
            .extend(
                &revoke_spec(&plain, Some(g.lease_id)),
                chrono::Utc::now() + chrono::Duration::minutes(10)
            )
            .await,
        Err(BackendError::NotSupported(_))
    ));
}

#[tokio::test]
async fn check_and_refusals_from_the_real_server() {
    let bao = Bao::start().await;
    let m = bao.backend().check().await.expect("check");
    let addr = &bao.server.addr;
    assert!(
        m.starts_with("Vault 2.") && m.contains(&format!(" at {addr}")),
        "{m}"
    );
    assert!(m.contains("active, unsealed"), "{m}");
    assert!(m.contains("admin token expires in"), "{m}");

    // The dev server's root token never expires.
    let root = VaultBackend::new(
        addr,
        SecretString::from(bao.server.root_token.clone()),
        quick(),
    );
    assert!(root
        .check()
        .await
        .unwrap()
        .contains("admin token does not expire"));

    let wrong = VaultBackend::new(addr, SecretString::from("s.not-a-token"), quick());
    let e = wrong.check().await.unwrap_err().to_string();
    assert!(
        e.contains("does not accept the admin token") && e.contains("permission denied"),
        "{e}"
    );

    // A token without the admin policy: Vault's multi-line error, on one line.
    let weak = bao.server.token(&[ROLE_POLICY]).await;
    let weak = VaultBackend::new(addr, SecretString::from(weak), quick());
    let m = match weak.grant(&grant_spec("REQ-207", scope(), 60)).await {
        Err(BackendError::Failed(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(
        m.contains("HTTP 403") && m.contains("permission denied"),
        "{m}"
    );
    assert!(!m.contains('\n') && !m.contains('\t'), "{m:?}");

    bao.server.seal().await;
    let e = bao.backend().check().await.unwrap_err().to_string();
    assert!(e.contains("sealed"), "{e}");
    bao.server.unseal().await;
    bao.backend().check().await.expect("unsealed again");
}
