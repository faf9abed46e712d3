//! The supervisor's output: one typed stream of [`ServiceEvent`]s that everything else
//! subscribes to (the log stream, `--check`, the detach state files, the dashboard).
//!
//! Two kinds of subscriber, for two needs:
//! - [`Observer`]s are called in order, synchronously, for every event. The log stream is one:
//!   it must lose nothing, and a child that writes faster than the log can be written is slowed
//!   by its own pipe (back-pressure), never by dropping lines. The [`ServiceTable`] (each
//!   service's current state, folded from the events) and the supervisor's own decisions are
//!   observers too.
//! - [`EventBus::subscribe`] gives a bounded broadcast receiver. A slow reader (a dashboard
//!   drawing a log flood) is told how many events it missed instead of slowing the services; it
//!   reads lifecycle state from [`EventBus::table`], which no flood can drop.
//!
//! Threat addressed: a consumer that polls the supervisor's internals sees torn state (a pid
//! from one instance, a container from another); here every consumer sees the same ordered
//! facts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::process::ExitInfo;
use crate::logs::Stream;

/// Events a slow broadcast subscriber may fall behind by before it is told it lagged.
const BROADCAST_CAPACITY: usize = 4096;

/// A started instance of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instance {
    /// A host process, leader of its own process group (`pid` = process group id).
    Process { pid: u32 },
    /// A sandbox container, with the command a person runs to stop it.
    Container { id: String, stop_command: String },
}

/// One fact about a service of the run, in the order it happened.
#[derive(Debug, Clone)]
pub enum ServiceEvent {
    /// A new instance of the service started.
    Spawned {
        service: &'static str,
        instance: Instance,
    },
    /// The instance could not be started at all (the service gives up next).
    StartFailed {
        service: &'static str,
        error: String,
    },
    /// Health probing began.
    WaitingForHealth { service: &'static str, url: String },
    /// Still not healthy; the last probe's error (progress, every 10 s).
    StillWaiting {
        service: &'static str,
        last_error: String,
    },
    /// The health check passed; `latency` is how long the passing probe took.
    Healthy {
        service: &'static str,
        url: String,
        latency: Duration,
    },
    /// The instance did not become healthy within the budget and was killed.
    Unhealthy {
        service: &'static str,
        reason: String,
    },
    /// One line of the service's output.
    Log {
        service: &'static str,
        stream: Stream,
        pid: Option<u32>,
        line: String,
    },
    /// The instance ended; `expected` when the supervisor was stopping it.
    Exited {
        service: &'static str,
        status: ExitInfo,
        pid: Option<u32>,
        expected: bool,
    },
    /// A crashed service starts again after `delay` (attempt `attempt` of `max`).
    Restarting {
        service: &'static str,
        attempt: u32,
        max: u32,
        delay: Duration,
    },
    /// A person asked for the service to be restarted (the dashboard): its instance is being
    /// stopped and a new one starts at once, without counting as a crash.
    RestartRequested { service: &'static str },
    /// The service will not be started again.
    GaveUp {
        service: &'static str,
        reason: String,
        required: bool,
    },
    /// The run is stopping its services, in this order.
    ShuttingDown { order: Vec<&'static str> },
    /// The service ignored SIGTERM for the grace period and is being killed.
    StopTimedOut {
        service: &'static str,
        grace: Duration,
    },
    /// Stopping the service's container failed.
    StopFailed {
        service: &'static str,
        container: String,
        error: String,
    },
}

impl ServiceEvent {
    /// The service the event is about (`None` for run-wide events).
    pub fn service(&self) -> Option<&'static str> {
        use ServiceEvent::*;
        match self {
            Spawned { service, .. }
            | StartFailed { service, .. }
            | WaitingForHealth { service, .. }
            | StillWaiting { service, .. }
            | Healthy { service, .. }
            | Unhealthy { service, .. }
            | Log { service, .. }
            | Exited { service, .. }
            | Restarting { service, .. }
            | RestartRequested { service }
            | GaveUp { service, .. }
            | StopTimedOut { service, .. }
            | StopFailed { service, .. } => Some(service),
            ShuttingDown { .. } => None,
        }
    }
}

/// A synchronous subscriber: sees every event, in order, on the emitting task.
pub trait Observer: Send + Sync {
    fn observe(&self, event: &ServiceEvent);
}

/// Where a service is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    /// Started, health not yet confirmed.
    Starting,
    Healthy,
    /// Did not become healthy in time (about to be restarted or given up).
    Unhealthy,
    /// Waiting to start again after a crash.
    Restarting {
        attempt: u32,
        max: u32,
    },
    /// Ended (the run is stopping it, or it exited and nothing follows yet).
    Stopped,
    /// Will not be started again; `required: false` means the run goes on without it.
    GaveUp {
        reason: String,
        required: bool,
    },
}

/// The current state of one service, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    pub name: &'static str,
    pub state: ServiceState,
    /// The running instance, if any.
    pub instance: Option<Instance>,
    /// How many times the service was restarted.
    pub restarts: u32,
    /// Duration of the last passing health probe.
    pub last_latency: Option<Duration>,
}

