//! Incidents from a TOML or JSON file (`[[incidents]]` / a list under "incidents").

use super::*;
use crate::sanitize;
use std::path::PathBuf;

pub struct FileSource {
    name: String,
    path: PathBuf,
}

#[derive(Deserialize)]
struct FileIncidents {
    #[serde(default)]
    incidents: Vec<RawIncident>,
}

#[derive(Deserialize)]
struct RawIncident {
    id: String,
    title: String,
    #[serde(default)]
    severity: String,
    #[serde(default = "open")]
    status: IncidentStatus,
    #[serde(default)]
    opened_at: Option<DateTime<Utc>>,
    #[serde(default)]
    url: Option<String>,
}

fn open() -> IncidentStatus {
    IncidentStatus::Open
}

impl FileSource {
    pub fn new(name: String, path: PathBuf) -> Self {
        FileSource { name, path }
    }

    fn error(&self, message: String) -> SourceError {
        SourceError {
            source_name: self.name.clone(),
            message,
        }
    }

    fn read(&self) -> Result<Vec<Incident>, SourceError> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| self.error(format!("cannot read {}: {e}", self.path.display())))?;
        self.parse(&text)
    }

    /// The incidents in `text`, read as JSON when the path ends in `.json` and
    /// as TOML otherwise. Pure, so it can be fuzzed.
    pub(crate) fn parse(&self, text: &str) -> Result<Vec<Incident>, SourceError> {
        let parsed: FileIncidents = if self.path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(text)
                .map_err(|e| self.error(format!("{}: {e}", self.path.display())))?
        } else {
            toml::from_str(text).map_err(|e| {
                self.error(format!("{}: {}", self.path.display(), e.message().trim()))
            })?
        };
        Ok(parsed
            .incidents
            .into_iter()
            .map(|r| Incident {
                source: self.name.clone(),
                id: sanitize::line(&r.id, 64),
                title: sanitize::line(&r.title, 200),
                severity: sanitize::line(&r.severity, 16),
                status: r.status,
                opened_at: r.opened_at,
                url: r.url.map(|u| sanitize::line(&u, 300)),
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl IncidentSource for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_open(&self) -> Result<Vec<Incident>, SourceError> {
        Ok(self
            .read()?
            .into_iter()
            .filter(|i| i.status.is_open())
            .collect())
    }

    async fn get(&self, id: &str) -> Result<Option<Incident>, SourceError> {
        Ok(self.read()?.into_iter().find(|i| i.id == id))
    }
}
