//! The Docker backend: carries out a [`SandboxPlan`] (built by [`crate::build`], turned into
//! create requests by [`spec`]) through the engine's API (bollard), honouring `DOCKER_HOST`.
//!
//! Threat addressed: a sandbox that is weaker than it claims. The API version is negotiated at
//! connect (an older engine silently drops fields it does not know under a newer version), and
//! after `create` the container is inspected: if any hardening setting of
//! [`spec::hardening_checks`] did not stick, the container is removed and the run refuses to
//! start. Orphans of a killed orchestrator are found by label and removed by the next run.
//!
//! A gated plan (the egress gate) is carried out by [`network`]: the run's networks, the gate, then
//! the agent, each verified before it starts, all removed together.
//!
//! Left open: a plan without a gate (`--sandbox-network open`) puts the agent on the default
//! bridge network, with unrestricted outbound access.

mod network;
pub mod read_back;
pub mod socket_probe;
pub mod spec;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};

use crate::plan::{SandboxPlan, is_orphan};
use crate::prepare::MountKinds;
use crate::{BackendError, LogLine, LogStream, SandboxBackend, SandboxExit, SandboxHandle};

/// What probing the engine found; `Display` names the cause and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineProbe {
    Reachable { version: String, api: String },
    SocketMissing { tried: String },
    PermissionDenied { path: String },
    Unreachable { reason: String },
}

impl std::fmt::Display for EngineProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineProbe::Reachable { version, api } => {
                write!(f, "Docker engine {version} (API {api}) is reachable")
            }
            EngineProbe::SocketMissing { tried } => write!(
                f,
                "no Docker engine socket at {tried}. Start Docker (or set DOCKER_HOST), or run with --sandbox none"
            ),
            EngineProbe::PermissionDenied { path } => write!(
                f,
                "permission denied on the Docker socket {path}. Add your user to the `docker` group (or use rootless Docker and DOCKER_HOST)"
            ),
            EngineProbe::Unreachable { reason } => write!(
                f,
                "the Docker engine does not answer ({reason}). Start it (e.g. `sudo systemctl start docker`) or set DOCKER_HOST"
            ),
        }
    }
}

fn socket_path() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => h,
        _ => "/var/run/docker.sock".to_string(),
    }
}

/// Connects to the engine and negotiates the API version.
pub async fn probe() -> (EngineProbe, Option<Docker>) {
    let path = socket_path();
    if let Some(p) = path.strip_prefix("unix://").or(Some(path.as_str()))
        && p.starts_with('/')
        && !std::path::Path::new(p).exists()
    {
        return (
            EngineProbe::SocketMissing {
                tried: p.to_string(),
            },
            None,
        );
    }
    let docker = match Docker::connect_with_defaults() {
        Ok(d) => d,
        Err(e) => {
            return (
                EngineProbe::Unreachable {
                    reason: e.to_string(),
                },
                None,
            );
        }
    };
    let docker =
        match tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                let text = e.to_string();
                let probe = if text.contains("ermission denied") {
                    EngineProbe::PermissionDenied { path }
                } else {
                    EngineProbe::Unreachable { reason: text }
                };
                return (probe, None);
            }
            Err(_) => {
                return (
                    EngineProbe::Unreachable {
                        reason: "no answer within 5s".into(),
                    },
                    None,
                );
            }
        };
    match docker.version().await {
        Ok(v) => (
            EngineProbe::Reachable {
                version: v.version.unwrap_or_default(),
                api: v.api_version.unwrap_or_default(),
            },
            Some(docker),
        ),
        Err(e) => (
            EngineProbe::Unreachable {
                reason: e.to_string(),
            },
            None,
        ),
    }
}

fn engine(call: &'static str) -> impl Fn(bollard::errors::Error) -> BackendError {
    move |e| BackendError::Engine {
        call,
        message: e.to_string(),
    }
}

