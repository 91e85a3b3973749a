//! The non-interactive front end: every subcommand is a thin call into the engine.

pub mod args;
mod output;
mod session;
mod store_migrate;

pub use args::Cli;

use crate::config::{self, Config};
use crate::domain::{RequestId, ReviewAnswers, SshSignature, State};
use crate::engine::{Engine, Error as EngineError, IncidentChoice, RequestInput};
use crate::exit;
use crate::identity::ssh_sign::{self, DecisionKind};
use args::*;
use std::io::IsTerminal;
use std::path::PathBuf;

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure::new(e.exit_code(), e.to_string())
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
            // Messages quote what users, sources and backends said.
            eprintln!(
                "breakglass: {}",
                crate::sanitize::text(&f.message, MAX_MESSAGE)
            );
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

fn load_config(cli: &Cli) -> Result<Config, Failure> {
    let path = config_path(cli)?;
    config::load(&path).map_err(|p| {
        Failure::new(
            exit::USAGE,
            format!("the config has problems:\n{p}\n(`breakglass config check` lists them all)"),
        )
    })
}

fn parse_id(s: &str) -> Result<RequestId, Failure> {
    s.parse().map_err(|e: String| Failure::new(exit::USAGE, e))
}

fn parse_duration(s: &str, what: &str) -> Result<i64, Failure> {
    humantime::parse_duration(s.trim())
        .ok()
        .filter(|d| d.as_secs() > 0)
        .map(|d| d.as_secs() as i64)
        .ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                format!("{what} `{s}` is not a duration; write e.g. 15m, 1h, 90s"),
            )
        })
}

/// Runs recovery before a command and tells the operator what it did.
async fn recover_first(engine: &Engine) -> Result<(), Failure> {
    let rep = engine.recover().await?;
    if !rep.is_quiet() {
        for line in output::recovery_lines(&rep) {
            eprintln!("recovery: {line}");
        }
    }
    Ok(())
}

async fn dispatch(cli: Cli) -> CliResult {
    let command = match &cli.command {
        None | Some(Command::Console) => {
            let cfg = load_config(&cli)?;
            return console(&cli, &cfg).await;
        }
        Some(c) => c,
    };
    match command {
        Command::Init { force } => return init(&cli, *force),
        Command::Audit(AuditCmd::Keygen { out }) => {
            let signer = crate::audit::checkpoint::Signer::generate(out)
                .map_err(|e| Failure::new(exit::USAGE, e))?;
            println!("{}", signer.public_hex());
            eprintln!(
                "wrote the private key to {} (mode 0600). Give the public key above to whoever verifies checkpoints; keep the private key away from the store.",
                out.display()
            );
            return Ok(exit::OK);
        }
        Command::Config(ConfigCmd::Check) => return config_check(&cli),
        Command::Demo { dir, no_console } => return demo(&cli, dir.clone(), *no_console).await,
        _ => {}
    }
    let cfg = load_config(&cli)?;
    if let Command::Store(StoreCmd::Migrate(a)) = command {
        return store_migrate::migrate(&cfg, a, cli.json);
    }
    let engine = Engine::from_config(&cfg)?;
    run_command(&cli, command, &engine).await
}

/// Opens the interactive console on a config.
async fn console(cli: &Cli, cfg: &Config) -> CliResult {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            exit::USAGE,
            "the console needs a terminal; for scripts use the subcommands (breakglass --help)",
        ));
    }
    let engine = std::sync::Arc::new(Engine::from_config(cfg)?);
    recover_first(&engine).await?;
    let me = match (&cfg.policy.demo_personas, cli.as_persona.as_deref()) {
        (Some(personas), None) => personas.first().cloned().unwrap_or_default(),
        _ => engine.whoami(cli.as_persona.as_deref())?,
    };
    let name = cli
        .theme
        .clone()
        .or_else(|| cfg.ui_theme.clone())
        .unwrap_or_else(|| "default".into());
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let (theme, warning) =
        crate::tui::theme::Theme::load(&name, Some(&cfg.dir().join("themes")), no_color);
    let summary = crate::tui::run(
        engine.clone(),
        crate::tui::Options {
            theme,
            warning,
            drafts_dir: cfg.data_dir().join("drafts"),
            me,
            personas: cfg.policy.demo_personas.clone(),
            relaunch: std::env::current_exe()
                .ok()
                .map(|exe| crate::tui::Relaunch {
                    exe,
                    config: std::fs::canonicalize(&cfg.path).unwrap_or_else(|_| cfg.path.clone()),
                }),
        },
    )
    .await
    .map_err(|e| Failure::new(exit::FAILURE, format!("console: {e}")))?;
    if !summary.still_active.is_empty() {
        let daemon = crate::tui::daemon_running();
        for (id, until) in &summary.still_active {
            eprintln!(
                "{id} is still ACTIVE until {}. It is revoked at expiry by {}.",
                until.format("%H:%M:%S UTC"),
                if daemon {
                    "the running `breakglass daemon`"
                } else {
                    "the next breakglass command or a `breakglass daemon` (none is running now)"
                }
            );
            eprintln!("  end it now with: breakglass revoke {id}");
        }
    }
    Ok(exit::OK)
}

