//! The interactive console: ratatui + crossterm on tokio. The app (state and
//! update) never touches the engine; the runtime here runs engine calls in tasks
//! and feeds their results back as messages, so a slow backend never freezes the
//! screen. Redraws happen on input, on engine news and on a 1 s tick only.

pub mod app;
pub mod drafts;
pub mod draw;
pub mod input;
pub mod screens;
pub mod theme;
pub mod ui;
pub mod widgets;

use crate::domain::{RequestId, State};
use crate::engine::{Decision, Query};
use crate::service::Service;
use app::{App, Cmd, Msg, Snapshot, Verb};
use crossterm::event::{Event, EventStream, KeyEventKind};
use drafts::{draft_path, load_drafts, save_draft};
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use secrecy::ExposeSecret;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use theme::Theme;
use tokio::sync::{mpsc, watch, Notify};

pub struct Options {
    pub theme: Theme,
    pub warning: Option<String>,
    pub drafts_dir: PathBuf,
    pub me: String,
    pub personas: Option<Vec<String>>,
    /// What the status bar says of the store and of who holds the secrets.
    pub store: String,
    /// How to run `breakglass shell` and `replay` for the console.
    pub relaunch: Option<Relaunch>,
    /// `[ui] approval_bell`.
    pub approval_bell: bool,
}

/// The console hands the terminal to a vendor session or a replay by running
/// this same binary as a child on the same config: the CLI's tested path, and
/// its terminal threads end with the child instead of competing with ours.
#[derive(Debug, Clone)]
pub struct Relaunch {
    pub exe: PathBuf,
    pub config: PathBuf,
}

/// What the console leaves behind, said once the terminal is restored.
#[derive(Debug, Default)]
pub struct Summary {
    pub frames: u64,
    pub still_active: Vec<(RequestId, chrono::DateTime<chrono::Utc>)>,
}

/// How many of the newest audit events the Audit tab holds.
pub const AUDIT_ROWS: usize = 10_000;

/// The Audit tab's events, kept between snapshots so that only events past the
/// newest one held are fetched: the whole tail on every change was ~3 MB of
/// JSON through the broker's socket with 10,000 events.
#[derive(Debug, Default)]
pub struct AuditRows {
    rows: Vec<crate::audit::AuditRecord>,
    /// How many events the last refresh fetched.
    fetched: usize,
}

impl AuditRows {
    /// The newest `AUDIT_ROWS` events, oldest first: those held plus what
    /// follows them, or the whole tail again when they do not connect (a first
    /// load, many new events, another store behind the same socket).
    pub async fn refresh(
        &mut self,
        svc: &Service,
    ) -> Result<&[crate::audit::AuditRecord], crate::service::Error> {
        if let Some(last) = self.rows.last() {
            let new = svc.audit_events(last.seq + 1, AUDIT_ROWS).await?;
            let follows = match new.first() {
                Some(n) => n.seq == last.seq + 1 && n.prev_hash == last.hash,
                // Nothing new: still the same log only if its head is ours.
                None => svc.audit_head().await? == (last.seq, last.hash.clone()),
            };
            if follows && new.len() < AUDIT_ROWS {
                self.fetched = new.len();
                self.rows.extend(new);
                let excess = self.rows.len().saturating_sub(AUDIT_ROWS);
                self.rows.drain(..excess);
                return Ok(&self.rows);
            }
        }
        self.clear();
        self.rows = svc.audit_tail(AUDIT_ROWS).await?;
        self.fetched = self.rows.len();
        Ok(&self.rows)
    }

    /// `refresh`, boxed where it is made: debug builds give every temporary its
    /// own stack slot, so the caller's frame holds a pointer, not the future.
    fn refresh_boxed<'a>(
        &'a mut self,
        svc: &'a Service,
    ) -> futures::future::BoxFuture<
        'a,
        Result<&'a [crate::audit::AuditRecord], crate::service::Error>,
    > {
        Box::pin(self.refresh(svc))
    }

    /// Holds `rows`, the whole tail just fetched, and returns them.
    fn hold(&mut self, rows: Vec<crate::audit::AuditRecord>) -> Vec<crate::audit::AuditRecord> {
        self.fetched = rows.len();
        self.rows.clone_from(&rows);
        rows
    }

    /// Forgets what is held: the next refresh fetches the whole tail.
    pub fn clear(&mut self) {
        self.rows = Vec::new();
    }

    /// How many events the last refresh fetched (for tests and benches).
    pub fn fetched(&self) -> usize {
        self.fetched
    }
}

