//! One log line per response: `"<METHOD> <path> <status> <ms>ms"`
//! (reference §A14), including OPTIONS, 404s and auth failures.
//!
//! A host-authenticated request that succeeds and carries `X-OpenWork-Poll: 1` (the dashboard
//! reading `/approvals` every second) is not logged: a poll would otherwise fill the log with
//! one line a second for the whole run. Only the host-token holder, who controls the run
//! anyway, can quiet a line this way, and never an error.
//!
//! Threat handled: secrets in logs. Only the path is logged, never the query
//! string, and never a header; the `error` attribute is the API error message,
//! which never contains a credential.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Map, json};

use crate::error::LoggedError;
use crate::logging::Level;
use crate::state::SharedState;

/// Which authentication a route asked for; set by the route guards on the
/// response so the logger can report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthMode {
    /// No credential needed.
    None,
    /// A bearer token.
    Client,
    /// The host token (or an owner bearer).
    Host,
}

impl AuthMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Client => "client",
            Self::Host => "host",
        }
    }
}

/// Header marking a host's routine poll (not logged when it succeeds).
pub const POLL_HEADER: &str = "x-openwork-poll";

/// Middleware: times the request and logs it when request logging is on.
pub(crate) async fn layer(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    if !state.config.log_requests {
        return next.run(req).await;
    }
    let started = Instant::now();
    let poll = req
        .headers()
        .get(POLL_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1");
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let millis = started.elapsed().as_millis();
    let status = response.status().as_u16();
    let level = match status {
        500.. => Level::Error,
        400.. => Level::Warn,
        _ => Level::Info,
    };
    let auth = response
        .extensions()
        .get::<AuthMode>()
        .copied()
        .unwrap_or(AuthMode::None);
    if poll && auth == AuthMode::Host && response.status().is_success() {
        return response;
    }
    let mut attributes = Map::new();
    attributes.insert("method".into(), json!(method.as_str()));
    attributes.insert("path".into(), json!(path));
    attributes.insert("status".into(), json!(status));
    attributes.insert("durationMs".into(), json!(millis));
    attributes.insert("auth".into(), json!(auth.as_str()));
    if let Some(LoggedError(message)) = response.extensions().get::<LoggedError>() {
        attributes.insert("error".into(), json!(message));
    }
    state.logger.log(
        level,
        &format!("{method} {path} {status} {millis}ms"),
        attributes,
    );
    response
}
