//! The shared supervisor: starts services in order, waits for each to be healthy, restarts a
//! crashed one with exponential back-off, and stops them in reverse order.
//!
//! Each service runs in its own task that owns the child process; the task reports
//! [`ServiceEvent`]s on one channel. The supervisor decides what those mean for the run: a
//! required service that gives up ends the run; an optional one (the router) is logged and the run
//! goes on. Stopping signals each service's whole process group (SIGTERM, then SIGKILL after the
//! grace period) and waits until the group is empty.

pub mod health;
pub mod process;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use camino::Utf8PathBuf;
use nix::sys::signal::Signal;
use serde_json::json;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, mpsc};

use crate::logs::{LogSink, ORCHESTRATOR, Stream};
use health::{HealthCheck, probe, probe_client};
use process::{ExitInfo, OutputMode, ProcessSpec};

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

/// What a service task reports. Spawn and exit events feed the dashboard and state files.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub enum ServiceEvent {
    Spawned { name: &'static str, pid: u32 },
    Healthy { name: &'static str },
    Exited { name: &'static str, exit: ExitInfo },
    GaveUp { name: &'static str, reason: String },
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

/// The supervisor of one run.
pub struct Supervisor {
    sink: Arc<LogSink>,
    options: SupervisorOptions,
    services: Vec<Running>,
    tx: mpsc::UnboundedSender<ServiceEvent>,
    rx: mpsc::UnboundedReceiver<ServiceEvent>,
}

impl Supervisor {
    pub fn new(sink: Arc<LogSink>, options: SupervisorOptions) -> Supervisor {
        let (tx, rx) = mpsc::unbounded_channel();
        Supervisor {
            sink,
            options,
            services: Vec::new(),
            tx,
            rx,
        }
    }

    /// Starts `spec` and waits until it is healthy. A required service that gives up, here or
    /// any earlier one meanwhile, is an error; an optional one that gives up returns `Ok(false)`.
    pub async fn start(&mut self, spec: ServiceSpec) -> Result<bool, SupervisorError> {
        let name = spec.name;
        let pgid = Arc::new(AtomicU32::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let exited = Arc::new(Notify::new());
        let sandbox = Arc::new(std::sync::Mutex::new(None));
        let task = tokio::spawn(run_service(
            spec.clone(),
            self.options.clone(),
            self.sink.clone(),
            self.tx.clone(),
            pgid.clone(),
            sandbox.clone(),
            stopping.clone(),
            exited.clone(),
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
            let Some(event) = self.rx.recv().await else {
                return Err(SupervisorError::GaveUp {
                    name,
                    reason: "supervisor channel closed".into(),
                });
            };
            match event {
                ServiceEvent::Healthy { name: n } if n == name => return Ok(true),
                ServiceEvent::GaveUp { name: n, reason } => {
                    if self.is_required(n) {
                        return Err(SupervisorError::GaveUp { name: n, reason });
                    }
                    self.sink.warn(
                        n,
                        "Continuing without this optional service",
                        json!({ "reason": reason }),
                    );
                    if n == name {
                        return Ok(false);
                    }
                }
                _ => {}
            }
        }
    }

    fn is_required(&self, name: &str) -> bool {
        self.services
            .iter()
            .any(|s| s.spec.name == name && s.spec.required)
    }

    /// After start-up: waits until the run must end because a required service gave up.
    /// Optional services that give up are logged and ignored.
    pub async fn wait_fatal(&mut self) -> SupervisorError {
        loop {
            match self.rx.recv().await {
                Some(ServiceEvent::GaveUp { name, reason }) => {
                    if self.is_required(name) {
                        return SupervisorError::GaveUp { name, reason };
                    }
                    self.sink.warn(
                        name,
                        "Continuing without this optional service",
                        json!({ "reason": reason }),
                    );
                }
                Some(_) => {}
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Current pid of each running service.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.services
            .iter()
            .filter_map(|s| {
                let pid = s.pgid.load(Ordering::SeqCst);
                (pid != 0).then_some((s.spec.name, pid))
            })
            .collect()
    }

    /// Running sandbox containers: (service, container, command that stops it).
    pub fn containers(&self) -> Vec<(&'static str, String, String)> {
        self.services
            .iter()
            .filter_map(|s| {
                let handle = s.sandbox.lock().ok().and_then(|g| g.clone())?;
                let stop = match &s.spec.launch {
                    Launch::Sandbox { backend, plan } => backend.stop_command(plan),
                    Launch::Process(_) => return None,
                };
                Some((s.spec.name, handle.id(), stop))
            })
            .collect()
    }

    /// Leaves detached services running: the tasks are dropped, the processes are not touched.
    pub fn release(self) {
        if let Some(w) = &self.options.watchdog {
            w.finish();
        }
        for s in self.services {
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
        let names: Vec<&str> = self.services.iter().rev().map(|s| s.spec.name).collect();
        self.sink
            .info(ORCHESTRATOR, "Shutting down", json!({ "children": names }));
        while let Some(service) = self.services.pop() {
            service.stopping.store(true, Ordering::SeqCst);
            let handle = service.sandbox.lock().ok().and_then(|g| g.clone());
            if let Some(handle) = handle {
                let notified = service.exited.notified();
                if let Err(e) = handle.stop(self.options.grace).await {
                    self.sink.warn(
                        service.spec.name,
                        "Could not stop the sandbox",
                        json!({ "container": handle.id(), "error": e.to_string() }),
                    );
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
                        self.sink.warn(
                            service.spec.name,
                            "Did not stop within the grace period; sending SIGKILL",
                            json!({ "graceMs": self.options.grace.as_millis() as u64 }),
                        );
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
enum Instance {
    Process {
        child: tokio::process::Child,
        pid: u32,
    },
    Sandbox {
        handle: Arc<dyn openwork_backends::SandboxHandle>,
    },
}

impl Instance {
    async fn wait(&mut self) -> ExitInfo {
        match self {
            Instance::Process { child, .. } => match child.wait().await {
                Ok(status) => ExitInfo::from_status(status),
                Err(_) => ExitInfo {
                    code: None,
                    signal: None,
                },
            },
            Instance::Sandbox { handle } => {
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
            Instance::Process { pid, .. } => {
                process::signal_group(*pid, Signal::SIGKILL);
            }
            Instance::Sandbox { handle } => {
                let _ = handle.stop(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Starts one instance of `spec` and wires its output into the log (signalling `ready` on
/// opencode's ready line).
async fn start_instance(
    spec: &ServiceSpec,
    options: &SupervisorOptions,
    sink: &Arc<LogSink>,
    ready: &Arc<Notify>,
) -> Result<Instance, String> {
    let name = spec.name;
    match &spec.launch {
        Launch::Process(process_spec) => {
            let output = match &options.detach_dir {
                Some(dir) => OutputMode::Detached {
                    log_file: dir.join(format!("{name}.log")),
                },
                None => OutputMode::Piped,
            };
            let mut child = process::spawn(process_spec, &output)
                .map_err(|e| format!("cannot start {}: {e}", process_spec.program))?;
            let pid = child.id().unwrap_or(0);
            if let Some(out) = child.stdout.take() {
                tokio::spawn(pump_lines(
                    out,
                    sink.clone(),
                    name,
                    Stream::Stdout,
                    pid,
                    spec.ready_line.then(|| ready.clone()),
                ));
            }
            if let Some(err) = child.stderr.take() {
                tokio::spawn(pump_lines(
                    err,
                    sink.clone(),
                    name,
                    Stream::Stderr,
                    pid,
                    None,
                ));
            }
            Ok(Instance::Process { child, pid })
        }
        Launch::Sandbox { backend, plan } => {
            let mut handle = backend.launch(plan).await.map_err(|e| e.to_string())?;
            if let Some(mut logs) = handle.take_logs() {
                let sink = sink.clone();
                let ready = spec.ready_line.then(|| ready.clone());
                tokio::spawn(async move {
                    use futures_util::StreamExt;
                    while let Some(line) = logs.next().await {
                        if let Some(r) = &ready
                            && line.text.starts_with("opencode server listening on ")
                        {
                            r.notify_one();
                        }
                        let stream = match line.stream {
                            openwork_backends::LogStream::Stdout => Stream::Stdout,
                            openwork_backends::LogStream::Stderr => Stream::Stderr,
                        };
                        sink.child_line(name, stream, None, &line.text);
                    }
                });
            }
            Ok(Instance::Sandbox {
                handle: Arc::from(handle),
            })
        }
    }
}

/// The life of one service: start, wait healthy, wait exit, restart with back-off.
#[allow(clippy::too_many_arguments)]
async fn run_service(
    spec: ServiceSpec,
    options: SupervisorOptions,
    sink: Arc<LogSink>,
    tx: mpsc::UnboundedSender<ServiceEvent>,
    pgid: Arc<AtomicU32>,
    sandbox: Arc<std::sync::Mutex<Option<Arc<dyn openwork_backends::SandboxHandle>>>>,
    stopping: Arc<AtomicBool>,
    exited: Arc<Notify>,
) {
    let name = spec.name;
    let policy = options.restart;
    let mut failures: u32 = 0;
    let mut delay = policy.initial;
    loop {
        let ready = Arc::new(Notify::new());
        let mut instance = match start_instance(&spec, &options, &sink, &ready).await {
            Ok(i) => i,
            Err(reason) => {
                sink.error(name, "Failed to start", json!({ "error": reason }));
                let _ = tx.send(ServiceEvent::GaveUp { name, reason });
                return;
            }
        };
        let pid = match &instance {
            Instance::Process { pid, .. } => {
                pgid.store(*pid, Ordering::SeqCst);
                if let Some(w) = &options.watchdog {
                    w.watch(*pid);
                }
                sink.info(name, "Process spawned", json!({ "pid": pid }));
                *pid
            }
            Instance::Sandbox { handle } => {
                if let Ok(mut slot) = sandbox.lock() {
                    *slot = Some(handle.clone());
                }
                if let (Some(w), Launch::Sandbox { backend, .. }) =
                    (&options.watchdog, &spec.launch)
                {
                    w.watch_sandbox(&backend.remover(&handle.id()));
                }
                sink.info(name, "Sandbox started", json!({ "container": handle.id() }));
                0
            }
        };
        let _ = tx.send(ServiceEvent::Spawned { name, pid });

        let started = tokio::time::Instant::now();
        let mut healthy = false;
        let exit = {
            let health = wait_healthy(&spec, &options, &sink, &ready);
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
                Err(Ok(())) => {
                    healthy = true;
                    sink.info(name, "Healthy", json!({ "url": spec.health.url() }));
                    let _ = tx.send(ServiceEvent::Healthy { name });
                    if options.detach_dir.is_some() {
                        // Detached: the process or container is left alone from here on.
                        if let Instance::Sandbox { handle } = &instance {
                            handle.detach();
                        }
                        return;
                    }
                    instance.wait().await
                }
                Err(Err(reason)) => {
                    sink.error(name, "Did not become healthy", json!({ "reason": reason }));
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
            && let Some(handle) = slot.take()
            && let (Some(w), Launch::Sandbox { backend, .. }) = (&options.watchdog, &spec.launch)
        {
            w.forget_sandbox(&backend.remover(&handle.id()));
        }
        exited.notify_waiters();
        if stopping.load(Ordering::SeqCst) {
            sink.info(
                name,
                "Process exited",
                json!({ "status": exit.to_string() }),
            );
            return;
        }
        sink.error(
            name,
            "Process exited unexpectedly",
            json!({ "status": exit.to_string(), "pid": (pid != 0).then_some(pid) }),
        );
        let _ = tx.send(ServiceEvent::Exited { name, exit });
        if options.detach_dir.is_some() {
            let _ = tx.send(ServiceEvent::GaveUp {
                name,
                reason: format!("exited during start ({exit})"),
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
            let _ = tx.send(ServiceEvent::GaveUp { name, reason });
            return;
        }
        sink.warn(
            name,
            "Restarting after crash",
            json!({ "attempt": failures, "maxAttempts": policy.max_restarts, "delayMs": delay.as_millis() as u64 }),
        );
        tokio::time::sleep(delay).await;
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        delay = (delay * 2).min(policy.max);
    }
}

/// Polls the health check until it passes or the budget is spent. For opencode, probing starts
/// at its ready line (or after a short bound, for binaries that do not print it).
async fn wait_healthy(
    spec: &ServiceSpec,
    options: &SupervisorOptions,
    sink: &LogSink,
    ready: &Notify,
) -> Result<(), String> {
    let budget = options.health_timeout;
    let deadline = tokio::time::Instant::now() + budget;
    sink.info(
        spec.name,
        "Waiting for health",
        json!({ "url": spec.health.url() }),
    );
    if spec.ready_line && options.detach_dir.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(5).min(budget), ready.notified()).await;
    }
    let client = probe_client(Duration::from_secs(2));
    let mut pause = Duration::from_millis(10);
    let mut last_error;
    let mut next_progress = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match probe(&client, &spec.health).await {
            Ok(()) => return Ok(()),
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
            sink.info(
                spec.name,
                "Still waiting for health",
                json!({ "lastError": last_error }),
            );
            next_progress = now + Duration::from_secs(10);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Forwards a child's output to the log, line by line; signals `ready` on opencode's ready line.
async fn pump_lines<R: tokio::io::AsyncRead + Unpin>(
    reader: R,
    sink: Arc<LogSink>,
    name: &'static str,
    stream: Stream,
    pid: u32,
    ready: Option<Arc<Notify>>,
) {
    let mut lines = BufReader::new(reader).split(b'\n');
    while let Ok(Some(bytes)) = lines.next_segment().await {
        let line = String::from_utf8_lossy(&bytes);
        if let Some(r) = &ready
            && line.starts_with("opencode server listening on ")
        {
            r.notify_one();
        }
        sink.child_line(name, stream, Some(pid), &line);
    }
}
