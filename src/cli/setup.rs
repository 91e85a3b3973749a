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

/// Opens the interactive console on a config, with the engine in this process.
pub(super) async fn console(cli: &Cli, cfg: &Config) -> CliResult {
    needs_terminal()?;
    let engine = std::sync::Arc::new(Engine::from_config(cfg)?);
    console_on(cli, cfg, Service::local(engine)).await
}

/// The console over `svc` (in process or a broker); `cfg` gives its look and
/// where drafts live.
pub(super) async fn console_on(cli: &Cli, cfg: &Config, svc: Service) -> CliResult {
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
        .or_else(|| cfg.ui_theme.clone())
        .unwrap_or_else(|| "default".into());
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let (theme, warning) =
        crate::tui::theme::Theme::load(&name, Some(&cfg.dir().join("themes")), no_color);
    let summary = crate::tui::run(
        svc.clone(),
        crate::tui::Options {
            store: format!("{} · {}", hello.store, svc.holder()),
            theme,
            warning,
            drafts_dir: cfg.data_dir().join("drafts"),
            me,
            personas: hello.personas.clone(),
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
            errln!(
                "{id} is still ACTIVE until {}. It is revoked at expiry by {}.",
                until.format("%H:%M:%S UTC"),
                if daemon {
                    "the running `breakglass daemon`"
                } else {
                    "the next breakglass command or a `breakglass daemon` (none is running now)"
                }
            );
            errln!("  end it now with: breakglass revoke {id}");
        }
    }
    Ok(exit::OK)
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
    match config::load(&path) {
        Ok(cfg) => {
            if cli.json {
                outln!(
                    "{}",
                    serde_json::json!({"ok": true, "roles": cfg.policy.roles.len()})
                );
            } else {
                outln!(
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

pub(super) async fn demo(cli: &Cli, dir: Option<PathBuf>, no_console: bool) -> CliResult {
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
    let engine = std::sync::Arc::new(Engine::from_config(&cfg)?);
    if interactive && !no_console && !cli.json {
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
        let result = console_on(cli, &cfg, Service::broker(socket)).await;
        sweeper.abort();
        broker.stop().await;
        return result;
    }
    recover_first(&Service::local(engine)).await?;
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "breakglass".into());
    output::demo_intro(&path, &exe, cli.json);
    Ok(exit::OK)
}
