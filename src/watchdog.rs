//! The watchdog: a small helper process (this executable, `openwork __watchdog`) that stops every
//! service's whole process group when the orchestrator dies without cleaning up (SIGKILL, OOM).
//!
//! Threat addressed: orphans. `PR_SET_PDEATHSIG` kills each service's leader when the orchestrator
//! dies, but not the leader's own children (opencode's LSP/MCP servers, a shell's background job).
//! The watchdog holds the read end of a pipe whose write end only the orchestrator has; the
//! orchestrator announces each service's process group on it (`+PGID`, `-PGID`). When the pipe
//! reaches end-of-file — the orchestrator is gone, however it died — the watchdog sends SIGTERM
//! to every group still announced, then SIGKILL after a grace period, and exits.
//!
//! Sandboxes are announced the same way (`+S <remover>`): at end-of-file the watchdog removes
//! them too, so a container does not outlive a killed orchestrator.
//!
//! Left open: a service that leaves its process group (`setsid`) escapes both mechanisms.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use openwork_backends::remover::Remover;

/// The orchestrator's handle on its watchdog.
pub struct Watchdog {
    pipe: Mutex<Option<ChildStdin>>,
    child: Mutex<Option<Child>>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watchdog")
    }
}

impl Watchdog {
    /// Starts the watchdog process (this executable in its hidden role).
    pub fn spawn() -> std::io::Result<Watchdog> {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("__watchdog")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own group: a terminal's Ctrl-C must not take it down before the services.
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take();
        Ok(Watchdog {
            pipe: Mutex::new(pipe),
            child: Mutex::new(Some(child)),
        })
    }

    fn send(&self, line: &str) {
        if let Ok(mut guard) = self.pipe.lock()
            && let Some(pipe) = guard.as_mut()
        {
            let _ = writeln!(pipe, "{line}");
            let _ = pipe.flush();
        }
    }

    /// A service's process group to stop if the orchestrator dies.
    pub fn watch(&self, pgid: u32) {
        self.send(&format!("+{pgid}"));
    }

    /// The group is gone (or detached on purpose): forget it.
    pub fn forget(&self, pgid: u32) {
        self.send(&format!("-{pgid}"));
    }

    /// A sandbox to remove if the orchestrator dies.
    pub fn watch_sandbox(&self, remover: &openwork_backends::remover::Remover) {
        self.send(&format!("+S {}", remover.to_line()));
    }

    /// The sandbox is gone (or was stopped normally): forget it.
    pub fn forget_sandbox(&self, remover: &openwork_backends::remover::Remover) {
        self.send(&format!("-S {}", remover.to_line()));
    }

    /// Normal end of the run: close the pipe with nothing announced and reap the watchdog.
    pub fn finish(&self) {
        if let Ok(mut guard) = self.pipe.lock() {
            guard.take();
        }
        if let Ok(mut guard) = self.child.lock()
            && let Some(mut child) = guard.take()
        {
            let _ = child.wait();
        }
    }
}

/// The watchdog role's main loop: reads announcements until EOF, then stops what is left.
pub fn run_watchdog() -> std::process::ExitCode {
    let mut groups: BTreeSet<i32> = BTreeSet::new();
    let mut sandboxes: Vec<Remover> = Vec::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("+S ") {
            if let Some(r) = Remover::from_line(rest) {
                sandboxes.push(r);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("-S ") {
            if let Some(r) = Remover::from_line(rest) {
                sandboxes.retain(|s| *s != r);
            }
            continue;
        }
        let (add, num) = match line.split_at_checked(1) {
            Some(("+", n)) => (true, n),
            Some(("-", n)) => (false, n),
            _ => continue,
        };
        let Ok(pgid) = num.parse::<i32>() else {
            continue;
        };
        if pgid <= 1 {
            continue;
        }
        if add {
            groups.insert(pgid);
        } else {
            groups.remove(&pgid);
        }
    }
    if !sandboxes.is_empty()
        && let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    {
        rt.block_on(async {
            for s in &sandboxes {
                s.run().await;
            }
        });
    }
    if groups.is_empty() {
        return std::process::ExitCode::SUCCESS;
    }
    for pgid in &groups {
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if groups
            .iter()
            .all(|g| killpg(Pid::from_raw(*g), None).is_err())
        {
            return std::process::ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for pgid in &groups {
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
    }
    std::process::ExitCode::SUCCESS
}