/// Everything the console shows, read for one identity (`svc` acts as them).
pub async fn snapshot(svc: &Service, who: &str) -> Snapshot {
    // Boxed: the nested future would make every caller's future larger.
    Box::pin(snapshot_with(svc, who, &mut AuditRows::default())).await
}

/// `snapshot`, fetching only the audit events that `held` does not hold yet.
pub async fn snapshot_with(svc: &Service, who: &str, held: &mut AuditRows) -> Snapshot {
    /// What failed, said in `errors`; a broker out of reach, in `down`.
    struct Failed {
        errors: Vec<String>,
        down: Option<String>,
    }
    impl Failed {
        fn ok<T: Default>(&mut self, r: Result<T, crate::service::Error>, say: bool) -> T {
            r.unwrap_or_else(|e| {
                if e.kind == crate::service::ErrorKind::Unavailable {
                    self.down.get_or_insert_with(|| e.to_string());
                } else if say {
                    self.errors.push(e.to_string());
                }
                T::default()
            })
        }
    }
    let mut f = Failed {
        errors: vec![],
        down: None,
    };
    let (incidents, source_errors, source_warnings) = f.ok(svc.incidents().await, true);
    f.errors
        .extend(source_errors.iter().map(ToString::to_string));
    let roles = f.ok(svc.roles().await, true);
    let mine = f.ok(
        svc.requests(&Query {
            requester: Some(who.to_string()),
            limit: Some(200),
            ..Default::default()
        })
        .await,
        true,
    );
    let approvals = f.ok(svc.approvals().await, true);
    let reviews = f.ok(svc.reviews().await, true);
    // Nothing held (a first load, every `snapshot`): the whole tail, fetched
    // here so that this path is no deeper than it was (tests run the console
    // on a 2 MB stack in debug builds).
    let audit = if held.rows.is_empty() {
        svc.audit_tail(AUDIT_ROWS).await.map(|rows| held.hold(rows))
    } else {
        held.refresh_boxed(svc).await.map(<[_]>::to_vec)
    };
    let audit = match audit {
        Ok(rows) => rows,
        Err(e) => {
            held.clear();
            f.ok(Err(e), false)
        }
    };
    let head = audit.last().map_or(0, |r| r.seq);
    let undelivered = f.ok(svc.undelivered_alerts().await, false);
    let errors = f.errors;
    Snapshot {
        who: who.to_string(),
        incidents,
        source_errors: errors,
        source_warnings,
        roles,
        mine,
        approvals,
        reviews,
        audit,
        audit_head: head,
        undelivered,
        unreachable: f.down,
    }
}

type Term = Terminal<CrosstermBackend<std::io::Stdout>>;

fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::event::DisableBracketedPaste,
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

fn setup_terminal() -> std::io::Result<Term> {
    // Whatever happens (a panic included), the operator gets their terminal back.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    crossterm::terminal::enable_raw_mode()?;
    crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::EnterAlternateScreen,
        // A paste arrives as one event, not as thousands of keys.
        crossterm::event::EnableBracketedPaste,
        crossterm::cursor::Hide
    )?;
    Terminal::new(CrosstermBackend::new(std::io::stdout()))
}

/// Runs the console until the operator quits or a signal asks it to stop.
/// What ends the console from outside: SIGTERM, SIGHUP and SIGINT. Ctrl-C is
/// a key in raw mode; a SIGINT comes from `kill`, or from Ctrl-C while a child
/// has the terminal (which the child handles, not us).
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

/// A running console's runtime: the terminal and its events, the channels to
/// the watcher and to engine calls, and the app state they all feed.
struct Runtime<'a> {
    svc: Service,
    opts: &'a Options,
    demo: bool,
    app: App,
    terminal: Term,
    events: EventStream,
    signals: Signals,
    msg_tx: mpsc::UnboundedSender<Msg>,
    who_tx: watch::Sender<String>,
    refresh: Arc<Notify>,
    summary: Summary,
}

