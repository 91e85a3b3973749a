//! The PostgreSQL backend against a real, throwaway cluster (tests/it/support/pg.rs):
//! the conformance suite, then what only a database can show (privileges of the
//! scope, sessions ended on revoke, expiry enforced by the server, no password in
//! logs, hostile names).

use crate::support;

use breakglass::backend::{
    Backend, BackendError, Credential, GrantSpec, PostgresBackend, RevokeSpec,
};
use breakglass::config::{BackendConfig, PgTls, PgUrlSource, PostgresConfig};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::backend_conformance::Target;
use support::pg::{self, PgServer};

fn config(timeout: Duration) -> PostgresConfig {
    PostgresConfig {
        url: PgUrlSource::Env("UNUSED_IN_TESTS".into()),
        tls: Some(PgTls::Disable),
        ca_file: None,
        timeout,
        session_timeout: Duration::from_secs(10),
        connection_limit: 5,
        database: None,
        reassign_owned_to: None,
        host: None,
        port: None,
    }
}

fn backend_at(url: &str, cfg: PostgresConfig) -> Arc<dyn Backend> {
    let url = url.to_string();
    Arc::new(PostgresBackend::with_url_provider(
        cfg,
        Arc::new(move || Ok(SecretString::from(url.clone()))),
    ))
}

fn field<'a>(c: &'a Credential, k: &str) -> &'a str {
    c.reveal()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("credential has no {k}"))
}

/// Logs in over TCP with the credential's URL (password auth).
async fn login(c: &Credential) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    tokio::time::timeout(Duration::from_secs(10), pg::connect(field(c, "url")))
        .await
        .expect("login attempt hung")
}

