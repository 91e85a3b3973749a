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

/// JSON for a terminal or a line-based receiver (syslog): serde_json escapes C0
/// controls but passes DEL, C1 controls, bidi marks and U+2028/2029 (line breaks to
/// some readers) through. They can only occur inside strings, so escaping them
/// as `\uXXXX` keeps the document valid and the value intact.
pub fn json_for_terminal(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        // C0 controls are escaped by serde_json already; the ones left here
        // (newlines between tokens) are the document's own layout.
        if (c.is_control() && !c.is_ascii())
            || c == '\u{7f}' // DEL: a control serde_json leaves raw
            || is_bidi_control(c)
            || matches!(c, '\u{2028}' | '\u{2029}')
        {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A secret for a terminal: returned as is when it is plain text, else with
/// its controls escaped (`\u{1b}`), so it is still usable but cannot act on the
/// terminal. The flag says whether it was escaped.
pub fn secret_for_terminal(s: &str) -> (String, bool) {
    if s.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        let escaped = s
            .chars()
            .map(|c| {
                if c.is_control() || is_bidi_control(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        (escaped, true)
    } else {
        (s.to_string(), false)
    }
}

fn is_bidi_control(c: char) -> bool {
    // Trojan-Source style reordering marks.
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters that take no room on screen (zero-width spaces and joiners, word
/// joiner, invisible operators, BOM, soft hyphen): they hide text and shift
/// borders, and nobody types them on purpose in a reason.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}')
}

/// Every string in a JSON value cleaned as `text` (newlines kept, controls,
/// escapes, bidi and invisible characters dropped) and capped at `max_chars`:
/// the last guard before text someone wrote is stored, exported or alerted,
/// whatever path brought it.
pub fn json_strings(v: &mut serde_json::Value, max_chars: usize) {
    match v {
        serde_json::Value::String(s)
            if s.chars().count() > max_chars || s.chars().any(needs_cleaning) =>
        {
            *s = text(s, max_chars);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| json_strings(x, max_chars)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| json_strings(x, max_chars)),
        _ => {}
    }
}

fn needs_cleaning(c: char) -> bool {
    (c.is_control() && c != '\n')
        || is_bidi_control(c)
        || is_invisible(c)
        || matches!(c, '\u{2028}' | '\u{2029}')
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
        let newline = matches!(c, '\n' | '\u{2028}' | '\u{2029}');
        let mapped = if newline && keep_newlines {
            Some('\n')
        } else if newline || c == '\t' || c == '\r' {
            Some(' ')
        } else if c.is_control() || is_bidi_control(c) || is_invisible(c) {
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
    fn json_for_a_terminal_escapes_c1_and_bidi_and_stays_the_same_document() {
        let v = serde_json::json!({"t": "a\u{9b}6n\u{202e}b\u{1b}]0;x\u{7}", "n": [1, 2]});
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        let out = json_for_terminal(&pretty);
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        assert!(!out.contains('\u{202e}'), "{out:?}");
        assert!(out.contains("\\u009b") && out.contains("\\u202e"), "{out}");
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn a_secret_with_controls_is_escaped_and_a_plain_one_kept() {
        assert_eq!(
            secret_for_terminal("s3cr3t-!@#"),
            ("s3cr3t-!@#".into(), false)
        );
        let (shown, escaped) = secret_for_terminal("pw\u{1b}]52;c;x\u{7}\u{202e}");
        assert!(escaped);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert_eq!(shown, "pw\\u{1b}]52;c;x\\u{7}\\u{202e}");
    }

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
    fn drops_zero_width_and_line_separators() {
        assert_eq!(
            line("a\u{200b}b\u{feff}c\u{2028}d\u{ad}e\u{2060}f", 50),
            "abc def"
        );
        assert_eq!(text("a\u{2029}b", 10), "a\nb");
    }

    #[test]
    fn json_strings_cleans_every_string_and_caps_it() {
        let mut v = serde_json::json!({
            "a": "x\u{1b}]0;t\u{7}y\u{85}z\u{200b}",
            "b": [ "\u{202e}ok", 3, {"c": "long".repeat(10)} ],
            "n": null,
        });
        json_strings(&mut v, 8);
        assert_eq!(v["a"], "xyz");
        assert_eq!(v["b"][0], "ok");
        assert_eq!(v["b"][1], 3);
        assert_eq!(v["b"][2]["c"], "longlong…");
        // Idempotent, so a value cleaned before is stored as it was signed.
        let again = {
            let mut w = v.clone();
            json_strings(&mut w, 8);
            w
        };
        assert_eq!(again, v);
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

/// Filters a recorded terminal session for replay on a reviewer's terminal. Unlike
/// `line`/`text` it keeps what a replay needs (colours, cursor movement, screen
/// modes) but drops what could act on the reviewer: OSC (clipboard writes, window
/// titles, links), DCS/APC/PM/SOS strings, C1 controls, and CSI requests that make
/// the terminal answer (`ESC[6n`, device attributes, window reports), which would
/// type into the reviewer's shell. Sequences split across recording events are
/// carried over to the next `feed`.
#[derive(Default)]
pub struct ReplayFilter {
    pending: String,
}

impl ReplayFilter {
    pub fn feed(&mut self, chunk: &str) -> String {
        let input = std::mem::take(&mut self.pending) + chunk;
        let chars: Vec<char> = input.chars().collect();
        let mut out = String::with_capacity(input.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\u{1b}' {
                match self.escape(&chars[i..]) {
                    Some((len, keep)) => {
                        if keep {
                            out.extend(&chars[i..i + len]);
                        }
                        i += len;
                    }
                    None => {
                        // Incomplete: wait for the rest in the next chunk.
                        self.pending = chars[i..].iter().collect();
                        break;
                    }
                }
                continue;
            }
            // C1 forms of CSI/OSC/DCS/SOS/PM/APC: consume the whole sequence, keep none.
            let c1 = match c {
                '\u{9b}' => Some('['),
                '\u{9d}' => Some(']'),
                '\u{90}' => Some('P'),
                '\u{98}' => Some('X'),
                '\u{9e}' => Some('^'),
                '\u{9f}' => Some('_'),
                _ => None,
            };
            if let Some(intro) = c1 {
                let mut as_esc = vec!['\u{1b}', intro];
                as_esc.extend_from_slice(&chars[i + 1..]);
                match self.escape(&as_esc) {
                    Some((len, _)) => i += len - 1,
                    None => {
                        self.pending = chars[i..].iter().collect();
                        break;
                    }
                }
                continue;
            }
            let allowed = matches!(c, '\n' | '\r' | '\t' | '\u{8}')
                || !(c.is_control() || is_bidi_control(c));
            if allowed {
                out.push(c);
            }
            i += 1;
        }
        out
    }

    /// Length of the escape sequence at the start of `s` and whether to keep it;
    /// `None` when it is not complete yet.
    fn escape(&self, s: &[char]) -> Option<(usize, bool)> {
        let next = *s.get(1)?;
        match next {
            '[' => {
                let mut j = 2;
                while j < s.len() {
                    let c = s[j];
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        // Requests that make the terminal reply are dropped.
                        let keep = !matches!(c, 'n' | 'c' | 't' | 'q' | 'p' | 'x');
                        return Some((j + 1, keep));
                    }
                    if !('\u{20}'..='\u{3f}').contains(&c) {
                        return Some((j, false)); // malformed: drop what we saw
                    }
                    j += 1;
                }
                if j - 2 > 64 {
                    return Some((j, false));
                }
                None
            }
            ']' | 'P' | 'X' | '^' | '_' => {
                // String sequences end with BEL or ST (ESC \); all are dropped.
                let mut j = 2;
                while j < s.len() {
                    match s[j] {
                        '\u{7}' => return Some((j + 1, false)),
                        '\u{1b}' if s.get(j + 1) == Some(&'\\') => return Some((j + 2, false)),
                        '\u{1b}' if j + 1 < s.len() => return Some((j, false)),
                        _ => j += 1,
                    }
                }
                if j > 4096 {
                    return Some((j, false));
                }
                None
            }
            // Charset selection (ESC ( B) and the like take one more character.
            '(' | ')' | '*' | '+' | '#' | '%' => match s.get(2) {
                None => None,
                Some(c) if ('\u{30}'..='\u{7e}').contains(c) => Some((3, true)),
                // Not a designation (e.g. the next ESC): drop the two we saw.
                Some(_) => Some((2, false)),
            },
            // Save/restore cursor, keypad modes, index/reverse index: harmless.
            '7' | '8' | '=' | '>' | 'D' | 'E' | 'M' => Some((2, true)),
            _ => Some((2, false)),
        }
    }
}

#[cfg(test)]
mod replay_tests {
    use super::ReplayFilter;

    #[test]
    fn keeps_colours_and_movement_drops_what_acts_on_the_viewer() {
        let mut f = ReplayFilter::default();
        let out = f.feed("\u{1b}[31mred\u{1b}[0m \u{1b}[2J\u{1b}[H ok\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}]0;title\u{1b}\\\u{1b}[6n\u{1b}[c\u{9b}5n\u{1b}P+q\u{1b}\\end");
        assert_eq!(out, "\u{1b}[31mred\u{1b}[0m \u{1b}[2J\u{1b}[H okend");
    }

    #[test]
    fn sequences_split_across_events_are_carried_over() {
        let mut f = ReplayFilter::default();
        assert_eq!(f.feed("a\u{1b}[3"), "a");
        assert_eq!(f.feed("1mb\u{1b}]52;c;"), "\u{1b}[31mb");
        assert_eq!(f.feed("ZXZpbA==\u{7}c"), "c");
    }
}
