//! The console's keys, written once. Each screen's bindings say which keys do
//! what; the handlers (`keys.rs`) act on the `Action` a key maps to here, and
//! the `?` overlay and the hint bar print these same bindings, so what the
//! screen says a key does is what it does. A key no binding lists does
//! nothing, except in a text field, where it is typing.

use super::{App, FormField, ReviewField, Tab, Walk};
use crate::domain::State;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    // Everywhere (outside text fields, but QuitNow).
    Tab,
    NextTab,
    PrevTab,
    Help,
    Quit,
    QuitNow,
    Persona,
    // Lists.
    Move,
    Open,
    Back,
    // Incidents.
    Filter,
    Ticket,
    ClearFilter,
    KeepFilter,
    // Forms.
    NextField,
    PrevField,
    Condition,
    NewLine,
    TtlPreset,
    Submit,
    Answer,
    // My access.
    Cancel,
    Shell,
    Reveal,
    Copy,
    Extend,
    EndNow,
    // Queues.
    Approve,
    Deny,
    Watch,
    Certify,
    Reject,
    // Roles.
    Drill,
}

impl Action {
    /// How much a key's reminder matters on the hint line (higher stays
    /// longer): the submit key never falls off, moving is known to everyone.
    fn weight(self) -> u8 {
        match self {
            Action::Submit => 9,
            // Ending access early must never fall off the line.
            Action::EndNow => 7,
            Action::Open | Action::Approve => 6,
            Action::Reveal | Action::Extend => 5,
            Action::Back => 3,
            Action::Move | Action::NextField | Action::PrevField => 1,
            // Between emergencies, not during one: the first to give way.
            Action::Drill => 0,
            _ => 4,
        }
    }
}

/// A key as bindings name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A key by its code, whatever the modifiers (Shift-Tab arrives as BackTab).
    Code(KeyCode),
    /// A character typed without Ctrl.
    Char(char),
    Ctrl(char),
}

impl Key {
    pub fn matches(self, k: &KeyEvent) -> bool {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match self {
            Key::Code(c) => k.code == c,
            Key::Char(c) => k.code == KeyCode::Char(c) && !ctrl,
            Key::Ctrl(c) => k.code == KeyCode::Char(c) && ctrl,
        }
    }
}

/// Keys, how the screen writes them, what they do there, and the action.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [Key],
    pub label: &'static str,
    pub what: &'static str,
    pub action: Action,
}

const fn b(
    keys: &'static [Key],
    label: &'static str,
    what: &'static str,
    action: Action,
) -> Binding {
    Binding {
        keys,
        label,
        what,
        action,
    }
}

use Key::{Char, Code, Ctrl};

const MOVE_KEYS: &[Key] = &[
    Code(KeyCode::Up),
    Code(KeyCode::Down),
    Code(KeyCode::PageUp),
    Code(KeyCode::PageDown),
    Code(KeyCode::Home),
    Code(KeyCode::End),
    Char('k'),
    Char('j'),
];
const MOVE: Binding = b(MOVE_KEYS, "Up/Down", "move", Action::Move);
const ENTER: &[Key] = &[Code(KeyCode::Enter)];
const ESC: &[Key] = &[Code(KeyCode::Esc)];
const UP_DOWN: &[Key] = &[Code(KeyCode::Up), Code(KeyCode::Down)];
const NEXT: Binding = b(
    &[Code(KeyCode::Tab)],
    "Tab/Shift-Tab",
    "next/previous field",
    Action::NextField,
);
/// Listed with NEXT on one line: hidden from the overlay and the hint bar.
const PREV: Binding = b(&[Code(KeyCode::BackTab)], "", "", Action::PrevField);

/// Everywhere, outside text fields (Ctrl-C everywhere).
pub fn global(app: &App) -> Vec<Binding> {
    const DIGITS: &[Key] = &[Char('1'), Char('2'), Char('3'), Char('4'), Char('5')];
    // In a form Tab moves between its fields; elsewhere it turns the tabs
    // (listed on the digits' line: Tab and Shift-Tab carry no label).
    let in_form = app.in_form();
    let mut out = vec![b(
        DIGITS,
        if in_form { "1-5" } else { "1-5, Tab" },
        "switch tab",
        Action::Tab,
    )];
    if !in_form {
        out.push(b(&[Code(KeyCode::Tab)], "", "", Action::NextTab));
        out.push(b(&[Code(KeyCode::BackTab)], "", "", Action::PrevTab));
    }
    out.extend([
        b(
            &[Char('?')],
            "?",
            "this help (any key closes)",
            Action::Help,
        ),
        b(
            &[Char('q')],
            "q",
            "quit (asks for an owed review first)",
            Action::Quit,
        ),
        b(
            &[Ctrl('c')],
            "Ctrl-C",
            "quit now (drafts are kept)",
            Action::QuitNow,
        ),
    ]);
    if app.is_demo() {
        out.push(b(&[Char('p')], "p", "switch demo persona", Action::Persona));
    }
    out
}

