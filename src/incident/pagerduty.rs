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
use super::remote::{self, Auth, Paged, Remote, Reply, PAGE};
use super::*;
use serde_json::Value;

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

    /// The listing, from the pages `fetch(offset)` answers (see `remote::list_pages`).
    pub(crate) async fn list_pages<F, Fut>(&self, fetch: F) -> Result<Vec<Incident>, SourceError>
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = Result<Value, SourceError>>,
    {
        remote::list_pages(self, fetch).await
    }
}

/// `more` says whether there is a next page; it starts the reply's `limit` on.
impl Paged for PagerDutySource {
    const ITEMS: &'static str = "incidents";
    const ITEM_ID: &'static str = "incident_number";

    fn remote(&self) -> &Remote {
        &self.remote
    }

    fn read_item(&self, item: &Value) -> Result<Incident, String> {
        self.parse(item)
    }

    fn next_offset(
        reply: &Value,
        offset: usize,
        len: usize,
        warnings: &mut Vec<String>,
    ) -> Option<usize> {
        if !reply.get("more").and_then(Value::as_bool).unwrap_or(false) {
            return None;
        }
        if len == 0 {
            warnings.push("PagerDuty said there were more pages but sent an empty one".into());
            return None;
        }
        let step = reply
            .get("limit")
            .and_then(Value::as_u64)
            .filter(|l| *l > 0)
            .map(|l| l as usize)
            .unwrap_or(len);
        // The step is the server's word: it must not wrap the offset around.
        let next = offset.checked_add(step);
        if next.is_none() {
            warnings.push(format!(
                "PagerDuty's paging limit {step} is out of range; stopped there"
            ));
        }
        next
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
