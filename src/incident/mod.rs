//! Where incidents come from. Every text field is sanitised on the way in.

pub mod file;

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

#[derive(Debug, thiserror::Error)]
#[error("incident source {source_name}: {message}")]
pub struct SourceError {
    pub source_name: String,
    pub message: String,
}

#[async_trait::async_trait]
pub trait IncidentSource: Send + Sync {
    fn name(&self) -> &str;
    async fn list_open(&self) -> Result<Vec<Incident>, SourceError>;
    async fn get(&self, id: &str) -> Result<Option<Incident>, SourceError>;
}

pub fn build(cfg: &crate::config::SourceConfig) -> Arc<dyn IncidentSource> {
    match &cfg.kind {
        crate::config::SourceKind::File { path } => {
            Arc::new(file::FileSource::new(cfg.name.clone(), path.clone()))
        }
    }
}
