//! Getting started: `init`, `config check`, `demo` and opening the console.

use super::*;
use crate::cli::stdio::{errln, outln};

/// Opens the interactive console on a config.
pub(super) async fn console(cli: &Cli, cfg: &Config) -> CliResult {
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
