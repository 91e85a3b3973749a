//! Read-only views the front ends render.

use super::*;
use crate::domain::State;
use crate::incident::Incident;
use crate::store::Query;
use serde::Serialize;

/// Who acts next on a lock: the holder's requester writes the review, the
/// role's certifiers certify it (as the policy writes them, "@security").
#[derive(Debug, Clone, Default)]
pub struct LockClearers {
    pub requester: Option<String>,
    pub certifiers: Option<String>,
}

/// Why a role cannot be requested, in words an operator can act on, naming
/// who can clear it when that is known.
/// `overdue_since`: the holder is auto-approved and its certification deadline passed.
pub fn lock_reason(
    by: RequestId,
    state: State,
    overdue_since: Option<DateTime<Utc>>,
    clearers: &LockClearers,
) -> String {
    let by_whom = |who: &Option<String>| match who {
        Some(w) if !w.is_empty() => format!(" by {}", crate::sanitize::line(w, 120)),
        _ => String::new(),
    };
    if let Some(since) = overdue_since {
        let awaiting = match &clearers.certifiers {
            Some(w) if !w.is_empty() => format!(": awaiting {}", crate::sanitize::line(w, 120)),
            _ => String::new(),
        };
        return format!(
            "certification of {by} overdue since {}{awaiting}",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    match state {
        State::Granting => format!("{by} is being granted"),
        State::Active => format!("{by} holds active access"),
        State::Revoking => format!("{by} is being revoked"),
        State::Ended => format!(
            "awaiting the after-action review of {by}{}",
            by_whom(&clearers.requester)
        ),
        State::Reviewed => format!(
            "awaiting certification of {by}{}",
            by_whom(&clearers.certifiers)
        ),
        other => format!("{by} is {other}"),
    }
}

/// Who a policy list names, for people reading a screen: the list as written
/// and, when it names groups, the people they hold ("@sre-leads (bob, carol)").
pub fn describe_people(p: &crate::domain::policy::Principals) -> String {
    if p.anyone {
        return "anyone".into();
    }
    let written = p.describe();
    let people: Vec<&str> = p.users.iter().map(String::as_str).collect();
    if written.contains('@') && !people.is_empty() {
        format!("{written} ({})", people.join(", "))
    } else {
        written
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RoleView {
    pub name: String,
    pub description: String,
    pub backend: String,
    pub default_ttl_seconds: i64,
    pub max_ttl_seconds: i64,
    /// The shortest TTL a request may ask for.
    #[serde(default)]
    pub min_ttl_seconds: i64,
    /// TTLs the console offers as choices (default first, the ceiling last).
    #[serde(default)]
    pub ttl_presets_seconds: Vec<i64>,
    /// How many times one grant may be extended.
    #[serde(default)]
    pub max_extensions: u32,
    /// Ceiling on a grant's whole span, extensions included.
    #[serde(default)]
    pub max_total_seconds: i64,
    pub approvals_required: u32,
    pub conditions: Vec<String>,
    pub ticket_pattern: Option<String>,
    pub locked_by: Option<String>,
    pub lock_reason: Option<String>,
    /// Whether the asking user may request it.
    pub may_request: bool,
    pub vendor: bool,
    /// Whether an extension comes with a new credential to show (ssh-ca).
    #[serde(default)]
    pub extension_issues_credential: bool,
    /// Vendor roles: the last recertification (None: never certified).
    pub certified: Option<super::RoleCertification>,
    /// Who approves and who certifies, as `describe_people` words them.
    #[serde(default)]
    pub approvers: String,
    #[serde(default)]
    pub certifiers: String,
    /// Whether the asking user is among them.
    #[serde(default)]
    pub may_approve: bool,
    #[serde(default)]
    pub may_certify: bool,
    /// The people each part names, groups expanded (empty for `*`): what the
    /// demo persona switcher shows as each persona's part.
    #[serde(default)]
    pub people: RolePeople,
    /// Roles with `max_activations`: where a request by the asking user would
    /// stand now ("4th activation in 30 days"; beyond: one more approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routine: Option<crate::domain::routine::RoutineUse>,
    /// The last drill and whether one is overdue (`drill_every`).
    #[serde(default)]
    pub drill: crate::domain::drill::DrillStatus,
    /// `drill_every`, when the broker drills the role itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill_every_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct RolePeople {
    pub requesters: Vec<String>,
    pub approvers: Vec<String>,
    pub certifiers: Vec<String>,
    /// Service accounts the policy may approve (`automation`): never people.
    #[serde(default)]
    pub automation: Vec<String>,
}

/// A request seen by the person looking at it: what they may do with it now.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    #[serde(flatten)]
    pub request: Request,
    pub remaining_seconds: Option<i64>,
}

impl Engine {
    /// `lock_reason` for the holder `by`, loading it to tell an overdue
    /// certification of an auto-approved request from the ordinary cases.
    pub(crate) async fn lock_reason(&self, by: RequestId, state: State) -> String {
        let holder = self.db(move |s| s.get(by)).await.ok().flatten();
        let overdue = holder
            .as_ref()
            .and_then(|r| r.certification_overdue_since(self.clock.now()));
        let clearers = LockClearers {
            requester: holder.as_ref().map(|r| r.requester.clone()),
            certifiers: holder
                .as_ref()
                .and_then(|r| self.policy.roles.get(&r.role))
                .map(|role| role.certifiers.describe()),
        };
        lock_reason(by, state, overdue, &clearers)
    }

    pub async fn roles(&self, who: Option<&str>) -> Result<Vec<RoleView>> {
        let mut out = Vec::with_capacity(self.policy.roles.len());
        for r in self.policy.roles.values() {
            let (name, now) = (r.name.clone(), self.clock.now());
            let lock = self.db(move |s| s.role_lock(&name, now)).await?;
            // A request holding the role says more than a lapsed certification.
            let lock_reason = match lock {
                Some((id, st)) => Some(self.lock_reason(id, st).await),
                None => self.recertification_lock(r, false).await?,
            };
            out.push(RoleView {
                name: r.name.clone(),
                description: r.description.clone(),
                backend: r.backend.clone(),
                default_ttl_seconds: r.default_ttl,
                max_ttl_seconds: r.max_ttl,
                min_ttl_seconds: r.min_ttl,
                ttl_presets_seconds: r.ttl_presets(),
                max_extensions: r.max_extensions,
                max_total_seconds: r.max_total,
                approvals_required: r.approvals_required,
                conditions: r.conditions.clone(),
                ticket_pattern: r.ticket_pattern.as_ref().map(|p| p.as_str().to_string()),
                locked_by: lock.map(|(id, _)| id.to_string()),
                lock_reason,
                routine: self.routine_use(r, who, now).await?,
                drill: self.drill_status(&r.name).await?,
                drill_every_seconds: r.drill.every,
                may_request: who.is_some_and(|w| r.may_request(w)),
                vendor: r.vendor.is_some(),
                extension_issues_credential: self
                    .backend(r)
                    .is_ok_and(|b| b.extension_issues_credential()),
                certified: self.role_certification(r).await?,
                approvers: describe_people(&r.approvers),
                certifiers: describe_people(&r.certifiers),
                may_approve: who.is_some_and(|w| r.approvers.allows(w)),
                may_certify: who.is_some_and(|w| r.certifiers.allows(w)),
                people: RolePeople {
                    requesters: r.requesters.users.iter().cloned().collect(),
                    approvers: r.approvers.users.iter().cloned().collect(),
                    certifiers: r.certifiers.users.iter().cloned().collect(),
                    automation: r.automation.identities.users.iter().cloned().collect(),
                },
            });
        }
        Ok(out)
    }

    /// Open incidents from every source, each labelled with its source; a source
    /// that fails is reported beside the others' results ("incident source X is
    /// unavailable: ..."), not instead of them. Sources are asked concurrently,
    /// so one that hangs costs its own timeout, not the sum of all.
    pub async fn incidents(&self) -> (Vec<Incident>, Vec<SourceError>) {
        let mut all = vec![];
        let mut errors = vec![];
        let answers = futures::future::join_all(self.sources.iter().map(|s| s.list_open())).await;
        for answer in answers {
            match answer {
                Ok(mut v) => all.append(&mut v),
                Err(e) => errors.push(e),
            }
        }
        all.sort_by(|a, b| {
            a.severity
                .cmp(&b.severity)
                .then(b.opened_at.cmp(&a.opened_at))
        });
        (all, errors)
    }

    /// What sources skipped or cut in their last listing (malformed items, the
    /// cap), each prefixed with its source and cleaned for display.
    pub fn incident_warnings(&self) -> Vec<String> {
        self.sources
            .iter()
            .flat_map(|s| {
                s.warnings()
                    .into_iter()
                    .map(move |w| format!("{}: {}", s.name(), crate::sanitize::line(&w, 300)))
            })
            .collect()
    }

    pub fn view(&self, req: Request) -> RequestView {
        let remaining_seconds = req.remaining(self.clock.now()).map(|d| d.num_seconds());
        RequestView {
            request: req,
            remaining_seconds,
        }
    }

    pub async fn requests(&self, q: &Query) -> Result<Vec<Request>> {
        let q = q.clone();
        Ok(self.db(move |s| s.list(&q)).await?)
    }

    /// Verifies the whole audit chain, streaming it from the store; with
    /// `approval_signing` on, also every decision's signature. Hashing and
    /// signature checks are heavy: the whole pass runs on the blocking pool.
    pub async fn verify_audit(&self) -> Result<(u64, Option<crate::audit::Broken>)> {
        let signers = self
            .policy
            .approval_signing
            .as_ref()
            .map(|s| s.allowed_signers.clone());
        let database = self.identity == StoreIdentity::Database;
        Ok(self
            .db(move |s| verify_chain(s, signers.as_deref(), database))
            .await?)
    }
}

/// `Engine::verify_audit`, on the store it reads.
fn verify_chain(
    store: &dyn crate::store::Store,
    allowed_signers: Option<&std::path::Path>,
    database: bool,
) -> Result<(u64, Option<crate::audit::Broken>), StoreError> {
    let mut v = crate::audit::Verifier::default();
    let mut signed = allowed_signers.map(super::signatures::ChainSignatures::new);
    let mut from = 1;
    loop {
        let batch = store.audit_range(from, 10_000)?;
        if batch.is_empty() {
            // The chain holds; the rows must agree with it too.
            let broken = match super::logins::login_mismatch(store, database)? {
                Some(b) => Some(b),
                None => super::logins::row_mismatch(store, database)?,
            };
            return Ok((v.count, broken));
        }
        for r in &batch {
            if let Err(b) = v.push(r) {
                return Ok((v.count, Some(b)));
            }
            if let Some(Err(b)) = signed.as_mut().map(|s| s.check(r)) {
                return Ok((v.count - 1, Some(b)));
            }
            if let Err(b) = crate::audit::recordings::check_recording(r) {
                return Ok((v.count - 1, Some(b)));
            }
        }
        from = batch.last().map(|r| r.seq + 1).unwrap_or(from);
    }
}

/// A request in someone's queue, and why they cannot act on it when they cannot.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct QueueItem {
    pub request: Request,
    pub blocked: Option<String>,
    /// Vendor sessions: whether the asker already watched the recording
    /// (certifying needs it). None: no recorded session.
    pub recording_replayed: Option<bool>,
    /// Reviews: only the copied credentials' pending invalidation blocks
    /// certifying, so a certifier's recorded exception would certify it.
    #[serde(default)]
    pub exception_would_certify: bool,
}

impl Engine {
    /// Pending requests `who` approves or filed. The reason an item is blocked is
    /// the lifecycle's own refusal, so no rule is restated here.
    pub async fn approvals_for(&self, who: &str) -> Result<Vec<QueueItem>> {
        self.queue(
            State::Pending,
            |r, role| role.approvers.allows(who) || r.requester == who,
            |r, role, now| lifecycle::approve(r, role, who, None, Ok(None), now).map(|_| ()),
        )
        .await
    }

    /// Reviewed requests `who` certifies or filed.
    pub async fn reviews_for(&self, who: &str) -> Result<Vec<QueueItem>> {
        let mut items = self
            .queue(
                State::Reviewed,
                |r, role| role.certifiers.allows(who) || r.requester == who,
                |r, role, now| {
                    lifecycle::certify(r, role, who, "", None, Ok(None), now).map(|_| ())
                },
            )
            .await?;
        for q in items.iter_mut().filter(|q| q.request.vendor.is_some()) {
            q.recording_replayed = self.replayed_by(who, q.request.id).await?;
        }
        let now = self.clock.now();
        for q in items.iter_mut().filter(|q| q.blocked.is_some()) {
            let pending = q.request.invalidation.as_ref().is_some_and(|i| i.pending());
            if let (true, Some(role)) = (pending, self.policy.roles.get(&q.request.role)) {
                let mut r = q.request.clone();
                let why = Some("dry run");
                q.exception_would_certify =
                    lifecycle::certify(&mut r, role, who, "", why, Ok(None), now).is_ok();
            }
        }
        Ok(items)
    }

    async fn queue(
        &self,
        state: State,
        relevant: impl Fn(&Request, &RolePolicy) -> bool,
        dry_run: impl Fn(&mut Request, &RolePolicy, DateTime<Utc>) -> std::result::Result<(), Refusal>,
    ) -> Result<Vec<QueueItem>> {
        let now = self.clock.now();
        Ok(self
            .db(move |s| {
                s.list(&Query {
                    states: Some(vec![state]),
                    ..Default::default()
                })
            })
            .await?
            .into_iter()
            .filter_map(|r| {
                let role = self.policy.roles.get(&r.role)?;
                if !relevant(&r, role) {
                    return None;
                }
                let blocked = dry_run(&mut r.clone(), role, now).err().map(|e| e.message);
                Some(QueueItem {
                    request: r,
                    blocked,
                    recording_replayed: None,
                    exception_would_certify: false,
                })
            })
            .collect())
    }

    /// Problems with a request form's fields, for showing next to each field.
    pub fn check_fields(
        &self,
        role: &str,
        new: &lifecycle::NewRequest,
    ) -> Vec<(lifecycle::RequestField, String)> {
        match self.policy.roles.get(role) {
            Some(r) => lifecycle::field_problems(r, new),
            None => vec![(
                lifecycle::RequestField::Incident,
                format!("role `{role}` is not in the policy"),
            )],
        }
    }
}

impl Engine {
    /// Whether the stored chain still extends a signed checkpoint: it has at least
    /// as many events, and event #tree_size is the one that was signed (its hash
    /// commits to every event before it). Run after `verify_audit`.
    pub async fn check_checkpoint(
        &self,
        cp: &crate::audit::checkpoint::Checkpoint,
    ) -> Result<std::result::Result<(), String>> {
        let (size, _) = self.audit_head().await?;
        if size < cp.tree_size {
            return Ok(Err(format!(
                "the log holds {size} event(s) but the checkpoint of {} signed {}: events were cut off its end",
                cp.at, cp.tree_size
            )));
        }
        let at = self.audit_events(cp.tree_size, 1).await?;
        match at.first() {
            Some(r) if r.seq == cp.tree_size && r.hash == cp.head => Ok(Ok(())),
            _ => Ok(Err(format!(
                "event #{} is not the one the checkpoint of {} signed: the log was rewritten",
                cp.tree_size, cp.at
            ))),
        }
    }
}
