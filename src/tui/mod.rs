//! The dashboard: `openwork start` on a terminal (or `--tui`). One full screen with the run's
//! header, the services and their state, how to connect, pending approvals and the unified log;
//! keys to quit, restart a service, answer approvals, filter and search the log, reveal and copy.
//!
//! Split by concern: [`state`] (the pure model), [`view`] (pure rendering), [`input`] (keys →
//! actions), [`terminal`] (taking and always restoring the terminal), [`remote`] (approvals and
//! opencode's busy check over HTTP), [`clipboard`], and [`app`] (the event loop).
//!
//! Threats addressed, each in its module: secrets on screen (masked until revealed, log lines
//! redacted by the run's redactor), a broken terminal after any exit, and a dashboard that slows
//! the services or grows without bound under a log flood.

pub mod app;
pub mod clipboard;
pub mod input;
pub mod launch;
pub mod remote;
pub mod state;
pub mod terminal;
pub mod view;

#[cfg(test)]
mod snapshots;

pub use app::{Dashboard, Outcome, Ready};
pub use terminal::{TerminalError, TerminalGuard};
pub use view::{ConnectInfo, RunInfo};
