//! A small text field: single-line or multi-line, cursor by character.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Input {
    pub value: String,
    /// Cursor position in characters.
    pub cursor: usize,
    pub multiline: bool,
    pub max_chars: usize,
}

impl Input {
    pub fn new(max_chars: usize) -> Self {
        Input {
            max_chars,
            ..Default::default()
        }
    }
    pub fn multiline(max_chars: usize) -> Self {
        Input {
            multiline: true,
            max_chars,
            ..Default::default()
        }
    }
    pub fn with(mut self, value: &str) -> Self {
        self.value = value.to_string();
        self.cursor = self.value.chars().count();
        self
    }

    /// Replaces the whole value (a picked choice), cursor at the end.
    pub fn set(&mut self, value: &str) {
        self.value = value.chars().take(self.max_chars).collect();
        self.cursor = self.value.chars().count();
    }

    fn byte_at(&self, char_idx: usize) -> usize {
        self.value
            .char_indices()
            .nth(char_idx)
            .map_or(self.value.len(), |(b, _)| b)
    }

    /// Handles an editing key; returns false when the key is not an editing key.
    pub fn handle(&mut self, key: KeyEvent) -> bool {
        let len = self.value.chars().count();
        match key.code {
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if len < self.max_chars {
                    let b = self.byte_at(self.cursor);
                    self.value.insert(b, c);
                    self.cursor += 1;
                }
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.value.clear();
                self.cursor = 0;
            }
            KeyCode::Enter if self.multiline => {
                if len < self.max_chars {
                    let b = self.byte_at(self.cursor);
                    self.value.insert(b, '\n');
                    self.cursor += 1;
                }
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let b = self.byte_at(self.cursor - 1);
                self.value.remove(b);
                self.cursor -= 1;
            }
            KeyCode::Delete if self.cursor < len => {
                let b = self.byte_at(self.cursor);
                self.value.remove(b);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(len),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = len,
            KeyCode::Backspace | KeyCode::Delete => {}
            _ => return false,
        }
        true
    }

    /// A paste, taken as one edit at the cursor: cleaned as any outside text
    /// is (escape sequences and control characters dropped, tabs as spaces),
    /// line breaks kept in a multi-line field (spaces elsewhere), cut at the
    /// field's limit.
    pub fn paste(&mut self, text: &str) {
        let room = self.max_chars.saturating_sub(self.value.chars().count());
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let all = text.chars().count();
        let clean = if self.multiline {
            crate::sanitize::text(&text, all)
        } else {
            crate::sanitize::line(&text, all)
        };
        let clean: String = clean.chars().take(room).collect();
        let b = self.byte_at(self.cursor);
        self.value.insert_str(b, &clean);
        self.cursor += clean.chars().count();
    }

    /// Cursor as (line, column) for placing the terminal cursor.
    pub fn cursor_line_col(&self) -> (usize, usize) {
        let before: String = self.value.chars().take(self.cursor).collect();
        let line = before.matches('\n').count();
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count());
        (line, col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn edits_at_the_cursor_with_multibyte_text() {
        let mut i = Input::new(10).with("héllo");
        i.handle(k(KeyCode::Left));
        i.handle(k(KeyCode::Backspace));
        i.handle(k(KeyCode::Char('L')));
        assert_eq!(i.value, "hélLo");
        i.handle(k(KeyCode::Home));
        i.handle(k(KeyCode::Delete));
        assert_eq!(i.value, "élLo");
    }

    #[test]
    fn a_paste_is_cleaned_and_capped() {
        let mut i = Input::new(10).with("ab");
        i.handle(k(KeyCode::Home));
        i.paste("x\x1b[2J\ty\r\nzzzzzz");
        assert_eq!(
            i.value, "x y zzzzab",
            "escapes dropped, tab and newline as spaces, capped"
        );
        let mut m = Input::multiline(20);
        m.paste("one\r\ntwo\u{7}");
        assert_eq!((m.value.as_str(), m.cursor), ("one\ntwo", 7));
    }

    #[test]
    fn respects_max_and_multiline() {
        let mut i = Input::new(2);
        for c in "abc".chars() {
            i.handle(k(KeyCode::Char(c)));
        }
        assert_eq!(i.value, "ab");
        assert!(
            !i.handle(k(KeyCode::Enter)),
            "single-line fields leave Enter to the form"
        );
        let mut m = Input::multiline(10).with("a");
        m.handle(k(KeyCode::Enter));
        m.handle(k(KeyCode::Char('b')));
        assert_eq!((m.value.as_str(), m.cursor_line_col()), ("a\nb", (1, 1)));
    }
}
