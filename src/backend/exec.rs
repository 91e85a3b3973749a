//! The exec plugin backend: one JSON request on stdin, one JSON reply on stdout.
//! Non-zero exit is an error whose message is the plugin's (sanitised) stderr.
//! The plugin runs with a cleared environment, in its own process group, and is
//! killed with that group when it overruns its timeout.

use super::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

pub const PROTOCOL: &str = "breakglass.exec/v1";
const MAX_STDOUT: u64 = 1 << 20;
const MAX_STDERR: u64 = 64 << 10;

pub struct ExecBackend {
    command: PathBuf,
    args: Vec<String>,
    timeout: Duration,
    env_allow: Vec<String>,
}

/// The reply of the exec protocol; the HTTP backend reads the same shape.
#[derive(Deserialize)]
pub(crate) struct Reply {
    pub(super) ok: bool,
    #[serde(default)]
    pub(super) lease_id: Option<String>,
    #[serde(default)]
    pub(super) expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(super) credential: Option<BTreeMap<String, SecretString>>,
    #[serde(default)]
    pub(super) error: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
}

impl Reply {
    /// A grant reply must name a lease and carry a credential.
    pub(crate) fn into_grant(self) -> Result<Grant, BackendError> {
        let lease_id = self
            .lease_id
            .filter(|l| !l.trim().is_empty())
            .ok_or_else(|| BackendError::Protocol("grant reply has no lease_id".into()))?;
        let credential = self
            .credential
            .ok_or_else(|| BackendError::Protocol("grant reply has no credential".into()))?;
        Ok(Grant {
            lease_id: clean(&lease_id),
            expires_at: self.expires_at,
            credential: Credential(credential.into_iter().collect()),
        })
    }
}

pub(crate) fn clean(s: &str) -> String {
    crate::sanitize::line(s.trim(), 500)
}

/// Reads at most `cap` bytes into `buf`, then drains and discards the rest.
/// Stopping at the cap instead left a chatty plugin blocked on a full pipe, so
/// every oversized reply ended as a timeout. Returns whether output was dropped.
async fn read_capped(
    r: impl AsyncRead + Unpin,
    cap: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let mut r = r.take(cap);
    r.read_to_end(buf).await?;
    let dropped = tokio::io::copy(r.get_mut(), &mut tokio::io::sink()).await?;
    Ok(dropped > 0)
}

impl ExecBackend {
    pub fn new(
        command: PathBuf,
        args: Vec<String>,
        timeout: Duration,
        env_allow: Vec<String>,
    ) -> Self {
        ExecBackend {
            command,
            args,
            timeout,
            env_allow,
        }
    }

    async fn call(&self, op: &str, body: serde_json::Value) -> Result<Reply, BackendError> {
        let mut req = serde_json::json!({"protocol": PROTOCOL, "op": op});
        if let (Some(o), serde_json::Value::Object(b)) = (req.as_object_mut(), body) {
            o.extend(b);
        }
        // A probe's request carries a credential: wiped once written.
        let mut line = Zeroizing::new(serde_json::to_vec(&req).expect("a Value serialises"));
        line.push(b'\n');

        let mut cmd = tokio::process::Command::new(&self.command);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("BREAKGLASS_PROTOCOL", PROTOCOL);
        for k in &self.env_allow {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            BackendError::Failed(format!(
                "cannot start plugin {}: {e}",
                self.command.display()
            ))
        })?;
        let pid = child.id();
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");

