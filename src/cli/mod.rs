//! The non-interactive front end: every subcommand is a thin call into the engine.

pub mod args;
mod audit_cmd;
mod broker_cmd;
mod decisions;
mod evidence_cmd;
mod install_files;
mod key_files;
mod output;
mod requests;
mod session;
mod setup;
mod stdio;
mod still_active;
mod store_migrate;

pub use args::Cli;

use crate::cli::stdio::{errln, outln};
use audit_cmd::*;
use decisions::*;
use requests::*;
use setup::*;

use crate::config::{self, Config};
use crate::domain::{RequestId, ReviewAnswers, SshSignature, State};
use crate::engine::{Decision, Engine, Error as EngineError, IncidentChoice, RequestInput};
use crate::exit;
use crate::identity::ssh_sign::{self, DecisionKind};
use crate::service::Service;
use args::*;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// A command that failed: its documented exit code, what went wrong, the causes
/// under it (each once), and what to do about it.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    /// For a refusal: its reason, for `--json` readers.
    pub reason: Option<crate::domain::lifecycle::Reason>,
    pub message: String,
    pub causes: Vec<String>,
    pub hints: Vec<String>,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Failure {
            code,
            reason: None,
            message: message.into(),
            causes: vec![],
            hints: vec![],
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }
    /// `e` and its source chain; a cause whose text the message already holds
    /// is not repeated.
    pub fn from_error(code: i32, e: &dyn std::error::Error) -> Self {
        let mut f = Failure::new(code, e.to_string());
        let mut src = e.source();
        while let Some(c) = src {
            let text = c.to_string();
            if !f.message.contains(&text) && !f.causes.iter().any(|x| x.contains(&text)) {
                f.causes.push(text);
            }
            src = c.source();
        }
        f
    }
    /// What `breakglass` prints on stderr, cleaned: the message, then
    /// `caused by:` and `hint:` lines.
    pub fn render(&self) -> String {
        let mut out = format!("breakglass: {}", self.message);
        for c in &self.causes {
            out.push_str(&format!("\n  caused by: {c}"));
        }
        for h in &self.hints {
            out.push_str(&format!("\nhint: {h}"));
        }
        crate::sanitize::text(&out, MAX_MESSAGE)
    }
}

impl From<crate::service::Error> for Failure {
    fn from(e: crate::service::Error) -> Self {
        use crate::service::ErrorKind;
        let hint = match e.kind {
            ErrorKind::Store => Some(
                "the store could not be used: check [store] with `breakglass config check`; \
                 `breakglass audit verify` tells whether the log is whole"
                    .to_string(),
            ),
            ErrorKind::Locked => Some(
                "`breakglass status --all` shows the request holding the role; it unlocks \
                 when access ends and the review is certified"
                    .to_string(),
            ),
            ErrorKind::Unavailable => Some(
                "is the broker running? `systemctl status breakglass-broker` (or start one with \
                 `breakglass --config BROKER.toml broker` as the broker's account)"
                    .to_string(),
            ),
            _ => None,
        };
        let mut f = Failure::new(e.code, e.message);
        f.causes = e.causes;
        f.reason = e.reason;
        f.hints.extend(hint);
        f
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        crate::service::Error::from(e).into()
    }
}

impl From<crate::identity::IdentityError> for Failure {
    fn from(e: crate::identity::IdentityError) -> Self {
        Failure::new(exit::USAGE, e.to_string())
    }
}

type CliResult = Result<i32, Failure>;

/// Longest error message printed (a hostile source can send megabytes).
const MAX_MESSAGE: usize = 4000;

pub async fn run(cli: Cli) -> i32 {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(f) => {
            // Messages quote what users, sources and backends said: render cleans.
            errln!("{}", f.render());
            f.code
        }
    }
}

fn config_path(cli: &Cli) -> Result<PathBuf, Failure> {
    cli.config
        .clone()
        .or_else(config::default_path)
        .ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                "no config dir on this system; pass --config FILE",
            )
        })
}

