//! The running service: the control token, the adapters of every identity (restarted when the
//! config changes), the opencode event follower and the control API, stopped together on
//! SIGINT/SIGTERM.
//!
//! Threats handled here: the control token leaking (taken from `OPENCODE_ROUTER_TOKEN`, or made
//! here and written 0600 to `<data>/control-token`; never logged, never on argv), the API
//! listening beyond loopback (it binds 127.0.0.1 only), and a crash loop when opencode or a chat
//! service is down (every loop retries with back-off inside the process and reports in
//! `/health`; nothing here exits because a peer is unreachable).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::task::JoinHandle;

use crate::chat::{IdentityKey, IdentityState, Sender};
use crate::config::{ConfigFile, Env, Settings};
use crate::pipeline::{App, Identities};
use crate::slack::SlackApi;
use crate::telegram::TelegramApi;

/// Errors that stop `serve` from starting.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error("cannot bind the control port 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// The app plus what drives it.
pub struct Service {
    pub app: Arc<App>,
    /// Bearer token of the control API.
    pub token: String,
    env: Box<dyn Env + Send + Sync>,
    tasks: Mutex<HashMap<IdentityKey, JoinHandle<()>>>,
}

impl Service {
    pub fn new(app: Arc<App>, token: String, env: Box<dyn Env + Send + Sync>) -> Service {
        Service {
            app,
            token,
            env,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    /// Re-reads the identities from the config file and env, restarting every adapter.
    pub fn reload(&self) {
        let file = match ConfigFile::load(&self.app.settings.paths.config) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the config; keeping the running identities");
                return;
            }
        };
        let (telegram, slack) = crate::config::identities(self.env.as_ref(), &file);
        self.apply(Identities { telegram, slack });
    }

    /// Starts an adapter for every enabled identity, stopping the previous ones.
    pub fn apply(&self, ids: Identities) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for (key, task) in tasks.drain() {
            task.abort();
            self.app.chats.remove(&key);
        }
        let s = &self.app.settings;
        for bot in &ids.telegram {
            let key: IdentityKey = ("telegram".into(), bot.id.clone());
            if !bot.enabled {
                self.app.chats.set_state(&key, IdentityState::Disabled);
                continue;
            }
            let api = TelegramApi::new(&s.telegram_api, &bot.token);
            self.app
                .chats
                .set_sender(&key, Some(Sender::Telegram(api.clone())));
            self.app.chats.set_state(&key, IdentityState::Starting);
            let task = tokio::spawn(crate::telegram::run(self.app.clone(), bot.id.clone(), api));
            tasks.insert(key, task);
        }
        for a in &ids.slack {
            let key: IdentityKey = ("slack".into(), a.id.clone());
            if !a.enabled {
                self.app.chats.set_state(&key, IdentityState::Disabled);
                continue;
            }
            let api = SlackApi::new(&s.slack_api, &a.bot_token, &a.app_token);
            self.app
                .chats
                .set_sender(&key, Some(Sender::Slack(api.clone())));
            self.app.chats.set_state(&key, IdentityState::Starting);
            let task = tokio::spawn(crate::slack::run(self.app.clone(), a.id.clone(), api));
            tasks.insert(key, task);
        }
        *self
            .app
            .identities
            .write()
            .unwrap_or_else(|p| p.into_inner()) = ids;
    }

    fn stop(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for (_, task) in tasks.drain() {
            task.abort();
        }
    }
}

/// The control token: `OPENCODE_ROUTER_TOKEN`, else the one in `<data>/control-token`, else a
/// new one written there (0600).
pub fn control_token(env: &dyn Env, data_dir: &std::path::Path) -> Result<String, ServeError> {
    if let Some(t) = env.get("OPENCODE_ROUTER_TOKEN") {
        return Ok(t.trim().to_string());
    }
    let path = data_dir.join("control-token");
    if let Ok(t) = std::fs::read_to_string(&path)
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    crate::config::write_private(&path, token.as_bytes())
        .map_err(|source| ServeError::Write { path, source })?;
    Ok(token)
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Runs the router on `listener` until `shutdown` resolves.
pub async fn run(
    svc: Arc<Service>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let port_file = svc
        .app
        .settings
        .paths
        .config
        .parent()
        .map(|d| d.join("port"));
    if let Some(p) = &port_file {
        let _ = crate::config::write_private(p, port.to_string().as_bytes());
    }
    svc.reload();
    let events = tokio::spawn(crate::permissions::run_events(svc.app.clone()));
    // The CLI and openwork-server edit the config file: follow it.
    let watcher = {
        let svc = svc.clone();
        tokio::spawn(async move {
            let path = svc.app.settings.paths.config.clone();
            let mut last = modified(&path);
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = modified(&path);
                if now != last {
                    last = now;
                    tracing::info!("config file changed; reloading identities");
                    svc.reload();
                }
            }
        })
    };
    println!("opencode-router control API listening on http://127.0.0.1:{port}");
    let result = axum::serve(listener, crate::control::router(svc.clone()))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve);
    events.abort();
    watcher.abort();
    svc.stop();
    if let Some(p) = &port_file {
        let _ = std::fs::remove_file(p);
    }
    result
}

/// Builds the service from resolved settings.
pub fn build(
    settings: Settings,
    env: Box<dyn Env + Send + Sync>,
) -> Result<Arc<Service>, crate::RouterError> {
    let store = crate::store::Store::open(&settings.paths.db)?;
    let token = control_token(env.as_ref(), &settings.paths.data_dir)?;
    let app = Arc::new(App::new(settings, store, Identities::default()));
    Ok(Arc::new(Service::new(app, token, env)))
}
