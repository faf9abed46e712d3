//! `ANY /opencode-router[/…]` (also under `/w/:id`): reverse proxy to the opencode-router's
//! control API on `127.0.0.1:<OPENCODE_ROUTER_HEALTH_PORT>` (reference §A12.2), and the
//! `/runtime/*` forwards to the orchestrator's control endpoint (§A12.3).
//!
//! Threats: the router's control API has no auth of its own in the original (W-R1), so this
//! proxy is the gate: health needs client auth, the bindings and identity listings
//! collaborator, everything else (sending, token changes) host auth; the router is only ever
//! reached on loopback (never on the request's Host, the original's SSRF); the caller's
//! credentials are not forwarded, the router's own bearer secret is added server-side.

use axum::body::Body as HttpBody;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde_json::json;

use crate::auth::{Actor, Scope};
use crate::error::ApiError;
use crate::request_log::AuthMode;
use crate::state::SharedState;

const DROPPED: [&str; 6] = [
    "authorization",
    "x-openwork-host-token",
    "x-openwork-client-id",
    "host",
    "origin",
    "content-length",
];

/// Who may call a router path.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    Client,
    Collaborator,
    Host,
}

fn need(method: &Method, rest: &str) -> Need {
    let rest = rest.trim_end_matches('/');
    match (method, rest) {
        (&Method::GET, "" | "/health") => Need::Client,
        (&Method::GET, "/bindings" | "/identities/telegram" | "/identities/slack") => {
            Need::Collaborator
        }
        _ => Need::Host,
    }
}

fn authorize(
    state: &SharedState,
    need: &Need,
    headers: &axum::http::HeaderMap,
) -> Result<Actor, ApiError> {
    match need {
        Need::Client => state.auth.client(headers),
        Need::Collaborator => {
            let actor = state.auth.client(headers)?;
            actor.require_scope(Scope::Collaborator)?;
            Ok(actor)
        }
        Need::Host => state.auth.host(headers),
    }
}

/// 404 `opencodeRouter_unconfigured`.
pub(crate) fn unconfigured() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "opencodeRouter_unconfigured",
        "opencode-router is not configured (OPENCODE_ROUTER_HEALTH_PORT is not set)",
    )
}

/// 503 `opencodeRouter_unreachable` with `details {baseUrl, port, targetUrl, error}`.
pub(crate) fn unreachable(port: u16, target: &str, error: &str) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "opencodeRouter_unreachable", "opencode-router is not reachable")
        .with_details(json!({"baseUrl": format!("http://127.0.0.1:{port}"), "port": port, "targetUrl": target, "error": error}))
}

/// The proxy handler (its own auth, per path; tagged for the request log).
pub(crate) async fn proxy(State(state): State<SharedState>, req: Request) -> Response {
    let rest = req
        .uri()
        .path()
        .strip_prefix("/opencode-router")
        .unwrap_or("")
        .to_owned();
    let need = need(req.method(), &rest);
    let mode = if need == Need::Host {
        AuthMode::Host
    } else {
        AuthMode::Client
    };
    let mut response = match authorize(&state, &need, req.headers()) {
        Err(err) => err.into_response(),
        Ok(_) => match forward(&state, req, &rest).await {
            Ok(r) => r,
            Err(err) => err.into_response(),
        },
    };
    response.extensions_mut().insert(mode);
    response
}

async fn forward(state: &SharedState, req: Request, rest: &str) -> Result<Response, ApiError> {
    let port = state.config.router_port.ok_or_else(unconfigured)?;
    let mut url = format!(
        "http://127.0.0.1:{port}{}",
        if rest.is_empty() { "/" } else { rest }
    );
    if let Some(q) = req.uri().query() {
        url.push('?');
        url.push_str(q);
    }
    let method = req.method().clone();
    let mut headers = req.headers().clone();
    for name in DROPPED {
        headers.remove(name);
    }
    let mut upstream = state.http.request(method.clone(), &url).headers(headers);
    if let Some(token) = &state.config.router_token {
        upstream = upstream.bearer_auth(token.expose());
    }
    if method != Method::GET && method != Method::HEAD {
        upstream = upstream.body(reqwest::Body::wrap_stream(
            req.into_body().into_data_stream(),
        ));
    }
    let resp = upstream
        .send()
        .await
        .map_err(|e| unreachable(port, &url, &e.to_string()))?;
    stream_back(resp)
}

/// Streams an upstream response back unchanged (status, headers, body).
pub(crate) fn stream_back(resp: reqwest::Response) -> Result<Response, ApiError> {
    let mut out = Response::builder().status(resp.status().as_u16());
    for (name, value) in resp.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    out.body(HttpBody::from_stream(
        resp.bytes_stream().map_err(std::io::Error::other),
    ))
    .map_err(|_| ApiError::internal())
}

async fn runtime(state: &SharedState, method: Method, path: &str) -> Result<Response, ApiError> {
    let base = state.config.control_base_url.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "runtime_control_unconfigured",
            "Runtime control is not configured (the orchestrator passes OPENWORK_CONTROL_BASE_URL)",
        )
    })?;
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut req = state.http.request(method, &url);
    if let Some(token) = &state.config.control_token {
        req = req.bearer_auth(token.expose());
    }
    let resp = req.send().await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "runtime_control_unreachable",
            "The orchestrator's control endpoint is not reachable",
        )
        .with_details(json!({"path": path, "error": e.to_string()}))
    })?;
    stream_back(resp)
}

/// `GET /runtime/versions` (client auth): the orchestrator's answer, forwarded.
pub(crate) async fn versions(State(state): State<SharedState>) -> Result<Response, ApiError> {
    runtime(&state, Method::GET, "/runtime/versions").await
}

/// `POST /runtime/upgrade` (host auth): the orchestrator's answer (202 or 409), forwarded.
pub(crate) async fn upgrade(State(state): State<SharedState>) -> Result<Response, ApiError> {
    runtime(&state, Method::POST, "/runtime/upgrade").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_policy_follows_the_reference() {
        assert_eq!(need(&Method::GET, ""), Need::Client);
        assert_eq!(need(&Method::GET, "/health"), Need::Client);
        assert_eq!(need(&Method::GET, "/bindings"), Need::Collaborator);
        assert_eq!(need(&Method::GET, "/identities/slack"), Need::Collaborator);
        assert_eq!(need(&Method::POST, "/bindings"), Need::Host);
        assert_eq!(need(&Method::POST, "/send"), Need::Host);
        assert_eq!(need(&Method::GET, "/config/groups"), Need::Host);
        assert_eq!(need(&Method::DELETE, "/identities/telegram/x"), Need::Host);
    }
}
