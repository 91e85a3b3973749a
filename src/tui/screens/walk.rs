//! Incidents -> roles -> activation form -> confirm.

use crate::domain::lifecycle::RequestField;
use crate::domain::time::human;
use crate::tui::app::{App, FormField, Walk};
use crate::tui::draw::{clean, fit, label_value};
use crate::tui::theme::Theme;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

pub fn render(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    match &app.walk {
        Walk::Incidents {
            filter,
            filtering,
            selected,
        } => incidents(f, app, theme, area, &filter.value, *filtering, *selected),
        Walk::Ticket { input } => {
            let lines = vec![
                Line::from("Manual ticket reference (for roles with a ticket pattern):"),
                Line::from(""),
                Line::from(vec![
                    Span::styled("ticket: ", theme.muted()),
                    Span::styled(format!("{}▏", input.value), theme.selected()),
                ]),
                Line::from(""),
                Line::styled(
                    "Roles that accept tickets show their pattern on the next screen.",
                    theme.muted(),
                ),
            ];
            f.render_widget(Paragraph::new(lines), area);
        }
        Walk::Roles { pick, selected } => roles(f, app, theme, area, &pick.label(), *selected),
        Walk::Form(form) => form_view(f, form, theme, area),
        Walk::Confirm { form, typed } => {
            let mut lines = summary(form, theme);
            lines.push(Line::from(""));
            lines.push(Line::styled(
                format!(
                    "Type the role name ({}) and press Enter to file the request:",
                    form.role.name
                ),
                theme.warn(),
            ));
            let ok = typed.value.trim() == form.role.name;
            lines.push(Line::from(vec![
                Span::styled("> ", theme.muted()),
                Span::styled(
                    format!("{}▏", typed.value),
                    if ok { theme.ok() } else { theme.selected() },
                ),
            ]));
            f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
        }
    }
}

fn age(app: &App, t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    match t {
        None => "-".into(),
        Some(t) => {
            let s = (app.now - t).num_seconds().max(0);
            if s < 3600 {
                format!("{}m", s / 60)
            } else if s < 86400 {
                format!("{}h", s / 3600)
            } else {
                format!("{}d", s / 86400)
            }
        }
    }
}

fn incidents(
    f: &mut Frame,
    app: &App,
    theme: &Theme,
    area: Rect,
    filter: &str,
    filtering: bool,
    selected: usize,
) {
    let [top, list] = Layout::vertical([Constraint::Length(2), Constraint::Min(3)]).areas(area);
    let mut head = vec![Span::styled(
        "Pick the incident this access is for.  ",
        theme.base(),
    )];
    if filtering || !filter.is_empty() {
        head.push(Span::styled("filter: ", theme.muted()));
        head.push(Span::styled(
            format!("{filter}{}", if filtering { "▏" } else { "" }),
            theme.selected(),
        ));
    } else {
        head.push(Span::styled("/ filters", theme.muted()));
    }
    let mut top_lines = vec![Line::from(head)];
    if !app.data.source_errors.is_empty() {
        top_lines.push(Line::styled(
            // The engine's errors already name the source and say it is unavailable.
            clean(&app.data.source_errors.join("; ")),
            theme.danger(),
        ));
    } else if !app.data.source_warnings.is_empty() {
        top_lines.push(Line::styled(
            clean(&app.data.source_warnings.join("; ")),
            theme.warn(),
        ));
    } else {
        top_lines.push(Line::styled(
            format!(
                "  {:<10} {:<5} {:<6} {:>5}  TITLE",
                "ID", "SEV", "STATUS", "AGE"
            ),
            theme.muted(),
        ));
    }
    f.render_widget(Paragraph::new(top_lines), top);
    // The matches `update` computed; drawing never filters.
    let shown = app.incident_filter.shown();
    let width = list.width.saturating_sub(33) as usize;
    // Build only the rows in view (the same window List picks with a fresh
    // state: the selection at the bottom once past the first screen). Building
    // every row cost ~11 ms a frame with 10,000 incidents (benches/console.rs).
    let total = shown.len() + 1; // + the manual ticket entry
    let rows = list.height as usize;
    let selected = selected.min(total - 1);
    let start = selected
        .saturating_sub(rows.saturating_sub(1))
        .min(total.saturating_sub(rows));
    let mut items: Vec<ListItem> = shown
        .iter()
        .skip(start)
        .take(rows)
        .filter_map(|&i| app.data.incidents.get(i))
        .map(|i| {
            let sev_style = if i.severity.eq_ignore_ascii_case("SEV1") {
                theme.danger()
            } else {
                theme.warn()
            };
            let title = fit(&clean(&i.title), width);
            ListItem::new(Line::from(vec![
                Span::styled(format!("{:<10} ", clean(&i.id)), theme.base()),
                Span::styled(format!("{:<5} ", clean(&i.severity)), sev_style),
                Span::styled(
                    format!(
                        "{:<6} ",
                        if i.status == crate::incident::IncidentStatus::Open {
                            "open"
                        } else {
                            "ack"
                        }
                    ),
                    theme.muted(),
                ),
                Span::styled(format!("{:>5}  ", age(app, i.opened_at)), theme.muted()),
                Span::styled(title, theme.base()),
            ]))
        })
        .collect();
    if start + rows >= total {
        items.push(ListItem::new(Line::styled(
            "+ enter a ticket reference instead (t)",
            theme.muted(),
        )));
    }
    let mut state = ListState::default().with_selected(Some(selected - start));
    f.render_stateful_widget(
        List::new(items)
            .highlight_style(theme.selected())
            .highlight_symbol("› "),
        list,
        &mut state,
    );
}

