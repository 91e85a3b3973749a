//! The audit chain, scrollable, with its verification status.

use crate::tui::app::App;
use crate::tui::draw::clean;
use crate::tui::theme::Theme;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

pub fn render(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let [status, list, detail] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(4),
    ])
    .areas(area);
    let head = app.data.audit_head;
    let line = match &app.verified {
        Some((h, Ok(n))) if *h == head => Line::styled(
            format!("chain verified: {n} event(s), every link intact"),
            theme.ok(),
        ),
        Some((h, Err(b))) if *h == head => Line::styled(
            format!("CHAIN BROKEN at event #{}: {}", b.seq, clean(&b.reason)),
            theme.danger(),
        ),
        _ => Line::styled(format!("verifying {head} event(s)..."), theme.warn()),
    };
    f.render_widget(Paragraph::new(line), status);
    // Render only the rows in view: the list may hold many thousands of events.
    let rows = list.height as usize;
    let total = app.data.audit.len();
    let sel = app.audit_scroll.min(total.saturating_sub(1));
    let start = sel
        .saturating_sub(rows.saturating_sub(1))
        .min(total.saturating_sub(rows));
    let items: Vec<ListItem> = app
        .data
        .audit
        .iter()
        .skip(start)
        .take(rows)
        .map(|e| {
            ListItem::new(Line::from(vec![
                Span::styled(format!("#{:<6} ", e.seq), theme.muted()),
                Span::styled(
                    format!("{} ", e.at.get(11..19).unwrap_or(&e.at)),
                    theme.muted(),
                ),
                Span::styled(
                    format!(
                        "{:<8} ",
                        e.request_id.map(|i| format!("REQ-{i}")).unwrap_or_default()
                    ),
                    theme.base(),
                ),
                Span::styled(format!("{:<18} ", e.action), theme.accent()),
                Span::styled(format!("{:<10} ", clean(&e.actor)), theme.base()),
                Span::styled(
                    format!(
                        "{} -> {}",
                        e.from_state.as_deref().unwrap_or("-"),
                        e.to_state.as_deref().unwrap_or("-")
                    ),
                    theme.muted(),
                ),
            ]))
        })
        .collect();
    let mut state =
        ListState::default().with_selected(if total == 0 { None } else { Some(sel - start) });
    f.render_stateful_widget(
        List::new(items).highlight_style(theme.selected()),
        list,
        &mut state,
    );
    // The selected event's detail, in full (wrapped), under the list.
    if let Some(e) = app.data.audit.get(sel) {
        let block = Block::new()
            .borders(Borders::TOP)
            .border_style(theme.border())
            .title(Span::styled(
                format!(" event #{} detail ", e.seq),
                theme.muted(),
            ));
        f.render_widget(
            Paragraph::new(Line::styled(
                crate::sanitize::line(&e.detail, 1000),
                theme.base(),
            ))
            .block(block)
            .wrap(Wrap { trim: true }),
            detail,
        );
    }
}
