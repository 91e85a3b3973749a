//! `[alerts]`: which kinds are raised, and the sinks they are delivered to.

use super::*;

/// `[alerts]`: the kinds in `on` are known, and each sink is complete and
/// uniquely named.
pub(super) fn alerts(
    ctx: &mut Ctx,
    raw: Option<&RawAlerts>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> (Vec<SinkConfig>, AlertRules) {
    let mut sinks = Vec::new();
    let mut rules = AlertRules::default();
    let Some(a) = raw else {
        return (sinks, rules);
    };
    if let Some(on) = &a.on {
        rules.on = kinds(ctx, on);
    }
    let mut names = BTreeSet::new();
    for (i, s) in a.sinks.iter().enumerate() {
        let name = s
            .get_ref()
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", s.get_ref().kind.get_ref(), i + 1));
        if !names.insert(name.clone()) {
            ctx.at(
                s,
                format!("two alert sinks are called \"{name}\"; give each a unique name"),
            );
        }
        if let Some(c) = sink(ctx, name, s, resolve) {
            sinks.push(c);
        }
    }
    (sinks, rules)
}

/// `on = [...]`: every entry names an alert kind (always-on kinds are accepted
/// and left out).
fn kinds(ctx: &mut Ctx, on: &Spanned<Vec<String>>) -> BTreeSet<AlertKind> {
    let mut set = BTreeSet::new();
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
    set
}

/// One `[[alerts.sinks]]` table: no inline secret, a known format and kind, and
/// what that kind needs; `None` after recording its problems.
fn sink(
    ctx: &mut Ctx,
    name: String,
    s: &Spanned<RawSink>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<SinkConfig> {
    let r = s.get_ref();
    let kind = r.kind.get_ref().as_str();
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
        Some(t) => Duration::from_secs(parse_duration(ctx, t, "timeout").unwrap_or(10) as u64),
        None => Duration::from_secs(10),
    };
    if let (Some(m), false) = (&r.max_message_bytes, kind == "syslog") {
        ctx.at(m, "max_message_bytes applies to syslog sinks only");
    }
    match kind {
        "file" => match &r.path {
            Some(p) => Some(SinkConfig::File {
                name,
                path: resolve(p),
                format,
            }),
            None => {
                ctx.at(s, "a file alert sink needs path = \"alerts.jsonl\"");
                None
            }
        },
        "webhook" => webhook(ctx, name, s, format, timeout),
        "slack" => {
            if let Some(u) = &r.url {
                ctx.at(u, "a Slack webhook URL is a secret; write url_env = \"BREAKGLASS_SLACK_WEBHOOK\" and set that variable");
            }
            match &r.url_env {
                Some(env) => Some(SinkConfig::Slack {
                    name,
                    url_env: env.clone(),
                    timeout,
                }),
                None => {
                    ctx.at(
                        s,
                        "a slack alert sink needs url_env = \"BREAKGLASS_SLACK_WEBHOOK\"",
                    );
                    None
                }
            }
        }
        "syslog" => syslog(ctx, name, s, format),
        other => {
            ctx.at(
                &r.kind,
                format!("alert sink kind \"{other}\" is not known; write \"file\", \"webhook\", \"slack\" or \"syslog\""),
            );
            None
        }
    }
}

/// A webhook sink: an http(s) URL without credentials in it.
fn webhook(
    ctx: &mut Ctx,
    name: String,
    s: &Spanned<RawSink>,
    format: Format,
    timeout: Duration,
) -> Option<SinkConfig> {
    let r = s.get_ref();
    match &r.url {
        Some(u)
            if urls::refuse_credentials(
                ctx,
                u,
                "webhook url",
                "sign the webhook with a secret named by secret_env instead",
            ) =>
        {
            None
        }
        Some(u) if u.get_ref().starts_with("https://") || u.get_ref().starts_with("http://") => {
            Some(SinkConfig::Webhook {
                name,
                url: u.get_ref().clone(),
                secret_env: r.secret_env.clone(),
                format,
                timeout,
            })
        }
        Some(u) => {
            ctx.at(
                u,
                format!(
                    "url = \"{}\" must start with https:// (or http:// on a trusted network)",
                    u.get_ref()
                ),
            );
            None
        }
        None => {
            ctx.at(
                s,
                "a webhook alert sink needs url = \"https://...\" (and secret_env to sign it)",
            );
            None
        }
    }
}

/// A syslog sink: a known transport, a message size that transport carries,
/// and a host:port address.
fn syslog(ctx: &mut Ctx, name: String, s: &Spanned<RawSink>, format: Format) -> Option<SinkConfig> {
    use crate::alert_vocab::syslog_size as sl;
    let r = s.get_ref();
    let tcp = match &r.transport {
        None => false,
        Some(t) => match t.get_ref().as_str() {
            "udp" => false,
            "tcp" => true,
            other => {
                ctx.at(
                    t,
                    format!("transport = \"{other}\" is not known; write \"udp\" or \"tcp\""),
                );
                false
            }
        },
    };
    let (transport, limit) = if tcp {
        ("tcp", sl::TCP_LIMIT_BYTES)
    } else {
        ("udp", sl::UDP_LIMIT_BYTES)
    };
    let max_message_bytes = match &r.max_message_bytes {
        None => sl::default_max_bytes(tcp),
        Some(m) if (sl::MIN_MAX_BYTES as i64..=limit as i64).contains(m.get_ref()) => {
            *m.get_ref() as usize
        }
        Some(m) => {
            ctx.at(m, format!(
                "max_message_bytes = {} is out of range over {transport}: write {} (what every receiver must take) to {limit}",
                m.get_ref(), sl::MIN_MAX_BYTES
            ));
            sl::default_max_bytes(tcp)
        }
    };
    match &r.address {
        Some(a)
            if a.get_ref()
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok()) =>
        {
            Some(SinkConfig::Syslog {
                name,
                address: a.get_ref().clone(),
                tcp,
                format,
                max_message_bytes,
            })
        }
        Some(a) => {
            ctx.at(
                a,
                format!(
                    "address = \"{}\" needs a host and port, e.g. \"127.0.0.1:514\"",
                    a.get_ref()
                ),
            );
            None
        }
        None => {
            ctx.at(s, "a syslog alert sink needs address = \"host:514\"");
            None
        }
    }
}
