//! The console's state and its update function: keys and engine results in,
//! commands for the runtime out. No terminal here and no business rule: what may
//! be done comes from the engine's views and refusals.

use super::input::Input;
use crate::audit::{AuditRecord, Broken};
use crate::backend::Credential;
use crate::domain::lifecycle::{NewRequest, RequestField};
use crate::domain::{IncidentRef, Request, RequestId, ReviewAnswers, State};
use crate::engine::{IncidentChoice, QueueItem, RequestInput, RoleView};
use crate::incident::Incident;
use crate::tui::drafts::ReviewDraft;
use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};

mod filter;
mod forms;
pub mod keymap;
mod keys;

pub use filter::IncidentFilter;
pub use forms::{Dialog, FormField, Pick, RequestForm, ReviewField, ReviewForm, Walk};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Incidents,
    MyAccess,
    Approvals,
    Reviews,
    Audit,
}

impl Tab {
    pub const ALL: [Tab; 5] = [
        Tab::Incidents,
        Tab::MyAccess,
        Tab::Approvals,
        Tab::Reviews,
        Tab::Audit,
    ];
    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// What the engine last reported, for the acting identity.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Whose view this is: a load for a persona we just switched away from is dropped.
    pub who: String,
    pub incidents: Vec<Incident>,
    pub source_errors: Vec<String>,
    /// What sources skipped (malformed items, the cap).
    pub source_warnings: Vec<String>,
    pub roles: Vec<RoleView>,
    pub mine: Vec<Request>,
    pub approvals: Vec<QueueItem>,
    pub reviews: Vec<QueueItem>,
    pub audit: Vec<AuditRecord>,
    pub audit_head: i64,
    pub undelivered: u64,
    /// The broker could not be reached (why): the rest is empty, not news.
    pub unreachable: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

pub enum Cmd {
    Refresh,
    Request(RequestInput),
    Activate(RequestId),
    Approve(RequestId, Option<String>),
    Deny(RequestId, String),
    Cancel(RequestId),
    /// `breakglass drill ROLE`: file, or run once approved.
    Drill(String),
    Revoke(RequestId),
    Extend(RequestId, i64, String),
    Review(RequestId, ReviewAnswers),
    /// The comment, and a certifier's exception to the copied credentials'
    /// invalidation when it is still pending.
    Certify(RequestId, String, Option<String>),
    Reject(RequestId, String),
    VerifyAudit,
    /// Put a secret on the clipboard (OSC 52).
    Copy(SecretString),
    SaveDraft(RequestId, ReviewDraft),
    DeleteDraft(RequestId),
    /// The acting identity changed (demo persona switch).
    Identity(String),
    /// Vendor roles: hand the terminal to the recorded session of an approved
    /// request (`breakglass shell`), then come back.
    Shell(RequestId),
    /// Hand the terminal to the replay of a recorded session (`breakglass replay`).
    Replay(RequestId),
    /// Ring the terminal bell: a request arrived that this person may approve.
    Bell,
    Quit,
}

/// What the engine was asked to do to a request, for the flash that reports it;
/// a review that went through also clears its form and draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Approved,
    Denied,
    Cancelled,
    Revoked,
    Extended,
    Reviewed,
    Certified,
    ReviewRejected,
    Verified,
    Drilled,
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verb::Approved => "approved",
            Verb::Denied => "denied",
            Verb::Cancelled => "cancelled",
            Verb::Revoked => "revoked",
            Verb::Extended => "extended",
            Verb::Reviewed => "reviewed",
            Verb::Certified => "certified",
            Verb::ReviewRejected => "review rejected",
            Verb::Verified => "verified",
            Verb::Drilled => "drilled",
        })
    }
}

