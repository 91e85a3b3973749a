//! Getting started: `init`, `config check`, `demo` and opening the console.

use super::*;
use crate::cli::stdio::{errln, outln};

fn needs_terminal() -> Result<(), Failure> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            exit::USAGE,
            "the console needs a terminal; for scripts use the subcommands (breakglass --help)",
        ));
    }
    Ok(())
}

/// What the console takes from a config besides the service: its look, where
/// drafts live, and the file a relaunched `shell` reads.
pub(super) struct ConsoleLook {
    theme: Option<String>,
    approval_bell: bool,
    themes_dir: PathBuf,
    drafts_dir: PathBuf,
    config: PathBuf,
    /// The demo's broker runs in this process and ends with the console: it
    /// enforces nothing afterwards.
    broker_ends_with_us: bool,
}

impl ConsoleLook {
    pub(super) fn of_config(cfg: &Config) -> Self {
        ConsoleLook {
            theme: cfg.ui_theme.clone(),
            approval_bell: cfg.ui_approval_bell,
            themes_dir: cfg.dir().join("themes"),
            drafts_dir: cfg.data_dir().join("drafts"),
            config: cfg.path.clone(),
            broker_ends_with_us: false,
        }
    }
    /// A person's client config: drafts stay in their own data dir.
    pub(super) fn of_client(c: &config::ClientConfig) -> Self {
        let dir = c.path.parent().unwrap_or(std::path::Path::new("."));
        ConsoleLook {
            theme: c.ui_theme.clone(),
            approval_bell: c.ui_approval_bell,
            themes_dir: dir.join("themes"),
            drafts_dir: config::default_data_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("drafts"),
            config: c.path.clone(),
            broker_ends_with_us: false,
        }
    }
}

/// Opens the interactive console on a config, with the engine in this process.
pub(super) async fn console(cli: &Cli, cfg: &Config) -> CliResult {
    needs_terminal()?;
    let engine = std::sync::Arc::new(Engine::from_config(cfg)?);
    console_on(cli, &ConsoleLook::of_config(cfg), Service::local(engine)).await
}

/// The console over `svc` (in process or a broker).
pub(super) async fn console_on(cli: &Cli, look: &ConsoleLook, svc: Service) -> CliResult {
    needs_terminal()?;
    let hello = svc.as_persona(cli.as_persona.clone()).hello().await?;
    if svc.engine().is_some() {
        recover_first(&svc.as_persona(cli.as_persona.clone())).await?;
    }
    let me = match (&hello.personas, cli.as_persona.as_deref()) {
        (Some(personas), None) => personas.first().cloned().unwrap_or_default(),
        _ => hello
            .who
            .clone()
            .map_err(|m| Failure::new(exit::USAGE, m))?,
    };
    let name = cli
        .theme
        .clone()
        .or_else(|| look.theme.clone())
        .unwrap_or_else(|| "default".into());
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let (theme, warning) = crate::tui::theme::Theme::load(&name, Some(&look.themes_dir), no_color);
    let summary = crate::tui::run(
        svc.clone(),
        crate::tui::Options {
            // Who holds the secrets first: the end of the line is cut on narrow terminals.
            store: format!("{} · {}", svc.holder(), hello.store),
            theme,
            warning,
            drafts_dir: look.drafts_dir.clone(),
            me: me.clone(),
            personas: hello.personas.clone(),
            approval_bell: look.approval_bell,
            relaunch: std::env::current_exe()
                .ok()
                .map(|exe| crate::tui::Relaunch {
                    exe,
                    config: std::fs::canonicalize(&look.config)
                        .unwrap_or_else(|_| look.config.clone()),
                }),
        },
    )
    .await
    .map_err(|e| Failure::new(exit::FAILURE, format!("console: {e}")))?;
    if !summary.still_active.is_empty() {
        still_active_on_exit(
            &svc,
            look,
            &me,
            hello.personas.is_some(),
            &summary.still_active,
        )
        .await;
    }
    Ok(exit::OK)
}

