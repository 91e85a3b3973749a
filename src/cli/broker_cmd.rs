//! `breakglass broker`: the engine behind a Unix socket, plus the sweeper.

use super::*;
use std::path::Path;
use std::sync::Arc;

/// The broker sweeps when something is due (expiry, retries, alert delivery)
/// and at least this often.
const SWEEP_AT_LEAST_EVERY_SECS: i64 = 30;

pub(super) async fn run(cfg: &Config, socket: Option<&Path>, json: bool) -> CliResult {
    let socket = socket
        .map(Path::to_path_buf)
        .or_else(|| cfg.broker.as_ref().map(|b| b.socket.clone()))
        .ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                "name the broker's socket: [broker] socket in the config, or --socket PATH",
            )
        })?;
    let group = cfg.broker.as_ref().and_then(|b| b.group.clone());
    holds_alone(cfg)?;
    let engine = Arc::new(Engine::from_config(cfg)?);
    let running = start(engine.clone(), &socket, group.as_deref()).await?;
    errln!(
        "breakglass broker: serving {} on {} (pid {})",
        engine.store_description(),
        socket.display(),
        std::process::id()
    );
    let result = sweep_until_stopped(&engine, "broker", SWEEP_AT_LEAST_EVERY_SECS, json).await;
    running.stop().await;
    result
}

/// Refuses to serve when anyone but this account could read a secret the broker
/// holds, or change the policy it enforces: whoever can would hold the standing
/// privilege the broker exists to take away.
fn holds_alone(cfg: &Config) -> Result<(), Failure> {
    let me = nix::unistd::geteuid().as_raw();
    let mut problems: Vec<String> = config::secret_files(cfg)
        .iter()
        .filter_map(|f| config::check_owner_only(f, me).err())
        .collect();
    if let Err(p) = policy_is_ours(&cfg.path, me) {
        problems.push(p);
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut f = Failure::new(
        exit::USAGE,
        "the broker will not start: what it alone must hold is open to others",
    );
    f.causes = problems;
    Err(f.with_hint("docs/src/broker-setup.md lists the owner and mode of each file"))
}

/// The broker's config (its policy) is changed by root or the broker's account
/// only: owned by one of them and writable by no one else. The error is one
/// line among the problems listed (a cause of the refusal).
fn policy_is_ours(path: &Path, me: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let shown = crate::files::shell_quote(&path.display().to_string());
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!(
            "the config {shown} (the policy) is owned by uid {}, who could change the policy; run: chown root {shown}",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "the config {shown} (the policy) is writable by group or others; run: chmod go-w {shown}"
        ));
    }
    Ok(())
}

/// A broker serving in this process; `stop` closes the socket and removes it.
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    socket: std::path::PathBuf,
    /// The socket file's (device, inode): a successor may already have bound
    /// the same path, and its socket is not ours to remove.
    ours: Option<(u64, u64)>,
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        if self.ours.is_some() && identity(&self.socket) == self.ours {
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

pub async fn start(
    engine: Arc<Engine>,
    socket: &Path,
    group: Option<&str>,
) -> Result<Running, Failure> {
    let listener = crate::broker::bind(socket, group)
        .await
        .map_err(|e| Failure::from_error(exit::FAILURE, &e))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::broker::serve(engine, listener, async move {
        let _ = stopped.await;
    }));
    Ok(Running {
        stop,
        server,
        ours: identity(socket),
        socket: socket.to_path_buf(),
    })
}
