//! Themes: a semantic palette in TOML. Built-in themes are embedded; a user theme
//! of the same name in `<config dir>/themes/` overrides; `NO_COLOR` gives monochrome.

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use std::path::Path;

const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("colorblind", include_str!("../../themes/colorblind.toml")),
];

pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub background: Color,
    pub text: Color,
    pub muted: Color,
    pub accent: Color,
    pub border: Color,
    pub selection_bg: Color,
    pub selection_fg: Color,
    pub ok: Color,
    pub warn: Color,
    pub danger: Color,
    pub demo: Color,
    pub countdown_ok: Color,
    pub countdown_warn: Color,
    pub countdown_critical: Color,
    pub warn_below: f64,
    pub critical_below: f64,
    /// Monochrome (NO_COLOR): emphasis by modifiers only.
    pub mono: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTheme {
    name: Option<String>,
    background: String,
    text: String,
    muted: String,
    accent: String,
    border: String,
    selection_bg: String,
    selection_fg: String,
    ok: String,
    warn: String,
    danger: String,
    demo: String,
    countdown_ok: String,
    countdown_warn: String,
    countdown_critical: String,
    warn_below: f64,
    critical_below: f64,
}

fn color(key: &str, v: &str) -> Result<Color, String> {
    v.parse::<Color>().map_err(|_| {
        format!("{key} = \"{v}\" is not a colour; write \"#rrggbb\" or a name such as \"red\"")
    })
}

/// Parses theme TOML; errors name the key.
pub fn parse(text: &str, fallback_name: &str) -> Result<Theme, String> {
    let r: RawTheme = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => format!("line {l}: {}", e.message().trim()),
            None => e.message().trim().to_string(),
        }
    })?;
    let frac = |key: &str, v: f64| {
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{key} = {v} must be a fraction between 0 and 1"))
        }
    };
    Ok(Theme {
        name: r.name.unwrap_or_else(|| fallback_name.to_string()),
        background: color("background", &r.background)?,
        text: color("text", &r.text)?,
        muted: color("muted", &r.muted)?,
        accent: color("accent", &r.accent)?,
        border: color("border", &r.border)?,
        selection_bg: color("selection_bg", &r.selection_bg)?,
        selection_fg: color("selection_fg", &r.selection_fg)?,
        ok: color("ok", &r.ok)?,
        warn: color("warn", &r.warn)?,
        danger: color("danger", &r.danger)?,
        demo: color("demo", &r.demo)?,
        countdown_ok: color("countdown_ok", &r.countdown_ok)?,
        countdown_warn: color("countdown_warn", &r.countdown_warn)?,
        countdown_critical: color("countdown_critical", &r.countdown_critical)?,
        warn_below: frac("warn_below", r.warn_below)?,
        critical_below: frac("critical_below", r.critical_below)?,
        mono: false,
    })
}

