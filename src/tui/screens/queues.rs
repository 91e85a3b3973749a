//! Approvals and Reviews: other people's requests waiting for you.

use crate::domain::time::human;
use crate::engine::QueueItem;
use crate::tui::app::App;
use crate::tui::draw::{clean, label_value};
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
    let [list, detail] = Layout::vertical([Constraint::Min(3), Constraint::Length(9)]).areas(area);
    let rows: Vec<ListItem> = items
        .iter()
        .map(|q| {
            let r = &q.request;
            let tail = match &q.blocked {
                None => Span::styled("ready for you", theme.ok()),
                Some(why) => Span::styled(clean(why), theme.muted()),
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
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), detail);
    }
}

pub fn reviews(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let items = &app.data.reviews;
    let Some(detail) = queue(
        f,
        items,
        app.reviews_selected,
        "No after-action reviews waiting for certification.",
        theme,
        area,
    ) else {
        return;
    };
    let Some(q) = items.get(app.reviews_selected.min(items.len() - 1)) else {
        return;
    };
    let r = &q.request;
    let mut lines = vec![label_value("incident", clean(&r.incident.label()), theme)];
    if let Some(l) = vendor_line(r, theme) {
        lines.push(l);
    }
    if let Some(rv) = &r.review {
        let a = &rv.answers;
        let yn = |b: bool| if b { "yes" } else { "no" };
        lines.push(label_value("actions", clean(&a.actions_taken), theme));
        lines.push(label_value("systems", clean(&a.systems_touched), theme));
        lines.push(Line::from(vec![
            Span::styled(format!("{:<14}", "necessary"), theme.muted()),
            Span::styled(
                yn(a.access_necessary),
                if a.access_necessary {
                    theme.ok()
                } else {
                    theme.warn()
                },
            ),
            Span::styled("   credentials copied: ", theme.muted()),
            Span::styled(
                if a.credentials_copied {
                    format!("yes ({})", clean(&a.credentials_copied_where))
                } else {
                    "no".into()
                },
                if a.credentials_copied {
                    theme.danger()
                } else {
                    theme.ok()
                },
            ),
        ]));
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
