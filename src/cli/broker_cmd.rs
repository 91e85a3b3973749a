//! `breakglass broker`: the engine behind a Unix socket, plus the sweeper.

use super::*;
use std::path::Path;
use std::sync::Arc;

/// How often the broker sweeps (expiry, retries, alert delivery).
const SWEEP_EVERY_SECS: i64 = 1;

pub(super) async fn run(cfg: &Config, socket: Option<&Path>, json: bool) -> CliResult {
    let socket = socket.map(Path::to_path_buf).ok_or_else(|| {
        Failure::new(
            exit::USAGE,
            "name the broker's socket: [broker] socket in the config, or --socket PATH",
        )
    })?;
    let engine = Arc::new(Engine::from_config(cfg)?);
    let running = start(engine.clone(), &socket, None).await?;
    errln!(
        "breakglass broker: serving {} on {} (pid {})",
        engine.store_description(),
        socket.display(),
        std::process::id()
    );
    let result = sweep_until_stopped(&engine, "broker", SWEEP_EVERY_SECS, json).await;
    running.stop().await;
    result
}

/// A broker serving in this process; `stop` closes the socket and removes it.
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    socket: std::path::PathBuf,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        let _ = std::fs::remove_file(&self.socket);
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
        socket: socket.to_path_buf(),
    })
}
