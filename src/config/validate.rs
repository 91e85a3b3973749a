use super::raw::*;
use super::*;
use crate::domain::policy::{Principals, RolePolicy};
use regex::Regex;
use std::collections::BTreeSet;
use toml::Spanned;

mod signing;
mod sources;
mod vendor;

/// Tracks the file being read so every problem names it and its line.
struct Ctx<'a> {
    file: PathBuf,
    text: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }
    fn at<T>(&mut self, s: &Spanned<T>, message: impl Into<String>) {
        let line = Some(self.line_of(s.span().start));
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            message: message.into(),
        });
    }
    fn nowhere(&mut self, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: None,
            message: message.into(),
        });
    }
}

fn toml_problem(file: &Path, text: &str, e: &toml::de::Error) -> Problem {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    Problem {
        file: file.to_path_buf(),
        line,
        message: e.message().trim().to_string(),
    }
}

fn parse_duration(ctx: &mut Ctx, s: &Spanned<String>, what: &str) -> Option<i64> {
    match humantime::parse_duration(s.get_ref().trim()) {
        Ok(d) if d.as_secs() > 0 => Some(d.as_secs() as i64),
        _ => {
            ctx.at(
                s,
                format!(
                    "{what} = \"{}\" is not a duration; write e.g. \"15m\", \"1h\" or \"90s\"",
                    s.get_ref()
                ),
            );
            None
        }
    }
}

/// Reads and validates the config at `path` (and the policy file it names).
pub fn load(path: &Path) -> Result<Config, Problems> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Problems(vec![Problem {
            file: path.to_path_buf(),
            line: None,
            message: format!(
                "cannot read the config: {e}; run `breakglass init` to write a starter config, or pass --config FILE"
            ),
        }])
    })?;
    load_str(&text, path)
}

