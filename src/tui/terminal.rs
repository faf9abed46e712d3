//! Taking over the terminal and always giving it back.
//!
//! Threat addressed: a shell left unusable (raw mode on, cursor hidden, stuck in the alternate
//! screen) after the dashboard ends in any way. [`TerminalGuard`] restores on drop (normal quit,
//! an error unwinding through the app, the task being dropped at runtime shutdown), and a panic
//! hook restores before the panic message is printed, so the message is readable. Signals
//! (SIGTERM, SIGHUP, SIGINT from outside) are handled by the run, which stops the dashboard
//! first, which drops the guard. Restoring twice is harmless.
//!
//! Left open: SIGKILL of the orchestrator leaves the terminal in raw mode (nothing can run);
//! `reset` or `stty sane` repairs it.

use std::io::{Stdout, Write, stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::{
    cursor, execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};
use thiserror::Error;

/// Whether the terminal is currently taken (so the panic hook knows to restore).
static TAKEN: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// The dashboard could not take the terminal.
#[derive(Debug, Error)]
pub enum TerminalError {
    #[error(
        "--tui needs a terminal on stdout (stdout is redirected or piped); drop --tui or use `openwork serve`"
    )]
    NotATerminal,
    #[error("cannot set up the terminal ({step}): {source}")]
    Setup {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The terminal in raw mode on the alternate screen; restored when dropped.
pub struct TerminalGuard {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen, hides the cursor, installs the panic hook.
    pub fn take() -> Result<TerminalGuard, TerminalError> {
        use std::io::IsTerminal;
        if !stdout().is_terminal() {
            return Err(TerminalError::NotATerminal);
        }
        install_panic_hook();
        enable_raw_mode().map_err(|source| TerminalError::Setup {
            step: "raw mode",
            source,
        })?;
        TAKEN.store(true, Ordering::SeqCst);
        let mut out = stdout();
        if let Err(source) = execute!(out, EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(TerminalError::Setup {
                step: "alternate screen",
                source,
            });
        }
        let terminal = match Terminal::new(CrosstermBackend::new(stdout())) {
            Ok(t) => t,
            Err(source) => {
                restore();
                return Err(TerminalError::Setup {
                    step: "terminal size",
                    source,
                });
            }
        };
        Ok(TerminalGuard { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen, shows the cursor, turns raw mode off (once; idempotent).
pub fn restore() {
    if !TAKEN.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = stdout();
    let _ = execute!(out, LeaveAlternateScreen, cursor::Show);
    let _ = disable_raw_mode();
    let _ = out.flush();
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