        let work = async {
            // A plugin that never reads stdin must not block us: ignore EPIPE.
            let _ = stdin.write_all(&line).await;
            drop(stdin);
            let mut out = Zeroizing::new(Vec::new());
            let mut err = Vec::new();
            let (a, b, status) = tokio::join!(
                read_capped(stdout, MAX_STDOUT, &mut out),
                read_capped(stderr, MAX_STDERR, &mut err),
                child.wait()
            );
            let out_dropped = b
                .and(a)
                .map_err(|e| BackendError::Failed(format!("reading plugin output: {e}")))?;
            let status =
                status.map_err(|e| BackendError::Failed(format!("waiting for plugin: {e}")))?;
            Ok::<_, BackendError>((status, out, err, out_dropped))
        };
        let (status, out, err, out_dropped) = match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r?,
            Err(_) => {
                // Kill the whole group: a shell plugin's children would keep its pipes open.
                if let Some(pid) = pid {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                return Err(BackendError::Timeout(self.timeout));
            }
        };
        let stderr_text = clean(&String::from_utf8_lossy(&err));
        if !status.success() {
            use std::os::unix::process::ExitStatusExt;
            let how = match (status.code(), status.signal()) {
                (Some(c), _) => format!("exited with status {c}"),
                (None, Some(s)) => format!("crashed (signal {s})"),
                _ => "failed".to_string(),
            };
            let detail = if stderr_text.is_empty() {
                String::new()
            } else {
                format!(": {stderr_text}")
            };
            return Err(BackendError::Failed(format!("plugin {op} {how}{detail}")));
        }
        if out_dropped {
            return Err(BackendError::Protocol(format!(
                "plugin {op} printed more than {} MiB on stdout; see the plugin protocol in docs/src/backends/exec-protocol.md",
                MAX_STDOUT >> 20
            )));
        }
        parse_reply(op, &out)
    }
}

/// A credential as the probe operation sends it (exec and http): its values
/// by name, only ever written to the plugin's stdin or the request body.
pub(crate) fn probe_credential(credential: &Credential) -> serde_json::Value {
    serde_json::Value::Object(
        credential
            .reveal()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect(),
    )
}

/// Reads what a plugin that exited 0 printed on stdout: one JSON reply, which
/// is an error when it says `"ok": false`. Pure, so it can be fuzzed.
pub(crate) fn parse_reply(op: &str, out: &[u8]) -> Result<Reply, BackendError> {
    let reply: Reply = serde_json::from_slice(out).map_err(|e| {
        BackendError::Protocol(format!(
            "plugin {op} did not print one JSON object on stdout ({e}); see the plugin protocol in docs/src/backends/exec-protocol.md"
        ))
    })?;
    if !reply.ok {
        return Err(BackendError::Failed(format!(
            "plugin {op} refused: {}",
            clean(reply.error.as_deref().unwrap_or("no error message given"))
        )));
    }
    Ok(reply)
}

#[async_trait::async_trait]
impl Backend for ExecBackend {
    fn kind(&self) -> &'static str {
        "exec"
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Grant, BackendError> {
        let body = serde_json::to_value(spec).expect("serialises");
        self.call("grant", body).await?.into_grant()
    }

    async fn revoke(&self, spec: &RevokeSpec) -> Result<(), BackendError> {
        self.call("revoke", serde_json::to_value(spec).expect("serialises"))
            .await
            .map(|_| ())
    }

    async fn extend(
        &self,
        spec: &RevokeSpec,
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let mut body = serde_json::to_value(spec).expect("serialises");
        body["expires_at"] = serde_json::json!(expires_at);
        self.call("extend", body).await.map(|_| ())
    }

    async fn rotate(&self, role: &str, scope: &serde_json::Value) -> Result<(), BackendError> {
        self.call("rotate", serde_json::json!({"role": role, "scope": scope}))
            .await
            .map(|_| ())
    }

    /// `probe`: the lease and the credential it issued; the plugin tries it on
    /// the target and answers `ok` only when the target accepted it.
    async fn probe(
        &self,
        spec: &RevokeSpec,
        credential: &Credential,
    ) -> Result<String, BackendError> {
        let mut body = serde_json::to_value(spec).expect("serialises");
        body["credential"] = probe_credential(credential);
        let r = self.call("probe", body).await?;
        Ok(clean(
            r.message
                .as_deref()
                .unwrap_or("the target accepted the credential"),
        ))
    }

    async fn check(&self) -> Result<String, BackendError> {
        let r = self.call("check", serde_json::json!({})).await?;
        Ok(clean(r.message.as_deref().unwrap_or("ok")))
    }
}
