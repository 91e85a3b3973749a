//! PagerDuty, REST API v2.
//!
//! - list: `GET {base}/incidents?statuses[]=triggered&statuses[]=acknowledged&limit=100&offset=N`,
//!   following `more` (the next offset is this one plus the reply's `limit`) up
//!   to `max_incidents`.
//! - get: `GET {base}/incidents/{id}`, with the PagerDuty id (`PT4KHLK`) or the
//!   incident number shown in listings (`1234`, `#1234`).
//! - headers: `Authorization: Token token=<$token_env>`,
//!   `Accept: application/vnd.pagerduty+json;version=2`.
//!
//! An incident's id is its `incident_number` (what people say on a bridge call),
//! or its PagerDuty `id` when there is no number; the title is prefixed with
//! `service.summary`; the severity is `priority.summary`, else `urgency`.

use super::config::RemoteSource;
use super::remote::{self, Auth, Remote, Reply};
use super::*;
use serde_json::Value;
use std::collections::HashSet;

const PAGE: usize = 100;
const ACCEPT: &str = "application/vnd.pagerduty+json;version=2";

pub struct PagerDutySource {
    remote: Remote,
}

impl PagerDutySource {
    pub fn new(name: String, settings: RemoteSource) -> Self {
        PagerDutySource {
            remote: Remote::new(name, "PagerDuty", settings, Auth::PagerDuty),
        }
    }

    fn base(&self) -> &str {
        self.remote.settings.url.trim_end_matches('/')
    }

    /// One incident object, as listed or looked up.
    pub(crate) fn parse(&self, item: &Value) -> Result<Incident, String> {
        if !item.is_object() {
            return Err("is not an object".into());
        }
        let id = match item.get("incident_number") {
            None | Some(Value::Null) => remote::id(item, "id")?,
            Some(_) => remote::id(item, "incident_number")?,
        };
        let title = remote::text(item, "title", true)?.unwrap_or_default();
        let service = match item.get("service") {
            None | Some(Value::Null) => None,
            Some(Value::Object(_)) => remote::text(item, "service.summary", false)?,
            Some(_) => return Err("field `service` is not an object".into()),
        };
        let title = match service.filter(|s| !s.trim().is_empty()) {
            Some(s) => format!("{}: {title}", s.trim()),
            None => title,
        };
        let priority = match item.get("priority") {
            None | Some(Value::Null) => None,
            Some(Value::Object(_)) => remote::text(item, "priority.summary", false)?,
            Some(_) => return Err("field `priority` is not an object".into()),
        };
        let severity = match priority {
            Some(p) => Some(p),
            None => remote::text(item, "urgency", false)?,
        };
        let status = match remote::text(item, "status", true)?.as_deref() {
            Some("triggered") => IncidentStatus::Open,
            Some("acknowledged") => IncidentStatus::Acknowledged,
            Some("resolved") => IncidentStatus::Resolved,
            other => {
                return Err(format!(
                    "field `status` = \"{}\" is not triggered, acknowledged or resolved",
                    crate::sanitize::line(other.unwrap_or_default(), 30)
                ))
            }
        };
        Ok(remote::incident(
            &self.remote.name,
            id,
            &title,
            severity,
            status,
            remote::time(item, "created_at")?,
            remote::text(item, "html_url", false)?,
        ))
    }

    async fn list(&self, deadline: tokio::time::Instant) -> Result<Vec<Incident>, SourceError> {
        self.list_pages(|offset| async move {
            let url = self.remote.url(&format!(
                "{}/incidents?statuses[]=triggered&statuses[]=acknowledged&limit={PAGE}&offset={offset}",
                self.base()
            ))?;
            match self.remote.get_json(&url, ACCEPT, deadline).await? {
                Reply::Json(v) => Ok(v),
                Reply::NotFound => Err(self.remote.error(format!(
                    "{}/incidents is not a PagerDuty API (HTTP 404); check base_url",
                    self.base()
                ))),
            }
        })
        .await
    }

    /// The listing, from the pages `fetch(offset)` answers: the paging and
    /// per-item rules without the HTTP, so they can be fuzzed.
    pub(crate) async fn list_pages<F, Fut>(
        &self,
        mut fetch: F,
    ) -> Result<Vec<Incident>, SourceError>
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = Result<Value, SourceError>>,
    {
        let max = self.remote.settings.max_incidents;
        // Each page holds up to PAGE; one more page to learn whether there is more.
        let page_cap = max.div_ceil(PAGE) + 1;
        let mut items: Vec<Result<Incident, String>> = Vec::new();
        let mut seen = HashSet::new();
        let mut warnings = Vec::new();
        let mut truncated = false;
        let mut offset = 0usize;
        for page in 0.. {
            if page >= page_cap {
                truncated = true;
                break;
            }
            let v = fetch(offset).await?;
            let Some(list) = v.get("incidents").and_then(Value::as_array) else {
                return Err(self
                    .remote
                    .error("PagerDuty's reply has no `incidents` list; check base_url"));
            };
            for (i, item) in list.iter().enumerate() {
                if items.len() >= max {
                    truncated = true;
                    break;
                }
                let parsed = self.parse(item).map_err(|m| {
                    remote::item_problem(
                        "incidents",
                        offset.saturating_add(i),
                        item,
                        "incident_number",
                        m,
                    )
                });
                // Offset paging can repeat an item that moved between pages.
                if let Ok(inc) = &parsed {
                    if !seen.insert(inc.id.clone()) {
                        continue;
                    }
                    if !inc.status.is_open() {
                        continue;
                    }
                }
                items.push(parsed);
            }
            if truncated {
                break;
            }
            let more = v.get("more").and_then(Value::as_bool).unwrap_or(false);
            if !more {
                break;
            }
            if list.is_empty() {
                warnings.push("PagerDuty said there were more pages but sent an empty one".into());
                break;
            }
            let step = v
                .get("limit")
                .and_then(Value::as_u64)
                .filter(|l| *l > 0)
                .map(|l| l as usize)
                .unwrap_or(list.len());
            // The step is the server's word: it must not wrap the offset around.
            match offset.checked_add(step) {
                Some(next) => offset = next,
                None => {
                    warnings.push(format!(
                        "PagerDuty's paging limit {step} is out of range; stopped there"
                    ));
                    break;
                }
            }
        }
        self.remote.finish(items, truncated, warnings)
    }
}

#[async_trait::async_trait]
impl IncidentSource for PagerDutySource {
    fn name(&self) -> &str {
        &self.remote.name
    }

    async fn list_open(&self) -> Result<Vec<Incident>, SourceError> {
        self.remote.bounded(|deadline| self.list(deadline)).await
    }

    async fn get(&self, id: &str) -> Result<Option<Incident>, SourceError> {
        let id = id.trim().trim_start_matches('#');
        if !remote::path_safe(id) {
            return Ok(None);
        }
        self.remote
            .bounded(|deadline| async move {
                let url = self
                    .remote
                    .url(&format!("{}/incidents/{id}", self.base()))?;
                match self.remote.get_json(&url, ACCEPT, deadline).await? {
                    Reply::NotFound => Ok(None),
                    Reply::Json(v) => match v.get("incident") {
                        Some(item) => self.parse(item).map(Some).map_err(|m| {
                            self.remote
                                .error(format!("incident {id} could not be read: {m}"))
                        }),
                        None => Err(self.remote.error(format!(
                            "PagerDuty's reply for incident {id} has no `incident`"
                        ))),
                    },
                }
            })
            .await
    }

    fn warnings(&self) -> Vec<String> {
        self.remote.warnings()
    }
}
