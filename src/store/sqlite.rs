//! The embedded default store. WAL and synchronous=FULL; every write transaction
//! is BEGIN IMMEDIATE so concurrent processes serialise on the database lock.

use super::*;
use crate::audit::{self, AuditRecord};
use crate::sync::LockExt;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const SCHEMA_VERSION: i64 = 4;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    role        TEXT NOT NULL,
    state       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    requester   TEXT NOT NULL,
    expires_at  TEXT,
    decide_by   TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX requests_role_state ON requests(role, state);
CREATE INDEX requests_state ON requests(state);
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    request_id  INTEGER,
    action      TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT,
    detail      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
-- Append-only in normal operation. Anyone with the file can drop these triggers,
-- which is why the hash chain exists.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    audit_seq       INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at    TEXT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox(delivered_at, next_attempt_at);
"#,
    r#"
-- Sinks that already took an alert, so a retry does not repeat it to them.
ALTER TABLE outbox ADD COLUMN delivered_to TEXT NOT NULL DEFAULT '[]';
"#,
    r#"
-- Sweeper claims (revocation retries, outbox rows): one replica at a time, until a lease runs out.
CREATE TABLE claims (
    key     TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    until   TEXT NOT NULL
);
"#,
    r#"
-- Decisions about a role itself (recertification) are found without a scan.
CREATE INDEX audit_role_events ON audit(action, seq) WHERE request_id IS NULL;
-- A request's events of one kind (recorded sessions, replays) likewise.
CREATE INDEX audit_request_events ON audit(request_id, action) WHERE request_id IS NOT NULL;
"#,
];

pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.locked()
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::driver(e)
}

fn audit_row(r: &rusqlite::Row) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        request_id: r.get(3)?,
        action: r.get(4)?,
        from_state: r.get(5)?,
        to_state: r.get(6)?,
        detail: r.get(7)?,
        prev_hash: r.get(8)?,
        hash: r.get(9)?,
    })
}

/// Puts the database in WAL mode. The switch takes an exclusive lock without
/// waiting on the busy handler, so two processes opening a new store at once
/// (a console and a CLI) could fail with "database is locked". The mode is kept
/// in the file: once set, later opens only read it; a busy switch is retried.
fn ensure_wal(conn: &Connection) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(db)?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(db(e)),
        }
    }
}