pub async fn run(svc: Service, opts: Options) -> anyhow::Result<Summary> {
    let signals = Signals::new()?;
    let app = new_app(&svc, &opts);
    let demo = opts.personas.is_some();
    let (msg_tx, mut msg_rx) = mpsc::unbounded_channel::<Msg>();
    let (who_tx, who_rx) = watch::channel(opts.me.clone());
    let refresh = Arc::new(Notify::new());
    let watcher = tokio::spawn(watch_store(
        svc.clone(),
        demo,
        who_rx,
        msg_tx.clone(),
        refresh.clone(),
    ));
    let mut rt = Runtime {
        terminal: setup_terminal()?,
        events: EventStream::new(),
        svc,
        opts: &opts,
        demo,
        app,
        signals,
        msg_tx,
        who_tx,
        refresh,
        summary: Summary::default(),
    };
    let result = rt.event_loop(&mut msg_rx).await;
    rt.leave();
    watcher.abort();
    result?;
    rt.summary.still_active = rt.still_active().await;
    Ok(rt.summary)
}

impl Runtime<'_> {
    /// Draws when something changed, waits for the next message, lets the app
    /// update, and carries out what it asks, until the app quits.
    async fn event_loop(
        &mut self,
        msg_rx: &mut mpsc::UnboundedReceiver<Msg>,
    ) -> anyhow::Result<()> {
        if let Ok(size) = self.terminal.size() {
            self.app.update(Msg::Resize(size.width, size.height));
        }
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut fast = tokio::time::interval(std::time::Duration::from_millis(250));
        let mut dirty = true;
        loop {
            if dirty {
                let (app, theme) = (&self.app, &self.opts.theme);
                self.terminal.draw(|f| ui::render(f, app, theme))?;
                self.summary.frames += 1;
                dirty = false;
            }
            let msg = tokio::select! {
                ev = self.events.next() => match ev {
                    Some(Ok(Event::Key(k))) if k.kind != KeyEventKind::Release => Msg::Key(k),
                    Some(Ok(Event::Resize(w, h))) => Msg::Resize(w, h),
                    Some(Ok(Event::Paste(t))) => Msg::Paste(t),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Ok(()),
                },
                _ = tick.tick() => Msg::Tick(self.svc.now()),
                // The spinner turns faster only while something is in flight.
                _ = fast.tick(), if self.app.busy.is_some() => Msg::Tick(self.svc.now()),
                Some(m) = msg_rx.recv() => m,
                _ = self.signals.term.recv() => return self.quit_now(),
                _ = self.signals.hup.recv() => return self.quit_now(),
                _ = self.signals.int.recv() => return self.quit_now(),
            };
            dirty = true;
            if matches!(msg, Msg::Key(_) | Msg::Paste(_)) {
                crate::failpoint::panic_at("tui.key");
                // A key acts on what the screen shows now: the size is read here,
                // not only from resize events, which can arrive after the key.
                if let Ok(size) = self.terminal.size() {
                    self.app.update(Msg::Resize(size.width, size.height));
                }
            }
            for cmd in self.app.update(msg) {
                self.perform(cmd).await?;
            }
            if self.app.quitting {
                return Ok(());
            }
        }
    }

    /// A signal: leave as Ctrl-C does (drafts kept).
    fn quit_now(&mut self) -> anyhow::Result<()> {
        self.app.update(Msg::Key(ctrl_c()));
        Ok(())
    }

    /// Carries out one of the app's commands: terminal effects here, engine
    /// calls on their own tasks (their answers come back as messages).
    async fn perform(&mut self, cmd: Cmd) -> anyhow::Result<()> {
        let (opts, me) = (self.opts, self.app.me.clone());
        match cmd {
            Cmd::Quit => {}
            Cmd::Refresh => self.refresh.notify_one(),
            Cmd::Identity(who) => {
                self.app.drafts = load_drafts(&opts.drafts_dir, &who);
                let _ = self.who_tx.send(who);
            }
            Cmd::Copy(secret) => copy_to_clipboard(&mut self.terminal, &secret)?,
            Cmd::Bell => {
                // BEL between frames: the terminal (or tmux, or the
                // window manager) turns it into a sound or a flag.
                let out = self.terminal.backend_mut();
                out.write_all(b"\x07")?;
                out.flush()?;
            }
            Cmd::SaveDraft(id, a) => {
                if let Err(e) = save_draft(&opts.drafts_dir, id, &me, &a) {
                    self.app.flash =
                        Some((app::Level::Error, format!("could not save the draft: {e}")));
                }
            }
            Cmd::DeleteDraft(id) => {
                let _ = std::fs::remove_file(draft_path(&opts.drafts_dir, id, &me));
            }
            Cmd::Shell(id) => self.hand_terminal_over(id, false).await?,
            Cmd::Replay(id) => self.hand_terminal_over(id, true).await?,
            other => spawn_call(
                acting(&self.svc, &me, self.demo),
                me,
                other,
                self.msg_tx.clone(),
            ),
        }
        Ok(())
    }

    /// A vendor session or a replay runs as a child on this terminal; the
    /// console takes the terminal back after it.
    async fn hand_terminal_over(&mut self, id: RequestId, replay: bool) -> anyhow::Result<()> {
        // Stop reading the terminal before the child does.
        drop(std::mem::replace(&mut self.events, EventStream::new()));
        restore_terminal();
        let result = match &self.opts.relaunch {
            // The status line shows the error and its causes on one line.
            Some(r) => hand_over(r, &self.app.me, self.app.is_demo(), id, replay)
                .await
                .map_err(|e| crate::net::http::error_chain(&e)),
            None => Err("this console cannot start sessions".to_string()),
        };
        // Ctrl-C pressed during the child's run was the child's.
        while futures::FutureExt::now_or_never(self.signals.int.recv()).is_some() {}
        self.terminal = take_terminal_back()?;
        let _ = self.msg_tx.send(Msg::SessionDone { id, replay, result });
        Ok(())
    }

    /// However the loop ended: a review in progress saved, the terminal
    /// restored, and the frame count for the idle-CPU benchmark.
    fn leave(&mut self) {
        if let Some(f) = &self.app.review {
            let _ = save_draft(&self.opts.drafts_dir, f.id, &self.app.me, &f.draft());
        }
        restore_terminal();
        let _ = self.terminal.show_cursor();
        if let Some(p) = std::env::var_os("BREAKGLASS_TUI_STATS") {
            let _ = std::fs::write(p, format!("{{\"frames\": {}}}\n", self.summary.frames));
        }
    }

    /// This person's access still active as the console closes.
    async fn still_active(&self) -> Vec<(RequestId, chrono::DateTime<chrono::Utc>)> {
        acting(&self.svc, &self.app.me, self.demo)
            .requests(&Query {
                states: Some(vec![State::Active]),
                requester: Some(self.app.me.clone()),
                ..Default::default()
            })
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| Some((r.id, r.expires_at()?)))
            .collect()
    }
}

