use super::raw::*;
use super::*;
use crate::alert_vocab::{AlertKind, AlertRules, Format};
use crate::domain::duration::BadDuration;
use crate::domain::policy::{Principals, RolePolicy};
use regex::Regex;
use std::collections::BTreeSet;
use toml::Spanned;

mod backends;
mod roles;
mod signing;
mod sources;
mod store;
mod urls;
mod vendor;

use backends::*;
use roles::*;
use store::*;

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

/// A duration setting, read as everywhere else (`domain::duration`).
fn parse_duration(ctx: &mut Ctx, s: &Spanned<String>, what: &str) -> Option<i64> {
    match crate::domain::duration::parse_secs(s.get_ref()) {
        Err(BadDuration::TooLong) => {
            ctx.at(
                s,
                format!(
                    "{what} = \"{}\" is longer than 100 years; write e.g. \"15m\", \"1h\" or \"90s\"",
                    s.get_ref()
                ),
            );
            None
        }
        Ok(secs) => Some(secs),
        Err(BadDuration::NotADuration) => {
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
    let mut alert_rules = AlertRules::default();
    if let Some(a) = &raw.alerts {
        if let Some(on) = &a.on {
            let mut set = std::collections::BTreeSet::new();
            for k in on.get_ref() {
                match k.parse::<AlertKind>() {
                    // Always on; listing it is harmless.
                    Ok(kind) if kind.always_on() => {}
                    Ok(kind) => {
                        set.insert(kind);
                    }
                    Err(_) => {
                        let names = |always: bool| {
                            AlertKind::ALL
                                .into_iter()
                                .filter(|k| k.always_on() == always)
                                .map(AlertKind::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        ctx.at(
                            on,
                            format!(
                                "alert kind \"{k}\" is not known; choose from: {} (always on), {}",
                                names(true),
                                names(false)
                            ),
                        )
                    }
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
            let format = match &r.format {
                None => Format::Native,
                Some(f) => f.get_ref().parse().unwrap_or_else(|()| {
                    ctx.at(
                        f,
                        format!(
                            "format = \"{}\" is not known; write \"native\" or \"ocsf\"",
                            f.get_ref()
                        ),
                    );
                    Format::Native
                }),
            };
            let timeout = match &r.timeout {
                Some(t) => {
                    Duration::from_secs(parse_duration(&mut ctx, t, "timeout").unwrap_or(10) as u64)
                }
                None => Duration::from_secs(10),
            };
            if let (Some(m), false) = (&r.max_message_bytes, kind == "syslog") {
                ctx.at(m, "max_message_bytes applies to syslog sinks only");
            }
            match kind {
                "file" => match &r.path {
                    Some(p) => alert_sinks.push(SinkConfig::File { name, path: resolve(p), format }),
                    None => ctx.at(s, "a file alert sink needs path = \"alerts.jsonl\""),
                },
                "webhook" => match &r.url {
                    Some(u) if urls::refuse_credentials(&mut ctx, u, "webhook url", "sign the webhook with a secret named by secret_env instead") => {}
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
                            ctx.at(r.transport.as_ref().expect("transport is set: its value was matched"), format!("transport = \"{other}\" is not known; write \"udp\" or \"tcp\""));
                            false
                        }
                    };
                    use crate::alert_vocab::syslog_size as sl;
                    let (transport, limit) = if tcp { ("tcp", sl::TCP_LIMIT_BYTES) } else { ("udp", sl::UDP_LIMIT_BYTES) };
                    let max_message_bytes = match &r.max_message_bytes {
                        None => sl::default_max_bytes(tcp),
                        Some(m) if (sl::MIN_MAX_BYTES as i64..=limit as i64).contains(m.get_ref()) => *m.get_ref() as usize,
                        Some(m) => {
                            ctx.at(m, format!(
                                "max_message_bytes = {} is out of range over {transport}: write {} (what every receiver must take) to {limit}",
                                m.get_ref(), sl::MIN_MAX_BYTES
                            ));
                            sl::default_max_bytes(tcp)
                        }
                    };
                    match &r.address {
                        Some(a) if a.get_ref().rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) => {
                            alert_sinks.push(SinkConfig::Syslog { name, address: a.get_ref().clone(), tcp, format, max_message_bytes })
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

type RawGroups = Option<Spanned<BTreeMap<String, Spanned<Vec<String>>>>>;
