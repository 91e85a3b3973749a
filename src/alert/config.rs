//! What the config says about each alert sink (parsed and checked by `config`).

use crate::alert_vocab::{AlertKind, Format};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// One `[[alerts.sinks]]` table: where alerts go, and which of them.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub target: Target,
    pub route: Route,
}

/// Which alerts a sink takes. `kinds`: these kinds only (unset: every kind but
/// `approval_request`, which goes only to sinks that name it, and to PagerDuty
/// sinks, which take nothing else). `roles`: alerts about these roles only
/// (unset: every role, and alerts about none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    pub kinds: Option<BTreeSet<AlertKind>>,
    pub roles: Option<BTreeSet<String>>,
}

/// Where alerts go. Secrets (webhook signing keys, Slack URLs, PagerDuty
/// routing keys) are named by their environment variable and read when the
/// sink is built.
#[derive(Debug, Clone)]
pub enum Target {
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
    /// PagerDuty Events API v2: approval notices trigger and resolve an alert.
    PagerDuty {
        name: String,
        /// The events endpoint (default `pagerduty::EVENTS_URL`).
        url: String,
        routing_key_env: String,
        timeout: Duration,
    },
}
