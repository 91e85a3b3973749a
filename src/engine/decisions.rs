//! A person's decision on someone else's request: approve or deny it, certify or
//! reject its review. One path for all four, signed or not.

use super::actions::free_text;
use super::*;
use crate::domain::SshSignature;
use crate::identity::ssh_sign::DecisionKind;

/// What the decider wrote, and (with `approval_signing` on) their signature over
/// the decision's statement; it is verified before the decision counts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Approve {
        comment: Option<String>,
        signature: Option<SshSignature>,
    },
    Deny {
        reason: String,
        signature: Option<SshSignature>,
    },
    Certify {
        comment: String,
        signature: Option<SshSignature>,
        /// Why certify although copied credentials' invalidation is not
        /// recorded (audited and alerted); refused when none is pending.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invalidation_exception: Option<String>,
    },
    Reject {
        comment: String,
        signature: Option<SshSignature>,
    },
}

impl Decision {
    pub fn approve(comment: Option<String>) -> Self {
        Decision::Approve {
            comment,
            signature: None,
        }
    }
    pub fn deny(reason: impl Into<String>) -> Self {
        Decision::Deny {
            reason: reason.into(),
            signature: None,
        }
    }
    pub fn certify(comment: impl Into<String>) -> Self {
        Decision::Certify {
            comment: comment.into(),
            signature: None,
            invalidation_exception: None,
        }
    }

    /// A certification with the certifier's reason to go ahead although
    /// copied credentials' invalidation is not recorded.
    pub fn certify_with_exception(comment: impl Into<String>, why: impl Into<String>) -> Self {
        Decision::Certify {
            comment: comment.into(),
            signature: None,
            invalidation_exception: Some(why.into()),
        }
    }
    pub fn reject(comment: impl Into<String>) -> Self {
        Decision::Reject {
            comment: comment.into(),
            signature: None,
        }
    }

    /// The same decision carrying `sig`.
    pub fn signed(mut self, sig: Option<SshSignature>) -> Self {
        match &mut self {
            Decision::Approve { signature, .. }
            | Decision::Deny { signature, .. }
            | Decision::Certify { signature, .. }
            | Decision::Reject { signature, .. } => *signature = sig,
        }
        self
    }

    pub fn kind(&self) -> DecisionKind {
        match self {
            Decision::Approve { .. } => DecisionKind::Approve,
            Decision::Deny { .. } => DecisionKind::Deny,
            Decision::Certify { .. } => DecisionKind::Certify,
            Decision::Reject { .. } => DecisionKind::Reject,
        }
    }

    fn signature(&self) -> Option<&SshSignature> {
        match self {
            Decision::Approve { signature, .. }
            | Decision::Deny { signature, .. }
            | Decision::Certify { signature, .. }
            | Decision::Reject { signature, .. } => signature.as_ref(),
        }
    }

    /// What people typed is stored clean: others read it in their terminals,
    /// alerts and exports.
    fn cleaned(self) -> Self {
        match self {
            Decision::Approve { comment, signature } => Decision::Approve {
                comment: comment.map(|c| free_text(&c)),
                signature,
            },
            Decision::Deny { reason, signature } => Decision::Deny {
                reason: free_text(&reason),
                signature,
            },
            Decision::Certify {
                comment,
                signature,
                invalidation_exception,
            } => Decision::Certify {
                comment: free_text(&comment),
                signature,
                invalidation_exception: invalidation_exception.map(|w| free_text(&w)),
            },
            Decision::Reject { comment, signature } => Decision::Reject {
                comment: free_text(&comment),
                signature,
            },
        }
    }

    /// The alert every SOC sees for it, if any.
    fn alert(&self) -> Option<AlertKind> {
        match self {
            Decision::Deny { .. } => Some(AlertKind::Denial),
            Decision::Reject { .. } => Some(AlertKind::ReviewRejected),
            Decision::Certify {
                invalidation_exception: Some(_),
                ..
            } => Some(AlertKind::InvalidationException),
            Decision::Approve { .. } | Decision::Certify { .. } => None,
        }
    }
}

impl Engine {
    /// Records `who`'s decision on request `id`. A policy refusal is audited (and
    /// alerted when configured) before it is returned.
    pub async fn decide(&self, who: &str, id: RequestId, decision: Decision) -> Result<Request> {
        let kind = decision.kind();
        let decision = decision.cleaned();
        if kind == DecisionKind::Certify {
            self.noted(
                who,
                Some(id),
                kind.as_str(),
                self.check_replayed(who, id).await,
            )
            .await?;
        }
        let alerts = |r: &Request, e: &Event| match decision.alert() {
            Some(k) => alert(k, r, e),
            None => vec![],
        };
        // A denial's statement names its reason as the lifecycle stores it.
        let reason = match &decision {
            Decision::Deny { reason, .. } => Some(reason.trim()),
            _ => None,
        };
        // ssh-keygen runs here, on the blocking pool, not in the step below.
        let verdicts = self
            .decision_verdicts(who, id, kind, reason, decision.signature())
            .await;
        let r = self
            .transition(id, alerts, |r, role, now| {
                let signature =
                    self.check_signed(r, who, kind, reason, decision.signature(), now, &verdicts);
                match &decision {
                    Decision::Approve { comment, .. } => {
                        lifecycle::approve(r, role, who, comment.clone(), signature, now)
                    }
                    Decision::Deny { reason, .. } => {
                        lifecycle::deny(r, role, who, reason, signature, now)
                    }
                    Decision::Certify {
                        comment,
                        invalidation_exception,
                        ..
                    } => lifecycle::certify(
                        r,
                        role,
                        who,
                        comment,
                        invalidation_exception.as_deref(),
                        signature,
                        now,
                    ),
                    Decision::Reject { comment, .. } => {
                        lifecycle::reject(r, role, who, comment, signature, now)
                    }
                }
            })
            .await;
        self.noted(who, Some(id), kind.as_str(), r).await
    }
}
