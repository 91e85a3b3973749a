//! My access: my requests; waiting for approvals; the live countdown; revoked;
//! the after-action review form.

use crate::domain::time::format_hms;
use crate::domain::time::human;
use crate::domain::{Request, State};
use crate::tui::app::{App, ReviewField, ReviewForm};
use crate::tui::draw::{clean, label_value, style_for_state};
use crate::tui::theme::Theme;
use crate::tui::widgets::BigClock;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

pub fn render(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    if let Some(form) = &app.review {
        if let Some(r) = app.data.mine.iter().find(|r| r.id == form.id) {
            return review_form(f, app, r, form, theme, area);
        }
    }
    match app.focused() {
        None => list(f, app, theme, area),
        Some(r) => match r.state {
            State::Pending | State::Approved | State::Granting => waiting(f, app, r, theme, area),
            State::Active => active(f, app, r, theme, area),
            _ => ended(f, app, r, theme, area),
        },
    }
}

fn list(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    if app.data.mine.is_empty() {
        f.render_widget(
            Paragraph::new(vec![
                Line::from(format!("{} has no emergency access requests.", app.me)),
                Line::styled("Start from the Incidents tab (1).", theme.muted()),
            ]),
            area,
        );
        return;
    }
    let items: Vec<ListItem> = app
        .data
        .mine
        .iter()
        .map(|r| {
            let extra = match r.remaining(app.now) {
                Some(d) => format!("{} left", format_hms(d)),
                None => String::new(),
            };
            ListItem::new(Line::from(vec![
                Span::styled(
                    format!("{:<8} {:<26} ", r.id.to_string(), r.role),
                    theme.base(),
                ),
                Span::styled(
                    format!("{:<10}", r.state.as_str()),
                    style_for_state(r.state, theme),
                ),
                Span::styled(format!(" {extra}"), theme.accent()),
            ]))
        })
        .collect();
    let mut state = ListState::default().with_selected(Some(app.mine_selected));
    f.render_stateful_widget(
        List::new(items)
            .highlight_style(theme.selected())
            .highlight_symbol("› "),
        area,
        &mut state,
    );
}

fn header<'a>(r: &Request, theme: &Theme) -> Vec<Line<'a>> {
    vec![
        Line::from(vec![
            Span::styled(format!("{} ", r.id), theme.accent()),
            Span::styled(format!("{} ", r.role), theme.base()),
            Span::styled(format!("[{}]", r.state), style_for_state(r.state, theme)),
        ]),
        label_value("incident", clean(&r.incident.label()), theme),
        label_value("condition", r.condition.clone(), theme),
    ]
}

/// Roles with `max_activations`: "3rd activation in 30 days", warning when it
/// went beyond (and so needs one approval more).
fn routine_line<'a>(r: &Request, theme: &Theme) -> Option<Line<'a>> {
    let u = r.routine_use.as_ref()?;
    let style = if u.over { theme.warn() } else { theme.muted() };
    Some(Line::styled(clean(&u.describe(&r.requester)), style))
}

