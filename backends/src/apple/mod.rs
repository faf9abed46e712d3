//! Apple's `container` CLI backend (macOS on Apple silicon): the same [`SandboxPlan`] as Docker
//! (prepared with [`MountKinds::DirectoriesOnly`]), carried out with `container` subprocesses whose
//! argv is built by the pure functions of [`argv`] (pinned by unit tests).
//!
//! The CLI (`apple/container`, `docs/command-reference.md`, releases 1.0.0–1.2.2) is driven as:
//! - launch: `container image inspect <image>` (missing image → the build hint), `container delete
//!   --force <name>` (a leftover of the same run id), then `container run …`;
//! - attached runs (the default): `container run --rm …` with piped stdout/stderr. Chosen over
//!   `run --detach` + `logs --follow` because the CLI then is the container: its pipes carry the
//!   container's stdout and stderr apart (a followed log is one stream), and its exit status is the
//!   container's (`ContainerRun.swift` throws `ExitCode(exitCode)`), while the CLI has no `wait`
//!   subcommand and `inspect` reports no exit status;
//! - detached runs (`--detach`): `container run --detach …`, logs through `container logs --follow`
//!   while the orchestrator is still there, exit seen by polling `container inspect` (bounded
//!   calls, every 500 ms); the exit status is unknown and reported as 1;
//! - stop: `container stop --time <grace> <name>`, then `container delete --force <name>`;
//! - orphans: `container list --all --format json`, filtered by our labels (owner pid + boot id).
//!
//! Threats addressed: a mount that is not what the plan says. Apple container bind-mounts
//! directories only (no single-file mounts): [`crate::prepare`] refuses a file mount before
//! anything starts with an error naming the path, and mounts the openwork executable (the
//! container's init) through a directory that holds nothing else, `<persist dir>.openwork-bin/`,
//! next to the persist dir and not in it. Unlike the Docker API, the CLI rejects flags it does not
//! know, so an older release fails loudly instead of silently dropping a hardening flag.
//!
//! Left open: Apple's CLI has no `no-new-privileges` and no pids cgroup (an `nproc` ulimit stands
//! in, see [`argv`]); published ports need macOS's Local Network permission; the VM's network
//! gives the agent outbound access, as Docker's bridge does.

pub mod argv;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

use crate::plan::{SandboxPlan, is_orphan};
use crate::prepare::MountKinds;
use crate::{BackendError, LogLine, LogStream, SandboxBackend, SandboxExit, SandboxHandle};

/// Upper bound of one short CLI call (inspect, delete, list…).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a detached container's state is read.
const POLL: Duration = Duration::from_millis(500);

