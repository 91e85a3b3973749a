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
use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};

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
    pub roles: Vec<RoleView>,
    pub mine: Vec<Request>,
    pub approvals: Vec<QueueItem>,
    pub reviews: Vec<QueueItem>,
    pub audit: Vec<AuditRecord>,
    pub audit_head: i64,
    pub undelivered: u64,
}

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
    fn choice(&self) -> IncidentChoice {
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
    pub condition: usize,
    pub reason: Input,
    pub ttl: Input,
    pub focus: FormField,
    pub problems: Vec<(RequestField, String)>,
    /// Problems show once Continue was tried, then update as the operator types.
    pub attempted: bool,
}

impl RequestForm {
    fn ttl_seconds(&self) -> Result<Option<i64>, String> {
        let t = self.ttl.value.trim();
        if t.is_empty() {
            return Ok(None);
        }
        humantime::parse_duration(t)
            .map(|d| Some(d.as_secs() as i64))
            .map_err(|_| format!("`{t}` is not a duration; write e.g. 15m or 1h"))
    }

    pub fn input(&self) -> RequestInput {
        RequestInput {
            incident: self.pick.choice(),
            role: self.role.name.clone(),
            condition: self
                .role
                .conditions
                .get(self.condition)
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
    fn start() -> Walk {
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
    const ORDER: [ReviewField; 7] = [
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
    pub fn new(id: RequestId, draft: Option<&ReviewAnswers>) -> Self {
        let d = draft.cloned().unwrap_or_default();
        ReviewForm {
            id,
            actions: Input::multiline(2000).with(&d.actions_taken),
            systems: Input::new(300).with(&d.systems_touched),
            necessary: draft.map(|d| d.access_necessary),
            copied: draft.map(|d| d.credentials_copied),
            copied_where: Input::new(300).with(&d.credentials_copied_where),
            follow_ups: Input::multiline(2000).with(&d.follow_ups),
            focus: ReviewField::Actions,
            error: None,
        }
    }
    pub fn answers(&self) -> ReviewAnswers {
        ReviewAnswers {
            actions_taken: self.actions.value.clone(),
            systems_touched: self.systems.value.clone(),
            access_necessary: self.necessary.unwrap_or(false),
            credentials_copied: self.copied.unwrap_or(false),
            credentials_copied_where: self.copied_where.value.clone(),
            follow_ups: self.follow_ups.value.clone(),
        }
    }
    fn field_input(&mut self) -> Option<&mut Input> {
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
    },
    Deny {
        id: RequestId,
        reason: Input,
    },
    Certify {
        id: RequestId,
        comment: Input,
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
    },
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
    Approve(RequestId),
    Deny(RequestId, String),
    Cancel(RequestId),
    Revoke(RequestId),
    Extend(RequestId, i64, String),
    Review(RequestId, ReviewAnswers),
    Certify(RequestId, String),
    Reject(RequestId, String),
    VerifyAudit,
    /// Put a secret on the clipboard (OSC 52).
    Copy(SecretString),
    SaveDraft(RequestId, ReviewAnswers),
    DeleteDraft(RequestId),
    /// The acting identity changed (demo persona switch).
    Identity(String),
    /// Vendor roles: hand the terminal to the recorded session of an approved
    /// request (`breakglass shell`), then come back.
    Shell(RequestId),
    /// Hand the terminal to the replay of a recorded session (`breakglass replay`).
    Replay(RequestId),
    Quit,
}

pub enum Msg {
    Key(KeyEvent),
    Tick(DateTime<Utc>),
    Resize,
    Loaded(Box<Snapshot>),
    Requested(Result<Request, String>),
    Activated(RequestId, Result<(Request, Credential), String>),
    Acted(&'static str, Result<Request, String>),
    Verified(i64, Result<u64, Broken>),
    Drafts(BTreeMap<RequestId, ReviewAnswers>),
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

pub struct App {
    pub checker: Option<Checker>,
    pub me: String,
    pub personas: Option<Vec<String>>,
    pub store: String,
    pub now: DateTime<Utc>,
    pub tab: Tab,
    pub data: Snapshot,
    pub loaded: bool,
    pub walk: Walk,
    pub mine_selected: usize,
    /// The request shown in My access (waiting, active, revoked, review).
    pub focus: Option<RequestId>,
    pub revealed: bool,
    pub credential: Option<(RequestId, Credential)>,
    pub review: Option<ReviewForm>,
    pub drafts: BTreeMap<RequestId, ReviewAnswers>,
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
    activating: BTreeSet<RequestId>,
    /// A vendor session just closed: open its review once the store says Ended.
    after_session: Option<RequestId>,
    quit_armed: bool,
    pub quitting: bool,
}

fn key_is(k: &KeyEvent, c: char) -> bool {
    k.code == KeyCode::Char(c) && !k.modifiers.contains(KeyModifiers::CONTROL)
}

fn ctrl(k: &KeyEvent, c: char) -> bool {
    k.code == KeyCode::Char(c) && k.modifiers.contains(KeyModifiers::CONTROL)
}

fn step(sel: &mut usize, len: usize, key: &KeyEvent) -> bool {
    if len == 0 {
        *sel = 0;
        return matches!(
            key.code,
            KeyCode::Up
                | KeyCode::Down
                | KeyCode::PageUp
                | KeyCode::PageDown
                | KeyCode::Home
                | KeyCode::End
        );
    }
    match key.code {
        KeyCode::Up => *sel = sel.saturating_sub(1),
        KeyCode::Down => *sel = (*sel + 1).min(len - 1),
        KeyCode::PageUp => *sel = sel.saturating_sub(10),
        KeyCode::PageDown => *sel = (*sel + 10).min(len - 1),
        KeyCode::Home => *sel = 0,
        KeyCode::End => *sel = len - 1,
        KeyCode::Char('k') => *sel = sel.saturating_sub(1),
        KeyCode::Char('j') => *sel = (*sel + 1).min(len - 1),
        _ => return false,
    }
    true
}

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
            loaded: false,
            walk: Walk::start(),
            mine_selected: 0,
            focus: None,
            revealed: false,
            credential: None,
            review: None,
            drafts: BTreeMap::new(),
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
            after_session: None,
            quit_armed: false,
            quitting: false,
        }
    }

    pub fn is_demo(&self) -> bool {
        self.personas.is_some()
    }

    /// Incidents matching the filter, as shown.
    pub fn filtered_incidents(&self) -> Vec<&Incident> {
        let f = match &self.walk {
            Walk::Incidents { filter, .. } => filter.value.to_lowercase(),
            _ => String::new(),
        };
        self.data
            .incidents
            .iter()
            .filter(|i| {
                f.is_empty()
                    || i.id.to_lowercase().contains(&f)
                    || i.title.to_lowercase().contains(&f)
                    || i.severity.to_lowercase().contains(&f)
            })
            .collect()
    }

    pub fn focused(&self) -> Option<&Request> {
        let id = self.focus?;
        self.data.mine.iter().find(|r| r.id == id)
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
                Dialog::Approve { .. } | Dialog::Cancel { .. } | Dialog::EndNow { .. }
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
        match msg {
            Msg::Tick(now) => {
                self.now = now;
                if self.busy.is_some() {
                    self.spinner = self.spinner.wrapping_add(1);
                }
                vec![]
            }
            Msg::Resize => vec![],
            Msg::Key(k) => self.key(k),
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
            Msg::Acted(verb, r) => {
                self.busy = None;
                match r {
                    Ok(req) => {
                        let id = req.id;
                        let mut cmds = vec![Cmd::Refresh];
                        if verb == "reviewed" {
                            self.review = None;
                            self.drafts.remove(&id);
                            cmds.push(Cmd::DeleteDraft(id));
                        }
                        self.flash(Level::Info, format!("{id} {verb}"));
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
        let before: BTreeMap<RequestId, State> =
            self.data.mine.iter().map(|r| (r.id, r.state)).collect();
        let first = !self.loaded;
        self.data = s;
        self.loaded = true;
        let mut cmds = vec![];
        // Credentials live only while their access is live.
        if let Some((id, _)) = &self.credential {
            if self
                .data
                .mine
                .iter()
                .find(|r| r.id == *id)
                .is_none_or(|r| r.state != State::Active)
            {
                self.credential = None;
                self.revealed = false;
            }
        }
        cmds.extend(self.maybe_activate());
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
        if first {
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

    /// The focused request was approved: activate it for its requester, who is us.
    /// Not a vendor request: its access exists only inside the recorded session,
    /// which the person opens when ready (`s`).
    fn maybe_activate(&mut self) -> Vec<Cmd> {
        match self.focused() {
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
        self.review = Some(ReviewForm::new(id, self.drafts.get(&id)));
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
            cmds.push(Cmd::SaveDraft(f.id, f.answers()));
        }
        self.quitting = true;
        cmds.push(Cmd::Quit);
        cmds
    }

    fn key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        if ctrl(&k, 'c') {
            return self.quit();
        }
        if self.help {
            self.help = false;
            return vec![];
        }
        self.flash = None;
        if let Some(sel) = self.persona_picker.as_mut() {
            let personas = self.personas.clone().unwrap_or_default();
            match k.code {
                KeyCode::Esc => self.persona_picker = None,
                KeyCode::Enter => {
                    let who = personas
                        .get(*sel)
                        .cloned()
                        .unwrap_or_else(|| self.me.clone());
                    self.persona_picker = None;
                    return self.become_persona(who);
                }
                _ => {
                    step(sel, personas.len(), &k);
                }
            }
            return vec![];
        }
        if self.dialog.is_some() {
            return self.dialog_key(k);
        }
        if !self.typing() {
            match k.code {
                KeyCode::Char(c @ '1'..='5') => {
                    return self.switch_tab(Tab::ALL[c as usize - '1' as usize])
                }
                KeyCode::Tab if !self.in_form() => {
                    return self.switch_tab(Tab::ALL[(self.tab.index() + 1) % 5])
                }
                KeyCode::BackTab if !self.in_form() => {
                    return self.switch_tab(Tab::ALL[(self.tab.index() + 4) % 5])
                }
                KeyCode::Char('?') => {
                    self.help = true;
                    return vec![];
                }
                KeyCode::Char('p') if self.is_demo() => {
                    let personas = self.personas.clone().unwrap_or_default();
                    self.persona_picker =
                        Some(personas.iter().position(|p| *p == self.me).unwrap_or(0));
                    return vec![];
                }
                KeyCode::Char('q') => {
                    if let Some(id) = self.review_owed() {
                        if !self.quit_armed {
                            self.quit_armed = true;
                            self.open_review(id);
                            self.flash(Level::Warn, format!(
                                "{id} owes its after-action review. Fill it in now (Ctrl-S submits), or Esc then q to quit: your draft is kept"
                            ));
                            return vec![];
                        }
                    }
                    return self.quit();
                }
                _ => {}
            }
        }
        match self.tab {
            Tab::Incidents => self.walk_key(k),
            Tab::MyAccess => self.mine_key(k),
            Tab::Approvals => self.approvals_key(k),
            Tab::Reviews => self.reviews_key(k),
            Tab::Audit => {
                step(&mut self.audit_scroll, self.data.audit.len(), &k);
                vec![]
            }
        }
    }

    fn in_form(&self) -> bool {
        (self.tab == Tab::Incidents && matches!(self.walk, Walk::Form(_)))
            || (self.tab == Tab::MyAccess && self.review.is_some())
    }

    fn become_persona(&mut self, who: String) -> Vec<Cmd> {
        if let Some(f) = self.review.take() {
            self.drafts.insert(f.id, f.answers());
        }
        self.me = who.clone();
        self.walk = Walk::start();
        self.focus = None;
        self.credential = None;
        self.revealed = false;
        self.quit_armed = false;
        self.loaded = false;
        self.flash(Level::Info, format!("DEMO: you are now {who}"));
        vec![Cmd::Identity(who), Cmd::Refresh]
    }

    fn walk_key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        // Only the count and the selected incident are needed: cloning every
        // filtered incident cost ~2 ms a key with 10,000 (benches/console.rs).
        let (shown, picked) = {
            let sel = match &self.walk {
                Walk::Incidents { selected, .. } => *selected,
                _ => 0,
            };
            let all = self.filtered_incidents();
            let picked = all.get(sel).map(|i| (i.id.clone(), i.title.clone()));
            (all.len(), picked)
        };
        let roles = self.data.roles.clone();
        let mut next: Option<Walk> = None;
        let mut cmds = vec![];
        match &mut self.walk {
            Walk::Incidents {
                filter,
                filtering,
                selected,
            } => {
                let total = shown + 1; // + manual ticket entry
                if *filtering {
                    match k.code {
                        KeyCode::Esc => {
                            *filtering = false;
                            *filter = Input::new(60);
                        }
                        KeyCode::Enter | KeyCode::Down | KeyCode::Up => *filtering = false,
                        _ => {
                            filter.handle(k);
                            *selected = 0;
                        }
                    }
                } else if key_is(&k, '/') {
                    *filtering = true;
                } else if key_is(&k, 't') {
                    next = Some(Walk::Ticket {
                        input: Input::new(100),
                    });
                } else if k.code == KeyCode::Enter {
                    match &picked {
                        Some((id, title)) => {
                            next = Some(Walk::Roles {
                                pick: Pick::Incident {
                                    id: id.clone(),
                                    label: format!("{id} {title}"),
                                },
                                selected: 0,
                            })
                        }
                        None => {
                            next = Some(Walk::Ticket {
                                input: Input::new(100),
                            })
                        }
                    }
                } else if k.code == KeyCode::Esc {
                    *filter = Input::new(60);
                } else {
                    step(selected, total, &k);
                }
            }
            Walk::Ticket { input } => match k.code {
                KeyCode::Esc => next = Some(Walk::start()),
                KeyCode::Enter if !input.value.trim().is_empty() => {
                    next = Some(Walk::Roles {
                        pick: Pick::Ticket(input.value.trim().to_string()),
                        selected: 0,
                    })
                }
                _ => {
                    input.handle(k);
                }
            },
            Walk::Roles { pick, selected } => match k.code {
                KeyCode::Esc => next = Some(Walk::start()),
                KeyCode::Enter => {
                    if let Some(role) = roles.get(*selected) {
                        if let Some(why) = &role.lock_reason {
                            self.flash =
                                Some((Level::Warn, format!("{} is locked: {why}", role.name)));
                        } else if !role.may_request {
                            self.flash = Some((
                                Level::Warn,
                                format!("{} may not request {}", self.me, role.name),
                            ));
                        } else if matches!(pick, Pick::Ticket(_)) && role.ticket_pattern.is_none() {
                            self.flash = Some((
                                Level::Warn,
                                format!(
                                    "{} needs an incident from a source, not a manual ticket",
                                    role.name
                                ),
                            ));
                        } else {
                            next = Some(Walk::Form(Box::new(RequestForm {
                                pick: pick.clone(),
                                role: role.clone(),
                                condition: 0,
                                reason: Input::multiline(
                                    crate::domain::lifecycle::MAX_REASON_CHARS,
                                ),
                                ttl: Input::new(10).with(&crate::domain::lifecycle::human(
                                    role.default_ttl_seconds,
                                )),
                                focus: FormField::Condition,
                                problems: vec![],
                                attempted: false,
                            })))
                        }
                    }
                }
                _ => {
                    step(selected, roles.len(), &k);
                }
            },
            Walk::Form(form) => {
                let order = [
                    FormField::Condition,
                    FormField::Reason,
                    FormField::Ttl,
                    FormField::Continue,
                ];
                let pos = order.iter().position(|f| *f == form.focus).unwrap_or(0);
                match k.code {
                    KeyCode::Esc => {
                        next = Some(Walk::Roles {
                            pick: form.pick.clone(),
                            selected: roles
                                .iter()
                                .position(|r| r.name == form.role.name)
                                .unwrap_or(0),
                        })
                    }
                    KeyCode::Tab => form.focus = order[(pos + 1) % order.len()],
                    KeyCode::BackTab => form.focus = order[(pos + order.len() - 1) % order.len()],
                    _ if ctrl(&k, 's')
                        || (k.code == KeyCode::Enter && form.focus == FormField::Continue) =>
                    {
                        return self.form_continue();
                    }
                    _ => match form.focus {
                        FormField::Condition => {
                            let n = form.role.conditions.len();
                            match k.code {
                                KeyCode::Up | KeyCode::Left => {
                                    form.condition = form.condition.saturating_sub(1)
                                }
                                KeyCode::Down | KeyCode::Right => {
                                    form.condition = (form.condition + 1).min(n.saturating_sub(1))
                                }
                                KeyCode::Enter => form.focus = FormField::Reason,
                                _ => {}
                            }
                        }
                        FormField::Reason => {
                            form.reason.handle(k);
                        }
                        FormField::Ttl => {
                            if k.code == KeyCode::Enter {
                                form.focus = FormField::Continue;
                            } else {
                                form.ttl.handle(k);
                            }
                        }
                        FormField::Continue => {}
                    },
                }
            }
            Walk::Confirm { form, typed } => match k.code {
                KeyCode::Esc => next = Some(Walk::Form(form.clone())),
                KeyCode::Enter => {
                    if typed.value.trim() == form.role.name {
                        self.busy = Some("filing the request".into());
                        cmds.push(Cmd::Request(form.input()));
                    } else {
                        self.flash = Some((
                            Level::Warn,
                            format!("type the role name `{}` to confirm", form.role.name),
                        ));
                    }
                }
                _ => {
                    typed.handle(k);
                }
            },
        }
        if let Some(n) = next {
            self.walk = n;
        }
        if matches!(self.walk, Walk::Form(_)) {
            self.check_form();
        }
        cmds
    }

    /// Moves on to the confirm step when the engine finds nothing wrong.
    fn form_continue(&mut self) -> Vec<Cmd> {
        self.check_form();
        if let Walk::Form(form) = &mut self.walk {
            form.attempted = true;
            match form.problems.first() {
                None => {
                    self.walk = Walk::Confirm {
                        form: form.clone(),
                        typed: Input::new(80),
                    }
                }
                Some((field, _)) => {
                    form.focus = match field {
                        RequestField::Condition => FormField::Condition,
                        RequestField::Reason => FormField::Reason,
                        RequestField::Ttl => FormField::Ttl,
                        RequestField::Incident => FormField::Continue,
                    };
                }
            }
        }
        vec![]
    }

    fn check_form(&mut self) {
        let Some(check) = self.checker.clone() else {
            return;
        };
        if let Walk::Form(form) = &mut self.walk {
            let input = form.input();
            let mut problems = match form.ttl_seconds() {
                Err(e) => vec![(RequestField::Ttl, e)],
                Ok(_) => vec![],
            };
            let incident = match &form.pick {
                Pick::Ticket(t) => IncidentRef::Ticket {
                    reference: t.clone(),
                },
                Pick::Incident { id, label } => IncidentRef::Source {
                    source: String::new(),
                    id: id.clone(),
                    title: label.clone(),
                },
            };
            let new = NewRequest {
                incident,
                condition: input.condition,
                reason: input.reason,
                ttl_seconds: input.ttl_seconds,
            };
            for p in check(&form.role.name, &new) {
                if !problems.iter().any(|(f, _)| *f == p.0) {
                    problems.push(p);
                }
            }
            form.problems = problems;
        }
    }

    fn mine_key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        if self.review.is_some() {
            return self.review_key(k);
        }
        let Some(r) = self.focused().cloned() else {
            let n = self.data.mine.len();
            if k.code == KeyCode::Enter {
                if let Some(r) = self.data.mine.get(self.mine_selected) {
                    self.focus = Some(r.id);
                    if r.state == State::Ended {
                        self.open_review(r.id);
                    }
                    return self.maybe_activate();
                }
            } else {
                step(&mut self.mine_selected, n, &k);
            }
            return vec![];
        };
        match k.code {
            KeyCode::Esc => {
                self.focus = None;
                vec![]
            }
            KeyCode::Char('c') if r.state == State::Pending || r.state == State::Approved => {
                self.dialog = Some(Dialog::Cancel { id: r.id });
                vec![]
            }
            KeyCode::Char('s') if r.vendor.is_some() && r.state == State::Approved => {
                vec![Cmd::Shell(r.id)]
            }
            KeyCode::Char('s') if r.vendor.is_some() && r.state == State::Active => {
                self.flash(
                    Level::Warn,
                    format!("{}'s recorded session is open in another terminal", r.id),
                );
                vec![]
            }
            KeyCode::Char('r') if r.state == State::Active => {
                self.revealed = !self.revealed;
                vec![]
            }
            KeyCode::Char('y') if r.state == State::Active => match &self.credential {
                Some((id, cred)) if *id == r.id => {
                    let text: String = cred
                        .reveal()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    self.flash(Level::Info, "credential copied to the clipboard (OSC 52)");
                    vec![Cmd::Copy(SecretString::from(text))]
                }
                _ => {
                    self.flash(
                        Level::Warn,
                        "this console did not receive the credential; it is never stored",
                    );
                    vec![]
                }
            },
            KeyCode::Char('e') if r.state == State::Active => {
                self.dialog = Some(Dialog::Extend {
                    id: r.id,
                    by: Input::new(10).with("10m"),
                    reason: Input::new(300),
                    on_reason: false,
                });
                vec![]
            }
            KeyCode::Char('x') if r.state == State::Active || r.state == State::Revoking => {
                self.dialog = Some(Dialog::EndNow { id: r.id });
                vec![]
            }
            KeyCode::Enter if r.state == State::Ended => {
                self.open_review(r.id);
                vec![]
            }
            _ => vec![],
        }
    }

    fn review_key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        let Some(f) = self.review.as_mut() else {
            return vec![];
        };
        let order = ReviewField::ORDER;
        let pos = order.iter().position(|x| *x == f.focus).unwrap_or(0);
        match k.code {
            KeyCode::Esc => {
                let (id, answers) = (f.id, f.answers());
                self.drafts.insert(id, answers.clone());
                self.review = None;
                self.flash(
                    Level::Info,
                    format!("draft of {id}'s review kept; Enter reopens it"),
                );
                return vec![Cmd::SaveDraft(id, answers)];
            }
            KeyCode::Tab => f.focus = order[(pos + 1) % order.len()],
            KeyCode::BackTab => f.focus = order[(pos + order.len() - 1) % order.len()],
            _ if ctrl(&k, 's') || (k.code == KeyCode::Enter && f.focus == ReviewField::Submit) => {
                if f.necessary.is_none() || f.copied.is_none() {
                    f.error = Some("answer both yes/no questions (space or y/n)".into());
                    return vec![];
                }
                f.error = None;
                self.busy = Some("submitting the review".into());
                return vec![Cmd::Review(f.id, f.answers())];
            }
            _ => match f.focus {
                ReviewField::Necessary | ReviewField::Copied => {
                    let slot = if f.focus == ReviewField::Necessary {
                        &mut f.necessary
                    } else {
                        &mut f.copied
                    };
                    match k.code {
                        KeyCode::Char('y') => *slot = Some(true),
                        KeyCode::Char('n') => *slot = Some(false),
                        KeyCode::Char(' ') | KeyCode::Left | KeyCode::Right => {
                            *slot = Some(!slot.unwrap_or(true))
                        }
                        KeyCode::Enter => f.focus = order[pos + 1],
                        _ => {}
                    }
                }
                _ => {
                    if let Some(i) = f.field_input() {
                        if !i.handle(k) && k.code == KeyCode::Enter {
                            f.focus = order[(pos + 1) % order.len()];
                        }
                    }
                }
            },
        }
        vec![]
    }

    fn approvals_key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        let items = &self.data.approvals;
        if step(&mut self.approvals_selected, items.len(), &k) {
            return vec![];
        }
        let Some(item) = items.get(self.approvals_selected) else {
            return vec![];
        };
        let id = item.request.id;
        let blocked = item.blocked.clone();
        match k.code {
            KeyCode::Enter | KeyCode::Char('a') => match blocked {
                Some(why) => self.flash(Level::Warn, why),
                None => self.dialog = Some(Dialog::Approve { id }),
            },
            KeyCode::Char('d') => match blocked {
                Some(why) if item.request.requester == self.me => self.flash(Level::Warn, why),
                _ => {
                    self.dialog = Some(Dialog::Deny {
                        id,
                        reason: Input::new(300),
                    })
                }
            },
            _ => {}
        }
        vec![]
    }

    fn reviews_key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        let items = &self.data.reviews;
        if step(&mut self.reviews_selected, items.len(), &k) {
            return vec![];
        }
        let Some(item) = items.get(self.reviews_selected) else {
            return vec![];
        };
        let id = item.request.id;
        let blocked = item.blocked.clone();
        let replayed = item.recording_replayed;
        match k.code {
            KeyCode::Enter => self.reading_review = !self.reading_review,
            KeyCode::Char('w') => match replayed {
                Some(_) => return vec![Cmd::Replay(id)],
                None => self.flash(Level::Warn, format!("{id} has no recorded session")),
            },
            KeyCode::Char('c') if replayed == Some(false) => self.flash(
                Level::Warn,
                format!("{id} is a vendor session: watch its recording first (w)"),
            ),
            KeyCode::Char('c') => match blocked {
                Some(why) => self.flash(Level::Warn, why),
                None => {
                    self.dialog = Some(Dialog::Certify {
                        id,
                        comment: Input::new(300),
                    })
                }
            },
            KeyCode::Char('x') => match blocked {
                Some(why) => self.flash(Level::Warn, why),
                None => {
                    self.dialog = Some(Dialog::Reject {
                        id,
                        comment: Input::new(300),
                    })
                }
            },
            KeyCode::Esc => self.reading_review = false,
            _ => {}
        }
        vec![]
    }

    fn dialog_key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        let Some(d) = self.dialog.as_mut() else {
            return vec![];
        };
        if k.code == KeyCode::Esc {
            self.dialog = None;
            return vec![];
        }
        let mut done: Option<(String, Cmd)> = None;
        match d {
            Dialog::Approve { id } => {
                if key_is(&k, 'y') || k.code == KeyCode::Enter {
                    done = Some((format!("approving {id}"), Cmd::Approve(*id)));
                } else if key_is(&k, 'n') {
                    self.dialog = None;
                }
            }
            Dialog::Cancel { id } => {
                if key_is(&k, 'y') {
                    done = Some((format!("cancelling {id}"), Cmd::Cancel(*id)));
                } else if key_is(&k, 'n') {
                    self.dialog = None;
                }
            }
            Dialog::EndNow { id } => {
                if key_is(&k, 'y') {
                    done = Some((format!("revoking {id}"), Cmd::Revoke(*id)));
                } else if key_is(&k, 'n') {
                    self.dialog = None;
                }
            }
            Dialog::Deny { id, reason } => {
                if k.code == KeyCode::Enter {
                    if reason.value.trim().is_empty() {
                        self.flash = Some((Level::Warn, "a denial needs a reason".into()));
                    } else {
                        done = Some((
                            format!("denying {id}"),
                            Cmd::Deny(*id, reason.value.clone()),
                        ));
                    }
                } else {
                    reason.handle(k);
                }
            }
            Dialog::Certify { id, comment } => {
                if k.code == KeyCode::Enter {
                    done = Some((
                        format!("certifying {id}"),
                        Cmd::Certify(*id, comment.value.clone()),
                    ));
                } else {
                    comment.handle(k);
                }
            }
            Dialog::Reject { id, comment } => {
                if k.code == KeyCode::Enter {
                    if comment.value.trim().is_empty() {
                        self.flash = Some((Level::Warn, "say what the review is missing".into()));
                    } else {
                        done = Some((
                            format!("rejecting {id}'s review"),
                            Cmd::Reject(*id, comment.value.clone()),
                        ));
                    }
                } else {
                    comment.handle(k);
                }
            }
            Dialog::Extend {
                id,
                by,
                reason,
                on_reason,
            } => match k.code {
                KeyCode::Tab | KeyCode::BackTab => *on_reason = !*on_reason,
                KeyCode::Enter if !*on_reason => *on_reason = true,
                KeyCode::Enter => match humantime::parse_duration(by.value.trim()) {
                    Ok(d) if d.as_secs() > 0 => {
                        done = Some((
                            format!("extending {id}"),
                            Cmd::Extend(*id, d.as_secs() as i64, reason.value.clone()),
                        ));
                    }
                    _ => {
                        self.flash = Some((
                            Level::Warn,
                            format!("`{}` is not a duration; write e.g. 10m", by.value.trim()),
                        ))
                    }
                },
                _ => {
                    if *on_reason {
                        reason.handle(k);
                    } else {
                        by.handle(k);
                    }
                }
            },
        }
        match done {
            Some((busy, cmd)) => {
                self.dialog = None;
                self.busy = Some(busy);
                vec![cmd]
            }
            None => vec![],
        }
    }
}