fn load_any_config(cli: &Cli) -> Result<config::Loaded, Failure> {
    let path = config_path(cli)?;
    config::load_any(&path).map_err(|p| {
        Failure::new(
            exit::USAGE,
            format!("the config has problems:\n{p}\n(`breakglass config check` lists them all)"),
        )
    })
}

fn parse_duration(s: &str, what: &str) -> Result<i64, Failure> {
    use crate::domain::duration::{parse_secs, BadDuration};
    parse_secs(s).map_err(|e| {
        let problem = match e {
            BadDuration::NotADuration => "is not a duration",
            BadDuration::TooLong => "is longer than 100 years",
        };
        Failure::new(
            exit::USAGE,
            format!("{what} `{s}` {problem}; write e.g. 15m, 1h, 90s"),
        )
    })
}

/// Runs recovery before a command and tells the operator what it did.
async fn recover_first(svc: &Service) -> Result<(), Failure> {
    let rep = svc.recover().await?;
    if !rep.is_quiet() {
        for line in output::recovery_lines(&rep) {
            errln!("recovery: {line}");
        }
    }
    Ok(())
}

async fn dispatch(cli: Cli) -> CliResult {
    let command = match &cli.command {
        None | Some(Command::Console) => {
            return match load_any_config(&cli)? {
                config::Loaded::Full(cfg) => match &cfg.broker {
                    Some(b) => {
                        let look = ConsoleLook::of_config(&cfg);
                        console_on(&cli, &look, Service::broker(b.socket.clone())).await
                    }
                    None => console(&cli, &cfg).await,
                },
                config::Loaded::Client(c) => {
                    let look = ConsoleLook::of_client(&c);
                    console_on(&cli, &look, Service::broker(c.broker.socket.clone())).await
                }
            };
        }
        Some(c) => c,
    };
    match command {
        Command::Init { force } => return init(&cli, *force),
        Command::Audit(AuditCmd::Keygen { out }) => {
            let signer = crate::audit::checkpoint::Signer::generate(out)
                .map_err(|e| Failure::from_error(exit::USAGE, &e))?;
            outln!("{}", signer.public_hex());
            errln!(
                "wrote the private key to {} (mode 0600). Give the public key above to whoever verifies checkpoints; keep the private key away from the store.",
                out.display()
            );
            return Ok(exit::OK);
        }
        Command::Config(ConfigCmd::Check) => return config_check(&cli),
        Command::Evidence(EvidenceArgs {
            verify: Some(EvidenceCmd::Verify { dir, public_key }),
            ..
        }) => return evidence_cmd::verify(dir, public_key.as_deref(), cli.json),
        Command::Demo { dir, no_console } => return demo(&cli, dir.clone(), *no_console).await,
        Command::Completions { shell } => return install_files::completions_cmd(*shell),
        Command::Man { dir } => return install_files::man_cmd(dir, cli.json),
        _ => {}
    }
    let cfg = match load_any_config(&cli)? {
        config::Loaded::Client(c) => {
            let svc = Service::broker(c.broker.socket).as_persona(cli.as_persona.clone());
            return run_command(&cli, command, &svc).await;
        }
        config::Loaded::Full(cfg) => *cfg,
    };
    if let Command::Store(StoreCmd::Migrate(a)) = command {
        return store_migrate::migrate(&cfg, a, cli.json);
    }
    if let Command::Broker { socket } = command {
        return broker_cmd::run(&cfg, socket.as_deref(), cli.json).await;
    }
    // A config that names a broker sends people's commands there; the daemon
    // (a sweeper beside the broker) is the one exception.
    if let (Some(b), false) = (&cfg.broker, matches!(command, Command::Daemon { .. })) {
        let svc = Service::broker(b.socket.clone()).as_persona(cli.as_persona.clone());
        return run_command(&cli, command, &svc).await;
    }
    let engine = std::sync::Arc::new(Engine::from_config(&cfg)?);
    if let Command::Daemon { interval } = command {
        return daemon(&engine, parse_duration(interval, "--interval")?, cli.json).await;
    }
    let svc = Service::local(engine).as_persona(cli.as_persona.clone());
    run_command(&cli, command, &svc).await
}

