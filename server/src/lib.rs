//! openwork-server: the remote-control HTTP API of an openwork workspace.
//!
//! It sits next to one `opencode serve` and exposes workspaces, scoped tokens
//! and write approvals over HTTP/JSON, compatible with the original
//! TypeScript server's clients (the `openwork` orchestrator above all).
//!
//! The orchestrator binary calls [`main_from_args`]. Tests and embedders use
//! [`Server`] (or [`serve`]) with a [`Config`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), openwork_server::ServerError> {
//! let config = openwork_server::Config::new("client-token", "host-token");
//! let listener = openwork_server::bind("127.0.0.1", 0).await?;
//! openwork_server::serve(config, listener).await
//! # }
//! ```
//!
//! It implements `/health`, `/status`, `/whoami`, `/capabilities`,
//! `/workspaces`, `/approvals[/:id]`, `/tokens[/:id]`, the workspace routes
//! (config, audit, skills, commands, plugins, MCP, export/import, inbox and
//! artifacts, engine reload, session delete, events), file sessions, the
//! `/opencode` and `/opencode-router` proxies, `/runtime/*` and the `/w/:id`
//! mount prefix; the crate README lists the routes and where they differ from
//! the original.

pub mod approvals;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod config_file;
mod cors;
pub mod error;
pub mod files;
pub mod jsonc;
pub mod logging;
mod request_log;
mod routes;
mod server;
mod state;
pub mod token_store;
pub mod workspace;

use std::ffi::OsString;
use std::process::ExitCode;

pub use approvals::{ApprovalInput, Approvals, Decision, DenyReason, Reply};
pub use cli::{CliError, Invocation, Parsed, parse_args};
pub use config::{ApprovalMode, Config, LogFormat};
pub use error::{ApiError, ServerError};
pub use server::{Server, bind, serve, shutdown_signal};

/// The version reported by `/health` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs openwork-server with these command-line arguments (args[0] is the program name), returning the process exit code.
pub fn main_from_args(args: Vec<OsString>) -> ExitCode {
    let parsed = match parse_args(args) {
        Ok(parsed) => parsed,
        Err(CliError::Clap(err)) => {
            // Help goes to stdout with code 0, usage errors to stderr with 2.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
        Err(err) => {
            eprintln!("openwork-server: {err}");
            return ExitCode::from(2);
        }
    };
    for warning in &parsed.warnings {
        eprintln!("openwork-server: warning: {warning}");
    }
    let config = match parsed.invocation {
        Invocation::PrintVersion => {
            println!("{VERSION}");
            return ExitCode::SUCCESS;
        }
        Invocation::Run(config) => *config,
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("openwork-server: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    runtime.block_on(async move {
        let listener = bind(&config.host, config.port).await?;
        Server::new(config).serve(listener, shutdown_signal()).await
    })
}
