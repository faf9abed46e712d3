//! The dashboard's event loop: supervisor events, the service table, keys, a modest tick and the
//! answers of background requests feed the [`Model`]; a frame is drawn when something changed,
//! at most every [`FRAME`].
//!
//! Threat addressed: the dashboard slowing the services. It reads the supervisor through the
//! bounded broadcast (a flood makes it skip, never makes a child wait), drains every waiting
//! event before drawing once (a flood of lines is one frame), and runs HTTP requests and
//! clipboard tools in their own tasks so a key press is handled while they wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::clipboard;
use super::input::{Action, action};
use super::remote::Remote;
use super::state::{Modal, Model};
use super::terminal::{TerminalError, TerminalGuard};
use super::view::{ConnectInfo, RunInfo, render};
use crate::logs::LogSink;
use crate::supervisor::{EventBus, Restarter};

/// Shortest time between two frames.
const FRAME: Duration = Duration::from_millis(50);
/// The tick: uptime, toasts.
const TICK: Duration = Duration::from_millis(500);
/// How often pending approvals are read.
const APPROVALS_EVERY: Duration = Duration::from_millis(700);
/// Most events applied before a frame is drawn (the rest wait for the next turn).
const BATCH: usize = 4096;

/// What the run learns once it is ready: how to connect, and the HTTP client for approvals.
#[derive(Clone)]
pub struct Ready {
    pub connect: ConnectInfo,
    pub remote: Remote,
}

/// How the dashboard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The person quit: stop the services.
    Quit,
    /// The person detached: leave the services running, print the detach summary.
    Detach,
    /// The run was stopped from outside (a signal, a fatal error).
    Cancelled,
}

/// Everything the dashboard reads and acts on.
pub struct Dashboard {
    pub run: RunInfo,
    pub bus: EventBus,
    pub restarter: Restarter,
    /// The run's log sink: its redactor cleans every line shown.
    pub sink: Arc<LogSink>,
    /// `None` until the services are ready.
    pub ready: watch::Receiver<Option<Ready>>,
    pub cancel: CancellationToken,
    pub started: Instant,
    /// The orchestrator's own records (from the sink's tap), already redacted.
    pub orchestrator: mpsc::Receiver<(crate::logs::Level, String)>,
}

/// Answers of background work.
enum Note {
    Approvals(Result<Vec<super::state::Approval>, String>),
    Toast(String),
    /// The quit check's answer: is opencode busy?
    QuitCheck(bool),
}

/// Takes the terminal (before anything is spawned, so an error leaves nothing behind).
pub fn take_terminal() -> Result<TerminalGuard, TerminalError> {
    TerminalGuard::take()
}

