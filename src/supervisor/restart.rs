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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::supervisor::health::HealthCheck;
    use crate::supervisor::process::ProcessSpec;
    use crate::supervisor::{
        Instance, Launch, RestartPolicy, ServiceSpec, ServiceState, Supervisor, SupervisorOptions,
    };

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    async fn wait_healthy_pid(sup: &Supervisor, not: u32) -> u32 {
        let mut table = sup.events().table();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            {
                let t = table.borrow_and_update();
                if let Some(s) = t.services.first()
                    && s.state == ServiceState::Healthy
                    && let Some(Instance::Process { pid }) = s.instance
                    && pid != not
                {
                    return pid;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "not healthy again");
            let _ = tokio::time::timeout(Duration::from_millis(200), table.changed()).await;
        }
    }

    #[tokio::test]
    async fn a_requested_restart_brings_a_new_instance_and_never_trips_give_up() {
        let port = free_port();
        let mut sup = Supervisor::new(
            vec![],
            SupervisorOptions {
                health_timeout: Duration::from_secs(20),
                // Not one crash allowed: a restart that counted as one would give up.
                restart: RestartPolicy {
                    max_restarts: 0,
                    ..RestartPolicy::default()
                },
                grace: Duration::from_secs(2),
                detach_dir: None,
                output_dir: None,
                watchdog: None,
            },
        );
        let spec = ServiceSpec {
            name: "web",
            launch: Launch::Process(ProcessSpec {
                program: "/usr/bin/env".into(),
                args: vec![
                    "python3".into(),
                    "-m".into(),
                    "http.server".into(),
                    port.to_string(),
                    "--bind".into(),
                    "127.0.0.1".into(),
                ],
                env: vec![],
                env_remove: vec![],
                cwd: "/".into(),
            }),
            health: HealthCheck::Http {
                url: format!("http://127.0.0.1:{port}/"),
            },
            ready_line: false,
            required: true,
        };
        assert!(sup.start(spec).await.unwrap());
        let restarter = sup.restarter();
        let mut pid = wait_healthy_pid(&sup, 0).await;
        for round in 1..=2 {
            restarter.restart("web").await.unwrap();
            let new = wait_healthy_pid(&sup, pid).await;
            assert!(!process::group_alive(pid), "old group {pid} still alive");
            pid = new;
            let t = sup.events().table().borrow().clone();
            assert_eq!(t.services[0].restarts, round);
        }
        assert_eq!(
            restarter.restart("nope").await,
            Err(RestartError::Unknown {
                name: "nope".into()
            })
        );
        sup.shutdown().await;
        assert!(!process::group_alive(pid));
        assert!(matches!(
            restarter.restart("web").await,
            Err(RestartError::Stopping { .. })
        ));
    }
}
