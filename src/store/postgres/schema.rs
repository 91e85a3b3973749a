//! The schema: its version in `breakglass_meta`, the migrations, and
//! migrating on open under an advisory lock.

use super::connection::{pg, Session, TxError, Q};
use super::*;
use ::postgres::GenericClient;

/// The migration's advisory lock namespace (beside the role and chain locks).
const MIGRATE_NS: i32 = 0x6267_0003;

/// The version this build writes; a store at a later one is refused.
pub const SCHEMA_VERSION: i64 = 2;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE requests (
    id          bigserial PRIMARY KEY,
    role        text NOT NULL,
    state       text NOT NULL,
    version     bigint NOT NULL,
    requester   text NOT NULL,
    expires_at  text,
    decide_by   text NOT NULL,
    updated_at  text NOT NULL,
    data        text NOT NULL
);
CREATE INDEX requests_role_state ON requests (role, state);
CREATE INDEX requests_state ON requests (state);

CREATE TABLE audit (
    seq         bigint PRIMARY KEY,
    at          text NOT NULL,
    actor       text NOT NULL,
    request_id  bigint,
    action      text NOT NULL,
    from_state  text,
    to_state    text,
    detail      text NOT NULL,
    prev_hash   text NOT NULL,
    hash        text NOT NULL,
    -- The database login that wrote the row, set by the server (trigger below),
    -- not by the client. Outside the hash: evidence the store itself adds.
    db_login    text NOT NULL DEFAULT session_user
);
CREATE INDEX audit_request ON audit (request_id);
-- Append-only in normal operation. The tables' owner can drop these triggers,
-- which is why the hash chain exists; give people logins that own nothing.
CREATE FUNCTION breakglass_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION breakglass_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION breakglass_audit_append_only();
CREATE FUNCTION breakglass_audit_login() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.db_login := session_user;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_login BEFORE INSERT ON audit
    FOR EACH ROW EXECUTE FUNCTION breakglass_audit_login();

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    event_id        text NOT NULL UNIQUE,
    audit_seq       bigint NOT NULL,
    created_at      text NOT NULL,
    payload         text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at text NOT NULL,
    delivered_at    text,
    last_error      text,
    delivered_to    text NOT NULL DEFAULT '[]'
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX outbox_audit_seq ON outbox (audit_seq);

-- Sweeper claims (revocation retries, outbox rows): one replica at a time,
-- until a lease runs out.
CREATE TABLE claims (
    key     text PRIMARY KEY,
    owner   text NOT NULL,
    until   text NOT NULL
);
"#,
    r#"
-- Decisions about a role itself (recertification) are found without a scan.
CREATE INDEX audit_role_events ON audit (action, seq) WHERE request_id IS NULL;
"#,
];

impl PostgresStore {
    pub(super) fn migrate(&self) -> Result<(), StoreError> {
        let found = self.run(|s| {
            let mut q = Q {
                c: &mut s.client,
                stmts: &mut s.stmts,
            };
            schema_version(&mut q).map_err(pg)
        })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            // Nothing to create: logins without CREATE rights open it too.
            return Ok(());
        }
        // A session-level lock taken *before* the transaction begins: the
        // transaction then starts after the previous migrator committed and sees
        // its tables (a lock taken inside it would leave this session's catalog
        // cache as it was before the wait).
        self.run(|s| {
            s.client
                .execute(&format!("SELECT pg_advisory_lock({MIGRATE_NS}, 0)"), &[])
                .map_err(pg)?;
            let out = migrate_locked(s);
            let unlocked = s
                .client
                .execute(&format!("SELECT pg_advisory_unlock({MIGRATE_NS}, 0)"), &[]);
            out.map_err(TxError::into_store)?;
            unlocked.map_err(pg)?;
            Ok(())
        })
    }

    /// The schema version recorded in `breakglass_meta` (0 when the table is absent).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.run(|s| {
            let mut q = Q {
                c: &mut s.client,
                stmts: &mut s.stmts,
            };
            schema_version(&mut q).map_err(pg)
        })
    }
}

/// Creates or upgrades the schema; the caller holds the migration lock.
fn migrate_locked(s: &mut Session) -> Result<(), TxError> {
    let Session { client, stmts } = s;
    let mut tx = client.transaction()?;
    {
        let q = &mut Q { c: &mut tx, stmts };
        let exists: bool = q
            .one("SELECT to_regclass('breakglass_meta') IS NOT NULL", &[])?
            .get(0);
        if !exists {
            q.c.batch_execute(
                "CREATE TABLE breakglass_meta (key text PRIMARY KEY, value text NOT NULL)",
            )?;
        }
        let found = schema_version(q)?;
        if found > SCHEMA_VERSION {
            return Err(TxError::Store(StoreError::TooNew {
                found,
                supported: SCHEMA_VERSION,
            }));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            q.c.batch_execute(m)?;
            q.exec(
                "INSERT INTO breakglass_meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&((i + 1) as i64).to_string()],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn schema_version<C: GenericClient>(q: &mut Q<'_, C>) -> Result<i64, ::postgres::Error> {
    let exists: bool = q
        .one("SELECT to_regclass('breakglass_meta') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(q.opt(
        "SELECT value FROM breakglass_meta WHERE key = 'schema_version'",
        &[],
    )?
    .and_then(|r| r.get::<_, String>(0).parse().ok())
    .unwrap_or(0))
}
