//! Team mode (`identity = "database"`): the database, not the client, says who
//! wrote each audit row (`db_login`, set by a server-side trigger). Everyone's
//! login may INSERT and UPDATE the tables, so a request row can be edited by
//! hand; these checks make such an edit grant nothing and show in `audit verify`.

use super::*;

impl Engine {
    /// The request and every approval on its row must come with the matching
    /// event written by that person's own login (`request.created`,
    /// `request.approved`), or access is not granted.
    pub(super) fn check_logins(&self, id: RequestId) -> Result<()> {
        if self.identity != StoreIdentity::Database {
            return Ok(());
        }
        let req = self.load(id)?;
        let written_by = |action: &str, person: &str| -> Result<bool> {
            Ok(self
                .store
                .event_logins(id, action)?
                .iter()
                .any(|(actor, login)| actor == person && login.as_deref() == Some(person)))
        };
        let forged = |what: String| {
            Err(refusal(
                RefusalKind::Policy,
                format!(
                    "{id}: {what}; the request row was changed outside breakglass, so it grants nothing (see `breakglass audit verify`)"
                ),
            ))
        };
        if !written_by("request.created", &req.requester)? {
            return forged(format!(
                "no request.created event was written by database login {}",
                req.requester
            ));
        }
        for a in &req.approvals {
            if !written_by("request.approved", &a.by)? {
                return forged(format!(
                    "the approval by {} has no request.approved event written by database login {}",
                    a.by, a.by
                ));
            }
        }
        Ok(())
    }

    /// Team mode (`identity = "database"`): a person's event written under
    /// someone else's database login is a forgery the hash chain cannot show.
    pub(super) fn login_mismatch(&self) -> Result<Option<crate::audit::Broken>> {
        if self.identity != StoreIdentity::Database {
            return Ok(None);
        }
        Ok(self
            .store
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
}