/// Every command that works on a store.
pub async fn run_command(cli: &Cli, command: &Command, svc: &Service) -> CliResult {
    let result = run_one(cli, command, svc).await;
    // Key files written by --key-dir for access that has ended since.
    key_files::clean_ended(svc).await;
    // The SOC hears about what this command did now, not at the next sweep; a
    // crash before this point leaves the alerts in the outbox for the next one.
    crate::failpoint::hit("alert.before_delivery");
    if let Err(e) = svc.deliver_alerts().await {
        errln!("breakglass: alert delivery: {e}");
    }
    result
}

async fn run_one(cli: &Cli, command: &Command, svc: &Service) -> CliResult {
    // Validates --as even for commands that do not need an identity.
    if cli.as_persona.is_some() {
        svc.whoami().await?;
    }
    if !matches!(command, Command::Sweep | Command::Daemon { .. }) {
        recover_first(svc).await?;
    }
    let json = cli.json;
    match command {
        Command::Incidents => {
            let (list, errors, warnings) = svc.incidents().await?;
            output::incidents(&list, &errors, &warnings, svc.now(), json);
            Ok(if errors.is_empty() {
                exit::OK
            } else {
                exit::BACKEND
            })
        }
        Command::Roles { action: None } => {
            let roles = svc.roles().await?;
            output::roles(&roles, svc.now(), json);
            Ok(exit::OK)
        }
        Command::Roles {
            action:
                Some(RolesCmd::Recertify {
                    role,
                    comment,
                    sign,
                }),
        } => recertify(svc, role, comment, sign, json).await,
        Command::Request(a) => {
            svc.whoami().await?;
            request(cli, svc, a).await
        }
        Command::Activate { id, key_dir } => activate(cli, svc, *id, key_dir.as_deref()).await,
        Command::Shell { id, command } => {
            svc.whoami().await?;
            session::shell(svc, *id, command.as_deref()).await
        }
        Command::Replay { id, speed } => {
            svc.whoami().await?;
            session::replay(svc, *id, *speed).await
        }
        Command::Approve { id, comment, sign } => {
            decide(svc, *id, Decision::approve(comment.clone()), sign, json).await
        }
        Command::Deny { id, reason, sign } => {
            decide(svc, *id, Decision::deny(reason), sign, json).await
        }
        Command::Drill { role } => {
            let req = svc.drill(role).await?;
            Ok(output::drill(svc, &req, json))
        }
        Command::Cancel { id } => {
            let req = svc.cancel(*id).await?;
            output::request_result(svc, &req, json);
            Ok(exit::OK)
        }
        Command::Status { id, all } => status(svc, *id, *all, json).await,
        Command::Revoke { id, reason } => {
            let req = svc.revoke(*id, reason).await?;
            output::request_result(svc, &req, json);
            Ok(exit::OK)
        }
        Command::Extend {
            id,
            by,
            reason,
            key_dir,
        } => extend(cli, svc, *id, by, reason, key_dir.as_deref()).await,
        Command::Review(a) => {
            let answers = review_answers(a)?;
            let req = svc.review(a.id, answers).await?;
            output::request_result(svc, &req, json);
            Ok(exit::OK)
        }
        Command::Reviews => {
            output::reviews(&svc.reviews().await?, svc.now(), json);
            Ok(exit::OK)
        }
        Command::Certify {
            id,
            reject,
            comment,
            invalidation_exception,
            sign,
        } => {
            let decision = match (reject, invalidation_exception) {
                (true, _) => Decision::reject(comment),
                (false, Some(why)) => Decision::certify_with_exception(comment, why),
                (false, None) => Decision::certify(comment),
            };
            decide(svc, *id, decision, sign, json).await
        }
        Command::Sweep => sweep(svc, json).await,
        Command::Audit(cmd) => audit(svc, cmd, json).await,
        Command::Evidence(EvidenceArgs {
            verify: None,
            id: Some(id),
            output: Some(dir),
        }) => evidence_cmd::write(svc, *id, dir, json).await,
        // Handled in `dispatch` before a store is opened (clap requires id and
        // --output without `verify`).
        Command::Evidence(_)
        | Command::Init { .. }
        | Command::Config(_)
        | Command::Demo { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Console
        | Command::Daemon { .. }
        | Command::Broker { .. }
        | Command::Store(_) => Ok(exit::OK),
    }
}

/// `roles recertify ROLE`: signed first when signing is on.
async fn recertify(
    svc: &Service,
    role: &str,
    comment: &str,
    sign: &SignArgs,
    json: bool,
) -> CliResult {
    svc.whoami().await?;
    let Some(sig) = sign_role_decision(svc, role, sign, json).await? else {
        return Ok(exit::OK);
    };
    let c = svc.recertify_role(role, comment, sig).await?;
    output::recertified(role, &c, svc.now(), json);
    Ok(exit::OK)
}

/// `activate ID`: refused before anything happens when the credential could
/// not be shown or its key files not written.
async fn activate(cli: &Cli, svc: &Service, id: RequestId, key_dir: Option<&Path>) -> CliResult {
    svc.whoami().await?;
    credential_can_be_shown(cli.json)?;
    if let Some(d) = key_dir {
        key_files::check_dir(d)?;
    }
    let (req, cred) = svc.activate(id).await?;
    show_credential(cli, svc, req, cred, key_dir);
    Ok(exit::OK)
}

/// `extend ID --by D`: a role whose extension issues a new credential (an SSH
/// certificate) shows it like `activate`.
async fn extend(
    cli: &Cli,
    svc: &Service,
    id: RequestId,
    by: &str,
    reason: &str,
    key_dir: Option<&Path>,
) -> CliResult {
    let json = cli.json;
    let secs = parse_duration(by, "--by")?;
    if let Some(d) = key_dir {
        key_files::check_dir(d)?;
    }
    if !may_print_credential(json) {
        // The old credential is revoked once the new one exists: refuse
        // before, when the new one could not be shown.
        let role = svc.load(id).await?.role;
        if svc
            .roles()
            .await?
            .iter()
            .any(|r| r.name == role && r.extension_issues_credential)
        {
            return Err(Failure::new(
                exit::USAGE,
                "stdout is not a terminal, so the new credential this extension issues (the old one is revoked; shown once, never stored) would be lost; nothing was extended",
            )
            .with_hint("run it in a terminal, or add --json for automation"));
        }
    }
    match svc.extend(id, secs, reason).await? {
        // An SSH certificate's expiry is signed into it: a new one, the old revoked.
        (req, Some(cred)) => show_credential(cli, svc, req, cred, key_dir),
        (req, None) => output::request_result(svc, &req, json),
    }
    Ok(exit::OK)
}

/// `sweep`: one recovery pass; a backend that failed makes the exit code 4.
async fn sweep(svc: &Service, json: bool) -> CliResult {
    let rep = svc.recover().await?;
    output::recovery(&rep, json);
    Ok(if rep.errors.is_empty() {
        exit::OK
    } else {
        exit::BACKEND
    })
}

async fn daemon(engine: &Engine, interval: i64, json: bool) -> CliResult {
    errln!(
        "breakglass daemon: sweeping {} when something is due (at least every {interval}s)",
        engine.store_description()
    );
    sweep_until_stopped(engine, "daemon", interval, json).await
}

/// Sweeps until SIGTERM or SIGINT: a pass whenever something is due, and at
/// least every `max_sleep` seconds (`Engine::sweep_until`).
async fn sweep_until_stopped(engine: &Engine, name: &str, max_sleep: i64, json: bool) -> CliResult {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    let stop = async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    let max_sleep = std::time::Duration::from_secs(max_sleep.max(1) as u64);
    engine
        .sweep_until(max_sleep, stop, |pass| match pass {
            Ok(rep) if !rep.is_quiet() => output::recovery(&rep, json),
            Ok(_) => {}
            Err(e) => errln!("breakglass {name}: {e}"),
        })
        .await;
    errln!("breakglass {name}: stopped");
    Ok(exit::OK)
}

/// A command line clap could not take, or a request for help. clap's own error
/// quotes the arguments as typed, so it is cleaned like any untrusted text before
/// it reaches the terminal. Returns the exit code.
pub fn usage_error(e: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        // Our own text: help and version, with clap's styling on a terminal.
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let styled = e.render();
            if std::io::stdout().is_terminal() {
                outln!("{}", styled.ansi().to_string().trim_end());
            } else {
                outln!("{}", styled.to_string().trim_end());
            }
            exit::OK
        }
        _ => {
            let text = crate::sanitize::text(&e.render().to_string(), MAX_MESSAGE);
            errln!("{}", text.trim_end());
            exit::USAGE
        }
    }
}

