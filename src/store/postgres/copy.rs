//! `store migrate`: copying a SQLite store into an empty PostgreSQL one.

use super::connection::TxError;
use super::*;
use crate::audit::{self, Verifier};

/// What `copy_from_sqlite` copied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    pub requests: u64,
    pub audit_events: u64,
    pub outbox_rows: u64,
    /// The copied chain's last event: (seq, hash); the same as the source's.
    pub head_seq: i64,
    pub head_hash: String,
    /// The source chain's first broken link, copied as it was (evidence is kept).
    pub source_broken: Option<audit::Broken>,
}

impl PostgresStore {
    /// Copies a SQLite store into this one, which must be empty: requests with
    /// their JSON data, the audit chain rows verbatim (hashes included) and the
    /// outbox, in one transaction. Sequences continue after the copied ids.
    pub fn copy_from_sqlite(&self, src: Arc<SqliteStore>) -> Result<CopyReport, StoreError> {
        const PAGE: usize = 1000;
        self.tx(move |q| {
            q.c.batch_execute("LOCK TABLE requests, audit, outbox IN EXCLUSIVE MODE")?;
            let n: i64 = q
                .one(
                    "SELECT (SELECT count(*) FROM requests) + (SELECT count(*) FROM audit) + (SELECT count(*) FROM outbox)",
                    &[],
                )?
                .get(0);
            if n > 0 {
                return Err(TxError::Store(StoreError::Db(format!(
                    "the PostgreSQL store is not empty ({n} rows in requests, audit and outbox); migrate only into an empty store"
                ))));
            }
            let mut rep = CopyReport {
                requests: 0,
                audit_events: 0,
                outbox_rows: 0,
                head_seq: 0,
                head_hash: audit::GENESIS.to_string(),
                source_broken: None,
            };
            let mut after = 0;
            loop {
                let rows = src.export_requests(after, PAGE).map_err(TxError::Store)?;
                let Some(last) = rows.last() else { break };
                after = last.id;
                let id: Vec<i64> = rows.iter().map(|r| r.id).collect();
                let role: Vec<&str> = rows.iter().map(|r| r.role.as_str()).collect();
                let state: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
                let version: Vec<i64> = rows.iter().map(|r| r.version).collect();
                let requester: Vec<&str> = rows.iter().map(|r| r.requester.as_str()).collect();
                let expires: Vec<Option<&str>> = rows.iter().map(|r| r.expires_at.as_deref()).collect();
                let decide: Vec<&str> = rows.iter().map(|r| r.decide_by.as_str()).collect();
                let updated: Vec<&str> = rows.iter().map(|r| r.updated_at.as_str()).collect();
                let data: Vec<&str> = rows.iter().map(|r| r.data.as_str()).collect();
                q.exec(
                    "INSERT INTO requests (id, role, state, version, requester, expires_at, decide_by, updated_at, data)
                     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])",
                    &[&id, &role, &state, &version, &requester, &expires, &decide, &updated, &data],
                )?;
                rep.requests += rows.len() as u64;
            }
            let mut verifier = Verifier::default();
            let mut from = 1;
            loop {
                let rows = src.audit_range(from, PAGE).map_err(TxError::Store)?;
                let Some(last) = rows.last() else { break };
                from = last.seq + 1;
                for r in &rows {
                    if rep.source_broken.is_none() {
                        if let Err(b) = verifier.push(r) {
                            rep.source_broken = Some(b);
                        }
                    }
                }
                rep.head_seq = last.seq;
                rep.head_hash = last.hash.clone();
                let seq: Vec<i64> = rows.iter().map(|r| r.seq).collect();
                let at: Vec<&str> = rows.iter().map(|r| r.at.as_str()).collect();
                let actor: Vec<&str> = rows.iter().map(|r| r.actor.as_str()).collect();
                let request_id: Vec<Option<i64>> = rows.iter().map(|r| r.request_id).collect();
                let action: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
                let from_state: Vec<Option<&str>> = rows.iter().map(|r| r.from_state.as_deref()).collect();
                let to_state: Vec<Option<&str>> = rows.iter().map(|r| r.to_state.as_deref()).collect();
                let detail: Vec<&str> = rows.iter().map(|r| r.detail.as_str()).collect();
                let prev: Vec<&str> = rows.iter().map(|r| r.prev_hash.as_str()).collect();
                let hash: Vec<&str> = rows.iter().map(|r| r.hash.as_str()).collect();
                q.exec(
                    "INSERT INTO audit (seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash)
                     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])",
                    &[&seq, &at, &actor, &request_id, &action, &from_state, &to_state, &detail, &prev, &hash],
                )?;
                rep.audit_events += rows.len() as u64;
            }
            let mut after = 0;
            loop {
                let rows = src.export_outbox(after, PAGE).map_err(TxError::Store)?;
                let Some(last) = rows.last() else { break };
                after = last.id;
                let id: Vec<i64> = rows.iter().map(|r| r.id).collect();
                let event_id: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
                let audit_seq: Vec<i64> = rows.iter().map(|r| r.audit_seq).collect();
                let created: Vec<&str> = rows.iter().map(|r| r.created_at.as_str()).collect();
                let payload: Vec<&str> = rows.iter().map(|r| r.payload.as_str()).collect();
                let attempts: Vec<i32> = rows.iter().map(|r| r.attempts.clamp(0, i32::MAX as i64) as i32).collect();
                let next: Vec<&str> = rows.iter().map(|r| r.next_attempt_at.as_str()).collect();
                let delivered: Vec<Option<&str>> = rows.iter().map(|r| r.delivered_at.as_deref()).collect();
                let error: Vec<Option<&str>> = rows.iter().map(|r| r.last_error.as_deref()).collect();
                let to: Vec<&str> = rows.iter().map(|r| r.delivered_to.as_str()).collect();
                q.exec(
                    "INSERT INTO outbox (id, event_id, audit_seq, created_at, payload, attempts, next_attempt_at, delivered_at, last_error, delivered_to)
                     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::int4[], $7::text[], $8::text[], $9::text[], $10::text[])",
                    &[&id, &event_id, &audit_seq, &created, &payload, &attempts, &next, &delivered, &error, &to],
                )?;
                rep.outbox_rows += rows.len() as u64;
            }
            q.c.batch_execute(
                "SELECT setval(pg_get_serial_sequence('requests', 'id'), COALESCE((SELECT max(id) FROM requests), 0) + 1, false);
                 SELECT setval(pg_get_serial_sequence('outbox', 'id'), COALESCE((SELECT max(id) FROM outbox), 0) + 1, false);",
            )?;
            // Copied rows carry the migrating login, not their actors': the
            // actor = db_login check starts after them.
            q.exec(
                "INSERT INTO breakglass_meta (key, value) VALUES ('imported_through', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&rep.head_seq.to_string()],
            )?;
            q.exec(&format!("SELECT pg_notify('{CHANNEL}', $1)"), &[&rep.head_seq.to_string()])?;
            Ok(rep)
        })
        .map_err(TxError::into_store)
    }
}
