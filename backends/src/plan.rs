//! The typed plan of a sandbox, as plain data.
//!
//! - [`SandboxSpec`]: what a run asks for, built once by the binary from its run plan (every
//!   environment variable, the git identity and the host user already resolved into it);
//! - [`SandboxPlan`]: what a backend carries out: the agent's [`ContainerPlan`], later a gate's,
//!   and the [`NetworkPlan`]s between them. Built from the spec by the pure functions of
//!   [`crate::build`] after [`crate::prepare`] has checked and staged the host side.
//!
//! Threat addressed: a sandbox that is described in one place and launched from another. Every
//! container and network of a run carries the same labels (run id, workspace id, owner pid +
//! boot id, role), so the orphan sweep and the watchdog find all of them by the same rule
//! ([`is_orphan`]), and the container layout (where the workspace, the persist dir and the
//! read-only binaries appear) is defined here once for every backend.

use std::collections::BTreeMap;

use camino::Utf8PathBuf;

use crate::elf::Arch;

/// Where things appear inside the sandbox's containers; the same for every backend.
pub mod layout {
    /// The workspace (read-write) and the agent's working directory.
    pub const WORKSPACE: &str = "/workspace";
    /// The persist dir (read-write): HOME and XDG dirs of the agent.
    pub const PERSIST: &str = "/persist";
    /// Read-only directory holding the Linux `opencode` binary.
    pub const OPENCODE_DIR: &str = "/opt/opencode";
    /// Read-only directory holding only the Linux `openwork` executable.
    pub const OPENWORK_DIR: &str = "/opt/openwork";
    /// The `openwork` executable: the containers' init, and the gate.
    pub const OPENWORK_EXE: &str = "/opt/openwork/openwork";
    /// Read-only directory first on the agent's PATH: `git` → the openwork executable (the
    /// shim that keeps `git init` working in a guarded repository).
    pub const TOOLS_DIR: &str = "/opt/openwork-tools";
    /// The agent's PATH when the tools directory is mounted.
    pub const TOOLS_PATH: &str =
        "/opt/openwork-tools:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    /// Port opencode listens on inside the agent's container.
    pub const OPENCODE_PORT: u16 = 4096;
    /// Where extra mounts appear (`/workspace/extra/<sub>`).
    pub const EXTRA: &str = "/workspace/extra";
}

/// Label keys on every container and network we create.
pub mod label {
    /// Marks containers managed by openwork.
    pub const MANAGED: &str = "org.openwork.managed";
    pub const RUN_ID: &str = "org.openwork.run-id";
    pub const WORKSPACE_ID: &str = "org.openwork.workspace-id";
    /// PID of the orchestrator that owns the container (orphan detection).
    pub const OWNER_PID: &str = "org.openwork.owner-pid";
    /// Boot id of the host where that PID lives (a PID is meaningless across boots/hosts).
    pub const OWNER_BOOT: &str = "org.openwork.owner-boot-id";
    /// `true` for detached runs: never treated as orphans.
    pub const DETACHED: &str = "org.openwork.detached";
    /// `agent`, `gate` (containers) or `internal`, `egress` (networks).
    pub const ROLE: &str = "org.openwork.role";
}

/// A validated extra mount (from the allowlist crate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraMount {
    /// Real host path (symlinks resolved).
    pub host: Utf8PathBuf,
    /// `/workspace/extra/<sub>`.
    pub container: String,
    pub read_only: bool,
}

/// Resource limits of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: i64,
    /// CPUs × 10⁹.
    pub nano_cpus: i64,
    pub pids: i64,
    /// Size cap of the `/tmp` tmpfs.
    pub tmp_bytes: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 4 * 1024 * 1024 * 1024,
            nano_cpus: 2_000_000_000,
            pids: 512,
            tmp_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The orchestrator that owns a sandbox: a later run removes the sandbox once this process is
/// gone (a PID alone is meaningless across boots, hence the boot id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub boot_id: String,
}

impl Owner {
    /// This process on this host.
    pub fn current() -> Owner {
        Owner {
            pid: std::process::id(),
            boot_id: boot_id(),
        }
    }
}

/// What a run asks of its sandbox. Built once by the binary from its run plan, the resolved
/// Linux binaries and the chosen port; a backend's `prepare` turns it into a [`SandboxPlan`].
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub run_id: String,
    pub workspace_id: String,
    pub image: String,
    /// Host workspace (→ `/workspace`, read-write).
    pub workspace: Utf8PathBuf,
    /// Host persist dir (→ `/persist`, read-write; HOME and XDG dirs of the sandbox).
    pub persist_dir: Utf8PathBuf,
    /// Host path of the Linux `opencode` binary.
    pub opencode: Utf8PathBuf,
    /// Host path of a Linux `openwork` executable: the containers' init (and the gate).
    pub openwork: Utf8PathBuf,
    /// Architecture both binaries must be built for (the containers run the host's).
    pub arch: Arch,
    pub extra_mounts: Vec<ExtraMount>,
    /// `uid:gid` the containers run as (the host user's, so workspace files keep their owner).
    pub user: String,
    pub limits: Limits,
    /// Host port on 127.0.0.1 that reaches opencode.
    pub host_port: u16,
    /// Arguments appended to `opencode serve --hostname 0.0.0.0 --port 4096`.
    pub opencode_args: Vec<String>,
    /// opencode's own environment (its credentials, the person's `OPENCODE_*` switches, git
    /// identity); the layout's HOME/XDG/TMPDIR are added by the builder. Never an OpenWork token.
    pub agent_env: Vec<(String, String)>,
    /// The host's opencode data dir whose `auth.json`/`mcp-auth.json` are copied into the
    /// persist dir (`None`: copy nothing).
    pub copy_auth_from: Option<Utf8PathBuf>,
    pub owner: Owner,
    pub detach: bool,
    /// Whether the workspace's git metadata is guarded (see [`crate::git_guard`]).
    pub git_guard: GitGuardMode,
    /// The egress gate (`None`: the agent on the engine's default network, egress unrestricted).
    pub gate: Option<crate::build::GateSpec>,
}

