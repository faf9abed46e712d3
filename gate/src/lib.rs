//! The egress gate of openwork's sandbox (`openwork gate`).
//!
//! The agent's container sits alone on an internal network; this gate is its only way out and
//! the host's only way in. It runs four kinds of listener: an HTTP proxy with a `host:port`
//! policy ([`proxy`]), a credential-injecting reverse proxy for model providers ([`inject`]), a
//! bearer-token control API for the host ([`control`]) and plain TCP forwards to opencode
//! ([`forward`]). The policy itself is pure ([`policy`]); [`Gate`] holds the live state.
//!
//! The contract (policy schema, control API, flags) is in this crate's `README.md`.
//!
//! ```no_run
//! # async fn example() -> Result<(), openwork_gate::GateError> {
//! let config = openwork_gate::GateConfig::from_args(
//!     ["--proxy", "0.0.0.0:3128", "--control", "0.0.0.0:3130"],
//!     |name| std::env::var(name).ok(),
//! )?;
//! openwork_gate::run(config).await
//! # }
//! ```

pub mod audit;
pub mod config;
pub mod control;
pub mod forward;
pub mod inject;
pub mod policy;
pub mod proxy;
pub mod secret;
pub mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use audit::{AuditRecord, Kind};
pub use config::{ConfigError, Forward, GateConfig, POLICY_JSON_ENV, TOKEN_ENV};
pub use inject::{Credential, KeyHeader, opencode_config_fragment, placeholder_key};
pub use policy::entry::{DEFAULT_PORT, Entry, HostPattern};
pub use policy::error::{EntryError, PolicyError, PrivateAllowError, Problem, SchemaProblem};
pub use policy::file::{
    EXAMPLE_POLICY, Mode, POLICY_ENV, POLICY_KEYS, PolicyFile, default_policy_path, policy_path,
};
pub use policy::{Decision, Extras, Origin, Policy, Reason, Rule, Verdict};
pub use secret::Secret;
pub use state::{Gate, Resolver};

/// Why the gate stopped or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// Bad arguments or environment.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listen address cannot be bound.
    #[error("openwork gate: cannot listen on {addr} ({role}): {source}")]
    Bind {
        role: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    /// The upstream HTTP client cannot be built (TLS roots).
    #[error("openwork gate: cannot build the upstream HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A listener failed while running.
    #[error("openwork gate: the {role} listener failed: {source}")]
    Listener {
        role: &'static str,
        source: io::Error,
    },
}

/// A started gate: its state, the addresses it actually bound, and its listener tasks (aborted
/// when this is dropped).
pub struct RunningGate {
    /// The shared state (policy, credentials, audit).
    pub gate: Arc<Gate>,
    /// The proxy's bound address.
    pub proxy: Option<SocketAddr>,
    /// The injection listener's bound address.
    pub inject: Option<SocketAddr>,
    /// The control API's bound address.
    pub control: SocketAddr,
    /// The forwards' bound addresses, in `--forward` order.
    pub forwards: Vec<SocketAddr>,
    tasks: JoinSet<(&'static str, io::Result<()>)>,
}

impl RunningGate {
    /// Waits until a listener fails (they do not end otherwise).
    pub async fn wait(mut self) -> Result<(), GateError> {
        match self.tasks.join_next().await {
            Some(Ok((role, Err(source)))) => Err(GateError::Listener { role, source }),
            Some(Ok((role, Ok(())))) => Err(GateError::Listener {
                role,
                source: io::Error::other("stopped"),
            }),
            Some(Err(e)) => Err(GateError::Listener {
                role: "task",
                source: io::Error::other(e.to_string()),
            }),
            None => Ok(()),
        }
    }
}

/// Binds every listener of `config` and starts serving; returns once all are bound.
pub async fn start(config: GateConfig) -> Result<RunningGate, GateError> {
    let policy = match &config.policy_json {
        Some(json) => Policy::build(
            &PolicyFile::from_json(json, POLICY_JSON_ENV).map_err(ConfigError::from)?,
            &Extras::default(),
        ),
        None => Policy::builtin(),
    };
    let gate = Gate::new(
        policy,
        config.resolver.clone(),
        config.unsafe_allow_loopback_for_tests,
    );
    let mut tasks = JoinSet::new();

    let control_listener = bind("control", config.control).await?;
    let control = local_addr("control", &control_listener)?;
    let app = control::router(gate.clone(), config.token.clone());
    tasks.spawn(async move { ("control", axum::serve(control_listener, app).await) });

    let mut proxy = None;
    if let Some(addr) = config.proxy {
        let listener = bind("proxy", addr).await?;
        proxy = Some(local_addr("proxy", &listener)?);
        let gate = gate.clone();
        tasks.spawn(async move { ("proxy", proxy::serve(listener, gate).await) });
    }
    let mut inject = None;
    if let Some(addr) = config.inject {
        let listener = bind("inject", addr).await?;
        inject = Some(local_addr("inject", &listener)?);
        let app = inject::router(inject::InjectState {
            gate: gate.clone(),
            client: inject::client(gate.clone())?,
        });
        tasks.spawn(async move { ("inject", axum::serve(listener, app).await) });
    }
    let mut forwards = Vec::new();
    for fwd in &config.forwards {
        let listener = bind("forward", fwd.listen).await?;
        forwards.push(local_addr("forward", &listener)?);
        let target = fwd.target.clone();
        tasks.spawn(async move { ("forward", forward::serve(listener, target).await) });
    }
    tracing::info!(?proxy, ?inject, %control, ?forwards, "openwork gate listening");
    Ok(RunningGate {
        gate,
        proxy,
        inject,
        control,
        forwards,
        tasks,
    })
}

/// What `openwork gate` calls: start, then serve until a listener fails or SIGTERM/SIGINT.
pub async fn run(config: GateConfig) -> Result<(), GateError> {
    let running = start(config).await?;
    tokio::select! {
        result = running.wait() => result,
        () = shutdown_signal() => Ok(()),
    }
}

/// The `openwork gate …` role: `args` are the arguments after `gate`; the token and initial
/// policy come from this process's environment. Exit 2 for bad arguments, 1 for a failure.
pub fn main_from_args(args: Vec<std::ffi::OsString>) -> std::process::ExitCode {
    use std::process::ExitCode;
    let args: Option<Vec<String>> = args.into_iter().map(|a| a.into_string().ok()).collect();
    let Some(args) = args else {
        eprintln!("openwork gate: arguments must be UTF-8");
        return ExitCode::from(2);
    };
    let config = match GateConfig::from_args(args, |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("openwork gate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn bind(role: &'static str, addr: SocketAddr) -> Result<TcpListener, GateError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GateError::Bind { role, addr, source })
}

fn local_addr(role: &'static str, listener: &TcpListener) -> Result<SocketAddr, GateError> {
    listener
        .local_addr()
        .map_err(|source| GateError::Listener { role, source })
}