/// Every service of the run, in start order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTable {
    pub services: Vec<ServiceStatus>,
}

impl ServiceTable {
    /// Applies one event.
    pub fn apply(&mut self, event: &ServiceEvent) {
        use ServiceEvent::*;
        let Some(name) = event.service() else { return };
        if matches!(
            event,
            Log { .. } | WaitingForHealth { .. } | StillWaiting { .. }
        ) {
            return;
        }
        let idx = match self.services.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.services.push(ServiceStatus {
                    name,
                    state: ServiceState::Starting,
                    instance: None,
                    restarts: 0,
                    last_latency: None,
                });
                self.services.len() - 1
            }
        };
        let s = &mut self.services[idx];
        match event {
            Spawned { instance, .. } => {
                s.state = ServiceState::Starting;
                s.instance = Some(instance.clone());
            }
            Healthy { latency, .. } => {
                s.state = ServiceState::Healthy;
                s.last_latency = Some(*latency);
            }
            Unhealthy { .. } => s.state = ServiceState::Unhealthy,
            Exited { .. } => {
                s.instance = None;
                if !matches!(s.state, ServiceState::GaveUp { .. }) {
                    s.state = ServiceState::Stopped;
                }
            }
            Restarting { attempt, max, .. } => {
                s.state = ServiceState::Restarting {
                    attempt: *attempt,
                    max: *max,
                };
                s.restarts += 1;
            }
            RestartRequested { .. } => s.restarts += 1,
            GaveUp {
                reason, required, ..
            } => {
                s.state = ServiceState::GaveUp {
                    reason: reason.clone(),
                    required: *required,
                };
            }
            StartFailed { .. }
            | StopTimedOut { .. }
            | StopFailed { .. }
            | Log { .. }
            | WaitingForHealth { .. }
            | StillWaiting { .. }
            | ShuttingDown { .. } => {}
        }
    }

    /// The running instances, in start order.
    pub fn instances(&self) -> Vec<(&'static str, Instance)> {
        self.services
            .iter()
            .filter_map(|s| Some((s.name, s.instance.clone()?)))
            .collect()
    }
}

/// The run's event stream. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    observers: Arc<[Arc<dyn Observer>]>,
    broadcast: broadcast::Sender<Arc<ServiceEvent>>,
    table: Arc<watch::Sender<ServiceTable>>,
}

