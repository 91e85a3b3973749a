//! Where incidents come from. Every text field is sanitised on the way in.
//!
//! - `file`: a TOML or JSON file.
//! - `pagerduty`, `opsgenie`: their REST APIs; `http`: any endpoint returning a
//!   JSON list, with a configured field map. All three share `remote` (token
//!   from an environment variable, timeouts, rate limits, a body cap, clear
//!   errors) and the same rule for malformed data: an item that cannot be read
//!   is skipped with a warning naming the item and field (see
//!   [`IncidentSource::warnings`]); when no item of a non-empty reply can be
//!   read, the listing is an error instead, since the mapping itself is wrong.
//! - `cache`: wraps any source so repeated listings and lookups within
//!   `cache_ttl` do not call it again.

pub mod cache;
pub mod config;
pub mod file;
pub mod http;
pub mod opsgenie;
pub mod pagerduty;
pub(crate) mod remote;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub source: String,
    pub id: String,
    pub title: String,
    pub severity: String,
    pub status: IncidentStatus,
    pub opened_at: Option<DateTime<Utc>>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl IncidentStatus {
    pub fn is_open(self) -> bool {
        !matches!(self, IncidentStatus::Resolved)
    }
}

#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
// The message quotes what a source sent: cleaned and cut wherever it is shown.
#[error("incident source {source_name} is unavailable: {}", crate::sanitize::line(.message, 300))]
pub struct SourceError {
    pub source_name: String,
    pub message: String,
}

#[async_trait::async_trait]
pub trait IncidentSource: Send + Sync {
    fn name(&self) -> &str;
    async fn list_open(&self) -> Result<Vec<Incident>, SourceError>;
    /// One incident by the id shown in listings (sources may accept other ids
    /// too); `None` when the source does not know it.
    async fn get(&self, id: &str) -> Result<Option<Incident>, SourceError>;
    /// What the last listing skipped or cut (malformed items, the cap), for
    /// showing beside its results. Also logged.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

pub fn build(cfg: &config::SourceConfig) -> Arc<dyn IncidentSource> {
    use config::SourceKind;
    let name = cfg.name.clone();
    let inner: Arc<dyn IncidentSource> = match &cfg.kind {
        SourceKind::File { path } => Arc::new(file::FileSource::new(name, path.clone())),
        SourceKind::PagerDuty(r) => Arc::new(pagerduty::PagerDutySource::new(name, r.clone())),
        SourceKind::Opsgenie(r) => Arc::new(opsgenie::OpsgenieSource::new(name, r.clone())),
        SourceKind::Http {
            remote,
            items_path,
            fields,
            open_values,
        } => Arc::new(http::HttpSource::new(
            name,
            remote.clone(),
            items_path.clone(),
            fields.clone(),
            open_values.clone(),
        )),
    };
    if cfg.cache_ttl.is_zero() {
        inner
    } else {
        Arc::new(cache::CachedSource::new(inner, cfg.cache_ttl))
    }
}
