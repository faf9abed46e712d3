//! Shared helpers of the router's end-to-end tests: the real opencode with the stand-in model as
//! its provider, the router run in-process against stand-ins of Telegram and Slack, and guards
//! that stop what a test started.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod model;
pub mod slack;
pub mod telegram;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opencode_router::config::{ConfigFile, Paths, Settings};
use opencode_router::service::{self, Service};

/// The real opencode binary (`OPENWORK_TEST_OPENCODE_BIN`), or `None` to skip.
pub fn opencode_bin() -> Option<PathBuf> {
    let p = std::env::var_os("OPENWORK_TEST_OPENCODE_BIN").map(PathBuf::from)?;
    p.is_file().then_some(p)
}

/// A real `opencode serve` on loopback, offline, with the stand-in model as its only provider.
pub struct Opencode {
    child: Child,
    pub url: String,
    _home: tempfile::TempDir,
}

impl Drop for Opencode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Opencode {
    pub async fn start(bin: &Path, workspace: &Path, model_base: &str) -> Opencode {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let config = serde_json::json!({
            "$schema": "https://opencode.ai/config.json",
            "model": "standin/test-model",
            "small_model": "standin/test-model",
            "autoupdate": false,
            "share": "disabled",
            "provider": {"standin": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Stand-in",
                "options": {"baseURL": model_base, "apiKey": "test"},
                "models": {"test-model": {"name": "Test model", "tool_call": true}}
            }}
        });
        let mut child = Command::new(bin)
            .args(["serve", "--hostname", "127.0.0.1", "--port", "0"])
            .current_dir(workspace)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", h)
            .env("XDG_CONFIG_HOME", h.join(".config"))
            .env("XDG_DATA_HOME", h.join(".local/share"))
            .env("XDG_CACHE_HOME", h.join(".cache"))
            .env("XDG_STATE_HOME", h.join(".local/state"))
            .env("OPENCODE_DISABLE_MODELS_FETCH", "1")
            .env("OPENCODE_DISABLE_AUTOUPDATE", "1")
            .env("OPENCODE_DISABLE_LSP_DOWNLOAD", "1")
            .env("OPENCODE_DISABLE_SHARE", "1")
            .env("OPENCODE_DISABLE_CLAUDE_CODE", "1")
            .env("OPENCODE_DISABLE_EXTERNAL_SKILLS", "1")
            .env("npm_config_registry", "http://127.0.0.1:9")
            .env("OPENCODE_CONFIG_CONTENT", config.to_string())
            .env("OPENCODE_SERVER_PASSWORD", "test-pw")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(u) = line.strip_prefix("opencode server listening on ") {
                    let _ = tx.send(u.trim().to_string());
                }
            }
        });
        let url = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .unwrap()
            .expect("opencode did not print its ready line");
        let oc = Opencode {
            child,
            url,
            _home: home,
        };
        let client = opencode_router::opencode::Opencode::new(&oc.url, None, Some("test-pw"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !client.health().await.healthy {
            assert!(Instant::now() < deadline, "opencode never became healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        oc
    }
}

/// A router running in this process; `stop` shuts it down like SIGTERM would.
pub struct Router {
    pub port: u16,
    pub token: String,
    pub svc: Arc<Service>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Router {
    pub async fn start(env: BTreeMap<String, String>) -> Router {
        let paths = Paths::resolve(&env).unwrap();
        let file = ConfigFile::load(&paths.config).unwrap();
        let settings = Settings::resolve(&env, &file, paths, None, None).unwrap();
        let svc = service::build(settings, Box::new(env)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let svc = svc.clone();
            async move {
                service::run(svc, listener, async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            }
        });
        Router {
            port,
            token: svc.token.clone(),
            svc,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Waits until `/health` shows `identity` of `channel` in `state`.
    pub async fn wait_state(
        &self,
        channel: &str,
        identity: &str,
        state: &str,
        limit: Duration,
    ) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let v: serde_json::Value = reqwest::get(self.url("/health"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let found = v["identities"][channel]
                .as_array()
                .and_then(|a| a.iter().find(|i| i["id"] == identity).cloned());
            if let Some(i) = &found
                && i["state"] == state
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{channel}/{identity} never reached {state}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The env of a router test: data dir, workspace root, opencode, stand-in API bases.
pub fn router_env(data: &Path, root: &Path, opencode_url: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert(
        "OPENCODE_ROUTER_DATA_DIR".into(),
        data.display().to_string(),
    );
    env.insert("OPENCODE_DIRECTORY".into(), root.display().to_string());
    env.insert("OPENCODE_URL".into(), opencode_url.into());
    env.insert("OPENCODE_SERVER_PASSWORD".into(), "test-pw".into());
    env.insert("OPENCODE_ROUTER_TOKEN".into(), "test-control-token".into());
    env.insert("OPENCODE_ROUTER_TELEGRAM_POLL_TIMEOUT".into(), "2".into());
    env
}