fn roles(f: &mut Frame, app: &App, theme: &Theme, area: Rect, incident: &str, selected: usize) {
    let [top, list, detail] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(5),
    ])
    .areas(area);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled("for ", theme.muted()),
                Span::styled(clean(incident), theme.accent()),
            ]),
            Line::styled(
                format!(
                    "  {:<26} {:<9} {:>5} {:>5} {:>4}  STATE",
                    "ROLE", "BACKEND", "TTL", "MAX", "APPR"
                ),
                theme.muted(),
            ),
        ]),
        top,
    );
    // The state column gets what the row leaves (2 for the marker, 57 for the
    // columns); the detail below says it in full.
    let state_width = (list.width as usize).saturating_sub(59);
    let items: Vec<ListItem> = app
        .data
        .roles
        .iter()
        .map(|r| {
            let locked = r.lock_reason.is_some() || !r.may_request;
            let style = if locked { theme.muted() } else { theme.base() };
            let failed_step = r
                .drill
                .last
                .as_ref()
                .filter(|_| r.drill.failing)
                .and_then(|o| o.failed_step);
            let state = match (&r.lock_reason, r.may_request) {
                // Red before anything else: the path an emergency needs is broken.
                _ if failed_step.is_some() => Span::styled(
                    fit(
                        &format!(
                            "DRILL FAILED at {}",
                            failed_step.map(|s| s.as_str()).unwrap_or("?")
                        ),
                        state_width,
                    ),
                    theme.danger(),
                ),
                (Some(why), _) => Span::styled(
                    fit(&format!("locked: {}", clean(why)), state_width),
                    theme.warn(),
                ),
                (None, false) => Span::styled("not yours to request".to_string(), theme.muted()),
                (None, true) => Span::styled("available".to_string(), theme.ok()),
            };
            ListItem::new(Line::from(vec![
                Span::styled(
                    format!(
                        "{:<26} {:<9} {:>5} {:>5} {:>4}  ",
                        r.name,
                        r.backend,
                        human(r.default_ttl_seconds),
                        human(r.max_ttl_seconds),
                        r.approvals_required
                    ),
                    style,
                ),
                state,
            ]))
        })
        .collect();
    let mut state = ListState::default().with_selected(Some(selected));
    f.render_stateful_widget(
        List::new(items)
            .highlight_style(theme.selected())
            .highlight_symbol("› "),
        list,
        &mut state,
    );
    if let Some(r) = app.data.roles.get(selected) {
        let mut lines = vec![Line::styled(clean(&r.description), theme.base())];
        if let Some(why) = &r.lock_reason {
            lines.push(Line::from(vec![
                Span::styled(format!("{:<14}", "locked"), theme.muted()),
                Span::styled(clean(why), theme.warn()),
            ]));
        }
        if r.drill.last.is_some() || r.drill_every_seconds.is_some() {
            let style = if r.drill.failing {
                theme.danger()
            } else if r.drill.overdue {
                theme.warn()
            } else {
                theme.muted()
            };
            let mut said = r.drill.describe(app.now);
            if let Some(e) = r.drill.last.as_ref().and_then(|o| o.error.as_ref()) {
                said.push_str(&format!(": {e}"));
            }
            lines.push(Line::from(vec![
                Span::styled(format!("{:<14}", "drill"), theme.muted()),
                Span::styled(clean(&said), style),
            ]));
        }
        lines.push(label_value("conditions", r.conditions.join("; "), theme));
        if let Some(p) = &r.ticket_pattern {
            lines.push(label_value(
                "ticket",
                format!("accepts manual tickets matching {p}"),
                theme,
            ));
        }
        if let Some(u) = &r.routine {
            lines.push(Line::from(vec![
                Span::styled(format!("{:<14}", "routine use"), theme.muted()),
                Span::styled(
                    format!("a request now would be the {}", u.describe_with("your")),
                    if u.over { theme.warn() } else { theme.base() },
                ),
            ]));
        }
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), detail);
    }
}