pub enum Msg {
    Key(KeyEvent),
    /// Text pasted into the terminal (bracketed paste): one edit of the focused field.
    Paste(String),
    Tick(DateTime<Utc>),
    /// The terminal's new size (columns, rows).
    Resize(u16, u16),
    Loaded(Box<Snapshot>),
    Requested(Result<Request, String>),
    Activated(RequestId, Result<(Request, Credential), String>),
    Acted(Verb, Result<Request, String>),
    /// An extension, with the new credential when the backend issued one
    /// (ssh-ca: a certificate with the later expiry; the old one is revoked).
    Extended(Result<(Request, Option<Credential>), String>),
    Verified(i64, Result<u64, Broken>),
    Drafts(BTreeMap<RequestId, ReviewDraft>),
    /// A shell or replay the console handed the terminal to has ended.
    SessionDone {
        id: RequestId,
        replay: bool,
        result: Result<(), String>,
    },
}

/// The engine's field validation (pure), so the form shows the policy's own words.
pub type Checker =
    std::sync::Arc<dyn Fn(&str, &NewRequest) -> Vec<(RequestField, String)> + Send + Sync>;

/// The smallest terminal the console draws in; below it only a notice shows.
pub const MIN_W: u16 = 80;
pub const MIN_H: u16 = 24;

/// Whether the console can be drawn in a terminal of this size.
pub fn fits(width: u16, height: u16) -> bool {
    width >= MIN_W && height >= MIN_H
}

pub struct App {
    pub checker: Option<Checker>,
    pub me: String,
    pub personas: Option<Vec<String>>,
    pub store: String,
    pub now: DateTime<Utc>,
    pub tab: Tab,
    pub data: Snapshot,
    /// The incident list's matches for the filter, kept current by `update`.
    pub incident_filter: IncidentFilter,
    pub loaded: bool,
    pub walk: Walk,
    /// The activation form left with Esc: picking the same role for the same
    /// incident again brings it back as it was.
    pub kept_form: Option<Box<RequestForm>>,
    pub mine_selected: usize,
    /// The request shown in My access (waiting, active, revoked, review).
    pub focus: Option<RequestId>,
    pub revealed: bool,
    pub credential: Option<(RequestId, Credential)>,
    pub review: Option<ReviewForm>,
    pub drafts: BTreeMap<RequestId, ReviewDraft>,
    pub approvals_selected: usize,
    pub reviews_selected: usize,
    pub reading_review: bool,
    pub dialog: Option<Dialog>,
    pub audit_scroll: usize,
    pub verified: Option<(i64, Result<u64, Broken>)>,
    pub persona_picker: Option<usize>,
    pub help: bool,
    pub flash: Option<(Level, String)>,
    pub busy: Option<String>,
    pub spinner: usize,
    /// The screen shows only the "too small" notice: keys must not act unseen.
    pub too_small: bool,
    activating: BTreeSet<RequestId>,
    /// The last load could not reach the broker; the screen shows the one before.
    offline: bool,
    /// A vendor session just closed: open its review once the store says Ended.
    after_session: Option<RequestId>,
    quit_armed: bool,
    pub quitting: bool,
    /// `[ui] approval_bell`: ring when a request arrives that this person may approve.
    pub approval_bell: bool,
    /// The Approvals tab shows highlighted until then: a request just arrived.
    pub approvals_flash_until: Option<DateTime<Utc>>,
    /// Requests this person may approve that were already announced (or were
    /// waiting when the console opened): each rings once.
    announced: BTreeSet<RequestId>,
}

/// How long the Approvals tab stays highlighted after a request arrives.
const APPROVALS_FLASH_SECS: i64 = 10;

impl App {
    pub fn new(
        me: String,
        personas: Option<Vec<String>>,
        store: String,
        now: DateTime<Utc>,
    ) -> Self {
        App {
            checker: None,
            me,
            personas,
            store,
            now,
            tab: Tab::Incidents,
            data: Snapshot::default(),
            incident_filter: IncidentFilter::default(),
            loaded: false,
            walk: Walk::start(),
            kept_form: None,
            mine_selected: 0,
            focus: None,
            revealed: false,
            credential: None,
            review: None,
            drafts: BTreeMap::new(),
            too_small: false,
            approvals_selected: 0,
            reviews_selected: 0,
            reading_review: false,
            dialog: None,
            audit_scroll: 0,
            verified: None,
            persona_picker: None,
            help: false,
            flash: None,
            busy: None,
            spinner: 0,
            activating: BTreeSet::new(),
            offline: false,
            after_session: None,
            quit_armed: false,
            quitting: false,
            approval_bell: true,
            approvals_flash_until: None,
            announced: BTreeSet::new(),
        }
    }