/// The app state a session starts with: identity, the engine's field checker,
/// saved drafts, and any warning to show first.
fn new_app(svc: &Service, opts: &Options) -> App {
    let mut app = App::new(
        opts.me.clone(),
        opts.personas.clone(),
        opts.store.clone(),
        svc.now(),
    );
    // In process, the form checks fields as they are typed; through a broker
    // (which holds the policy) they are checked when the request is filed.
    if let Some(engine) = svc.engine().cloned() {
        app.checker = Some(Arc::new(
            move |role: &str, new: &crate::domain::lifecycle::NewRequest| {
                engine.check_fields(role, new)
            },
        ));
    }
    app.drafts = load_drafts(&opts.drafts_dir, &opts.me);
    app.approval_bell = opts.approval_bell;
    if let Some(w) = &opts.warning {
        app.flash = Some((app::Level::Warn, w.clone()));
    }
    app
}

/// Copies a secret with OSC 52 (works over SSH); it goes to the terminal only.
fn copy_to_clipboard(terminal: &mut Term, secret: &secrecy::SecretString) -> std::io::Result<()> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret.expose_secret());
    let w = terminal.backend_mut();
    write!(w, "\x1b]52;c;{b64}\x07")?;
    w.flush()
}

/// Takes the terminal back after a child had it: raw mode, the alternate screen,
/// cleared. A fresh Terminal: its blank back buffer matches the cleared screen,
/// so the next frame is drawn whole (Terminal::clear would ask the terminal for
/// the cursor position instead).
fn take_terminal_back() -> std::io::Result<Term> {
    crossterm::terminal::enable_raw_mode()?;
    crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::EnterAlternateScreen,
        crossterm::terminal::Clear(crossterm::terminal::ClearType::All),
        crossterm::event::EnableBracketedPaste,
        crossterm::cursor::Hide
    )?;
    Terminal::new(CrosstermBackend::new(std::io::stdout()))
}

