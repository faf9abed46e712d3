//! The shared supervisor: starts services in order, waits for each to be healthy, restarts a
//! crashed one with exponential back-off, and stops them in reverse order.
//!
//! Each service runs in its own task that owns the child process; the task publishes
//! [`ServiceEvent`]s on the run's [`EventBus`], which is the supervisor's only output: the log
//! stream, `--check`, the detach state and the dashboard all subscribe to it. The supervisor
//! itself subscribes too and decides what the events mean for the run: a required service that
//! gives up ends the run; an optional one (the router) is logged and the run goes on. Stopping signals each service's whole process group (SIGTERM, then SIGKILL after the
//! grace period) and waits until the group is empty.

pub mod events;
pub mod health;
pub mod log_stream;
pub mod process;
pub mod restart;
mod tail;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use camino::Utf8PathBuf;
use nix::sys::signal::Signal;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, mpsc};

use crate::logs::Stream;
pub use events::{
    EventBus, Instance, Observer, ServiceEvent, ServiceState, ServiceStatus, ServiceTable,
};
use health::{HealthCheck, probe, probe_client};
use process::{ExitInfo, OutputMode, ProcessSpec};
use restart::Control;
pub use restart::{RestartError, Restarter};

/// One service to supervise.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Component name in logs (`opencode`, `openwork-server`, `opencode-router`).
    pub name: &'static str,
    pub launch: Launch,
    pub health: HealthCheck,
    /// Wait for opencode's `opencode server listening on …` line before probing (with a bound).
    pub ready_line: bool,
    /// Whether the run ends when this service gives up.
    pub required: bool,
}

/// How a service is run.
#[derive(Clone)]
pub enum Launch {
    /// A host process (its own process group).
    Process(ProcessSpec),
    /// A sandbox container carried out by a backend.
    Sandbox {
        backend: Arc<dyn openwork_backends::SandboxBackend>,
        plan: Box<openwork_backends::SandboxPlan>,
    },
}

impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Launch::Process(p) => p.fmt(f),
            Launch::Sandbox { backend, plan } => {
                write!(f, "Sandbox({}, {})", backend.name(), plan.name)
            }
        }
    }
}

/// Restart policy: back-off doubles from `initial` up to `max`; after `max_restarts` consecutive
/// failed starts or crashes the service gives up. A service that stayed healthy for `stable`
/// resets the count.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub max_restarts: u32,
    pub stable: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(8),
            max_restarts: 5,
            stable: Duration::from_secs(30),
        }
    }
}

/// Why the run cannot go on.
#[derive(Debug, Error)]
pub enum SupervisorError {
    #[error("{name} gave up: {reason}")]
    GaveUp { name: &'static str, reason: String },
}

/// Options shared by all services of a run.
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// Budget for one start to become healthy.
    pub health_timeout: Duration,
    pub restart: RestartPolicy,
    /// SIGTERM → SIGKILL grace period.
    pub grace: Duration,
    /// Detached runs: output to files in this directory, no restarts, processes outlive us.
    pub detach_dir: Option<Utf8PathBuf>,
    /// Foreground runs that may detach later (the dashboard): each service writes to a file
    /// in this directory, read back into the event stream, without a death signal, so it can
    /// outlive the orchestrator after [`Supervisor::release`]. Restarts work as usual.
    pub output_dir: Option<Utf8PathBuf>,
    /// Stops the process groups if the orchestrator dies without cleaning up.
    pub watchdog: Option<Arc<crate::watchdog::Watchdog>>,
}

