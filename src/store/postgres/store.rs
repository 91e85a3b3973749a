//! The `Store` methods: requests, the audit chain, the outbox and sweeper
//! claims, each transition one transaction.

use super::connection::{plain, TxError, Q};
use super::*;
use crate::audit::{self, AuditRecord};
use ::postgres::types::ToSql;
use ::postgres::{GenericClient, Row};
use std::time::{Duration, Instant};

/// Advisory lock namespaces (the first key of the two-key form).
const ROLE_NS: i32 = 0x6267_0001;
const CHAIN_NS: i32 = 0x6267_0002;

fn audit_row(r: &Row) -> AuditRecord {
    AuditRecord {
        seq: r.get(0),
        at: r.get(1),
        actor: r.get(2),
        request_id: r.get(3),
        action: r.get(4),
        from_state: r.get(5),
        to_state: r.get(6),
        detail: r.get(7),
        prev_hash: r.get(8),
        hash: r.get(9),
    }
}

/// An audit note that can travel to the worker thread.
struct OwnedNote {
    action: String,
    actor: String,
    from: Option<State>,
    to: Option<State>,
    detail: serde_json::Value,
}

impl OwnedNote {
    fn of(n: &Note) -> Self {
        OwnedNote {
            action: n.action.to_string(),
            actor: n.actor.to_string(),
            from: n.from,
            to: n.to,
            detail: n.detail.clone(),
        }
    }
}

fn locking_states() -> Vec<&'static str> {
    State::LOCKING.iter().map(|s| s.as_str()).collect()
}

/// The first request holding `role` locked at `now`. The LOCKING-state rows are
/// few; an auto-approved one within its certification deadline is skipped in
/// Rust (`Request::locks_role_at`), inside the caller's transaction (and under
/// its `lock_role` advisory lock), so the check stays atomic with the write.
fn lock_holder<C: GenericClient>(
    q: &mut Q<'_, C>,
    role: &str,
    except: Option<RequestId>,
    now: DateTime<Utc>,
) -> Result<Option<(RequestId, State)>, ::postgres::Error> {
    let rows = q.query(
        "SELECT id, state, data FROM requests WHERE role = $1 AND state = ANY($2) AND id <> $3 ORDER BY id",
        &[&role, &locking_states(), &except.map_or(0, |i| i.0)],
    )?;
    for r in rows {
        let st: String = r.get(1);
        let data: String = r.get(2);
        // A row that does not parse locks (fail closed).
        let locks = parse_row(&data)
            .map(|req| req.locks_role_at(now))
            .unwrap_or(true);
        if locks {
            return Ok(Some((
                RequestId(r.get(0)),
                State::parse(&st).unwrap_or(State::Active),
            )));
        }
    }
    Ok(None)
}

/// Serialises role-lock checks for one role until the transaction ends.
fn lock_role<C: GenericClient>(q: &mut Q<'_, C>, role: &str) -> Result<(), ::postgres::Error> {
    q.exec(
        &format!("SELECT pg_advisory_xact_lock({ROLE_NS}, hashtext($1))"),
        &[&role],
    )?;
    Ok(())
}

fn append<C: GenericClient>(
    q: &mut Q<'_, C>,
    request_id: Option<RequestId>,
    note: &OwnedNote,
    alerts: &[AlertDraft],
    now: DateTime<Utc>,
) -> Result<(), ::postgres::Error> {
    append_many(q, &[(request_id, note, alerts)], now)
}