/// Why a session or replay handed the terminal did not end well.
#[derive(Debug, thiserror::Error)]
enum HandOverError {
    #[error("could not start `breakglass {verb} {id}`: {source}")]
    Start {
        verb: &'static str,
        id: RequestId,
        #[source]
        source: std::io::Error,
    },
    #[error("`breakglass {verb} {id}` ended with {status}: see what it printed before you pressed Enter")]
    Failed {
        verb: &'static str,
        id: RequestId,
        status: std::process::ExitStatus,
    },
}

/// Runs `breakglass shell ID` (or `replay ID`) on the console's terminal and
/// waits for Enter afterwards, so its last words can be read.
async fn hand_over(
    r: &Relaunch,
    who: &str,
    demo: bool,
    id: RequestId,
    replay: bool,
) -> Result<(), HandOverError> {
    let verb = if replay { "replay" } else { "shell" };
    let mut cmd = tokio::process::Command::new(&r.exe);
    cmd.arg("--config").arg(&r.config);
    if demo {
        // Demo personas only; elsewhere the child is the same OS account.
        cmd.args(["--as", who]);
    }
    cmd.args([verb, &id.to_string()]);
    let status = cmd
        .status()
        .await
        .map_err(|source| HandOverError::Start { verb, id, source })?;
    // Read the key in raw mode: a child killed before it restored the terminal
    // would leave line input off, and a line read would then never end. Raw
    // mode goes on before the prompt, so the Enter that answers it arrives raw.
    let _ = crossterm::terminal::enable_raw_mode();
    print!("\r\n[breakglass] press Enter to return to the console ");
    let _ = std::io::stdout().flush();
    let _ = tokio::task::spawn_blocking(|| loop {
        use crossterm::event::{read, KeyCode, KeyModifiers};
        match read() {
            Ok(Event::Key(k))
                if k.kind == KeyEventKind::Press
                    && (matches!(k.code, KeyCode::Enter | KeyCode::Esc | KeyCode::Char('q'))
                        // A newline typed while line input was still on.
                        || (k.code == KeyCode::Char('j')
                            && k.modifiers.contains(KeyModifiers::CONTROL))) =>
            {
                break
            }
            Err(_) => break,
            _ => {}
        }
    })
    .await;
    if status.success() {
        Ok(())
    } else {
        Err(HandOverError::Failed { verb, id, status })
    }
}

fn ctrl_c() -> crossterm::event::KeyEvent {
    crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('c'),
        crossterm::event::KeyModifiers::CONTROL,
    )
}

/// Keeps the view current: runs the sweeper's recovery (the console enforces
/// expiry while it is open) and reloads when the audit head moves, which is how
/// it notices approvers acting from other terminals.
async fn watch_store(
    svc: Service,
    demo: bool,
    mut who: watch::Receiver<String>,
    tx: mpsc::UnboundedSender<Msg>,
    refresh: Arc<Notify>,
) {
    let mut last_head = -1;
    let mut ticks: u64 = 0;
    let mut first = true;
    let mut audit = AuditRows::default();
    loop {
        // Wakes on a change from any terminal (LISTEN/NOTIFY on PostgreSQL, a
        // cheap poll on SQLite), else after a second.
        let force = std::mem::take(&mut first) || {
            tokio::select! {
                _ = svc.wait_for_change(last_head, std::time::Duration::from_secs(1)) => false,
                _ = refresh.notified() => true,
                // Another caller may see another log: fetched whole for them.
                _ = who.changed() => { audit.clear(); true }
            }
        };
        ticks += 1;
        // A broker sweeps on its own; in process the open console enforces expiry.
        if svc.engine().is_some() && (ticks % 2 == 0 || force) {
            let _ = svc.recover().await;
        }
        let head = svc.audit_head().await;
        // While the broker is out of reach every turn says so (a key clears
        // the message), and the first answer after it reloads.
        let down = head
            .as_ref()
            .is_err_and(|e| e.kind == crate::service::ErrorKind::Unavailable);
        let head = head.map(|h| h.0).unwrap_or(-1);
        if force || down || head != last_head || ticks % 15 == 0 {
            last_head = head;
            let me = who.borrow().clone();
            let snap = snapshot_with(&acting(&svc, &me, demo), &me, &mut audit).await;
            if tx.send(Msg::Loaded(Box::new(snap))).is_err() {
                return;
            }
        }
    }
}