/// Validates config text as if it were read from `path` (relative paths in it are
/// resolved against `path`'s directory).
pub fn load_str(text: &str, path: &Path) -> Result<Config, Problems> {
    let mut problems = Vec::new();
    let raw: RawConfig = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => return Err(Problems(vec![toml_problem(path, text, &e)])),
    };
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let resolve = |p: &str| -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            dir.join(p)
        }
    };

    let mut ctx = Ctx {
        file: path.to_path_buf(),
        text,
        problems: &mut problems,
    };

    let demo_personas = raw.demo.as_ref().map(|d| d.get_ref().personas.clone());
    if let Some(d) = &raw.demo {
        if d.get_ref().personas.len() < 3 {
            ctx.at(
                d,
                "[demo] needs at least three personas (a requester, an approver, a certifier)",
            );
        }
    }

    let (store, identity) = store_config(&mut ctx, raw.store.as_ref(), &resolve);

    let mut incident_sources = Vec::new();
    let mut source_names = BTreeSet::new();
    for s in &raw.incident_sources {
        let src = s.get_ref();
        if !source_names.insert(src.name.get_ref().clone()) {
            ctx.at(
                &src.name,
                format!(
                    "incident source \"{}\" is defined twice; give each a unique name",
                    src.name.get_ref()
                ),
            );
        }
        // file, pagerduty, opsgenie, http: see validate/sources.rs.
        if let Some(c) = sources::source(&mut ctx, s, &resolve) {
            incident_sources.push(c);
        }
    }

    let mut backends = BTreeMap::new();
    for (name, b) in &raw.backends {
        let rb = b.get_ref();
        match rb.kind.get_ref().as_str() {
            "demo" => {
                let state_path = match &rb.state_path {
                    Some(p) => resolve(p),
                    None => match &store {
                        StoreConfig::Sqlite { path } => path.with_file_name(format!("demo-target-{name}.sqlite")),
                        StoreConfig::Postgres(pg) => pg.data_dir.join(format!("demo-target-{name}.sqlite")),
                    },
                };
                backends.insert(name.clone(), BackendConfig::Demo { state_path });
            }
            "exec" => {
                let Some(cmd) = &rb.command else {
                    ctx.at(b, format!("backend \"{name}\" (exec) needs command = \"/path/to/plugin\""));
                    continue;
                };
                let timeout = match &rb.timeout {
                    Some(t) => parse_duration(&mut ctx, t, "timeout").unwrap_or(30) as u64,
                    None => 30,
                };
                backends.insert(
                    name.clone(),
                    BackendConfig::Exec {
                        command: resolve(cmd.get_ref()),
                        args: rb.args.clone(),
                        timeout: Duration::from_secs(timeout),
                        env_allow: rb.env_allow.clone(),
                    },
                );
            }
            "http" => {
                if let Some(c) = http_backend(&mut ctx, name, b) {
                    backends.insert(name.clone(), c);
                }
            }
            "vault" => {
                let c = vault_backend(&mut ctx, name, b);
                backends.insert(name.clone(), c);
            }
            "postgres" => {
                if let Some(c) = postgres_backend(&mut ctx, name, b, &resolve) {
                    backends.insert(name.clone(), c);
                }
            }
            other => ctx.at(
                &rb.kind,
                format!("backend kind \"{other}\" is not known; write kind = \"demo\", \"exec\", \"http\", \"vault\" or \"postgres\""),
            ),
        }
        if demo_personas.is_some() && !matches!(rb.kind.get_ref().as_str(), "demo" | "exec") {
            ctx.at(
                &rb.kind,
                "demo mode only runs demo and exec backends; remove [demo] to use real ones",
            );
        }
    }

    let mut alert_sinks = Vec::new();
    let mut alert_rules = crate::alert::AlertRules::default();
    if let Some(a) = &raw.alerts {
        if let Some(on) = &a.on {
            let mut set = std::collections::BTreeSet::new();
            for k in on.get_ref() {
                if crate::alert::ALWAYS_ON_KINDS.contains(&k.as_str()) {
                    continue; // always on; listing it is harmless
                }
                if crate::alert::OPTIONAL_KINDS.contains(&k.as_str()) {
                    set.insert(k.clone());
                } else {
                    ctx.at(
                        on,
                        format!(
                            "alert kind \"{k}\" is not known; choose from: {} (always on), {}",
                            crate::alert::ALWAYS_ON_KINDS.join(", "),
                            crate::alert::OPTIONAL_KINDS.join(", ")
                        ),
                    );
                }
            }
            alert_rules.on = set;
        }
        let mut names = BTreeSet::new();
        for (i, s) in a.sinks.iter().enumerate() {
            let r = s.get_ref();
            let kind = r.kind.get_ref().as_str();
            let name = r
                .name
                .clone()
                .unwrap_or_else(|| format!("{kind}-{}", i + 1));
            if !names.insert(name.clone()) {
                ctx.at(
                    s,
                    format!("two alert sinks are called \"{name}\"; give each a unique name"),
                );
            }
            if let Some(secret) = &r.secret {
                ctx.at(secret, "secrets never go in the config file; write secret_env = \"NAME_OF_ENV_VAR\" and set that variable");
            }
            let format = match r.format.as_ref().map(|f| f.get_ref().as_str()) {
                None | Some("native") => crate::alert::Format::Native,
                Some("ocsf") => crate::alert::Format::Ocsf,
                Some(other) => {
                    ctx.at(
                        r.format.as_ref().unwrap(),
                        format!("format = \"{other}\" is not known; write \"native\" or \"ocsf\""),
                    );
                    crate::alert::Format::Native
                }
            };
            let timeout = match &r.timeout {
                Some(t) => {
                    Duration::from_secs(parse_duration(&mut ctx, t, "timeout").unwrap_or(10) as u64)
                }
                None => Duration::from_secs(10),
            };
            match kind {
                "file" => match &r.path {
                    Some(p) => alert_sinks.push(SinkConfig::File { name, path: resolve(p), format }),
                    None => ctx.at(s, "a file alert sink needs path = \"alerts.jsonl\""),
                },
                "webhook" => match &r.url {
                    Some(u) if u.get_ref().starts_with("https://") || u.get_ref().starts_with("http://") => {
                        alert_sinks.push(SinkConfig::Webhook {
                            name,
                            url: u.get_ref().clone(),
                            secret_env: r.secret_env.clone(),
                            format,
                            timeout,
                        })
                    }
                    Some(u) => ctx.at(u, format!("url = \"{}\" must start with https:// (or http:// on a trusted network)", u.get_ref())),
                    None => ctx.at(s, "a webhook alert sink needs url = \"https://...\" (and secret_env to sign it)"),
                },
                "slack" => {
                    if let Some(u) = &r.url {
                        ctx.at(u, "a Slack webhook URL is a secret; write url_env = \"BREAKGLASS_SLACK_WEBHOOK\" and set that variable");
                    }
                    match &r.url_env {
                        Some(env) => alert_sinks.push(SinkConfig::Slack { name, url_env: env.clone(), timeout }),
                        None => ctx.at(s, "a slack alert sink needs url_env = \"BREAKGLASS_SLACK_WEBHOOK\""),
                    }
                }
                "syslog" => {
                    let tcp = match r.transport.as_ref().map(|t| t.get_ref().as_str()) {
                        None | Some("udp") => false,
                        Some("tcp") => true,
                        Some(other) => {
                            ctx.at(r.transport.as_ref().unwrap(), format!("transport = \"{other}\" is not known; write \"udp\" or \"tcp\""));
                            false
                        }
                    };
                    match &r.address {
                        Some(a) if a.get_ref().rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) => {
                            alert_sinks.push(SinkConfig::Syslog { name, address: a.get_ref().clone(), tcp, format })
                        }
                        Some(a) => ctx.at(a, format!("address = \"{}\" needs a host and port, e.g. \"127.0.0.1:514\"", a.get_ref())),
                        None => ctx.at(s, "a syslog alert sink needs address = \"host:514\""),
                    }
                }
                other => ctx.at(
                    &r.kind,
                    format!("alert sink kind \"{other}\" is not known; write \"file\", \"webhook\", \"slack\" or \"syslog\""),
                ),
            }
        }
    }

    let mut recovery = RecoveryConfig {
        grant_timeout: Duration::from_secs(120),
        revoke_timeout: Duration::from_secs(60),
    };
    if let Some(r) = &raw.recovery {
        if let Some(t) = &r.grant_timeout {
            if let Some(s) = parse_duration(&mut ctx, t, "grant_timeout") {
                recovery.grant_timeout = Duration::from_secs(s as u64);
            }
        }
        if let Some(t) = &r.revoke_timeout {
            if let Some(s) = parse_duration(&mut ctx, t, "revoke_timeout") {
                recovery.revoke_timeout = Duration::from_secs(s as u64);
            }
        }
    }

    let mut approval_signing = signing::approval_signing(
        &mut ctx,
        &raw.approval_signing,
        &raw.allowed_signers,
        &resolve,
    );

    // Roles and groups: inline, or in the policy file the config names.
    let roles;
    if let Some(pfile) = &raw.policy {
        if raw.roles.is_some() || raw.groups.is_some() {
            ctx.at(pfile, "roles and groups are in the policy file named here; remove [[roles]] and [groups] from this file");
        }
        let ppath = resolve(pfile.get_ref());
        match std::fs::read_to_string(&ppath) {
            Err(e) => {
                ctx.at(
                    pfile,
                    format!("cannot read policy file {}: {e}", ppath.display()),
                );
                roles = BTreeMap::new();
            }
            Ok(ptext) => match toml::from_str::<RawPolicyFile>(&ptext) {
                Err(e) => {
                    ctx.problems.push(toml_problem(&ppath, &ptext, &e));
                    roles = BTreeMap::new();
                }
                Ok(p) => {
                    let mut pctx = Ctx {
                        file: ppath.clone(),
                        text: &ptext,
                        problems: ctx.problems,
                    };
                    // Signing may be set in the policy file (paths relative to it).
                    if p.approval_signing.is_some() || p.allowed_signers.is_some() {
                        let pdir = ppath.parent().unwrap_or(Path::new(".")).to_path_buf();
                        let presolve = |f: &str| pdir.join(f);
                        let set = signing::approval_signing(
                            &mut pctx,
                            &p.approval_signing,
                            &p.allowed_signers,
                            &presolve,
                        );
                        if let Some(k) = raw
                            .approval_signing
                            .as_ref()
                            .or(raw.allowed_signers.as_ref())
                        {
                            pctx.problems.push(Problem {
                                file: path.to_path_buf(),
                                line: Some(text[..k.span().start.min(text.len())].matches('\n').count() + 1),
                                message: format!("approval signing is also set in the policy file {}; keep it in one place", ppath.display()),
                            });
                        }
                        approval_signing = set;
                    }
                    roles = build_roles(
                        &mut pctx,
                        &p.groups,
                        &p.roles,
                        &backends,
                        &raw.backends,
                        &demo_personas,
                    );
                }
            },
        }
    } else {
        roles = build_roles(
            &mut ctx,
            &raw.groups,
            &raw.roles,
            &backends,
            &raw.backends,
            &demo_personas,
        );
    }

    if problems.is_empty() {
        Ok(Config {
            path: path.to_path_buf(),
            policy: Policy {
                roles,
                demo_personas,
                approval_signing,
            },
            store,
            incident_sources,
            backends,
            alert_sinks,
            alert_rules,
            recovery,
            ui_theme: raw.ui.as_ref().and_then(|u| u.theme.clone()),
            identity,
            checkpoint_key: raw
                .audit
                .as_ref()
                .and_then(|a| a.checkpoint_key_file.as_deref())
                .map(resolve),
        })
    } else {
        Err(Problems(problems))
    }
}