/// Runs the dashboard until the person quits or the run cancels it. The terminal is restored
/// when this returns (the guard is dropped here).
pub async fn run(mut guard: TerminalGuard, d: Dashboard) -> Outcome {
    let Dashboard {
        run,
        bus,
        restarter,
        sink,
        mut ready,
        cancel,
        started,
        mut orchestrator,
    } = d;
    let mut events = bus.subscribe();
    let mut table = bus.table();
    let mut model = Model::new();
    model.services = table.borrow_and_update().clone();
    let (notes_tx, mut notes) = mpsc::unbounded_channel::<Note>();
    let (keys, mut key_rx) = mpsc::channel::<Event>(64);
    let stop_input = Arc::new(AtomicBool::new(false));
    spawn_input_thread(keys, stop_input.clone());
    let redact = |s: &str| sink.redact(s);

    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut poll = tokio::time::interval(APPROVALS_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut polling = false;
    let mut dirty = true;
    let mut last_frame = Instant::now() - FRAME;
    let outcome = loop {
        if dirty && last_frame.elapsed() >= FRAME {
            let connect = ready.borrow().as_ref().map(|r| r.connect.clone());
            let uptime = started.elapsed();
            let _ = guard
                .terminal
                .draw(|f| render(f, &model, &run, connect.as_ref(), uptime));
            last_frame = Instant::now();
            dirty = false;
        }
        let frame_wait = if dirty {
            FRAME.saturating_sub(last_frame.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break Outcome::Cancelled,
            Some(ev) = key_rx.recv() => {
                match ev {
                    Event::Key(key) => {
                        if let Some(a) = action(key, model.modal.as_ref())
                            && let Some(out) = act(a, &mut model, &ready, &restarter, &notes_tx)
                        {
                            break out;
                        }
                    }
                    Event::Resize(..) => {
                        let _ = guard.terminal.autoresize();
                    }
                    _ => {}
                }
                dirty = true;
            }
            received = events.recv() => {
                match received {
                    Ok(ev) => model.apply(&ev, &redact),
                    Err(broadcast::error::RecvError::Lagged(n)) => model.lagged(n),
                    Err(broadcast::error::RecvError::Closed) => {}
                }
                // Coalesce: take what else is waiting, then draw once.
                for _ in 0..BATCH {
                    match events.try_recv() {
                        Ok(ev) => model.apply(&ev, &redact),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => model.lagged(n),
                        Err(_) => break,
                    }
                }
                dirty = true;
            }
            Some((level, text)) = orchestrator.recv() => {
                model.orchestrator(level, &text);
                dirty = true;
            }
            Ok(()) = table.changed() => {
                model.services = table.borrow_and_update().clone();
                dirty = true;
            }
            Some(note) = notes.recv() => {
                match note {
                    Note::Approvals(Ok(list)) => {
                        polling = false;
                        if list != model.approvals {
                            model.set_approvals(list);
                            dirty = true;
                        }
                    }
                    Note::Approvals(Err(e)) => {
                        polling = false;
                        model.approvals_error = Some(e);
                    }
                    Note::Toast(t) => {
                        model.toast(t, Instant::now());
                        dirty = true;
                    }
                    Note::QuitCheck(busy) => match model.quit_blocker(busy) {
                        Some(reason) => {
                            model.modal = Some(Modal::ConfirmQuit { reason });
                            dirty = true;
                        }
                        None => break Outcome::Quit,
                    },
                }
            }
            _ = poll.tick() => {
                let remote = ready.borrow().as_ref().map(|r| r.remote.clone());
                if let Some(remote) = remote && !polling {
                    polling = true;
                    let tx = notes_tx.clone();
                    tokio::spawn(async move {
                        let r = remote.approvals().await.map_err(|e| e.to_string());
                        let _ = tx.send(Note::Approvals(r));
                    });
                }
            }
            _ = tick.tick() => {
                model.expire_toast(Instant::now());
                dirty = true;
            }
            Ok(()) = ready.changed() => dirty = true,
            _ = tokio::time::sleep(frame_wait) => {}
        }
    };
    stop_input.store(true, Ordering::SeqCst);
    drop(guard);
    outcome
}

/// Carries out one action; `Some` ends the dashboard.
fn act(
    a: Action,
    model: &mut Model,
    ready: &watch::Receiver<Option<Ready>>,
    restarter: &Restarter,
    notes: &mpsc::UnboundedSender<Note>,
) -> Option<Outcome> {
    let now = Instant::now();
    let remote = ready.borrow().as_ref().map(|r| r.remote.clone());
    match a {
        Action::Quit => {
            if let Some(reason) = model.quit_blocker(false) {
                model.modal = Some(Modal::ConfirmQuit { reason });
                return None;
            }
            match remote {
                // Ask opencode whether a session is busy; the answer decides (QuitCheck).
                Some(remote) => {
                    model.toast("checking whether opencode is busy…", now);
                    let tx = notes.clone();
                    tokio::spawn(async move {
                        let busy = remote.opencode_busy().await;
                        let _ = tx.send(Note::QuitCheck(busy));
                    });
                }
                None => return Some(Outcome::Quit),
            }
        }
        Action::ConfirmQuit => return Some(Outcome::Quit),
        Action::Detach => match remote {
            Some(_) => return Some(Outcome::Detach),
            None => model.toast("not ready yet: detach once every service is up", now),
        },
        Action::RestartSelected => match model.selected_service_name() {
            Some(name) => {
                let r = restarter.clone();
                let tx = notes.clone();
                model.toast(format!("restarting {name}…"), now);
                tokio::spawn(async move {
                    let text = match r.restart(name).await {
                        Ok(()) => format!("{name} restarted"),
                        Err(e) => e.to_string(),
                    };
                    let _ = tx.send(Note::Toast(text));
                });
            }
            None => model.toast("no service selected", now),
        },
        Action::AllowSelected | Action::DenySelected => {
            let allow = a == Action::AllowSelected;
            match (model.selected_approval().cloned(), remote) {
                (Some(ap), Some(remote)) => {
                    let tx = notes.clone();
                    // Gone from the list at once; the next poll shows the truth.
                    model.approvals.retain(|x| x.id != ap.id);
                    let approvals = std::mem::take(&mut model.approvals);
                    model.set_approvals(approvals);
                    tokio::spawn(async move {
                        let verb = if allow { "allowed" } else { "denied" };
                        let text = match remote.reply(&ap.id, allow).await {
                            Ok(()) => format!("{} {verb}", ap.action),
                            Err(e) => format!("could not answer the approval: {e}"),
                        };
                        let _ = tx.send(Note::Toast(text));
                    });
                }
                _ => model.toast("no pending approval", now),
            }
        }
        Action::ToggleFollow => model.toggle_follow(),
        Action::CycleServiceFilter => model.cycle_service_filter(),
        Action::CycleLevelFilter => model.cycle_level_filter(),
        Action::StartSearch => {
            model.modal = Some(Modal::Search {
                draft: model.search.clone(),
            })
        }
        Action::SearchInput(c) => {
            if let Some(Modal::Search { draft }) = &mut model.modal {
                draft.push(c);
            }
        }
        Action::SearchBackspace => {
            if let Some(Modal::Search { draft }) = &mut model.modal {
                draft.pop();
            }
        }
        Action::SearchApply => {
            if let Some(Modal::Search { draft }) = model.modal.take() {
                model.search = draft;
                model.scroll = 0;
            }
        }
        Action::ToggleReveal => model.reveal = !model.reveal,
        Action::CopyAttach => match ready.borrow().as_ref() {
            Some(r) => {
                let text = r.connect.attach_raw.clone();
                let tx = notes.clone();
                tokio::task::spawn_blocking(move || {
                    let msg = match clipboard::copy(&text) {
                        clipboard::Copied::Tool(t) => format!("Attach command copied ({t})"),
                        clipboard::Copied::Osc52Only => {
                            "Attach command sent to the terminal's clipboard (OSC 52)".to_string()
                        }
                    };
                    let _ = tx.send(Note::Toast(msg));
                });
            }
            None => model.toast("not ready yet: nothing to copy", now),
        },
        Action::Help => model.modal = Some(Modal::Help),
        Action::Close => model.modal = None,
        Action::FocusNext => model.cycle_focus(),
        Action::Up => model.move_selection(false),
        Action::Down => model.move_selection(true),
        Action::PageUp => model.scroll_logs(10),
        Action::PageDown => model.scroll_logs(-10),
        Action::ToggleFullLogs => model.logs_full = !model.logs_full,
    }
    None
}

/// Reads terminal events on a plain thread (crossterm's reader blocks) until `stop`.
fn spawn_input_thread(tx: mpsc::Sender<Event>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if tx.blocking_send(ev).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
}
