//! Approvals and Reviews: other people's requests waiting for you.

use crate::domain::time::human;
use crate::engine::QueueItem;
use crate::tui::app::App;
use crate::tui::draw::{clean, fit, label_value};
use crate::tui::theme::Theme;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

fn queue(
    f: &mut Frame,
    items: &[QueueItem],
    selected: usize,
    empty: &str,
    detail_rows: u16,
    theme: &Theme,
    area: Rect,
) -> Option<Rect> {
    if items.is_empty() {
        f.render_widget(
            Paragraph::new(Line::styled(empty.to_string(), theme.muted())),
            area,
        );
        return None;
    }
    let [list, detail] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(detail_rows)]).areas(area);
    // What the columns and the marker leave for the status, cut at a word.
    let tail_width = (list.width as usize).saturating_sub(45);
    let rows: Vec<ListItem> = items
        .iter()
        .map(|q| {
            let r = &q.request;
            let tail = match &q.blocked {
                None => Span::styled("ready for you", theme.ok()),
                Some(why) => Span::styled(fit(&clean(why), tail_width), theme.muted()),
            };
            ListItem::new(Line::from(vec![
                Span::styled(
                    format!(
                        "{:<8} {:<24} {:<8} ",
                        r.id.to_string(),
                        r.role,
                        clean(&r.requester)
                    ),
                    if q.blocked.is_some() {
                        theme.muted()
                    } else {
                        theme.base()
                    },
                ),
                tail,
            ]))
        })
        .collect();
    let mut state = ListState::default().with_selected(Some(selected.min(items.len() - 1)));
    f.render_stateful_widget(
        List::new(rows)
            .highlight_style(theme.selected())
            .highlight_symbol("› "),
        list,
        &mut state,
    );
    Some(detail)
}

/// Who the outside party is, for a vendor request: what an approver decides on.
fn vendor_line<'a>(r: &crate::domain::Request, theme: &Theme) -> Option<Line<'a>> {
    r.vendor.as_ref().map(|v| {
        label_value(
            "vendor",
            format!("{} ({})", clean(&v.name), clean(&v.company)),
            theme,
        )
    })
}

pub fn approvals(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let items = &app.data.approvals;
    let Some(detail) = queue(
        f,
        items,
        app.approvals_selected,
        "Nothing waiting for your approval.",
        9,
        theme,
        area,
    ) else {
        return;
    };
    if let Some(q) = items.get(app.approvals_selected.min(items.len() - 1)) {
        let r = &q.request;
        let mut lines = vec![
            label_value("incident", clean(&r.incident.label()), theme),
            label_value("condition", r.condition.clone(), theme),
            label_value("reason", clean(&r.reason), theme),
            label_value("TTL", human(r.ttl_seconds), theme),
            label_value(
                "approvals",
                {
                    let by: Vec<String> = r.approvers().iter().map(|a| clean(a)).collect();
                    if by.is_empty() {
                        format!("{} of {}", r.approvals.len(), r.approvals_required)
                    } else {
                        format!(
                            "{} of {} ({})",
                            r.approvals.len(),
                            r.approvals_required,
                            by.join(", ")
                        )
                    }
                },
                theme,
            ),
            label_value(
                "requested",
                format!(
                    "{} by {}",
                    r.created_at.format("%H:%M:%S UTC"),
                    clean(&r.requester)
                ),
                theme,
            ),
        ];
        if let Some(l) = vendor_line(r, theme) {
            lines.insert(2, l);
        }
        if let Some(u) = &r.routine_use {
            let style = if u.over { theme.warn() } else { theme.base() };
            lines.push(Line::from(vec![
                Span::styled(format!("{:<14}", "routine use"), theme.muted()),
                Span::styled(clean(&u.describe(&r.requester)), style),
            ]));
        }
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), detail);
    }
}

/// For someone who certifies no role: says so, and who does (per role when
/// they differ), so nobody waits on this tab for work that is not theirs.
fn not_a_certifier(app: &App) -> Option<String> {
    if !app.loaded || app.data.roles.is_empty() || app.data.roles.iter().any(|r| r.may_certify) {
        return None;
    }
    let mut who: Vec<String> = app
        .data
        .roles
        .iter()
        .map(|r| clean(&r.certifiers))
        .filter(|c| !c.is_empty())
        .collect();
    who.sort();
    who.dedup();
    Some(format!(
        "{} certifies no role: reviews are certified by {}.",
        clean(&app.me),
        who.join("; ")
    ))
}