fn waiting(f: &mut Frame, app: &App, r: &Request, theme: &Theme, area: Rect) {
    let mut lines = header(r, theme);
    lines.push(Line::from(""));
    let n = r.approvals.len();
    lines.push(Line::styled(
        format!("{n} of {} approvals", r.approvals_required),
        if n as u32 >= r.approvals_required {
            theme.ok()
        } else {
            theme.warn()
        },
    ));
    if let Some(l) = routine_line(r, theme) {
        lines.push(l);
    }
    for a in &r.approvals {
        lines.push(Line::styled(
            format!("  ✓ {} at {}", clean(&a.by), a.at.format("%H:%M:%S")),
            theme.ok(),
        ));
    }
    for _ in n..r.approvals_required as usize {
        lines.push(Line::styled("  … waiting for an approver", theme.muted()));
    }
    // Who acts next: the policy's approvers, and who of them already did.
    if let Some(role) = app.data.roles.iter().find(|x| x.name == r.role) {
        if !role.approvers.is_empty() {
            lines.push(label_value("who approves", clean(&role.approvers), theme));
        }
    }
    if n > 0 {
        let by: Vec<String> = r.approvers().iter().map(|a| clean(a)).collect();
        lines.push(label_value("approved by", by.join(", "), theme));
    }
    lines.push(Line::from(""));
    match r.state {
        State::Pending => lines.push(Line::styled(
            format!(
                "Approvers act from their own console or `breakglass approve {}`. Lapses in {}.",
                r.id,
                format_hms(r.decide_by - app.now)
            ),
            theme.muted(),
        )),
        State::Approved if r.vendor.is_some() => {
            lines.push(Line::styled(
                "Approved. A vendor's access exists only inside a recorded session:",
                theme.ok(),
            ));
            lines.push(Line::styled(
                "press s to open it. It is recorded, and it ends when the grant ends.",
                theme.accent(),
            ));
        }
        _ => lines.push(Line::styled("Approved: granting access...", theme.warn())),
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

fn active(f: &mut Frame, app: &App, r: &Request, theme: &Theme, area: Rect) {
    let g = r.grant.as_ref();
    let remaining = r.remaining(app.now).unwrap_or_default();
    let total = (r.ttl_seconds
        + g.map_or(0, |g| g.extensions.iter().map(|x| x.seconds).sum::<i64>()))
    .max(1);
    let frac = remaining.num_seconds() as f64 / total as f64;
    let [head, clock, gauge, warn, cred, foot] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(6),
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(header(r, theme)), head);
    let text = format_hms(remaining);
    f.render_widget(
        BigClock {
            text: &text,
            style: theme.countdown(frac),
        },
        Rect { height: 5, ..clock },
    );
    f.render_widget(
        Gauge::default()
            .ratio(frac.clamp(0.0, 1.0))
            .gauge_style(theme.countdown(frac))
            .label(format!("{text} left of {}", human(total))),
        gauge,
    );
    let secs = remaining.num_seconds();
    let warning = if secs <= 60 {
        Some((
            format!(
                "LESS THAN 1 MINUTE LEFT: access ends at {}",
                r.expires_at()
                    .map(|e| e.format("%H:%M:%S").to_string())
                    .unwrap_or_default()
            ),
            theme.danger(),
        ))
    } else if secs <= 300 {
        Some((
            "Less than 5 minutes left: finish up, or extend (e) with a reason".to_string(),
            theme.warn(),
        ))
    } else {
        None
    };
    if let Some((w, style)) = warning {
        f.render_widget(
            Paragraph::new(Line::styled(w, style)).wrap(Wrap { trim: true }),
            warn,
        );
    }
    let mut lines = vec![Line::styled(
        "Credential (shown to you only, never stored)",
        theme.muted(),
    )];
    match &app.credential {
        Some((id, c)) if *id == r.id => {
            for (k, v) in c.reveal() {
                // A key file (ssh-ca's private key, a certificate) keeps its
                // lines, so what is shown can be copied into a file as is.
                if app.revealed && v.trim_end().contains('\n') {
                    lines.push(Line::styled(format!("  {k}:"), theme.muted()));
                    for l in v.trim_end().lines() {
                        lines.push(Line::styled(clean(l), theme.accent()));
                    }
                    continue;
                }
                let shown = if app.revealed {
                    clean(v)
                } else {
                    "•".repeat(12)
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("  {k:<10} "), theme.muted()),
                    Span::styled(shown, theme.accent()),
                ]));
            }
        }
        // The store says active before the grant's answer reaches this console.
        _ if app.is_activating(r.id) => lines.push(Line::styled(
            "  granted: the credential is on its way to this console",
            theme.muted(),
        )),
        _ if r.vendor.is_some() => lines.push(Line::styled(
            "  only inside the recorded vendor session (its shell's environment), never shown here",
            theme.muted(),
        )),
        _ => lines.push(Line::styled(
            "  not in this console: it was shown once where access was activated",
            theme.muted(),
        )),
    }
    if let Some(g) = g {
        if !g.extensions.is_empty() {
            lines.push(Line::styled(
                format!("extended {} time(s)", g.extensions.len()),
                theme.muted(),
            ));
        }
    }
    f.render_widget(Paragraph::new(lines), cred);
    // The keys, from the key table, here too: a flash can hold the hint line.
    f.render_widget(
        Paragraph::new(Line::styled(
            crate::tui::app::keymap::hints(app, foot.width as usize),
            theme.muted(),
        )),
        foot,
    );
}

