//! Where requests, the audit chain and the alert outbox live. Every lifecycle
//! transition is one `commit`: new state (optimistic version check), its audit
//! event and its alert rows, atomically.

pub mod config;
pub mod migrate;
pub mod postgres;
pub mod sqlite;

use crate::audit::AuditRecord;
use crate::domain::time::ts;
use crate::domain::{AuditAction, Event, Request, RequestId, State};
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

pub use postgres::PostgresStore;
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
    /// A problem breakglass words itself (a missing setting, a refused copy).
    #[error("store: {0}")]
    Db(String),
    /// The database driver failed; its error is kept as the source.
    #[error("store: {message}")]
    Driver {
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("store schema version {found} is newer than this breakglass understands ({supported}); upgrade breakglass")]
    TooNew { found: i64, supported: i64 },
}

/// What an audit row records: a transition (`Note::of(event)`) or an event that
/// changed no state (`from == to`, or no request at all).
#[derive(Debug, Clone)]
pub struct Note<'a> {
    pub action: AuditAction,
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

/// An audit event written under another database login than its actor's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginMismatch {
    pub seq: i64,
    pub actor: String,
    pub db_login: String,
}

/// An alert to queue in the outbox with the transition that raised it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertDraft {
    /// Its severity follows from the kind.
    pub kind: crate::alert_vocab::AlertKind,
    pub payload: serde_json::Value,
}

/// One transition of a batch (`Store::commit_batch`): the request as loaded,
/// changed by its lifecycle step, with the step's event and alerts.
#[derive(Debug, Clone)]
pub struct Transition {
    pub request: Request,
    pub event: Event,
    pub alerts: Vec<AlertDraft>,
}

/// A batch's outcome: one result per transition, in order.
pub type BatchResult = Vec<Result<Request, StoreError>>;

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

/// Work that one sweeper replica takes on at a time: retrying a revocation, or
/// delivering one outbox row. A claim lasts until its `until` (the lease); a
/// replica that dies holding one leaves it to the others once it runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimKey {
    Request(RequestId),
    Outbox(i64),
}

