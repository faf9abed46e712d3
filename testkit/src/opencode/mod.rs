//! The real `opencode serve`, started for a test: isolated from this machine's opencode setup
//! and kept off the internet.
//!
//! What it defends against: a test reading or changing the developer's own opencode state
//! (config, auth, sessions, plugins), and a test that silently depends on the network. Every
//! start gets a private `HOME` and `XDG_{CONFIG,DATA,CACHE,STATE}_HOME` under the directory the
//! caller gives (use [`IsolatedDirs`]), an environment cleared of everything but `PATH`, and the
//! offline switches of the reference notes: no models.dev fetch, no autoupdate, no LSP
//! downloads, no sharing, no Claude Code or external skills, and the npm registry pointed at
//! `127.0.0.1:9` so opencode's background plugin install fails at once instead of reaching out.
//! opencode binds `127.0.0.1` only. What it leaves open: opencode's tools run as this user
//! with the full filesystem visible (this is a test fixture, not a sandbox).
//!
//! The process runs in its own process group; dropping [`Opencode`] kills the group.

mod client;
mod error;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub use client::{OpencodeClient, Reply};
pub use error::OpencodeError;

use crate::config::OpencodeConfig;
use crate::record::lock;

/// The variable naming the opencode binary; `scripts/test.sh` sets it to the pinned version it
/// installs under `~/.cache/openwork-test/opencode-<version>/opencode`.
pub const OPENCODE_BIN_ENV: &str = "OPENWORK_TEST_OPENCODE_BIN";

/// How many of opencode's last log lines are kept for error reports.
const LOG_LINES: usize = 400;

/// The opencode binary named by [`OPENCODE_BIN_ENV`].
pub fn opencode_bin() -> Result<PathBuf, OpencodeError> {
    let path = std::env::var_os(OPENCODE_BIN_ENV)
        .map(PathBuf::from)
        .ok_or(OpencodeError::BinNotSet)?;
    if !path.is_file() {
        return Err(OpencodeError::BinMissing { path });
    }
    Ok(path)
}

/// The environment of an isolated, offline opencode whose home is `home`: everything an
/// opencode start gets besides `PATH` (see the module docs for why each is there).
pub fn isolated_env(home: &Path) -> Vec<(&'static str, OsString)> {
    let under = |sub: &str| home.join(sub).into_os_string();
    vec![
        ("HOME", home.as_os_str().to_owned()),
        ("XDG_CONFIG_HOME", under(".config")),
        ("XDG_DATA_HOME", under(".local/share")),
        ("XDG_CACHE_HOME", under(".cache")),
        ("XDG_STATE_HOME", under(".local/state")),
        ("OPENCODE_DISABLE_MODELS_FETCH", "1".into()),
        ("OPENCODE_DISABLE_AUTOUPDATE", "1".into()),
        ("OPENCODE_DISABLE_LSP_DOWNLOAD", "1".into()),
        ("OPENCODE_DISABLE_SHARE", "1".into()),
        ("OPENCODE_DISABLE_CLAUDE_CODE", "1".into()),
        ("OPENCODE_DISABLE_EXTERNAL_SKILLS", "1".into()),
        ("npm_config_registry", "http://127.0.0.1:9".into()),
    ]
}

/// A temporary directory holding a `home/` and a `ws/` (the workspace); removed on drop.
pub struct IsolatedDirs {
    root: tempfile::TempDir,
}

impl IsolatedDirs {
    /// Creates the directories.
    pub fn new() -> std::io::Result<IsolatedDirs> {
        let root = tempfile::Builder::new()
            .prefix("openwork-testkit-")
            .tempdir()?;
        std::fs::create_dir(root.path().join("home"))?;
        std::fs::create_dir(root.path().join("ws"))?;
        Ok(IsolatedDirs { root })
    }

    /// The root of both.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The private home.
    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// The workspace (opencode's working directory).
    pub fn workspace(&self) -> PathBuf {
        self.root.path().join("ws")
    }
}

/// How to start opencode; see [`Opencode::builder`].
#[derive(Clone, Debug)]
pub struct OpencodeBuilder {
    bin: Option<PathBuf>,
    workspace: PathBuf,
    home: PathBuf,
    port: Option<u16>,
    config_content: Option<String>,
    password: Option<String>,
    log_level: String,
    envs: Vec<(OsString, OsString)>,
    ready_timeout: Duration,
}

