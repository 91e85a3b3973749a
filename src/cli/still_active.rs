//! What a person is told about access that outlives the command or console
//! that showed it: who revokes it at expiry once this terminal closes, and a
//! command that ends it now, written so it works when pasted as printed.
//! The command line (`activate`, `request --wait`) and the console's exit
//! message both say it from here, so they cannot drift apart.

use crate::files::shell_quote;
use crate::service::Service;
use std::path::{Path, PathBuf};

/// Who revokes active access at expiry when nobody is at this terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcer {
    /// A broker that outlives this process sweeps its store.
    Broker,
    /// Direct mode, and a `breakglass daemon` runs on this host.
    Daemon,
    /// Direct mode, and nothing sweeps until someone runs a command.
    NextCommand,
}

impl Enforcer {
    /// For access granted through `svc` on `config`. `broker_outlives_us` is
    /// false for the demo's broker, which lives in this process and ends with it.
    pub fn of(svc: &Service, config: &Path, broker_outlives_us: bool) -> Self {
        if svc.socket().is_some() && broker_outlives_us {
            Enforcer::Broker
        } else if daemon_sweeping(config) {
            Enforcer::Daemon
        } else {
            Enforcer::NextCommand
        }
    }

    /// The one sentence about what ends the access once this terminal closes.
    pub fn sentence(self) -> &'static str {
        match self {
            Enforcer::Broker => {
                "The broker revokes it at expiry, whether or not this terminal stays open."
            }
            Enforcer::Daemon => {
                "The running `breakglass daemon` revokes it at expiry, whether or not this terminal stays open."
            }
            Enforcer::NextCommand => {
                "Closing this terminal does not end it: it is revoked at expiry by the next breakglass command on this store or by a `breakglass daemon` (none is sweeping it now)."
            }
        }
    }
}

/// Whether a `breakglass daemon` on this host sweeps the store of `config`: one
/// on another config revokes nothing here. A daemon whose config cannot be told
/// (another account's process) does not count.
pub fn daemon_sweeping(config: &Path) -> bool {
    let Ok(config) = std::fs::canonicalize(config) else {
        return false;
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| daemon_config(&e.path()).is_some_and(|c| c == config))
}

/// The config a `breakglass daemon` process reads, from its command line (as
/// its working directory resolves it), else its environment, else the default.
fn daemon_config(proc_dir: &Path) -> Option<PathBuf> {
    let cmdline = std::fs::read(proc_dir.join("cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if !args.first()?.ends_with("breakglass") || !args.iter().any(|a| a == "daemon") {
        return None;
    }
    let named = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--config") {
            Some("") => args.get(i + 1).cloned(),
            Some(v) => v.strip_prefix('=').map(str::to_string),
            None => None,
        });
    let named = named.or_else(|| {
        let env = std::fs::read(proc_dir.join("environ")).ok()?;
        env.split(|b| *b == 0).find_map(|kv| {
            kv.strip_prefix(b"BREAKGLASS_CONFIG=")
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    });
    let path = match named {
        Some(p) => std::fs::read_link(proc_dir.join("cwd")).ok()?.join(p),
        // Its own account's default: only ours is known here.
        None => crate::config::default_path()?,
    };
    std::fs::canonicalize(path).ok()
}

/// How to run this binary from the person's shell: `breakglass` when that name
/// on `$PATH` is this very program, else its full path.
pub fn program() -> String {
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "breakglass".into();
    };
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("breakglass"))
        .find(|c| c.is_file());
    match on_path.and_then(|c| std::fs::canonicalize(c).ok()) {
        Some(found) if found == me => "breakglass".into(),
        _ => shell_quote(&me.display().to_string()),
    }
}

/// The config a printed command must name: none when a plain `breakglass` in
/// this shell finds the same file anyway (the default path, or
/// `$BREAKGLASS_CONFIG`), unless `always` (a demo's config is never the one a
/// later shell would find).
pub fn config_to_name(config: &Path, always: bool) -> Option<PathBuf> {
    let config = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    if always {
        return Some(config);
    }
    // What a plain `breakglass` in this shell reads (as `config_path` does).
    let found = std::env::var_os("BREAKGLASS_CONFIG")
        .map(PathBuf::from)
        .or_else(crate::config::default_path)
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p));
    (found.as_ref() != Some(&config)).then_some(config)
}

/// `PROGRAM [--config FILE] [--as PERSONA] revoke REQ-n`, quoted for a shell.
pub fn revoke_command(
    program: &str,
    config: Option<&Path>,
    persona: Option<&str>,
    id: crate::domain::RequestId,
) -> String {
    let mut cmd = program.to_string();
    if let Some(c) = config {
        cmd.push_str(" --config ");
        cmd.push_str(&shell_quote(&c.display().to_string()));
    }
    if let Some(p) = persona {
        cmd.push_str(" --as ");
        cmd.push_str(&shell_quote(p));
    }
    cmd.push_str(&format!(" revoke {id}"));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RequestId;

    #[test]
    fn the_revoke_command_names_config_and_persona_only_when_given_and_quotes_them() {
        let id: RequestId = "REQ-7".parse().expect("an id");
        assert_eq!(
            revoke_command("breakglass", None, None, id),
            "breakglass revoke REQ-7"
        );
        assert_eq!(
            revoke_command(
                "/opt/bg/breakglass",
                Some(Path::new("/run/user/1000/breakglass/demo/breakglass.toml")),
                Some("alice"),
                id
            ),
            "/opt/bg/breakglass --config /run/user/1000/breakglass/demo/breakglass.toml --as alice revoke REQ-7"
        );
        assert_eq!(
            revoke_command(
                "breakglass",
                Some(Path::new("/tmp/my dir/b.toml")),
                None,
                id
            ),
            "breakglass --config '/tmp/my dir/b.toml' revoke REQ-7"
        );
    }

    #[test]
    fn every_enforcer_says_what_happens_when_the_terminal_closes() {
        for e in [Enforcer::Broker, Enforcer::Daemon, Enforcer::NextCommand] {
            let s = e.sentence();
            assert!(s.contains("terminal") && s.contains("at expiry"), "{s}");
        }
        assert!(Enforcer::NextCommand.sentence().contains("does not end it"));
    }
}
