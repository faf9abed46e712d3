//! opencode-router: the chat bridge between messaging platforms and opencode.
//!
//! This first slice is the supervised service itself: it runs `serve [DIR] [--opencode-url URL]`,
//! binds its control/health API on 127.0.0.1 (`OPENCODE_ROUTER_HEALTH_PORT`), and answers
//! `GET /health` (and `GET /`) with 200 when opencode is reachable and healthy, 503 otherwise, in
//! the original's shape. The messaging adapters (Telegram, Slack) come with the chat-bridge issue;
//! until then every channel reports `false`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use base64::Engine;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use thiserror::Error;

/// Errors that end the router.
#[derive(Debug, Error)]
pub enum RouterError {
    #[error("cannot bind the health port 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("OPENCODE_ROUTER_HEALTH_PORT={value} is not a port number (1-65535)")]
    BadPort { value: String },
    #[error("no opencode URL: pass --opencode-url URL or set OPENCODE_URL")]
    NoOpencodeUrl,
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

#[derive(Debug, Parser)]
#[command(
    name = "opencode-router",
    version,
    about = "Chat bridge between messaging apps and opencode"
)]
struct Cli {
    #[command(subcommand)]
    command: RouterCommand,
}

#[derive(Debug, Subcommand)]
enum RouterCommand {
    /// Run headless until SIGINT/SIGTERM.
    #[command(alias = "start")]
    Serve {
        /// Workspace directory (sets OPENCODE_DIRECTORY).
        path: Option<String>,
        /// opencode URL (sets OPENCODE_URL).
        #[arg(long, env = "OPENCODE_URL")]
        opencode_url: Option<String>,
    },
    /// Check opencode's health once; exit 0 when healthy.
    Health {
        #[arg(long, env = "OPENCODE_URL")]
        opencode_url: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Settings of a running router.
#[derive(Debug, Clone)]
pub struct Config {
    pub opencode_url: String,
    pub directory: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub health_port: u16,
}

struct AppState {
    config: Config,
    http: reqwest::Client,
}

/// Runs opencode-router with these arguments (args[0] is the program name).
pub fn main_from_args(args: Vec<OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("opencode-router: {}", RouterError::Runtime(e));
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            RouterCommand::Serve { path, opencode_url } => {
                let config = config_from_env(opencode_url, path)?;
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.health_port))
                    .await
                    .map_err(|source| RouterError::Bind {
                        port: config.health_port,
                        source,
                    })?;
                serve(config, listener).await.map(|()| 0u8)
            }
            RouterCommand::Health { opencode_url, json } => {
                let config = config_from_env(opencode_url, None)?;
                let state = AppState {
                    http: client(),
                    config,
                };
                let (healthy, version) = opencode_health(&state).await;
                if json {
                    println!(
                        "{}",
                        json!({ "healthy": healthy, "opencodeUrl": state.config.opencode_url, "version": version,
                                "identities": { "telegram": [], "slack": [] } })
                    );
                } else {
                    println!("opencode {}: {}", state.config.opencode_url, if healthy { "healthy" } else { "unreachable" });
                }
                Ok(if healthy { 0 } else { 1 })
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("opencode-router: {e}");
            ExitCode::from(1)
        }
    }
}

fn config_from_env(url: Option<String>, path: Option<String>) -> Result<Config, RouterError> {
    let opencode_url = url
        .filter(|u| !u.trim().is_empty())
        .ok_or(RouterError::NoOpencodeUrl)?
        .trim_end_matches('/')
        .to_string();
    let health_port = match std::env::var("OPENCODE_ROUTER_HEALTH_PORT") {
        Ok(v) => v
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(RouterError::BadPort { value: v })?,
        Err(_) => 0,
    };
    let nonempty = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Ok(Config {
        opencode_url,
        directory: path.or_else(|| nonempty("OPENCODE_DIRECTORY")),
        username: nonempty("OPENCODE_SERVER_USERNAME"),
        password: nonempty("OPENCODE_SERVER_PASSWORD"),
        health_port,
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Serves the health/control API on `listener` until SIGINT/SIGTERM.
pub async fn serve(config: Config, listener: tokio::net::TcpListener) -> Result<(), RouterError> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let state = Arc::new(AppState {
        config,
        http: client(),
    });
    let app = Router::new()
        .route("/", get(health))
        .route("/health", get(health))
        .fallback(not_found)
        .with_state(state);
    if let Some(addr) = addr {
        println!("opencode-router health server listening on http://{addr}");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(RouterError::Serve)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
}

async fn opencode_health(state: &AppState) -> (bool, Option<String>) {
    let mut req = state
        .http
        .get(format!("{}/global/health", state.config.opencode_url));
    if let Some(password) = &state.config.password {
        let user = state.config.username.as_deref().unwrap_or("opencode");
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        req = req.header("Authorization", format!("Basic {token}"));
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => match resp.json::<Value>().await {
            Ok(body) => (
                body["healthy"] == Value::Bool(true),
                body["version"].as_str().map(str::to_string),
            ),
            Err(_) => (false, None),
        },
        _ => (false, None),
    }
}

async fn health(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let (healthy, version) = opencode_health(&state).await;
    let mut opencode = json!({ "url": state.config.opencode_url, "healthy": healthy });
    if let Some(v) = version {
        opencode["version"] = Value::String(v);
    }
    let body = json!({
        "ok": healthy,
        "opencode": opencode,
        "channels": { "telegram": false, "whatsapp": false, "slack": false },
        "config": { "groupsEnabled": false },
        "activity": { "dayStart": 0, "inboundToday": 0, "outboundToday": 0 },
        "agent": { "scope": "workspace", "path": state.config.directory, "loaded": false },
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "ok": false, "error": "Not found" })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start(opencode_url: String) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            opencode_url,
            directory: Some("/ws".into()),
            username: Some("u".into()),
            password: Some("p".into()),
            health_port: addr.port(),
        };
        tokio::spawn(serve(config, listener));
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn health_is_503_when_opencode_is_down_and_200_when_up() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let base = start(format!("http://127.0.0.1:{dead}")).await;
        let resp = reqwest::get(format!("{base}/health")).await.unwrap();
        assert_eq!(resp.status(), 503);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["opencode"]["healthy"], false);
        assert_eq!(body["channels"]["whatsapp"], false);

        // A stand-in opencode that checks the basic credentials.
        let fake = Router::new().route(
            "/global/health",
            get(|headers: axum::http::HeaderMap| async move {
                let ok = headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Basic dTpw");
                if ok {
                    (
                        StatusCode::OK,
                        Json(json!({"healthy": true, "version": "9.9.9"})),
                    )
                } else {
                    (StatusCode::UNAUTHORIZED, Json(json!({})))
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let oc = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, fake).await });
        let base = start(format!("http://{oc}")).await;
        let body: Value = reqwest::get(format!("{base}/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["ok"], true);
        assert_eq!(body["opencode"]["version"], "9.9.9");
        let resp = reqwest::get(format!("{base}/nope")).await.unwrap();
        assert_eq!(resp.status(), 404);
    }
}
