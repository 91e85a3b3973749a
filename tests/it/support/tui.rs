//! Drives the console's app state with keys and a real engine, no terminal:
//! commands go through the same `tui::execute` the runtime uses.
#![allow(dead_code)]

use super::H;
use breakglass::tui::app::{App, Cmd, Msg};
use breakglass::tui::theme::Theme;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;
use std::collections::VecDeque;
use std::sync::Arc;

pub struct Driver {
    pub h: H,
    pub engine: Arc<breakglass::engine::Engine>,
    pub app: App,
    pub theme: Theme,
    pub copied: Vec<String>,
    /// How many times the console asked the runtime to ring the bell.
    pub bells: usize,
}

impl Driver {
    /// A console as `who` on the demo harness (manual clock).
    pub fn new(h: H, who: &str) -> Self {
        Driver::new_with(h, who, |_| {})
    }

    /// `new` with the console's engine parts changed by `f` (extra sources...).
    pub fn new_with(h: H, who: &str, f: impl FnOnce(&mut breakglass::engine::Parts)) -> Self {
        let mut parts = clone_parts(&h);
        f(&mut parts);
        let engine = Arc::new(breakglass::engine::Engine::new(parts));
        let mut app = App::new(
            who.into(),
            h.engine.policy().demo_personas.clone(),
            "sqlite /demo/breakglass.sqlite".into(),
            h.clock_now(),
        );
        let e2 = engine.clone();
        app.checker = Some(Arc::new(
            move |role: &str, new: &breakglass::domain::lifecycle::NewRequest| {
                e2.check_fields(role, new)
            },
        ));
        Driver {
            h,
            engine,
            app,
            theme: Theme::builtin("default").unwrap(),
            copied: vec![],
            bells: 0,
        }
    }

    pub async fn run(&mut self, cmds: Vec<Cmd>) {
        let mut q: VecDeque<Cmd> = cmds.into();
        while let Some(c) = q.pop_front() {
            match c {
                Cmd::Identity(_) | Cmd::Quit | Cmd::SaveDraft(..) | Cmd::DeleteDraft(_) => {}
                Cmd::Bell => self.bells += 1,
                Cmd::Copy(s) => {
                    use secrecy::ExposeSecret;
                    self.copied.push(s.expose_secret().to_string())
                }
                other => {
                    let who = self.app.me.clone();
                    if let Some(m) =
                        breakglass::tui::execute(&self.service(&who), &who, other).await
                    {
                        q.extend(self.app.update(m));
                    }
                }
            }
        }
    }

    /// The console's service acting as demo persona `who`.
    pub fn service(&self, who: &str) -> breakglass::service::Service {
        breakglass::service::Service::local(self.engine.clone()).as_persona(Some(who.into()))
    }

    pub async fn refresh(&mut self) {
        self.run(vec![Cmd::Refresh]).await;
    }

    pub async fn press(&mut self, code: KeyCode) {
        self.key(KeyEvent::new(code, KeyModifiers::NONE)).await;
    }

    pub async fn ctrl(&mut self, c: char) {
        self.key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
            .await;
    }

    pub async fn key(&mut self, k: KeyEvent) {
        let cmds = self.app.update(Msg::Key(k));
        self.run(cmds).await;
    }

    /// Text pasted into the terminal (bracketed paste).
    pub async fn paste(&mut self, s: &str) {
        let cmds = self.app.update(Msg::Paste(s.into()));
        self.run(cmds).await;
    }

    pub async fn typed(&mut self, s: &str) {
        for c in s.chars() {
            self.press(KeyCode::Char(c)).await;
        }
    }

    pub async fn tick(&mut self) {
        let now = self.h.clock_now();
        let cmds = self.app.update(Msg::Tick(now));
        self.run(cmds).await;
    }

    pub fn buffer(&self, w: u16, h: u16) -> Buffer {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| breakglass::tui::ui::render(f, &self.app, &self.theme))
            .unwrap();
        t.backend().buffer().clone()
    }

    /// The screen as text, one line per row.
    pub fn screen(&self, w: u16, h: u16) -> String {
        let b = self.buffer(w, h);
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| b[(x, y)].symbol().to_string())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn sees(&self, needle: &str) -> bool {
        self.screen(100, 30).contains(needle)
    }

    #[track_caller]
    pub fn assert_sees(&self, needle: &str) {
        let s = self.screen(100, 30);
        assert!(s.contains(needle), "`{needle}` not on screen:\n{s}");
    }
}

/// A second engine over the same store and backends, as another process would have.
fn clone_parts(h: &H) -> breakglass::engine::Parts {
    let mut p = breakglass::engine::Parts::from_config(&h.cfg).unwrap();
    p.clock = h.clock.clone();
    p
}

impl H {
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use breakglass::clock::Clock;
        self.clock.now()
    }
}