/// `svc` acting as `who`: demo personas are named on each call; otherwise the
/// engine or the broker knows who is asking.
pub fn acting(svc: &Service, who: &str, demo: bool) -> Service {
    svc.as_persona(demo.then(|| who.to_string()))
}

fn spawn_call(svc: Service, who: String, cmd: Cmd, tx: mpsc::UnboundedSender<Msg>) {
    tokio::spawn(async move {
        if let Some(msg) = execute(&svc, &who, cmd).await {
            let _ = tx.send(msg);
        }
    });
}

/// Runs one command as `svc`'s caller (`who`) and returns the message that
/// reports it. Runtime-only commands (copy, drafts, identity, quit) return `None`.
pub async fn execute(svc: &Service, who: &str, cmd: Cmd) -> Option<Msg> {
    let e = |r: crate::service::Error| r.to_string();
    Some(match cmd {
        Cmd::Refresh => Msg::Loaded(Box::new(snapshot(svc, who).await)),
        Cmd::Request(input) => Msg::Requested(svc.request(input, None).await.map_err(e)),
        Cmd::Activate(id) => Msg::Activated(id, svc.activate(id).await.map_err(e)),
        Cmd::Approve(id, comment) => Msg::Acted(
            Verb::Approved,
            svc.decide(id, Decision::approve(comment)).await.map_err(e),
        ),
        Cmd::Deny(id, reason) => Msg::Acted(
            Verb::Denied,
            svc.decide(id, Decision::deny(reason)).await.map_err(e),
        ),
        Cmd::Cancel(id) => Msg::Acted(Verb::Cancelled, svc.cancel(id).await.map_err(e)),
        Cmd::Drill(role) => Msg::Acted(Verb::Drilled, svc.drill(&role).await.map_err(e)),
        Cmd::Revoke(id) => Msg::Acted(
            Verb::Revoked,
            svc.revoke(id, "ended early from the console")
                .await
                .map_err(e),
        ),
        Cmd::Extend(id, secs, reason) => {
            Msg::Extended(svc.extend(id, secs, &reason).await.map_err(e))
        }
        Cmd::Review(id, answers) => {
            Msg::Acted(Verb::Reviewed, svc.review(id, answers).await.map_err(e))
        }
        Cmd::Certify(id, comment, exception) => {
            let decision = match exception {
                Some(why) => Decision::certify_with_exception(comment, why),
                None => Decision::certify(comment),
            };
            Msg::Acted(Verb::Certified, svc.decide(id, decision).await.map_err(e))
        }
        Cmd::Reject(id, comment) => Msg::Acted(
            Verb::ReviewRejected,
            svc.decide(id, Decision::reject(comment)).await.map_err(e),
        ),
        Cmd::VerifyAudit => {
            let head = svc.audit_head().await.map(|h| h.0).unwrap_or(0);
            // The engine runs the check on the blocking pool.
            match svc.verify_audit().await {
                Ok((n, None)) => Msg::Verified(head, Ok(n)),
                Ok((_, Some(b))) => Msg::Verified(head, Err(b)),
                Err(err) => Msg::Acted(Verb::Verified, Err(err.to_string())),
            }
        }
        Cmd::Copy(_)
        | Cmd::SaveDraft(..)
        | Cmd::DeleteDraft(_)
        | Cmd::Identity(_)
        | Cmd::Shell(_)
        | Cmd::Replay(_)
        | Cmd::Bell
        | Cmd::Quit => return None,
    })
}

/// Whether some `breakglass daemon` runs on this host (so expiry is enforced
/// after the console exits even without another command).
pub fn daemon_running() -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            args.first().is_some_and(|a| a.ends_with(b"breakglass"))
                && args.iter().any(|a| *a == b"daemon")
        })
}