fn summary<'a>(form: &crate::tui::app::RequestForm, theme: &Theme) -> Vec<Line<'a>> {
    let input = form.input();
    vec![
        Line::styled("Confirm the request", theme.accent()),
        label_value("incident", clean(&form.pick.label()), theme),
        label_value(
            "role",
            format!("{} ({})", form.role.name, form.role.backend),
            theme,
        ),
        label_value("condition", input.condition.clone(), theme),
        label_value("reason", clean(&input.reason), theme),
        label_value(
            "TTL",
            human(input.ttl_seconds.unwrap_or(form.role.default_ttl_seconds)),
            theme,
        ),
        label_value(
            "approvals",
            match form.role.routine.as_ref().filter(|u| u.over) {
                Some(u) => format!(
                    "{} other person(s) must approve: one more than usual, as the {}",
                    form.role.approvals_required + 1,
                    u.describe_with("your")
                ),
                None => format!(
                    "{} other person(s) must approve",
                    form.role.approvals_required
                ),
            },
            theme,
        ),
        label_value(
            "alerts",
            "the SOC is alerted when access is granted".into(),
            theme,
        ),
    ]
}

/// The role's TTL choices, the one that applies marked: `↑/↓ 10m [20m] 30m`.
fn ttl_presets_line<'a>(form: &crate::tui::app::RequestForm, theme: &Theme) -> Line<'a> {
    let now = form
        .input()
        .ttl_seconds
        .unwrap_or(form.role.default_ttl_seconds);
    let mut spans = vec![Span::styled("  ↑/↓ ", theme.muted())];
    for t in form.ttl_presets() {
        let (text, style) = if t == now {
            (format!("[{}] ", human(t)), theme.accent())
        } else {
            (format!(" {}  ", human(t)), theme.muted())
        };
        spans.push(Span::styled(text, style));
    }
    Line::from(spans)
}

fn form_view(f: &mut Frame, form: &crate::tui::app::RequestForm, theme: &Theme, area: Rect) {
    let show = |field: RequestField| {
        if form.attempted {
            form.problem(field)
        } else {
            None
        }
    };
    let focus_style = |on: bool| if on { theme.selected() } else { theme.base() };
    let mut lines = vec![
        Line::from(vec![
            Span::styled("Activation form  ", theme.accent()),
            Span::styled(
                format!("{} for {}", form.role.name, clean(&form.pick.label())),
                theme.muted(),
            ),
        ]),
        Line::from(""),
        Line::styled(
            "Condition",
            if form.focus == FormField::Condition {
                theme.accent()
            } else {
                theme.muted()
            },
        ),
    ];
    for (i, c) in form.role.conditions.iter().enumerate() {
        let picked = form.condition == Some(i);
        let mark = if picked { "(•)" } else { "( )" };
        // Nothing picked yet: the first row shows where the arrows start.
        let here = form.condition.unwrap_or(0) == i;
        lines.push(Line::styled(
            format!("  {mark} {c}"),
            focus_style(form.focus == FormField::Condition && here),
        ));
    }
    if let Some(p) = show(RequestField::Condition) {
        lines.push(Line::styled(format!("  ! {}", clean(p)), theme.danger()));
    }
    lines.push(Line::styled(
        "Reason (what is broken, what you will do)",
        if form.focus == FormField::Reason {
            theme.accent()
        } else {
            theme.muted()
        },
    ));
    let reason_lines: Vec<&str> = if form.reason.value.is_empty() {
        vec![""]
    } else {
        form.reason.value.split('\n').collect()
    };
    for (i, l) in reason_lines.iter().enumerate().take(4) {
        let cursor = form.focus == FormField::Reason && i == reason_lines.len().min(4) - 1;
        lines.push(Line::styled(
            format!("  {}{}", clean(l), if cursor { "▏" } else { "" }),
            focus_style(form.focus == FormField::Reason),
        ));
    }
    if let Some(p) = show(RequestField::Reason) {
        lines.push(Line::styled(format!("  ! {}", clean(p)), theme.danger()));
    }
    lines.push(Line::from(vec![
        Span::styled(
            "TTL ",
            if form.focus == FormField::Ttl {
                theme.accent()
            } else {
                theme.muted()
            },
        ),
        Span::styled(
            format!(
                "{}{}",
                form.ttl.value,
                if form.focus == FormField::Ttl {
                    "▏"
                } else {
                    ""
                }
            ),
            focus_style(form.focus == FormField::Ttl),
        ),
        Span::styled(
            if form.ttl.value.trim().is_empty() {
                format!(
                    "   (empty: the default, {}; {} to {})",
                    human(form.role.default_ttl_seconds),
                    human(form.role.min_ttl_seconds.max(1)),
                    human(form.role.max_ttl_seconds)
                )
            } else {
                format!(
                    "   (default {}; {} to {})",
                    human(form.role.default_ttl_seconds),
                    human(form.role.min_ttl_seconds.max(1)),
                    human(form.role.max_ttl_seconds)
                )
            },
            theme.muted(),
        ),
    ]));
    lines.push(ttl_presets_line(form, theme));
    if let Some(p) = show(RequestField::Ttl) {
        lines.push(Line::styled(format!("  ! {}", clean(p)), theme.danger()));
    }
    if let Some(p) = show(RequestField::Incident) {
        lines.push(Line::styled(format!("  ! {}", clean(p)), theme.danger()));
    }
    lines.push(Line::from(""));
    lines.push(Line::styled(
        "[ Continue ]  (Ctrl-S)",
        focus_style(form.focus == FormField::Continue),
    ));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}
