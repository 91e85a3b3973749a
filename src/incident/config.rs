//! What the config says about each incident source (parsed and checked by `config`).

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    /// How long a source's answers are reused (`cache_ttl`, default 10 s; zero: never).
    pub cache_ttl: Duration,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    File {
        path: PathBuf,
    },
    /// PagerDuty REST API v2 (`base_url` default `https://api.pagerduty.com`).
    PagerDuty(RemoteSource),
    /// Opsgenie Incident API v1 (`base_url` default `https://api.opsgenie.com`).
    Opsgenie(RemoteSource),
    /// Any endpoint returning a JSON list of incidents (`url` is the list itself).
    Http {
        remote: RemoteSource,
        /// Dotted path to the list inside the response; `None`: the response is the list.
        items_path: Option<String>,
        fields: FieldMap,
        /// Status values that count as open (compared case-insensitively).
        open_values: Vec<String>,
    },
}

/// What every HTTP incident source shares.
#[derive(Debug, Clone)]
pub struct RemoteSource {
    /// The API's base URL (pagerduty, opsgenie) or the list's URL (http).
    pub url: String,
    /// The environment variable holding the token, read at every call. Tokens
    /// never sit in the config file.
    pub token_env: Option<String>,
    /// Total time for one listing or lookup, pages and rate-limit waits included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// At most this many incidents are taken from one listing (default 10,000).
    pub max_incidents: usize,
}

/// Dotted paths (`a.b.0.c`) into one item of a generic HTTP source's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    pub id: String,
    pub title: String,
    pub severity: Option<String>,
    /// Unset: every listed item counts as open.
    pub status: Option<String>,
    pub url: Option<String>,
    pub opened_at: Option<String>,
}
