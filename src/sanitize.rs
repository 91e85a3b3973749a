//! Untrusted text (incident titles, backend messages, reasons typed by others) is
//! cleaned before it reaches a terminal: escape sequences and control characters
//! could otherwise rewrite the screen, retitle the window or hide text.

/// One line: every control character, newline included, becomes a space.
pub fn line(s: &str, max_chars: usize) -> String {
    clean(s, max_chars, false)
}

/// Multi-line text: keeps `\n`, drops other controls.
pub fn text(s: &str, max_chars: usize) -> String {
    clean(s, max_chars, true)
}

fn is_bidi_control(c: char) -> bool {
    // Trojan-Source style reordering marks.
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

fn clean(s: &str, max_chars: usize, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 4));
    let mut chars = s.chars().peekable();
    let mut count = 0usize;
    while let Some(c) = chars.next() {
        if c == '\u{1b}' || c == '\u{9b}' || c == '\u{9d}' || c == '\u{90}' {
            skip_escape(c, &mut chars);
            continue;
        }
        let mapped = if c == '\n' && keep_newlines {
            Some('\n')
        } else if c == '\t' || c == '\n' || c == '\r' {
            Some(' ')
        } else if c.is_control() || is_bidi_control(c) {
            None
        } else {
            Some(c)
        };
        if let Some(m) = mapped {
            if count >= max_chars {
                out.push('…');
                break;
            }
            out.push(m);
            count += 1;
        }
    }
    out
}

/// Skips one escape sequence: CSI (`ESC [` / 0x9B), OSC (`ESC ]` / 0x9D, ended by
/// BEL or ST), DCS/PM/APC/SOS (ended by ST), or a two-character escape.
fn skip_escape(first: char, chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    let kind = if first == '\u{1b}' {
        match chars.next() {
            Some('[') => '[',
            Some(']') => ']',
            Some('P') | Some('X') | Some('^') | Some('_') => 'P',
            _ => return,
        }
    } else {
        match first {
            '\u{9b}' => '[',
            '\u{9d}' => ']',
            _ => 'P',
        }
    };
    match kind {
        '[' => {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
        _ => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' || c == '\u{9c}' {
                    break;
                }
                if c == '\u{1b}' {
                    if chars.peek() == Some(&'\\') {
                        chars.next();
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_csi_osc_and_controls() {
        let hostile = "DB \u{1b}[2J\u{1b}[31mdown\u{1b}]0;pwned\u{7} now\u{7}\r\nx\u{202E}y";
        let out = line(hostile, 100);
        assert_eq!(out, "DB down now  xy");
        assert!(!out.chars().any(|c| c.is_control()));
    }

    #[test]
    fn keeps_newlines_in_text_only() {
        assert_eq!(text("a\nb\u{1b}[1m", 10), "a\nb");
        assert_eq!(line("a\nb", 10), "a b");
    }

    #[test]
    fn truncates_with_marker() {
        assert_eq!(line("abcdef", 3), "abc…");
    }

    #[test]
    fn unterminated_sequences_end_cleanly() {
        assert_eq!(line("ok\u{1b}]8;;http://x", 50), "ok");
        assert_eq!(line("ok\u{1b}", 50), "ok");
    }
}