impl ClaimKey {
    /// How the claim is keyed in the store's `claims` table.
    pub fn as_key(&self) -> String {
        match self {
            ClaimKey::Request(id) => format!("request:{}", id.0),
            ClaimKey::Outbox(id) => format!("outbox:{id}"),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
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

    /// Commits several transitions in one transaction, each as `commit` would
    /// (version check, new row, audit event on the chain, alert rows), so a
    /// sweeper's batch costs one durable commit and one turn of the chain's lock.
    /// Each transition gets its own result: a stale version (`Conflict`), a
    /// missing request or a second transition of the same request is refused
    /// alone and the others commit; so is (`Conflict`) a request another
    /// transaction is changing at that moment, which is not waited for; any other failure fails the whole batch (the
    /// outer error). Grant intents are refused here (their role lock is checked
    /// in `commit`, one at a time). The default commits them one by one.
    fn commit_batch(
        &self,
        batch: &[Transition],
        now: DateTime<Utc>,
    ) -> Result<BatchResult, StoreError> {
        Ok(batch
            .iter()
            .map(|t| self.commit(&t.request, &t.event, &t.alerts, now))
            .collect())
    }

    fn get(&self, id: RequestId) -> Result<Option<Request>, StoreError>;
    /// The earliest of the deadlines kept in indexed columns: `expires_at` of an
    /// Active request, `decide_by` of a Pending or Approved one. No row is
    /// loaded: the sweeper asks after every change it hears of.
    fn earliest_deadline(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    fn list(&self, q: &Query) -> Result<Vec<Request>, StoreError>;
    /// The request that holds the role locked at `now`, if any (an auto-approved
    /// request awaiting certification does not until its `certify_by`).
    fn role_lock(
        &self,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(RequestId, State)>, StoreError>;
    /// How many of `role`'s requests (only `requester`'s, when named) were
    /// granted (their `grant.active` event) at or after `since`: routine use.
    fn activations_since(
        &self,
        role: &str,
        requester: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError>;

    /// Sequence number and hash of the last audit event (0 and the genesis hash when
    /// empty). Cheap: front ends poll it to notice changes made by other processes.
    fn audit_head(&self) -> Result<(i64, String), StoreError>;
    /// Audit events with `seq >= from`, in stored order.
    fn audit_range(&self, from: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
    /// The audit events of one request with `action`, oldest first.
    fn request_events(
        &self,
        id: RequestId,
        action: AuditAction,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Who wrote a request's events of one kind: (actor, database login) in
    /// order; the login is None where the store does not record one.
    fn event_logins(
        &self,
        id: RequestId,
        action: AuditAction,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        Ok(self
            .request_events(id, action)?
            .into_iter()
            .map(|r| (r.actor, None))
            .collect())
    }
    /// Team mode: the first events whose actor (a person, not a `breakglass-*`
    /// component) is not the database login that wrote them, skipping rows
    /// copied in by `store migrate`. Stores without logins have none.
    fn login_mismatches(&self, _limit: usize) -> Result<Vec<LoginMismatch>, StoreError> {
        Ok(vec![])
    }
    /// The newest audit event with `action` that names no request and whose
    /// detail names `role`: a decision about the role itself (`role.recertified`).
    fn last_role_event(
        &self,
        role: &str,
        action: AuditAction,
    ) -> Result<Option<AuditRecord>, StoreError>;

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
    /// The earliest `next_attempt_at` of an undelivered alert (due now or later).
    fn outbox_next_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Undelivered alerts raised by events of one request, but for its
    /// approval notices: they are for people, and a pager that cannot be
    /// reached does not hold back access the SOC was told of.
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

    /// Takes `key` for `owner` until `until`, atomically: true when it was free,
    /// its previous claim ran out (`until <= now`), or `owner` already holds it.
    /// An outbox claim also requires the row to be undelivered and due at `now`,
    /// so a row another replica delivered meanwhile is never claimed again.
    fn claim(
        &self,
        key: ClaimKey,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Gives a claim back early (no-op unless `owner` holds it).
    fn release(&self, key: ClaimKey, owner: &str) -> Result<(), StoreError>;
    /// Who holds `key`, and until when; a claim that ran out is still shown
    /// until someone takes it or its holder releases it.
    fn claim_holder(&self, key: ClaimKey) -> Result<Option<(String, DateTime<Utc>)>, StoreError>;
    /// Takes `key` for `owner` from `gone`, a holder the caller knows is dead,
    /// before its claim runs out. Wins only while `gone` still holds it, so of
    /// several replicas exactly one takes it over; an outbox claim has the same
    /// conditions as in `claim` (undelivered, due at `now`).
    fn take_over(
        &self,
        key: ClaimKey,
        gone: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Blocks until the audit head differs from `since_head` or `timeout` passes;
    /// true when it changed. Call it off the async runtime (`spawn_blocking`). The
    /// default polls `audit_head` every 200 ms, which is cheap for a local file;
    /// shared stores override it with a push (PostgreSQL: LISTEN/NOTIFY).
    fn wait_for_change(&self, since_head: i64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.audit_head().is_ok_and(|h| h.0 != since_head) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(200)));
        }
    }

    /// The database login this store is connected as, for stores that have one
    /// (PostgreSQL's `session_user`); `None` for a local file.
    fn session_user(&self) -> Option<String> {
        None
    }
}

/// A request row exactly as stored (`breakglass store migrate` copies these).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRow {
    pub id: i64,
    pub role: String,
    pub state: String,
    pub version: i64,
    pub requester: String,
    pub expires_at: Option<String>,
    pub decide_by: String,
    pub updated_at: String,
    /// The request as JSON text, verbatim.
    pub data: String,
}

/// An outbox row exactly as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    pub id: i64,
    pub event_id: String,
    pub audit_seq: i64,
    pub created_at: String,
    pub payload: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub delivered_at: Option<String>,
    pub last_error: Option<String>,
    pub delivered_to: String,
}

/// The outbox row for the `index`-th alert raised by audit event `rec`: its stable
/// event id and its payload (the native alert schema). Both stores write exactly this.
pub fn outbox_entry(
    request_id: Option<RequestId>,
    rec: &crate::audit::AuditRecord,
    index: usize,
    a: &AlertDraft,
) -> (String, serde_json::Value) {
    let event_id = match request_id {
        Some(r) => format!("{r}-{}-{index}", rec.seq),
        None => format!("EV-{}-{index}", rec.seq),
    };
    let mut data = a.payload.clone();
    if let Some(r) = request_id {
        crate::alert_vocab::complete(a.kind, &mut data, &r.to_string());
    }
    crate::sanitize::json_strings(&mut data, crate::audit::MAX_STORED_STRING);
    let payload = serde_json::json!({
        "schema": crate::alert_vocab::SCHEMA,
        "event_id": event_id,
        "kind": a.kind.as_str(),
        "severity": a.kind.severity().as_str(),
        "audit_seq": rec.seq,
        "audit_hash": rec.hash,
        "at": rec.at,
        "data": data,
    });
    (event_id, payload)
}

/// `Store::earliest_deadline` in SQL both stores run (instants are stored as
/// fixed-width RFC 3339 text in UTC, so the text order is the time order).
pub(crate) const EARLIEST_DEADLINE_SQL: &str = "SELECT MIN(t) FROM (
    SELECT MIN(expires_at) AS t FROM requests WHERE state = 'active'
    UNION ALL
    SELECT MIN(decide_by) AS t FROM requests WHERE state IN ('pending', 'approved')
) AS deadlines";

/// A stored instant (written with `ts`) read back.
pub(crate) fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Db(format!("a stored instant `{s}` does not parse: {e}")))
}

impl StoreError {
    /// A grant intent offered to `commit_batch`.
    pub(crate) fn intent_in_batch(id: RequestId) -> Self {
        StoreError::Db(format!(
            "{id}: a grant intent is committed alone (its role lock), not in a batch"
        ))
    }

    /// A driver error, worded as the driver words it, kept as the source.
    pub fn driver(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Driver {
            message: e.to_string(),
            source: Box::new(e),
        }
    }
}

use crate::audit::evidence::LogError;

impl crate::audit::evidence::AuditLog for dyn Store + '_ {
    fn audit_head(&self) -> Result<(i64, String), LogError> {
        Ok(Store::audit_head(self)?)
    }
    fn audit_range(&self, from: i64, limit: usize) -> Result<Vec<AuditRecord>, LogError> {
        Ok(Store::audit_range(self, from, limit)?)
    }
    fn request_events(
        &self,
        id: RequestId,
        action: AuditAction,
    ) -> Result<Vec<AuditRecord>, LogError> {
        Ok(Store::request_events(self, id, action)?)
    }
}
