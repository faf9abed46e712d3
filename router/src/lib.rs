//! opencode-router: the chat bridge between messaging apps (Telegram, Slack) and opencode.
//!
//! Each chat becomes an opencode session in a directory of the workspace; the agent's replies
//! go back to the chat; the host can send messages out. Safe by default: new bots are private
//! (pairing code), permission prompts are asked in the chat (never auto-approved), and the
//! control API on loopback needs a bearer token, sends no CORS and refuses non-loopback hosts.
//!
//! Modules, one concern each: [`config`] (file + env), [`store`] (SQLite), [`opencode`] (HTTP
//! client and events), [`telegram`] and [`slack`] (adapters), [`chat`] (what adapters share),
//! [`pipeline`] (inbound message → reply), [`commands`] (slash commands), [`permissions`]
//! (prompts), [`outbound`] (`send`), [`control`] (HTTP API), [`service`] (wiring), [`cli`].

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use thiserror::Error;

pub mod chat;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod opencode;
pub mod outbound;
pub mod pairing;
pub mod permissions;
pub mod pipeline;
pub mod service;
pub mod slack;
pub mod store;
pub mod telegram;

/// Errors that end a router command.
#[derive(Debug, Error)]
pub enum RouterError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Serve(#[from] service::ServeError),
    #[error(transparent)]
    Send(#[from] outbound::SendError),
    #[error("directory refused: {0}")]
    Directory(pipeline::DirError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs opencode-router with these arguments (args[0] is the program name).
pub fn main_from_args(args: Vec<OsString>) -> ExitCode {
    let cli = match cli::Cli::try_parse_from(args) {
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
            cli::Command::Serve { path, opencode_url } => serve(opencode_url, path).await,
            other => cli::run(cli.json, other).await,
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

fn init_logging() {
    let _ = tracing_subscriber_init();
}

/// Logs go to stderr, filtered by `LOG_LEVEL` (default info). Tokens never reach a log line:
/// no module logs a URL that holds one, nor the control token.
fn tracing_subscriber_init() -> Result<(), ()> {
    use tracing_subscriber::EnvFilter;
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::new(format!("opencode_router={level}")))
        .try_init()
        .map_err(|_| ())
}

async fn serve(opencode_url: Option<String>, path: Option<String>) -> Result<u8, RouterError> {
    init_logging();
    let env = config::ProcessEnv;
    let paths = config::Paths::resolve(&env)?;
    let file = config::ConfigFile::load(&paths.config)?;
    let settings = config::Settings::resolve(&env, &file, paths, opencode_url, path)?;
    let port = settings.health_port;
    let svc = service::build(settings, Box::new(config::ProcessEnv))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| service::ServeError::Bind { port, source })?;
    service::run(svc, listener, shutdown_signal()).await?;
    Ok(0)
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