fn ended(f: &mut Frame, _app: &App, r: &Request, theme: &Theme, area: Rect) {
    let mut lines = header(r, theme);
    lines.push(Line::from(""));
    let g = r.grant.as_ref();
    match r.state {
        State::Revoking => {
            lines.push(Line::styled(
                "REVOCATION NOT CONFIRMED: the backend is being retried",
                theme.danger(),
            ));
            if let Some(e) = g.and_then(|g| g.last_error.as_deref()) {
                lines.push(Line::styled(
                    format!("last error: {}", clean(e)),
                    theme.danger(),
                ));
            }
            lines.push(Line::styled(
                format!(
                    "attempts so far: {}. The SOC has been alerted. Press x to retry now.",
                    g.map_or(0, |g| g.revoke_attempts)
                ),
                theme.warn(),
            ));
        }
        State::Ended | State::Reviewed | State::Certified => {
            let when = g
                .and_then(|g| g.ended_at)
                .map(|t| t.format("%H:%M:%S UTC").to_string())
                .unwrap_or_default();
            lines.push(Line::styled(
                format!("Access revoked: the backend confirmed at {when}."),
                theme.ok(),
            ));
            if let Some(e) = g.and_then(|g| g.end.as_ref()) {
                lines.push(label_value("reason", clean(&e.reason), theme));
            }
            lines.extend(sent_back(r, theme));
            lines.push(match r.state {
                State::Ended => Line::styled(
                    "The after-action review is owed: press Enter to write it.",
                    theme.warn(),
                ),
                State::Reviewed => Line::styled(
                    "Review submitted: awaiting certification by someone else.",
                    theme.muted(),
                ),
                _ => Line::styled("Certified: the role is unlocked.", theme.ok()),
            });
        }
        State::Failed => {
            lines.push(Line::styled(
                "The grant failed; anything it may have created was revoked.",
                theme.danger(),
            ));
            if let Some(e) = g.and_then(|g| g.last_error.as_deref()) {
                lines.push(label_value("error", clean(e), theme));
            }
        }
        State::Denied => {
            let why = r
                .denial
                .as_ref()
                .map(|d| format!("by {}: {}", d.by, clean(&d.comment)))
                .unwrap_or_default();
            lines.push(Line::styled(format!("Denied {why}"), theme.danger()));
        }
        other => lines.push(Line::styled(
            format!("This request is {other}."),
            theme.muted(),
        )),
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

/// The after-action review: what happened above, the questions below.
fn review_form(
    f: &mut Frame,
    app: &App,
    r: &Request,
    form: &ReviewForm,
    theme: &Theme,
    area: Rect,
) {
    let sent_back = sent_back(r, theme);
    let [back, summary, fields] = Layout::vertical([
        Constraint::Length(sent_back.as_ref().map_or(0, |_| 2)),
        Constraint::Length(6),
        Constraint::Min(8),
    ])
    .areas(area);
    if let Some(l) = sent_back {
        f.render_widget(Paragraph::new(l).wrap(Wrap { trim: false }), back);
    }
    f.render_widget(Paragraph::new(review_summary(app, r, theme)), summary);
    f.render_widget(
        Paragraph::new(review_fields(form, theme)).wrap(Wrap { trim: false }),
        fields,
    );
}

/// The certifier's last rejection of a review still owed: what to fix.
fn sent_back(r: &Request, theme: &Theme) -> Option<Line<'static>> {
    let d = r.rejections.last().filter(|_| r.state == State::Ended)?;
    Some(Line::styled(
        format!(
            "Sent back by {} at {}: {}",
            clean(&d.by),
            d.at.format("%H:%M UTC"),
            clean(&d.comment)
        ),
        theme.warn(),
    ))
}

/// The access being reviewed: incident, role, people and its window.
fn review_summary(app: &App, r: &Request, theme: &Theme) -> Vec<Line<'static>> {
    let g = r.grant.as_ref();
    let start = g.and_then(|g| g.granted_at);
    let end = g.and_then(|g| g.ended_at);
    let duration = match (start, end) {
        (Some(s), Some(e)) => format_hms(e - s),
        _ => "-".into(),
    };
    let t = |x: Option<chrono::DateTime<chrono::Utc>>| {
        x.map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let approvers: Vec<String> = r.approvers().iter().map(|a| clean(a)).collect();
    vec![
        Line::from(vec![
            Span::styled(format!("After-action review of {}  ", r.id), theme.accent()),
            Span::styled("access revoked (backend confirmed)", theme.ok()),
        ]),
        label_value("incident", clean(&r.incident.label()), theme),
        label_value(
            "role",
            format!(
                "{}   requester {}   approvers {}",
                r.role,
                clean(&r.requester),
                approvers.join(", ")
            ),
            theme,
        ),
        label_value(
            "window",
            format!(
                "{} to {} ({duration}), {} extension(s)",
                t(start),
                t(end),
                g.map_or(0, |g| g.extensions.len())
            ),
            theme,
        ),
        Line::styled(
            format!(
                "{} is the requester; {} answers.",
                clean(&r.requester),
                clean(&app.me)
            ),
            theme.muted(),
        ),
    ]
}

/// How one review field is drawn: highlighted while it has the focus.
struct FieldLook<'a> {
    form: &'a ReviewForm,
    theme: &'a Theme,
}