pub fn reviews(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let items = &app.data.reviews;
    let area = match not_a_certifier(app) {
        Some(note) => {
            let [top, rest] =
                Layout::vertical([Constraint::Length(2), Constraint::Min(3)]).areas(area);
            f.render_widget(
                Paragraph::new(Line::styled(note, theme.warn())).wrap(Wrap { trim: true }),
                top,
            );
            rest
        }
        None => area,
    };
    let Some(detail) = queue(
        f,
        items,
        app.reviews_selected,
        "No after-action reviews waiting for certification.",
        12,
        theme,
        area,
    ) else {
        return;
    };
    let Some(q) = items.get(app.reviews_selected.min(items.len() - 1)) else {
        return;
    };
    let r = &q.request;
    let mut lines = vec![
        label_value("incident", clean(&r.incident.label()), theme),
        label_value(
            "requested",
            format!("by {} for: {}", clean(&r.requester), clean(&r.reason)),
            theme,
        ),
    ];
    if let Some(l) = vendor_line(r, theme) {
        lines.push(l);
    }
    if let Some(g) = &r.grant {
        let hm = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M:%S").to_string();
        let from = g.granted_at.map(hm).unwrap_or_else(|| "-".into());
        let to = g
            .end
            .as_ref()
            .map(|e| format!("{} ({})", hm(e.at), clean(&e.reason)))
            .unwrap_or_else(|| "-".into());
        lines.push(label_value("window", format!("{from} to {to} UTC"), theme));
        let ext = if g.extensions.is_empty() {
            "none".to_string()
        } else {
            g.extensions
                .iter()
                .map(|x| format!("+{} ({})", human(x.seconds), clean(&x.reason)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        lines.push(label_value("extensions", ext, theme));
    }
    if let Some(rv) = &r.review {
        let a = &rv.answers;
        lines.push(label_value("actions", clean(&a.actions_taken), theme));
        lines.push(label_value("systems", clean(&a.systems_touched), theme));
        // The two answers a certifier must not miss are marked when they
        // need attention: access that was not necessary, credentials copied.
        let attention = theme
            .danger()
            .add_modifier(ratatui::style::Modifier::REVERSED | ratatui::style::Modifier::BOLD);
        let (necessary, necessary_style) = if a.access_necessary {
            ("access necessary: yes".to_string(), theme.ok())
        } else {
            ("⚠ access necessary: no".to_string(), attention)
        };
        let (copied, copied_style) = if a.credentials_copied {
            (
                format!(
                    "⚠ credentials copied: yes ({})",
                    clean(&a.credentials_copied_where)
                ),
                attention,
            )
        } else {
            ("credentials copied: no".to_string(), theme.ok())
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{:<14}", "answers"), theme.muted()),
            Span::styled(necessary, necessary_style),
            Span::raw("   "),
            Span::styled(copied, copied_style),
        ]));
        if let Some(inv) = &r.invalidation {
            // What breakglass did about the copy: certifying waits for it.
            let (said, style) = if inv.pending() {
                (
                    format!(
                        "{}; certifying waits (`breakglass sweep` retries, or `breakglass certify {} --invalidation-exception \"why\"`)",
                        clean(&inv.status()),
                        r.id
                    ),
                    attention,
                )
            } else {
                (clean(&inv.status()), theme.ok())
            };
            lines.push(Line::from(vec![
                Span::styled(format!("{:<14}", "invalidation"), theme.muted()),
                Span::styled(said, style),
            ]));
        }
        lines.push(label_value("follow-ups", clean(&a.follow_ups), theme));
    }
    match q.recording_replayed {
        Some(true) => lines.push(label_value(
            "session",
            "recorded; you watched it (w to watch again)".into(),
            theme,
        )),
        Some(false) => lines.push(Line::from(vec![
            Span::styled(format!("{:<14}", "session"), theme.muted()),
            Span::styled("recorded; watch it before certifying (w)", theme.warn()),
        ])),
        None => {}
    }
    if !r.rejections.is_empty() {
        lines.push(label_value(
            "rejected",
            format!("{} time(s) before", r.rejections.len()),
            theme,
        ));
    }
    if app.reading_review {
        let area = crate::tui::draw::centered(
            area,
            area.width.saturating_sub(4),
            area.height.saturating_sub(2),
        );
        f.render_widget(ratatui::widgets::Clear, area);
        let block = ratatui::widgets::Block::bordered()
            .title(format!(" Review of {} ", r.id))
            .style(theme.base());
        f.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false }),
            area,
        );
    } else {
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), detail);
    }
}