/// The current screen's keys, in the order the screen lists them.
pub fn bindings(app: &App) -> Vec<Binding> {
    match app.tab {
        Tab::Incidents => walk(app),
        Tab::MyAccess => my_access(app),
        Tab::Approvals => vec![
            MOVE,
            b(
                &[Code(KeyCode::Enter), Char('a')],
                "Enter/a",
                "approve (asks to confirm)",
                Action::Approve,
            ),
            b(&[Char('d')], "d", "deny with a reason", Action::Deny),
        ],
        Tab::Reviews => reviews(app),
        Tab::Audit => vec![
            b(
                &MOVE_KEYS[..4],
                "Up/Down, PgUp/PgDn",
                "scroll",
                Action::Move,
            ),
            b(
                &MOVE_KEYS[4..],
                "Home/End",
                "first/last event",
                Action::Move,
            ),
        ],
    }
}

fn walk(app: &App) -> Vec<Binding> {
    match &app.walk {
        Walk::Incidents {
            filtering: true, ..
        } => vec![
            b(
                &[Code(KeyCode::Enter), Code(KeyCode::Up), Code(KeyCode::Down)],
                "Enter",
                "keep the filter, back to the list",
                Action::KeepFilter,
            ),
            b(ESC, "Esc", "clear the filter", Action::ClearFilter),
        ],
        Walk::Incidents { filter, .. } => {
            let mut out = vec![
                MOVE,
                b(ENTER, "Enter", "pick the incident", Action::Open),
                b(&[Char('/')], "/", "filter as you type", Action::Filter),
                b(
                    &[Char('t')],
                    "t",
                    "enter a ticket reference instead",
                    Action::Ticket,
                ),
            ];
            if !filter.value.is_empty() {
                out.push(b(ESC, "Esc", "clear the filter", Action::ClearFilter));
            }
            out
        }
        Walk::Ticket { .. } => vec![
            b(ENTER, "Enter", "continue to roles", Action::Open),
            b(ESC, "Esc", "back", Action::Back),
        ],
        Walk::Roles { .. } => vec![
            MOVE,
            b(
                ENTER,
                "Enter",
                "pick the role (locked roles say why)",
                Action::Open,
            ),
            b(&[Char('D')], "D", "drill this role", Action::Drill),
            b(ESC, "Esc", "back", Action::Back),
        ],
        Walk::Form(form) => {
            let mut out = vec![NEXT, PREV];
            out.extend(match form.focus {
                FormField::Condition => vec![
                    b(
                        &[
                            Code(KeyCode::Up),
                            Code(KeyCode::Down),
                            Code(KeyCode::Left),
                            Code(KeyCode::Right),
                        ],
                        "Up/Down",
                        "choose the condition",
                        Action::Condition,
                    ),
                    b(ENTER, "Enter", "on to the reason", Action::NextField),
                ],
                FormField::Reason => {
                    vec![b(ENTER, "Enter", "new line in the reason", Action::NewLine)]
                }
                FormField::Ttl => vec![
                    b(
                        UP_DOWN,
                        "Up/Down",
                        "the role's TTL presets",
                        Action::TtlPreset,
                    ),
                    b(ENTER, "Enter", "on to Continue", Action::NextField),
                ],
                FormField::Continue => vec![],
            });
            let submit_keys: &'static [Key] = if form.focus == FormField::Continue {
                &[Ctrl('s'), Code(KeyCode::Enter)]
            } else {
                &[Ctrl('s')]
            };
            out.push(b(
                submit_keys,
                "Ctrl-S",
                "continue to confirm",
                Action::Submit,
            ));
            out.push(b(ESC, "Esc", "back", Action::Back));
            out
        }
        Walk::Confirm { .. } => vec![
            b(&[], "type", "the role name to confirm", Action::Open),
            b(ENTER, "Enter", "file the request", Action::Submit),
            b(ESC, "Esc", "back to the form", Action::Back),
        ],
    }
}

