//! Restarting one service on request (the dashboard's `r` key).
//!
//! A [`Restarter`] is a cheap handle the supervisor hands out: `restart(name)` marks the service's
//! task so the exit that follows is treated as wanted (a new instance starts at once, the crash
//! counter and back-off are untouched, so a person's restarts never trip the give-up), emits
//! [`ServiceEvent::RestartRequested`], then stops the current instance the way a shutdown would:
//! SIGTERM to its process group and SIGKILL after the grace period, or the backend's stop for a
//! sandbox.
//!
//! Threat addressed: a restart that leaves the old instance running beside the new one (a second
//! opencode on the same port). The old group is signalled as a whole and the task starts the new
//! instance only after the old one's exit was observed.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use thiserror::Error;

use super::events::{EventBus, ServiceEvent};
use super::process;

/// The supervisor's per-service levers that a restart needs.
pub(crate) struct Control {
    pub(crate) name: &'static str,
    /// Process group of the current instance (0 when none).
    pub(crate) pgid: Arc<AtomicU32>,
    /// The current sandbox, for services launched in one.
    pub(crate) sandbox: Arc<Mutex<Option<Arc<dyn openwork_backends::SandboxHandle>>>>,
    /// Set by [`Restarter::restart`]; the service's task takes it when the instance exits.
    pub(crate) requested: Arc<AtomicBool>,
    /// Set when the run stops the service: no restart then.
    pub(crate) stopping: Arc<AtomicBool>,
}

/// Why a restart was not done.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RestartError {
    #[error("no service named {name} in this run")]
    Unknown { name: String },
    #[error("{name} has no running instance to restart (it is starting, restarting or stopped)")]
    NotRunning { name: &'static str },
    #[error("{name} is being stopped with the run")]
    Stopping { name: &'static str },
}

/// Restarts services of a running supervisor. Cheap to clone.
#[derive(Clone)]
pub struct Restarter {
    pub(crate) controls: Arc<Mutex<Vec<Control>>>,
    pub(crate) bus: EventBus,
    pub(crate) grace: Duration,
}

impl Restarter {
    /// Stops `name`'s current instance so its task starts a new one (not counted as a crash).
    pub async fn restart(&self, name: &str) -> Result<(), RestartError> {
        let (service, pgid, sandbox, requested) = {
            let controls = self.controls.lock().unwrap_or_else(|e| e.into_inner());
            let c = controls
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| RestartError::Unknown { name: name.into() })?;
            if c.stopping.load(Ordering::SeqCst) {
                return Err(RestartError::Stopping { name: c.name });
            }
            let sandbox = c.sandbox.lock().ok().and_then(|g| g.clone());
            (
                c.name,
                c.pgid.load(Ordering::SeqCst),
                sandbox,
                c.requested.clone(),
            )
        };
        if pgid == 0 && sandbox.is_none() {
            return Err(RestartError::NotRunning { name: service });
        }
        if requested.swap(true, Ordering::SeqCst) {
            // Already under way.
            return Ok(());
        }
        self.bus.emit(ServiceEvent::RestartRequested { service });
        if let Some(handle) = sandbox {
            let _ = handle.stop(self.grace).await;
            return Ok(());
        }
        process::signal_group(pgid, Signal::SIGTERM);
        if !process::wait_group_gone(pgid, self.grace).await {
            process::signal_group(pgid, Signal::SIGKILL);
        }
        Ok(())
    }
}
