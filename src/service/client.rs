//! The broker's client end: one connection per call, so a broker restart costs
//! a caller nothing but the call in flight.

use super::protocol::{
    read_frame, write_frame, Call, Envelope, ErrorKind, Reply, WireError, MAX_REPLY_BYTES, VERSION,
};
use std::path::Path;
use std::time::Duration;
use tokio::net::UnixStream;
use zeroize::Zeroize;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A call that grants or revokes waits on a backend; the broker bounds that
/// with the backend's own timeouts, this only stops a wedged broker holding us.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(300);
/// Reads answer from the store and the incident sources (whose own timeouts are
/// shorter than this).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

fn unavailable(socket: &Path, e: impl std::fmt::Display) -> WireError {
    let mut w = WireError::new(
        ErrorKind::Unavailable,
        crate::exit::FAILURE,
        format!("cannot reach the broker at {}", socket.display()),
    );
    w.causes.push(e.to_string());
    w
}

pub async fn call(socket: &Path, as_persona: Option<&str>, call: Call) -> Result<Reply, WireError> {
    let limit = match &call {
        Call::WaitForChange { timeout_ms, .. } => {
            Duration::from_millis((*timeout_ms).min(super::protocol::MAX_WAIT_MS))
                + Duration::from_secs(10)
        }
        c if c.changes_state() => CHANGE_TIMEOUT,
        _ => READ_TIMEOUT,
    };
    let name = call.name();
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(socket))
        .await
        .map_err(|_| unavailable(socket, "no answer within 3 s"))?
        .map_err(|e| unavailable(socket, e))?;
    let envelope = Envelope {
        v: VERSION.to_string(),
        as_persona: as_persona.map(str::to_string),
        call,
    };
    let mut body = serde_json::to_vec(&envelope).map_err(|e| WireError::protocol(e.to_string()))?;
    let sent = write_frame(&mut stream, &body).await;
    body.zeroize();
    sent.map_err(|e| unavailable(socket, e))?;
    let frame = tokio::time::timeout(limit, read_frame(&mut stream, MAX_REPLY_BYTES))
        .await
        .map_err(|_| {
            unavailable(
                socket,
                format!("no answer to `{name}` within {}s", limit.as_secs()),
            )
        })?
        .map_err(|e| unavailable(socket, e))?;
    let Some(mut frame) = frame else {
        return Err(unavailable(
            socket,
            format!("the broker closed the connection during `{name}`"),
        ));
    };
    let reply = serde_json::from_slice::<Reply>(&frame);
    // An activation's reply carried the credential: leave no copy behind.
    frame.zeroize();
    match reply {
        Ok(Reply::Error(e)) => Err(e),
        Ok(r) => Ok(r),
        Err(e) => Err(WireError::protocol(format!(
            "the broker's answer to `{name}` is not {VERSION}: {e}"
        ))),
    }
}
