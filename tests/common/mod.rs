//! Shared helpers of the end-to-end tests: an isolated home/workspace per test, the real opencode
//! binary, the fault-injection double, and a guard that kills whatever a test started.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The real opencode binary: `OPENWORK_TEST_OPENCODE_BIN`, installed by `.ci/run` (or
/// `scripts/test.sh`) from the npm registry into a cache outside the repository.
pub fn opencode_bin() -> PathBuf {
    let path = std::env::var_os("OPENWORK_TEST_OPENCODE_BIN").map(PathBuf::from).expect(
        "OPENWORK_TEST_OPENCODE_BIN is not set: run the tests with scripts/test.sh, which installs \
         the pinned opencode and sets it",
    );
    assert!(
        path.is_file(),
        "OPENWORK_TEST_OPENCODE_BIN={} does not exist",
        path.display()
    );
    path
}

pub fn openwork_bin() -> &'static str {
    env!("CARGO_BIN_EXE_openwork")
}

/// An isolated environment: temp HOME/XDG dirs, a workspace and a data dir.
pub struct TestEnv {
    pub root: tempfile::TempDir,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let root = tempfile::tempdir().unwrap();
        for d in ["home", "ws", "data", "state"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        TestEnv { root }
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.root.path().join(sub)
    }

    pub fn workspace(&self) -> PathBuf {
        self.path("ws")
    }

    /// `openwork <args>` with the isolated environment and opencode's offline switches.
    pub fn openwork(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(openwork_bin());
        cmd.args(args);
        let home = self.path("home");
        // HOME/XDG under the private home and opencode's offline switches (npm registry on
        // 127.0.0.1:9 so its plugin install fails fast): one list, shared with the testkit.
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(openwork_testkit::opencode::isolated_env(&home))
            .env("OPENWORK_DATA_DIR", self.path("data"))
            .env("FAKE_STATE", self.path("state"))
            // Tests run in parallel: do not all compete for the default port 8787.
            .env("OPENWORK_PORT", free_port().to_string());
        cmd
    }

    /// `openwork serve` on the workspace with the real opencode and the bundled server/router.
    pub fn serve_real(&self, extra: &[&str]) -> Command {
        self.serve_with_opencode(&opencode_bin(), extra)
    }

    /// `openwork serve` on the workspace with `opencode` as an external opencode binary.
    pub fn serve_with_opencode(&self, opencode: &Path, extra: &[&str]) -> Command {
        let ws = self.workspace();
        let oc = opencode.to_path_buf();
        let mut args = vec![
            "serve",
            "--workspace",
            ws.to_str().unwrap(),
            "--allow-external",
            "--opencode-bin",
            oc.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.openwork(&refs)
    }

    /// A wrapper script that runs the fault-injection double in `role` and `mode`.
    pub fn fake(&self, role: &str, mode: &str) -> PathBuf {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_service.py");
        let path = self.path(&format!("fake-{role}-{mode}.sh"));
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nFAKE_ROLE={role} FAKE_MODE={mode} exec python3 {} \"$@\"\n",
                script.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// pids recorded by the double (`role pid` lines, plus `grandchild pid`).
    pub fn fake_pids(&self) -> Vec<u32> {
        let text = std::fs::read_to_string(self.path("state/pids.txt")).unwrap_or_default();
        text.split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    }
}

/// A running orchestrator whose stdout lines are collected; killed (group) on drop.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {line}"));
            }
        });
        Running {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a line containing `needle`; panics with everything seen otherwise.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line containing {needle:?} within {limit:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits (bounded) for exit; returns the code (None = killed by a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Drain what is left for diagnostics.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(l);
                }
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "orchestrator did not exit within {limit:?}; output:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn output(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for pid in descendants(self.child.id()) {
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that is free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// All descendants of `pid` (by walking /proc's parent links).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                // pid (comm) state ppid ...
                if let Some(rest) = stat.rsplit(')').next() {
                    let fields: Vec<&str> = rest.split_whitespace().collect();
                    if let Some(ppid) = fields.get(1).and_then(|f| f.parse().ok()) {
                        parents.push((p, ppid));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(cur) = frontier.pop() {
        for (p, pp) in &parents {
            if *pp == cur && !out.contains(p) {
                out.push(*p);
                frontier.push(*p);
            }
        }
    }
    out
}

/// Removes a test's Docker sandbox whatever happens: the agent's container and, of a gated run,
/// the gate and the run's networks.
pub struct ContainerGuard(pub String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let gate = format!("{}-gate", self.0);
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.0, &gate])
            .output();
        for suffix in ["internal", "egress"] {
            let _ = Command::new("docker")
                .args(["network", "rm", &format!("{}-{suffix}", self.0)])
                .output();
        }
    }
}

/// Whether the engine has a container with exactly this name (running or not).
pub fn container_exists(name: &str) -> bool {
    let out = Command::new("docker")
        .args(["ps", "-a", "-q", "--filter", &format!("name=^{name}$")])
        .output()
        .unwrap();
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

/// stdout and stderr of a finished command, together (for error-text assertions).
pub fn all_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Parses a JSON file (a detached run's `state.json` or `credentials.json`).
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The service pids (= process groups) recorded in a detached run's `state.json`.
pub fn detached_pids(run_dir: &Path) -> Vec<u32> {
    read_json(&run_dir.join("state.json"))["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["pid"].as_u64().map(|p| p as u32))
        .collect()
}

/// SIGTERMs each process group and waits (bounded) until all are gone; returns survivors.
pub fn stop_groups(pids: &[u32]) -> Vec<u32> {
    for pid in pids {
        unsafe {
            libc::kill(-(*pid as i32), libc::SIGTERM);
        }
    }
    wait_all_dead(pids, Duration::from_secs(15))
}

/// SIGKILLs the run's watchdog (`openwork __watchdog`), as if the whole process tree had been
/// killed at once (OOM killer, a crash), so nothing is cleaned up.
pub fn kill_watchdog(orchestrator: u32) {
    for pid in descendants(orchestrator) {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains("__watchdog") {
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// Whether `pid` is alive (a zombie counts as dead).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits (bounded) until none of `pids` is alive; returns the survivors.
pub fn wait_all_dead(pids: &[u32], limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