    /// Whether this console asked to activate `id` and awaits the answer.
    pub fn is_activating(&self, id: RequestId) -> bool {
        self.activating.contains(&id)
    }

    pub fn is_demo(&self) -> bool {
        self.personas.is_some()
    }

    /// Incidents matching the filter, as shown: computed by `update` when the
    /// filter or the incidents change, only read here (render calls this).
    pub fn filtered_incidents(&self) -> Vec<&Incident> {
        self.incident_filter
            .shown()
            .iter()
            .filter_map(|&i| self.data.incidents.get(i))
            .collect()
    }

    /// The filter as typed (empty outside the incident list).
    fn filter_text(&self) -> &str {
        match &self.walk {
            Walk::Incidents { filter, .. } => &filter.value,
            _ => "",
        }
    }

    pub fn focused(&self) -> Option<&Request> {
        let id = self.focus?;
        self.data.mine.iter().find(|r| r.id == id)
    }

    /// This person's live access (the one ending soonest), shown on every tab.
    pub fn live(&self) -> Option<&Request> {
        self.data
            .mine
            .iter()
            .filter(|r| r.state == State::Active)
            .min_by_key(|r| r.expires_at())
    }

    pub fn review_owed(&self) -> Option<RequestId> {
        self.data
            .mine
            .iter()
            .find(|r| r.state == State::Ended)
            .map(|r| r.id)
    }

    pub fn approvals_count(&self) -> usize {
        self.data
            .approvals
            .iter()
            .filter(|q| q.blocked.is_none())
            .count()
    }
    pub fn reviews_count(&self) -> usize {
        self.data
            .reviews
            .iter()
            .filter(|q| q.blocked.is_none())
            .count()
    }

    /// Whether keys currently go into a text field (so letters are not shortcuts).
    pub fn typing(&self) -> bool {
        if let Some(d) = &self.dialog {
            return !matches!(
                d,
                Dialog::Approve { comment: None, .. }
                    | Dialog::Cancel { .. }
                    | Dialog::EndNow { .. }
            );
        }
        match self.tab {
            Tab::Incidents => match &self.walk {
                Walk::Incidents { filtering, .. } => *filtering,
                Walk::Ticket { .. } | Walk::Confirm { .. } => true,
                Walk::Form(f) => matches!(f.focus, FormField::Reason | FormField::Ttl),
                Walk::Roles { .. } => false,
            },
            Tab::MyAccess => self.review.as_ref().is_some_and(|r| {
                matches!(
                    r.focus,
                    ReviewField::Actions
                        | ReviewField::Systems
                        | ReviewField::CopiedWhere
                        | ReviewField::FollowUps
                )
            }),
            _ => false,
        }
    }

