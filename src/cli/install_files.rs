//! What an install puts beside the binary, generated from the same clap
//! definitions as `--help` so they cannot drift from it: shell completions
//! (`breakglass completions SHELL`) and man pages (`breakglass man --dir DIR`).
//! Commands rather than a build.rs: the definitions live in the library (they
//! name its types), which a build script cannot use; and a binary installed with
//! `cargo install` can still write its own.

use super::*;
use clap::CommandFactory;
use std::path::Path;

/// The command line as the files describe it. `--config`'s help names the
/// default file of whoever runs `--help`; a file made once for every user names
/// where that default lives instead (config::default_path, directories' rule).
fn described() -> clap::Command {
    Cli::command().mut_arg("config", |a| {
        a.help(
            "Config file [default: $XDG_CONFIG_HOME/breakglass/breakglass.toml, \
             i.e. ~/.config/breakglass/breakglass.toml; $BREAKGLASS_CONFIG overrides it]",
        )
    })
}

/// The completion script for `shell`.
pub fn completions(shell: CompletionShell) -> String {
    use clap_complete::Shell;
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut described(), "breakglass", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes breakglass.1 and one page per command and subcommand
/// (breakglass-audit-verify.1 ...) into `dir`; returns their paths, sorted.
pub fn man_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn write(cmd: clap::Command, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            write(sub.clone(), dir, out)?;
        }
        out.push(
            clap_mangen::Man::new(cmd)
                .manual("breakglass")
                .generate_to(dir)?,
        );
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    // Built once from the top: subcommands get their page names
    // (breakglass-audit-verify) and the global options.
    let mut cmd = described().disable_help_subcommand(true);
    cmd.build();
    let mut pages = vec![];
    write(cmd, dir, &mut pages)?;
    pages.sort();
    Ok(pages)
}

pub(super) fn completions_cmd(shell: CompletionShell) -> CliResult {
    outln!("{}", completions(shell).trim_end());
    Ok(exit::OK)
}

pub(super) fn man_cmd(dir: &Path, json: bool) -> CliResult {
    let pages = man_pages(dir).map_err(|e| {
        Failure::new(
            exit::FAILURE,
            format!("cannot write the man pages into {}: {e}", dir.display()),
        )
    })?;
    if json {
        outln!("{}", serde_json::json!({ "man_pages": pages }));
    } else {
        for p in &pages {
            outln!("{}", p.display());
        }
        errln!(
            "wrote {} man page(s); `man breakglass` finds them when {} is on its path (manpath)",
            pages.len(),
            dir.display()
        );
    }
    Ok(exit::OK)
}
