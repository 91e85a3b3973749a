//! The sweeper's loop, for `breakglass daemon` and `breakglass broker`: a
//! recovery pass whenever something is due, and in between a sleep until the
//! earliest deadline (`next_due`), a change in the store (a new grant or an
//! extension may bring the deadline forward: NOTIFY on PostgreSQL, a cheap poll
//! on SQLite), or the longest sleep allowed, whichever comes first. Expiry is
//! still computed from the stored instant by the pass: the timer only decides
//! when to look.

use super::*;
use std::future::Future;
use std::time::{Duration, Instant};

/// A pass that left due work undone (another process holds it, or it failed)
/// is tried again after this, doubled for each failed pass in a row (up to
/// the longest sleep), rather than at once.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a pass did that may have left more to do at once.
fn progressed(rep: &RecoveryReport) -> bool {
    !(rep.lapsed.is_empty()
        && rep.interrupted_grants_failed.is_empty()
        && rep.expired_revoked.is_empty()
        && rep.revokes_retried.is_empty()
        && rep.resolved_revoked.is_empty()
        && rep.certification_overdue.is_empty()
        && rep.invalidations_done.is_empty()
        && rep.alerts_delivered == 0)
}

impl Engine {
    /// Sweeps until `stop` completes: a recovery pass, reported to `on_pass`,
    /// then a sleep until the next thing is due, a change in the store, or
    /// `max_sleep` after the pass began (a pass at least that often, whatever
    /// the schedule says). `stop` is looked at only between passes, so a pass
    /// in flight finishes its revocations.
    pub async fn sweep_until(
        &self,
        max_sleep: Duration,
        stop: impl Future<Output = ()>,
        mut on_pass: impl FnMut(Result<RecoveryReport>),
    ) {
        tokio::pin!(stop);
        let mut failures: u32 = 0;
        loop {
            let began = Instant::now();
            let began_at = self.clock.now();
            let pass = self.recover().await;
            // Drills are the sweeper's own (`drill_every`): never run by a
            // person's command, whose recovery pass is the one above.
            if let Err(e) = self.drill_pass().await {
                tracing::warn!("the sweeper's drills: {e}");
            }
            let (moved, failed) = match &pass {
                Ok(rep) => (progressed(rep), !rep.errors.is_empty()),
                Err(_) => (false, true),
            };
            on_pass(pass);
            if futures::FutureExt::now_or_never(&mut stop).is_some() {
                return;
            }
            failures = if failed {
                failures.saturating_add(1)
            } else {
                0
            };
            let latest = began + max_sleep;
            let retry = Instant::now()
                + RETRY_AFTER
                    .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
                    .min(max_sleep);
            loop {
                // The head first: a commit made while the schedule is read
                // still wakes the wait below.
                let head = self.audit_head().await.map_or(-1, |h| h.0);
                let wake = match self.next_due().await {
                    Ok(due) => {
                        let now = self.clock.now();
                        match due {
                            None => latest,
                            Some(t) if t > now => {
                                let left = (t - now).to_std().unwrap_or_default();
                                latest.min(Instant::now() + left)
                            }
                            // Due since the pass began, or the pass got work
                            // done (there may be more): at once.
                            Some(t) if moved || t > began_at => break,
                            // Due before the pass and left undone: later.
                            Some(_) => latest.min(retry),
                        }
                    }
                    Err(e) => {
                        tracing::warn!("the sweeper cannot read its schedule: {e}");
                        latest.min(retry)
                    }
                };
                let now = Instant::now();
                if wake <= now {
                    break;
                }
                tokio::select! {
                    changed = self.wait_for_change(head, wake - now) => {
                        if !changed {
                            break;
                        }
                    }
                    _ = &mut stop => return,
                }
            }
        }
    }
}