/// Appends events to the chain in order, under its lock: one head read, one
/// insert of all the rows and one of their alerts, one NOTIFY. A batch holds the
/// lock (until its commit) for a few round trips, not a few per event.
fn append_many<C: GenericClient>(
    q: &mut Q<'_, C>,
    events: &[(Option<RequestId>, &OwnedNote, &[AlertDraft])],
    now: DateTime<Utc>,
) -> Result<(), ::postgres::Error> {
    if events.is_empty() {
        return Ok(());
    }
    q.exec(&format!("SELECT pg_advisory_xact_lock({CHAIN_NS}, 0)"), &[])?;
    let (mut seq, mut prev_hash): (i64, String) = q
        .opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?
        .map(|r| (r.get(0), r.get(1)))
        .unwrap_or((0, audit::GENESIS.to_string()));
    let mut recs = Vec::with_capacity(events.len());
    let mut outbox: Vec<(String, i64, String, String)> = vec![];
    for (request_id, note, alerts) in events {
        seq += 1;
        let rec = audit::seal(
            AuditRecord {
                seq,
                at: ts(now),
                actor: note.actor.clone(),
                request_id: request_id.map(|r| r.0),
                action: note.action.clone(),
                from_state: note.from.map(|s| s.as_str().to_string()),
                to_state: note.to.map(|s| s.as_str().to_string()),
                detail: audit::canonical_detail(&note.detail),
                prev_hash: String::new(),
                hash: String::new(),
            },
            &prev_hash,
        );
        for (i, a) in alerts.iter().enumerate() {
            let (event_id, payload) = super::outbox_entry(*request_id, &rec, i, a);
            outbox.push((event_id, rec.seq, rec.at.clone(), payload.to_string()));
        }
        prev_hash = rec.hash.clone();
        recs.push(rec);
    }
    let col = |f: fn(&AuditRecord) -> String| recs.iter().map(f).collect::<Vec<String>>();
    let seqs: Vec<i64> = recs.iter().map(|r| r.seq).collect();
    let requests: Vec<Option<i64>> = recs.iter().map(|r| r.request_id).collect();
    let from: Vec<Option<String>> = recs.iter().map(|r| r.from_state.clone()).collect();
    let to: Vec<Option<String>> = recs.iter().map(|r| r.to_state.clone()).collect();
    q.exec(
        "INSERT INTO audit (seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])",
        &[
            &seqs,
            &col(|r| r.at.clone()),
            &col(|r| r.actor.clone()),
            &requests,
            &col(|r| r.action.clone()),
            &from,
            &to,
            &col(|r| r.detail.clone()),
            &col(|r| r.prev_hash.clone()),
            &col(|r| r.hash.clone()),
        ],
    )?;
    if !outbox.is_empty() {
        let ids: Vec<&str> = outbox.iter().map(|o| o.0.as_str()).collect();
        let seqs: Vec<i64> = outbox.iter().map(|o| o.1).collect();
        let ats: Vec<&str> = outbox.iter().map(|o| o.2.as_str()).collect();
        let payloads: Vec<&str> = outbox.iter().map(|o| o.3.as_str()).collect();
        q.exec(
            "INSERT INTO outbox (event_id, audit_seq, created_at, payload, next_attempt_at)
             SELECT e, s, a, p, a FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS u(e, s, a, p)",
            &[&ids, &seqs, &ats, &payloads],
        )?;
    }
    // Delivered to listeners when (and only if) this transaction commits.
    q.exec(
        &format!("SELECT pg_notify('{CHANNEL}', $1)"),
        &[&seq.to_string()],
    )?;
    Ok(())
}

fn write_row<C: GenericClient>(
    q: &mut Q<'_, C>,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<(), TxError> {
    let data = serde_json::to_string(req).map_err(|e| TxError::Store(StoreError::driver(e)))?;
    q.exec(
        "UPDATE requests SET state = $2, version = $3, expires_at = $4, decide_by = $5, updated_at = $6, data = $7 WHERE id = $1",
        &[
            &req.id.0,
            &req.state.as_str(),
            &req.version,
            &req.expires_at().map(ts),
            &ts(req.decide_by),
            &ts(now),
            &data,
        ],
    )?;
    Ok(())
}

/// An outbox row is claimed only while undelivered and due at `now` (another
/// replica sending or recording it holds its row lock: skipped); other keys have
/// no condition.
fn outbox_claimable<C: GenericClient>(
    q: &mut Q<'_, C>,
    key: ClaimKey,
    now: DateTime<Utc>,
) -> Result<bool, TxError> {
    let ClaimKey::Outbox(id) = key else {
        return Ok(true);
    };
    let due = q.opt(
        "SELECT id FROM outbox WHERE id = $1 AND delivered_at IS NULL AND next_attempt_at <= $2
         FOR UPDATE SKIP LOCKED",
        &[&id, &ts(now)],
    )?;
    Ok(due.is_some())
}

fn parse_row(data: &str) -> Result<Request, StoreError> {
    serde_json::from_str(data)
        .map_err(|e| StoreError::Db(format!("a stored request does not parse: {e}")))
}

impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn insert_request(
        &self,
        req: &Request,
        event: &Event,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<Request, StoreError> {
        let req = req.clone();
        let note = OwnedNote::of(&Note::of(event));
        let alerts = alerts.to_vec();
        self.tx(move |q| {
            lock_role(q, &req.role)?;
            if let Some((by, state)) = lock_holder(q, &req.role, None, now)? {
                return Err(TxError::Store(StoreError::Locked {
                    role: req.role.clone(),
                    by,
                    state,
                }));
            }
            let id: i64 = q
                .one("SELECT nextval(pg_get_serial_sequence('requests', 'id'))", &[])?
                .get(0);
            let mut stored = req.clone();
            stored.id = RequestId(id);
            stored.version = 1;
            let data = serde_json::to_string(&stored)
                .map_err(|e| TxError::Store(StoreError::driver(e)))?;
            q.exec(
                "INSERT INTO requests (id, role, state, version, requester, expires_at, decide_by, updated_at, data)
                 VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8)",
                &[
                    &id,
                    &stored.role,
                    &stored.state.as_str(),
                    &stored.requester,
                    &stored.expires_at().map(ts),
                    &ts(stored.decide_by),
                    &ts(now),
                    &data,
                ],
            )?;
            append(q, Some(stored.id), &note, &alerts, now)?;
            Ok(stored)
        })
        .map_err(TxError::into_store)
    }

    fn commit(
        &self,
        req: &Request,
        event: &Event,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<Request, StoreError> {
        let id = req.id;
        let req = req.clone();
        let note = OwnedNote::of(&Note::of(event));
        let alerts = alerts.to_vec();
        self.tx(move |q| {
            let current: Option<i64> = q
                .opt(
                    "SELECT version FROM requests WHERE id = $1 FOR UPDATE",
                    &[&req.id.0],
                )?
                .map(|r| r.get(0));
            match current {
                None => return Err(TxError::Store(StoreError::NotFound(req.id))),
                Some(v) if v != req.version => {
                    return Err(TxError::Store(StoreError::Conflict(req.id)))
                }
                Some(_) => {}
            }
            if req.state == State::Granting {
                lock_role(q, &req.role)?;
                if let Some((by, state)) = lock_holder(q, &req.role, Some(req.id), now)? {
                    return Err(TxError::Store(StoreError::Locked {
                        role: req.role.clone(),
                        by,
                        state,
                    }));
                }
            }
            let mut stored = req.clone();
            stored.version += 1;
            write_row(q, &stored, now)?;
            append(q, Some(stored.id), &note, &alerts, now)?;
            Ok(stored)
        })
        .map_err(|e| e.into_store_for(id))
    }

    fn commit_batch(
        &self,
        batch: &[Transition],
        now: DateTime<Utc>,
    ) -> Result<BatchResult, StoreError> {
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let items: Vec<(Request, OwnedNote, Vec<AlertDraft>)> = batch
            .iter()
            .map(|t| {
                (
                    t.request.clone(),
                    OwnedNote::of(&Note::of(&t.event)),
                    t.alerts.clone(),
                )
            })
            .collect();
        self.tx(move |q| {
            // Every row locked in one statement. A row another transaction is
            // changing (another sweeper's batch, most likely) is skipped, not
            // waited for: reported as a conflict, as if that one had won.
            let ids: Vec<i64> = items.iter().map(|i| i.0.id.0).collect();
            let current: std::collections::HashMap<i64, i64> = q
                .query(
                    "SELECT id, version FROM requests WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED",
                    &[&ids],
                )?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::with_capacity(items.len());
            let mut accepted = vec![];
            // Skipped rows are told apart from missing ones after the batch.
            let mut skipped = vec![];
            for (req, note, alerts) in &items {
                let id = req.id;
                let r = if req.state == State::Granting {
                    Err(StoreError::intent_in_batch(id))
                } else {
                    match current.get(&id.0) {
                        None => {
                            skipped.push(out.len());
                            Err(StoreError::Conflict(id))
                        }
                        // A second transition of one request: as if it raced the first.
                        Some(v) if *v != req.version || !seen.insert(id) => {
                            Err(StoreError::Conflict(id))
                        }
                        Some(_) => {
                            let mut stored = req.clone();
                            stored.version += 1;
                            accepted.push((stored.clone(), note, alerts.as_slice()));
                            Ok(stored)
                        }
                    }
                };
                out.push(r);
            }
            if !skipped.is_empty() {
                let asked: Vec<i64> = skipped.iter().map(|&i| items[i].0.id.0).collect();
                let exist: std::collections::HashSet<i64> = q
                    .query("SELECT id FROM requests WHERE id = ANY($1)", &[&asked])?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                for i in skipped {
                    let id = items[i].0.id;
                    if !exist.contains(&id.0) {
                        out[i] = Err(StoreError::NotFound(id));
                    }
                }
            }
            if accepted.is_empty() {
                return Ok(out);
            }
            // One column array each, for one UPDATE over unnest().
            let ids: Vec<i64> = accepted.iter().map(|(r, _, _)| r.id.0).collect();
            let states: Vec<&str> = accepted.iter().map(|(r, _, _)| r.state.as_str()).collect();
            let versions: Vec<i64> = accepted.iter().map(|(r, _, _)| r.version).collect();
            let expires: Vec<Option<String>> = accepted
                .iter()
                .map(|(r, _, _)| r.expires_at().map(ts))
                .collect();
            let decide_by: Vec<String> = accepted.iter().map(|(r, _, _)| ts(r.decide_by)).collect();
            let mut data = vec![];
            for (r, _, _) in &accepted {
                data.push(
                    serde_json::to_string(r).map_err(|e| TxError::Store(StoreError::driver(e)))?,
                );
            }
            q.exec(
                "UPDATE requests AS r SET state = u.state, version = u.version, expires_at = u.expires_at,
                     decide_by = u.decide_by, updated_at = $6, data = u.data
                 FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $7::text[])
                     AS u(id, state, version, expires_at, decide_by, data)
                 WHERE r.id = u.id",
                &[&ids, &states, &versions, &expires, &decide_by, &ts(now), &data],
            )?;
            let events: Vec<(Option<RequestId>, &OwnedNote, &[AlertDraft])> = accepted
                .iter()
                .map(|(r, n, a)| (Some(r.id), *n, *a))
                .collect();
            append_many(q, &events, now)?;
            Ok(out)
        })
        .map_err(TxError::into_store)
    }

    fn get(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        let data = plain(self, move |q| {
            Ok(q.opt("SELECT data FROM requests WHERE id = $1", &[&id.0])?
                .map(|r| r.get::<_, String>(0)))
        })?;
        data.as_deref().map(parse_row).transpose()
    }

    fn list(&self, query: &Query) -> Result<Vec<Request>, StoreError> {
        let query = query.clone();
        let rows = plain(self, move |q| {
            let mut sql = String::from("SELECT data FROM requests WHERE true");
            let states: Vec<&str> = query.states.iter().flatten().map(|s| s.as_str()).collect();
            let limit = query.limit.map(|l| l as i64);
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![];
            if query.states.is_some() {
                params.push(&states);
                sql.push_str(&format!(" AND state = ANY(${})", params.len()));
            }
            if let Some(r) = &query.role {
                params.push(r);
                sql.push_str(&format!(" AND role = ${}", params.len()));
            }
            if let Some(r) = &query.requester {
                params.push(r);
                sql.push_str(&format!(" AND requester = ${}", params.len()));
            }
            sql.push_str(" ORDER BY id DESC");
            if let Some(l) = &limit {
                params.push(l);
                sql.push_str(&format!(" LIMIT ${}", params.len()));
            }
            Ok(q.query(&sql, &params)?
                .into_iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>())
        })?;
        rows.iter().map(|d| parse_row(d)).collect()
    }

    fn role_lock(
        &self,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(RequestId, State)>, StoreError> {
        let role = role.to_string();
        plain(self, move |q| lock_holder(q, &role, None, now))
    }

    fn audit_head(&self) -> Result<(i64, String), StoreError> {
        plain(self, |q| {
            Ok(
                q.opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?
                    .map(|r| (r.get(0), r.get(1)))
                    .unwrap_or((0, audit::GENESIS.to_string())),
            )
        })
    }

    fn audit_range(&self, from: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        plain(self, move |q| {
            Ok(q
                .query(
                    "SELECT seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash
                     FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2",
                    &[&from, &limit],
                )?
                .iter()
                .map(audit_row)
                .collect())
        })
    }

    fn request_events(
        &self,
        id: RequestId,
        action: AuditAction,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let action = action.to_string();
        plain(self, move |q| {
            Ok(q
                .query(
                    "SELECT seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash
                     FROM audit WHERE request_id = $1 AND action = $2 ORDER BY seq",
                    &[&id.0, &action],
                )?
                .iter()
                .map(audit_row)
                .collect())
        })
    }

    fn event_logins(
        &self,
        id: RequestId,
        action: AuditAction,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let action = action.to_string();
        plain(self, move |q| {
            Ok(q
                .query(
                    "SELECT actor, db_login FROM audit WHERE request_id = $1 AND action = $2 ORDER BY seq",
                    &[&id.0, &action],
                )?
                .iter()
                .map(|r| (r.get(0), Some(r.get(1))))
                .collect())
        })
    }

    fn login_mismatches(&self, limit: usize) -> Result<Vec<LoginMismatch>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        plain(self, move |q| {
            Ok(q
                .query(
                    "SELECT seq, actor, db_login FROM audit
                     WHERE actor <> db_login AND actor NOT LIKE 'breakglass-%'
                       AND seq > COALESCE((SELECT value::bigint FROM breakglass_meta WHERE key = 'imported_through'), 0)
                     ORDER BY seq LIMIT $1",
                    &[&limit],
                )?
                .iter()
                .map(|r| LoginMismatch {
                    seq: r.get(0),
                    actor: r.get(1),
                    db_login: r.get(2),
                })
                .collect())
        })
    }

    fn activations_since(
        &self,
        role: &str,
        requester: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let (role, requester, since) = (role.to_string(), requester.map(str::to_string), ts(since));
        let action = AuditAction::GrantActive.to_string();
        let drill = AuditAction::DrillStarted.to_string();
        plain(self, move |q| {
            // `at` is `ts()` text: RFC 3339 in UTC to the microsecond, so text
            // order is time order. A drill (its `drill.started` event) is not a use.
            let n: i64 = q
                .one(
                    "SELECT count(DISTINCT a.request_id) FROM audit a JOIN requests r ON r.id = a.request_id
                     WHERE a.action = $1 AND r.role = $2 AND ($3::text IS NULL OR r.requester = $3) AND a.at >= $4
                     AND NOT EXISTS (SELECT 1 FROM audit d WHERE d.request_id = a.request_id AND d.action = $5)",
                    &[&action, &role, &requester, &since, &drill],
                )?
                .get(0);
            Ok(n.clamp(0, u32::MAX as i64) as u32)
        })
    }

    fn last_role_event(
        &self,
        role: &str,
        action: AuditAction,
    ) -> Result<Option<AuditRecord>, StoreError> {
        let (role, action) = (role.to_string(), action.to_string());
        plain(self, move |q| {
            Ok(q.opt(
                "SELECT seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash
                 FROM audit WHERE action = $1 AND request_id IS NULL AND (detail::jsonb) ->> 'role' = $2
                 ORDER BY seq DESC LIMIT 1",
                &[&action, &role],
            )?
            .as_ref()
            .map(audit_row))
        })
    }

    fn outbox_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        plain(self, move |q| {
            Ok(q.query(
                "SELECT id, event_id, payload, attempts, delivered_to FROM outbox
                     WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
                &[&ts(now), &limit],
            )?
            .into_iter()
            .map(|r| OutboxRow {
                id: r.get(0),
                event_id: r.get(1),
                payload: serde_json::from_str(r.get(2)).unwrap_or(serde_json::Value::Null),
                attempts: r.get::<_, i32>(3).max(0) as u32,
                delivered_to: serde_json::from_str(r.get(4)).unwrap_or_default(),
            })
            .collect())
        })
    }

    fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        plain(self, move |q| {
            q.exec(
                "UPDATE outbox SET delivered_at = $2, attempts = attempts + 1, last_error = NULL WHERE id = $1",
                &[&id, &ts(now)],
            )?;
            Ok(())
        })
    }

    fn outbox_failed(
        &self,
        id: i64,
        delivered_to: &[String],
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let delivered_to = serde_json::to_string(delivered_to).expect("strings serialise");
        let error = error.to_string();
        plain(self, move |q| {
            q.exec(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, delivered_to = $4 WHERE id = $1",
                &[&id, &error, &ts(retry_at), &delivered_to],
            )?;
            Ok(())
        })
    }

    fn outbox_next_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let t: Option<String> = plain(self, |q| {
            Ok(q.one(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE delivered_at IS NULL",
                &[],
            )?
            .get(0))
        })?;
        t.as_deref().map(parse_ts).transpose()
    }

    fn earliest_deadline(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let t: Option<String> = plain(self, |q| Ok(q.one(EARLIEST_DEADLINE_SQL, &[])?.get(0)))?;
        t.as_deref().map(parse_ts).transpose()
    }

    fn outbox_undelivered(&self) -> Result<u64, StoreError> {
        plain(self, |q| {
            Ok(q.one(
                "SELECT count(*) FROM outbox WHERE delivered_at IS NULL",
                &[],
            )?
            .get::<_, i64>(0) as u64)
        })
    }

    fn outbox_undelivered_for(&self, request: RequestId) -> Result<u64, StoreError> {
        plain(self, move |q| {
            Ok(q
                .one(
                    "SELECT count(*) FROM outbox o JOIN audit a ON a.seq = o.audit_seq WHERE o.delivered_at IS NULL AND a.request_id = $1 AND (o.payload::jsonb ->> 'kind') IS DISTINCT FROM 'approval_request'",
                    &[&request.0],
                )?
                .get::<_, i64>(0) as u64)
        })
    }

    fn append_note(
        &self,
        request: Option<RequestId>,
        note: &Note,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let note = OwnedNote::of(note);
        let alerts = alerts.to_vec();
        self.tx(move |q| Ok(append(q, request, &note, &alerts, now)?))
            .map_err(TxError::into_store)
    }

    fn claim(
        &self,
        key: ClaimKey,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let owner = owner.to_string();
        self.tx(move |q| {
            if !outbox_claimable(q, key, now)? {
                return Ok(false);
            }
            let won = q.opt(
                "INSERT INTO claims (key, owner, until) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until
                 WHERE claims.until <= $4 OR claims.owner = EXCLUDED.owner
                 RETURNING key",
                &[&key.as_key(), &owner, &ts(until), &ts(now)],
            )?;
            Ok(won.is_some())
        })
        .map_err(TxError::into_store)
    }

    fn release(&self, key: ClaimKey, owner: &str) -> Result<(), StoreError> {
        let owner = owner.to_string();
        plain(self, move |q| {
            q.exec(
                "DELETE FROM claims WHERE key = $1 AND owner = $2",
                &[&key.as_key(), &owner],
            )?;
            Ok(())
        })
    }

    fn claim_holder(&self, key: ClaimKey) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        let row = plain(self, move |q| {
            Ok(q.opt(
                "SELECT owner, until FROM claims WHERE key = $1",
                &[&key.as_key()],
            )?
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))))
        })?;
        row.map(|(owner, until)| Ok((owner, parse_ts(&until)?)))
            .transpose()
    }

    fn take_over(
        &self,
        key: ClaimKey,
        gone: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (gone, owner) = (gone.to_string(), owner.to_string());
        self.tx(move |q| {
            if !outbox_claimable(q, key, now)? {
                return Ok(false);
            }
            let won = q.opt(
                "UPDATE claims SET owner = $3, until = $4 WHERE key = $1 AND owner = $2 RETURNING key",
                &[&key.as_key(), &gone, &owner, &ts(until)],
            )?;
            Ok(won.is_some())
        })
        .map_err(TxError::into_store)
    }

    /// Woken by `NOTIFY breakglass_changes` (a separate LISTEN connection); polls
    /// every 200 ms while that connection is down.
    fn wait_for_change(&self, since_head: i64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let ch = self.changes();
        loop {
            let gen = ch.gen();
            if self.audit_head().is_ok_and(|h| h.0 != since_head) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let left = deadline - now;
            if !ch.is_live() {
                std::thread::sleep(left.min(Duration::from_millis(200)));
                continue;
            }
            ch.wait_past(gen, left);
        }
    }

    fn session_user(&self) -> Option<String> {
        Some(self.session_user.clone())
    }
}