impl OpencodeBuilder {
    /// The binary to run (default: [`opencode_bin`]).
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = Some(bin.into());
        self
    }

    /// The port (default: a free one, chosen just before the start).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The config, passed as `OPENCODE_CONFIG_CONTENT` (nothing is written to the workspace).
    pub fn config(self, config: &OpencodeConfig) -> Self {
        self.config_content(config.to_content())
    }

    /// Raw `OPENCODE_CONFIG_CONTENT`.
    pub fn config_content(mut self, content: impl Into<String>) -> Self {
        self.config_content = Some(content.into());
        self
    }

    /// Turns on opencode's basic auth (user `opencode`); the client sends it.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// `--log-level` (`DEBUG`, `INFO`, `WARN`, `ERROR`; default `INFO`). The logs go to
    /// [`Opencode::logs`].
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.to_string();
        self
    }

    /// One more environment variable (applied last, so it can override the isolated env).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// How long to wait for the ready line (default 60 s: a bound, not an expectation).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The command this builder runs (for inspection; [`OpencodeBuilder::spawn`] runs it).
    pub fn command(&self, bin: &Path, port: u16) -> Command {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--hostname", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--print-logs", "--log-level", &self.log_level])
            .current_dir(&self.workspace)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(isolated_env(&self.home));
        if let Some(content) = &self.config_content {
            cmd.env("OPENCODE_CONFIG_CONTENT", content);
        }
        if let Some(password) = &self.password {
            cmd.env("OPENCODE_SERVER_PASSWORD", password);
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts opencode and waits for its ready line (requests sent before it can hang: see the
    /// reference notes, §1.3).
    pub async fn spawn(self) -> Result<Opencode, OpencodeError> {
        let bin = match &self.bin {
            Some(bin) => bin.clone(),
            None => opencode_bin()?,
        };
        let port = match self.port {
            Some(port) => port,
            None => free_port().map_err(|source| OpencodeError::Spawn {
                bin: bin.clone(),
                source,
            })?,
        };
        let mut cmd = self.command(&bin, port);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| OpencodeError::Spawn {
            bin: bin.clone(),
            source,
        })?;
        let logs = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    push_log(&logs, line);
                }
            });
        }
        let stdout = child.stdout.take();
        let mut group = Group {
            pid: child.id(),
            child,
        };
        let ready = wait_ready(stdout, logs.clone());
        let joined = |logs: &Mutex<VecDeque<String>>| Vec::from(lock(logs).clone()).join("\n");
        match tokio::time::timeout(self.ready_timeout, ready).await {
            Ok(Some(url)) => Ok(Opencode {
                client: OpencodeClient::new(&url, self.password.as_deref())?,
                group,
                logs,
            }),
            Ok(None) => {
                let status = group.child.wait().await.ok();
                Err(OpencodeError::Exited {
                    bin,
                    status: status.map_or_else(|| "unknown".into(), |s| s.to_string()),
                    logs: joined(&logs),
                })
            }
            Err(_) => Err(OpencodeError::NotReady {
                bin,
                waited: self.ready_timeout,
                logs: joined(&logs),
            }),
        }
    }
}

fn push_log(logs: &Mutex<VecDeque<String>>, line: String) {
    let mut logs = lock(logs);
    if logs.len() == LOG_LINES {
        logs.pop_front();
    }
    logs.push_back(line);
}

/// Reads stdout until `opencode server listening on URL`; the URL, or `None` at EOF. Later
/// stdout lines are kept with the logs.
async fn wait_ready(
    stdout: Option<tokio::process::ChildStdout>,
    logs: Arc<Mutex<VecDeque<String>>>,
) -> Option<String> {
    let mut lines = BufReader::new(stdout?).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(url) = line.strip_prefix("opencode server listening on ") {
            let url = url.trim().to_string();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    push_log(&logs, format!("stdout: {line}"));
                }
            });
            return Some(url);
        }
        push_log(&logs, format!("stdout: {line}"));
    }
    None
}

/// A port free on 127.0.0.1 right now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A running `opencode serve`; its process group is killed on drop.
pub struct Opencode {
    group: Group,
    client: OpencodeClient,
    logs: Arc<Mutex<VecDeque<String>>>,
}

/// The child and its process group, killed together on drop (also when the start fails).
struct Group {
    child: Child,
    pid: Option<u32>,
}

impl Opencode {
    /// A builder for opencode in `workspace` with its private `home`.
    pub fn builder(workspace: impl Into<PathBuf>, home: impl Into<PathBuf>) -> OpencodeBuilder {
        OpencodeBuilder {
            bin: None,
            workspace: workspace.into(),
            home: home.into(),
            port: None,
            config_content: None,
            password: None,
            log_level: "INFO".into(),
            envs: Vec::new(),
            ready_timeout: Duration::from_secs(60),
        }
    }

    /// The URL from the ready line, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        self.client.url()
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> Option<u32> {
        self.group.pid
    }

    /// A client of this server's HTTP API (with its password, if one was set).
    pub fn client(&self) -> OpencodeClient {
        self.client.clone()
    }

    /// opencode's last log lines (stderr, with `--print-logs`), oldest first.
    pub fn logs(&self) -> Vec<String> {
        lock(&self.logs).iter().cloned().collect()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) on the process group this child leads (process_group(0)); no
            // memory is involved.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_isolated_offline_and_on_loopback() {
        let builder = Opencode::builder("/w", "/h")
            .config_content("{}")
            .env("EXTRA", "1");
        let cmd = builder.command(Path::new("/bin/opencode"), 4242);
        let std = cmd.as_std();
        let args: Vec<_> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "serve",
                "--hostname",
                "127.0.0.1",
                "--port",
                "4242",
                "--print-logs",
                "--log-level",
                "INFO"
            ]
        );
        assert_eq!(std.get_current_dir(), Some(Path::new("/w")));
        let envs: std::collections::BTreeMap<String, String> = std
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        assert_eq!(envs["HOME"], "/h");
        assert_eq!(envs["XDG_CONFIG_HOME"], "/h/.config");
        assert_eq!(envs["OPENCODE_DISABLE_MODELS_FETCH"], "1");
        assert_eq!(envs["npm_config_registry"], "http://127.0.0.1:9");
        assert_eq!(envs["OPENCODE_CONFIG_CONTENT"], "{}");
        assert_eq!(envs["EXTRA"], "1");
        assert!(!envs.contains_key("OPENCODE_SERVER_PASSWORD"));
        // Everything else of this process's environment is cleared.
        let allowed = [
            "PATH",
            "EXTRA",
            "OPENCODE_CONFIG_CONTENT",
            "npm_config_registry",
        ];
        assert!(envs.keys().all(|k| allowed.contains(&k.as_str())
            || k == "HOME"
            || k.starts_with("XDG_")
            || k.starts_with("OPENCODE_DISABLE_")));
    }
}