struct Running {
    spec: ServiceSpec,
    /// Process group (= pid of the leader) of the current process; 0 when none.
    pgid: Arc<AtomicU32>,
    /// The running sandbox, for services launched in one.
    sandbox: Arc<std::sync::Mutex<Option<Arc<dyn openwork_backends::SandboxHandle>>>>,
    stopping: Arc<AtomicBool>,
    exited: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// The supervisor's own subscription: the two events that decide whether the run goes on.
struct Decisions(mpsc::UnboundedSender<Decision>);

enum Decision {
    Healthy(&'static str),
    GaveUp {
        name: &'static str,
        reason: String,
        required: bool,
    },
}

impl Observer for Decisions {
    fn observe(&self, event: &ServiceEvent) {
        let decision = match event {
            ServiceEvent::Healthy { service, .. } => Decision::Healthy(service),
            ServiceEvent::GaveUp {
                service,
                reason,
                required,
            } => Decision::GaveUp {
                name: service,
                reason: reason.clone(),
                required: *required,
            },
            _ => return,
        };
        let _ = self.0.send(decision);
    }
}

/// The supervisor of one run.
pub struct Supervisor {
    bus: EventBus,
    options: SupervisorOptions,
    services: Vec<Running>,
    decisions: mpsc::UnboundedReceiver<Decision>,
    /// What a [`Restarter`] needs of each started service.
    controls: Arc<std::sync::Mutex<Vec<Control>>>,
}

impl Supervisor {
    /// A supervisor whose events go to `observers` (in order; the log stream first) and to
    /// whoever subscribes to [`Supervisor::events`].
    pub fn new(observers: Vec<Arc<dyn Observer>>, options: SupervisorOptions) -> Supervisor {
        let (tx, decisions) = mpsc::unbounded_channel();
        let mut observers = observers;
        observers.push(Arc::new(Decisions(tx)));
        Supervisor {
            bus: EventBus::new(observers),
            options,
            services: Vec::new(),
            decisions,
            controls: Arc::default(),
        }
    }

    /// A handle that restarts one service on request (the dashboard's restart key).
    pub fn restarter(&self) -> Restarter {
        Restarter {
            controls: self.controls.clone(),
            bus: self.bus.clone(),
            grace: self.options.grace,
        }
    }

    /// The run's event stream.
    pub fn events(&self) -> &EventBus {
        &self.bus
    }