    fn flash(&mut self, level: Level, msg: impl Into<String>) {
        self.flash = Some((level, crate::sanitize::text(&msg.into(), 600)));
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Cmd> {
        let cmds = self.step(msg);
        let filter = self.filter_text().to_string();
        self.incident_filter.apply(&filter);
        cmds
    }

    fn step(&mut self, msg: Msg) -> Vec<Cmd> {
        match msg {
            Msg::Tick(now) => {
                self.now = now;
                if self.busy.is_some() {
                    self.spinner = self.spinner.wrapping_add(1);
                }
                vec![]
            }
            Msg::Resize(w, h) => {
                self.too_small = !fits(w, h);
                vec![]
            }
            Msg::Key(k) => self.key(k),
            Msg::Paste(t) => self.paste(&t),
            Msg::Loaded(s) => self.loaded(*s),
            Msg::Drafts(d) => {
                self.drafts = d;
                vec![]
            }
            Msg::Requested(r) => {
                self.busy = None;
                match r {
                    Ok(req) => {
                        self.flash(
                            Level::Info,
                            format!(
                                "{} filed: waiting for {} approval(s)",
                                req.id, req.approvals_required
                            ),
                        );
                        self.walk = Walk::start();
                        self.kept_form = None;
                        self.tab = Tab::MyAccess;
                        self.focus = Some(req.id);
                        self.upsert_mine(req);
                        vec![Cmd::Refresh]
                    }
                    Err(e) => {
                        if let Walk::Confirm { form, .. } = &self.walk {
                            self.walk = Walk::Form(form.clone());
                        }
                        self.flash(Level::Error, e);
                        vec![]
                    }
                }
            }
            Msg::Activated(id, r) => {
                self.busy = None;
                self.activating.remove(&id);
                match r {
                    Ok((req, cred)) => {
                        self.revealed = false;
                        self.credential = Some((req.id, cred));
                        self.flash(
                            Level::Info,
                            format!(
                                "{} is active; the credential is shown once and never stored",
                                req.id
                            ),
                        );
                        self.upsert_mine(req);
                        vec![Cmd::Refresh]
                    }
                    Err(e) => {
                        self.flash(Level::Error, e);
                        vec![Cmd::Refresh]
                    }
                }
            }
            Msg::Extended(r) => {
                let r = r.map(|(req, cred)| {
                    if let Some(cred) = cred {
                        self.revealed = false;
                        self.credential = Some((req.id, cred));
                    }
                    req
                });
                self.update(Msg::Acted(Verb::Extended, r))
            }
            Msg::Acted(verb, r) => {
                self.busy = None;
                if verb == Verb::Extended {
                    if let Some(Dialog::Extend { error, .. }) = &mut self.dialog {
                        match &r {
                            Ok(_) => self.dialog = None,
                            Err(e) => {
                                // The engine's words are the CLI's: drop the flag.
                                let e = e.replace(" (--reason TEXT)", "");
                                *error = Some((false, crate::sanitize::line(&e, 300)));
                                return vec![Cmd::Refresh];
                            }
                        }
                    }
                }
                match r {
                    Ok(req) => {
                        let id = req.id;
                        let mut cmds = vec![Cmd::Refresh];
                        if verb == Verb::Reviewed {
                            self.review = None;
                            self.drafts.remove(&id);
                            cmds.push(Cmd::DeleteDraft(id));
                        }
                        // A drill says how it went; a failed one is loud.
                        if verb == Verb::Drilled {
                            self.activating.remove(&id);
                            let (level, said) = drill_said(&req);
                            self.flash(level, said);
                            return cmds;
                        }
                        // One approval of several: say how far, not "approved".
                        let said = if verb == Verb::Approved && req.state == State::Pending {
                            format!(
                                "{id}: {} of {} approvals",
                                req.approvals.len(),
                                req.approvals_required
                            )
                        } else {
                            format!("{id} {verb}")
                        };
                        self.flash(Level::Info, said);
                        if req.requester == self.me {
                            self.upsert_mine(req);
                        }
                        cmds
                    }
                    Err(e) => {
                        if let Some(f) = &mut self.review {
                            f.error = Some(crate::sanitize::line(&e, 300));
                        }
                        self.flash(Level::Error, e);
                        vec![Cmd::Refresh]
                    }
                }
            }
            Msg::Verified(head, r) => {
                self.verified = Some((head, r));
                vec![]
            }
            Msg::SessionDone { id, replay, result } => {
                match (replay, result) {
                    (_, Err(e)) => self.flash(Level::Error, e),
                    (true, Ok(())) => {
                        self.flash(Level::Info, format!("watched the recording of {id}"))
                    }
                    (false, Ok(())) => {
                        self.after_session = Some(id);
                        self.flash(
                            Level::Info,
                            format!("{id}: the recorded session ended and access was revoked"),
                        )
                    }
                }
                vec![Cmd::Refresh]
            }
        }
    }

    fn upsert_mine(&mut self, req: Request) {
        let before = self
            .data
            .mine
            .iter()
            .find(|r| r.id == req.id)
            .map(|r| r.state);
        let (id, after) = (req.id, req.state);
        match self.data.mine.iter_mut().find(|r| r.id == req.id) {
            Some(r) => *r = req,
            None => self.data.mine.insert(0, req),
        }
        self.ended_check(id, before, after);
    }

    /// Access that just ended opens its after-action review.
    fn ended_check(&mut self, id: RequestId, before: Option<State>, after: State) {
        let was_live = matches!(before, Some(State::Active | State::Revoking));
        if after == State::Ended && was_live && self.focus == Some(id) && self.review.is_none() {
            self.open_review(id);
        }
    }

    fn loaded(&mut self, s: Snapshot) -> Vec<Cmd> {
        if s.who != self.me {
            return vec![];
        }
        if let Some(why) = &s.unreachable {
            // Keep the last answer on screen, and a credential shown once with
            // it: a broker restarting has not ended anyone's access.
            self.offline = true;
            self.flash(
                Level::Error,
                format!("{why}; showing its last answer, retrying"),
            );
            return vec![];
        }
        if std::mem::take(&mut self.offline) {
            self.flash(Level::Info, "the broker answers again");
        }
        let before: BTreeMap<RequestId, State> =
            self.data.mine.iter().map(|r| (r.id, r.state)).collect();
        let first = !self.loaded;
        // A reload every 15 s usually brings the same incidents: keep their
        // lower-cased text and matches then.
        if s.incidents != self.data.incidents || self.incident_filter.len() != s.incidents.len() {
            self.incident_filter.load(&s.incidents);
        }
        self.data = s;
        self.loaded = true;
        let mut cmds = vec![];
        // Credentials live only while their access is live. A snapshot read
        // before the grant finished (still Approved or Granting) can arrive
        // after the credential did: that is not the end of the access.
        if let Some((id, _)) = &self.credential {
            if self.data.mine.iter().find(|r| r.id == *id).is_none_or(|r| {
                !matches!(r.state, State::Approved | State::Granting | State::Active)
            }) {
                // Its "is active" flash would now say something false.
                let stale = format!("{id} is active");
                if self
                    .flash
                    .as_ref()
                    .is_some_and(|(_, m)| m.starts_with(&stale))
                {
                    self.flash = None;
                }
                self.credential = None;
                self.revealed = false;
            }
        }
        cmds.extend(self.maybe_activate());
        cmds.extend(self.announce_approvals(first));
        if let Some(id) = self.after_session {
            let state = self.data.mine.iter().find(|r| r.id == id).map(|r| r.state);
            if state == Some(State::Ended) && self.review.is_none() {
                self.after_session = None;
                self.open_review(id);
            } else if state != Some(State::Active) && state != Some(State::Revoking) {
                self.after_session = None;
            }
        }
        if let Some(r) = self.focused() {
            let (id, after) = (r.id, r.state);
            self.ended_check(id, before.get(&id).copied(), after);
        }
        // Opening (or restarting) with live access: open on it, before anything else.
        let live = first.then(|| self.live().map(|r| r.id)).flatten();
        if let Some(id) = live {
            self.tab = Tab::MyAccess;
            self.focus = Some(id);
        }
        if first && live.is_none() {
            if let Some(id) = self.review_owed() {
                if self.drafts.contains_key(&id) {
                    self.tab = Tab::MyAccess;
                    self.focus = Some(id);
                    self.open_review(id);
                    self.flash(
                        Level::Warn,
                        format!("Resumed your saved draft of {id}'s after-action review"),
                    );
                } else {
                    self.flash(
                        Level::Warn,
                        format!("{id} owes its after-action review: My access (2), then Enter"),
                    );
                }
            }
        }
        if self.tab == Tab::Audit
            && self
                .verified
                .as_ref()
                .is_none_or(|(h, _)| *h != self.data.audit_head)
        {
            cmds.push(Cmd::VerifyAudit);
        }
        let n = self.data.audit.len();
        self.audit_scroll = self.audit_scroll.min(n.saturating_sub(1));
        cmds
    }

    /// A request this person may approve arrived since the last load: ring
    /// (once per request, never for one's own) and highlight the Approvals tab.
    /// What was already waiting when the console opened (or the persona
    /// changed) is on the tab's count, not news.
    fn announce_approvals(&mut self, first: bool) -> Vec<Cmd> {
        if first {
            self.announced.clear();
        }
        let fresh: Vec<RequestId> = self
            .data
            .approvals
            .iter()
            .filter(|q| q.blocked.is_none() && q.request.requester != self.me)
            .map(|q| q.request.id)
            .filter(|id| !self.announced.contains(id))
            .collect();
        self.announced.extend(fresh.iter().copied());
        if first || fresh.is_empty() {
            return vec![];
        }
        self.approvals_flash_until =
            Some(self.now + chrono::Duration::seconds(APPROVALS_FLASH_SECS));
        let ids: Vec<String> = fresh.iter().map(|id| id.to_string()).collect();
        self.flash(
            Level::Warn,
            format!(
                "{} waiting for your approval: Approvals ({})",
                ids.join(", "),
                Tab::Approvals.index() + 1
            ),
        );
        if self.approval_bell {
            vec![Cmd::Bell]
        } else {
            vec![]
        }
    }

    /// Whether the Approvals tab is highlighted now.
    pub fn approvals_flashing(&self) -> bool {
        self.approvals_flash_until.is_some_and(|t| self.now < t)
    }

    /// The focused request was approved: activate it for its requester, who is us.
    /// Not a vendor request: its access exists only inside the recorded session,
    /// which the person opens when ready (`s`).
    fn maybe_activate(&mut self) -> Vec<Cmd> {
        match self.focused() {
            // A drill's credential goes to the probe only: it runs as a drill.
            Some(r)
                if r.state == State::Approved
                    && r.drill.is_some()
                    && !self.activating.contains(&r.id) =>
            {
                let (id, role) = (r.id, r.role.clone());
                self.activating.insert(id);
                self.busy = Some(format!("{id} approved: running the drill of {role}"));
                vec![Cmd::Drill(role)]
            }
            Some(r)
                if r.state == State::Approved
                    && r.vendor.is_none()
                    && !self.activating.contains(&r.id) =>
            {
                let id = r.id;
                self.activating.insert(id);
                self.busy = Some(format!("{id} approved: granting access"));
                vec![Cmd::Activate(id)]
            }
            _ => vec![],
        }
    }

    fn open_review(&mut self, id: RequestId) {
        self.tab = Tab::MyAccess;
        self.focus = Some(id);
        // A review sent back starts from what was submitted, not blank.
        let sent_back = self
            .data
            .mine
            .iter()
            .find(|r| r.id == id && !r.rejections.is_empty())
            .and_then(|r| r.review.as_ref())
            .map(|rv| ReviewDraft::answered(&rv.answers));
        let draft = self.drafts.get(&id).cloned().or(sent_back);
        self.review = Some(ReviewForm::new(id, draft.as_ref()));
    }

    fn switch_tab(&mut self, t: Tab) -> Vec<Cmd> {
        self.tab = t;
        self.dialog = None;
        if t == Tab::Audit
            && self
                .verified
                .as_ref()
                .is_none_or(|(h, _)| *h != self.data.audit_head)
        {
            return vec![Cmd::VerifyAudit];
        }
        vec![]
    }

    fn quit(&mut self) -> Vec<Cmd> {
        let mut cmds = vec![];
        if let Some(f) = &self.review {
            cmds.push(Cmd::SaveDraft(f.id, f.draft()));
        }
        self.quitting = true;
        cmds.push(Cmd::Quit);
        cmds
    }
}

/// The flash after a drill: where it stands, or the step that failed.
fn drill_said(req: &Request) -> (Level, String) {
    let id = req.id;
    match req.drill.as_ref().and_then(|d| d.outcome.as_ref()) {
        None => (
            Level::Info,
            format!(
                "{id}: drill of {} waits for {} approval(s); press D again once approved",
                req.role, req.approvals_required
            ),
        ),
        Some(o) if o.passed() => (
            Level::Info,
            format!(
                "{id}: drill of {} passed (granted, worked, revoked, gone)",
                req.role
            ),
        ),
        Some(o) => (
            Level::Error,
            crate::sanitize::line(
                &format!(
                    "{id}: drill of {} FAILED at {}: {}",
                    req.role,
                    o.failed_step.map(|s| s.as_str()).unwrap_or("?"),
                    o.error.as_deref().unwrap_or("")
                ),
                300,
            ),
        ),
    }
}