/// Every command that works on a store.
pub async fn run_command(cli: &Cli, command: &Command, engine: &Engine) -> CliResult {
    let result = run_one(cli, command, engine).await;
    // The SOC hears about what this command did now, not at the next sweep; a
    // crash before this point leaves the alerts in the outbox for the next one.
    crate::failpoint::hit("alert.before_delivery");
    if let Err(e) = engine.deliver_alerts().await {
        eprintln!("breakglass: alert delivery: {e}");
    }
    result
}

async fn run_one(cli: &Cli, command: &Command, engine: &Engine) -> CliResult {
    let who = || engine.whoami(cli.as_persona.as_deref());
    // Validates --as even for commands that do not need an identity.
    if cli.as_persona.is_some() {
        who()?;
    }
    if !matches!(command, Command::Sweep | Command::Daemon { .. }) {
        recover_first(engine).await?;
    }
    let json = cli.json;
    match command {
        Command::Incidents => {
            let (list, errors) = engine.incidents().await;
            output::incidents(&list, &errors, engine.now(), json);
            Ok(if errors.is_empty() {
                exit::OK
            } else {
                exit::BACKEND
            })
        }
        Command::Roles { action: None } => {
            let me = who().ok();
            let roles = engine.roles(me.as_deref())?;
            output::roles(&roles, json);
            Ok(exit::OK)
        }
        Command::Roles {
            action: Some(RolesCmd::Recertify { role, comment }),
        } => {
            let c = engine.recertify_role(&who()?, role, comment)?;
            output::recertified(role, &c, json);
            Ok(exit::OK)
        }
        Command::Request(a) => request(engine, &who()?, a, json).await,
        Command::Activate { id } => {
            let (req, cred) = engine.activate(&who()?, parse_id(id)?).await?;
            output::credential(&engine.view(req), &cred, json);
            Ok(exit::OK)
        }
        Command::Shell { id, command } => {
            session::shell(cli, engine, &who()?, id, command.as_deref()).await
        }
        Command::Replay { id, speed } => session::replay(engine, &who()?, id, *speed).await,
        Command::Approve { id, comment, sign } => {
            let (me, id) = (who()?, parse_id(id)?);
            let Some(sig) = sign_decision(engine, &me, id, DecisionKind::Approve, sign, json)?
            else {
                return Ok(exit::OK);
            };
            let req = engine.approve_signed(&me, id, comment.clone(), sig)?;
            output::request_result(engine, &req, json);
            Ok(exit::OK)
        }
        Command::Deny { id, reason, sign } => {
            let (me, id) = (who()?, parse_id(id)?);
            let Some(sig) = sign_decision(engine, &me, id, DecisionKind::Deny, sign, json)? else {
                return Ok(exit::OK);
            };
            let req = engine.deny_signed(&me, id, reason, sig)?;
            output::request_result(engine, &req, json);
            Ok(exit::OK)
        }
        Command::Cancel { id } => {
            let req = engine.cancel(&who()?, parse_id(id)?)?;
            output::request_result(engine, &req, json);
            Ok(exit::OK)
        }
        Command::Status { id, all } => status(engine, id.as_deref(), *all, json),
        Command::Revoke { id, reason } => {
            let req = engine.revoke(&who()?, parse_id(id)?, reason).await?;
            output::request_result(engine, &req, json);
            Ok(exit::OK)
        }
        Command::Extend { id, by, reason } => {
            let secs = parse_duration(by, "--by")?;
            let req = engine.extend(&who()?, parse_id(id)?, secs, reason).await?;
            output::request_result(engine, &req, json);
            Ok(exit::OK)
        }
        Command::Review(a) => {
            let answers = review_answers(a)?;
            let req = engine.review(&who()?, parse_id(&a.id)?, answers)?;
            output::request_result(engine, &req, json);
            Ok(exit::OK)
        }
        Command::Certify {
            id,
            reject,
            comment,
            sign,
        } => {
            let me = who()?;
            let id = parse_id(id)?;
            let kind = if *reject {
                DecisionKind::Reject
            } else {
                DecisionKind::Certify
            };
            let Some(sig) = sign_decision(engine, &me, id, kind, sign, json)? else {
                return Ok(exit::OK);
            };
            let req = if *reject {
                engine.reject_signed(&me, id, comment, sig)?
            } else {
                engine.certify_signed(&me, id, comment, sig)?
            };
            output::request_result(engine, &req, json);
            Ok(exit::OK)
        }
        Command::Sweep => {
            let rep = engine.recover().await?;
            output::recovery(&rep, json);
            Ok(if rep.errors.is_empty() {
                exit::OK
            } else {
                exit::BACKEND
            })
        }
        Command::Daemon { interval } => {
            daemon(engine, parse_duration(interval, "--interval")?, json).await
        }
        Command::Audit(AuditCmd::Verify {
            checkpoint,
            public_key,
        }) => {
            let (count, broken) = engine.verify_audit()?;
            output::audit_verify(count, broken.as_ref(), engine, json);
            if broken.is_some() {
                return Ok(exit::AUDIT_BROKEN);
            }
            match checkpoint {
                None => Ok(exit::OK),
                Some(file) => verify_checkpoint(engine, file, public_key.as_deref(), json),
            }
        }
        Command::Audit(AuditCmd::Checkpoint) => {
            let signer = engine.checkpoint_signer().ok_or_else(|| {
                Failure::new(exit::USAGE, "no checkpoint key: set [audit] checkpoint_key_file (create one with `breakglass audit keygen --out FILE`)")
            })?;
            let (size, head) = engine.store().audit_head().map_err(EngineError::from)?;
            let cp = signer.sign(size, &head, &crate::store::ts(engine.now()));
            println!("{}", serde_json::to_string_pretty(&cp).expect("serialises"));
            Ok(exit::OK)
        }
        Command::Audit(AuditCmd::Keygen { .. }) => Ok(exit::OK),
        Command::Audit(AuditCmd::Export {
            format,
            output: out,
        }) => audit_export(engine, *format, out.as_deref()),
        // Handled in `dispatch` before a store is opened.
        Command::Init { .. }
        | Command::Config(_)
        | Command::Demo { .. }
        | Command::Console
        | Command::Store(_) => Ok(exit::OK),
    }
}

