//! The shared state every request handler sees.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::approvals::Approvals;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::error::ApiError;
use crate::files::events::FileEvents;
use crate::files::locks::PathLocks;
use crate::files::sessions::FileSessions;
use crate::logging::Logger;
use crate::workspace::Workspace;

/// State shared by all handlers of one server; handlers get it as `Arc<AppState>`.
#[derive(Debug)]
pub(crate) struct AppState {
    /// The resolved configuration.
    pub config: Config,
    /// Credential checks and issued tokens.
    pub auth: Arc<Authenticator>,
    /// The approvals engine.
    pub approvals: Approvals,
    /// Where log lines go.
    pub logger: Logger,
    /// When the server started, for `uptimeMs`.
    pub started: Instant,
    /// Start time in ms since the Unix epoch, for `/health`'s `startedAt`.
    pub started_at_ms: u64,
    /// The address actually bound (the real port when 0 was asked for).
    pub local_addr: SocketAddr,
    /// Open file sessions.
    pub sessions: FileSessions,
    /// File events of changes made through this server.
    pub events: FileEvents,
    /// Per-path locks for check-then-change.
    pub locks: PathLocks,
    /// Client for the OpenCode proxy.
    pub http: reqwest::Client,
    /// The audit log of writes.
    pub audit: crate::audit::Audit,
    /// The served workspaces, first = active (activate reorders, delete removes).
    pub workspaces: std::sync::RwLock<Vec<Workspace>>,
}

impl AppState {
    /// The workspace `id`, or 404 `workspace_not_found`, or 403
    /// `workspace_unauthorized` when it lies outside every authorized root.
    pub fn workspace(&self, id: &str) -> Result<Workspace, ApiError> {
        let ws = self
            .workspaces()
            .into_iter()
            .find(|w| w.id == id)
            .ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::NOT_FOUND,
                    "workspace_not_found",
                    format!("Workspace not found: {id}"),
                )
            })?;
        if !self.config.is_authorized(&ws.path) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "workspace_unauthorized",
                "Workspace is outside the authorized roots",
            ));
        }
        Ok(ws)
    }

    /// A snapshot of the served workspaces (first = active).
    pub fn workspaces(&self) -> Vec<Workspace> {
        match self.workspaces.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Appends audit entries off the async threads; a failure is logged, not answered (the
    /// write it records has already happened).
    pub async fn audit(self: &Arc<Self>, entries: Vec<crate::audit::AuditEntry>) {
        let state = self.clone();
        let result = tokio::task::spawn_blocking(move || state.audit.append(entries)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => self.logger.warn(&format!("audit: {err}")),
            Err(err) => self.logger.warn(&format!("audit: {err}")),
        }
    }

    /// Milliseconds since start.
    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The handle type handlers extract.
pub(crate) type SharedState = Arc<AppState>;
