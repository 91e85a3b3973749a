//! `[alerts]`: which kinds are raised, and the sinks they are delivered to.

use super::*;
use crate::alert::config::{Route, Target};
use crate::domain::Policy;

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
        let route = route(ctx, s.get_ref(), s.get_ref().kind.get_ref());
        if let Some(target) = sink(ctx, name, s, resolve) {
            sinks.push(SinkConfig { target, route });
        }
    }
    (sinks, rules)
}

/// `on = [...]`: every entry names an alert kind (always-on kinds are accepted
/// and left out).
fn kinds(ctx: &mut Ctx, on: &Spanned<Vec<String>>) -> BTreeSet<AlertKind> {
    known_kinds(ctx, on)
        .into_iter()
        .filter(|k| !k.always_on())
        .collect()
}

/// Every entry of a list of alert kinds is one.
fn known_kinds(ctx: &mut Ctx, list: &Spanned<Vec<String>>) -> BTreeSet<AlertKind> {
    let mut set = BTreeSet::new();
    for k in list.get_ref() {
        match k.parse::<AlertKind>() {
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
                    list,
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

/// A sink's `kinds` and `roles`. A PagerDuty sink takes approval notices only.
fn route(ctx: &mut Ctx, r: &RawSink, kind: &str) -> Route {
    let kinds = r.kinds.as_ref().map(|k| {
        let set = known_kinds(ctx, k);
        if k.get_ref().is_empty() {
            ctx.at(k, "kinds = [] sends this sink nothing; name the alert kinds it takes, or remove the sink");
        }
        if kind == "pagerduty" && set.iter().any(|k| *k != AlertKind::ApprovalRequest) {
            ctx.at(
                k,
                "a pagerduty sink pages approvers: it takes kinds = [\"approval_request\"] only; send the other kinds to a webhook, slack or syslog sink",
            );
        }
        set
    });
    let roles = r
        .roles
        .as_ref()
        .map(|l| l.get_ref().iter().cloned().collect());
    Route { kinds, roles }
}

/// Each sink's `roles` names roles of the policy (read after `[alerts]`).
pub(super) fn check_sink_roles(ctx: &mut Ctx, raw: Option<&RawAlerts>, policy: &Policy) {
    for s in raw.iter().flat_map(|a| &a.sinks) {
        let Some(roles) = &s.get_ref().roles else {
            continue;
        };
        for r in roles.get_ref() {
            if !policy.roles.contains_key(r) {
                ctx.at(
                    roles,
                    format!(
                        "roles names \"{r}\", which is no role of the policy; roles are: {}",
                        policy.roles.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
    }
}

/// One `[[alerts.sinks]]` table: no inline secret, a known format and kind, and
/// what that kind needs; `None` after recording its problems.
fn sink(
    ctx: &mut Ctx,
    name: String,
    s: &Spanned<RawSink>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<Target> {
    let r = s.get_ref();
    let kind = r.kind.get_ref().as_str();
    if let Some(secret) = &r.secret {
        ctx.at(secret, "secrets never go in the config file; write secret_env = \"NAME_OF_ENV_VAR\" and set that variable");
    }
    if let Some(key) = &r.routing_key {
        ctx.at(key, "a PagerDuty routing key is a secret and never goes in the config file; write routing_key_env = \"BREAKGLASS_PAGERDUTY_KEY\" and set that variable");
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
            Some(p) => Some(Target::File {
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
                Some(env) => Some(Target::Slack {
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
        "pagerduty" => pagerduty(ctx, name, s, timeout),
        other => {
            ctx.at(
                &r.kind,
                format!("alert sink kind \"{other}\" is not known; write \"file\", \"webhook\", \"slack\", \"syslog\" or \"pagerduty\""),
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
) -> Option<Target> {
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
            Some(Target::Webhook {
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

/// A PagerDuty Events v2 sink: the routing key from the environment, the
/// endpoint an http(s) URL without credentials (default PagerDuty's own).
fn pagerduty(
    ctx: &mut Ctx,
    name: String,
    s: &Spanned<RawSink>,
    timeout: Duration,
) -> Option<Target> {
    let r = s.get_ref();
    let url = match &r.url {
        None => crate::alert::pagerduty::EVENTS_URL.to_string(),
        Some(u)
            if urls::refuse_credentials(
                ctx,
                u,
                "pagerduty url",
                "the routing key goes in routing_key_env",
            ) =>
        {
            return None
        }
        Some(u) if u.get_ref().starts_with("https://") || u.get_ref().starts_with("http://") => {
            u.get_ref().clone()
        }
        Some(u) => {
            ctx.at(
                u,
                format!(
                    "url = \"{}\" must start with https:// (or http:// on a trusted network); leave it out for {}",
                    u.get_ref(),
                    crate::alert::pagerduty::EVENTS_URL
                ),
            );
            return None;
        }
    };
    match &r.routing_key_env {
        Some(env) => Some(Target::PagerDuty {
            name,
            url,
            routing_key_env: env.clone(),
            timeout,
        }),
        None => {
            if r.routing_key.is_none() {
                ctx.at(
                    s,
                    "a pagerduty alert sink needs routing_key_env = \"BREAKGLASS_PAGERDUTY_KEY\" (the Events API v2 integration key)",
                );
            }
            None
        }
    }
}

/// A syslog sink: a known transport, a message size that transport carries,
/// and a host:port address.
fn syslog(ctx: &mut Ctx, name: String, s: &Spanned<RawSink>, format: Format) -> Option<Target> {
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
            Some(Target::Syslog {
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