/// The signature a decision carries when the policy sets `approval_signing =
/// "ssh"`: made here by ssh-keygen with the approver's key, or one made elsewhere
/// (`--statement` + `--signature`). `Ok(None)` after `--print-statement` printed
/// the statement; `Ok(Some(None))` when there is nothing to sign with (signing
/// off, or no key: the engine then refuses, audited, and says how to sign).
fn sign_decision(
    engine: &Engine,
    who: &str,
    id: RequestId,
    kind: DecisionKind,
    a: &SignArgs,
    json: bool,
) -> Result<Option<Option<SshSignature>>, Failure> {
    use chrono::SubsecRound;
    if a.print_statement {
        let text = engine.decision_statement(who, id, kind, engine.now().trunc_subsecs(0))?;
        if json {
            output::print_json(&serde_json::json!({ "statement": text }));
        } else {
            print!("{text}");
        }
        return Ok(None);
    }
    if !engine.signing_required() {
        return Ok(Some(None));
    }
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map_err(|e| Failure::new(exit::USAGE, format!("cannot read {}: {e}", p.display())))
    };
    if let (Some(st), Some(sig)) = (&a.statement, &a.signature) {
        let signed_at = ssh_sign::statement_at(&read(st)?).ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                format!("{}: not a statement from --print-statement", st.display()),
            )
        })?;
        return Ok(Some(Some(SshSignature {
            signed_at,
            armored: read(sig)?,
        })));
    }
    let Some(key) = a
        .ssh_key
        .as_deref()
        .map(ssh_sign::expand_home)
        .or_else(ssh_sign::default_key)
    else {
        return Ok(Some(None));
    };
    let at = engine.now().trunc_subsecs(0);
    let statement = engine.decision_statement(who, id, kind, at)?;
    if !json && std::io::stderr().is_terminal() {
        eprintln!(
            "signing the {kind} of {id} with {} (ssh-keygen)",
            key.display()
        );
    }
    let armored = ssh_sign::sign(&key, &statement).map_err(|e| Failure::new(exit::USAGE, e))?;
    Ok(Some(Some(SshSignature {
        signed_at: at,
        armored,
    })))
}

