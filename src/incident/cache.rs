//! A short cache in front of any source: the console's incident list opens at
//! once, and the lookups one request makes (request, extension, the sweeper's
//! resolved check) do not each call the API.
//!
//! - A listing is reused for `ttl`, failures included, so a source that is down
//!   costs one timeout per `ttl`, not one per screen refresh. Concurrent
//!   listings wait for the one in flight instead of calling the API again.
//! - `get` answers from an earlier `get` of the same id within `ttl`, or from a
//!   fresh listing that contains the id; otherwise it asks the source. Failed
//!   lookups are not cached.

use super::*;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_ENTRIES: usize = 4096;

type Listing = (Instant, Result<Vec<Incident>, SourceError>);

pub struct CachedSource {
    inner: Arc<dyn IncidentSource>,
    ttl: Duration,
    list: tokio::sync::Mutex<Option<Listing>>,
    items: Mutex<HashMap<String, (Instant, Option<Incident>)>>,
}

impl CachedSource {
    pub fn new(inner: Arc<dyn IncidentSource>, ttl: Duration) -> Self {
        CachedSource {
            inner,
            ttl,
            list: tokio::sync::Mutex::new(None),
            items: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() < self.ttl
    }
}

#[async_trait::async_trait]
impl IncidentSource for CachedSource {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn list_open(&self) -> Result<Vec<Incident>, SourceError> {
        // Held across the call on purpose: one listing in flight per source.
        let mut g = self.list.lock().await;
        if let Some((at, r)) = g.as_ref() {
            if self.fresh(*at) {
                return r.clone();
            }
        }
        let r = self.inner.list_open().await;
        *g = Some((Instant::now(), r.clone()));
        r
    }

    async fn get(&self, id: &str) -> Result<Option<Incident>, SourceError> {
        let key = id.trim().to_string();
        if let Ok(items) = self.items.lock() {
            if let Some((at, v)) = items.get(&key) {
                if self.fresh(*at) {
                    return Ok(v.clone());
                }
            }
        }
        if let Ok(g) = self.list.try_lock() {
            if let Some((at, Ok(list))) = g.as_ref() {
                if self.fresh(*at) {
                    if let Some(i) = list.iter().find(|i| i.id == key) {
                        return Ok(Some(i.clone()));
                    }
                }
            }
        }
        let r = self.inner.get(&key).await?;
        if let Ok(mut items) = self.items.lock() {
            if items.len() >= MAX_ENTRIES {
                let ttl = self.ttl;
                items.retain(|_, (at, _)| at.elapsed() < ttl);
                if items.len() >= MAX_ENTRIES {
                    items.clear();
                }
            }
            items.insert(key, (Instant::now(), r.clone()));
        }
        Ok(r)
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }
}
