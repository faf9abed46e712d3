//! The workspace mount prefix `/w/:id/...` (reference §A7): a client may use
//! `http://host:port/w/<id>` as its base URL and see the server as if it had only that
//! workspace.
//!
//! Implemented once, as a rewrite in front of the ordinary routes: [`enter`] checks the
//! workspace id and the route shape, strips `/w/<id>`, records the [`Mount`] in the request
//! extensions and hands the request to the same router that serves unprefixed paths, so every
//! guard, limit and handler is the one the unprefixed route has. Handlers that show or pick
//! workspaces (`/status`, `/workspaces`, `/opencode`) read the [`Mount`] and scope themselves.
//!
//! What passes, and how:
//! - `health` (no auth); `status`, `capabilities`, `workspaces` (client auth, scoped to the
//!   mounted workspace, `workspaceCount: 1`);
//! - `opencode[/…]`: the proxy, to the mounted workspace's OpenCode instead of the first one;
//! - `workspace/:id2/…`: only when `id2` is the mounted id, else 404 `not_found`;
//! - `files/sessions/:sid/…`: only for a session of the mounted workspace (an extension of the
//!   reference, which 404s these: without it a client on a mount base could open a session
//!   through `workspace/:id/files/sessions` and then not use it);
//! - `opencode-router[/…]`: the router proxy (a client or host credential is checked here, the
//!   proxy's per-path rule after); `runtime/versions` (client auth);
//! - anything else (including `ui`): 404 `not_found`.
//!
//! Threat: probing workspace ids without a credential. For every route that needs client auth
//! the credential is checked before the id, so an unknown id is 404 `workspace_not_found` only
//! to an authenticated caller; `health` answers that 404 to anyone (it is the "is my base URL
//! right" probe, and ids are already derived from paths).

use axum::Router;
use axum::extract::Request;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::error::ApiError;
use crate::request_log::AuthMode;
use crate::routes::files::token_hash;
use crate::state::{AppState, SharedState};
use crate::workspace::Workspace;

/// The workspace a request came in under (`/w/<id>/…`), in the request extensions.
#[derive(Debug, Clone)]
pub(crate) struct Mount {
    /// The mounted workspace's id.
    pub workspace_id: String,
}

/// The workspaces a request may see: only the mounted one under `/w/:id`, else all.
pub(crate) fn visible(state: &AppState, mount: Option<&Mount>) -> Vec<Workspace> {
    match mount {
        Some(m) => state.workspace(&m.workspace_id).into_iter().collect(),
        None => state.workspaces(),
    }
}

/// How a mounted route is reached.
#[derive(Debug, PartialEq, Eq)]
enum Kind<'a> {
    /// No credential needed.
    Open,
    /// Client auth.
    Client,
    /// Client or host auth here; the router proxy applies its per-path rule itself.
    Router,
    /// Client auth, and the session `sid` must belong to the mounted workspace.
    Session(&'a str),
}

/// Classifies the path after `/w/<id>/`; `None` is 404 `not_found`.
fn classify<'a>(id: &str, rest: &'a str) -> Option<Kind<'a>> {
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["health"] => Some(Kind::Open),
        ["status" | "capabilities" | "workspaces"] => Some(Kind::Client),
        ["opencode", ..] | ["runtime", "versions"] => Some(Kind::Client),
        ["opencode-router", ..] => Some(Kind::Router),
        ["workspace", id2, _, ..] if *id2 == id => Some(Kind::Client),
        ["files", "sessions", sid, ..] if !sid.is_empty() => Some(Kind::Session(sid)),
        _ => None,
    }
}

fn tagged(err: ApiError, mode: AuthMode) -> Response {
    let mut response = err.into_response();
    response.extensions_mut().insert(mode);
    response
}

/// Handles `/w/<id>` and `/w/<id>/…`: checks, rewrites, and serves through `core`.
pub(crate) async fn enter(state: SharedState, core: Router, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let after = path.strip_prefix("/w/").unwrap_or_default();
    let (id, rest) = after.split_once('/').unwrap_or((after, ""));
    let Some(kind) = classify(id, rest) else {
        return ApiError::not_found().into_response();
    };
    if kind != Kind::Open {
        let checked = if kind == Kind::Router {
            state
                .auth
                .client(req.headers())
                .or_else(|_| state.auth.host(req.headers()))
        } else {
            state.auth.client(req.headers())
        };
        let actor = match checked {
            Ok(actor) => actor,
            Err(err) => return tagged(err, AuthMode::Client),
        };
        if let Kind::Session(sid) = kind {
            // A session of another workspace looks like no session at all; other
            // session errors are left to the route itself.
            if let Ok(session) = state.sessions.get(sid, token_hash(&actor))
                && session.workspace_id != id
            {
                return tagged(
                    ApiError::new(
                        axum::http::StatusCode::NOT_FOUND,
                        "file_session_not_found",
                        "File session not found",
                    ),
                    AuthMode::Client,
                );
            }
        }
    }
    if let Err(err) = state.workspace(id) {
        let mode = if kind == Kind::Open {
            AuthMode::None
        } else {
            AuthMode::Client
        };
        return tagged(err, mode);
    }
    let rewritten = match req.uri().query() {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    };
    let Ok(uri) = rewritten.parse::<Uri>() else {
        return ApiError::not_found().into_response();
    };
    // A fresh request, not the old one with a new URI: the outer route's path
    // parameters live in the extensions and would be added to the inner route's.
    let (parts, body) = req.into_parts();
    let mut inner = Request::new(body);
    *inner.method_mut() = parts.method;
    *inner.uri_mut() = uri;
    *inner.version_mut() = parts.version;
    *inner.headers_mut() = parts.headers;
    inner.extensions_mut().insert(Mount {
        workspace_id: id.to_owned(),
    });
    match core.oneshot(inner).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_reference() {
        let id = "ws_0123456789ab";
        assert_eq!(classify(id, "health"), Some(Kind::Open));
        for client in [
            "status",
            "capabilities",
            "workspaces",
            "opencode",
            "opencode/session/x",
            "workspace/ws_0123456789ab/config",
            "workspace/ws_0123456789ab/files/sessions",
        ] {
            assert_eq!(classify(id, client), Some(Kind::Client), "{client}");
        }
        assert_eq!(
            classify(id, "files/sessions/s1/read-batch"),
            Some(Kind::Session("s1"))
        );
        for missing in [
            "",
            "ui",
            "tokens",
            "approvals",
            "status/extra",
            "workspace/ws_ffffffffffff/config",
            "workspace/ws_0123456789ab",
            "files/sessions/",
        ] {
            assert_eq!(classify(id, missing), None, "{missing}");
        }
    }
}