/// `audit verify --checkpoint`: the checkpoint's signature, then that the log
/// still extends it.
fn verify_checkpoint(
    engine: &Engine,
    file: &std::path::Path,
    public_key: Option<&str>,
    json: bool,
) -> CliResult {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::new(exit::USAGE, format!("{}: {e}", file.display())))?;
    let mut v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::new(exit::USAGE, format!("{}: not JSON: {e}", file.display())))?;
    // Accept a bare checkpoint or a whole alert that carries one.
    if v.get("checkpoint").is_some() {
        v = v["checkpoint"].take();
    }
    let cp: crate::audit::checkpoint::Checkpoint = serde_json::from_value(v).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!("{}: not a checkpoint: {e}", file.display()),
        )
    })?;
    let public = match public_key {
        Some(k) => k.to_string(),
        None => engine
            .checkpoint_signer()
            .map(|s| s.public_hex())
            .ok_or_else(|| {
                Failure::new(
                    exit::USAGE,
                    "pass --public-key HEX (no checkpoint key is configured here)",
                )
            })?,
    };
    let verdict = crate::audit::checkpoint::verify_signature(&cp, &public)
        .and_then(|()| engine.check_checkpoint(&cp).map_err(|e| e.to_string())?);
    if json {
        println!(
            "{}",
            crate::sanitize::json_for_terminal(&serde_json::json!({"checkpoint": cp, "ok": verdict.is_ok(), "error": verdict.as_ref().err()}).to_string())
        );
    }
    match verdict {
        Ok(()) => {
            if !json {
                println!(
                    "checkpoint verified: the log extends the signed state of {} ({} events)",
                    cp.at, cp.tree_size
                );
            }
            Ok(exit::OK)
        }
        Err(e) => {
            if !json {
                println!("checkpoint FAILED: {e}");
            }
            Ok(exit::AUDIT_BROKEN)
        }
    }
}

fn init(cli: &Cli, force: bool) -> CliResult {
    let path = config_path(cli)?;
    if path.exists() && !force {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{} already exists; pass --force to overwrite it",
                path.display()
            ),
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::new(
                exit::FAILURE,
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
    }
    std::fs::write(&path, config::STARTER).map_err(|e| {
        Failure::new(
            exit::FAILURE,
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    println!(
        "wrote {}; edit it, then run `breakglass config check`",
        path.display()
    );
    Ok(exit::OK)
}

fn config_check(cli: &Cli) -> CliResult {
    let path = config_path(cli)?;
    match config::load(&path) {
        Ok(cfg) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "roles": cfg.policy.roles.len()})
                );
            } else {
                println!(
                    "{}: ok ({} role(s), {} backend(s), {} incident source(s){})",
                    path.display(),
                    cfg.policy.roles.len(),
                    cfg.backends.len(),
                    cfg.incident_sources.len(),
                    if cfg.is_demo() { ", demo mode" } else { "" }
                );
            }
            Ok(exit::OK)
        }
        Err(problems) => {
            if cli.json {
                let list: Vec<_> = problems
                    .0
                    .iter()
                    .map(|p| serde_json::json!({"file": p.file, "line": p.line, "message": crate::sanitize::text(&p.message, MAX_MESSAGE)}))
                    .collect();
                let doc = serde_json::json!({"ok": false, "problems": list}).to_string();
                println!("{}", crate::sanitize::json_for_terminal(&doc));
            } else {
                // Problems quote the file (key names, values): not the terminal's business.
                eprintln!(
                    "{}",
                    crate::sanitize::text(&problems.to_string(), MAX_MESSAGE * 4)
                );
                eprintln!("{} problem(s)", problems.0.len());
            }
            Ok(exit::USAGE)
        }
    }
}