fn state_list(states: &[State]) -> String {
    states
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

impl SqliteStore {
    /// Opens (creating and migrating as needed) the store at `path`. The directory
    /// is created private to the user: requests carry reasons and names.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
            }
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Db(format!("cannot open {}: {e}", path.display())))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        conn.busy_timeout(std::time::Duration::from_secs(15))
            .map_err(db)?;
        ensure_wal(&conn)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        let store = SqliteStore {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let found: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(m).map_err(db)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    fn with_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let out = f(&tx)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }

    /// An outbox row is claimed only while undelivered and due at `now`; other
    /// keys have no condition.
    fn outbox_claimable(
        tx: &Connection,
        key: ClaimKey,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let ClaimKey::Outbox(id) = key else {
            return Ok(true);
        };
        let due: Option<i64> = tx
            .query_row(
                "SELECT id FROM outbox WHERE id = ?1 AND delivered_at IS NULL AND next_attempt_at <= ?2",
                params![id, ts(now)],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        Ok(due.is_some())
    }

    /// The first request holding `role` locked at `now`. The LOCKING-state rows
    /// are few; an auto-approved one within its certification deadline is skipped
    /// in Rust (`Request::locks_role_at`), inside the caller's transaction.
    fn lock_holder(
        tx: &Connection,
        role: &str,
        except: Option<RequestId>,
        now: DateTime<Utc>,
    ) -> Result<Option<(RequestId, State)>, StoreError> {
        let sql = format!(
            "SELECT id, state, data FROM requests WHERE role = ?1 AND state IN ({}) AND id != ?2 ORDER BY id",
            state_list(&State::LOCKING)
        );
        let mut stmt = tx.prepare(&sql).map_err(db)?;
        let rows = stmt
            .query_map(params![role, except.map_or(0, |i| i.0)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(db)?;
        for row in rows {
            let (id, st, data) = row.map_err(db)?;
            // A row that does not parse locks (fail closed).
            let locks = serde_json::from_str::<Request>(&data)
                .map(|r| r.locks_role_at(now))
                .unwrap_or(true);
            if locks {
                return Ok(Some((
                    RequestId(id),
                    State::parse(&st).unwrap_or(State::Active),
                )));
            }
        }
        Ok(None)
    }

    fn append(
        tx: &Connection,
        request_id: Option<RequestId>,
        event: &Note,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (last_seq, prev_hash): (i64, String) = tx
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?
            .unwrap_or((0, audit::GENESIS.to_string()));
        let rec = audit::seal(
            AuditRecord {
                seq: last_seq + 1,
                at: ts(now),
                actor: event.actor.to_string(),
                request_id: request_id.map(|r| r.0),
                action: event.action.to_string(),
                from_state: event.from.map(|s| s.as_str().to_string()),
                to_state: event.to.map(|s| s.as_str().to_string()),
                detail: audit::canonical_detail(event.detail),
                prev_hash: String::new(),
                hash: String::new(),
            },
            &prev_hash,
        );
        tx.execute(
            "INSERT INTO audit (seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                rec.seq,
                rec.at,
                rec.actor,
                rec.request_id,
                rec.action,
                rec.from_state,
                rec.to_state,
                rec.detail,
                rec.prev_hash,
                rec.hash
            ],
        )
        .map_err(db)?;
        for (i, a) in alerts.iter().enumerate() {
            let (event_id, payload) = outbox_entry(request_id, &rec, i, a);
            tx.execute(
                "INSERT INTO outbox (event_id, audit_seq, created_at, payload, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?3)",
                params![event_id, rec.seq, rec.at, payload.to_string()],
            )
            .map_err(db)?;
        }
        Ok(())
    }

    fn write_row(tx: &Connection, req: &Request, now: DateTime<Utc>) -> Result<(), StoreError> {
        let data = serde_json::to_string(req).map_err(StoreError::driver)?;
        tx.execute(
            "UPDATE requests SET state = ?2, version = ?3, expires_at = ?4, decide_by = ?5, updated_at = ?6, data = ?7 WHERE id = ?1",
            params![
                req.id.0,
                req.state.as_str(),
                req.version,
                req.expires_at().map(ts),
                ts(req.decide_by),
                ts(now),
                data
            ],
        )
        .map_err(db)?;
        Ok(())
    }

    /// Request rows with `id > after`, in id order, as stored (for `store migrate`).
    pub fn export_requests(&self, after: i64, limit: usize) -> Result<Vec<RequestRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, role, state, version, requester, expires_at, decide_by, updated_at, data
                 FROM requests WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok(RequestRow {
                    id: r.get(0)?,
                    role: r.get(1)?,
                    state: r.get(2)?,
                    version: r.get(3)?,
                    requester: r.get(4)?,
                    expires_at: r.get(5)?,
                    decide_by: r.get(6)?,
                    updated_at: r.get(7)?,
                    data: r.get(8)?,
                })
            })
            .map_err(db)?;
        rows.map(|r| r.map_err(db)).collect()
    }

    /// Outbox rows with `id > after`, in id order, as stored (for `store migrate`).
    pub fn export_outbox(&self, after: i64, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, event_id, audit_seq, created_at, payload, attempts, next_attempt_at,
                        delivered_at, last_error, delivered_to
                 FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok(OutboxRecord {
                    id: r.get(0)?,
                    event_id: r.get(1)?,
                    audit_seq: r.get(2)?,
                    created_at: r.get(3)?,
                    payload: r.get(4)?,
                    attempts: r.get(5)?,
                    next_attempt_at: r.get(6)?,
                    delivered_at: r.get(7)?,
                    last_error: r.get(8)?,
                    delivered_to: r.get(9)?,
                })
            })
            .map_err(db)?;
        rows.map(|r| r.map_err(db)).collect()
    }

    fn parse_row(data: String) -> Result<Request, StoreError> {
        serde_json::from_str(&data)
            .map_err(|e| StoreError::Db(format!("a stored request does not parse: {e}")))
    }
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }

    fn insert_request(
        &self,
        req: &Request,
        event: &Event,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<Request, StoreError> {
        self.with_tx(|tx| {
            if let Some((by, state)) = Self::lock_holder(tx, &req.role, None, now)? {
                return Err(StoreError::Locked {
                    role: req.role.clone(),
                    by,
                    state,
                });
            }
            tx.execute(
                "INSERT INTO requests (role, state, version, requester, decide_by, updated_at, data) VALUES (?1, ?2, 1, ?3, ?4, ?5, '{}')",
                params![req.role, req.state.as_str(), req.requester, ts(req.decide_by), ts(now)],
            )
            .map_err(db)?;
            let mut stored = req.clone();
            stored.id = RequestId(tx.last_insert_rowid());
            stored.version = 1;
            Self::write_row(tx, &stored, now)?;
            Self::append(tx, Some(stored.id), &Note::of(event), alerts, now)?;
            Ok(stored)
        })
    }

    fn commit_batch(
        &self,
        batch: &[Transition],
        now: DateTime<Utc>,
    ) -> Result<BatchResult, StoreError> {
        if batch.is_empty() {
            return Ok(vec![]);
        }
        self.with_tx(|tx| {
            let mut out = Vec::with_capacity(batch.len());
            for t in batch {
                let req = &t.request;
                if req.state == State::Granting {
                    out.push(Err(StoreError::intent_in_batch(req.id)));
                    continue;
                }
                // A second transition of one request finds the version the
                // first one wrote: a conflict, like a racing process.
                let current: Option<i64> = tx
                    .query_row(
                        "SELECT version FROM requests WHERE id = ?1",
                        params![req.id.0],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db)?;
                match current {
                    None => out.push(Err(StoreError::NotFound(req.id))),
                    Some(v) if v != req.version => out.push(Err(StoreError::Conflict(req.id))),
                    Some(_) => {
                        let mut stored = req.clone();
                        stored.version += 1;
                        Self::write_row(tx, &stored, now)?;
                        Self::append(tx, Some(stored.id), &Note::of(&t.event), &t.alerts, now)?;
                        out.push(Ok(stored));
                    }
                }
            }
            Ok(out)
        })
    }

    fn commit(
        &self,
        req: &Request,
        event: &Event,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<Request, StoreError> {
        self.with_tx(|tx| {
            let current: Option<i64> = tx
                .query_row(
                    "SELECT version FROM requests WHERE id = ?1",
                    params![req.id.0],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            match current {
                None => return Err(StoreError::NotFound(req.id)),
                Some(v) if v != req.version => return Err(StoreError::Conflict(req.id)),
                Some(_) => {}
            }
            if req.state == State::Granting {
                if let Some((by, state)) = Self::lock_holder(tx, &req.role, Some(req.id), now)? {
                    return Err(StoreError::Locked {
                        role: req.role.clone(),
                        by,
                        state,
                    });
                }
            }
            let mut stored = req.clone();
            stored.version += 1;
            Self::write_row(tx, &stored, now)?;
            Self::append(tx, Some(stored.id), &Note::of(event), alerts, now)?;
            Ok(stored)
        })
    }

    fn get(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        let conn = self.conn();
        let data: Option<String> = conn
            .query_row(
                "SELECT data FROM requests WHERE id = ?1",
                params![id.0],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        data.map(Self::parse_row).transpose()
    }

    fn list(&self, q: &Query) -> Result<Vec<Request>, StoreError> {
        let mut sql = String::from("SELECT data FROM requests WHERE 1=1");
        if let Some(states) = &q.states {
            sql.push_str(&format!(" AND state IN ({})", state_list(states)));
        }
        let mut args: Vec<String> = vec![];
        if let Some(r) = &q.role {
            args.push(r.clone());
            sql.push_str(&format!(" AND role = ?{}", args.len()));
        }
        if let Some(r) = &q.requester {
            args.push(r.clone());
            sql.push_str(&format!(" AND requester = ?{}", args.len()));
        }
        sql.push_str(" ORDER BY id DESC");
        if let Some(l) = q.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(db)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                r.get::<_, String>(0)
            })
            .map_err(db)?;
        rows.map(|r| r.map_err(db).and_then(Self::parse_row))
            .collect()
    }

    fn role_lock(
        &self,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(RequestId, State)>, StoreError> {
        let conn = self.conn();
        Self::lock_holder(&conn, role, None, now)
    }

    fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?
            .unwrap_or((0, audit::GENESIS.to_string())))
    }

    fn audit_range(&self, from: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash
                 FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![from, limit as i64], audit_row)
            .map_err(db)?;
        rows.map(|r| r.map_err(db)).collect()
    }

    fn request_events(
        &self,
        id: RequestId,
        action: AuditAction,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash
                 FROM audit WHERE request_id = ?1 AND action = ?2 ORDER BY seq",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![id.0, action.as_str()], audit_row)
            .map_err(db)?;
        rows.map(|r| r.map_err(db)).collect()
    }

    fn activations_since(
        &self,
        role: &str,
        requester: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        // `at` is `ts()` text: RFC 3339 in UTC to the microsecond, so text order
        // is time order. A drill (its `drill.started` event) is not a use.
        self.conn()
            .query_row(
                "SELECT count(DISTINCT a.request_id) FROM audit a JOIN requests r ON r.id = a.request_id
                 WHERE a.action = ?1 AND r.role = ?2 AND (?3 IS NULL OR r.requester = ?3) AND a.at >= ?4
                 AND NOT EXISTS (SELECT 1 FROM audit d WHERE d.request_id = a.request_id AND d.action = ?5)",
                params![
                    AuditAction::GrantActive.as_str(),
                    role,
                    requester,
                    ts(since),
                    AuditAction::DrillStarted.as_str()
                ],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.clamp(0, u32::MAX as i64) as u32)
            .map_err(db)
    }

    fn last_role_event(
        &self,
        role: &str,
        action: AuditAction,
    ) -> Result<Option<AuditRecord>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT seq, at, actor, request_id, action, from_state, to_state, detail, prev_hash, hash
             FROM audit WHERE action = ?1 AND request_id IS NULL AND json_extract(detail, '$.role') = ?2
             ORDER BY seq DESC LIMIT 1",
            params![action.as_str(), role],
            audit_row,
        )
        .optional()
        .map_err(db)
    }

    fn outbox_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, event_id, payload, attempts, delivered_to FROM outbox
                 WHERE delivered_at IS NULL AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![ts(now), limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, u32>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(db)?;
        rows.map(|r| {
            let (id, event_id, payload, attempts, delivered_to) = r.map_err(db)?;
            Ok(OutboxRow {
                id,
                event_id,
                payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                attempts,
                delivered_to: serde_json::from_str(&delivered_to).unwrap_or_default(),
            })
        })
        .collect()
    }

    fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            tx.execute(
                "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                params![id, ts(now)],
            )
            .map_err(db)?;
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
        self.with_tx(|tx| {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3, delivered_to = ?4 WHERE id = ?1",
                params![id, error, ts(retry_at), delivered_to],
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn outbox_undelivered_for(&self, request: RequestId) -> Result<u64, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT count(*) FROM outbox o JOIN audit a ON a.seq = o.audit_seq WHERE o.delivered_at IS NULL AND a.request_id = ?1 AND json_extract(o.payload, '$.kind') IS NOT 'approval_request'",
            params![request.0],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as u64)
        .map_err(db)
    }

    fn append_note(
        &self,
        request: Option<RequestId>,
        note: &Note,
        alerts: &[AlertDraft],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with_tx(|tx| Self::append(tx, request, note, alerts, now))
    }

    fn outbox_next_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let t: Option<String> = self
            .conn()
            .query_row(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE delivered_at IS NULL",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        t.as_deref().map(parse_ts).transpose()
    }

    fn earliest_deadline(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let t: Option<String> = self
            .conn()
            .query_row(EARLIEST_DEADLINE_SQL, [], |r| r.get(0))
            .map_err(db)?;
        t.as_deref().map(parse_ts).transpose()
    }

    fn outbox_undelivered(&self) -> Result<u64, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT count(*) FROM outbox WHERE delivered_at IS NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as u64)
        .map_err(db)
    }

    fn claim(
        &self,
        key: ClaimKey,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // BEGIN IMMEDIATE: one writer at a time, so check-then-write is atomic.
        self.with_tx(|tx| {
            if !Self::outbox_claimable(tx, key, now)? {
                return Ok(false);
            }
            let n = tx
                .execute(
                    "INSERT INTO claims (key, owner, until) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, until = excluded.until
                     WHERE claims.until <= ?4 OR claims.owner = excluded.owner",
                    params![key.as_key(), owner, ts(until), ts(now)],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
    }

    fn release(&self, key: ClaimKey, owner: &str) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            tx.execute(
                "DELETE FROM claims WHERE key = ?1 AND owner = ?2",
                params![key.as_key(), owner],
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn claim_holder(&self, key: ClaimKey) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT owner, until FROM claims WHERE key = ?1",
                params![key.as_key()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
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
        self.with_tx(|tx| {
            if !Self::outbox_claimable(tx, key, now)? {
                return Ok(false);
            }
            let n = tx
                .execute(
                    "UPDATE claims SET owner = ?3, until = ?4 WHERE key = ?1 AND owner = ?2",
                    params![key.as_key(), gone, owner, ts(until)],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
    }
}
