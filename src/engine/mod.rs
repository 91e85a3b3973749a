//! Orchestration: store + backends + incident sources + alerts + clock. Front ends
//! (CLI, TUI) call these methods with the acting identity; no business rule lives
//! outside `domain` and here.

mod actions;
mod alert_delivery;
mod approval_notice;
mod decisions;
mod drills;
mod evidence;
mod incident_checks;
mod invalidations;
mod logins;
mod recertification;
mod recordings;
mod recovery;
mod revocations;
mod schedule;
mod signatures;
mod sweeper;
pub mod vendor_session;
mod views;

pub use actions::{IncidentChoice, RequestInput};
pub use decisions::Decision;
pub use recertification::RoleCertification;
pub use recordings::{Recording, ShellSession};
pub use recovery::RecoveryReport;
pub use views::{describe_people, QueueItem, RequestView, RolePeople, RoleView};

use crate::alert::{AlertKind, AlertRules, Sink};
use crate::backend::Backend;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, RecoveryConfig, StoreConfig, StoreIdentity};
use crate::domain::{
    lifecycle, AuditAction, Event, Owner, Policy, Refusal, RefusalKind, Request, RequestId,
    RolePolicy,
};
use crate::incident::{IncidentSource, SourceError};
use crate::store::{AlertDraft, PostgresStore, SqliteStore, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    NotFound(String),
    #[error("role {role} is locked: {reason}")]
    Locked { role: String, reason: String },
    #[error("backend {backend}: {message}")]
    Backend {
        backend: String,
        message: String,
        /// What the backend said, when it said something.
        #[source]
        source: Option<crate::backend::BackendError>,
    },
    #[error("{0}")]
    Source(#[from] SourceError),
    #[error("{0}")]
    Store(#[source] StoreError),
    #[error("{0}")]
    Config(String),
    /// An evidence bundle could not be written (exit code as `Config`).
    #[error(transparent)]
    Evidence(#[from] crate::audit::evidence::EvidenceError),
    /// The checkpoint key could not be loaded (exit code as `Config`).
    #[error(transparent)]
    Checkpoint(#[from] crate::audit::checkpoint::CheckpointError),
}

impl Error {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Refused(r) if r.kind == RefusalKind::Input => crate::exit::USAGE,
            Error::Refused(_) | Error::Locked { .. } => crate::exit::REFUSED,
            Error::NotFound(_) => crate::exit::USAGE,
            Error::Backend { .. } | Error::Source(_) => crate::exit::BACKEND,
            Error::Store(_) => crate::exit::FAILURE,
            Error::Config(_) | Error::Evidence(_) | Error::Checkpoint(_) => crate::exit::USAGE,
        }
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::Refused(r)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => Error::NotFound(format!("{id} does not exist")),
            other => Error::Store(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Actor names for transitions no person made.
pub const SWEEPER: &str = "breakglass-sweeper";
pub const RECOVERY: &str = "breakglass-recovery";

pub struct Engine {
    policy: Policy,
    store: Arc<dyn Store>,
    backends: BTreeMap<String, Arc<dyn Backend>>,
    sources: Vec<Arc<dyn IncidentSource>>,
    sinks: Vec<Arc<dyn Sink>>,
    alerts: AlertRules,
    clock: Arc<dyn Clock>,
    recovery: RecoveryConfig,
    owner: Owner,
    /// The sweeper's bounded "is this incident resolved?" answers (incident_checks.rs).
    incident_checks: incident_checks::IncidentChecks,
    /// Who acts: the OS account, or the store's database login (`[store] identity`).
    identity: StoreIdentity,
    /// This engine's name in sweeper claims: host, pid and a random tag, so two
    /// engines in one process (or a reused pid) never share a claim.
    claimant: String,
    /// What the store said of itself when the engine was built (in-memory values
    /// of the store's, read once so they need no trip across the boundary).
    store_description: String,
    session_user: Option<String>,
    /// Where vendor sessions' recordings are kept (`data_dir/recordings`).
    recordings_dir: Option<std::path::PathBuf>,
}

/// The parts an engine is made of; tests assemble their own.
pub struct Parts {
    pub policy: Policy,
    pub store: Arc<dyn Store>,
    pub backends: BTreeMap<String, Arc<dyn Backend>>,
    pub sources: Vec<Arc<dyn IncidentSource>>,
    pub sinks: Vec<Arc<dyn Sink>>,
    pub alerts: AlertRules,
    pub clock: Arc<dyn Clock>,
    pub recovery: RecoveryConfig,
}

pub use crate::identity::this_host;
/// Which requests to list (`Engine::requests`).
pub use crate::store::Query;

impl Engine {
    pub fn new(p: Parts) -> Self {
        Engine {
            store_description: p.store.describe(),
            session_user: p.store.session_user(),
            policy: p.policy,
            store: p.store,
            backends: p.backends,
            sources: p.sources,
            sinks: p.sinks,
            alerts: p.alerts,
            clock: p.clock,
            recovery: p.recovery,
            owner: Owner {
                host: this_host(),
                pid: std::process::id(),
            },
            incident_checks: Default::default(),
            identity: StoreIdentity::Os,
            recordings_dir: None,
            claimant: format!(
                "{}:{}:{}",
                this_host(),
                std::process::id(),
                hex::encode(rand::random::<[u8; 4]>())
            ),
        }
    }

    /// Opens the store and builds the backends, sources and sinks a config names.
    pub fn from_config(cfg: &Config) -> Result<Self> {
        Ok(Engine::new(Parts::from_config(cfg)?)
            .with_identity(cfg.identity)
            .with_recordings(cfg.data_dir().join("recordings")))
    }

    /// Where vendor sessions' recordings are kept.
    pub fn with_recordings(mut self, dir: std::path::PathBuf) -> Self {
        self.recordings_dir = Some(dir);
        self
    }

    /// Where the acting identity comes from (`[store] identity`).
    pub fn with_identity(mut self, identity: StoreIdentity) -> Self {
        self.identity = identity;
        self
    }

    /// Who is acting: a demo persona (`--as`, demo mode only), else the store's
    /// database login with `identity = "database"`, else the OS account.
    pub fn whoami(
        &self,
        as_persona: Option<&str>,
    ) -> std::result::Result<String, crate::identity::IdentityError> {
        match self.identity {
            StoreIdentity::Os => crate::identity::resolve(&self.policy, as_persona),
            StoreIdentity::Database => crate::identity::resolve_database(
                &self.policy,
                as_persona,
                self.session_user.clone(),
            ),
        }
    }
}

impl Parts {
    /// The parts a config names, on the system clock; tests swap pieces out.
    pub fn from_config(cfg: &Config) -> Result<Self> {
        let store: Arc<dyn Store> = match &cfg.store {
            StoreConfig::Sqlite { path } => Arc::new(SqliteStore::open(path)?),
            StoreConfig::Postgres(pg) => Arc::new(PostgresStore::from_config(pg)?),
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Ok(Parts {
            policy: cfg.policy.clone(),
            store,
            backends: cfg
                .backends
                .iter()
                .map(|(k, v)| (k.clone(), crate::backend::build(v, clock.clone())))
                .collect(),
            sources: cfg
                .incident_sources
                .iter()
                .map(crate::incident::build)
                .collect(),
            sinks: cfg.alert_sinks.iter().map(crate::alert::build).collect(),
            alerts: AlertRules {
                signer: match &cfg.checkpoint_key {
                    None => None,
                    Some(p) => Some(Arc::new(crate::audit::checkpoint::Signer::load(p)?)),
                },
                ..cfg.alert_rules.clone()
            },
            clock,
            recovery: cfg.recovery.clone(),
        })
    }
}

impl Engine {
    pub fn checkpoint_signer(&self) -> Option<&crate::audit::checkpoint::Signer> {
        self.alerts.signer.as_deref()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    /// "sqlite /var/lib/..." for status lines.
    pub fn store_description(&self) -> String {
        self.store_description.clone()
    }

    /// The async boundary (ARCHITECTURE.md): every store call the engine makes
    /// goes through here, and only the engine calls the store. The stores are
    /// blocking libraries (rusqlite, the synchronous postgres client), so the
    /// call runs on tokio's blocking pool: a slow store (SQLite's 15 s busy
    /// timeout, a far database) holds a pool thread, never a runtime worker.
    /// `f` owns what it uses (clone or move arguments in), so it is 'static.
    async fn db<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(r) => r,
            // A panic in the store stays a panic, as if the call had been direct.
            Err(e) => match e.try_into_panic() {
                Ok(p) => std::panic::resume_unwind(p),
                Err(e) => Err(StoreError::Db(format!(
                    "the store call did not finish: {e}"
                ))),
            },
        }
    }

    /// The newest audit event's (seq, hash); (0, genesis) for an empty log.
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        Ok(self.db(|s| s.audit_head()).await?)
    }
    /// Up to `limit` audit events from `from` on, in order (for streaming exports).
    pub async fn audit_events(
        &self,
        from: i64,
        limit: usize,
    ) -> Result<Vec<crate::audit::AuditRecord>> {
        Ok(self.db(move |s| s.audit_range(from, limit)).await?)
    }
    /// The last `n` audit events, oldest first.
    pub async fn audit_tail(&self, n: usize) -> Result<Vec<crate::audit::AuditRecord>> {
        Ok(self
            .db(move |s| {
                let (head, _) = s.audit_head()?;
                let from = (head - n as i64 + 1).max(1);
                s.audit_range(from, n)
            })
            .await?)
    }
    /// Alerts raised but not yet delivered to every sink.
    pub async fn undelivered_alerts(&self) -> Result<u64> {
        Ok(self.db(|s| s.outbox_undelivered()).await?)
    }
    /// Waits until the log moves past `since_head` (any commit, from any process:
    /// NOTIFY on PostgreSQL, a cheap poll on SQLite) or `timeout` passes; true on
    /// a change. The wait blocks a pool thread, never the runtime.
    pub async fn wait_for_change(&self, since_head: i64, timeout: std::time::Duration) -> bool {
        self.db(move |s| Ok(s.wait_for_change(since_head, timeout)))
            .await
            .unwrap_or(false)
    }
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn role(&self, name: &str) -> Result<&RolePolicy> {
        self.policy.roles.get(name).ok_or_else(|| {
            Error::NotFound(format!(
                "role `{name}` is not in the policy; roles are: {}",
                self.policy
                    .roles
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    fn backend(&self, role: &RolePolicy) -> Result<&Arc<dyn Backend>> {
        self.backends
            .get(&role.backend)
            .ok_or_else(|| Error::Backend {
                backend: role.backend.clone(),
                message: "is not configured".into(),
                source: None,
            })
    }

    pub async fn load(&self, id: RequestId) -> Result<Request> {
        self.db(move |s| s.get(id))
            .await?
            .ok_or_else(|| Error::NotFound(format!("{id} does not exist")))
    }

    /// Applies a pure transition and commits it, reloading and re-deciding when a
    /// concurrent process committed first. Exactly one of the racers' transitions
    /// lands per version; a racer whose transition no longer applies is refused.
    /// The load and the commit cross the store boundary; `f` (the pure lifecycle
    /// step) runs here.
    async fn transition(
        &self,
        id: RequestId,
        alerts: impl Fn(&Request, &Event) -> Vec<AlertDraft>,
        f: impl Fn(&mut Request, &RolePolicy, DateTime<Utc>) -> Result<Event, Refusal>,
    ) -> Result<Request> {
        let mut tries = 0;
        loop {
            let mut req = self.load(id).await?;
            let role = self.role(&req.role)?;
            let now = self.clock.now();
            let event = f(&mut req, role, now)?;
            let mut drafts = alerts(&req, &event);
            if self.pages_approvers(&req.role) {
                drafts.extend(approval_notice::draft(&req, role, &event));
            }
            drafts.retain(|a| self.alerts.wants(a.kind));
            match self.db(move |s| s.commit(&req, &event, &drafts, now)).await {
                Ok(r) => return Ok(r),
                Err(StoreError::Conflict(_)) if tries < 20 => {
                    tries += 1;
                    continue;
                }
                Err(StoreError::Locked { role, by, state }) => {
                    return Err(Error::Locked {
                        reason: self.lock_reason(by, state).await,
                        role,
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Engine {
    /// Whether a configured sink takes this role's approval notices: with none,
    /// none are queued (they would wait for no one).
    fn pages_approvers(&self, role: &str) -> bool {
        self.sinks
            .iter()
            .any(|s| s.takes(AlertKind::ApprovalRequest, Some(role)))
    }
}

pub(crate) fn no_alerts(_: &Request, _: &Event) -> Vec<AlertDraft> {
    vec![]
}

/// The alert every SOC sees for a transition, or none.
pub(crate) fn alert(kind: AlertKind, req: &Request, event: &Event) -> Vec<AlertDraft> {
    vec![AlertDraft {
        kind,
        payload: serde_json::json!({
            "request_id": req.id.to_string(),
            "role": req.role,
            "incident": req.incident.label(),
            "condition": req.condition,
            "reason": req.reason,
            "requester": req.requester,
            "approvers": req.approvers(),
            "state": req.state,
            "expires_at": req.expires_at(),
            "actor": event.actor,
            "action": event.action,
            "detail": event.detail,
        }),
    }]
}

pub(crate) fn refusal(kind: RefusalKind, message: impl Into<String>) -> Error {
    let reason = match kind {
        RefusalKind::Input => lifecycle::Reason::BadField,
        RefusalKind::State => lifecycle::Reason::WrongState,
        RefusalKind::Policy => lifecycle::Reason::Other,
    };
    Error::Refused(Refusal::new(kind, reason, message))
}

/// `refusal` with a reason programs can tell apart.
pub(crate) fn refusal_because(
    kind: RefusalKind,
    reason: lifecycle::Reason,
    message: impl Into<String>,
) -> Error {
    Error::Refused(Refusal::new(kind, reason, message))
}

pub(crate) fn lifecycle_human(secs: i64) -> String {
    crate::domain::time::human(secs)
}
