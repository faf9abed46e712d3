//! Calls this server makes to a workspace's OpenCode on a client's behalf (engine reload,
//! session delete, MCP auth removal): the workspace's base URL, its directory header, and its
//! Basic credential added here, server-side.
//!
//! Threats: the OpenCode credential reaching a caller (it is never echoed; upstream bodies in
//! errors are cut to 2 KiB and carry only what OpenCode answered), and a caller steering the
//! request elsewhere (the URL is the configured base URL plus a path this server builds from
//! validated names, percent-encoded).

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::error::ApiError;
use crate::state::SharedState;
use crate::workspace::Workspace;

/// Longest upstream body quoted in an error.
const MAX_QUOTED: usize = 2048;

/// What OpenCode answered.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub status: u16,
    pub body: String,
}

/// 400 `opencode_unconfigured`.
pub(crate) fn unconfigured() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "opencode_unconfigured",
        "OpenCode is not configured for this workspace",
    )
}

/// Percent-encodes one path segment.
pub(crate) fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends `method path` to the workspace's OpenCode. A connection failure is 502
/// `opencode_request_failed` with `details {status:null, body, path}`.
pub(crate) async fn call(
    state: &SharedState,
    ws: &Workspace,
    method: Method,
    path: &str,
) -> Result<Upstream, ApiError> {
    let base = ws.base_url.as_deref().ok_or_else(unconfigured)?;
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut req = state.http.request(method, &url);
    if let Some(dir) = ws.opencode_directory() {
        req = req.header("x-opencode-directory", dir);
    }
    if ws.opencode_username.is_some() || ws.opencode_password.is_some() {
        let user = ws
            .opencode_username
            .as_ref()
            .map_or("opencode", |u| u.expose());
        req = req.basic_auth(user, ws.opencode_password.as_ref().map(|p| p.expose()));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| failed(path, None, &e.to_string()))?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    Ok(Upstream { status, body })
}

/// 502 `opencode_request_failed` with `details {status, body, path}`.
pub(crate) fn failed(path: &str, status: Option<u16>, body: &str) -> ApiError {
    let mut quoted = body.to_owned();
    if quoted.len() > MAX_QUOTED {
        let mut cut = MAX_QUOTED;
        while !quoted.is_char_boundary(cut) {
            cut -= 1;
        }
        quoted.truncate(cut);
    }
    let message = match status {
        Some(s) => format!("OpenCode answered {s} to {path}"),
        None => format!("OpenCode is unreachable ({path})"),
    };
    ApiError::new(StatusCode::BAD_GATEWAY, "opencode_request_failed", message)
        .with_details(json!({"status": status, "body": quoted, "path": path}))
}

/// Passes a 2xx through, turns anything else into [`failed`].
pub(crate) fn success(path: &str, up: Upstream) -> Result<Upstream, ApiError> {
    if (200..300).contains(&up.status) {
        Ok(up)
    } else {
        Err(failed(path, Some(up.status), &up.body))
    }
}