impl FieldLook<'_> {
    fn on(&self, x: ReviewField) -> bool {
        self.form.focus == x
    }

    fn style(&self, x: ReviewField) -> Style {
        if self.on(x) {
            self.theme.selected()
        } else {
            self.theme.base()
        }
    }

    fn label(&self, x: ReviewField, s: &'static str) -> Span<'static> {
        Span::styled(
            format!("{s:<30}"),
            if self.on(x) {
                self.theme.accent()
            } else {
                self.theme.muted()
            },
        )
    }

    /// A text answer, with a cursor while focused.
    fn text(&self, x: ReviewField, label: &'static str, value: String) -> Line<'static> {
        let cursor = if self.on(x) { "▏" } else { "" };
        Line::from(vec![
            self.label(x, label),
            Span::styled(format!("{value}{cursor}"), self.style(x)),
        ])
    }

    /// A yes/no answer.
    fn yes_no(&self, x: ReviewField, label: &'static str, v: Option<bool>) -> Line<'static> {
        let shown = match v {
            Some(true) => "yes",
            Some(false) => "no",
            None => "(y/n)",
        };
        Line::from(vec![
            self.label(x, label),
            Span::styled(shown, self.style(x)),
        ])
    }
}

/// The questions, each answer as typed so far (a multi-line one by its last
/// line), then Submit and the last problem.
fn review_fields(form: &ReviewForm, theme: &Theme) -> Vec<Line<'static>> {
    let look = FieldLook { form, theme };
    let last = |s: &str| clean(s.lines().last().unwrap_or(""));
    let mut lines = vec![
        look.text(
            ReviewField::Actions,
            "actions taken",
            last(&form.actions.value),
        ),
        look.text(
            ReviewField::Systems,
            "systems touched",
            clean(&form.systems.value),
        ),
        look.yes_no(
            ReviewField::Necessary,
            "was the access necessary?",
            form.necessary,
        ),
        look.yes_no(
            ReviewField::Copied,
            "credentials copied anywhere?",
            form.copied,
        ),
    ];
    if form.copied == Some(true) || look.on(ReviewField::CopiedWhere) {
        lines.push(look.text(
            ReviewField::CopiedWhere,
            "  where (to purge)",
            clean(&form.copied_where.value),
        ));
    }
    lines.push(look.text(
        ReviewField::FollowUps,
        "follow-up items",
        last(&form.follow_ups.value),
    ));
    if form.actions.value.contains('\n') || form.follow_ups.value.contains('\n') {
        lines.push(Line::styled(
            "(multi-line answers show their last line here)",
            theme.muted(),
        ));
    }
    lines.push(Line::from(""));
    lines.push(Line::styled(
        "[ Submit ]  (Ctrl-S)",
        look.style(ReviewField::Submit),
    ));
    if let Some(e) = &form.error {
        lines.push(Line::styled(format!("! {}", clean(e)), theme.danger()));
    }
    lines
}