async fn demo(cli: &Cli, dir: Option<PathBuf>, no_console: bool) -> CliResult {
    let dir = match dir {
        Some(d) => d,
        None => crate::demo::fresh_dir()
            .map_err(|e| Failure::new(exit::FAILURE, format!("cannot create a demo dir: {e}")))?,
    };
    let path = crate::demo::prepare(&dir).map_err(|e| {
        Failure::new(
            exit::FAILURE,
            format!("cannot write the demo into {}: {e}", dir.display()),
        )
    })?;
    let cfg = config::load(&path)
        .map_err(|p| Failure::new(exit::FAILURE, format!("demo config: {p}")))?;
    let interactive = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    if interactive && !no_console && !cli.json {
        return console(cli, &cfg).await;
    }
    let engine = Engine::from_config(&cfg)?;
    recover_first(&engine).await?;
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "breakglass".into());
    output::demo_intro(&path, &exe, cli.json);
    Ok(exit::OK)
}

async fn request(engine: &Engine, who: &str, a: &RequestArgs, json: bool) -> CliResult {
    let printed = std::cell::Cell::new(false);
    let r = request_inner(engine, who, a, json, &printed).await;
    if a.non_interactive && json {
        // One document on stdout whatever happens: a refusal before any output
        // gets an error document.
        if let Err(f) = &r {
            if !printed.get() {
                output::print_json(&serde_json::json!({
                    "error": { "exit_code": f.code, "message": crate::sanitize::text(&f.message, MAX_MESSAGE) }
                }));
            }
        }
    }
    r
}

async fn request_inner(
    engine: &Engine,
    who: &str,
    a: &RequestArgs,
    json: bool,
    printed: &std::cell::Cell<bool>,
) -> CliResult {
    let ttl = a
        .ttl
        .as_deref()
        .map(|t| parse_duration(t, "--ttl"))
        .transpose()?;
    let incident = match (&a.incident, &a.ticket) {
        (Some(i), _) => IncidentChoice::Id(i.clone()),
        (None, Some(t)) => IncidentChoice::Ticket(t.clone()),
        (None, None) => {
            return Err(Failure::new(
                exit::USAGE,
                "name the incident: --incident ID or --ticket REF",
            ))
        }
    };
    let req = engine
        .request_vendor(
            who,
            RequestInput {
                incident,
                role: a.role.clone(),
                condition: a.condition.clone(),
                reason: a.reason.clone(),
                ttl_seconds: ttl,
            },
            session::vendor_info(a),
        )
        .await?;
    if !a.wait {
        output::request_result(engine, &req, json);
        printed.set(true);
        if a.non_interactive && req.state == State::Pending {
            return Err(Failure::new(
                exit::PENDING,
                format!(
                    "{} is pending human approval{}",
                    req.id,
                    req.auto_approval_declined
                        .as_deref()
                        .map(|w| format!(" (not auto-approved: {w})"))
                        .unwrap_or_default()
                ),
            ));
        }
        return Ok(exit::OK);
    }
    if !json {
        output::request_result(engine, &req, false);
        eprintln!("waiting for approvals (Ctrl-C stops waiting; the request stays pending)...");
    }
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_secs(parse_duration(&a.wait_timeout, "--wait-timeout")? as u64);
    let mut seen = req.approvals.len();
    loop {
        let cur = engine.load(req.id)?;
        if cur.approvals.len() != seen && !json {
            seen = cur.approvals.len();
            eprintln!(
                "{} of {} approvals ({})",
                seen,
                cur.approvals_required,
                cur.approvers().join(", ")
            );
        }
        match cur.state {
            State::Approved => {
                let (r, cred) = engine.activate(who, req.id).await?;
                output::credential(&engine.view(r), &cred, json);
                printed.set(true);
                return Ok(exit::OK);
            }
            State::Pending if engine.now() >= cur.decide_by => {
                engine.recover().await?;
            }
            State::Pending => {}
            other => {
                output::request_result(engine, &cur, json);
                printed.set(true);
                return Err(Failure::new(
                    exit::REFUSED,
                    format!("{} was {other}", req.id),
                ));
            }
        }
        if std::time::Instant::now() >= deadline {
            output::request_result(engine, &cur, json);
            printed.set(true);
            return Err(Failure::new(
                exit::PENDING,
                format!(
                    "{} is still pending; `breakglass activate {}` once approved",
                    req.id, req.id
                ),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn status(engine: &Engine, id: Option<&str>, all: bool, json: bool) -> CliResult {
    let undelivered = engine
        .store()
        .outbox_undelivered()
        .map_err(EngineError::from)?;
    match id {
        Some(id) => {
            let req = engine.load(parse_id(id)?)?;
            output::status_one(&engine.view(req), undelivered, engine.now(), json);
        }
        None => {
            let q = if all {
                crate::store::Query::default()
            } else {
                crate::store::Query {
                    states: Some(vec![
                        State::Pending,
                        State::Approved,
                        State::Granting,
                        State::Active,
                        State::Revoking,
                        State::Ended,
                        State::Reviewed,
                    ]),
                    ..Default::default()
                }
            };
            let list: Vec<_> = engine
                .requests(&q)?
                .into_iter()
                .map(|r| engine.view(r))
                .collect();
            output::status_list(&list, undelivered, json);
        }
    }
    Ok(exit::OK)
}

fn yes_no(s: &str, flag: &str) -> Result<bool, Failure> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" => Ok(true),
        "no" | "n" | "false" => Ok(false),
        _ => Err(Failure::new(
            exit::USAGE,
            format!("{flag} takes yes or no, not `{s}`"),
        )),
    }
}

fn review_answers(a: &ReviewArgs) -> Result<ReviewAnswers, Failure> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct FileAnswers {
        actions_taken: Option<String>,
        systems_touched: Option<String>,
        access_necessary: Option<bool>,
        credentials_copied: Option<bool>,
        credentials_copied_where: Option<String>,
        follow_ups: Option<String>,
    }
    let f: FileAnswers = match &a.file {
        None => FileAnswers::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Failure::new(exit::USAGE, format!("cannot read {}: {e}", p.display()))
            })?;
            if p.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text)
                    .map_err(|e| Failure::new(exit::USAGE, format!("{}: {e}", p.display())))?
            } else {
                toml::from_str(&text).map_err(|e| {
                    Failure::new(exit::USAGE, format!("{}: {}", p.display(), e.message()))
                })?
            }
        }
    };
    let access_necessary = match (&a.access_necessary, f.access_necessary) {
        (Some(s), _) => yes_no(s, "--access-necessary")?,
        (None, Some(b)) => b,
        (None, None) => {
            return Err(Failure::new(
                exit::USAGE,
                "say whether the access was necessary: --access-necessary yes|no",
            ))
        }
    };
    let credentials_copied = match (&a.credentials_copied, f.credentials_copied) {
        (Some(s), _) => yes_no(s, "--credentials-copied")?,
        (None, Some(b)) => b,
        (None, None) => {
            return Err(Failure::new(
                exit::USAGE,
                "say whether credentials were copied anywhere: --credentials-copied yes|no",
            ))
        }
    };
    let pick =
        |flag: &Option<String>, file: Option<String>| flag.clone().or(file).unwrap_or_default();
    Ok(ReviewAnswers {
        actions_taken: pick(&a.actions_taken, f.actions_taken),
        systems_touched: pick(&a.systems_touched, f.systems_touched),
        access_necessary,
        credentials_copied,
        credentials_copied_where: pick(&a.credentials_copied_where, f.credentials_copied_where),
        follow_ups: pick(&a.follow_ups, f.follow_ups),
    })
}