impl EventBus {
    /// A bus that calls `observers` (in this order) for every event.
    pub fn new(observers: Vec<Arc<dyn Observer>>) -> EventBus {
        let (broadcast, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (table, _) = watch::channel(ServiceTable::default());
        EventBus {
            observers: observers.into(),
            broadcast,
            table: Arc::new(table),
        }
    }

    /// Publishes `event` to the table, every observer, then the broadcast subscribers.
    pub fn emit(&self, event: ServiceEvent) {
        if !matches!(event, ServiceEvent::Log { .. }) {
            self.table.send_modify(|t| t.apply(&event));
        }
        for o in self.observers.iter() {
            o.observe(&event);
        }
        // No subscriber is not an error: the broadcast is for whoever listens now.
        let _ = self.broadcast.send(Arc::new(event));
    }

    /// A receiver of every event from now on. A reader that falls more than a few thousand
    /// events behind gets `RecvError::Lagged(n)` and continues with the newest.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ServiceEvent>> {
        self.broadcast.subscribe()
    }

    /// The services' current state, updated before observers and subscribers see an event.
    pub fn table(&self) -> watch::Receiver<ServiceTable> {
        self.table.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    struct Record(Mutex<Vec<String>>);
    impl Observer for Record {
        fn observe(&self, event: &ServiceEvent) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{:?}", event.service()));
        }
    }

    fn spawned(pid: u32) -> ServiceEvent {
        ServiceEvent::Spawned {
            service: "opencode",
            instance: Instance::Process { pid },
        }
    }

    #[test]
    fn the_table_follows_a_crash_and_restart() {
        let mut t = ServiceTable::default();
        t.apply(&spawned(10));
        t.apply(&ServiceEvent::Healthy {
            service: "opencode",
            url: "u".into(),
            latency: Duration::from_millis(3),
        });
        assert_eq!(t.services[0].state, ServiceState::Healthy);
        assert_eq!(
            t.instances(),
            vec![("opencode", Instance::Process { pid: 10 })]
        );
        t.apply(&ServiceEvent::Exited {
            service: "opencode",
            status: ExitInfo {
                code: Some(1),
                signal: None,
            },
            pid: Some(10),
            expected: false,
        });
        assert!(t.instances().is_empty());
        t.apply(&ServiceEvent::Restarting {
            service: "opencode",
            attempt: 1,
            max: 5,
            delay: Duration::from_millis(250),
        });
        assert_eq!(
            t.services[0].state,
            ServiceState::Restarting { attempt: 1, max: 5 }
        );
        t.apply(&spawned(11));
        assert_eq!(t.services[0].restarts, 1);
        assert_eq!(t.services[0].last_latency, Some(Duration::from_millis(3)));
        assert_eq!(
            t.instances(),
            vec![("opencode", Instance::Process { pid: 11 })]
        );
    }

    #[test]
    fn a_give_up_survives_the_exit_that_follows_it() {
        let mut t = ServiceTable::default();
        t.apply(&spawned(1));
        t.apply(&ServiceEvent::GaveUp {
            service: "opencode",
            reason: "r".into(),
            required: false,
        });
        t.apply(&ServiceEvent::Exited {
            service: "opencode",
            status: ExitInfo {
                code: Some(0),
                signal: None,
            },
            pid: None,
            expected: true,
        });
        assert!(matches!(
            t.services[0].state,
            ServiceState::GaveUp {
                required: false,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn observers_see_every_event_in_order_and_subscribers_are_told_when_they_lag() {
        let record = Arc::new(Record(Mutex::new(Vec::new())));
        let bus = EventBus::new(vec![record.clone()]);
        let mut rx = bus.subscribe();
        let table = bus.table();
        for i in 0..(BROADCAST_CAPACITY + 10) {
            bus.emit(ServiceEvent::Log {
                service: "opencode",
                stream: Stream::Stdout,
                pid: None,
                line: format!("line {i}"),
            });
        }
        bus.emit(spawned(7));
        assert_eq!(record.0.lock().unwrap().len(), BROADCAST_CAPACITY + 11);
        // The flood overran the broadcast reader, which is told by how much...
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
        // ...while the table, which no flood can drop, has the spawn.
        assert_eq!(
            table.borrow().instances(),
            vec![("opencode", Instance::Process { pid: 7 })]
        );
    }
}