/// Stops and removes everything labelled with `run_id` (containers, then networks): the rest of
/// a gated run once its agent is gone (`openwork stop` of a detached run).
pub async fn remove_run(
    docker: &Docker,
    run_id: &str,
    grace: Duration,
) -> Result<(), BackendError> {
    let filters: HashMap<String, Vec<String>> = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{}=true", crate::label::MANAGED),
            format!("{}={run_id}", crate::label::RUN_ID),
        ],
    )]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let containers: Vec<String> = docker
        .list_containers(Some(opts))
        .await
        .map_err(engine("list containers"))?
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    let nets = bollard::query_parameters::ListNetworksOptionsBuilder::default()
        .filters(&filters)
        .build();
    let networks: Vec<String> = docker
        .list_networks(Some(nets))
        .await
        .map_err(engine("list networks"))?
        .into_iter()
        .filter_map(|n| n.name)
        .collect();
    network::teardown(docker, &containers, &networks, grace).await
}

/// The Docker engine backend.
pub struct DockerBackend {
    docker: Docker,
    /// Command that builds the default image (for the missing-image error).
    build_hint: String,
}

impl DockerBackend {
    /// Connects (negotiating the API version); an unreachable engine is an error naming the fix.
    pub async fn connect(build_hint: impl Into<String>) -> Result<DockerBackend, BackendError> {
        match probe().await {
            (EngineProbe::Reachable { .. }, Some(docker)) => Ok(DockerBackend {
                docker,
                build_hint: build_hint.into(),
            }),
            (probe, _) => Err(BackendError::Unavailable(probe.to_string())),
        }
    }

    /// The engine client (tests inspect containers with it).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    async fn remove(&self, name: &str) {
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = self.docker.remove_container(name, Some(opts)).await;
    }

    async fn launch_inner(&self, plan: &SandboxPlan) -> Result<DockerHandle, BackendError> {
        let agent = &plan.agent;
        if let Err(e) = self.docker.inspect_image(&agent.image).await {
            return Err(match e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => BackendError::ImageMissing {
                    image: agent.image.clone(),
                    build_hint: self.build_hint.clone(),
                },
                other => engine("inspect image")(other),
            });
        }
        // Created in order: networks, the gate (the way in and out), the agent. Removed in
        // reverse, also when a step fails, so a failed launch leaves nothing behind.
        let handle = DockerHandle {
            docker: self.docker.clone(),
            name: agent.name.clone(),
            gate: plan.gate.as_ref().map(|g| g.name.clone()),
            networks: plan.networks.iter().map(|n| n.name.clone()).collect(),
            detached: Arc::new(AtomicBool::new(plan.detach)),
            logs_taken: false,
        };
        let steps = async {
            // Leftovers of this run id (a crashed attempt) go first.
            network::remove_container(&self.docker, &agent.name).await;
            if let Some(gate) = &plan.gate {
                network::remove_container(&self.docker, &gate.name).await;
            }
            for n in &plan.networks {
                network::create_network(&self.docker, n).await?;
            }
            if let Some(gate) = &plan.gate {
                network::create_and_start(&self.docker, gate).await?;
            }
            network::create_and_start(&self.docker, agent).await
        };
        if let Err(e) = steps.await {
            let _ = handle.teardown(Duration::from_secs(1)).await;
            return Err(e);
        }
        Ok(handle)
    }
}

