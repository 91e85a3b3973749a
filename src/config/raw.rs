//! The file format as written, with spans so problems can name a line.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub policy: Option<Spanned<String>>,
    pub demo: Option<Spanned<RawDemo>>,
    pub store: Option<RawStore>,
    #[serde(default)]
    pub incident_sources: Vec<Spanned<RawSource>>,
    #[serde(default)]
    pub backends: BTreeMap<String, Spanned<RawBackend>>,
    pub alerts: Option<RawAlerts>,
    pub recovery: Option<RawRecovery>,
    pub ui: Option<RawUi>,
    pub groups: Option<Spanned<BTreeMap<String, Spanned<Vec<String>>>>>,
    pub roles: Option<Vec<Spanned<RawRole>>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyFile {
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
    pub path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    pub path: Option<Spanned<String>>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    #[serde(default)]
    pub sinks: Vec<Spanned<RawSink>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    pub kind: Spanned<String>,
    pub path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecovery {
    pub grant_timeout: Option<Spanned<String>>,
    pub revoke_timeout: Option<Spanned<String>>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUi {
    pub theme: Option<String>,
}
