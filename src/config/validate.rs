use super::raw::*;
use super::*;
use crate::alert_vocab::{AlertKind, AlertRules, Format};
use crate::domain::duration::BadDuration;
use crate::domain::policy::{Principals, RolePolicy};
use regex::Regex;
use std::collections::BTreeSet;
use toml::Spanned;

mod alerts;
mod backends;
mod broker;
mod policy;
mod roles;
mod separation;
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

/// Reads and validates the config at `path` (and the policy file it names). A
/// person's client config (only `[broker]`) is refused: it holds no policy.
pub fn load(path: &Path) -> Result<Config, Problems> {
    load_str(&read(path)?, path)
}

/// Reads and validates the config at `path`: a whole config, or a person's
/// client config that names only the broker (`[broker]`, and `[ui]`).
pub fn load_any(path: &Path) -> Result<Loaded, Problems> {
    load_any_str(&read(path)?, path)
}

/// [`load_any`] on text read from `path`.
pub fn load_any_str(text: &str, path: &Path) -> Result<Loaded, Problems> {
    let raw = parse(text, path)?;
    if !broker::client_only(&raw) {
        return full(text, path, raw).map(|c| Loaded::Full(Box::new(c)));
    }
    let mut problems = Vec::new();
    let mut ctx = Ctx {
        file: path.to_path_buf(),
        text,
        problems: &mut problems,
    };
    let broker = broker::broker(&mut ctx, raw.broker.as_ref())
        .expect("a client config has a [broker] table: client_only checked it");
    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    Ok(Loaded::Client(ClientConfig {
        path: path.to_path_buf(),
        broker,
        ui_theme: raw.ui.as_ref().and_then(|u| u.theme.clone()),
        ui_approval_bell: raw
            .ui
            .as_ref()
            .and_then(|u| u.approval_bell)
            .unwrap_or(true),
    }))
}

fn read(path: &Path) -> Result<String, Problems> {
    std::fs::read_to_string(path).map_err(|e| {
        Problems(vec![Problem {
            file: path.to_path_buf(),
            line: None,
            message: format!(
                "cannot read the config: {e}; run `breakglass init` to write a starter config, or pass --config FILE"
            ),
        }])
    })
}

/// Validates config text as if it were read from `path` (relative paths in it are
/// resolved against `path`'s directory). Every phase records its problems and
/// goes on, so one run reports them all.
pub fn load_str(text: &str, path: &Path) -> Result<Config, Problems> {
    let raw = parse(text, path)?;
    if let Some(b) = raw.broker.as_ref().filter(|_| broker::client_only(&raw)) {
        let socket = b
            .get_ref()
            .socket
            .as_ref()
            .map_or(crate::config::broker::DEFAULT_SOCKET, |s| s.get_ref());
        let mut problems = Vec::new();
        Ctx {
            file: path.to_path_buf(),
            text,
            problems: &mut problems,
        }
        .at(b, format!("this config only names a broker (socket \"{socket}\"); the broker's own config holds the policy, the store and the backends"));
        return Err(Problems(problems));
    }
    full(text, path, raw)
}

