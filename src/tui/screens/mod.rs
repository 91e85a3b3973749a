//! One module per screen. Each renders from the app state; `keys` lists what the
//! `?` overlay shows for the current screen, `hints` the one-line reminder.

pub mod access;
pub mod audit;
pub mod queues;
pub mod walk;

use super::app::{App, Tab, Walk};
use crate::domain::State;

pub fn keys(app: &App) -> Vec<(&'static str, &'static str)> {
    match app.tab {
        Tab::Incidents => match &app.walk {
            Walk::Incidents { .. } => vec![
                ("Up/Down", "move"),
                ("Enter", "pick the incident"),
                ("/", "filter as you type"),
                ("t", "enter a ticket reference instead"),
            ],
            Walk::Ticket { .. } => vec![("Enter", "continue to roles"), ("Esc", "back")],
            Walk::Roles { .. } => vec![
                ("Up/Down", "move"),
                ("Enter", "pick the role (locked roles say why)"),
                ("Esc", "back"),
            ],
            Walk::Form(_) => vec![
                ("Tab/Shift-Tab", "next/previous field"),
                ("Up/Down", "choose the condition"),
                ("Enter", "new line in the reason"),
                ("Ctrl-S", "continue to confirm"),
                ("Esc", "back"),
            ],
            Walk::Confirm { .. } => vec![
                ("type", "the role name to confirm"),
                ("Enter", "file the request"),
                ("Esc", "back to the form"),
            ],
        },
        Tab::MyAccess => {
            if app.review.is_some() {
                return vec![
                    ("Tab", "next field"),
                    ("y/n, Space", "answer a yes/no question"),
                    ("Ctrl-S", "submit the review"),
                    ("Esc", "leave; the draft is kept"),
                ];
            }
            let vendor = app.focused().is_some_and(|r| r.vendor.is_some());
            match app.focused().map(|r| r.state) {
                None => vec![("Up/Down", "move"), ("Enter", "open the request")],
                Some(State::Approved) if vendor => vec![
                    ("s", "open the recorded session (grants access)"),
                    ("c", "cancel the request"),
                    ("Esc", "back to the list"),
                ],
                Some(State::Pending | State::Approved) => {
                    vec![("c", "cancel the request"), ("Esc", "back to the list")]
                }
                Some(State::Active) if vendor => vec![
                    ("e", "extend (with a reason)"),
                    ("x", "end access now (ends the session)"),
                    ("Esc", "back to the list"),
                ],
                Some(State::Active) => vec![
                    ("r", "reveal/mask the credential"),
                    ("y", "copy it (OSC 52)"),
                    ("e", "extend (with a reason)"),
                    ("x", "end access now"),
                    ("Esc", "back to the list"),
                ],
                Some(State::Ended) => {
                    vec![("Enter", "write the after-action review"), ("Esc", "back")]
                }
                Some(_) => vec![("Esc", "back to the list")],
            }
        }
        Tab::Approvals => vec![
            ("Up/Down", "move"),
            ("Enter/a", "approve (asks to confirm)"),
            ("d", "deny with a reason"),
        ],
        Tab::Reviews => {
            let recorded = app
                .data
                .reviews
                .get(app.reviews_selected)
                .is_some_and(|q| q.recording_replayed.is_some());
            let mut keys = vec![("Up/Down", "move")];
            if recorded {
                keys.push(("w", "watch the recorded session"));
            }
            keys.extend([
                ("Enter", "read the review"),
                ("c", "certify (unlocks the role)"),
                ("x", "reject with a comment"),
            ]);
            keys
        }
        Tab::Audit => vec![
            ("Up/Down, PgUp/PgDn", "scroll"),
            ("Home/End", "first/last event"),
        ],
    }
}

/// How much a key's reminder matters on the hint line (higher stays longer):
/// the submit key never falls off, moving around is known to everyone.
fn weight(key: &str) -> u8 {
    match key {
        "Ctrl-S" => 9,
        "Enter" | "Enter/a" | "type" => 6,
        "Esc" => 3,
        k if k.starts_with("Up/Down") || k.starts_with("Tab") || k.starts_with("Home") => 1,
        _ => 4,
    }
}

/// The one-line reminder in `width` columns: the screen's keys in their
/// order, dropping the least important first (the latest of equals), and
/// always `? keys` for the rest.
pub fn hints(app: &App, width: usize) -> String {
    let keys = keys(app);
    let mut kept: Vec<bool> = vec![true; keys.len()];
    let line = |kept: &[bool]| {
        let mut parts: Vec<String> = keys
            .iter()
            .zip(kept)
            .filter(|(_, k)| **k)
            .map(|((k, w), _)| format!("{k} {w}"))
            .collect();
        parts.push("? keys".into());
        parts.join(" · ")
    };
    while line(&kept).chars().count() > width {
        let drop = (0..keys.len())
            .filter(|i| kept[*i])
            .min_by_key(|i| (weight(keys[*i].0), std::cmp::Reverse(*i)));
        match drop {
            Some(i) => kept[i] = false,
            None => break,
        }
    }
    // What went first may fit again once a longer one is out: most important back first.
    let mut dropped: Vec<usize> = (0..keys.len()).filter(|i| !kept[*i]).collect();
    dropped.sort_by_key(|i| (std::cmp::Reverse(weight(keys[*i].0)), *i));
    for i in dropped {
        kept[i] = true;
        if line(&kept).chars().count() > width {
            kept[i] = false;
        }
    }
    line(&kept)
}