/// Runs `program args` to completion, bounded; a non-zero exit is an error carrying its stderr.
async fn call(program: &Path, args: &[String], limit: Duration) -> Result<String, BackendError> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let err = |message: String| BackendError::Command {
        program: shown.clone(),
        message,
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(limit, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(err(e.to_string())),
        Err(_) => return Err(err(format!("no answer within {}s", limit.as_secs()))),
    };
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(err(format!(
            "{}: {}",
            exit_code(out.status),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Exit status as one number (128 + signal when killed by one).
fn exit_code(status: std::process::ExitStatus) -> i64 {
    match (status.code(), status.signal()) {
        (Some(c), _) => i64::from(c),
        (None, Some(s)) => 128 + i64::from(s),
        (None, None) => 1,
    }
}

/// `container --version`: whether the CLI is there and answers.
pub async fn probe(program: &Path) -> Result<String, BackendError> {
    let out = call(program, &["--version".to_string()], Duration::from_secs(10)).await?;
    Ok(out.trim().to_string())
}

/// Apple's `container` CLI as a [`SandboxBackend`].
pub struct AppleContainerBackend {
    /// The `container` program (`container` on PATH, or a path; a test double on Linux CI).
    program: PathBuf,
    /// Command that builds the default image (for the missing-image error).
    build_hint: String,
}

impl AppleContainerBackend {
    pub fn new(program: impl Into<PathBuf>, build_hint: impl Into<String>) -> Self {
        AppleContainerBackend {
            program: program.into(),
            build_hint: build_hint.into(),
        }
    }

    /// Checks the CLI answers `--version` (an absent CLI is an error naming the fix).
    pub async fn connect(
        program: impl Into<PathBuf>,
        build_hint: impl Into<String>,
    ) -> Result<Self, BackendError> {
        let backend = Self::new(program, build_hint);
        probe(&backend.program).await.map_err(|e| {
            BackendError::Unavailable(format!(
                "Apple's container CLI does not answer ({e}). Install it from https://github.com/apple/container/releases and run `container system start`, or use --sandbox docker|none"
            ))
        })?;
        Ok(backend)
    }

    async fn launch_inner(&self, plan: &SandboxPlan) -> Result<AppleHandle, BackendError> {
        if plan.gate.is_some() || !plan.networks.is_empty() {
            return Err(BackendError::NotSupported {
                backend: "container",
                what: "an egress gate",
            });
        }
        let agent = &plan.agent;
        if call(
            &self.program,
            &argv::image_inspect_args(&agent.image),
            CALL_TIMEOUT,
        )
        .await
        .is_err()
        {
            return Err(BackendError::ImageMissing {
                image: agent.image.clone(),
                build_hint: self.build_hint.clone(),
            });
        }
        // A container of the same name is a leftover of this run id: replace it.
        let _ = call(&self.program, &argv::delete_args(&agent.name), CALL_TIMEOUT).await;
        let args = argv::run_args(agent, plan.detach);
        let (tx, rx) = watch::channel(None);
        let detached = Arc::new(AtomicBool::new(plan.detach));
        if plan.detach {
            call(&self.program, &args, Duration::from_secs(300)).await?;
            let logs = self.follow_logs(&agent.name)?;
            tokio::spawn(poll_until_stopped(
                self.program.clone(),
                agent.name.clone(),
                tx,
            ));
            return Ok(AppleHandle {
                program: self.program.clone(),
                name: agent.name.clone(),
                logs: std::sync::Mutex::new(Some(logs)),
                exit: rx,
                child_pid: None,
                detached,
            });
        }
        let mut cmd = Command::new(&self.program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C reaches the orchestrator, which stops
            // the container in order, and not the CLI directly.
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| BackendError::Command {
            program: self.program.display().to_string(),
            message: e.to_string(),
        })?;
        let child_pid = child.id();
        let out = child.stdout.take().map(|o| lines(o, LogStream::Stdout));
        let err = child.stderr.take().map(|e| lines(e, LogStream::Stderr));
        let logs: BoxStream<'static, LogLine> = match (out, err) {
            (Some(o), Some(e)) => Box::pin(futures_util::stream::select(o, e)),
            (Some(s), None) | (None, Some(s)) => s,
            (None, None) => Box::pin(futures_util::stream::empty()),
        };
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(status) => exit_code(status),
                Err(_) => 1,
            };
            let _ = tx.send(Some(code));
        });
        Ok(AppleHandle {
            program: self.program.clone(),
            name: agent.name.clone(),
            logs: std::sync::Mutex::new(Some(logs)),
            exit: rx,
            child_pid,
            detached,
        })
    }

    /// `container logs --follow <name>` as a line stream (the follower dies with the stream).
    fn follow_logs(&self, name: &str) -> Result<BoxStream<'static, LogLine>, BackendError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(argv::logs_args(name))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| BackendError::Command {
            program: self.program.display().to_string(),
            message: e.to_string(),
        })?;
        let out = child.stdout.take();
        let err = child.stderr.take();
        let stream = match (out, err) {
            (Some(o), Some(e)) => futures_util::stream::select(
                lines(o, LogStream::Stdout),
                lines(e, LogStream::Stderr),
            )
            .boxed(),
            _ => futures_util::stream::empty().boxed(),
        };
        // The child is owned by the stream: dropping the stream kills the follower.
        Ok(stream
            .map(move |line| {
                let _keep = &child;
                line
            })
            .boxed())
    }
}

/// Lines of `r` (trailing newline removed) until EOF.
fn lines<R: AsyncRead + Unpin + Send + 'static>(
    r: R,
    stream: LogStream,
) -> BoxStream<'static, LogLine> {
    futures_util::stream::unfold(BufReader::new(r), move |mut reader| async move {
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                Some((LogLine { stream, text }, reader))
            }
        }
    })
    .boxed()
}

/// The state of `name` (`None` when the CLI no longer knows it).
async fn state(program: &Path, name: &str) -> Result<Option<String>, BackendError> {
    match call(program, &argv::inspect_args(name), CALL_TIMEOUT).await {
        Ok(json) => Ok(argv::parse_list(&json)
            .map_err(|e| BackendError::Command {
                program: program.display().to_string(),
                message: format!("unreadable inspect output: {e}"),
            })?
            .into_iter()
            .find(|c| c.id == name)
            .map(|c| c.state)),
        Err(_) => Ok(None),
    }
}

