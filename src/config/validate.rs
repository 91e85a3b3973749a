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
mod policy;
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
/// resolved against `path`'s directory). Every phase records its problems and
/// goes on, so one run reports them all.
pub fn load_str(text: &str, path: &Path) -> Result<Config, Problems> {
    let raw = parse(text, path)?;
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
        identity,
        checkpoint_key: raw
            .audit
            .as_ref()
            .and_then(|a| a.checkpoint_key_file.as_deref())
            .map(resolve),
    };
    finish(problems, config)
}

/// Parse: the text is TOML of the config's shape (the one problem that stops early).
fn parse(text: &str, path: &Path) -> Result<RawConfig, Problems> {
    toml::from_str(text).map_err(|e| Problems(vec![toml_problem(path, text, &e)]))
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

/// `[recovery]`: the grant and revoke timeouts are durations.
fn recovery(ctx: &mut Ctx, raw: Option<&RawRecovery>) -> RecoveryConfig {
    let mut recovery = RecoveryConfig {
        grant_timeout: Duration::from_secs(120),
        revoke_timeout: Duration::from_secs(60),
    };
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