/// A whole config: every phase records its problems and goes on.
fn full(text: &str, path: &Path, raw: RawConfig) -> Result<Config, Problems> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let resolve = |p: &str| relative_to(&dir, p);
    let mut problems = Vec::new();
    let mut ctx = Ctx {
        file: path.to_path_buf(),
        text,
        problems: &mut problems,
    };

    let demo_personas = demo(&mut ctx, &raw);
    let (store, identity) = store_config(&mut ctx, raw.store.as_ref(), &resolve);
    let incident_sources = sources::sources(&mut ctx, &raw.incident_sources, &resolve);
    let backends = backends(
        &mut ctx,
        &raw.backends,
        &store,
        demo_personas.is_some(),
        &resolve,
    );
    let (alert_sinks, alert_rules) = alerts::alerts(&mut ctx, raw.alerts.as_ref(), &resolve);
    let recovery = recovery(&mut ctx, raw.recovery.as_ref());
    let broker = broker::broker(&mut ctx, raw.broker.as_ref());
    let checkpoint_key = raw
        .audit
        .as_ref()
        .and_then(|a| a.checkpoint_key_file.as_ref())
        .map(|f| {
            let path = resolve(f.get_ref());
            secret_file(&mut ctx, f, &path, "[audit] checkpoint_key_file");
            path
        });
    let approval_signing = signing::approval_signing(
        &mut ctx,
        &raw.approval_signing,
        &raw.allowed_signers,
        &resolve,
    );
    let policy = policy::policy(
        &mut ctx,
        &raw,
        demo_personas,
        approval_signing,
        &backends,
        &resolve,
    );

    alerts::check_sink_roles(&mut ctx, raw.alerts.as_ref(), &policy);

    let config = Config {
        path: path.to_path_buf(),
        policy,
        store,
        incident_sources,
        backends,
        alert_sinks,
        alert_rules,
        recovery,
        ui_theme: raw.ui.as_ref().and_then(|u| u.theme.clone()),
        ui_approval_bell: raw
            .ui
            .as_ref()
            .and_then(|u| u.approval_bell)
            .unwrap_or(true),
        identity,
        checkpoint_key,
        broker,
    };
    finish(problems, config)
}

/// Parse: the text is TOML of the config's shape (the one problem that stops early).
fn parse(text: &str, path: &Path) -> Result<RawConfig, Problems> {
    toml::from_str(text).map_err(|e| Problems(vec![toml_problem(path, text, &e)]))
}

/// A file holding a secret is its owner's alone: no group or other permission
/// (`files::check_private`; a missing file is reported where it is read).
fn secret_file(ctx: &mut Ctx, at: &Spanned<String>, path: &Path, what: &str) {
    if let Err(e) = crate::files::check_private(path) {
        ctx.at(at, format!("{what} holds a secret, but {e}"));
    }
}

/// A path from the config: absolute as written, else relative to `dir`.
fn relative_to(dir: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        dir.join(p)
    }
}

/// `[demo]`: enough personas to request, approve and certify.
fn demo(ctx: &mut Ctx, raw: &RawConfig) -> Option<Vec<String>> {
    let d = raw.demo.as_ref()?;
    if d.get_ref().personas.len() < 3 {
        ctx.at(
            d,
            "[demo] needs at least three personas (a requester, an approver, a certifier)",
        );
    }
    Some(d.get_ref().personas.clone())
}

/// `[recovery]`: the grant and revoke timeouts are durations; the revocations in
/// flight per sweeper a count.
fn recovery(ctx: &mut Ctx, raw: Option<&RawRecovery>) -> RecoveryConfig {
    let mut recovery = RecoveryConfig::default();
    let Some(r) = raw else {
        return recovery;
    };
    if let Some(t) = &r.grant_timeout {
        if let Some(s) = parse_duration(ctx, t, "grant_timeout") {
            recovery.grant_timeout = Duration::from_secs(s as u64);
        }
    }
    if let Some(t) = &r.revoke_timeout {
        if let Some(s) = parse_duration(ctx, t, "revoke_timeout") {
            recovery.revoke_timeout = Duration::from_secs(s as u64);
        }
    }
    if let Some(n) = &r.revoke_concurrency {
        let max = RecoveryConfig::MAX_REVOKE_CONCURRENCY;
        match usize::try_from(*n.get_ref()) {
            Ok(v) if (1..=max).contains(&v) => recovery.revoke_concurrency = v,
            _ => ctx.at(
                n,
                format!(
                    "revoke_concurrency = {} must be between 1 and {max} (revocations one sweeper has in flight)",
                    n.get_ref()
                ),
            ),
        }
    }
    recovery
}

/// Finish: the config, if no phase found a problem.
fn finish(problems: Vec<Problem>, config: Config) -> Result<Config, Problems> {
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(Problems(problems))
    }
}

type RawGroups = Option<Spanned<BTreeMap<String, Spanned<Vec<String>>>>>;
