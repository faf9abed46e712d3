//! Starting and stopping the HTTP server: binding, the startup lines, serving
//! until a shutdown signal, and draining pending approvals on the way out.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;

use crate::approvals::Approvals;
use crate::auth::{Authenticator, now_ms};
use crate::config::{Config, LogFormat, TokenSource};
use crate::error::ServerError;
use crate::logging::{LogSink, Logger};
use crate::state::AppState;

/// A configured server that has not started serving yet. Gives tests and
/// embedders handles to the approvals engine before requests arrive.
#[derive(Debug)]
pub struct Server {
    config: Config,
    approvals: Approvals,
    auth: Arc<Authenticator>,
    logger: Logger,
}

impl Server {
    /// A server logging to stdout.
    pub fn new(config: Config) -> Self {
        let logger = Logger::new(config.log_format, config.run_id.clone(), LogSink::Stdout);
        Self::with_logger(config, logger)
    }

    /// A server logging through `logger`.
    pub fn with_logger(config: Config, logger: Logger) -> Self {
        let approvals = Approvals::new(config.approval);
        let auth = Arc::new(Authenticator::new(&config.client_token, &config.host_token));
        Self {
            config,
            approvals,
            auth,
            logger,
        }
    }

    /// The approvals engine this server answers `/approvals` from.
    pub fn approvals(&self) -> Approvals {
        self.approvals.clone()
    }

    /// Serves on `listener` until `shutdown` completes. At shutdown, pending
    /// approvals are answered `cancelled` and open requests are drained.
    pub async fn serve<F>(self, listener: TcpListener, shutdown: F) -> Result<(), ServerError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let local_addr = listener.local_addr().map_err(ServerError::LocalAddr)?;
        if let Some(path) = &self.config.token_store {
            self.auth.attach_store(path.clone())?;
        }
        let audit = crate::audit::Audit::with_limits(
            self.config.audit_dir.clone(),
            self.config.audit_rotate_bytes,
            crate::audit::DEFAULT_KEEP,
        );
        audit.check_outside(self.config.workspaces.iter().map(|w| w.path.as_std_path()))?;
        self.print_startup(local_addr);
        let approvals = self.approvals.clone();
        let workspaces = std::sync::RwLock::new(self.config.workspaces.clone());
        let state = Arc::new(AppState {
            workspaces,
            config: self.config,
            auth: self.auth,
            approvals: self.approvals,
            logger: self.logger,
            started: Instant::now(),
            started_at_ms: now_ms(),
            local_addr,
            sessions: Default::default(),
            events: Default::default(),
            locks: Default::default(),
            http: reqwest::Client::new(),
            audit,
        });
        let app = crate::routes::app(state);
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                approvals.close();
            })
            .await
            .map_err(ServerError::Serve)
    }

    fn print_startup(&self, addr: SocketAddr) {
        let config = &self.config;
        let log = &self.logger;
        let host = if config.host.contains(':') && !config.host.starts_with('[') {
            format!("[{}]", config.host)
        } else {
            config.host.clone()
        };
        log.info(&format!(
            "OpenWork server listening on http://{host}:{}",
            addr.port()
        ));
        // Generated tokens must reach the person who started the server, but
        // a JSON log usually goes to a collector (weakness W3): print them
        // only in pretty mode.
        for (label, source, secret) in [
            ("Client", config.client_token_source, &config.client_token),
            ("Host", config.host_token_source, &config.host_token),
        ] {
            if source != TokenSource::Generated {
                continue;
            }
            match config.log_format {
                LogFormat::Pretty => log.info(&format!("{label} token: {}", secret.expose())),
                LogFormat::Json => log.warn(&format!(
                    "{label} token was generated and is not logged; pass it through the environment to know it"
                )),
            }
        }
        if config.workspaces.is_empty() {
            log.info("No workspaces configured. Add --workspace or update server.json.");
        } else {
            log.info(&format!("Workspaces: {}", config.workspaces.len()));
        }
        if config.verbose {
            match &config.config_path {
                Some(path) => log.info(&format!("Config: {path}")),
                None => log.info("Config: none (no server.json)"),
            }
            log.info(&format!("Read-only: {}", config.read_only));
            log.info(&format!(
                "Approval: {} ({} ms)",
                config.approval.mode.as_str(),
                config.approval.timeout.as_millis()
            ));
            log.info(&format!("CORS origins: {}", config.cors.0.join(", ")));
            log.info(&format!(
                "Authorized roots: {}",
                config.authorized_roots().join(", ")
            ));
            log.info(&format!(
                "Token sources: client={:?} host={:?}",
                config.client_token_source, config.host_token_source
            ));
        }
    }
}

/// Serves `config` on `listener` until the process is stopped.
pub async fn serve(config: Config, listener: TcpListener) -> Result<(), ServerError> {
    Server::new(config)
        .serve(listener, std::future::pending())
        .await
}

/// Binds `host:port` (port 0 picks a free one).
pub async fn bind(host: &str, port: u16) -> Result<TcpListener, ServerError> {
    TcpListener::bind((host, port))
        .await
        .map_err(|source| ServerError::Bind {
            host: host.to_owned(),
            port,
            source,
        })
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
