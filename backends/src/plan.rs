//! [`SandboxPlan`]: everything a backend needs to run the agent's container, as plain data.
//! Built by the binary from its run plan; every backend carries out the same plan.

use std::collections::BTreeMap;

use camino::Utf8PathBuf;

/// Port opencode listens on inside the container (published on 127.0.0.1 of the host).
pub const CONTAINER_OPENCODE_PORT: u16 = 4096;

/// Label keys on every container we create.
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

/// Resource limits of the container.
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

/// One sandboxed run of opencode.
#[derive(Debug, Clone)]
pub struct SandboxPlan {
    pub run_id: String,
    pub workspace_id: String,
    /// Container name (see [`container_name`]).
    pub name: String,
    pub image: String,
    /// Host workspace (→ `/workspace`, read-write).
    pub workspace: Utf8PathBuf,
    /// Host persist dir (→ `/persist`, read-write; HOME and XDG dirs of the sandbox).
    pub persist_dir: Utf8PathBuf,
    /// Host directory holding the Linux `opencode` binary (→ `/opt/opencode`, read-only).
    pub opencode_dir: Utf8PathBuf,
    /// Host path of a Linux `openwork` executable (→ `/opt/openwork/openwork`, read-only): the
    /// container's init.
    pub openwork_exe: Utf8PathBuf,
    pub extra_mounts: Vec<ExtraMount>,
    /// `uid:gid` the agent runs as (the host user's, so workspace files keep their owner).
    pub user: String,
    pub limits: Limits,
    /// Host port on 127.0.0.1 published to the container's opencode port.
    pub host_port: u16,
    /// Environment of the container (no OpenWork tokens, ever).
    pub env: Vec<(String, String)>,
    /// The container's command (the init, then opencode).
    pub command: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub detach: bool,
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

/// The labels of a run's container.
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
    }
}
