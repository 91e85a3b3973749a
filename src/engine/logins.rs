//! A request row and its audit events must agree. Whoever can write the store can
//! edit a row (add an approval, set the state): the hash chain cannot show that,
//! since the row is not in it. So before granting, every approval the row counts
//! must have its `request.approved` event by that person (in team mode,
//! `identity = "database"`, written by that person's own database login), and
//! `audit verify` checks every row the same way.
//!
//! The checks read the store and run whole on the blocking pool (`Engine::db`):
//! they take the store, and `database` for team mode.

use super::*;

/// Why request `req`'s row disagrees with its audit events, if it does.
fn row_disagreement(
    store: &dyn Store,
    database: bool,
    req: &Request,
) -> Result<Option<String>, StoreError> {
    let id = req.id;
    let written_by = |action: AuditAction, person: &str| -> Result<bool, StoreError> {
        Ok(store
            .event_logins(id, action)?
            .iter()
            .any(|(actor, login)| {
                actor == person && (!database || login.as_deref() == Some(person))
            }))
    };
    let by = |who: &str| {
        if database {
            format!("written by database login {who}")
        } else {
            format!("by {who}")
        }
    };
    if !written_by(AuditAction::RequestCreated, &req.requester)? {
        return Ok(Some(format!(
            "no request.created event {}",
            by(&req.requester)
        )));
    }
    // Routine use raised the count at creation, in the event; the row may not lower it.
    let asked = store
        .request_events(id, AuditAction::RequestCreated)?
        .first()
        .and_then(|e| serde_json::from_str::<serde_json::Value>(&e.detail).ok())
        .and_then(|d| d["approvals_required"].as_u64());
    if let Some(n) = asked.filter(|n| *n > u64::from(req.approvals_required)) {
        return Ok(Some(format!(
            "it needs {n} approvals (its request.created event) but the row says {}",
            req.approvals_required
        )));
    }
    for a in &req.approvals {
        if !written_by(AuditAction::RequestApproved, &a.by)? {
            return Ok(Some(format!(
                "the approval by {} has no request.approved event {}",
                a.by,
                by(&a.by)
            )));
        }
    }
    if req.auto_approved
        && store
            .request_events(id, AuditAction::RequestAutoApproved)?
            .is_empty()
    {
        return Ok(Some(
            "it is marked auto-approved but has no request.auto_approved event".into(),
        ));
    }
    Ok(None)
}

/// For `audit verify`: the first request whose row disagrees with its events,
/// reported at its newest event.
pub(super) fn row_mismatch(
    store: &dyn Store,
    database: bool,
) -> Result<Option<crate::audit::Broken>, StoreError> {
    for req in store.list(&crate::store::Query::default())? {
        if let Some(what) = row_disagreement(store, database, &req)? {
            let seq = store
                .request_events(req.id, AuditAction::RequestCreated)?
                .first()
                .map_or(0, |r| r.seq);
            return Ok(Some(crate::audit::Broken {
                seq,
                reason: format!(
                    "{}: {what}; the request row was changed outside breakglass",
                    req.id
                ),
            }));
        }
    }
    Ok(None)
}

/// Team mode (`identity = "database"`): a person's event written under
/// someone else's database login is a forgery the hash chain cannot show.
pub(super) fn login_mismatch(
    store: &dyn Store,
    database: bool,
) -> Result<Option<crate::audit::Broken>, StoreError> {
    if !database {
        return Ok(None);
    }
    Ok(store
        .login_mismatches(1)?
        .into_iter()
        .next()
        .map(|m| crate::audit::Broken {
            seq: m.seq,
            reason: format!(
                "event {} names {} as its actor but was written by database login {}",
                m.seq, m.actor, m.db_login
            ),
        }))
}

impl Engine {
    /// Before granting: the row must agree with its events, or access is not granted.
    pub(super) async fn check_row_against_events(&self, id: RequestId) -> Result<()> {
        let req = self.load(id).await?;
        let database = self.identity == StoreIdentity::Database;
        match self
            .db(move |s| row_disagreement(s, database, &req))
            .await?
        {
            None => Ok(()),
            Some(what) => Err(refusal(
                RefusalKind::Policy,
                format!(
                    "{id}: {what}; the request row was changed outside breakglass, so it grants nothing (see `breakglass audit verify`)"
                ),
            )),
        }
    }
}