/// Said once the terminal is restored, for each grant of this person still
/// active: until when, what ends it now that the console is closed (the same
/// sentence as the command line's), and a command that ends it now, as
/// printed: in a demo as its persona on its config, else as the person.
async fn still_active_on_exit(
    svc: &Service,
    look: &ConsoleLook,
    me: &str,
    demo: bool,
    grants: &[(crate::domain::RequestId, chrono::DateTime<chrono::Utc>)],
) {
    use still_active::{config_to_name, program, revoke_command, Enforcer};
    let enforcer = Enforcer::of(svc, &look.config, !look.broker_ends_with_us);
    let program = program();
    let config = config_to_name(&look.config, demo);
    let now = svc.now();
    for (id, until) in grants {
        // The persona may have changed in the console: the grant's requester
        // is who may end it.
        let persona = if demo {
            let acting = svc.as_persona(Some(me.to_string()));
            Some(
                acting
                    .load(*id)
                    .await
                    .map(|r| r.requester)
                    .unwrap_or_else(|_| me.to_string()),
            )
        } else {
            None
        };
        errln!(
            "{id} is still ACTIVE until {}. {}",
            crate::domain::time::when(*until, now),
            enforcer.sentence()
        );
        errln!(
            "  end it now with: {}",
            revoke_command(&program, config.as_deref(), persona.as_deref(), *id)
        );
    }
}

pub(super) fn init(cli: &Cli, force: bool) -> CliResult {
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
    crate::files::write_private(&path, config::STARTER.as_bytes()).map_err(|e| {
        Failure::new(
            exit::FAILURE,
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    outln!(
        "wrote {}; edit it, then run `breakglass config check`",
        path.display()
    );
    Ok(exit::OK)
}

pub(super) fn config_check(cli: &Cli) -> CliResult {
    let path = config_path(cli)?;
    match config::load_any(&path) {
        Ok(config::Loaded::Full(cfg)) => {
            let warnings = broker_warnings(cfg.broker.as_ref());
            if cli.json {
                outln!(
                    "{}",
                    serde_json::json!({
                        "ok": true,
                        "roles": cfg.policy.roles.len(),
                        "engine": if cfg.broker.is_some() { "broker" } else { "this process" },
                        "broker": cfg.broker.as_ref().map(broker_json),
                        "warnings": warnings,
                    })
                );
                return Ok(exit::OK);
            }
            outln!(
                "{}: ok ({} role(s), {} backend(s), {} incident source(s){})",
                path.display(),
                cfg.policy.roles.len(),
                cfg.backends.len(),
                cfg.incident_sources.len(),
                if cfg.is_demo() { ", demo mode" } else { "" }
            );
            match &cfg.broker {
                None => outln!(
                    "no [broker]: whoever runs breakglass with this config runs the engine in their own process and holds the backend secrets and the store themselves"
                ),
                Some(b) => outln!(
                    "[broker]: the broker's config; `breakglass broker` runs the engine and alone holds the backend secrets and the store; people's commands go to it at {}{} (their own config holds only [broker] socket = \"{}\")",
                    b.socket.display(),
                    b.group
                        .as_ref()
                        .map(|g| format!(", where members of group {g} may connect"))
                        .unwrap_or_default(),
                    b.socket.display()
                ),
            }
            for w in &warnings {
                errln!("warning: {w}");
            }
            Ok(exit::OK)
        }
        Ok(config::Loaded::Client(c)) => {
            let mut warnings = Vec::new();
            if !c.broker.socket.exists() {
                warnings.push(format!(
                    "there is no socket at {} yet: the broker is not running there (on its host: systemctl status breakglass-broker)",
                    c.broker.socket.display()
                ));
            }
            if cli.json {
                outln!(
                    "{}",
                    serde_json::json!({
                        "ok": true,
                        "client": true,
                        "broker": broker_json(&c.broker),
                        "warnings": warnings,
                    })
                );
                return Ok(exit::OK);
            }
            outln!(
                "{}: ok (a client config: this process holds no secrets; commands go to the broker at {})",
                path.display(),
                c.broker.socket.display()
            );
            for w in &warnings {
                errln!("warning: {w}");
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
                outln!("{}", crate::sanitize::json_for_terminal(&doc));
            } else {
                // Problems quote the file (key names, values): not the terminal's business.
                errln!(
                    "{}",
                    crate::sanitize::text(&problems.to_string(), MAX_MESSAGE * 4)
                );
                errln!("{} problem(s)", problems.0.len());
            }
            Ok(exit::USAGE)
        }
    }
}

/// The demo broker's socket: in the demo dir, unless that path is too long for
/// a Unix socket (108 bytes), then in the runtime dir or /tmp.
fn demo_socket(dir: &std::path::Path) -> PathBuf {
    let inside = dir.join("broker.sock");
    if inside.as_os_str().len() < 100 {
        return inside;
    }
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    base.join(format!("breakglass-demo-{}.sock", std::process::id()))
}

fn broker_json(b: &config::BrokerConfig) -> serde_json::Value {
    serde_json::json!({"socket": b.socket, "group": b.group})
}

/// What `config check` notes about a broker's settings on this host: a group
/// that does not exist (yet) here.
fn broker_warnings(b: Option<&config::BrokerConfig>) -> Vec<String> {
    let Some(group) = b.and_then(|b| b.group.as_deref()) else {
        return vec![];
    };
    match nix::unistd::Group::from_name(group) {
        Ok(Some(_)) => vec![],
        Ok(None) => vec![format!(
            "group {group} does not exist on this host; create it before the broker starts (dist/sysusers.d/breakglass.conf creates breakglass-users), or the broker cannot give its socket to it"
        )],
        Err(e) => vec![format!("cannot look up group {group}: {e}")],
    }
}

/// This user's one demo directory, emptied for a fresh start; refused while a
/// demo console has it open (its broker answers on the socket).
fn fresh_demo_dir() -> Result<PathBuf, Failure> {
    let dir = crate::demo::default_dir().ok_or_else(|| {
        Failure::new(
            exit::USAGE,
            "no home or runtime directory for the demo; pass --dir DIR",
        )
    })?;
    if std::os::unix::net::UnixStream::connect(demo_socket(&dir)).is_ok() {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "a demo console is open on {}; close it first, or pass --dir DIR for another demo",
                dir.display()
            ),
        ));
    }
    crate::demo::reset(&dir).map_err(|e| {
        Failure::new(exit::FAILURE, format!("cannot start the demo afresh: {e}"))
            .with_hint("pass --dir DIR to use another directory")
    })?;
    Ok(dir)
}