/// A credential just granted through `svc`, printed once, with a command that
/// ends it now (as this person, on this config) and what ends it at expiry.
fn show_credential(
    cli: &Cli,
    svc: &Service,
    req: crate::domain::Request,
    cred: crate::backend::Credential,
    key_dir: Option<&std::path::Path>,
) {
    let cred = match key_dir {
        None => cred,
        Some(dir) => match key_files::write(&key_files::store_of(svc), dir, req.id, cred) {
            Ok(c) => c,
            Err((c, why)) => {
                // Granted already: the credential is printed rather than lost.
                errln!("--key-dir: {why}; the credential is printed instead");
                c
            }
        },
    };
    let ending = match (cli.json, config_path(cli)) {
        (false, Ok(path)) => {
            let config = still_active::config_to_name(&path, false);
            let revoke = still_active::revoke_command(
                &still_active::program(),
                config.as_deref(),
                cli.as_persona.as_deref(),
                req.id,
            );
            Some((revoke, still_active::Enforcer::of(svc, &path, true)))
        }
        _ => None,
    };
    let ending = ending.as_ref().map(|(r, e)| (r.as_str(), *e));
    output::credential(&svc.view(req), &cred, svc.now(), ending, cli.json);
}

/// Whether a credential may be printed: to a terminal, or when automation asked
/// for JSON. Never into a pipe or file by accident.
pub fn may_print_credential(json: bool) -> bool {
    json || std::io::stdout().is_terminal()
}