impl SandboxBackend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn isolation_facts<'a>(
        &'a self,
        container: &'a str,
    ) -> BoxFuture<'a, Result<crate::isolation::IsolationFacts, BackendError>> {
        Box::pin(read_back::isolation_facts(&self.docker, container))
    }

    fn mount_kinds(&self) -> MountKinds {
        MountKinds::FilesAndDirectories
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
            let filters: HashMap<String, Vec<String>> = HashMap::from([(
                "label".to_string(),
                vec![format!("{}=true", crate::label::MANAGED)],
            )]);
            let opts = ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build();
            let list = self
                .docker
                .list_containers(Some(opts))
                .await
                .map_err(engine("list containers"))?;
            let mut removed = Vec::new();
            // Gates before the networks they hold (agents and gates alike carry the labels).
            for c in list {
                let labels = c.labels.unwrap_or_default();
                if !is_orphan(|k| labels.get(k).cloned()) {
                    continue;
                }
                let name = c
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .or(c.id)
                    .unwrap_or_default();
                if name.is_empty() {
                    continue;
                }
                self.remove(&name).await;
                removed.push(name);
            }
            removed.extend(network::remove_orphan_networks(&self.docker).await?);
            Ok(removed)
        })
    }

    fn stop_command(&self, plan: &SandboxPlan) -> String {
        format!("docker rm -f {}", plan.name)
    }

    fn remover(&self, container: &str) -> crate::remover::Remover {
        crate::remover::Remover::DockerApi {
            name: container.to_string(),
        }
    }

    fn plan_remover(&self, plan: &SandboxPlan) -> crate::remover::Remover {
        if plan.gate.is_none() && plan.networks.is_empty() {
            return self.remover(&plan.name);
        }
        crate::remover::Remover::DockerSandbox {
            containers: std::iter::once(plan.agent.name.clone())
                .chain(plan.gate.as_ref().map(|g| g.name.clone()))
                .collect(),
            networks: plan.networks.iter().map(|n| n.name.clone()).collect(),
        }
    }
}

/// A running sandbox: the agent's container, and in a gated run the gate and the networks.
pub struct DockerHandle {
    docker: Docker,
    /// The agent's container (whose exit is the sandbox's).
    name: String,
    /// The gate's container, if any.
    gate: Option<String>,
    /// The run's networks, removed after the containers.
    networks: Vec<String>,
    detached: Arc<AtomicBool>,
    logs_taken: bool,
}

impl DockerHandle {
    fn teardown(&self, grace: Duration) -> BoxFuture<'static, Result<(), BackendError>> {
        SandboxHandle::stop(self, grace)
    }
}

impl SandboxHandle for DockerHandle {
    fn id(&self) -> String {
        self.name.clone()
    }

    fn take_logs(&mut self) -> Option<BoxStream<'static, LogLine>> {
        if self.logs_taken {
            return None;
        }
        self.logs_taken = true;
        let opts = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let raw = self.docker.logs(&self.name, Some(opts));
        let mut out_buf = String::new();
        let mut err_buf = String::new();
        let lines = raw
            .map(move |item| {
                let mut lines = Vec::new();
                let (stream, bytes) = match item {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        (LogStream::Stdout, message)
                    }
                    Ok(LogOutput::StdErr { message }) => (LogStream::Stderr, message),
                    _ => return futures_util::stream::iter(lines),
                };
                let buf = if stream == LogStream::Stdout {
                    &mut out_buf
                } else {
                    &mut err_buf
                };
                buf.push_str(&String::from_utf8_lossy(&bytes));
                while let Some(pos) = buf.find('\n') {
                    let line: String = buf.drain(..=pos).collect();
                    lines.push(LogLine {
                        stream,
                        text: line.trim_end_matches(['\n', '\r']).to_string(),
                    });
                }
                futures_util::stream::iter(lines)
            })
            .flatten();
        Some(Box::pin(lines))
    }

    fn wait(&self) -> BoxFuture<'static, SandboxExit> {
        let docker = self.docker.clone();
        let name = self.name.clone();
        Box::pin(async move {
            let opts = WaitContainerOptionsBuilder::default()
                .condition("not-running")
                .build();
            let mut stream = docker.wait_container(&name, Some(opts));
            let code = match stream.next().await {
                Some(Ok(r)) => r.status_code,
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                Some(Err(_)) | None => {
                    // The engine lost the container: read its final state if it is still known.
                    match docker.inspect_container(&name, None).await {
                        Ok(i) => i.state.and_then(|s| s.exit_code).unwrap_or(1),
                        Err(_) => 1,
                    }
                }
            };
            SandboxExit { code }
        })
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'static, Result<(), BackendError>> {
        let docker = self.docker.clone();
        let containers: Vec<String> = std::iter::once(self.name.clone())
            .chain(self.gate.clone())
            .collect();
        let networks = self.networks.clone();
        Box::pin(async move { network::teardown(&docker, &containers, &networks, grace).await })
    }

    fn detach(&self) {
        self.detached.store(true, Ordering::SeqCst);
    }
}
