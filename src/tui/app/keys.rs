//! Keys: what each action does on each tab and form (which key is which
//! action is `keymap`'s), and the dialogs' own y/n and text keys.

use super::keymap::{self, Action};
use super::*;

fn key_is(k: &KeyEvent, c: char) -> bool {
    k.code == KeyCode::Char(c) && !k.modifiers.contains(KeyModifiers::CONTROL)
}

/// Whether a manual ticket matches a role's pattern (an unreadable pattern
/// matches nothing: the engine would refuse it too).
fn ticket_matches(pattern: &str, ticket: &str) -> bool {
    regex::Regex::new(pattern).is_ok_and(|re| re.is_match(ticket))
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
    /// The action `k` maps to on the current screen.
    fn action(&self, k: &KeyEvent) -> Option<Action> {
        keymap::action_in(&keymap::bindings(self), k)
    }

    pub(super) fn key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        let global = keymap::global(self);
        let global_action = keymap::action_in(&global, &k);
        if global_action == Some(Action::QuitNow) {
            return self.quit();
        }
        if self.too_small {
            // Nothing may act behind the notice: an approval or an end of access
            // the person cannot see. Quitting keeps any draft.
            return if key_is(&k, 'q') { self.quit() } else { vec![] };
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
            match global_action {
                Some(Action::Tab) => {
                    if let KeyCode::Char(c @ '1'..='5') = k.code {
                        return self.switch_tab(Tab::ALL[c as usize - '1' as usize]);
                    }
                }
                Some(Action::NextTab) => {
                    return self.switch_tab(Tab::ALL[(self.tab.index() + 1) % 5])
                }
                Some(Action::PrevTab) => {
                    return self.switch_tab(Tab::ALL[(self.tab.index() + 4) % 5])
                }
                Some(Action::Help) => {
                    self.help = true;
                    return vec![];
                }
                Some(Action::Persona) => {
                    let personas = self.personas.clone().unwrap_or_default();
                    self.persona_picker =
                        Some(personas.iter().position(|p| *p == self.me).unwrap_or(0));
                    return vec![];
                }
                Some(Action::Quit) => {
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
                if self.action(&k) == Some(Action::Move) {
                    step(&mut self.audit_scroll, self.data.audit.len(), &k);
                }
                vec![]
            }
        }
    }

    /// A paste goes whole into the field being typed in, if any: never as
    /// keys, so pasted text cannot act as shortcuts or submit a form.
    pub(super) fn paste(&mut self, text: &str) -> Vec<Cmd> {
        if self.too_small || self.help || self.persona_picker.is_some() || !self.typing() {
            return vec![];
        }
        self.flash = None;
        if let Some(i) = self.focused_input() {
            i.paste(text);
        }
        if self.tab == Tab::Incidents && matches!(self.walk, Walk::Form(_)) {
            self.check_form();
        }
        vec![]
    }

    /// The text field keys go to now.
    fn focused_input(&mut self) -> Option<&mut Input> {
        if let Some(d) = &mut self.dialog {
            return match d {
                Dialog::Approve {
                    comment: Some(c), ..
                } => Some(c),
                Dialog::Deny { reason, .. } => Some(reason),
                Dialog::Certify {
                    exception: Some(why),
                    on_exception: true,
                    ..
                } => Some(why),
                Dialog::Certify { comment, .. } | Dialog::Reject { comment, .. } => Some(comment),
                Dialog::Extend {
                    by,
                    reason,
                    on_reason,
                    ..
                } => Some(if *on_reason { reason } else { by }),
                _ => None,
            };
        }
        match self.tab {
            Tab::Incidents => match &mut self.walk {
                Walk::Incidents {
                    filter,
                    filtering: true,
                    selected,
                } => {
                    *selected = 0;
                    Some(filter)
                }
                Walk::Ticket { input } => Some(input),
                Walk::Confirm { typed, .. } => Some(typed),
                Walk::Form(f) => match f.focus {
                    FormField::Reason => Some(&mut f.reason),
                    FormField::Ttl => Some(&mut f.ttl),
                    _ => None,
                },
                _ => None,
            },
            Tab::MyAccess => self.review.as_mut().and_then(|r| r.field_input()),
            _ => None,
        }
    }

    pub(super) fn in_form(&self) -> bool {
        (self.tab == Tab::Incidents && matches!(self.walk, Walk::Form(_)))
            || (self.tab == Tab::MyAccess && self.review.is_some())
    }

    fn become_persona(&mut self, who: String) -> Vec<Cmd> {
        if let Some(f) = self.review.take() {
            self.drafts.insert(f.id, f.draft());
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

    /// The request walk: incidents, a manual ticket, roles, the form, confirm.
    fn walk_key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        let mut cmds = vec![];
        if matches!(self.walk, Walk::Roles { .. }) && self.action(&k) == Some(Action::Drill) {
            return self.drill_selected();
        }
        let next = match &self.walk {
            Walk::Incidents { .. } => self.incidents_key(k),
            Walk::Ticket { .. } => self.ticket_key(k),
            Walk::Roles { .. } => self.roles_key(k),
            Walk::Form(_) if self.action(&k) == Some(Action::Submit) => {
                return self.form_continue()
            }
            Walk::Form(_) => self.form_key(k),
            Walk::Confirm { .. } => self.confirm_key(k, &mut cmds),
        };
        if let Some(n) = next {
            self.walk = n;
        }
        if matches!(self.walk, Walk::Form(_)) {
            self.check_form();
        }
        cmds
    }

    /// Incidents: filter with `/`, pick one (or `t` for a manual ticket).
    fn incidents_key(&mut self, k: KeyEvent) -> Option<Walk> {
        let act = self.action(&k);
        // Only the count and the selected incident are needed, from the matches
        // `update` keeps (cloning every match cost ~2 ms a key with 10,000).
        let (shown, picked) = {
            let sel = match &self.walk {
                Walk::Incidents { selected, .. } => *selected,
                _ => 0,
            };
            let all = self.incident_filter.shown();
            let picked = all
                .get(sel)
                .and_then(|&i| self.data.incidents.get(i))
                .map(|i| (i.id.clone(), i.title.clone()));
            (all.len(), picked)
        };
        let Walk::Incidents {
            filter,
            filtering,
            selected,
        } = &mut self.walk
        else {
            return None;
        };
        let total = shown + 1; // + manual ticket entry
        match act {
            Some(Action::ClearFilter) => {
                *filtering = false;
                *filter = Input::new(60);
            }
            Some(Action::KeepFilter) => *filtering = false,
            _ if *filtering => {
                filter.handle(k);
                *selected = 0;
            }
            Some(Action::Filter) => *filtering = true,
            Some(Action::Ticket) => {
                return Some(Walk::Ticket {
                    input: Input::new(100),
                })
            }
            Some(Action::Open) => {
                return Some(match picked {
                    Some((id, title)) => Walk::Roles {
                        pick: Pick::Incident {
                            label: format!("{id} {title}"),
                            id,
                        },
                        selected: 0,
                    },
                    None => Walk::Ticket {
                        input: Input::new(100),
                    },
                })
            }
            Some(Action::Move) => {
                step(selected, total, &k);
            }
            _ => {}
        }
        None
    }

    /// A manual ticket reference, typed.
    fn ticket_key(&mut self, k: KeyEvent) -> Option<Walk> {
        let act = self.action(&k);
        let Walk::Ticket { input } = &mut self.walk else {
            return None;
        };
        match act {
            Some(Action::Back) => Some(Walk::start()),
            Some(Action::Open) if input.value.trim().is_empty() => None,
            Some(Action::Open) => {
                let t = input.value.trim().to_string();
                // Refused here, while the ticket is on screen, if no role
                // that takes manual tickets would take this one.
                let patterns: Vec<(&str, &str)> = self
                    .data
                    .roles
                    .iter()
                    .filter_map(|r| Some((r.name.as_str(), r.ticket_pattern.as_deref()?)))
                    .collect();
                if !patterns.is_empty() && !patterns.iter().any(|(_, p)| ticket_matches(p, &t)) {
                    let shown: Vec<String> =
                        patterns.iter().map(|(r, p)| format!("{r}: {p}")).collect();
                    self.flash = Some((
                        Level::Warn,
                        crate::sanitize::line(
                            &format!(
                                "`{t}` is not a ticket any role takes; write one like {}",
                                shown.join("; ")
                            ),
                            300,
                        ),
                    ));
                    return None;
                }
                Some(Walk::Roles {
                    pick: Pick::Ticket(t),
                    selected: 0,
                })
            }
            _ => {
                input.handle(k);
                None
            }
        }
    }

    /// Roles: `D` drills the selected one (files the drill, or runs it once
    /// approved); the engine says whether this person may.
    fn drill_selected(&mut self) -> Vec<Cmd> {
        let Walk::Roles { selected, .. } = &self.walk else {
            return vec![];
        };
        let Some(role) = self.data.roles.get(*selected) else {
            return vec![];
        };
        if let Some(why) = &role.lock_reason {
            let said = format!("{} is locked: {why}", role.name);
            self.flash(Level::Warn, said);
            return vec![];
        }
        self.busy = Some(format!("drilling {}", role.name));
        vec![Cmd::Drill(role.name.clone())]
    }

    /// Roles: pick one this person may request now, then fill in the form.
    fn roles_key(&mut self, k: KeyEvent) -> Option<Walk> {
        let act = self.action(&k);
        let Walk::Roles { pick, selected } = &mut self.walk else {
            return None;
        };
        let roles = &self.data.roles;
        match act {
            // Back one step: a typed ticket comes back to be corrected.
            Some(Action::Back) => {
                return Some(match pick {
                    Pick::Ticket(t) => Walk::Ticket {
                        input: Input::new(100).with(t),
                    },
                    Pick::Incident { .. } => Walk::start(),
                })
            }
            Some(Action::Open) => {
                let role = roles.get(*selected)?;
                let bad_ticket = match (&*pick, &role.ticket_pattern) {
                    (Pick::Ticket(t), Some(p)) if !ticket_matches(p, t) => Some((t, p)),
                    _ => None,
                };
                let refused = if let Some(why) = &role.lock_reason {
                    format!("{} is locked: {why}", role.name)
                } else if !role.may_request {
                    format!("{} may not request {}", self.me, role.name)
                } else if matches!(pick, Pick::Ticket(_)) && role.ticket_pattern.is_none() {
                    format!(
                        "{} needs an incident from a source, not a manual ticket",
                        role.name
                    )
                } else if let Some((t, p)) = bad_ticket {
                    format!(
                        "ticket `{t}` does not match {}'s pattern {p}; Esc to correct it",
                        role.name
                    )
                } else {
                    if let Some(kept) = self
                        .kept_form
                        .take_if(|f| f.role.name == role.name && f.pick == *pick)
                    {
                        let mut kept = kept;
                        kept.role = role.clone();
                        return Some(Walk::Form(kept));
                    }
                    return Some(Walk::Form(Box::new(RequestForm {
                        pick: pick.clone(),
                        role: role.clone(),
                        condition: None,
                        reason: Input::multiline(crate::domain::lifecycle::MAX_REASON_CHARS),
                        ttl: Input::new(10)
                            .with(&crate::domain::time::human(role.default_ttl_seconds)),
                        focus: FormField::Condition,
                        problems: vec![],
                        attempted: false,
                    })));
                };
                self.flash = Some((Level::Warn, refused));
            }
            Some(Action::Move) => {
                step(selected, roles.len(), &k);
            }
            _ => {}
        }
        None
    }

    /// The request form: Tab between fields, each field's own keys, Esc back
    /// to the roles.
    fn form_key(&mut self, k: KeyEvent) -> Option<Walk> {
        let act = self.action(&k);
        let Walk::Form(form) = &mut self.walk else {
            return None;
        };
        let order = [
            FormField::Condition,
            FormField::Reason,
            FormField::Ttl,
            FormField::Continue,
        ];
        let pos = order.iter().position(|f| *f == form.focus).unwrap_or(0);
        match act {
            Some(Action::Back) => {
                if !form.reason.value.trim().is_empty() {
                    self.flash = Some((
                        Level::Info,
                        format!(
                            "what you typed for {} is kept: pick it again to go on",
                            form.role.name
                        ),
                    ));
                }
                self.kept_form = Some(form.clone());
                return Some(Walk::Roles {
                    pick: form.pick.clone(),
                    selected: self
                        .data
                        .roles
                        .iter()
                        .position(|r| r.name == form.role.name)
                        .unwrap_or(0),
                });
            }
            Some(Action::NextField) => form.focus = order[(pos + 1) % order.len()],
            Some(Action::PrevField) => form.focus = order[(pos + order.len() - 1) % order.len()],
            Some(Action::Condition) => {
                let n = form.role.conditions.len();
                form.condition = Some(match k.code {
                    KeyCode::Up | KeyCode::Left => {
                        form.condition.map_or(0, |c| c.saturating_sub(1))
                    }
                    _ => form
                        .condition
                        .map_or(0, |c| (c + 1).min(n.saturating_sub(1))),
                });
            }
            Some(Action::TtlPreset) => form.step_ttl(k.code == KeyCode::Down),
            // Enter in the reason, and any key no binding takes: typing.
            Some(Action::NewLine) | None => match form.focus {
                FormField::Reason => {
                    form.reason.handle(k);
                }
                FormField::Ttl => {
                    form.ttl.handle(k);
                }
                FormField::Condition | FormField::Continue => {}
            },
            _ => {}
        }
        None
    }

    /// Confirm: the role's name typed back files the request.
    fn confirm_key(&mut self, k: KeyEvent, cmds: &mut Vec<Cmd>) -> Option<Walk> {
        let act = self.action(&k);
        let Walk::Confirm { form, typed } = &mut self.walk else {
            return None;
        };
        match act {
            Some(Action::Back) => return Some(Walk::Form(form.clone())),
            Some(Action::Submit) => {
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
        }
        None
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

    /// The form's problems: what the console sees itself (no condition
    /// picked, an unreadable TTL), then the engine's checker where it runs in
    /// process (through a broker the broker answers at submit).
    fn check_form(&mut self) {
        let check = self.checker.clone();
        if let Walk::Form(form) = &mut self.walk {
            let input = form.input();
            let mut problems = vec![];
            if form.condition.is_none() {
                problems.push((
                    RequestField::Condition,
                    "pick the condition that applies (↑/↓)".to_string(),
                ));
            }
            if let Err(e) = form.ttl_seconds() {
                problems.push((RequestField::Ttl, e));
            }
            let Some(check) = check else {
                form.problems = problems;
                return;
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
        let act = self.action(&k);
        let Some(r) = self.focused().cloned() else {
            let n = self.data.mine.len();
            match act {
                Some(Action::Open) => {
                    if let Some(r) = self.data.mine.get(self.mine_selected) {
                        self.focus = Some(r.id);
                        if r.state == State::Ended {
                            self.open_review(r.id);
                        }
                        return self.maybe_activate();
                    }
                }
                Some(Action::Move) => {
                    step(&mut self.mine_selected, n, &k);
                }
                _ => {}
            }
            return vec![];
        };
        // Which actions a request's state offers is the keymap's to say.
        match act {
            Some(Action::Back) => {
                self.focus = None;
                vec![]
            }
            Some(Action::Cancel) => {
                self.dialog = Some(Dialog::Cancel { id: r.id });
                vec![]
            }
            Some(Action::Shell) if r.state == State::Approved => vec![Cmd::Shell(r.id)],
            Some(Action::Shell) => {
                self.flash(
                    Level::Warn,
                    format!("{}'s recorded session is open in another terminal", r.id),
                );
                vec![]
            }
            Some(Action::Reveal) => {
                self.revealed = !self.revealed;
                vec![]
            }
            Some(Action::Copy) => match &self.credential {
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
            Some(Action::Extend) => {
                let limits = self
                    .data
                    .roles
                    .iter()
                    .find(|x| x.name == r.role)
                    .and_then(|role| super::forms::ExtendLimits::of(role, &r))
                    .map(|l| l.describe())
                    .unwrap_or_else(|| "within the role's limits".into());
                self.dialog = Some(Dialog::Extend {
                    id: r.id,
                    by: Input::new(10).with("10m"),
                    reason: Input::new(300),
                    on_reason: false,
                    limits,
                    error: None,
                });
                vec![]
            }
            Some(Action::EndNow) => {
                self.dialog = Some(Dialog::EndNow { id: r.id });
                vec![]
            }
            Some(Action::Open) => {
                self.open_review(r.id);
                vec![]
            }
            _ => vec![],
        }
    }

    fn review_key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        let act = self.action(&k);
        let Some(f) = self.review.as_mut() else {
            return vec![];
        };
        let order = ReviewField::ORDER;
        let pos = order.iter().position(|x| *x == f.focus).unwrap_or(0);
        match act {
            Some(Action::Back) => {
                let (id, answers) = (f.id, f.draft());
                self.drafts.insert(id, answers.clone());
                self.review = None;
                self.flash(
                    Level::Info,
                    format!("draft of {id}'s review kept; Enter reopens it"),
                );
                return vec![Cmd::SaveDraft(id, answers)];
            }
            Some(Action::NextField) => f.focus = order[(pos + 1) % order.len()],
            Some(Action::PrevField) => f.focus = order[(pos + order.len() - 1) % order.len()],
            Some(Action::Submit) => {
                let Some(answers) = f.answers() else {
                    f.error = Some("answer both yes/no questions (space or y/n)".into());
                    return vec![];
                };
                f.error = None;
                self.busy = Some("submitting the review".into());
                return vec![Cmd::Review(f.id, answers)];
            }
            Some(Action::Answer) => {
                let slot = if f.focus == ReviewField::Necessary {
                    &mut f.necessary
                } else {
                    &mut f.copied
                };
                *slot = match k.code {
                    KeyCode::Char('y') => Some(true),
                    KeyCode::Char('n') => Some(false),
                    _ => Some(!slot.unwrap_or(true)),
                };
            }
            // A text field takes the rest as typing; Enter leaves a one-line one.
            None => {
                if let Some(i) = f.field_input() {
                    if !i.handle(k) && k.code == KeyCode::Enter {
                        f.focus = order[(pos + 1) % order.len()];
                    }
                }
            }
            _ => {}
        }
        vec![]
    }

    fn approvals_key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        let act = self.action(&k);
        let items = &self.data.approvals;
        if act == Some(Action::Move) {
            step(&mut self.approvals_selected, items.len(), &k);
            return vec![];
        }
        let Some(item) = items.get(self.approvals_selected) else {
            return vec![];
        };
        let id = item.request.id;
        let blocked = item.blocked.clone();
        match act {
            Some(Action::Approve) => match blocked {
                Some(why) => self.flash(Level::Warn, why),
                None => self.dialog = Some(Dialog::Approve { id, comment: None }),
            },
            Some(Action::Deny) => match blocked {
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
        let act = self.action(&k);
        let items = &self.data.reviews;
        if act == Some(Action::Move) {
            step(&mut self.reviews_selected, items.len(), &k);
            return vec![];
        }
        let Some(item) = items.get(self.reviews_selected) else {
            return vec![];
        };
        let id = item.request.id;
        let blocked = item.blocked.clone();
        let replayed = item.recording_replayed;
        let exception = item.exception_would_certify;
        match act {
            Some(Action::Open) => self.reading_review = !self.reading_review,
            Some(Action::Watch) => return vec![Cmd::Replay(id)],
            Some(Action::Certify) if replayed == Some(false) => self.flash(
                Level::Warn,
                format!("{id} is a vendor session: watch its recording first (w)"),
            ),
            // Blocked only by the copied credentials' invalidation: the
            // dialog asks for the certifier's exception.
            Some(Action::Certify) => match blocked {
                Some(why) if !exception => self.flash(Level::Warn, why),
                _ => {
                    self.dialog = Some(Dialog::Certify {
                        id,
                        comment: Input::new(300),
                        exception: exception.then(|| Input::new(300)),
                        on_exception: exception,
                    })
                }
            },
            Some(Action::Reject) => match blocked {
                Some(why) => self.flash(Level::Warn, why),
                None => {
                    self.dialog = Some(Dialog::Reject {
                        id,
                        comment: Input::new(300),
                    })
                }
            },
            Some(Action::Back) => self.reading_review = false,
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
            Dialog::Approve {
                id,
                comment: Some(comment),
            } => {
                if k.code == KeyCode::Enter {
                    let c = comment.value.trim().to_string();
                    done = Some((
                        format!("approving {id}"),
                        Cmd::Approve(*id, (!c.is_empty()).then_some(c)),
                    ));
                } else {
                    comment.handle(k);
                }
            }
            Dialog::Approve { id, comment } => {
                if key_is(&k, 'y') || k.code == KeyCode::Enter {
                    done = Some((format!("approving {id}"), Cmd::Approve(*id, None)));
                } else if key_is(&k, 'c') {
                    *comment = Some(Input::new(300));
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
            Dialog::Certify {
                id,
                comment,
                exception,
                on_exception,
            } => match k.code {
                KeyCode::Tab | KeyCode::BackTab if exception.is_some() => {
                    *on_exception = !*on_exception
                }
                KeyCode::Enter => match exception {
                    Some(why) if why.value.trim().is_empty() => {
                        *on_exception = true;
                        self.flash = Some((
                            Level::Warn,
                            "say why you certify without the copied credentials invalidated (or Esc and let `breakglass sweep` retry)".into(),
                        ));
                    }
                    _ => {
                        done = Some((
                            format!("certifying {id}"),
                            Cmd::Certify(
                                *id,
                                comment.value.clone(),
                                exception.as_ref().map(|w| w.value.clone()),
                            ),
                        ))
                    }
                },
                _ => {
                    let field = match exception {
                        Some(why) if *on_exception => why,
                        _ => comment,
                    };
                    field.handle(k);
                }
            },
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
                error,
                ..
            } => match k.code {
                KeyCode::Tab | KeyCode::BackTab => *on_reason = !*on_reason,
                KeyCode::Enter if !*on_reason => *on_reason = true,
                KeyCode::Enter => {
                    let id = *id;
                    let limits = self.data.mine.iter().find(|r| r.id == id).and_then(|r| {
                        let role = self.data.roles.iter().find(|x| x.name == r.role)?;
                        super::forms::ExtendLimits::of(role, r)
                    });
                    let problem = match super::forms::parse_duration(by.value.trim()) {
                        Err(p) => Some((false, p)),
                        Ok(secs) => match limits.and_then(|l| l.problem(secs)) {
                            Some(p) => Some((false, p)),
                            None if reason.value.trim().is_empty() => Some((
                                true,
                                "say why you need more time: the approvers and the review see it"
                                    .into(),
                            )),
                            None => {
                                // The dialog stays until the engine answers: an
                                // error shows in it with the text still typed.
                                *error = None;
                                self.busy = Some(format!("extending {id}"));
                                return vec![Cmd::Extend(id, secs, reason.value.clone())];
                            }
                        },
                    };
                    if let Some((on, _)) = &problem {
                        *on_reason = *on;
                    }
                    *error = problem;
                }
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