async fn daemon(engine: &Engine, interval: i64, json: bool) -> CliResult {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    eprintln!(
        "breakglass daemon: sweeping {} every {interval}s",
        engine.store().describe()
    );
    loop {
        match engine.recover().await {
            Ok(rep) if !rep.is_quiet() => output::recovery(&rep, json),
            Ok(_) => {}
            Err(e) => eprintln!("breakglass daemon: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(interval as u64)) => {}
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    eprintln!("breakglass daemon: stopped");
    Ok(exit::OK)
}

fn audit_export(engine: &Engine, format: ExportFormat, out: Option<&std::path::Path>) -> CliResult {
    use std::io::Write;
    let mut w: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| Failure::new(exit::FAILURE, format!("{}: {e}", p.display())),
        )?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut from = 1;
    loop {
        let batch = engine
            .store()
            .audit_range(from, 10_000)
            .map_err(EngineError::from)?;
        let Some(last) = batch.last() else { break };
        from = last.seq + 1;
        for r in &batch {
            let written = match format {
                ExportFormat::Jsonl => serde_json::to_writer(&mut w, r),
                ExportFormat::Ocsf => {
                    serde_json::to_writer(&mut w, &crate::alert::ocsf::from_audit(r))
                }
            };
            written.map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
            w.write_all(b"\n")
                .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
        }
    }
    w.flush()
        .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    Ok(exit::OK)
}

/// Whether a credential may be printed: to a terminal, or when automation asked
/// for JSON. Never into a pipe or file by accident.
pub fn may_print_credential(json: bool) -> bool {
    json || std::io::stdout().is_terminal()
}
