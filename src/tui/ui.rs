//! Rendering: the chrome (tabs, hint line, status bar, overlays) and dispatch to
//! the screen of the current tab. Reads the app; changes nothing.

use super::app::{App, Dialog, Level, Tab};
use super::draw::centered;
use super::screens;
use super::theme::Theme;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::tui::app::{fits, MIN_H, MIN_W};

pub fn render(f: &mut Frame, app: &App, theme: &Theme) {
    let area = f.area();
    f.render_widget(Block::new().style(theme.base()), area);
    if !fits(area.width, area.height) {
        let msg = format!(
            "Terminal too small: {}x{}. breakglass needs at least {MIN_W}x{MIN_H}. \
             Keys are ignored until it is larger; q quits.",
            area.width, area.height
        );
        f.render_widget(
            Paragraph::new(msg)
                .style(theme.warn())
                .wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    // A message longer than the line wraps onto a second row, not off the edge.
    let hint_rows = match &app.flash {
        Some((_, m)) if m.chars().count() + 1 > area.width as usize => 2,
        _ => 1,
    };
    let [head, body, hint, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(10),
        Constraint::Length(hint_rows),
        Constraint::Length(1),
    ])
    .areas(area);
    tabs(f, app, theme, head);
    let title = match app.tab {
        Tab::Incidents => " Request emergency access ",
        Tab::MyAccess => " My access ",
        Tab::Approvals => " Approvals ",
        Tab::Reviews => " Reviews ",
        Tab::Audit => " Audit ",
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(Span::styled(title, theme.accent()));
    let inner = block.inner(body);
    f.render_widget(block, body);
    match app.tab {
        Tab::Incidents => screens::walk::render(f, app, theme, inner),
        Tab::MyAccess => screens::access::render(f, app, theme, inner),
        Tab::Approvals => screens::queues::approvals(f, app, theme, inner),
        Tab::Reviews => screens::queues::reviews(f, app, theme, inner),
        Tab::Audit => screens::audit::render(f, app, theme, inner),
    }
    hint_line(f, app, theme, hint);
    status_bar(f, app, theme, status);
    if let Some(d) = &app.dialog {
        dialog(f, d, theme, body);
    }
    if let Some(sel) = app.persona_picker {
        persona_picker(f, app, sel, theme, body);
    }
    if app.help {
        help(f, app, theme, body);
    }
}

fn tabs(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    // The name always shows; at 80 columns the padding goes, then the counts'
    // brackets, so the tabs and the DEMO badge still fit.
    let roomy = area.width >= 90;
    let mut spans = vec![Span::styled(
        if roomy { " breakglass " } else { "breakglass" },
        theme.accent(),
    )];
    let (a, r) = (app.approvals_count(), app.reviews_count());
    let compact = !roomy && a.max(r) >= 10;
    for (i, t) in Tab::ALL.iter().enumerate() {
        let label = match t {
            Tab::Incidents => "Incidents".to_string(),
            Tab::MyAccess => "My access".to_string(),
            Tab::Approvals if compact => format!("Approvals {a}"),
            Tab::Approvals => format!("Approvals ({a})"),
            Tab::Reviews if compact => format!("Reviews {r}"),
            Tab::Reviews => format!("Reviews ({r})"),
            Tab::Audit => "Audit".to_string(),
        };
        let style = if *t == Tab::Approvals && app.approvals_flashing() {
            // A request just arrived for this person to approve.
            theme
                .warn()
                .add_modifier(ratatui::style::Modifier::REVERSED)
        } else if *t == app.tab {
            theme.selected()
        } else {
            theme.muted()
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(format!("{} {label}", i + 1), style));
    }
    if app.is_demo() {
        spans.push(Span::raw(if roomy { "  " } else { " " }));
        spans.push(Span::styled(" DEMO ", theme.demo()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn hint_line(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let (text, style) = if let Some((level, msg)) = &app.flash {
        let style = match level {
            Level::Info => theme.ok(),
            Level::Warn => theme.warn(),
            Level::Error => theme.danger(),
        };
        (msg.replace('\n', " "), style)
    } else if let Some(b) = &app.busy {
        const SPIN: [&str; 4] = ["|", "/", "-", "\\"];
        (format!("{} {b}...", SPIN[app.spinner % 4]), theme.warn())
    } else {
        (
            screens::hints(app, area.width.saturating_sub(1) as usize),
            theme.muted(),
        )
    };
    f.render_widget(
        Paragraph::new(Span::styled(format!(" {text}"), style)).wrap(Wrap { trim: false }),
        area,
    );
}

fn status_bar(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let who = if app.is_demo() {
        Span::styled(format!(" {} · demo persona (p) ", app.me), theme.demo())
    } else {
        Span::styled(format!(" {} ", app.me), theme.accent())
    };
    let alerts = if app.data.undelivered > 0 {
        Span::styled(
            format!(" {} alert(s) undelivered ", app.data.undelivered),
            theme.danger(),
        )
    } else {
        Span::styled(" alerts delivered ", theme.ok())
    };
    let mut spans = vec![who, Span::styled("│", theme.border())];
    // Live access stays in sight on every tab, with its countdown.
    if let Some(r) = app.live() {
        let left = r.remaining(app.now).unwrap_or_default();
        let total = r.ttl_seconds.max(1) as f64;
        let badge = format!(
            " ● {} live {} ",
            r.id,
            crate::domain::time::format_hms(left)
        );
        spans.push(Span::styled(
            badge,
            theme
                .countdown(left.num_seconds() as f64 / total)
                .add_modifier(ratatui::style::Modifier::BOLD),
        ));
        spans.push(Span::styled("│", theme.border()));
    }
    spans.extend([
        Span::styled(
            format!(" {} ", app.now.format("%H:%M:%S UTC")),
            theme.base(),
        ),
        Span::styled("│", theme.border()),
        alerts,
        Span::styled("│", theme.border()),
        Span::styled(format!(" {} ", app.store), theme.muted()),
    ]);
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn popup<'a>(f: &mut Frame, area: Rect, title: &'a str, theme: &Theme, lines: Vec<Line<'a>>) {
    f.render_widget(Clear, area);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.accent())
        .title(Span::styled(format!(" {title} "), theme.accent()))
        .style(theme.base());
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn field<'a>(label: &'a str, value: &str, focused: bool, theme: &Theme) -> Line<'a> {
    let style = if focused {
        theme.selected()
    } else {
        theme.base()
    };
    Line::from(vec![
        Span::styled(label, theme.muted()),
        Span::styled(format!("{value}{}", if focused { "▏" } else { "" }), style),
    ])
}

fn dialog(f: &mut Frame, d: &Dialog, theme: &Theme, body: Rect) {
    let area = centered(body, 64, 8);
    let yes_no = |q: String| {
        vec![
            Line::from(q),
            Line::from(""),
            Line::styled("y confirm   n / Esc cancel", theme.muted()),
        ]
    };
    match d {
        Dialog::Approve { id, comment: None } => popup(
            f,
            area,
            "Approve",
            theme,
            vec![
                Line::from(format!(
                    "Approve {id}? You vouch that this access is needed."
                )),
                Line::from(""),
                Line::styled(
                    "y confirm   c add a comment   n / Esc cancel",
                    theme.muted(),
                ),
            ],
        ),
        Dialog::Approve {
            id,
            comment: Some(comment),
        } => popup(
            f,
            area,
            "Approve",
            theme,
            vec![
                Line::from(format!(
                    "Approve {id}? You vouch that this access is needed."
                )),
                field("comment (optional): ", &comment.value, true, theme),
                Line::from(""),
                Line::styled("Enter approve   Esc cancel", theme.muted()),
            ],
        ),
        Dialog::Cancel { id } => popup(
            f,
            area,
            "Cancel request",
            theme,
            yes_no(format!("Withdraw {id}?")),
        ),
        Dialog::EndNow { id } => popup(
            f,
            area,
            "End access now",
            theme,
            yes_no(format!("End {id} now? The backend revokes the access.")),
        ),
        Dialog::Deny { id, reason } => popup(
            f,
            area,
            "Deny",
            theme,
            vec![
                Line::from(format!("Deny {id}: why?")),
                field("reason: ", &reason.value, true, theme),
                Line::from(""),
                Line::styled("Enter deny   Esc cancel", theme.muted()),
            ],
        ),
        Dialog::Certify {
            id,
            comment,
            exception,
            on_exception,
        } => {
            let mut lines = vec![Line::from(format!(
                "Certify {id}'s after-action review? This unlocks the role."
            ))];
            if let Some(why) = exception {
                lines.push(Line::styled(
                    "The copied credentials are not invalidated yet.",
                    theme.warn(),
                ));
                lines.push(field(
                    "certify anyway, because: ",
                    &why.value,
                    *on_exception,
                    theme,
                ));
            }
            lines.push(field(
                "comment (optional): ",
                &comment.value,
                !*on_exception,
                theme,
            ));
            lines.push(Line::from(""));
            lines.push(Line::styled(
                if exception.is_some() {
                    "Enter certify (audited, alerted)  Tab field  Esc cancel"
                } else {
                    "Enter certify   Esc cancel"
                },
                theme.muted(),
            ));
            popup(f, area, "Certify", theme, lines)
        }
        Dialog::Reject { id, comment } => popup(
            f,
            area,
            "Reject review",
            theme,
            vec![
                Line::from(format!("Reject {id}'s review: what is missing?")),
                field("comment: ", &comment.value, true, theme),
                Line::from(""),
                Line::styled("Enter reject   Esc cancel", theme.muted()),
            ],
        ),
        Dialog::Extend {
            id,
            by,
            reason,
            on_reason,
            limits,
            error,
        } => {
            let problem = |on: bool| {
                error
                    .as_ref()
                    .filter(|(at, _)| *at == on)
                    .map(|(_, m)| Line::styled(format!("  ! {m}"), theme.danger()))
            };
            let mut lines = vec![
                Line::from(format!("Extend {id}")),
                Line::styled(limits.clone(), theme.muted()),
                field("by:     ", &by.value, !on_reason, theme),
            ];
            lines.extend(problem(false));
            lines.push(field("reason: ", &reason.value, *on_reason, theme));
            lines.extend(problem(true));
            lines.push(Line::styled(
                "Tab switch field   Enter extend   Esc cancel",
                theme.muted(),
            ));
            popup(f, centered(body, 76, 10), "Extend", theme, lines)
        }
    }
}

/// What a persona does in the policy: requester, approver, certifier, or a
/// service account (automation), never both.
fn persona_parts(app: &App, who: &str) -> String {
    let roles = &app.data.roles;
    let has = |f: fn(&crate::engine::RoleView) -> &Vec<String>| {
        roles.iter().any(|r| f(r).iter().any(|p| p == who))
    };
    let parts: Vec<&str> = [
        (has(|r| &r.people.requesters), "requester"),
        (has(|r| &r.people.approvers), "approver"),
        (has(|r| &r.people.certifiers), "certifier"),
        (
            has(|r| &r.people.automation),
            "automation (service account)",
        ),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if parts.is_empty() {
        "no part".into()
    } else {
        parts.join(", ")
    }
}

fn persona_picker(f: &mut Frame, app: &App, sel: usize, theme: &Theme, body: Rect) {
    let personas = app.personas.clone().unwrap_or_default();
    let mut lines = vec![Line::styled("DEMO: act as another persona", theme.demo())];
    for (i, p) in personas.iter().enumerate() {
        let style = if i == sel {
            theme.selected()
        } else {
            theme.base()
        };
        lines.push(Line::styled(
            format!(
                "  {p:<8} {}{}",
                persona_parts(app, p),
                if *p == app.me { "  (you)" } else { "" }
            ),
            style,
        ));
    }
    lines.push(Line::styled("Enter switch   Esc cancel", theme.muted()));
    popup(
        f,
        centered(body, 60, personas.len() as u16 + 4),
        "Persona",
        theme,
        lines,
    );
}

fn help(f: &mut Frame, app: &App, theme: &Theme, body: Rect) {
    use crate::tui::app::keymap;
    let mut lines: Vec<Line> = vec![];
    let global = keymap::global(app);
    let here = keymap::bindings(app);
    for (title, bindings) in [("Everywhere", &global), ("This screen", &here)] {
        lines.push(Line::styled(title, theme.accent()));
        for b in keymap::shown(bindings) {
            let style = if b.action == keymap::Action::Persona {
                theme.demo()
            } else {
                theme.accent()
            };
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<20}", b.label), style),
                Span::raw(b.what),
            ]));
        }
    }
    let h = lines.len() as u16 + 2;
    popup(f, centered(body, 64, h), "Keys", theme, lines);
}
