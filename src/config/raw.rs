//! The file format as written, with spans so problems can name a line.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub policy: Option<Spanned<String>>,
    /// `"ssh"`: decisions are signed with the decider's SSH key.
    pub approval_signing: Option<Spanned<String>>,
    /// The OpenSSH allowed_signers file those signatures are verified against.
    pub allowed_signers: Option<Spanned<String>>,
    pub demo: Option<Spanned<RawDemo>>,
    pub store: Option<RawStore>,
    #[serde(default)]
    pub incident_sources: Vec<Spanned<RawSource>>,
    #[serde(default)]
    pub backends: BTreeMap<String, Spanned<RawBackend>>,
    pub alerts: Option<RawAlerts>,
    pub recovery: Option<RawRecovery>,
    pub ui: Option<RawUi>,
    pub audit: Option<RawAudit>,
    pub broker: Option<Spanned<RawBroker>>,
    pub groups: Option<Spanned<BTreeMap<String, Spanned<Vec<String>>>>>,
    pub roles: Option<Vec<Spanned<RawRole>>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyFile {
    pub approval_signing: Option<Spanned<String>>,
    pub allowed_signers: Option<Spanned<String>>,
    #[serde(default)]
    pub groups: Option<Spanned<BTreeMap<String, Spanned<Vec<String>>>>>,
    #[serde(default)]
    pub roles: Option<Vec<Spanned<RawRole>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDemo {
    pub personas: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub kind: Spanned<String>,
    pub path: Option<Spanned<String>>,
    // postgres
    /// Refused: the connection string comes from url_env or url_file.
    pub url: Option<Spanned<String>>,
    pub url_env: Option<Spanned<String>>,
    pub url_file: Option<Spanned<String>>,
    pub tls: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub data_dir: Option<Spanned<String>>,
    /// "os" (default) or "database".
    pub identity: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    pub path: Option<Spanned<String>>,
    // pagerduty, opsgenie, http
    pub base_url: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    /// Refused with a pointer to token_env: tokens never sit in the config.
    pub token: Option<Spanned<toml::Value>>,
    /// Refused with a pointer to token_env.
    pub api_key: Option<Spanned<toml::Value>>,
    pub timeout: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub cache_ttl: Option<Spanned<String>>,
    pub max_incidents: Option<Spanned<i64>>,
    // http only
    pub items_path: Option<Spanned<String>>,
    pub fields: Option<Spanned<BTreeMap<String, String>>>,
    pub open_values: Option<Spanned<Vec<String>>>,
}

/// Flat on purpose: spans do not survive serde's internally tagged enums.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub kind: Spanned<String>,
    pub state_path: Option<String>,
    pub command: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<String>,
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub env_allow: Vec<String>,
    // postgres (some names may be shared with other kinds; check before adding)
    /// An inline connection string or endpoint. postgres refuses it: its admin
    /// URL carries a password, so it comes from url_env or url_file.
    pub url: Option<Spanned<String>>,
    pub url_env: Option<Spanned<String>>,
    pub url_file: Option<Spanned<String>>,
    pub tls: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub connection_limit: Option<Spanned<i64>>,
    pub database: Option<Spanned<String>>,
    pub reassign_owned_to: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub session_timeout: Option<Spanned<String>>,
    // http (also uses url and timeout)
    pub secret_env: Option<Spanned<String>>,
    /// Refused with a pointer to secret_env: secrets never sit in the config.
    pub secret: Option<Spanned<toml::Value>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub revoke_retries: Option<Spanned<i64>>,
    // vault (also uses timeout and connect_timeout)
    pub addr: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    /// Refused with a pointer to token_env.
    pub token: Option<Spanned<toml::Value>>,
    pub renewable: Option<bool>,
    pub namespace: Option<String>,
    // ssh-ca (also uses host, port and timeout)
    pub ca_key_file: Option<Spanned<String>>,
    pub krl: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    #[serde(default)]
    pub sinks: Vec<Spanned<RawSink>>,
    /// Alert kinds beyond activation (which is always on).
    pub on: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    pub kind: Spanned<String>,
    pub name: Option<String>,
    pub path: Option<String>,
    pub url: Option<Spanned<String>>,
    pub url_env: Option<String>,
    pub secret_env: Option<String>,
    /// Refused with a pointer to secret_env: secrets never live in config.
    pub secret: Option<Spanned<String>>,
    pub address: Option<Spanned<String>>,
    pub transport: Option<Spanned<String>>,
    pub max_message_bytes: Option<Spanned<i64>>,
    pub format: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    /// PagerDuty: the variable holding the integration's routing key.
    pub routing_key_env: Option<String>,
    /// Refused with a pointer to routing_key_env.
    pub routing_key: Option<Spanned<toml::Value>>,
    /// The alert kinds this sink takes (default: all but approval_request).
    pub kinds: Option<Spanned<Vec<String>>>,
    /// The roles whose alerts this sink takes (default: all).
    pub roles: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecovery {
    pub grant_timeout: Option<Spanned<String>>,
    pub revoke_timeout: Option<Spanned<String>>,
    pub revoke_concurrency: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub backend: Option<Spanned<String>>,
    pub scope: Option<toml::Value>,
    pub default_ttl: Option<Spanned<String>>,
    pub max_ttl: Option<Spanned<String>>,
    /// Default "1m" (or default_ttl when that is shorter).
    pub min_ttl: Option<Spanned<String>>,
    #[serde(default)]
    pub max_extensions: u32,
    pub max_total: Option<Spanned<String>>,
    pub request_ttl: Option<Spanned<String>>,
    pub conditions: Option<Spanned<Vec<String>>>,
    pub ticket_pattern: Option<Spanned<String>>,
    pub requesters: Option<Spanned<Vec<String>>>,
    pub approvers: Option<Spanned<Vec<String>>>,
    pub certifiers: Option<Spanned<Vec<String>>>,
    pub approvals_required: Option<Spanned<i64>>,
    #[serde(default)]
    pub rotate_after_use: bool,
    /// Default true: requests and every extension need an open source incident.
    pub require_open_incident: Option<Spanned<bool>>,
    /// Default true: the sweeper revokes access once its incident is resolved.
    pub revoke_on_resolve: Option<Spanned<bool>>,
    #[serde(default)]
    pub require_alert_delivery: bool,
    /// Machine-speed recovery: service identities (users or @groups) whose
    /// requests for `auto_approve_conditions` are approved by policy.
    pub automation: Option<Spanned<Vec<String>>>,
    pub auto_approve_conditions: Option<Spanned<Vec<String>>>,
    /// "N/window", e.g. "3/1h" (default).
    pub auto_approve_rate: Option<Spanned<String>>,
    /// Default and ceiling: max_ttl.
    pub auto_max_ttl: Option<Spanned<String>>,
    /// Default "24h".
    pub certify_within: Option<Spanned<String>>,
    /// Refused with a pointer to the top of the file: these are top-level keys,
    /// easily appended below the last [[roles]] table by mistake.
    pub approval_signing: Option<Spanned<toml::Value>>,
    pub allowed_signers: Option<Spanned<toml::Value>>,
    /// Vendor role: TTL ceiling, vendor identity on requests, recorded `shell`.
    pub vendor: Option<Spanned<bool>>,
    /// `kind = "vendor"` is the same as `vendor = true`; "standard" is the default.
    pub kind: Option<Spanned<String>>,
    /// Default "1h": max_ttl of a vendor role may not exceed it.
    pub vendor_max_ttl: Option<Spanned<String>>,
    /// `breakglass shell` runs this instead of the user's $SHELL.
    pub shell_command: Option<Spanned<String>>,
    /// Record keystrokes as well as output (default false).
    pub record_input: Option<Spanned<bool>>,
    /// Default "90d": a certifier re-approves a vendor role this often.
    pub recertify_every: Option<Spanned<String>>,
    /// "N/window", e.g. "4/30d": beyond it a request needs one more approval.
    pub max_activations: Option<Spanned<String>>,
    /// The same, counted per requester.
    pub max_activations_per_person: Option<Spanned<String>>,
    /// Approvals a drill needs (default 1); 0 only for scheduled drills.
    pub drill_approvals: Option<Spanned<i64>>,
    /// e.g. "30d": the broker drills the role this often.
    pub drill_every: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUi {
    pub theme: Option<String>,
    /// Default true: the console rings when a request arrives to approve.
    pub approval_bell: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Ed25519 key (from `breakglass audit keygen`) that signs checkpoints; keep it
    /// outside the store, readable only by the breakglass user.
    pub checkpoint_key_file: Option<Spanned<String>>,
}

/// `[broker]`: in the broker's config, where it listens and who may connect; in a
/// person's config (the only table besides `[ui]`), where their commands go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBroker {
    pub socket: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
}