/// Whether (and with which host git) the workspace's git metadata is guarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitGuardMode {
    /// `--sandbox-allow-git-config`: the agent may change `.git/config` and hooks.
    Off,
    /// Guarded (the default). `host_git` creates an empty repository when there is none.
    On {
        host_git: Option<std::path::PathBuf>,
    },
}

/// What a container is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// opencode under our init.
    Agent,
    /// `openwork gate`: the only way in and out of the agent's network.
    Gate,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Gate => "gate",
        }
    }
}

/// One bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: Utf8PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// A container port published on the host. `host_ip` is always a loopback address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
}

/// A network a container joins, and the names it answers to there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAttachment {
    pub network: String,
    pub aliases: Vec<String>,
}

/// One container of a sandbox: everything a backend needs to create it hardened (non-root,
/// no capabilities, no new privileges, read-only root, `/tmp` tmpfs, limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    pub role: Role,
    pub name: String,
    pub image: String,
    /// `uid:gid`.
    pub user: String,
    /// The command (no image entrypoint wraps it).
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: String,
    pub mounts: Vec<Bind>,
    pub ports: Vec<PublishedPort>,
    /// Empty: the engine's default network.
    pub networks: Vec<NetworkAttachment>,
    pub labels: BTreeMap<String, String>,
    pub limits: Limits,
}

/// A network of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    pub name: String,
    /// No route out: only containers on it reach each other.
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// One sandboxed run of opencode, ready to launch (and to relaunch after a crash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPlan {
    pub run_id: String,
    pub workspace_id: String,
    /// The sandbox's name: that of its agent container.
    pub name: String,
    pub detach: bool,
    pub agent: ContainerPlan,
    /// The egress gate (Docker runs it; Apple `container` refuses a plan that has one).
    pub gate: Option<ContainerPlan>,
    /// Networks to create before the containers.
    pub networks: Vec<NetworkPlan>,
}

/// `openwork-<run id>` with unsafe characters replaced, at most 63 characters.
pub fn container_name(run_id: &str) -> String {
    let cleaned: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("openwork-{cleaned}");
    name.truncate(63);
    name
}

/// [`container_name`] with `-<suffix>`, still at most 63 characters (the run id part is cut).
pub fn suffixed_name(run_id: &str, suffix: &str) -> String {
    let mut base = container_name(run_id);
    base.truncate(63 - suffix.len() - 1);
    format!("{base}-{suffix}")
}

/// The labels of everything a run creates.
pub fn labels(
    run_id: &str,
    workspace_id: &str,
    owner_pid: u32,
    boot_id: &str,
    detach: bool,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (label::MANAGED.to_string(), "true".to_string()),
        (label::RUN_ID.to_string(), run_id.to_string()),
        (label::WORKSPACE_ID.to_string(), workspace_id.to_string()),
        (label::OWNER_PID.to_string(), owner_pid.to_string()),
        (label::OWNER_BOOT.to_string(), boot_id.to_string()),
        (label::DETACHED.to_string(), detach.to_string()),
    ])
}

/// This host's boot id (Linux), or an empty string.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Whether something labelled `labels` is an orphan: ours, not detached, and its owner is no
/// longer alive on this host. The one rule for containers (and, later, networks).
pub fn is_orphan(get: impl Fn(&str) -> Option<String>) -> bool {
    get(label::MANAGED).as_deref() == Some("true")
        && get(label::DETACHED).as_deref() != Some("true")
        && !owner_alive(
            get(label::OWNER_BOOT).as_deref(),
            get(label::OWNER_PID).as_deref(),
        )
}

/// Whether the orchestrator named by a container's owner labels is still alive on this host (then
/// its container is not an orphan).
pub(crate) fn owner_alive(owner_boot: Option<&str>, owner_pid: Option<&str>) -> bool {
    owner_boot == Some(boot_id().as_str())
        && owner_pid
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(pid_is_openwork)
}

/// Whether `pid` is a live openwork process: its command line on Linux; elsewhere (no `/proc`)
/// only whether it is alive.
pub(crate) fn pid_is_openwork(pid: i32) -> bool {
    if pid <= 1 {
        return false;
    }
    if cfg!(target_os = "linux") {
        return match std::fs::read(format!("/proc/{pid}/cmdline")) {
            Ok(cmd) => String::from_utf8_lossy(&cmd).contains("openwork"),
            Err(_) => false,
        };
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_engine_safe() {
        assert_eq!(container_name("My Run/ID 1"), "openwork-My-Run-ID-1");
        assert_eq!(container_name(&"x".repeat(100)).len(), 63);
        assert_eq!(suffixed_name("r1", "gate"), "openwork-r1-gate");
        let long = suffixed_name(&"x".repeat(100), "gate");
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("x-gate"), "{long}");
    }

    #[test]
    fn orphans_are_ours_undetached_and_ownerless() {
        let get = |l: &BTreeMap<String, String>, k: &str| l.get(k).cloned();
        // PID 1 is never an orchestrator: its sandbox is an orphan.
        let dead = labels("r", "ws", 1, &boot_id(), false);
        assert!(is_orphan(|k| get(&dead, k)));
        let detached = labels("r", "ws", 1, "b", true);
        assert!(!is_orphan(|k| get(&detached, k)));
        let foreign = BTreeMap::new();
        assert!(!is_orphan(|k| get(&foreign, k)));
    }
}
