//! Where requests, the audit chain and the alert outbox live. Every lifecycle
//! transition is one `commit`: new state (optimistic version check), its audit
//! event and its alert rows, atomically.

pub mod sqlite;

use crate::audit::AuditRecord;
use crate::domain::{Event, Request, RequestId, State};
use chrono::{DateTime, Utc};

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else committed a transition first; reload and decide again.
    #[error("{0} changed while you were acting on it; try again")]
    Conflict(RequestId),
    #[error("role {role} is locked: {by} is {state}")]
    Locked {
        role: String,
        by: RequestId,
        state: State,
    },
    #[error("{0} does not exist")]
    NotFound(RequestId),
    #[error("store: {0}")]
    Db(String),
    #[error("store schema version {found} is newer than this breakglass understands ({supported}); upgrade breakglass")]
    TooNew { found: i64, supported: i64 },
}

/// What an audit row records: a transition (`Note::of(event)`) or an event that
/// changed no state (`from == to`, or no request at all).
#[derive(Debug, Clone)]
pub struct Note<'a> {
    pub action: &'a str,
    pub actor: &'a str,
    pub from: Option<State>,
    pub to: Option<State>,
    pub detail: &'a serde_json::Value,
}

impl<'a> Note<'a> {
    pub fn of(e: &'a Event) -> Self {
        Note {
            action: e.action,
            actor: &e.actor,
            from: e.from,
            to: Some(e.to),
            detail: &e.detail,
        }
    }
}

/// An alert to queue in the outbox with the transition that raised it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertDraft {
    pub kind: String,
    pub severity: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    /// Stable across retries so receivers can de-duplicate.
    pub event_id: String,
    pub payload: serde_json::Value,
    pub attempts: u32,
    /// Names of the sinks that already took it.
    pub delivered_to: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    pub states: Option<Vec<State>>,
    pub role: Option<String>,
    pub requester: Option<String>,
    pub limit: Option<usize>,
}

pub trait Store: Send + Sync {
    /// Human description for status lines ("sqlite /var/lib/...").
    fn describe(&self) -> String;

    /// Inserts a new request (its id is assigned here) with its creation event.
    /// Refused with `Locked` when the role is locked.
    fn insert_request(
        &self,
        req: &Request,
        event: &Event,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<Request, StoreError>;

    /// Commits a transition. `req.version` must be the version it was loaded at;
    /// the stored copy gets version + 1. A transition into Granting also checks,
    /// in the same transaction, that no other request holds the role.
    fn commit(
        &self,
        req: &Request,
        event: &Event,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<Request, StoreError>;

    fn get(&self, id: RequestId) -> Result<Option<Request>, StoreError>;
    fn list(&self, q: &Query) -> Result<Vec<Request>, StoreError>;
    /// The request that holds the role locked, if any.
    fn role_lock(&self, role: &str) -> Result<Option<(RequestId, State)>, StoreError>;

    /// Sequence number and hash of the last audit event (0 and the genesis hash when
    /// empty). Cheap: front ends poll it to notice changes made by other processes.
    fn audit_head(&self) -> Result<(i64, String), StoreError>;
    /// Audit events with `seq >= from`, in stored order.
    fn audit_range(&self, from: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;

    fn outbox_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxRow>, StoreError>;
    fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Some sink refused: remember which ones took it, retry the rest at `retry_at`.
    fn outbox_failed(
        &self,
        id: i64,
        delivered_to: &[String],
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    fn outbox_undelivered(&self) -> Result<u64, StoreError>;
    /// Undelivered alerts raised by events of one request.
    fn outbox_undelivered_for(&self, request: RequestId) -> Result<u64, StoreError>;

    /// Appends an audit event (and its alerts) that changes no request: a refused
    /// attempt worth the SOC's eye, for instance.
    fn append_note(
        &self,
        request: Option<RequestId>,
        note: &Note,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// Fixed-precision RFC 3339 so stored instants compare as text and hash stably.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