fn my_access(app: &App) -> Vec<Binding> {
    if let Some(f) = &app.review {
        let mut out = vec![NEXT, PREV];
        if matches!(f.focus, ReviewField::Necessary | ReviewField::Copied) {
            out.push(b(
                &[
                    Char('y'),
                    Char('n'),
                    Char(' '),
                    Code(KeyCode::Left),
                    Code(KeyCode::Right),
                ],
                "y/n, Space",
                "answer the yes/no question",
                Action::Answer,
            ));
            out.push(b(ENTER, "Enter", "next question", Action::NextField));
        }
        let submit_keys: &'static [Key] = if f.focus == ReviewField::Submit {
            &[Ctrl('s'), Code(KeyCode::Enter)]
        } else {
            &[Ctrl('s')]
        };
        out.push(b(
            submit_keys,
            "Ctrl-S",
            "submit the review",
            Action::Submit,
        ));
        out.push(b(ESC, "Esc", "leave; the draft is kept", Action::Back));
        return out;
    }
    let Some(r) = app.focused() else {
        return vec![MOVE, b(ENTER, "Enter", "open the request", Action::Open)];
    };
    let back = b(ESC, "Esc", "back to the list", Action::Back);
    let cancel = b(&[Char('c')], "c", "cancel the request", Action::Cancel);
    let extend = b(&[Char('e')], "e", "extend (with a reason)", Action::Extend);
    let vendor = r.vendor.is_some();
    match r.state {
        State::Approved if vendor => vec![
            b(
                &[Char('s')],
                "s",
                "open the recorded session (grants access)",
                Action::Shell,
            ),
            cancel,
            back,
        ],
        State::Pending | State::Approved => vec![cancel, back],
        State::Active if vendor => vec![
            b(
                &[Char('s')],
                "s",
                "where the recorded session is",
                Action::Shell,
            ),
            extend,
            b(
                &[Char('x')],
                "x",
                "end access now (ends the session)",
                Action::EndNow,
            ),
            back,
        ],
        State::Active => vec![
            b(
                &[Char('r')],
                "r",
                "reveal/mask the credential",
                Action::Reveal,
            ),
            b(&[Char('y')], "y", "copy it (OSC 52)", Action::Copy),
            extend,
            b(&[Char('x')], "x", "end access now", Action::EndNow),
            back,
        ],
        State::Revoking => vec![
            b(
                &[Char('x')],
                "x",
                "end access now (the revoke is retried)",
                Action::EndNow,
            ),
            back,
        ],
        State::Ended => vec![
            b(
                ENTER,
                "Enter",
                "write the after-action review",
                Action::Open,
            ),
            b(ESC, "Esc", "back", Action::Back),
        ],
        _ => vec![back],
    }
}

fn reviews(app: &App) -> Vec<Binding> {
    let item = app.data.reviews.get(app.reviews_selected);
    let mut out = vec![MOVE];
    if item.is_some_and(|q| q.recording_replayed.is_some()) {
        out.push(b(
            &[Char('w')],
            "w",
            "watch the recorded session",
            Action::Watch,
        ));
    }
    out.extend([
        b(ENTER, "Enter", "read the review", Action::Open),
        b(
            &[Char('c')],
            "c",
            "certify (unlocks the role)",
            Action::Certify,
        ),
        b(&[Char('x')], "x", "reject with a comment", Action::Reject),
    ]);
    if app.reading_review {
        out.push(b(ESC, "Esc", "close the review", Action::Back));
    }
    out
}

/// The action `k` maps to among `bindings`, if any.
pub fn action_in(bindings: &[Binding], k: &KeyEvent) -> Option<Action> {
    bindings
        .iter()
        .find(|b| b.keys.iter().any(|key| key.matches(k)))
        .map(|b| b.action)
}

/// What the overlay and the hint bar show: bindings with a label.
pub fn shown(bindings: &[Binding]) -> impl Iterator<Item = &Binding> {
    bindings.iter().filter(|b| !b.label.is_empty())
}

/// The one-line reminder in `width` columns: the screen's keys in their
/// order, dropping the least important first (the latest of equals), and
/// always `? keys` for the rest.
pub fn hints(app: &App, width: usize) -> String {
    let all = bindings(app);
    let keys: Vec<&Binding> = shown(&all).collect();
    let mut kept: Vec<bool> = vec![true; keys.len()];
    let line = |kept: &[bool]| {
        let mut parts: Vec<String> = keys
            .iter()
            .zip(kept)
            .filter(|(_, k)| **k)
            .map(|(b, _)| format!("{} {}", b.label, b.what))
            .collect();
        parts.push("? keys".into());
        parts.join(" · ")
    };
    let weight = |i: usize| keys[i].action.weight();
    while line(&kept).chars().count() > width {
        let drop = (0..keys.len())
            .filter(|i| kept[*i])
            .min_by_key(|i| (weight(*i), std::cmp::Reverse(*i)));
        match drop {
            Some(i) => kept[i] = false,
            None => break,
        }
    }
    // What went first may fit again once a longer one is out: most important back first.
    let mut dropped: Vec<usize> = (0..keys.len()).filter(|i| !kept[*i]).collect();
    dropped.sort_by_key(|i| (std::cmp::Reverse(weight(*i)), *i));
    for i in dropped {
        kept[i] = true;
        if line(&kept).chars().count() > width {
            kept[i] = false;
        }
    }
    line(&kept)
}
