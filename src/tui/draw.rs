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

/// `s` in at most `width` columns: whole when it fits, otherwise cut at the
/// last word that fits and ended with an ellipsis, never mid-word (a single
/// word longer than the space is cut, with the ellipsis).
pub fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let room: String = s.chars().take(width - 1).collect();
    let next_is_break = s.chars().nth(width - 1).is_some_and(char::is_whitespace);
    let cut = if next_is_break {
        room.trim_end()
    } else {
        match room.rfind(char::is_whitespace) {
            Some(i) => room[..i].trim_end(),
            None => room.as_str(),
        }
    };
    let cut = cut.trim_end_matches([',', ';', ':', '.', ' ']);
    format!("{cut}…")
}
