//! The broker's socket: people's consoles and CLIs connect here, the kernel says
//! who they are (`SO_PEERCRED`), and every call runs through the engine this
//! process owns. Nothing a client sends names the caller (a demo persona aside,
//! which the engine refuses outside a demo).

use crate::engine::Engine;
use crate::service::handle::{handle, Caller};
use crate::service::protocol::{
    parse_call, read_frame, write_frame, ErrorKind, Reply, WireError, MAX_CALL_BYTES,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use zeroize::Zeroize;

/// A connection that sends nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(30);
/// Calls served at once; more wait for a slot (a flood cannot exhaust the broker).
const MAX_CONNECTIONS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another broker already answers on {0}")]
    InUse(PathBuf),
    #[error("{path} exists and is not a socket; move it away or choose another [broker] socket")]
    NotASocket { path: PathBuf },
    #[error("cannot listen on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("group `{0}` (the [broker] group allowed to connect) does not exist on this host")]
    NoGroup(String),
}

/// Listens on `socket`: a stale socket left by a dead broker is replaced, a live
/// one is refused. The socket is `0660` with `group` when one is named (only
/// its members may connect), else `0666` (any local account may ask; the policy
/// decides what it may do).
pub async fn bind(socket: &Path, group: Option<&str>) -> Result<UnixListener, BindError> {
    let io = |source| BindError::Io {
        path: socket.to_path_buf(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(socket) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(BindError::NotASocket {
                path: socket.to_path_buf(),
            });
        }
        if UnixStream::connect(socket).await.is_ok() {
            return Err(BindError::InUse(socket.to_path_buf()));
        }
        std::fs::remove_file(socket).map_err(io)?;
    }
    if let Some(dir) = socket.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(io)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        }
    }
    let listener = UnixListener::bind(socket).map_err(io)?;
    let mode = match group {
        Some(name) => {
            let g = nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| BindError::NoGroup(name.to_string()))?;
            nix::unistd::chown(socket, None, Some(g.gid))
                .map_err(|e| io(std::io::Error::from(e)))?;
            0o660
        }
        None => 0o666,
    };
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    Ok(listener)
}

/// Serves calls until `shutdown` resolves. Each connection is its own task; a
/// slow backend call holds only its caller.
pub async fn serve(
    engine: Arc<Engine>,
    listener: UnixListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => return,
        };
        let stream = tokio::select! {
            s = listener.accept() => s,
            _ = &mut shutdown => return,
        };
        match stream {
            Ok((stream, _)) => {
                let engine = engine.clone();
                tokio::spawn(async move {
                    connection(engine, stream).await;
                    drop(permit);
                });
            }
            // EMFILE and friends: back off instead of spinning.
            Err(e) => {
                tracing::warn!("broker: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The account the kernel says is on the other end.
async fn peer(stream: &UnixStream) -> Result<(u32, Option<String>), std::io::Error> {
    let uid = stream.peer_cred()?.uid();
    let name = tokio::task::spawn_blocking(move || {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
    })
    .await
    .ok()
    .flatten();
    Ok((uid, name))
}

async fn connection(engine: Arc<Engine>, mut stream: UnixStream) {
    let (uid, account) = match peer(&stream).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("broker: cannot tell who connected: {e}");
            return;
        }
    };
    loop {
        let frame = match tokio::time::timeout(IDLE, read_frame(&mut stream, MAX_CALL_BYTES)).await
        {
            Ok(Ok(Some(f))) => f,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => {
                let _ = reply(
                    &mut stream,
                    &Reply::Error(WireError::protocol(e.to_string())),
                )
                .await;
                return;
            }
        };
        let envelope = match parse_call(&frame) {
            Ok(e) => e,
            Err(e) => {
                let _ = reply(&mut stream, &Reply::Error(e)).await;
                return;
            }
        };
        let caller: Caller = match &envelope.as_persona {
            None => account
                .clone()
                .ok_or_else(|| crate::identity::IdentityError::NoUserName(uid).into()),
            Some(p) => crate::identity::resolve(engine.policy(), Some(p)).map_err(WireError::from),
        };
        let name = envelope.call.name();
        let changes = envelope.call.changes_state();
        tracing::info!(
            uid,
            account = account.as_deref().unwrap_or("?"),
            persona = envelope
                .as_persona
                .as_deref()
                .map(|p| crate::sanitize::line(p, 40)),
            call = name,
            "broker call"
        );
        let answer = Box::pin(handle(&engine, &caller, envelope.call))
            .await
            .unwrap_or_else(Reply::Error);
        // The SOC hears of a change now, not at the next sweep (as after a
        // command in direct mode); the caller does not wait for it.
        if changes && !matches!(answer, Reply::Error(_)) {
            let engine = engine.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.deliver_alerts().await {
                    tracing::warn!("broker: alert delivery: {e}");
                }
            });
        }
        if let Reply::Error(e) = &answer {
            if e.kind == ErrorKind::Store {
                tracing::warn!("broker: {name}: {}", e.message);
            }
        }
        if reply(&mut stream, &answer).await.is_err() {
            return;
        }
    }
}

async fn reply(stream: &mut UnixStream, r: &Reply) -> std::io::Result<()> {
    let mut body = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    let sent = write_frame(stream, &body).await;
    // An activation's answer holds the credential: no copy outlives the send.
    body.zeroize();
    sent
}
