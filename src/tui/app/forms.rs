//! The console's forms and dialogs: the request form and its walk, the
//! after-action review form, and the questions asked before acting.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    Incident { id: String, label: String },
    Ticket(String),
}

impl Pick {
    pub fn label(&self) -> String {
        match self {
            Pick::Incident { label, .. } => label.clone(),
            Pick::Ticket(t) => format!("ticket {t}"),
        }
    }
    pub(super) fn choice(&self) -> IncidentChoice {
        match self {
            Pick::Incident { id, .. } => IncidentChoice::Id(id.clone()),
            Pick::Ticket(t) => IncidentChoice::Ticket(t.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormField {
    Condition,
    Reason,
    Ttl,
    Continue,
}

#[derive(Debug, Clone)]
pub struct RequestForm {
    pub pick: Pick,
    pub role: RoleView,
    /// None until the person picks one: a pre-selected condition goes
    /// through unnoticed.
    pub condition: Option<usize>,
    pub reason: Input,
    pub ttl: Input,
    pub focus: FormField,
    pub problems: Vec<(RequestField, String)>,
    /// Problems show once Continue was tried, then update as the operator types.
    pub attempted: bool,
}

/// A duration typed into the console (a TTL, an extension), in seconds, or the
/// problem to show: read as the CLI and the config read it, so 0 is refused.
pub(super) fn parse_duration(t: &str) -> Result<i64, String> {
    use crate::domain::duration::{parse_secs, BadDuration};
    parse_secs(t).map_err(|e| match e {
        BadDuration::NotADuration => format!("`{t}` is not a duration; write e.g. 15m or 1h"),
        BadDuration::TooLong => format!("`{t}` is longer than 100 years; write e.g. 15m or 1h"),
    })
}

impl RequestForm {
    pub(super) fn ttl_seconds(&self) -> Result<Option<i64>, String> {
        let t = self.ttl.value.trim();
        if t.is_empty() {
            return Ok(None);
        }
        // `0`, `0m`: no time at all, which is too short rather than unreadable.
        let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic()).trim();
        if !digits.is_empty() && digits.chars().all(|c| c == '0') {
            return Err(format!("`{t}` is too short; ask for e.g. 15m"));
        }
        parse_duration(t).map(Some)
    }

    /// The role's TTL choices (default first, ceiling last); a broker that
    /// predates presets sends none, so the default and the ceiling stand in.
    pub fn ttl_presets(&self) -> Vec<i64> {
        let r = &self.role;
        if r.ttl_presets_seconds.is_empty() {
            crate::domain::policy::ttl_presets(r.default_ttl_seconds, r.max_ttl_seconds)
        } else {
            r.ttl_presets_seconds.clone()
        }
    }

    /// ↓ picks the next longer preset, ↑ the next shorter one, from what is
    /// typed (empty: the default); free text stays possible.
    pub(super) fn step_ttl(&mut self, longer: bool) {
        let now = self
            .ttl_seconds()
            .ok()
            .flatten()
            .unwrap_or(self.role.default_ttl_seconds);
        let presets = self.ttl_presets();
        let next = if longer {
            presets.iter().copied().filter(|&t| t > now).min()
        } else {
            presets.iter().copied().filter(|&t| t < now).max()
        };
        if let Some(t) = next {
            self.ttl.set(&crate::domain::time::human(t));
        }
    }

    pub fn input(&self) -> RequestInput {
        RequestInput {
            incident: self.pick.choice(),
            role: self.role.name.clone(),
            condition: self
                .role
                .conditions
                .get(self.condition.unwrap_or(usize::MAX))
                .cloned()
                .unwrap_or_default(),
            reason: self.reason.value.clone(),
            ttl_seconds: self.ttl_seconds().ok().flatten(),
        }
    }

    pub fn problem(&self, f: RequestField) -> Option<&str> {
        self.problems
            .iter()
            .find(|(x, _)| *x == f)
            .map(|(_, m)| m.as_str())
    }
}

#[derive(Debug, Clone)]
pub enum Walk {
    Incidents {
        filter: Input,
        filtering: bool,
        selected: usize,
    },
    Ticket {
        input: Input,
    },
    Roles {
        pick: Pick,
        selected: usize,
    },
    Form(Box<RequestForm>),
    Confirm {
        form: Box<RequestForm>,
        typed: Input,
    },
}

impl Walk {
    pub(super) fn start() -> Walk {
        Walk::Incidents {
            filter: Input::new(60),
            filtering: false,
            selected: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewField {
    Actions,
    Systems,
    Necessary,
    Copied,
    CopiedWhere,
    FollowUps,
    Submit,
}

impl ReviewField {
    pub(super) const ORDER: [ReviewField; 7] = [
        ReviewField::Actions,
        ReviewField::Systems,
        ReviewField::Necessary,
        ReviewField::Copied,
        ReviewField::CopiedWhere,
        ReviewField::FollowUps,
        ReviewField::Submit,
    ];
}

#[derive(Debug, Clone)]
pub struct ReviewForm {
    pub id: RequestId,
    pub actions: Input,
    pub systems: Input,
    pub necessary: Option<bool>,
    pub copied: Option<bool>,
    pub copied_where: Input,
    pub follow_ups: Input,
    pub focus: ReviewField,
    pub error: Option<String>,
}

impl ReviewForm {
    pub fn new(id: RequestId, draft: Option<&ReviewDraft>) -> Self {
        let d = draft.cloned().unwrap_or_default();
        ReviewForm {
            id,
            actions: Input::multiline(2000).with(&d.actions_taken),
            systems: Input::new(300).with(&d.systems_touched),
            necessary: d.access_necessary,
            copied: d.credentials_copied,
            copied_where: Input::new(300).with(&d.credentials_copied_where),
            follow_ups: Input::multiline(2000).with(&d.follow_ups),
            focus: ReviewField::Actions,
            error: None,
        }
    }
    /// What to keep when the person leaves: unanswered stays unanswered.
    pub fn draft(&self) -> ReviewDraft {
        ReviewDraft {
            actions_taken: self.actions.value.clone(),
            systems_touched: self.systems.value.clone(),
            access_necessary: self.necessary,
            credentials_copied: self.copied,
            credentials_copied_where: self.copied_where.value.clone(),
            follow_ups: self.follow_ups.value.clone(),
        }
    }
    /// The answers to submit; `None` while a yes/no question is unanswered.
    pub fn answers(&self) -> Option<ReviewAnswers> {
        self.draft().complete()
    }
    pub(super) fn field_input(&mut self) -> Option<&mut Input> {
        match self.focus {
            ReviewField::Actions => Some(&mut self.actions),
            ReviewField::Systems => Some(&mut self.systems),
            ReviewField::CopiedWhere => Some(&mut self.copied_where),
            ReviewField::FollowUps => Some(&mut self.follow_ups),
            _ => None,
        }
    }
}

/// A question in a tab that needs an answer before anything happens.
#[derive(Debug, Clone)]
pub enum Dialog {
    Approve {
        id: RequestId,
        /// `c` opens an optional comment (as `approve --comment`).
        comment: Option<Input>,
    },
    Deny {
        id: RequestId,
        reason: Input,
    },
    Certify {
        id: RequestId,
        comment: Input,
        /// Copied credentials not yet invalidated: why certify without it
        /// (required then; recorded, audited and alerted).
        exception: Option<Input>,
        on_exception: bool,
    },
    Reject {
        id: RequestId,
        comment: Input,
    },
    Cancel {
        id: RequestId,
    },
    EndNow {
        id: RequestId,
    },
    Extend {
        id: RequestId,
        by: Input,
        reason: Input,
        on_reason: bool,
        /// The role's limits as they stand for this grant, shown in the dialog.
        limits: String,
        /// What is wrong, shown under its field (`true`: the reason); the typed
        /// text stays.
        error: Option<(bool, String)>,
    },
}

/// An extension's limits for one grant: what the role allows and what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ExtendLimits {
    pub per_extension: i64,
    pub left: u32,
    pub allowed: u32,
    pub total: i64,
    /// Seconds that may still be added before the total cap.
    pub room: i64,
}

impl ExtendLimits {
    pub(super) fn of(role: &RoleView, req: &Request) -> Option<ExtendLimits> {
        let g = req.grant.as_ref()?;
        let span = (g.expires_at? - g.granted_at?).num_seconds();
        let used = g.extensions.len() as u32;
        Some(ExtendLimits {
            per_extension: role.max_ttl_seconds,
            left: role.max_extensions.saturating_sub(used),
            allowed: role.max_extensions,
            total: role.max_total_seconds,
            room: (role.max_total_seconds - span).max(0),
        })
    }

    pub(super) fn describe(&self) -> String {
        use crate::domain::time::human;
        format!(
            "up to {} each · {} of {} extensions left · {} in all, {} more",
            human(self.per_extension),
            self.left,
            self.allowed,
            human(self.total),
            human(self.room)
        )
    }

    /// What is wrong with extending by `secs`, in the console's words.
    pub(super) fn problem(&self, secs: i64) -> Option<String> {
        use crate::domain::time::human;
        if self.left == 0 {
            Some(format!(
                "no extensions left (the role allows {}); request access again",
                self.allowed
            ))
        } else if secs > self.per_extension {
            Some(format!(
                "at most {} per extension",
                human(self.per_extension)
            ))
        } else if secs > self.room {
            Some(format!(
                "at most {} more: the role allows {} in all",
                human(self.room),
                human(self.total)
            ))
        } else {
            None
        }
    }
}
