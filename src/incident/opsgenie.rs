//! Opsgenie, Incident API v1.
//!
//! - list: `GET {base}/v1/incidents?query=status:open&limit=100&offset=N`. The
//!   next page is `paging.next`; only its `offset` is taken, so the key is never
//!   sent to a host other than `base_url`. Without `paging`, a full page means
//!   there may be more.
//! - get: `GET {base}/v1/incidents/{id}?identifierType=tiny` for a tiny id
//!   (digits, as listed) or `identifierType=id` for the long id.
//! - header: `Authorization: GenieKey <$token_env>`.
//!
//! An incident's id is its `tinyId` (or `id`), the title its `message`, the
//! severity its `priority` (P1..P5), the link `links.web`. Status `open` is
//! open; `resolved` and `closed` are resolved.

use super::config::RemoteSource;
use super::remote::{self, Auth, Paged, Remote, Reply, PAGE};
use super::*;
use serde_json::Value;

const ACCEPT: &str = "application/json";

pub struct OpsgenieSource {
    remote: Remote,
}

impl OpsgenieSource {
    pub fn new(name: String, settings: RemoteSource) -> Self {
        OpsgenieSource {
            remote: Remote::new(name, "Opsgenie", settings, Auth::Opsgenie),
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
        let id = match item.get("tinyId") {
            None | Some(Value::Null) => remote::id(item, "id")?,
            Some(_) => remote::id(item, "tinyId")?,
        };
        let title = remote::text(item, "message", true)?.unwrap_or_default();
        let status = match remote::text(item, "status", true)?.as_deref() {
            Some("open") => IncidentStatus::Open,
            Some("resolved") | Some("closed") => IncidentStatus::Resolved,
            other => {
                return Err(format!(
                    "field `status` = \"{}\" is not open, resolved or closed",
                    crate::sanitize::line(other.unwrap_or_default(), 30)
                ))
            }
        };
        let url = match item.get("links") {
            None | Some(Value::Null) => None,
            Some(Value::Object(_)) => remote::text(item, "links.web", false)?,
            Some(_) => return Err("field `links` is not an object".into()),
        };
        Ok(remote::incident(
            &self.remote.name,
            id,
            &title,
            remote::text(item, "priority", false)?,
            status,
            remote::time(item, "createdAt")?,
            url,
        ))
    }

    fn list_url(&self, offset: usize) -> Result<reqwest::Url, SourceError> {
        self.remote.url(&format!(
            "{}/v1/incidents?query=status:open&limit={PAGE}&offset={offset}",
            self.base()
        ))
    }

    async fn list(&self, deadline: tokio::time::Instant) -> Result<Vec<Incident>, SourceError> {
        self.list_pages(|offset| async move {
            let url = self.list_url(offset)?;
            match self.remote.get_json(&url, ACCEPT, deadline).await? {
                Reply::Json(v) => Ok(v),
                Reply::NotFound => Err(self.remote.error(format!(
                    "{}/v1/incidents is not an Opsgenie API (HTTP 404); check base_url",
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

/// The next page starts at the offset in `paging.next`; without `paging`, a
/// full page means there may be more.
impl Paged for OpsgenieSource {
    const ITEMS: &'static str = "data";
    const ITEM_ID: &'static str = "tinyId";

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
        if len == 0 {
            return None;
        }
        match reply.get("paging") {
            Some(p) if p.is_object() => match p.get("next").and_then(Value::as_str) {
                None => None,
                Some(n) => match next_offset(n) {
                    Some(o) if o > offset => Some(o),
                    _ => {
                        warnings.push(
                            "Opsgenie's paging.next has no usable offset; stopped there".into(),
                        );
                        None
                    }
                },
            },
            // No paging block: a full page means there may be more (unless an
            // earlier paging.next put the offset at the end of usize).
            _ => (len >= PAGE).then(|| offset.checked_add(len)).flatten(),
        }
    }
}

/// The `offset` query parameter of a `paging.next` URL.
fn next_offset(next: &str) -> Option<usize> {
    let url = reqwest::Url::parse(next)
        .or_else(|_| reqwest::Url::parse("http://relative.invalid/").and_then(|b| b.join(next)))
        .ok()?;
    let offset = url
        .query_pairs()
        .find(|(k, _)| k == "offset")
        .and_then(|(_, v)| v.parse().ok());
    offset
}

#[async_trait::async_trait]
impl IncidentSource for OpsgenieSource {
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
        let kind = if id.chars().all(|c| c.is_ascii_digit()) {
            "tiny"
        } else {
            "id"
        };
        self.remote
            .bounded(|deadline| async move {
                let url = self.remote.url(&format!(
                    "{}/v1/incidents/{id}?identifierType={kind}",
                    self.base()
                ))?;
                match self.remote.get_json(&url, ACCEPT, deadline).await? {
                    Reply::NotFound => Ok(None),
                    Reply::Json(v) => match v.get("data") {
                        Some(item) => self.parse(item).map(Some).map_err(|m| {
                            self.remote
                                .error(format!("incident {id} could not be read: {m}"))
                        }),
                        None => Err(self
                            .remote
                            .error(format!("Opsgenie's reply for incident {id} has no `data`"))),
                    },
                }
            })
            .await
    }

    fn warnings(&self) -> Vec<String> {
        self.remote.warnings()
    }
}
