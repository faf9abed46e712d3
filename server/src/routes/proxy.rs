//! `ANY /opencode/*` (and `/w/:id/opencode/*`): reverse proxy to the workspace's OpenCode
//! (reference §A12.1), streaming both ways so SSE events pass through one by one.
//!
//! Threats: leaking the OpenCode Basic credential (it is added here, server-side, and never
//! shown to the caller; the caller's own `Authorization`, host token and client id are not
//! forwarded), and viewers changing state (viewers may only GET/HEAD; only owners may reply to
//! permission prompts). Left open by design: collaborators get the full OpenCode API.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use futures_util::TryStreamExt;

use crate::auth::{Actor, Scope};
use crate::error::ApiError;
use crate::routes::mount::Mount;
use crate::state::SharedState;

const DROPPED: [&str; 6] = [
    "authorization",
    "x-openwork-host-token",
    "x-openwork-client-id",
    "host",
    "origin",
    "content-length",
];

/// Proxies to the first workspace's OpenCode, or under `/w/:id` to that workspace's.
pub(crate) async fn proxy(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    mount: Option<Extension<Mount>>,
    req: Request,
) -> Result<Response, ApiError> {
    let ws = match mount.as_deref() {
        Some(m) => Some(state.workspace(&m.workspace_id)?),
        None => state.workspaces().into_iter().next(),
    };
    let ws = ws.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "opencode_unconfigured",
            "OpenCode is not configured",
        )
    })?;
    let base = ws.base_url.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "opencode_unconfigured",
            "OpenCode is not configured",
        )
    })?;
    let method = req.method().clone();
    let path = req
        .uri()
        .path()
        .strip_prefix("/opencode")
        .unwrap_or("")
        .to_owned();
    if actor.scope() == Scope::Viewer && method != Method::GET && method != Method::HEAD {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Viewer tokens are read-only",
        ));
    }
    let segments: Vec<&str> = path.split('/').collect();
    if actor.scope() != Scope::Owner
        && method != Method::GET
        && segments.len() >= 3
        && segments[segments.len() - 1] == "reply"
        && segments[segments.len() - 3] == "permission"
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Only owner tokens can reply to permission requests",
        ));
    }
    let mut url = format!(
        "{}{}",
        base.trim_end_matches('/'),
        if path.is_empty() { "/" } else { &path }
    );
    if let Some(q) = req.uri().query() {
        url.push('?');
        url.push_str(q);
    }
    let mut headers = req.headers().clone();
    for name in DROPPED {
        headers.remove(name);
    }
    if !headers.contains_key("x-opencode-directory")
        && let Some(dir) = ws.opencode_directory()
        && let Ok(v) = dir.parse()
    {
        headers.insert(HeaderName::from_static("x-opencode-directory"), v);
    }
    if ws.opencode_username.is_some() || ws.opencode_password.is_some() {
        let user = ws
            .opencode_username
            .as_ref()
            .map_or("opencode", |u| u.expose());
        let pass = ws.opencode_password.as_ref().map_or("", |p| p.expose());
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        if let Ok(v) = format!("Basic {token}").parse() {
            headers.insert(axum::http::header::AUTHORIZATION, v);
        }
    }
    let mut upstream = state.http.request(method.clone(), &url).headers(headers);
    if method != Method::GET && method != Method::HEAD {
        upstream = upstream.body(reqwest::Body::wrap_stream(
            req.into_body().into_data_stream(),
        ));
    }
    let resp = upstream.send().await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "opencode_unreachable",
            format!("OpenCode is unreachable: {e}"),
        )
    })?;
    let mut out = Response::builder().status(resp.status().as_u16());
    for (name, value) in resp.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    out.body(Body::from_stream(stream))
        .map_err(|_| ApiError::internal())
}