/// Detached runs: publishes an exit once `inspect` no longer shows the container running.
async fn poll_until_stopped(program: PathBuf, name: String, tx: watch::Sender<Option<i64>>) {
    loop {
        tokio::time::sleep(POLL).await;
        if tx.is_closed() {
            return;
        }
        match state(&program, &name).await {
            Ok(Some(s)) if s == "running" || s == "stopping" || s == "unknown" => continue,
            // Apple's CLI does not report a container's exit status.
            _ => {
                let _ = tx.send(Some(1));
                return;
            }
        }
    }
}

impl SandboxBackend for AppleContainerBackend {
    fn name(&self) -> &'static str {
        "container"
    }

    fn mount_kinds(&self) -> MountKinds {
        MountKinds::DirectoriesOnly
    }

    fn launch<'a>(
        &'a self,
        plan: &'a SandboxPlan,
    ) -> BoxFuture<'a, Result<Box<dyn SandboxHandle>, BackendError>> {
        Box::pin(async move {
            let h = self.launch_inner(plan).await?;
            Ok(Box::new(h) as Box<dyn SandboxHandle>)
        })
    }

    fn remove_orphans(&self) -> BoxFuture<'_, Result<Vec<String>, BackendError>> {
        Box::pin(async move {
            let json = call(&self.program, &argv::list_args(), CALL_TIMEOUT).await?;
            let listed = argv::parse_list(&json).map_err(|e| BackendError::Command {
                program: self.program.display().to_string(),
                message: format!("unreadable `list --format json` output: {e}"),
            })?;
            let mut removed = Vec::new();
            for c in listed {
                if !is_orphan(|k| c.labels.get(k).cloned()) {
                    continue;
                }
                if call(&self.program, &argv::delete_args(&c.id), CALL_TIMEOUT)
                    .await
                    .is_ok()
                {
                    removed.push(c.id);
                }
            }
            Ok(removed)
        })
    }

    fn remover(&self, container: &str) -> crate::remover::Remover {
        crate::remover::Remover::Command {
            program: self.program.clone(),
            args: argv::delete_args(container),
        }
    }

    fn stop_command(&self, plan: &SandboxPlan) -> String {
        format!(
            "{} {}",
            self.program.display(),
            argv::delete_args(&plan.name).join(" ")
        )
    }
}

/// A running `container` sandbox.
pub struct AppleHandle {
    program: PathBuf,
    name: String,
    /// The output, until taken (a mutex only because handles are `Sync`).
    logs: std::sync::Mutex<Option<BoxStream<'static, LogLine>>>,
    /// `Some(code)` once the container has exited.
    exit: watch::Receiver<Option<i64>>,
    /// The attached `container run` (its own process group), if any.
    child_pid: Option<u32>,
    detached: Arc<AtomicBool>,
}

impl SandboxHandle for AppleHandle {
    fn id(&self) -> String {
        self.name.clone()
    }

    fn take_logs(&mut self) -> Option<BoxStream<'static, LogLine>> {
        self.logs.get_mut().ok()?.take()
    }

    fn wait(&self) -> BoxFuture<'static, SandboxExit> {
        let mut rx = self.exit.clone();
        Box::pin(async move {
            let code = match rx.wait_for(Option::is_some).await {
                Ok(v) => v.unwrap_or(1),
                Err(_) => 1,
            };
            SandboxExit { code }
        })
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'static, Result<(), BackendError>> {
        let program = self.program.clone();
        let name = self.name.clone();
        let mut exit = self.exit.clone();
        let child_pid = self.child_pid;
        Box::pin(async move {
            let secs = grace.as_secs().max(1);
            let limit = grace + CALL_TIMEOUT;
            let _ = call(&program, &argv::stop_args(&name, secs), limit).await;
            if let Some(pid) = child_pid {
                let exited = tokio::time::timeout(CALL_TIMEOUT, exit.wait_for(Option::is_some));
                if exited.await.is_err()
                    && let Ok(pid) = i32::try_from(pid)
                {
                    // The CLI did not follow its container: end it (its own group).
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            match call(&program, &argv::delete_args(&name), CALL_TIMEOUT).await {
                Ok(_) => Ok(()),
                // `--rm` may have removed it already: only a container still there is an error.
                Err(e) => match state(&program, &name).await {
                    Ok(None) => Ok(()),
                    _ => Err(e),
                },
            }
        })
    }

    fn detach(&self) {
        self.detached.store(true, Ordering::SeqCst);
    }
}
