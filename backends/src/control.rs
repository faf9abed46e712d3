//! Control of a detached run's sandbox by name, from a later process that holds no handle on it
//! (`openwork ps`, `openwork stop`, `openwork logs`): is it running, stop and remove it, read its
//! output.
//!
//! Threat addressed: a stop that leaves the container behind, or that shells out to an engine CLI
//! found on PATH. Docker is driven through its API (bollard, `DOCKER_HOST` honoured, the API
//! version negotiated as at launch); Apple's `container` through the program recorded when the run
//! started, with the argv of [`crate::apple::argv`]. Stop is graceful (SIGTERM, SIGKILL after the
//! grace) and always followed by a forced removal; a container that is already gone counts as
//! stopped.
//!
//! Left open: the caller decides which containers are its own (the run record names them); this
//! module acts on whatever name it is given.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::{
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::stream::{BoxStream, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::apple::argv;
use crate::{BackendError, LogLine, LogStream};

/// Bound of one engine call (inspect, list, delete).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The engine a recorded container runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// The Docker engine, through its API.
    Docker,
    /// Apple's `container` CLI at `program`.
    Apple { program: PathBuf },
}

/// What the engine says about a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    /// Created or exited, still known to the engine.
    Stopped,
    /// No container of that name.
    Missing,
}

async fn docker() -> Result<bollard::Docker, BackendError> {
    match crate::docker::probe().await {
        (crate::docker::EngineProbe::Reachable { .. }, Some(d)) => Ok(d),
        (probe, _) => Err(BackendError::Unavailable(probe.to_string())),
    }
}

fn engine_error(call: &'static str) -> impl Fn(bollard::errors::Error) -> BackendError {
    move |e| BackendError::Engine {
        call,
        message: e.to_string(),
    }
}

fn is_missing(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

async fn apple_call(program: &PathBuf, args: &[String]) -> Result<String, BackendError> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let run = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(CALL_TIMEOUT, run).await {
        Ok(Ok(out)) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into()),
        Ok(Ok(out)) => Err(BackendError::Command {
            program: shown,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
        Ok(Err(e)) => Err(BackendError::Command {
            program: shown,
            message: e.to_string(),
        }),
        Err(_) => Err(BackendError::Command {
            program: shown,
            message: format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
        }),
    }
}

/// The state of container `name`.
pub async fn state(engine: &Engine, name: &str) -> Result<ContainerState, BackendError> {
    match engine {
        Engine::Docker => {
            let docker = docker().await?;
            match docker.inspect_container(name, None).await {
                Ok(i) => Ok(if i.state.and_then(|s| s.running).unwrap_or(false) {
                    ContainerState::Running
                } else {
                    ContainerState::Stopped
                }),
                Err(e) if is_missing(&e) => Ok(ContainerState::Missing),
                Err(e) => Err(engine_error("inspect container")(e)),
            }
        }
        Engine::Apple { program } => match apple_call(program, &argv::inspect_args(name)).await {
            Ok(json) => {
                let listed = argv::parse_list(&json).map_err(|e| BackendError::Command {
                    program: program.display().to_string(),
                    message: format!("unreadable inspect output: {e}"),
                })?;
                Ok(match listed.first() {
                    Some(c) if c.state == "running" => ContainerState::Running,
                    Some(_) => ContainerState::Stopped,
                    None => ContainerState::Missing,
                })
            }
            // `inspect` of an unknown container fails: the CLI has no separate "not found" code.
            Err(_) => Ok(ContainerState::Missing),
        },
    }
}

/// Stops container `name` (SIGTERM, SIGKILL after `grace`) and removes it. Returns whether there
/// was a container to stop.
pub async fn stop_and_remove(
    engine: &Engine,
    name: &str,
    grace: Duration,
) -> Result<bool, BackendError> {
    let secs = grace.as_secs().max(1);
    match engine {
        Engine::Docker => {
            let docker = docker().await?;
            // A gated run's gate and networks carry the agent's run-id label: they go too.
            let run_id = docker
                .inspect_container(name, None)
                .await
                .ok()
                .and_then(|i| i.config?.labels?.get(crate::label::RUN_ID).cloned());
            let t = i32::try_from(secs).unwrap_or(10);
            let opts = StopContainerOptionsBuilder::default().t(t).build();
            match docker.stop_container(name, Some(opts)).await {
                Err(e) if is_missing(&e) => return Ok(false),
                // 304 (already stopped) and other errors: the forced removal below decides.
                _ => {}
            }
            let rm = RemoveContainerOptionsBuilder::default().force(true).build();
            let removed = match docker.remove_container(name, Some(rm)).await {
                Ok(()) => Ok(true),
                Err(e) if is_missing(&e) => Ok(true),
                Err(e) => Err(engine_error("remove container")(e)),
            };
            if let Some(run_id) = run_id {
                crate::docker::remove_run(&docker, &run_id, grace).await?;
            }
            removed
        }
        Engine::Apple { program } => {
            if state(engine, name).await? == ContainerState::Missing {
                return Ok(false);
            }
            let _ = apple_call(program, &argv::stop_args(name, secs)).await;
            apple_call(program, &argv::delete_args(name)).await?;
            Ok(true)
        }
    }
}

/// The container's output so far, and with `follow` everything it writes until it stops.
pub async fn logs(
    engine: &Engine,
    name: &str,
    follow: bool,
) -> Result<BoxStream<'static, LogLine>, BackendError> {
    match engine {
        Engine::Docker => {
            let docker = docker().await?;
            let opts = LogsOptionsBuilder::default()
                .follow(follow)
                .stdout(true)
                .stderr(true)
                .build();
            let raw = docker.logs(name, Some(opts));
            let mut bufs = (String::new(), String::new());
            let lines = raw
                .map(move |item| {
                    let (stream, bytes) = match item {
                        Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                            (LogStream::Stdout, message)
                        }
                        Ok(LogOutput::StdErr { message }) => (LogStream::Stderr, message),
                        _ => return futures_util::stream::iter(Vec::new()),
                    };
                    let buf = match stream {
                        LogStream::Stdout => &mut bufs.0,
                        LogStream::Stderr => &mut bufs.1,
                    };
                    buf.push_str(&String::from_utf8_lossy(&bytes));
                    let mut out = Vec::new();
                    while let Some(pos) = buf.find('\n') {
                        let line: String = buf.drain(..=pos).collect();
                        out.push(LogLine {
                            stream,
                            text: line.trim_end_matches(['\n', '\r']).to_string(),
                        });
                    }
                    futures_util::stream::iter(out)
                })
                .flatten();
            Ok(Box::pin(lines))
        }
        Engine::Apple { program } => {
            let mut args = argv::logs_args(name);
            if !follow {
                args.retain(|a| a != "--follow");
            }
            let mut child = tokio::process::Command::new(program)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| BackendError::Command {
                    program: program.display().to_string(),
                    message: e.to_string(),
                })?;
            let Some(out) = child.stdout.take() else {
                return Ok(Box::pin(futures_util::stream::empty()));
            };
            let lines = futures_util::stream::unfold(
                (BufReader::new(out).lines(), child),
                |(mut lines, child)| async move {
                    match lines.next_line().await {
                        Ok(Some(text)) => Some((
                            LogLine {
                                stream: LogStream::Stdout,
                                text,
                            },
                            (lines, child),
                        )),
                        _ => None,
                    }
                },
            );
            Ok(Box::pin(lines))
        }
    }
}