/// Where the demo lives, said before the console opens and in the walk.
fn demo_where(dir: &std::path::Path, fresh: bool) -> String {
    let dir = crate::sanitize::line(&dir.display().to_string(), 300);
    if fresh {
        format!(
            "breakglass DEMO is ready in {dir} (started afresh: each `breakglass demo` empties it; `--dir DIR` keeps a demo across runs)"
        )
    } else {
        format!("breakglass DEMO is ready in {dir} (kept across runs)")
    }
}

pub(super) async fn demo(cli: &Cli, dir: Option<PathBuf>, no_console: bool) -> CliResult {
    let fresh = dir.is_none();
    let dir = match dir {
        Some(d) => d,
        None => fresh_demo_dir()?,
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
    let engine = std::sync::Arc::new(Engine::from_config(&cfg)?);
    if interactive && !no_console && !cli.json {
        errln!("{}", demo_where(&dir, fresh));
        // The demo walks the real path: a broker in this process, the console
        // its client over the socket.
        let socket = demo_socket(&dir);
        let broker = broker_cmd::start(engine.clone(), &socket, None).await?;
        let sweeper = tokio::spawn(async move {
            loop {
                let _ = engine.recover().await;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        let look = ConsoleLook {
            broker_ends_with_us: true,
            ..ConsoleLook::of_config(&cfg)
        };
        let result = console_on(cli, &look, Service::broker(socket)).await;
        sweeper.abort();
        broker.stop().await;
        return result;
    }
    recover_first(&Service::local(engine)).await?;
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "breakglass".into());
    output::demo_intro(&path, &demo_where(&dir, fresh), &exe, cli.json);
    Ok(exit::OK)
}