fn default_data_dir() -> PathBuf {
    super::default_data_dir().unwrap_or_else(|| PathBuf::from("."))
}

/// The `[store]` table: `kind = "sqlite"` (the default) or `"postgres"`, and
/// `identity = "os" | "database"`.
fn store_config(
    ctx: &mut Ctx,
    raw: Option<&RawStore>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> (StoreConfig, StoreIdentity) {
    let Some(s) = raw else {
        return (
            StoreConfig::Sqlite {
                path: default_data_dir().join("breakglass.sqlite"),
            },
            StoreIdentity::Os,
        );
    };
    let kind = s.kind.get_ref().as_str();
    let identity = match s.identity.as_ref().map(|i| i.get_ref().as_str()) {
        None | Some("os") => StoreIdentity::Os,
        Some("database") if kind == "postgres" => StoreIdentity::Database,
        Some("database") => {
            ctx.at(s.identity.as_ref().unwrap(), "identity = \"database\" needs kind = \"postgres\" (the store vouches for who is acting through each person's own database login); with sqlite write identity = \"os\"");
            StoreIdentity::Os
        }
        Some(other) => {
            ctx.at(s.identity.as_ref().unwrap(), format!(
                "identity = \"{other}\" is not known; write identity = \"os\" (the operating-system account) or \"database\" (the PostgreSQL login, kind = \"postgres\" only)"
            ));
            StoreIdentity::Os
        }
    };
    // Keys that belong to the other kind are mistakes worth a line number.
    let foreign: Vec<(&str, Option<std::ops::Range<usize>>)> = if kind == "sqlite" {
        vec![
            ("url", s.url.as_ref().map(|v| v.span())),
            ("url_env", s.url_env.as_ref().map(|v| v.span())),
            ("url_file", s.url_file.as_ref().map(|v| v.span())),
            ("tls", s.tls.as_ref().map(|v| v.span())),
            ("ca_file", s.ca_file.as_ref().map(|v| v.span())),
            ("data_dir", s.data_dir.as_ref().map(|v| v.span())),
        ]
    } else if kind == "postgres" {
        vec![("path", s.path.as_ref().map(|v| v.span()))]
    } else {
        vec![]
    };
    for (key, span) in foreign {
        if let Some(span) = span {
            let line = ctx.line_of(span.start);
            ctx.problems.push(Problem {
                file: ctx.file.clone(),
                line: Some(line),
                message: if kind == "sqlite" {
                    format!("[store] {key} is for kind = \"postgres\"; a sqlite store takes only path")
                } else {
                    "[store] path is for kind = \"sqlite\"; a postgres store reads its connection string from url_env or url_file (local files go to data_dir)".to_string()
                },
            });
        }
    }
    let store = match kind {
        "sqlite" => StoreConfig::Sqlite {
            path: match &s.path {
                Some(p) => resolve(p.get_ref()),
                None => default_data_dir().join("breakglass.sqlite"),
            },
        },
        "postgres" => {
            if let Some(u) = &s.url {
                ctx.at(u, "[store] the connection string may carry a password and never goes in the config file; remove url and write url_env = \"BREAKGLASS_STORE_URL\" (an environment variable holding it) or url_file = \"/etc/breakglass/store.url\"");
            }
            let url = match (&s.url_env, &s.url_file) {
                (Some(e), None) => {
                    env_name(ctx, e, "url_env");
                    PgUrlSource::Env(e.get_ref().clone())
                }
                (None, Some(f)) => PgUrlSource::File(resolve(f.get_ref())),
                (Some(e), Some(_)) => {
                    ctx.at(e, "[store] write url_env or url_file, not both");
                    PgUrlSource::Env(e.get_ref().clone())
                }
                (None, None) => {
                    if s.url.is_none() {
                        ctx.at(&s.kind, "a postgres store needs url_env = \"BREAKGLASS_STORE_URL\" (an environment variable holding the connection string) or url_file = \"/etc/breakglass/store.url\"");
                    }
                    PgUrlSource::Env(String::new())
                }
            };
            let tls = match s.tls.as_ref().map(|t| t.get_ref().as_str()) {
                None => None,
                Some("disable") => Some(PgTls::Disable),
                Some("require") => Some(PgTls::Require),
                Some("verify-full") => Some(PgTls::VerifyFull),
                Some(other) => {
                    ctx.at(s.tls.as_ref().unwrap(), format!(
                        "[store] tls = \"{other}\" is not known; write tls = \"verify-full\" (encrypted, certificate and host name checked), \"require\" (encrypted, certificate not checked) or \"disable\""
                    ));
                    None
                }
            };
            if let (Some(f), Some(PgTls::Disable | PgTls::Require)) = (&s.ca_file, tls) {
                ctx.at(f, "[store] ca_file is only used with tls = \"verify-full\"");
            }
            StoreConfig::Postgres(PgStoreConfig {
                url,
                tls,
                ca_file: s.ca_file.as_ref().map(|f| resolve(f.get_ref())),
                data_dir: s
                    .data_dir
                    .as_ref()
                    .map(|d| resolve(d.get_ref()))
                    .unwrap_or_else(default_data_dir),
            })
        }
        other => {
            ctx.at(
                &s.kind,
                format!("store kind \"{other}\" is not known; write kind = \"sqlite\" (one host) or kind = \"postgres\" (a shared team store)"),
            );
            StoreConfig::Sqlite {
                path: PathBuf::new(),
            }
        }
    };
    (store, identity)
}

/// An optional duration setting, `default` seconds when absent or invalid.
fn duration_or(ctx: &mut Ctx, s: &Option<Spanned<String>>, what: &str, default: u64) -> Duration {
    let secs = s
        .as_ref()
        .and_then(|t| parse_duration(ctx, t, what))
        .map_or(default, |v| v as u64);
    Duration::from_secs(secs)
}

/// An environment variable name setting (`secret_env`, `token_env`).
fn env_name(ctx: &mut Ctx, s: &Spanned<String>, what: &str) -> bool {
    let ok = Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$")
        .unwrap()
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
fn http_backend(ctx: &mut Ctx, name: &str, b: &Spanned<RawBackend>) -> Option<BackendConfig> {
    let rb = b.get_ref();
    if let Some(s) = &rb.secret {
        ctx.at(s, format!("backend \"{name}\": the shared secret never goes in the config file; remove secret, set an environment variable and write secret_env = \"BREAKGLASS_HTTP_SECRET\""));
    }
    let url = match &rb.url {
        Some(u) => match crate::backend::http::check_url(u.get_ref()) {
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

fn vault_backend(ctx: &mut Ctx, name: &str, b: &Spanned<RawBackend>) -> BackendConfig {
    let rb = b.get_ref();
    if let Some(t) = &rb.token {
        ctx.at(t, format!("backend \"{name}\": the Vault token never goes in the config file; remove token and export it in VAULT_TOKEN (or name its variable in token_env)"));
    }
    let addr = match &rb.addr {
        Some(a) => match crate::backend::http::check_url(a.get_ref()) {
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

fn postgres_backend(
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
        (None, Some(f)) => Some(PgUrlSource::File(resolve(f.get_ref()))),
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
            ctx.at(rb.tls.as_ref().unwrap(), format!(
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
                .unwrap()
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
    let port = match &rb.port {
        None => None,
        Some(p) if (1..=65535).contains(p.get_ref()) => Some(*p.get_ref() as u16),
        Some(p) => {
            ctx.at(
                p,
                format!("backend \"{name}\": port must be between 1 and 65535"),
            );
            ok = false;
            None
        }
    };
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

type RawGroups = Option<Spanned<BTreeMap<String, Spanned<Vec<String>>>>>;

fn build_roles(
    ctx: &mut Ctx,
    groups: &RawGroups,
    roles: &Option<Vec<Spanned<RawRole>>>,
    backends: &BTreeMap<String, BackendConfig>,
    raw_backends: &BTreeMap<String, Spanned<RawBackend>>,
    demo_personas: &Option<Vec<String>>,
) -> BTreeMap<String, RolePolicy> {
    let user_re = Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$").unwrap();
    let name_re = Regex::new(r"^[a-z0-9][a-z0-9_.-]{0,62}$").unwrap();
    let mut group_map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if let Some(g) = groups {
        for (name, members) in g.get_ref() {
            if members.get_ref().is_empty() {
                ctx.at(
                    members,
                    format!(
                        "group \"{name}\" is empty; list its members, e.g. {name} = [\"alice\"]"
                    ),
                );
            }
            for m in members.get_ref() {
                if !user_re.is_match(m) {
                    ctx.at(members, format!("group \"{name}\": \"{m}\" is not a user name; groups list user names, not other groups"));
                }
            }
            group_map.insert(name.clone(), members.get_ref().iter().cloned().collect());
        }
    }

    let principals = |ctx: &mut Ctx,
                      field: &Option<Spanned<Vec<String>>>,
                      what: &str,
                      role: &Spanned<RawRole>|
     -> Principals {
        let Some(list) = field else {
            ctx.at(
                role,
                format!(
                    "role \"{}\" needs {what} = [\"@group\", \"user\"]",
                    role.get_ref().name.get_ref()
                ),
            );
            return Principals::default();
        };
        let mut p = Principals {
            written: list.get_ref().clone(),
            ..Default::default()
        };
        if list.get_ref().is_empty() {
            ctx.at(
                list,
                format!("{what} is empty; name at least one user or @group"),
            );
        }
        for entry in list.get_ref() {
            if entry == "*" {
                p.anyone = true;
            } else if let Some(g) = entry.strip_prefix('@') {
                match group_map.get(g) {
                    Some(members) => p.users.extend(members.iter().cloned()),
                    None => {
                        let known: Vec<_> = group_map.keys().map(|k| format!("@{k}")).collect();
                        ctx.at(list, format!(
                            "{what}: group \"{g}\" is not defined; define it under [groups] or use one of: {}",
                            if known.is_empty() { "(no groups defined)".to_string() } else { known.join(", ") }
                        ));
                    }
                }
            } else if user_re.is_match(entry) {
                p.users.insert(entry.clone());
            } else {
                ctx.at(
                    list,
                    format!("{what}: \"{entry}\" is not a user name, @group or \"*\""),
                );
            }
        }
        p
    };

    let mut out = BTreeMap::new();
    let Some(roles) = roles else {
        ctx.nowhere(
            "no roles are defined; add at least one [[roles]] table (see `breakglass init`)",
        );
        return out;
    };
    for sr in roles {
        let r = sr.get_ref();
        let name = r.name.get_ref().clone();
        for misplaced in [&r.approval_signing, &r.allowed_signers]
            .into_iter()
            .flatten()
        {
            ctx.at(misplaced, format!("approval_signing and allowed_signers are top-level keys, but this line is inside role \"{name}\"; move it above the first [table] of the file"));
        }
        if !name_re.is_match(&name) {
            ctx.at(&r.name, format!("role name \"{name}\" must be lower-case letters, digits, '-', '_' or '.', at most 63 characters"));
        }
        if out.contains_key(&name) {
            ctx.at(
                &r.name,
                format!("role \"{name}\" is defined twice; role names must be unique"),
            );
        }
        let backend = match &r.backend {
            None => {
                ctx.at(
                    sr,
                    format!("role \"{name}\" needs backend = \"<one of [backends]>\""),
                );
                String::new()
            }
            Some(b) => {
                if !backends.contains_key(b.get_ref()) && !raw_backends.contains_key(b.get_ref()) {
                    let known: Vec<_> = raw_backends.keys().cloned().collect();
                    ctx.at(b, format!(
                        "role \"{name}\": backend \"{}\" is not defined; define [backends.{}] or use one of: {}",
                        b.get_ref(), b.get_ref(),
                        if known.is_empty() { "(none defined)".into() } else { known.join(", ") }
                    ));
                }
                b.get_ref().clone()
            }
        };
        let default_ttl = match &r.default_ttl {
            Some(t) => parse_duration(ctx, t, "default_ttl"),
            None => {
                ctx.at(sr, format!("role \"{name}\" needs default_ttl = \"15m\""));
                None
            }
        };
        let max_ttl = match &r.max_ttl {
            Some(t) => parse_duration(ctx, t, "max_ttl"),
            None => {
                ctx.at(sr, format!("role \"{name}\" needs max_ttl = \"30m\""));
                None
            }
        };
        if let (Some(d), Some(m), Some(span)) = (default_ttl, max_ttl, &r.default_ttl) {
            if d > m {
                ctx.at(span, format!(
                    "role \"{name}\": default_ttl {} is longer than max_ttl {}; write default_ttl = \"{}\" or less",
                    crate::domain::lifecycle::human(d), crate::domain::lifecycle::human(m), crate::domain::lifecycle::human(m)
                ));
            }
        }
        let max_total = match (&r.max_total, max_ttl) {
            (Some(t), m) => {
                let v = parse_duration(ctx, t, "max_total");
                if let (Some(v), Some(m)) = (v, m) {
                    if v < m {
                        ctx.at(
                            t,
                            format!(
                                "role \"{name}\": max_total must be at least max_ttl ({})",
                                crate::domain::lifecycle::human(m)
                            ),
                        );
                    }
                }
                v
            }
            (None, m) => m.map(|m| m * 2),
        };
        let request_ttl = match &r.request_ttl {
            Some(t) => parse_duration(ctx, t, "request_ttl"),
            None => Some(30 * 60),
        };
        let conditions = match &r.conditions {
            Some(c)
                if !c.get_ref().is_empty() && c.get_ref().iter().all(|x| !x.trim().is_empty()) =>
            {
                c.get_ref().clone()
            }
            Some(c) => {
                ctx.at(c, format!("role \"{name}\": conditions must list at least one non-empty condition, e.g. [\"production outage\"]"));
                vec![]
            }
            None => {
                ctx.at(sr, format!("role \"{name}\" needs conditions = [\"production outage\", \"locked-out administrators\"]"));
                vec![]
            }
        };
        let ticket_pattern = r.ticket_pattern.as_ref().and_then(|p| {
            let pat = p.get_ref();
            if !pat.starts_with('^') || !pat.ends_with('$') {
                ctx.at(p, format!("role \"{name}\": ticket_pattern must be anchored so partial matches do not pass; write \"^{}$\"", pat.trim_start_matches('^').trim_end_matches('$')));
                return None;
            }
            match Regex::new(pat) {
                Ok(re) => Some(re),
                Err(e) => { ctx.at(p, format!("role \"{name}\": ticket_pattern is not a valid regular expression: {e}")); None }
            }
        });
        let vendor = vendor::vendor_policy(ctx, r, &name, max_ttl);
        let requesters = principals(ctx, &r.requesters, "requesters", sr);
        let approvers = principals(ctx, &r.approvers, "approvers", sr);
        let certifiers = principals(ctx, &r.certifiers, "certifiers", sr);
        let automation = automation_policy(ctx, r, &name, max_ttl, &conditions, |ctx, f| {
            principals(ctx, f, "automation", sr)
        });
        let approvals_required = match &r.approvals_required {
            None => 1,
            Some(n) if *n.get_ref() >= 1 && *n.get_ref() <= 10 => *n.get_ref() as u32,
            Some(n) => {
                ctx.at(
                    n,
                    format!("role \"{name}\": approvals_required must be between 1 and 10"),
                );
                1
            }
        };
        // A policy where some requester could never collect enough approvals is a trap at 3 a.m.
        // Automation identities may request too (implicitly), and fall back to
        // human approvers whenever policy does not approve them.
        if !approvers.anyone && !requesters.anyone {
            for who in requesters.users.iter().chain(&automation.identities.users) {
                let others = approvers.users.iter().filter(|a| *a != who).count() as u32;
                if others < approvals_required {
                    let span = r
                        .approvers
                        .as_ref()
                        .map(|s| s.span().start)
                        .unwrap_or(sr.span().start);
                    let line = Some(ctx.line_of(span));
                    ctx.problems.push(Problem { file: ctx.file.clone(), line, message: format!(
                        "role \"{name}\": {who} may request it but only {others} other approver(s) exist for {approvals_required} required approvals; add approvers or lower approvals_required"
                    )});
                }
            }
        }
        if !certifiers.anyone && !requesters.anyone {
            for who in &requesters.users {
                if certifiers.users.iter().all(|c| c == who) {
                    let span = r
                        .certifiers
                        .as_ref()
                        .map(|s| s.span().start)
                        .unwrap_or(sr.span().start);
                    let line = Some(ctx.line_of(span));
                    ctx.problems.push(Problem { file: ctx.file.clone(), line, message: format!(
                        "role \"{name}\": {who} may request it but nobody else can certify it; add a certifier other than {who}"
                    )});
                }
            }
        }
        if let Some(personas) = demo_personas {
            for p in requesters
                .users
                .iter()
                .chain(&automation.identities.users)
                .chain(&approvers.users)
                .chain(&certifiers.users)
            {
                if !personas.contains(p) {
                    ctx.nowhere(format!("role \"{name}\" names {p}, who is not a demo persona; add {p} to [demo] personas"));
                }
            }
        }
        // Incident policy. Access that may start on a resolved incident would be
        // revoked by the next sweep if revoke_on_resolve stayed on: a trap.
        let require_open_incident = r
            .require_open_incident
            .as_ref()
            .is_none_or(|b| *b.get_ref());
        let revoke_on_resolve = r.revoke_on_resolve.as_ref().is_none_or(|b| *b.get_ref());
        if let (Some(req), true) = (&r.require_open_incident, revoke_on_resolve) {
            if !*req.get_ref() {
                ctx.at(req, format!(
                    "role \"{name}\": require_open_incident = false lets access start on a resolved incident, which revoke_on_resolve (default true) would end at the next sweep; also write revoke_on_resolve = false"
                ));
            }
        }
        let scope = r
            .scope
            .as_ref()
            .map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
            .unwrap_or(serde_json::Value::Object(Default::default()));
        if let Some(BackendConfig::Vault { .. }) = backends.get(&backend) {
            if let Err(m) = crate::backend::vault::scope_policies(&scope) {
                ctx.at(sr, format!("role \"{name}\": {m}"));
            }
        }
        if let Some(BackendConfig::Postgres(_)) = backends.get(&backend) {
            if let Err(m) = crate::backend::postgres::Scope::parse(&scope) {
                ctx.at(sr, format!("role \"{name}\": {m}"));
            }
        }
        out.insert(
            name.clone(),
            RolePolicy {
                name,
                description: r.description.clone(),
                backend,
                scope,
                default_ttl: default_ttl.unwrap_or(0),
                max_ttl: max_ttl.unwrap_or(0),
                max_extensions: r.max_extensions,
                max_total: max_total.unwrap_or(0),
                conditions,
                ticket_pattern,
                requesters,
                approvers,
                certifiers,
                approvals_required,
                request_ttl: request_ttl.unwrap_or(1800),
                rotate_after_use: r.rotate_after_use,
                require_open_incident,
                revoke_on_resolve,
                require_alert_delivery: r.require_alert_delivery,
                automation,
                vendor,
            },
        );
    }
    out
}

/// The automation fields of one role. `identities` is the role's principal
/// parser (groups expanded) for the `automation` list.
fn automation_policy(
    ctx: &mut Ctx,
    r: &RawRole,
    name: &str,
    max_ttl: Option<i64>,
    conditions: &[String],
    identities: impl FnOnce(&mut Ctx, &Option<Spanned<Vec<String>>>) -> Principals,
) -> crate::domain::policy::Automation {
    use crate::domain::lifecycle::human;
    let role_max = max_ttl.unwrap_or(0);
    let mut a = crate::domain::policy::Automation {
        rate_count: 3,
        rate_window: 3600,
        max_ttl: role_max,
        certify_within: 24 * 3600,
        ..Default::default()
    };
    if let Some(list) = &r.automation {
        if list.get_ref().iter().any(|e| e == "*") {
            ctx.at(list, format!("role \"{name}\": automation cannot be \"*\"; name the service accounts (or an @group of them), since a person is never auto-approved"));
        } else {
            a.identities = identities(ctx, &r.automation);
        }
    }
    if let Some(c) = &r.auto_approve_conditions {
        for cond in c.get_ref() {
            match conditions.iter().find(|k| k.eq_ignore_ascii_case(cond.trim())) {
                Some(k) => a.conditions.push(k.clone()),
                None => ctx.at(c, format!(
                    "role \"{name}\": auto_approve_conditions lists \"{cond}\", which is not one of its conditions ({}); auto-approved conditions must be a subset of conditions",
                    conditions.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ")
                )),
            }
        }
        if r.automation.is_none() {
            ctx.at(c, format!("role \"{name}\": auto_approve_conditions needs automation = [\"svc-account\"] naming who may be auto-approved"));
        }
    } else if let Some(list) = &r.automation {
        ctx.at(list, format!("role \"{name}\": automation needs auto_approve_conditions = [\"...\"] (a subset of conditions)"));
    }
    if let Some(rate) = &r.auto_approve_rate {
        let parsed = rate.get_ref().split_once('/').and_then(|(n, w)| {
            let n: u32 = n.trim().parse().ok().filter(|n| *n >= 1)?;
            let w = humantime::parse_duration(w.trim())
                .ok()
                .filter(|d| d.as_secs() > 0)?;
            Some((n, w.as_secs() as i64))
        });
        match parsed {
            Some((n, w)) => (a.rate_count, a.rate_window) = (n, w),
            None => ctx.at(rate, format!(
                "role \"{name}\": auto_approve_rate = \"{}\" is not N/window; write e.g. \"3/1h\" (at most 3 auto-approvals per hour)",
                rate.get_ref()
            )),
        }
    }
    if let Some(t) = &r.auto_max_ttl {
        if let Some(v) = parse_duration(ctx, t, "auto_max_ttl") {
            if max_ttl.is_some() && v > role_max {
                ctx.at(t, format!(
                    "role \"{name}\": auto_max_ttl {} is longer than max_ttl {}; write auto_max_ttl = \"{}\" or less",
                    human(v), human(role_max), human(role_max)
                ));
            } else {
                a.max_ttl = v;
            }
        }
    }
    if let Some(t) = &r.certify_within {
        if let Some(v) = parse_duration(ctx, t, "certify_within") {
            a.certify_within = v;
        }
    }
    a
}
