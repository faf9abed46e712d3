//! Spawning and signalling one service process.
//!
//! Threat addressed: orphaned processes. Each service is started as the leader of its own process
//! group, so a stop signal reaches everything it started (opencode's LSP/MCP children included),
//! and on Linux with `PR_SET_PDEATHSIG` so the kernel kills it if the orchestrator dies without
//! cleaning up (SIGKILL, OOM). Detached services (and a dashboard run's, which may detach later)
//! instead get their own session and no death signal, and write their output to files instead
//! of pipes (a closed pipe must not kill them); for those the watchdog is the only guard.
//!
//! Left open: grandchildren of a service are not covered by the death signal when the
//! orchestrator is SIGKILLed (only the group leader is); a normal stop signals the whole group.

use std::process::Stdio;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How to run one service process.
#[derive(Clone)]
pub struct ProcessSpec {
    pub program: Utf8PathBuf,
    pub args: Vec<String>,
    /// Added to (or overriding) the inherited environment.
    pub env: Vec<(String, String)>,
    /// Removed from the inherited environment (e.g. secrets the service must not see).
    pub env_remove: Vec<String>,
    pub cwd: Utf8PathBuf,
}

impl std::fmt::Debug for ProcessSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The environment holds credentials: show names only.
        let env: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ProcessSpec")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &env)
            .field("cwd", &self.cwd)
            .finish()
    }
}

/// Where a spawned process writes its output.
pub enum OutputMode {
    /// Pipes read by the supervisor (foreground runs).
    Piped,
    /// Append to this log file; the process outlives the orchestrator (detached runs).
    Detached { log_file: Utf8PathBuf },
}

/// Starts `spec` as a process-group leader (or session leader when detached).
pub fn spawn(spec: &ProcessSpec, output: &OutputMode) -> std::io::Result<Child> {
    let mut cmd = Command::new(spec.program.as_std_path());
    cmd.args(&spec.args)
        .current_dir(spec.cwd.as_std_path())
        .stdin(Stdio::null())
        .kill_on_drop(false);
    for name in &spec.env_remove {
        cmd.env_remove(name);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    match output {
        OutputMode::Piped => {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            cmd.process_group(0);
            #[cfg(target_os = "linux")]
            // SAFETY: prctl and getppid are async-signal-safe; the closure allocates nothing.
            unsafe {
                let parent = libc::getpid();
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The parent may have died between fork and prctl.
                    if libc::getppid() != parent {
                        return Err(std::io::Error::other("orchestrator exited during spawn"));
                    }
                    Ok(())
                });
            }
        }
        OutputMode::Detached { log_file } => {
            let file = open_log(log_file)?;
            let err = file.try_clone()?;
            cmd.stdout(Stdio::from(file)).stderr(Stdio::from(err));
            // SAFETY: setsid is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }
    cmd.spawn()
}

fn open_log(path: &Utf8Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Sends `signal` to the process group `pgid`. `false` when the group no longer exists.
pub fn signal_group(pgid: u32, signal: Signal) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    if raw <= 1 {
        return false;
    }
    killpg(Pid::from_raw(raw), signal).is_ok()
}

/// Whether any process of group `pgid` is still alive (zombies of our own children count until
/// reaped).
pub fn group_alive(pgid: u32) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    raw > 1 && killpg(Pid::from_raw(raw), None).is_ok()
}

/// Waits until group `pgid` is empty, up to `limit`. Returns whether it emptied.
pub async fn wait_group_gone(pgid: u32, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// How a process ended, for logs and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn from_status(status: std::process::ExitStatus) -> ExitInfo {
        use std::os::unix::process::ExitStatusExt;
        ExitInfo {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => {
                let name = Signal::try_from(s).map(|s| s.as_str()).unwrap_or("signal");
                write!(f, "killed by {name} ({s})")
            }
            (None, None) => f.write_str("unknown exit status"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> ProcessSpec {
        ProcessSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("OW_TEST_VAR".into(), "yes".into())],
            env_remove: vec![],
            cwd: "/".into(),
        }
    }

    #[tokio::test]
    async fn group_signal_reaches_grandchildren() {
        // The shell starts a grandchild and waits; signalling the group must end both.
        let mut child = spawn(&sh("sleep 300 & wait"), &OutputMode::Piped).unwrap();
        let pgid = child.id().unwrap();
        assert!(group_alive(pgid));
        assert!(signal_group(pgid, Signal::SIGTERM));
        let status = child.wait().await.unwrap();
        assert_eq!(ExitInfo::from_status(status).signal, Some(libc::SIGTERM));
        assert!(wait_group_gone(pgid, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn env_is_passed_and_removed() {
        let spec = ProcessSpec {
            env_remove: vec!["HOME".into()],
            ..sh("test -z \"$HOME\" && test \"$OW_TEST_VAR\" = yes")
        };
        let mut child = spawn(&spec, &OutputMode::Piped).unwrap();
        assert!(child.wait().await.unwrap().success());
    }

    #[test]
    fn exit_info_names_signals() {
        let e = ExitInfo {
            code: None,
            signal: Some(9),
        };
        assert_eq!(e.to_string(), "killed by SIGKILL (9)");
    }
}