    /// Starts `spec` and waits until it is healthy. A required service that gives up, here or
    /// any earlier one meanwhile, is an error; an optional one that gives up returns `Ok(false)`.
    pub async fn start(&mut self, spec: ServiceSpec) -> Result<bool, SupervisorError> {
        let name = spec.name;
        let pgid = Arc::new(AtomicU32::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let exited = Arc::new(Notify::new());
        let sandbox = Arc::new(std::sync::Mutex::new(None));
        let requested = Arc::new(AtomicBool::new(false));
        if let Ok(mut controls) = self.controls.lock() {
            controls.push(Control {
                name,
                pgid: pgid.clone(),
                sandbox: sandbox.clone(),
                requested: requested.clone(),
                stopping: stopping.clone(),
            });
        }
        let task = tokio::spawn(run_service(
            spec.clone(),
            self.options.clone(),
            self.bus.clone(),
            Levers {
                pgid: pgid.clone(),
                sandbox: sandbox.clone(),
                stopping: stopping.clone(),
                restart: requested,
                exited: exited.clone(),
            },
        ));
        self.services.push(Running {
            spec,
            pgid,
            sandbox,
            stopping,
            exited,
            task,
        });
        loop {
            let Some(decision) = self.decisions.recv().await else {
                return Err(SupervisorError::GaveUp {
                    name,
                    reason: "supervisor channel closed".into(),
                });
            };
            match decision {
                Decision::Healthy(n) if n == name => return Ok(true),
                Decision::Healthy(_) => {}
                Decision::GaveUp {
                    name: n,
                    reason,
                    required,
                } => {
                    if required {
                        return Err(SupervisorError::GaveUp { name: n, reason });
                    }
                    if n == name {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// After start-up: waits until the run must end because a required service gave up.
    /// Optional services that give up are logged (by the log stream) and ignored.
    pub async fn wait_fatal(&mut self) -> SupervisorError {
        loop {
            match self.decisions.recv().await {
                Some(Decision::GaveUp {
                    name,
                    reason,
                    required: true,
                }) => return SupervisorError::GaveUp { name, reason },
                Some(_) => {}
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Leaves detached services running: the tasks are dropped, the processes are not touched.
    pub fn release(&mut self) {
        if let Some(w) = &self.options.watchdog {
            // The watchdog stops what it still knows of at end-of-file: tell it to let go.
            for s in &self.services {
                let pgid = s.pgid.load(Ordering::SeqCst);
                if pgid != 0 {
                    w.forget(pgid);
                }
                let handle = s.sandbox.lock().ok().and_then(|g| g.clone());
                if let (Some(handle), Launch::Sandbox { backend, .. }) = (handle, &s.spec.launch) {
                    w.forget_sandbox(&backend.remover(&handle.id()));
                    handle.detach();
                }
            }
            w.finish();
        }
        for s in self.services.drain(..) {
            s.stopping.store(true, Ordering::SeqCst);
            s.task.abort();
        }
    }

    /// Stops every service in reverse start order: SIGTERM to its group, SIGKILL after the grace
    /// period, then waits until the group is gone.
    pub async fn shutdown(&mut self) {
        if self.services.is_empty() {
            if let Some(w) = &self.options.watchdog {
                w.finish();
            }
            return;
        }
        let order = self.services.iter().rev().map(|s| s.spec.name).collect();
        self.bus.emit(ServiceEvent::ShuttingDown { order });
        while let Some(service) = self.services.pop() {
            service.stopping.store(true, Ordering::SeqCst);
            let handle = service.sandbox.lock().ok().and_then(|g| g.clone());
            if let Some(handle) = handle {
                let notified = service.exited.notified();
                if let Err(e) = handle.stop(self.options.grace).await {
                    self.bus.emit(ServiceEvent::StopFailed {
                        service: service.spec.name,
                        container: handle.id(),
                        error: e.to_string(),
                    });
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), notified).await;
            }
            let pgid = service.pgid.load(Ordering::SeqCst);
            if pgid != 0 {
                let notified = service.exited.notified();
                process::signal_group(pgid, Signal::SIGTERM);
                let graceful = tokio::time::timeout(self.options.grace, notified)
                    .await
                    .is_ok();
                if !graceful || process::group_alive(pgid) {
                    if !graceful {
                        self.bus.emit(ServiceEvent::StopTimedOut {
                            service: service.spec.name,
                            grace: self.options.grace,
                        });
                    }
                    process::signal_group(pgid, Signal::SIGKILL);
                }
                process::wait_group_gone(pgid, Duration::from_secs(5)).await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), service.task).await;
        }
        if let Some(w) = &self.options.watchdog {
            w.finish();
        }
    }
}

/// A started instance of a service: a host process group, or a sandbox container.
enum Live {
    Process {
        child: tokio::process::Child,
        pid: u32,
    },
    Sandbox {
        handle: Arc<dyn openwork_backends::SandboxHandle>,
        stop_command: String,
    },
}

impl Live {
    async fn wait(&mut self) -> ExitInfo {
        match self {
            Live::Process { child, .. } => match child.wait().await {
                Ok(status) => ExitInfo::from_status(status),
                Err(_) => ExitInfo {
                    code: None,
                    signal: None,
                },
            },
            Live::Sandbox { handle, .. } => {
                let exit = handle.wait().await;
                ExitInfo {
                    code: Some(i32::try_from(exit.code).unwrap_or(1)),
                    signal: None,
                }
            }
        }
    }

    async fn kill(&self) {
        match self {
            Live::Process { pid, .. } => {
                process::signal_group(*pid, Signal::SIGKILL);
            }
            Live::Sandbox { handle, .. } => {
                let _ = handle.stop(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Starts one instance of `spec` and wires its output into the event stream (signalling `ready`
/// on opencode's ready line).
async fn start_instance(
    spec: &ServiceSpec,
    options: &SupervisorOptions,
    bus: &EventBus,
    ready: &Arc<Notify>,
) -> Result<Live, String> {
    let name = spec.name;
    match &spec.launch {
        Launch::Process(process_spec) => {
            let output = match options.detach_dir.as_ref().or(options.output_dir.as_ref()) {
                Some(dir) => OutputMode::Detached {
                    log_file: dir.join(format!("{name}.log")),
                },
                None => OutputMode::Piped,
            };
            let offset = match &output {
                OutputMode::Detached { log_file } => {
                    std::fs::metadata(log_file).map(|m| m.len()).unwrap_or(0)
                }
                OutputMode::Piped => 0,
            };
            let mut child = process::spawn(process_spec, &output)
                .map_err(|e| format!("cannot start {}: {e}", process_spec.program))?;
            let pid = child.id().unwrap_or(0);
            if let (Some(_), None, OutputMode::Detached { log_file }) =
                (&options.output_dir, &options.detach_dir, &output)
            {
                tokio::spawn(tail::follow(
                    tail::Follow {
                        path: log_file.clone(),
                        offset,
                        service: name,
                        pgid: pid,
                        ready: spec.ready_line.then(|| ready.clone()),
                    },
                    bus.clone(),
                ));
            }
            if let Some(out) = child.stdout.take() {
                tokio::spawn(pump_lines(
                    out,
                    bus.clone(),
                    name,
                    Stream::Stdout,
                    pid,
                    spec.ready_line.then(|| ready.clone()),
                ));
            }
            if let Some(err) = child.stderr.take() {
                tokio::spawn(pump_lines(
                    err,
                    bus.clone(),
                    name,
                    Stream::Stderr,
                    pid,
                    None,
                ));
            }
            Ok(Live::Process { child, pid })
        }
        Launch::Sandbox { backend, plan } => {
            let mut handle = backend.launch(plan).await.map_err(|e| e.to_string())?;
            if let Some(mut logs) = handle.take_logs() {
                let bus = bus.clone();
                let ready = spec.ready_line.then(|| ready.clone());
                tokio::spawn(async move {
                    use futures_util::StreamExt;
                    while let Some(line) = logs.next().await {
                        if let Some(r) = &ready
                            && line.text.starts_with(OPENCODE_READY_PREFIX)
                        {
                            r.notify_one();
                        }
                        let stream = match line.stream {
                            openwork_backends::LogStream::Stdout => Stream::Stdout,
                            openwork_backends::LogStream::Stderr => Stream::Stderr,
                        };
                        bus.emit(ServiceEvent::Log {
                            service: name,
                            stream,
                            pid: None,
                            line: line.text,
                        });
                    }
                });
            }
            Ok(Live::Sandbox {
                handle: Arc::from(handle),
                stop_command: backend.stop_command(plan),
            })
        }
    }
}

/// opencode's ready line (`opencode server listening on …`).
const OPENCODE_READY_PREFIX: &str = "opencode server listening on ";

/// What a service's task shares with the supervisor and its [`Restarter`].
struct Levers {
    pgid: Arc<AtomicU32>,
    sandbox: Arc<std::sync::Mutex<Option<Arc<dyn openwork_backends::SandboxHandle>>>>,
    stopping: Arc<AtomicBool>,
    /// A person asked for a restart: the next exit starts a new instance at once, uncounted.
    restart: Arc<AtomicBool>,
    exited: Arc<Notify>,
}

/// The life of one service: start, wait healthy, wait exit, restart with back-off.
async fn run_service(spec: ServiceSpec, options: SupervisorOptions, bus: EventBus, levers: Levers) {
    let Levers {
        pgid,
        sandbox,
        stopping,
        restart,
        exited,
    } = levers;
    let name = spec.name;
    let required = spec.required;
    let policy = options.restart;
    let mut failures: u32 = 0;
    let mut delay = policy.initial;
    loop {
        let ready = Arc::new(Notify::new());
        let mut instance = match start_instance(&spec, &options, &bus, &ready).await {
            Ok(i) => i,
            Err(reason) => {
                bus.emit(ServiceEvent::StartFailed {
                    service: name,
                    error: reason.clone(),
                });
                bus.emit(ServiceEvent::GaveUp {
                    service: name,
                    reason,
                    required,
                });
                return;
            }
        };
        let pid = match &instance {
            Live::Process { pid, .. } => {
                pgid.store(*pid, Ordering::SeqCst);
                if let Some(w) = &options.watchdog {
                    w.watch(*pid);
                }
                bus.emit(ServiceEvent::Spawned {
                    service: name,
                    instance: events::Instance::Process { pid: *pid },
                });
                *pid
            }
            Live::Sandbox {
                handle,
                stop_command,
            } => {
                if let Ok(mut slot) = sandbox.lock() {
                    *slot = Some(handle.clone());
                }
                if let (Some(w), Launch::Sandbox { backend, plan }) =
                    (&options.watchdog, &spec.launch)
                {
                    w.watch_sandbox(&backend.plan_remover(plan));
                }
                bus.emit(ServiceEvent::Spawned {
                    service: name,
                    instance: events::Instance::Container {
                        id: handle.id(),
                        stop_command: stop_command.clone(),
                    },
                });
                0
            }
        };

        let started = tokio::time::Instant::now();
        let mut healthy = false;
        let exit = {
            let health = wait_healthy(&spec, &options, &bus, &ready);
            tokio::pin!(health);
            let waited = {
                let wait = instance.wait();
                tokio::pin!(wait);
                tokio::select! {
                    result = &mut health => Err(result),
                    exit = &mut wait => Ok(exit),
                }
            };
            match waited {
                Ok(exit) => exit,
                Err(Ok(latency)) => {
                    healthy = true;
                    bus.emit(ServiceEvent::Healthy {
                        service: name,
                        url: spec.health.url(),
                        latency,
                    });
                    if options.detach_dir.is_some() {
                        // Detached: the process or container is left alone from here on.
                        if let Live::Sandbox { handle, .. } = &instance {
                            handle.detach();
                        }
                        return;
                    }
                    instance.wait().await
                }
                Err(Err(reason)) => {
                    bus.emit(ServiceEvent::Unhealthy {
                        service: name,
                        reason,
                    });
                    instance.kill().await;
                    instance.wait().await
                }
            }
        };
        pgid.store(0, Ordering::SeqCst);
        if pid != 0 {
            // Anything left in the group (a grandchild) goes with its leader.
            process::signal_group(pid, Signal::SIGKILL);
            if let Some(w) = &options.watchdog {
                w.forget(pid);
            }
        }
        if let Ok(mut slot) = sandbox.lock()
            && slot.take().is_some()
            && let (Some(w), Launch::Sandbox { backend, plan }) = (&options.watchdog, &spec.launch)
        {
            w.forget_sandbox(&backend.plan_remover(plan));
        }
        exited.notify_waiters();
        let stop = stopping.load(Ordering::SeqCst);
        let requested = restart.swap(false, Ordering::SeqCst);
        bus.emit(ServiceEvent::Exited {
            service: name,
            status: exit,
            pid: (pid != 0).then_some(pid),
            expected: stop || requested,
        });
        if stop {
            return;
        }
        if requested {
            continue;
        }
        if options.detach_dir.is_some() {
            bus.emit(ServiceEvent::GaveUp {
                service: name,
                reason: format!("exited during start ({exit})"),
                required,
            });
            return;
        }
        if healthy && started.elapsed() >= policy.stable {
            failures = 0;
            delay = policy.initial;
        }
        failures += 1;
        if failures > policy.max_restarts {
            let reason =
                format!("crashed {failures} times in a row (last: {exit}); not restarting again");
            bus.emit(ServiceEvent::GaveUp {
                service: name,
                reason,
                required,
            });
            return;
        }
        bus.emit(ServiceEvent::Restarting {
            service: name,
            attempt: failures,
            max: policy.max_restarts,
            delay,
        });
        tokio::time::sleep(delay).await;
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        delay = (delay * 2).min(policy.max);
    }
}

/// Polls the health check until it passes (returning how long the passing probe took) or the
/// budget is spent. For opencode, probing starts at its ready line (or after a short bound, for
/// binaries that do not print it).
async fn wait_healthy(
    spec: &ServiceSpec,
    options: &SupervisorOptions,
    bus: &EventBus,
    ready: &Notify,
) -> Result<Duration, String> {
    let budget = options.health_timeout;
    let deadline = tokio::time::Instant::now() + budget;
    bus.emit(ServiceEvent::WaitingForHealth {
        service: spec.name,
        url: spec.health.url(),
    });
    if spec.ready_line && options.detach_dir.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(5).min(budget), ready.notified()).await;
    }
    let client = probe_client(Duration::from_secs(2));
    let mut pause = Duration::from_millis(10);
    let mut last_error;
    let mut next_progress = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let probe_start = tokio::time::Instant::now();
        match probe(&client, &spec.health).await {
            Ok(()) => return Ok(probe_start.elapsed()),
            Err(e) => last_error = e.to_string(),
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(format!(
                "not healthy after {}s (last probe of {}: {last_error})",
                budget.as_secs(),
                spec.health.url()
            ));
        }
        if now >= next_progress {
            bus.emit(ServiceEvent::StillWaiting {
                service: spec.name,
                last_error: last_error.clone(),
            });
            next_progress = now + Duration::from_secs(10);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Publishes a child's output line by line; signals `ready` on opencode's ready line.
async fn pump_lines<R: tokio::io::AsyncRead + Unpin>(
    reader: R,
    bus: EventBus,
    name: &'static str,
    stream: Stream,
    pid: u32,
    ready: Option<Arc<Notify>>,
) {
    let mut lines = BufReader::new(reader).split(b'\n');
    while let Ok(Some(bytes)) = lines.next_segment().await {
        let line = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(r) = &ready
            && line.starts_with(OPENCODE_READY_PREFIX)
        {
            r.notify_one();
        }
        bus.emit(ServiceEvent::Log {
            service: name,
            stream,
            pid: Some(pid),
            line,
        });
    }
}