impl Theme {
    pub fn builtin(name: &str) -> Option<Theme> {
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, t)| parse(t, n).expect("built-in themes parse"))
    }

    /// The theme called `name`: a user file in `user_dir` wins over the built-in.
    /// A broken or unknown theme falls back to default, with a warning to show.
    pub fn load(name: &str, user_dir: Option<&Path>, no_color: bool) -> (Theme, Option<String>) {
        let mut warning = None;
        let mut theme = None;
        if let Some(dir) = user_dir {
            let path = dir.join(format!("{name}.toml"));
            if let Ok(text) = std::fs::read_to_string(&path) {
                match parse(&text, name) {
                    Ok(t) => theme = Some(t),
                    Err(e) => {
                        warning = Some(format!(
                            "theme {}: {e}; using the default theme",
                            path.display()
                        ))
                    }
                }
            }
        }
        if theme.is_none() && warning.is_none() {
            theme = Theme::builtin(name);
            if theme.is_none() {
                warning = Some(format!(
                    "no theme called \"{name}\"; built-in themes are: {}; using the default theme",
                    builtin_names().join(", ")
                ));
            }
        }
        let mut t = theme.unwrap_or_else(|| Theme::builtin("default").expect("default exists"));
        if no_color {
            t = t.monochrome();
        }
        (t, warning)
    }

    pub fn monochrome(mut self) -> Theme {
        for c in [
            &mut self.background,
            &mut self.text,
            &mut self.muted,
            &mut self.accent,
            &mut self.border,
            &mut self.selection_bg,
            &mut self.selection_fg,
            &mut self.ok,
            &mut self.warn,
            &mut self.danger,
            &mut self.demo,
            &mut self.countdown_ok,
            &mut self.countdown_warn,
            &mut self.countdown_critical,
        ] {
            *c = Color::Reset;
        }
        self.mono = true;
        self
    }

    pub fn base(&self) -> Style {
        Style::new().fg(self.text).bg(self.background)
    }
    pub fn muted(&self) -> Style {
        let s = Style::new().fg(self.muted);
        if self.mono {
            s.add_modifier(Modifier::DIM)
        } else {
            s
        }
    }
    pub fn accent(&self) -> Style {
        Style::new().fg(self.accent).add_modifier(Modifier::BOLD)
    }
    pub fn border(&self) -> Style {
        Style::new().fg(self.border)
    }
    pub fn selected(&self) -> Style {
        let s = Style::new().fg(self.selection_fg).bg(self.selection_bg);
        if self.mono {
            s.add_modifier(Modifier::REVERSED)
        } else {
            s.add_modifier(Modifier::BOLD)
        }
    }
    pub fn ok(&self) -> Style {
        Style::new().fg(self.ok)
    }
    pub fn warn(&self) -> Style {
        Style::new().fg(self.warn).add_modifier(Modifier::BOLD)
    }
    pub fn danger(&self) -> Style {
        Style::new().fg(self.danger).add_modifier(Modifier::BOLD)
    }
    pub fn demo(&self) -> Style {
        Style::new().fg(self.demo).add_modifier(Modifier::BOLD)
    }

    /// Countdown colour for the fraction of granted time left.
    pub fn countdown(&self, fraction_left: f64) -> Style {
        let c = if fraction_left <= self.critical_below {
            self.countdown_critical
        } else if fraction_left <= self.warn_below {
            self.countdown_warn
        } else {
            self.countdown_ok
        };
        let s = Style::new().fg(c).add_modifier(Modifier::BOLD);
        if self.mono && fraction_left <= self.critical_below {
            s.add_modifier(Modifier::REVERSED)
        } else {
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_parses() {
        for n in builtin_names() {
            assert_eq!(Theme::builtin(n).unwrap().name, n);
        }
    }

    #[test]
    fn a_broken_user_theme_names_file_and_key_and_falls_back() {
        let d = tempfile::tempdir().unwrap();
        let text = include_str!("../../themes/default.toml").replace("#5fb3f9", "blurple");
        std::fs::write(d.path().join("mine.toml"), text).unwrap();
        let (t, w) = Theme::load("mine", Some(d.path()), false);
        assert_eq!(t.name, "default");
        let w = w.unwrap();
        assert!(
            w.contains("mine.toml") && w.contains("accent = \"blurple\""),
            "{w}"
        );
        let (_, w) = Theme::load("nope", None, false);
        assert!(w.unwrap().contains("high-contrast"));
    }

    #[test]
    fn a_user_theme_overrides_the_builtin_of_the_same_name() {
        let d = tempfile::tempdir().unwrap();
        let text = include_str!("../../themes/light.toml").replace("#0969da", "#123456");
        std::fs::write(d.path().join("light.toml"), text).unwrap();
        let (t, w) = Theme::load("light", Some(d.path()), false);
        assert!(w.is_none());
        assert_eq!(t.accent, Color::Rgb(0x12, 0x34, 0x56));
    }

    #[test]
    fn no_color_is_monochrome() {
        let (t, _) = Theme::load("default", None, true);
        assert!(t.mono);
        assert_eq!(t.danger, Color::Reset);
    }
}
