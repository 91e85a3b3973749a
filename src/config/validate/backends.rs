//! `[backends.NAME]` of kind http, vault, postgres and ssh-ca: URLs, secrets by
//! environment variable name or owner-only file, TLS and timeouts.

use super::*;

/// `[backends.NAME]`: each has a known kind and what that kind needs, and demo
/// mode runs only demo and exec backends.
pub(super) fn backends(
    ctx: &mut Ctx,
    raw: &BTreeMap<String, Spanned<RawBackend>>,
    store: &StoreConfig,
    demo_mode: bool,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> BTreeMap<String, BackendConfig> {
    let mut backends = BTreeMap::new();
    for (name, b) in raw {
        if let Some(c) = backend(ctx, name, b, store, resolve) {
            backends.insert(name.clone(), c);
        }
        let kind = &b.get_ref().kind;
        if demo_mode && !matches!(kind.get_ref().as_str(), "demo" | "exec") {
            ctx.at(
                kind,
                "demo mode only runs demo and exec backends; remove [demo] to use real ones",
            );
        }
    }
    backends
}

/// One backend by kind; `None` when it cannot be built (problems recorded).
fn backend(
    ctx: &mut Ctx,
    name: &str,
    b: &Spanned<RawBackend>,
    store: &StoreConfig,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<BackendConfig> {
    let rb = b.get_ref();
    match rb.kind.get_ref().as_str() {
        "demo" => {
            // Beside the store unless placed elsewhere.
            let state_path = match &rb.state_path {
                Some(p) => resolve(p),
                None => match store {
                    StoreConfig::Sqlite { path } => {
                        path.with_file_name(format!("demo-target-{name}.sqlite"))
                    }
                    StoreConfig::Postgres(pg) => {
                        pg.data_dir.join(format!("demo-target-{name}.sqlite"))
                    }
                },
            };
            Some(BackendConfig::Demo { state_path })
        }
        "exec" => {
            let Some(cmd) = &rb.command else {
                ctx.at(
                    b,
                    format!("backend \"{name}\" (exec) needs command = \"/path/to/plugin\""),
                );
                return None;
            };
            let timeout = match &rb.timeout {
                Some(t) => parse_duration(ctx, t, "timeout").unwrap_or(30) as u64,
                None => 30,
            };
            Some(BackendConfig::Exec {
                command: resolve(cmd.get_ref()),
                args: rb.args.clone(),
                timeout: Duration::from_secs(timeout),
                env_allow: rb.env_allow.clone(),
            })
        }
        "http" => http_backend(ctx, name, b),
        "vault" => Some(vault_backend(ctx, name, b)),
        "postgres" => postgres_backend(ctx, name, b, resolve),
        "ssh-ca" => ssh_ca_backend(ctx, name, b, resolve),
        other => {
            ctx.at(
                &rb.kind,
                format!("backend kind \"{other}\" is not known; write kind = \"demo\", \"exec\", \"http\", \"vault\", \"postgres\" or \"ssh-ca\""),
            );
            None
        }
    }
}

/// An optional duration setting, `default` seconds when absent or invalid.
pub(super) fn duration_or(
    ctx: &mut Ctx,
    s: &Option<Spanned<String>>,
    what: &str,
    default: u64,
) -> Duration {
    let secs = s
        .as_ref()
        .and_then(|t| parse_duration(ctx, t, what))
        .map_or(default, |v| v as u64);
    Duration::from_secs(secs)
}

/// An environment variable name setting (`secret_env`, `token_env`).
pub(super) fn env_name(ctx: &mut Ctx, s: &Spanned<String>, what: &str) -> bool {
    let ok = Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$")
        .expect("a valid literal pattern")
        .is_match(s.get_ref());
    if !ok {
        ctx.at(
            s,
            format!(
                "{what} = \"{}\" is not an environment variable name; write e.g. {what} = \"BREAKGLASS_SECRET\"",
                s.get_ref()
            ),
        );
    }
    ok
}

/// Problems are recorded in `ctx` (and fail the load); the config is returned
/// whenever it can be built, so roles using the backend are still checked.
pub(super) fn http_backend(
    ctx: &mut Ctx,
    name: &str,
    b: &Spanned<RawBackend>,
) -> Option<BackendConfig> {
    let rb = b.get_ref();
    if let Some(s) = &rb.secret {
        ctx.at(s, format!("backend \"{name}\": the shared secret never goes in the config file; remove secret, set an environment variable and write secret_env = \"BREAKGLASS_HTTP_SECRET\""));
    }
    let url = match &rb.url {
        Some(u)
            if super::urls::refuse_credentials(
                ctx,
                u,
                &format!("backend \"{name}\" (http): url"),
                "the request signing secret goes in an environment variable named by secret_env",
            ) =>
        {
            None
        }
        Some(u) => match crate::net::http::check_url(u.get_ref()) {
            Ok(()) => Some(u.get_ref().clone()),
            Err(e) => {
                ctx.at(u, format!("backend \"{name}\" (http): url {e}"));
                None
            }
        },
        None => {
            ctx.at(b, format!("backend \"{name}\" (http) needs url = \"https://access.example.com/breakglass\""));
            None
        }
    };
    let secret_env = match &rb.secret_env {
        Some(e) if env_name(ctx, e, "secret_env") => Some(e.get_ref().clone()),
        Some(_) => None,
        None => {
            ctx.at(b, format!("backend \"{name}\" (http) needs secret_env = \"BREAKGLASS_HTTP_SECRET\", the environment variable holding the shared signing secret"));
            None
        }
    };
    let revoke_retries = match &rb.revoke_retries {
        None => 3,
        Some(n) if (0..=10).contains(n.get_ref()) => *n.get_ref() as u32,
        Some(n) => {
            ctx.at(
                n,
                format!("backend \"{name}\": revoke_retries must be between 0 and 10"),
            );
            3
        }
    };
    let timeout = duration_or(ctx, &rb.timeout, "timeout", 30);
    let connect_timeout = duration_or(ctx, &rb.connect_timeout, "connect_timeout", 5);
    Some(BackendConfig::Http {
        url: url?,
        secret_env: secret_env?,
        timeout,
        connect_timeout,
        revoke_retries,
    })
}

pub(super) fn vault_backend(ctx: &mut Ctx, name: &str, b: &Spanned<RawBackend>) -> BackendConfig {
    let rb = b.get_ref();
    if let Some(t) = &rb.token {
        ctx.at(t, format!("backend \"{name}\": the Vault token never goes in the config file; remove token and export it in VAULT_TOKEN (or name its variable in token_env)"));
    }
    let addr = match &rb.addr {
        Some(a)
            if super::urls::refuse_credentials(
                ctx,
                a,
                &format!("backend \"{name}\" (vault): addr"),
                "the Vault token goes in VAULT_TOKEN (or the variable named by token_env)",
            ) =>
        {
            None
        }
        Some(a) => match crate::net::http::check_url(a.get_ref()) {
            Ok(()) => Some(a.get_ref().clone()),
            Err(e) => {
                ctx.at(a, format!("backend \"{name}\" (vault): addr {e}"));
                None
            }
        },
        None => None,
    };
    let token_env = match &rb.token_env {
        Some(e) => {
            env_name(ctx, e, "token_env");
            e.get_ref().clone()
        }
        None => "VAULT_TOKEN".to_string(),
    };
    let timeout = duration_or(ctx, &rb.timeout, "timeout", 30);
    let connect_timeout = duration_or(ctx, &rb.connect_timeout, "connect_timeout", 5);
    BackendConfig::Vault {
        addr,
        token_env,
        namespace: rb.namespace.clone().filter(|n| !n.trim().is_empty()),
        renewable: rb.renewable.unwrap_or(false),
        timeout,
        connect_timeout,
    }
}

pub(super) fn postgres_backend(
    ctx: &mut Ctx,
    name: &str,
    b: &Spanned<RawBackend>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<BackendConfig> {
    let rb = b.get_ref();
    let mut ok = true;
    if let Some(u) = &rb.url {
        ctx.at(u, format!(
            "backend \"{name}\" (postgres): the connection string carries a password and never goes in the config file; remove url and write url_env = \"BREAKGLASS_PROD_DB_URL\" (an environment variable holding it) or url_file = \"/etc/breakglass/prod-db.url\""
        ));
        ok = false;
    }
    let url = match (&rb.url_env, &rb.url_file) {
        (Some(e), None) => {
            env_name(ctx, e, "url_env").then(|| PgUrlSource::Env(e.get_ref().clone()))
        }
        (None, Some(f)) => {
            let path = resolve(f.get_ref());
            secret_file(ctx, f, &path, &format!("backend \"{name}\" url_file"));
            Some(PgUrlSource::File(path))
        }
        (Some(e), Some(_)) => {
            ctx.at(
                e,
                format!("backend \"{name}\" (postgres): write url_env or url_file, not both"),
            );
            None
        }
        (None, None) => {
            if rb.url.is_none() {
                ctx.at(b, format!("backend \"{name}\" (postgres) needs url_env = \"BREAKGLASS_PROD_DB_URL\" or url_file = \"/etc/breakglass/prod-db.url\" (the admin connection string)"));
            }
            None
        }
    };
    let tls = match rb.tls.as_ref().map(|t| t.get_ref().as_str()) {
        None => None,
        Some("disable") => Some(PgTls::Disable),
        Some("require") => Some(PgTls::Require),
        Some("verify-full") => Some(PgTls::VerifyFull),
        Some(other) => {
            ctx.at(rb.tls.as_ref().expect("tls is set: its value was matched"), format!(
                "backend \"{name}\": tls = \"{other}\" is not known; write tls = \"verify-full\" (encrypted, certificate and host name checked), \"require\" (encrypted, certificate not checked) or \"disable\""
            ));
            ok = false;
            None
        }
    };
    let ca_file = rb.ca_file.as_ref().map(|f| resolve(f.get_ref()));
    if let (Some(f), Some(PgTls::Disable | PgTls::Require)) = (&rb.ca_file, tls) {
        ctx.at(
            f,
            format!("backend \"{name}\": ca_file is only used with tls = \"verify-full\""),
        );
        ok = false;
    }
    let connection_limit = match &rb.connection_limit {
        None => 5,
        Some(n) if (1..=1000).contains(n.get_ref()) => *n.get_ref() as u32,
        Some(n) => {
            ctx.at(
                n,
                format!("backend \"{name}\": connection_limit must be between 1 and 1000"),
            );
            ok = false;
            5
        }
    };
    let mut ident = |ctx: &mut Ctx, s: &Option<Spanned<String>>, what: &str| -> Option<String> {
        let s = s.as_ref()?;
        match crate::backend::postgres::check_name(what, s.get_ref()) {
            Ok(()) => Some(s.get_ref().clone()),
            Err(m) => {
                ctx.at(s, format!("backend \"{name}\": {m}"));
                ok = false;
                None
            }
        }
    };
    let database = ident(ctx, &rb.database, "database");
    let reassign_owned_to = ident(ctx, &rb.reassign_owned_to, "reassign_owned_to");
    let host = match &rb.host {
        Some(h)
            if Regex::new(r"^[A-Za-z0-9.:\[\]-]{1,253}$")
                .expect("a valid literal pattern")
                .is_match(h.get_ref()) =>
        {
            Some(h.get_ref().clone())
        }
        Some(h) => {
            ctx.at(
                h,
                format!(
                    "backend \"{name}\": host = \"{}\" is not a host name or IP address",
                    h.get_ref()
                ),
            );
            ok = false;
            None
        }
        None => None,
    };
    let port = port(ctx, name, &rb.port, &mut ok);
    let timeout = duration_or(ctx, &rb.timeout, "timeout", 10);
    let session_timeout = duration_or(ctx, &rb.session_timeout, "session_timeout", 10);
    Some(BackendConfig::Postgres(PostgresConfig {
        url: url?,
        tls,
        ca_file,
        timeout,
        session_timeout,
        connection_limit,
        database,
        reassign_owned_to,
        host,
        port,
    }))
    .filter(|_| ok)
}

/// `kind = "ssh-ca"`: the CA key is a file closed to everyone but its owner, the
/// KRL a path; both required.
pub(super) fn ssh_ca_backend(
    ctx: &mut Ctx,
    name: &str,
    b: &Spanned<RawBackend>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<BackendConfig> {
    let rb = b.get_ref();
    let mut ok = true;
    let ca_key_file = match &rb.ca_key_file {
        Some(f) => {
            let path = resolve(f.get_ref());
            secret_file(ctx, f, &path, &format!("backend \"{name}\" ca_key_file"));
            Some(path)
        }
        None => {
            ctx.at(b, format!("backend \"{name}\" (ssh-ca) needs ca_key_file = \"/etc/breakglass/ssh-ca\", the CA's OpenSSH private key (ssh-keygen -t ed25519 -N '' -f /etc/breakglass/ssh-ca)"));
            None
        }
    };
    let krl = match &rb.krl {
        Some(k) => Some(resolve(k.get_ref())),
        None => {
            ctx.at(b, format!("backend \"{name}\" (ssh-ca) needs krl = \"/etc/ssh/breakglass.krl\", the Key Revocation List that sshd_config's RevokedKeys names"));
            None
        }
    };
    let host = match &rb.host {
        Some(h) => match crate::backend::ssh_ca::check_host(h.get_ref()) {
            Ok(()) => Some(h.get_ref().clone()),
            Err(m) => {
                ctx.at(h, format!("backend \"{name}\": {m}"));
                ok = false;
                None
            }
        },
        None => None,
    };
    let port = port(ctx, name, &rb.port, &mut ok);
    let timeout = duration_or(ctx, &rb.timeout, "timeout", 10);
    Some(BackendConfig::SshCa(SshCaConfig {
        ca_key_file: ca_key_file?,
        krl: krl?,
        host,
        port,
        timeout,
    }))
    .filter(|_| ok)
}

/// A backend's `port`, when set: 1 to 65535.
fn port(ctx: &mut Ctx, name: &str, p: &Option<Spanned<i64>>, ok: &mut bool) -> Option<u16> {
    let p = p.as_ref()?;
    if (1..=65535).contains(p.get_ref()) {
        return Some(*p.get_ref() as u16);
    }
    ctx.at(
        p,
        format!("backend \"{name}\": port must be between 1 and 65535"),
    );
    *ok = false;
    None
}
