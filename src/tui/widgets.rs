//! A large countdown: HH:MM:SS drawn in 3x5 block glyphs, readable across a room.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::Widget;

const GLYPHS: [[&str; 5]; 11] = [
    ["███", "█ █", "█ █", "█ █", "███"],
    ["  █", "  █", "  █", "  █", "  █"],
    ["███", "  █", "███", "█  ", "███"],
    ["███", "  █", "███", "  █", "███"],
    ["█ █", "█ █", "███", "  █", "  █"],
    ["███", "█  ", "███", "  █", "███"],
    ["███", "█  ", "███", "█ █", "███"],
    ["███", "  █", "  █", "  █", "  █"],
    ["███", "█ █", "███", "█ █", "███"],
    ["███", "█ █", "███", "  █", "███"],
    ["   ", " █ ", "   ", " █ ", "   "],
];

pub struct BigClock<'a> {
    pub text: &'a str,
    pub style: Style,
}

impl BigClock<'_> {
    /// Columns the clock needs: 3 per glyph plus a space between glyphs.
    pub fn width(text: &str) -> u16 {
        (text.chars().count() as u16 * 4).saturating_sub(1)
    }
}

impl Widget for BigClock<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let w = BigClock::width(self.text);
        if area.width < w || area.height < 5 {
            // Too narrow for glyphs: plain text, still bold and coloured.
            buf.set_string(area.x, area.y, self.text, self.style);
            return;
        }
        let x0 = area.x + (area.width - w) / 2;
        for (i, c) in self.text.chars().enumerate() {
            let g = match c {
                '0'..='9' => &GLYPHS[c as usize - '0' as usize],
                ':' => &GLYPHS[10],
                _ => continue,
            };
            for (row, line) in g.iter().enumerate() {
                buf.set_string(x0 + i as u16 * 4, area.y + row as u16, line, self.style);
            }
        }
    }
}
