//! Any endpoint that answers `GET url` with a JSON list of incidents, or an
//! object holding the list at `items_path` (dotted: `data.incidents`).
//!
//! `fields` maps each incident field to a dotted path inside one item (`id` and
//! `title` required; `severity`, `status`, `url`, `opened_at` optional). An id
//! or severity may be text or a number; `opened_at` RFC 3339 text or epoch
//! seconds/milliseconds. With `status` mapped, a value in `open_values`
//! (case-insensitive) is open (acknowledged when it says so) and any other value
//! is resolved; without it, every listed item is open. `get` lists and looks the
//! id up, so the sweeper sees an incident resolved only if the endpoint still
//! lists it with a resolved status. A bearer token is sent when `token_env` is set.

use super::config::{FieldMap, RemoteSource};
use super::remote::{self, Auth, Remote, Reply};
use super::*;
use serde_json::Value;

pub struct HttpSource {
    remote: Remote,
    items_path: Option<String>,
    fields: FieldMap,
    open_values: Vec<String>,
}

impl HttpSource {
    pub fn new(
        name: String,
        settings: RemoteSource,
        items_path: Option<String>,
        fields: FieldMap,
        open_values: Vec<String>,
    ) -> Self {
        HttpSource {
            remote: Remote::new(name, "the incident API", settings, Auth::Bearer),
            items_path,
            fields,
            open_values: open_values.iter().map(|v| v.to_lowercase()).collect(),
        }
    }

    fn status(&self, item: &Value) -> Result<IncidentStatus, String> {
        let Some(path) = &self.fields.status else {
            return Ok(IncidentStatus::Open);
        };
        let v = remote::scalar(item, path, true)?
            .unwrap_or_default()
            .trim()
            .to_lowercase();
        Ok(if !self.open_values.contains(&v) {
            IncidentStatus::Resolved
        } else if v.starts_with("ack") {
            IncidentStatus::Acknowledged
        } else {
            IncidentStatus::Open
        })
    }

    fn parse(&self, item: &Value) -> Result<Incident, String> {
        let f = &self.fields;
        let id = remote::id(item, &f.id)?;
        let title = remote::scalar(item, &f.title, true)?.unwrap_or_default();
        let severity = match &f.severity {
            Some(p) => remote::scalar(item, p, false)?,
            None => None,
        };
        let url = match &f.url {
            Some(p) => remote::text(item, p, false)?,
            None => None,
        };
        let opened_at = match &f.opened_at {
            Some(p) => remote::time(item, p)?,
            None => None,
        };
        Ok(remote::incident(
            &self.remote.name,
            id,
            &title,
            severity,
            self.status(item)?,
            opened_at,
            url,
        ))
    }

    /// Every listed incident, whatever its status.
    async fn list_all(&self, deadline: tokio::time::Instant) -> Result<Vec<Incident>, SourceError> {
        let url = self.remote.url(&self.remote.settings.url)?;
        let v = match self
            .remote
            .get_json(&url, "application/json", deadline)
            .await?
        {
            Reply::Json(v) => v,
            Reply::NotFound => {
                return Err(self
                    .remote
                    .error("the incident list answered HTTP 404; check url"))
            }
        };
        self.items(&v)
    }

    /// Every incident in the reply `v`, whatever its status: the list at
    /// `items_path` read through the field map. Pure, so it can be fuzzed.
    pub(crate) fn items(&self, v: &Value) -> Result<Vec<Incident>, SourceError> {
        let list = match &self.items_path {
            None => v.as_array().ok_or_else(|| {
                self.remote.error(
                    "the reply is not a list; set items_path to where the list is (e.g. \"data.incidents\")",
                )
            })?,
            Some(p) => match remote::at(v, p) {
                Some(Value::Array(a)) => a,
                Some(_) => {
                    return Err(self
                        .remote
                        .error(format!("items_path `{p}` in the reply is not a list")))
                }
                None => {
                    return Err(self
                        .remote
                        .error(format!("items_path `{p}` is not in the reply")))
                }
            },
        };
        let max = self.remote.settings.max_incidents;
        let truncated = list.len() > max;
        let items = list
            .iter()
            .take(max)
            .enumerate()
            .map(|(i, item)| {
                self.parse(item)
                    .map_err(|m| remote::item_problem("items", i, item, &self.fields.id, m))
            })
            .collect();
        self.remote.finish(items, truncated, vec![])
    }
}

#[async_trait::async_trait]
impl IncidentSource for HttpSource {
    fn name(&self) -> &str {
        &self.remote.name
    }

    async fn list_open(&self) -> Result<Vec<Incident>, SourceError> {
        let all = self.remote.bounded(|d| self.list_all(d)).await?;
        Ok(all.into_iter().filter(|i| i.status.is_open()).collect())
    }

    async fn get(&self, id: &str) -> Result<Option<Incident>, SourceError> {
        let id = id.trim();
        let all = self.remote.bounded(|d| self.list_all(d)).await?;
        Ok(all.into_iter().find(|i| i.id == id))
    }

    fn warnings(&self) -> Vec<String> {
        self.remote.warnings()
    }
}