/// Checked before granting: a credential that cannot be shown would be lost
/// (it is never stored) and the role left locked for nothing.
fn credential_can_be_shown(json: bool) -> Result<(), Failure> {
    if may_print_credential(json) {
        return Ok(());
    }
    Err(Failure::new(
        exit::USAGE,
        "stdout is not a terminal, so the credential (shown once, never stored) would be lost; \
         nothing was granted",
    )
    .with_hint("run it in a terminal, or add --json for automation"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("store: cannot open breakglass.sqlite")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_failure_keeps_its_causes_once_and_renders_clean_hints() {
        let io = std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "Permission \u{1b}[2Jdenied",
        );
        let f = Failure::from_error(exit::FAILURE, &Outer(io)).with_hint("chmod 0600 it");
        assert_eq!(f.causes, ["Permission \u{1b}[2Jdenied"]);
        assert_eq!(
            f.render(),
            "breakglass: store: cannot open breakglass.sqlite\n  caused by: Permission denied\nhint: chmod 0600 it"
        );
        // A cause the message already says is not repeated.
        let io = std::io::Error::other("disk full");
        let f = Failure::from_error(
            exit::FAILURE,
            &std::io::Error::other(format!("write: {io}")),
        );
        assert!(f.causes.is_empty());
    }

    #[test]
    fn a_store_failure_from_the_engine_keeps_the_driver_error_and_hints() {
        let e = EngineError::Store(crate::store::StoreError::driver(std::io::Error::other(
            "database is locked",
        )));
        let f = Failure::from(e);
        assert_eq!(f.code, exit::FAILURE);
        assert_eq!(f.message, "store: database is locked");
        assert!(
            f.hints[0].contains("breakglass config check"),
            "{:?}",
            f.hints
        );
    }
}
