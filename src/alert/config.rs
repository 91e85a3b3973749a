//! What the config says about each alert sink (parsed and checked by `config`).

use crate::alert_vocab::Format;
use std::path::PathBuf;
use std::time::Duration;

/// Alert sinks. Secrets (webhook signing keys, Slack URLs) are named by their
/// environment variable and read when the sink is built.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    File {
        name: String,
        path: PathBuf,
        format: Format,
    },
    Webhook {
        name: String,
        url: String,
        secret_env: Option<String>,
        format: Format,
        timeout: Duration,
    },
    Slack {
        name: String,
        url_env: String,
        timeout: Duration,
    },
    Syslog {
        name: String,
        address: String,
        tcp: bool,
        format: Format,
        /// The largest message sent; longer alerts have their text shortened.
        max_message_bytes: usize,
    },
}