/// A server error's message ("db error" is all `Display` gives).
fn msg(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn grant_spec(request_id: &str, scope: serde_json::Value, expires_at: DateTime<Utc>) -> GrantSpec {
    GrantSpec {
        request_id: request_id.into(),
        role: "pg-test".into(),
        scope,
        requester: "alice".into(),
        ttl_seconds: (expires_at - Utc::now()).num_seconds(),
        expires_at,
        incident: "INC-1".into(),
    }
}

fn revoke_of(s: &GrantSpec, lease: Option<&str>) -> RevokeSpec {
    RevokeSpec {
        request_id: s.request_id.clone(),
        role: s.role.clone(),
        scope: s.scope.clone(),
        lease_id: lease.map(str::to_string),
    }
}

fn in_minutes(m: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::minutes(m)
}

async fn role_exists(srv: &PgServer, name: &str) -> bool {
    srv.admin("postgres")
        .await
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

/// The shared cluster with its own database and scope role.
struct PgTarget {
    srv: &'static PgServer,
    db: String,
    member: String,
    /// What the backend reads as its admin URL; `set_down` points it at a closed port.
    url: Arc<Mutex<String>>,
    /// Accepts connections (in its backlog) and never answers.
    hang: std::net::TcpListener,
}

impl PgTarget {
    async fn new() -> Self {
        let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
        let db = srv.create_database("conf").await;
        let member = pg::unique("conf_member");
        srv.admin("postgres")
            .await
            .batch_execute(&format!("CREATE ROLE {member} NOLOGIN"))
            .await
            .unwrap();
        PgTarget {
            srv,
            url: Arc::new(Mutex::new(srv.admin_url("postgres"))),
            db,
            member,
            hang: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }
}

#[async_trait::async_trait]
impl Target for PgTarget {
    fn backend(&self) -> Arc<dyn Backend> {
        let url = self.url.clone();
        Arc::new(PostgresBackend::with_url_provider(
            config(Duration::from_secs(10)),
            Arc::new(move || Ok(SecretString::from(url.lock().unwrap().clone()))),
        ))
    }
    fn hanging(&self) -> Arc<dyn Backend> {
        let port = self.hang.local_addr().unwrap().port();
        backend_at(
            &format!("postgresql://postgres:x@127.0.0.1:{port}/postgres"),
            config(Duration::from_secs(2)),
        )
    }
    fn scope(&self) -> serde_json::Value {
        serde_json::json!({"member_of": [self.member], "database": self.db})
    }
    async fn usable(&self, cred: &Credential, _spec: &GrantSpec) -> bool {
        let Ok(c) = login(cred).await else {
            return false;
        };
        match c
            .query_one(
                "SELECT current_database()::text, pg_has_role(current_user, $1, 'MEMBER')",
                &[&self.member],
            )
            .await
        {
            Ok(row) => {
                assert_eq!(row.get::<_, String>(0), self.db, "the scope's database");
                assert!(row.get::<_, bool>(1), "member of the scope's role");
                true
            }
            Err(_) => false,
        }
    }
    async fn set_down(&self, down: bool) {
        *self.url.lock().unwrap() = if down {
            let closed = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            format!("postgresql://postgres:x@127.0.0.1:{closed}/postgres")
        } else {
            self.srv.admin_url("postgres")
        };
    }
}

mod conformance {
    use super::*;
    backend_conformance!(PgTarget::new().await);
}

/// A backend on the shared cluster with the superuser as admin.
fn admin_backend(srv: &PgServer, cfg: PostgresConfig) -> Arc<dyn Backend> {
    backend_at(&srv.admin_url("postgres"), cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credential_has_the_scope_roles_privileges_and_nothing_else() {
    let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
    let db = srv.create_database("scope").await;
    let admin = srv.admin(&db).await;
    admin
        .batch_execute(
            "CREATE ROLE emergency_dba NOLOGIN; CREATE ROLE finance_ro NOLOGIN;
             CREATE TABLE payments (id int); INSERT INTO payments VALUES (1), (2);
             CREATE TABLE salaries (id int); INSERT INTO salaries VALUES (3);
             GRANT SELECT ON payments TO emergency_dba; GRANT SELECT ON salaries TO finance_ro;",
        )
        .await
        .unwrap();
    let b = admin_backend(srv, config(Duration::from_secs(10)));
    let s = grant_spec(
        "REQ-201",
        serde_json::json!({"member_of": ["emergency_dba"], "database": db}),
        in_minutes(10),
    );
    let g = b.grant(&s).await.unwrap();
    assert_eq!(field(&g.credential, "database"), db);
    assert_eq!(field(&g.credential, "host"), "127.0.0.1");
    assert_eq!(field(&g.credential, "port"), srv.port.to_string());
    assert!(field(&g.credential, "password").len() >= 32);

    let c = login(&g.credential)
        .await
        .expect("login with the credential");
    let n: i64 = c
        .query_one("SELECT count(*) FROM payments", &[])
        .await
        .expect("the scope role's table is readable")
        .get(0);
    assert_eq!(n, 2);
    let e = c.query("SELECT * FROM salaries", &[]).await.unwrap_err();
    assert!(msg(&e).contains("permission denied"), "{}", msg(&e));
    for other in ["finance_ro", "postgres"] {
        let e = c
            .batch_execute(&format!("SET ROLE {other}"))
            .await
            .unwrap_err();
        assert!(
            msg(&e).contains("permission denied"),
            "{other}: {}",
            msg(&e)
        );
    }
    c.batch_execute("SET ROLE emergency_dba")
        .await
        .expect("the scope role itself");
    c.batch_execute("RESET ROLE").await.unwrap();
    let e = c.batch_execute("CREATE ROLE sneaky").await.unwrap_err();
    assert!(msg(&e).contains("permission denied"), "{}", msg(&e));
    let row = admin
        .query_one(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolconnlimit FROM pg_roles WHERE rolname = $1",
            &[&g.lease_id],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0) && !row.get::<_, bool>(1) && !row.get::<_, bool>(2));
    assert_eq!(row.get::<_, i32>(3), 5, "connection limit from config");
    drop(c);
    b.revoke(&revoke_of(&s, Some(&g.lease_id))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_ends_open_sessions_and_new_logins() {
    let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
    let b = admin_backend(srv, config(Duration::from_secs(10)));
    let s = grant_spec("REQ-202", serde_json::json!({}), in_minutes(10));
    let g = b.grant(&s).await.unwrap();
    let held = login(&g.credential).await.unwrap();
    let held2 = login(&g.credential).await.unwrap();
    held.batch_execute("SELECT 1").await.unwrap();
    b.revoke(&revoke_of(&s, Some(&g.lease_id))).await.unwrap();
    assert!(
        held.batch_execute("SELECT 1").await.is_err(),
        "an open session is terminated by revoke"
    );
    assert!(held2.batch_execute("SELECT 1").await.is_err());
    assert!(login(&g.credential).await.is_err(), "no new login");
    assert!(!role_exists(srv, &g.lease_id).await, "the role is dropped");
    let n: i64 = srv
        .admin("postgres")
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
            &[&g.lease_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_logins_after_expiry_without_any_console() {
    let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
    let b = admin_backend(srv, config(Duration::from_secs(10)));
    let expires = Utc::now() + chrono::Duration::seconds(3);
    let s = grant_spec("REQ-203", serde_json::json!({}), expires);
    let g = b.grant(&s).await.unwrap();
    assert_eq!(
        g.expires_at,
        Some(expires),
        "the target enforces the expiry"
    );
    login(&g.credential).await.expect("login before expiry");
    drop(b); // nothing of breakglass runs from here on
    let wait = (expires - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(2);
    tokio::time::sleep(wait).await;
    let e = login(&g.credential)
        .await
        .expect_err("login after VALID UNTIL");
    assert!(
        msg(&e).contains("password authentication failed"),
        "{}",
        msg(&e)
    );
    assert!(role_exists(srv, &g.lease_id).await, "only the server acted");
    admin_backend(srv, config(Duration::from_secs(10)))
        .revoke(&revoke_of(&s, None))
        .await
        .unwrap();
    assert!(!role_exists(srv, &g.lease_id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_reaches_the_server_in_clear() {
    let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
    let b = admin_backend(srv, config(Duration::from_secs(10)));
    let s = grant_spec("REQ-204", serde_json::json!({}), in_minutes(10));
    let g = b.grant(&s).await.unwrap();
    let password = field(&g.credential, "password").to_string();
    let c = login(&g.credential).await.unwrap();
    b.extend(&revoke_of(&s, Some(&g.lease_id)), in_minutes(20))
        .await
        .unwrap();
    let admin = srv.admin("postgres").await;
    let queries: Vec<String> = admin
        .query("SELECT coalesce(query, '') FROM pg_stat_activity", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(queries.iter().all(|q| !q.contains(&password)));
    let stored: String = admin
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&g.lease_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$"), "{stored}");
    drop(c);
    b.revoke(&revoke_of(&s, Some(&g.lease_id))).await.unwrap();
    let log = srv.log();
    assert!(
        log.contains(&format!("CREATE ROLE \"{}\"", g.lease_id)) && log.contains("SCRAM-SHA-256$"),
        "the server logs every statement, so the grep below means something"
    );
    assert!(
        !log.contains(&password),
        "the password is in the server log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_refused_and_inject_nothing() {
    let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
    let db = srv.create_database("hostile").await;
    srv.admin(&db)
        .await
        .batch_execute("CREATE TABLE x (id int)")
        .await
        .unwrap();
    let b = admin_backend(srv, config(Duration::from_secs(10)));
    let scope = serde_json::json!({"database": db});

    let e = b
        .grant(&grant_spec(
            "REQ-1'; DROP TABLE x; --",
            scope.clone(),
            in_minutes(10),
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("request id"), "{e}");
    for bad in [
        serde_json::json!({"member_of": ["x\"; DROP ROLE postgres; --"], "database": db}),
        serde_json::json!({"member_of": ["Admin"], "database": db}),
        serde_json::json!({"database": format!("{db}\"; DROP TABLE x; --")}),
        serde_json::json!({"database": db, "extra": 1}),
    ] {
        let e = b
            .grant(&grant_spec("REQ-205", bad.clone(), in_minutes(10)))
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("lower-case") || m.contains("not known"),
            "{bad}: {m}"
        );
    }
    // Revoking hostile lease ids and request ids touches nothing.
    let s = grant_spec("REQ-1'; DROP TABLE x; --", scope.clone(), in_minutes(10));
    for lease in [
        Some("bg_x\"; DROP ROLE postgres; --"),
        Some("postgres"),
        None,
    ] {
        b.revoke(&revoke_of(&s, lease)).await.unwrap();
    }
    // A lease-shaped name of a role breakglass did not create is refused.
    srv.admin("postgres")
        .await
        .batch_execute("CREATE ROLE bg_standing_abcdef LOGIN")
        .await
        .unwrap();
    let e = b
        .revoke(&revoke_of(&s, Some("bg_standing_abcdef")))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not created by breakglass"), "{e}");
    assert!(role_exists(srv, "bg_standing_abcdef").await);

    let admin = srv.admin(&db).await;
    admin
        .query_one("SELECT count(*) FROM x", &[])
        .await
        .expect("table x survives");
    let superuser: bool = admin
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'",
            &[],
        )
        .await
        .expect("role postgres survives")
        .get(0);
    assert!(superuser);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_role_names_fit_the_identifier_limit() {
    let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
    let b = admin_backend(srv, config(Duration::from_secs(10)));
    let long_id = format!("REQ-{}", "9".repeat(60));
    assert_eq!(long_id.len(), 64);
    let s = grant_spec(&long_id, serde_json::json!({}), in_minutes(10));
    let g = b.grant(&s).await.unwrap();
    assert!(g.lease_id.len() <= 63, "{}", g.lease_id);
    assert!(g.lease_id.starts_with("bg_req_999"));
    assert_eq!(field(&g.credential, "username"), g.lease_id);
    login(&g.credential)
        .await
        .expect("the truncated name logs in");
    b.revoke(&revoke_of(&s, None)).await.unwrap();
    assert!(!role_exists(srv, &g.lease_id).await);
    let too_long = format!("REQ-{}", "9".repeat(61));
    assert!(b
        .grant(&grant_spec(
            &too_long,
            serde_json::json!({}),
            in_minutes(10)
        ))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_moves_valid_until() {
    let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
    let b = admin_backend(srv, config(Duration::from_secs(10)));
    let s = grant_spec("REQ-206", serde_json::json!({}), in_minutes(10));
    let g = b.grant(&s).await.unwrap();
    let until = |name: String| async move {
        srv.admin("postgres")
            .await
            .query_one(
                "SELECT extract(epoch FROM rolvaliduntil)::float8 FROM pg_roles WHERE rolname = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get::<_, f64>(0) as i64
    };
    assert_eq!(until(g.lease_id.clone()).await, s.expires_at.timestamp());
    let later = in_minutes(25);
    b.extend(&revoke_of(&s, Some(&g.lease_id)), later)
        .await
        .unwrap();
    assert_eq!(until(g.lease_id.clone()).await, later.timestamp());
    let later2 = in_minutes(40);
    b.extend(&revoke_of(&s, None), later2).await.unwrap();
    assert_eq!(until(g.lease_id.clone()).await, later2.timestamp());
    b.revoke(&revoke_of(&s, Some(&g.lease_id))).await.unwrap();
    assert!(
        b.extend(&revoke_of(&s, Some(&g.lease_id)), later2)
            .await
            .is_err(),
        "extending a revoked grant fails loudly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_drops_or_reassigns_what_the_user_created_in_another_database() {
    let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
    let db = srv.create_database("owned").await;
    let writer = pg::unique("writer");
    let keeper = pg::unique("keeper");
    srv.admin(&db)
        .await
        .batch_execute(&format!(
            "CREATE ROLE {writer} NOLOGIN; CREATE ROLE {keeper} NOLOGIN; GRANT CREATE ON SCHEMA public TO {writer};"
        ))
        .await
        .unwrap();
    let scope = serde_json::json!({"member_of": [writer], "database": db});
    for (i, reassign) in [None, Some(keeper.clone())].into_iter().enumerate() {
        let cfg = PostgresConfig {
            reassign_owned_to: reassign.clone(),
            ..config(Duration::from_secs(10))
        };
        let b = admin_backend(srv, cfg);
        let s = grant_spec(&format!("REQ-21{i}"), scope.clone(), in_minutes(10));
        let g = b.grant(&s).await.unwrap();
        let c = login(&g.credential).await.unwrap();
        c.batch_execute(&format!("CREATE TABLE made_{i} (id int)"))
            .await
            .unwrap();
        drop(c);
        // The admin connection is on "postgres"; the table is in `db`.
        b.revoke(&revoke_of(&s, Some(&g.lease_id)))
            .await
            .expect("revoke despite owned objects");
        assert!(!role_exists(srv, &g.lease_id).await);
        let owner: Option<String> = srv
            .admin(&db)
            .await
            .query_opt(
                "SELECT tableowner::text FROM pg_tables WHERE tablename = $1",
                &[&format!("made_{i}")],
            )
            .await
            .unwrap()
            .map(|r| r.get(0));
        assert_eq!(owner, reassign, "dropped, or reassigned to the keeper");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_replaces_a_standing_roles_password() {
    let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
    let standing = pg::unique("standing");
    srv.admin("postgres")
        .await
        .batch_execute(&format!(
            "CREATE ROLE {standing} LOGIN PASSWORD 'old-standing-password'"
        ))
        .await
        .unwrap();
    let old = srv.url(&standing, "old-standing-password", "postgres");
    pg::connect(&old).await.expect("the old password works");
    let b = admin_backend(srv, config(Duration::from_secs(10)));
    b.rotate("pg-test", &serde_json::json!({"rotate_role": standing}))
        .await
        .unwrap();
    assert!(pg::connect(&old).await.is_err(), "the old password is dead");
    let e = b
        .rotate("pg-test", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("rotate_role"), "{e}");
    let e = b
        .rotate("pg-test", &serde_json::json!({"rotate_role": "postgres"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("admin role"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_server_and_a_hanging_one_times_out() {
    let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
    let v = admin_backend(srv, config(Duration::from_secs(10)))
        .check()
        .await
        .unwrap();
    assert!(v.starts_with("PostgreSQL "), "{v}");
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "postgresql://postgres:x@127.0.0.1:{}/postgres",
        hang.local_addr().unwrap().port()
    );
    let b = backend_at(&url, config(Duration::from_secs(1)));
    let started = std::time::Instant::now();
    let s = grant_spec("REQ-207", serde_json::json!({}), in_minutes(10));
    assert!(matches!(
        b.revoke(&revoke_of(&s, None)).await,
        Err(BackendError::Timeout(_))
    ));
    assert!(matches!(b.check().await, Err(BackendError::Timeout(_))));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_url_comes_from_a_file_read_at_each_call() {
    let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin.url");
    std::fs::write(&file, format!("{}\n", srv.admin_url("postgres"))).unwrap();
    let cfg = PostgresConfig {
        url: PgUrlSource::File(file.clone()),
        ..config(Duration::from_secs(10))
    };
    let b = PostgresBackend::new(cfg);
    assert!(b.check().await.unwrap().starts_with("PostgreSQL"));
    std::fs::remove_file(&file).unwrap();
    let e = b.check().await.unwrap_err();
    assert!(e.to_string().contains("url_file"), "{e}");
    let missing = PostgresBackend::new(PostgresConfig {
        url: PgUrlSource::Env("BREAKGLASS_TEST_UNSET_PG_URL".into()),
        ..config(Duration::from_secs(10))
    });
    let e = missing.check().await.unwrap_err();
    assert!(
        e.to_string().contains("BREAKGLASS_TEST_UNSET_PG_URL"),
        "{e}"
    );
}

const ROLE: &str = r#"
[[roles]]
name = "prod-db"
backend = "db"
scope = { member_of = ["emergency_dba"] }
default_ttl = "15m"
max_ttl = "30m"
conditions = ["production outage"]
requesters = ["alice"]
approvers = ["bob"]
certifiers = ["carol"]
"#;

fn load(backend: &str) -> Result<breakglass::config::Config, breakglass::config::Problems> {
    let dir = std::path::Path::new("/etc/breakglass");
    let text = format!(
        "[store]\nkind = \"sqlite\"\npath = \"s.sqlite\"\n\n[backends.db]\n{backend}\n{ROLE}"
    );
    breakglass::config::load_str(&text, &dir.join("breakglass.toml"))
}

fn problems(backend: &str) -> Vec<(Option<usize>, String)> {
    load(backend)
        .expect_err("the config has problems")
        .0
        .into_iter()
        .map(|p| (p.line, p.message))
        .collect()
}

#[test]
fn config_takes_the_url_from_env_or_file_never_inline() {
    let c = load("kind = \"postgres\"\nurl_env = \"BREAKGLASS_PROD_DB_URL\"").unwrap();
    match &c.backends["db"] {
        BackendConfig::Postgres(p) => {
            assert_eq!(p.url, PgUrlSource::Env("BREAKGLASS_PROD_DB_URL".into()));
            assert_eq!(p.tls, None);
            assert_eq!(p.connection_limit, 5);
            assert_eq!(p.timeout, Duration::from_secs(10));
            assert_eq!(p.session_timeout, Duration::from_secs(10));
        }
        other => panic!("{other:?}"),
    }
    let c = load(
        "kind = \"postgres\"\nurl_file = \"prod-db.url\"\ntls = \"verify-full\"\nca_file = \"ca.pem\"\nconnection_limit = 2\ndatabase = \"app\"\nreassign_owned_to = \"dba_archive\"\nhost = \"db.internal\"\nport = 6432\nsession_timeout = \"30s\"",
    )
    .unwrap();
    match &c.backends["db"] {
        BackendConfig::Postgres(p) => {
            assert_eq!(
                p.url,
                PgUrlSource::File("/etc/breakglass/prod-db.url".into())
            );
            assert_eq!(p.tls, Some(PgTls::VerifyFull));
            assert_eq!(p.connection_limit, 2);
            assert_eq!(p.reassign_owned_to.as_deref(), Some("dba_archive"));
            assert_eq!(p.port, Some(6432));
            assert_eq!(p.session_timeout, Duration::from_secs(30));
        }
        other => panic!("{other:?}"),
    }

    // [backends.db] is on line 5, so its keys start on line 6.
    let p = problems("kind = \"postgres\"\nurl = \"postgresql://admin:hunter2@db/prod\"");
    assert!(
        p.iter()
            .any(|(l, m)| *l == Some(7) && m.contains("url_env") && m.contains("url_file")),
        "{p:?}"
    );
    let p = problems("kind = \"postgres\"\nurl_env = \"X\"\ntls = \"prefer\"");
    assert!(
        p.iter()
            .any(|(l, m)| *l == Some(8) && m.contains("verify-full") && m.contains("disable")),
        "{p:?}"
    );
    let p = problems("kind = \"postgres\"");
    assert!(p.iter().any(|(_, m)| m.contains("needs url_env")), "{p:?}");
    let p = problems("kind = \"postgres\"\nurl_env = \"X\"\nurl_file = \"f\"");
    assert!(p.iter().any(|(_, m)| m.contains("not both")), "{p:?}");
    let p = problems(
        "kind = \"postgres\"\nurl_env = \"X\"\nreassign_owned_to = \"x; DROP ROLE postgres\"",
    );
    assert!(
        p.iter()
            .any(|(l, m)| *l == Some(8) && m.contains("lower-case")),
        "{p:?}"
    );
}

#[test]
fn config_checks_the_roles_scope_for_a_postgres_backend() {
    let text = format!(
        "[store]\nkind = \"sqlite\"\npath = \"s.sqlite\"\n\n[backends.db]\nkind = \"postgres\"\nurl_env = \"X\"\n{}",
        ROLE.replace("emergency_dba", "Emergency DBA")
    );
    let p = breakglass::config::load_str(&text, std::path::Path::new("/etc/breakglass/b.toml"))
        .unwrap_err();
    assert!(
        p.0.iter()
            .any(|p| p.message.contains("member_of") && p.message.contains("lower-case")),
        "{p}"
    );
}

/// Runs openssl (which the postgresql packages depend on) in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (installed with postgresql, via ssl-cert)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server that only accepts TLS on TCP, with a certificate for "localhost"
/// from a test CA: each tls mode does what the README says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_against_a_server_that_requires_tls() {
    use std::os::unix::fs::PermissionsExt;
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        d,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=breakglass test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
    );
    openssl(
        d,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let src = d.to_path_buf();
    let srv = tokio::task::spawn_blocking(move || {
        PgServer::start_with(|dir| {
            for f in ["server.pem", "server.key"] {
                std::fs::copy(src.join(f), dir.join(f)).unwrap();
            }
            std::fs::set_permissions(
                dir.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            std::fs::write(
                dir.join("hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
            )
            .unwrap();
            vec![
                "ssl=on".into(),
                format!("ssl_cert_file={}", dir.join("server.pem").display()),
                format!("ssl_key_file={}", dir.join("server.key").display()),
                format!("hba_file={}", dir.join("hba.conf").display()),
            ]
        })
    })
    .await
    .unwrap();
    let url = |host: &str| {
        format!(
            "postgresql://postgres:{}@{host}:{}/postgres",
            srv.password, srv.port
        )
    };
    let with = |tls: Option<PgTls>, ca: bool| PostgresConfig {
        tls,
        ca_file: ca.then(|| d.join("ca.pem")),
        ..config(Duration::from_secs(10))
    };
    let check = |host: &str, cfg: PostgresConfig| {
        let b = backend_at(&url(host), cfg);
        async move { b.check().await }
    };

    check("localhost", with(Some(PgTls::VerifyFull), true))
        .await
        .expect("verify-full with the CA and the certificate's name");
    check("127.0.0.1", with(Some(PgTls::Require), false))
        .await
        .expect("require: encrypted, certificate not checked");
    let e = check("127.0.0.1", with(Some(PgTls::VerifyFull), true))
        .await
        .expect_err("verify-full checks the host name");
    assert!(e.to_string().contains("connecting"), "{e}");
    check("localhost", with(Some(PgTls::VerifyFull), false))
        .await
        .expect_err("verify-full without the CA: unknown issuer (web PKI roots only)");
    let e = check("127.0.0.1", with(Some(PgTls::Disable), false))
        .await
        .expect_err("the server refuses unencrypted logins");
    assert!(e.to_string().contains("no encryption"), "{e}");
    check("localhost", with(None, false))
        .await
        .expect_err("by default a loopback host connects without TLS");

    // A grant over TLS works end to end.
    let b = backend_at(&url("localhost"), with(Some(PgTls::VerifyFull), true));
    let s = grant_spec("REQ-208", serde_json::json!({}), in_minutes(10));
    let g = b.grant(&s).await.unwrap();
    b.revoke(&revoke_of(&s, Some(&g.lease_id))).await.unwrap();
}

/// A copied password is made useless even when the revoke cannot finish:
/// `invalidate` clears the role's password and login first, committed on
/// their own, so the role logging in again (re-enabled, or left behind) does
/// not bring the password back. Then it drops the role, idempotently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_makes_a_copied_password_useless_even_when_the_revoke_fails() {
    let srv = tokio::task::spawn_blocking(pg::shared).await.unwrap();
    let mut broken = config(Duration::from_secs(10));
    // REASSIGN OWNED to a role that does not exist: the drop step fails.
    broken.reassign_owned_to = Some(pg::unique("nobody"));
    let b = admin_backend(srv, broken);
    let s = grant_spec(
        &pg::unique("REQ-copied"),
        serde_json::json!({}),
        in_minutes(10),
    );
    let g = b.grant(&s).await.unwrap();
    login(&g.credential)
        .await
        .expect("the fresh password works");
    let e = b
        .invalidate(&revoke_of(&s, Some(&g.lease_id)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(role_exists(srv, &g.lease_id).await, "the drop failed");
    let refused = login(&g.credential).await.unwrap_err();
    assert!(
        msg(&refused).contains("password authentication failed")
            || msg(&refused).contains("not permitted to log in"),
        "{}",
        msg(&refused)
    );
    // Someone lets the role log in again: the copied password still fails.
    srv.admin("postgres")
        .await
        .batch_execute(&format!("ALTER ROLE \"{}\" LOGIN", g.lease_id))
        .await
        .unwrap();
    let refused = login(&g.credential).await.unwrap_err();
    assert!(
        msg(&refused).contains("password authentication failed"),
        "{}",
        msg(&refused)
    );
    // A working backend finishes it (by request id alone), and says what it did.
    let b = admin_backend(srv, config(Duration::from_secs(10)));
    let out = b.invalidate(&revoke_of(&s, None)).await.unwrap();
    assert_eq!(out.method, breakglass::domain::InvalidationMethod::Rotated);
    assert!(
        out.confirmation
            .contains("password cleared, login disabled, dropped"),
        "{}",
        out.confirmation
    );
    assert!(!role_exists(srv, &g.lease_id).await);
    let again = b
        .invalidate(&revoke_of(&s, Some(&g.lease_id)))
        .await
        .unwrap();
    assert_eq!(
        again.method,
        breakglass::domain::InvalidationMethod::Revoked
    );
    assert!(
        again.confirmation.contains("already dropped"),
        "{}",
        again.confirmation
    );
    assert!(login(&g.credential).await.is_err());
}

/// Through the engine, on a cluster of its own (request ids start at REQ-1):
/// a review saying the credentials were copied rotates the role's standing
/// secret (the role rotates after use) and invalidates the grant's; a real
/// login with the old password fails; certification then goes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_credential_is_invalidated_before_certification_on_a_real_server() {
    use breakglass::domain::State;
    use breakglass::engine::Decision;
    use support::*;
    let srv = Arc::new(tokio::task::spawn_blocking(PgServer::start).await.unwrap());
    let standing = pg::unique("standing");
    srv.admin("postgres")
        .await
        .batch_execute(&format!("CREATE ROLE {standing} LOGIN PASSWORD 'old'"))
        .await
        .unwrap();
    let backend = admin_backend(&srv, config(Duration::from_secs(10)));
    let scope = serde_json::json!({"rotate_role": standing});
    let h = harness_with(move |p| {
        p.backends.insert("demo".into(), backend);
        let role = p.policy.roles.get_mut(K8S).unwrap();
        role.scope = scope;
        role.rotate_after_use = true;
    });
    let (r, cred) = h.active(K8S).await;
    login(&cred).await.expect("the granted password works");
    h.engine.revoke("alice", r.id, "done").await.unwrap();
    // During the session alice read the standing role's password too (set
    // back to what she saw, after the revoke's own rotation).
    srv.admin("postgres")
        .await
        .batch_execute(&format!("ALTER ROLE {standing} PASSWORD 'seen-by-alice'"))
        .await
        .unwrap();
    let seen = srv.url(&standing, "seen-by-alice", "postgres");
    pg::connect(&seen)
        .await
        .expect("the copied standing password works");
    let mut a = answers();
    a.credentials_copied = true;
    a.credentials_copied_where = "a terminal scratch buffer".into();
    let r = h.engine.review("alice", r.id, a).await.unwrap();
    let done = r.invalidation.as_ref().unwrap().done.clone().expect("done");
    assert_eq!(
        done.outcome.method,
        breakglass::domain::InvalidationMethod::Rotated
    );
    assert!(
        done.outcome
            .confirmation
            .contains("standing secret rotated"),
        "{}",
        done.outcome.confirmation
    );
    assert!(pg::connect(&seen).await.is_err(), "the copy is dead");
    assert!(login(&cred).await.is_err(), "the grant's password is dead");
    // Nothing secret in the audit trail.
    let log = h.store.audit_range(1, 10_000).unwrap();
    let password = field(&cred, "password").to_string();
    assert!(log.iter().all(|e| !e.detail.contains(&password)));
    assert!(log.iter().any(|e| e.action == "credentials.invalidated"));
    let c = h
        .engine
        .decide("dave", r.id, Decision::certify("checked"))
        .await
        .unwrap();
    assert_eq!(c.state, State::Certified);
}
