//! Sandbox backends: run the agent (opencode) inside a Linux container so that it sees only the
//! workspace, its persist dir, the read-only sidecar layout and validated extra mounts.
//!
//! The shape of a sandboxed run: the binary builds a [`SandboxSpec`] once from its run plan (every
//! environment read already done); [`SandboxBackend::prepare`] removes orphans of killed runs,
//! checks and stages the binaries, lays out the persist dir and builds the [`SandboxPlan`] (pure
//! data: containers with their mounts, user, limits, ports, command, environment, labels; see
//! [`build`]); [`SandboxBackend::launch`] carries the plan out and hands back a [`SandboxHandle`]
//! whose log lines, exit and stop the host-side supervisor uses like a process's. openwork-server and opencode-router stay on the host, so the
//! credentials that control the run (host token, client/owner tokens) never enter the container.
//!
//! Implementations:
//! - `host` (the null backend) is not a type here: without a sandbox the binary's supervisor runs
//!   opencode as a host process;
//! - [`docker::DockerBackend`]: the Docker engine through its API (bollard);
//! - [`apple::AppleContainerBackend`]: Apple's `container` CLI as a subprocess.

pub mod apple;
pub mod build;
pub mod control;
pub mod docker;
pub mod elf;
pub mod git_guard;
pub mod isolation;
pub mod persist;
mod plan;
pub mod prepare;
pub mod remover;

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

pub use plan::{
    Bind, ContainerPlan, ExtraMount, GitGuardMode, Limits, NetworkAttachment, NetworkPlan, Owner,
    PublishedPort, Role, SandboxPlan, SandboxSpec, boot_id, container_name, is_orphan, label,
    labels, layout, suffixed_name,
};

/// Which pipe of the sandbox a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line the sandboxed command wrote.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub stream: LogStream,
    pub text: String,
}

/// How the sandboxed command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxExit {
    /// Exit status of the container's main process (128 + signal when killed).
    pub code: i64,
}

/// Errors of a backend; each names what failed and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The workspace's git metadata cannot be guarded (e.g. a planted symlink).
    #[error(transparent)]
    GitGuard(#[from] git_guard::GitGuardError),
    #[error("{0}")]
    Unavailable(String),
    #[error("sandbox image {image} is not available locally. Build it with: {build_hint}")]
    ImageMissing { image: String, build_hint: String },
    #[error("container engine call `{call}` failed: {message}")]
    Engine { call: &'static str, message: String },
    #[error(
        "the engine did not apply the hardening setting {setting} (wanted {wanted}, got {got}); refusing to start an unhardened sandbox"
    )]
    HardeningNotApplied {
        setting: &'static str,
        wanted: String,
        got: String,
    },
    #[error("preparing the sandbox failed at {path}: {reason}")]
    Prepare {
        path: camino::Utf8PathBuf,
        reason: persist::PrepareFailure,
    },
    #[error(
        "Apple container bind-mounts directories only, and {path} is not a directory; mount a directory (or use --sandbox docker)"
    )]
    MountNotDirectory { path: String },
    #[error("`{program}` failed: {message}")]
    Command { program: String, message: String },
    #[error("the {binary} binary cannot run in the Linux sandbox: {reason}")]
    NotLinuxExecutable {
        binary: &'static str,
        reason: elf::ElfError,
    },
    #[error(
        "the {backend} backend cannot run a sandbox with {what} yet; run without it (or with --sandbox docker)"
    )]
    NotSupported {
        backend: &'static str,
        what: &'static str,
    },
}

/// How the sweep for orphans of killed runs went (a failed sweep does not stop the run).
#[derive(Debug)]
pub enum OrphanSweep {
    /// Names of the removed containers (often none).
    Removed(Vec<String>),
    Failed(BackendError),
}

/// What [`SandboxBackend::prepare`] did and the plan to launch.
#[derive(Debug)]
pub struct Prepared {
    pub plan: SandboxPlan,
    pub orphans: OrphanSweep,
    /// Credential files copied into the persist dir.
    pub credentials_copied: Vec<String>,
    /// The git guard set up in the workspace (`None` when it is off).
    pub git_guard: Option<git_guard::GitGuard>,
}

/// A running sandbox.
pub trait SandboxHandle: Send + Sync {
    /// Container id or name, for logs and stop instructions.
    fn id(&self) -> String;
    /// The command's output, line by line (once; `None` afterwards).
    fn take_logs(&mut self) -> Option<BoxStream<'static, LogLine>>;
    /// Resolves when the container's main process has exited.
    fn wait(&self) -> BoxFuture<'static, SandboxExit>;
    /// Stops the container (SIGTERM, SIGKILL after `grace`) and removes it.
    fn stop(&self, grace: Duration) -> BoxFuture<'static, Result<(), BackendError>>;
    /// Leaves the container running (detached runs): nothing is removed when the handle drops.
    fn detach(&self);
}

/// A container engine that can run a [`SandboxPlan`].
pub trait SandboxBackend: Send + Sync {
    /// `docker` or `container`.
    fn name(&self) -> &'static str;
    /// What the engine can bind-mount (decides how the binaries are staged).
    fn mount_kinds(&self) -> prepare::MountKinds;
    /// Prepares a run's sandbox once, before the first launch: removes orphans of killed runs,
    /// checks the binaries, lays out the persist dir, stages what is mounted, builds the plan.
    fn prepare<'a>(
        &'a self,
        spec: &'a SandboxSpec,
    ) -> BoxFuture<'a, Result<Prepared, BackendError>> {
        Box::pin(async move {
            let orphans = match self.remove_orphans().await {
                Ok(removed) => OrphanSweep::Removed(removed),
                Err(e) => OrphanSweep::Failed(e),
            };
            let host = prepare::prepare(spec, self.mount_kinds())?;
            Ok(Prepared {
                plan: host.plan,
                orphans,
                credentials_copied: host.credentials_copied,
                git_guard: host.git_guard,
            })
        })
    }
    /// Reads back what is in force in the running `container` (inspect and a self-probe as its
    /// user). Engines that cannot say answer `NotSupported`.
    fn isolation_facts<'a>(
        &'a self,
        _container: &'a str,
    ) -> BoxFuture<'a, Result<isolation::IsolationFacts, BackendError>> {
        let backend = self.name();
        Box::pin(async move {
            Err(BackendError::NotSupported {
                backend,
                what: "reading back the sandbox's isolation",
            })
        })
    }
    /// Creates and starts the sandbox of `plan`, after verifying its hardening took effect.
    fn launch<'a>(
        &'a self,
        plan: &'a SandboxPlan,
    ) -> BoxFuture<'a, Result<Box<dyn SandboxHandle>, BackendError>>;
    /// Removes sandboxes left behind by orchestrators that died without cleaning up. Returns
    /// their names.
    fn remove_orphans(&self) -> BoxFuture<'_, Result<Vec<String>, BackendError>>;
    /// The command a person runs to stop a detached sandbox.
    fn stop_command(&self, plan: &SandboxPlan) -> String;
    /// How the watchdog force-removes `container` if the orchestrator dies without cleaning up.
    fn remover(&self, container: &str) -> remover::Remover;
    /// How the watchdog force-removes everything `plan` creates (a gated plan: the gate and the
    /// networks too).
    fn plan_remover(&self, plan: &SandboxPlan) -> remover::Remover {
        self.remover(&plan.name)
    }
}
