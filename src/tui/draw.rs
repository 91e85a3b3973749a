//! Small drawing helpers every screen shares: untrusted text cleaned for the
//! screen, label/value lines, state colours, centring a popup.

use super::theme::Theme;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

/// Untrusted text on its way to the screen.
pub fn clean(s: &str) -> String {
    crate::sanitize::line(s, 500)
}

pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

pub fn label_value<'a>(label: &'a str, value: String, theme: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{label:<14}"), theme.muted()),
        Span::styled(value, theme.base()),
    ])
}

pub fn style_for_state(state: crate::domain::State, theme: &Theme) -> Style {
    use crate::domain::State::*;
    match state {
        Active | Granting => theme.ok(),
        Revoking | Failed | Denied => theme.danger(),
        Pending | Approved | Ended | Reviewed => theme.warn(),
        _ => theme.muted(),
    }
}
