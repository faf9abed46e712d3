//! OpenCode helpers of a workspace (reference §A12): `POST …/engine/reload` (collaborator, also
//! in read-only mode, no approval), `DELETE …/sessions/:sessionId` (collaborator, writable, no
//! approval) and `GET …/events` (the baseline's disabled reload-event poll).
//!
//! Threats: a session id that rewrites the upstream path (ids are checked to be
//! `[A-Za-z0-9_-]` and percent-encoded anyway), unaudited deletes (both actions are audited),
//! and the OpenCode credential leaking (added server-side by [`super::opencode_api`]).

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{AuditEntry, Outcome};
use crate::auth::{Actor, now_ms};
use crate::error::ApiError;
use crate::routes::body::OptionalBody;
use crate::routes::opencode_api;
use crate::state::SharedState;

/// Body of engine reload: `{"force"?: bool}` (accepted for compatibility; a dispose is always
/// immediate).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reload {
    #[serde(rename = "force")]
    _force: Option<bool>,
}

/// `POST …/engine/reload` → `{"ok":true,"reloadedAt"}`; 502 `opencode_reload_failed`.
pub(crate) async fn reload(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    OptionalBody(_body): OptionalBody<Reload>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let dir = ws
        .opencode_directory()
        .unwrap_or_else(|| ws.path.to_string());
    let path = format!(
        "/instance/dispose?directory={}",
        opencode_api::segment(&dir)
    );
    let result = match opencode_api::call(&state, &ws, Method::POST, &path).await {
        Ok(up) if (200..300).contains(&up.status) => Ok(()),
        Ok(up) => Err(reload_failed(Some(up.status), &up.body)),
        Err(e) if e.code == "opencode_unconfigured" => Err(e),
        Err(e) => Err(reload_failed(None, &e.message)),
    };
    let outcome = if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    let entry = AuditEntry::new(
        &ws.id,
        &actor,
        "engine.reload",
        dir,
        "Reload the OpenCode engine",
        outcome,
    );
    state.audit(vec![entry]).await;
    result?;
    Ok(Json(json!({"ok": true, "reloadedAt": now_ms()})))
}

fn reload_failed(status: Option<u16>, body: &str) -> ApiError {
    let mut err = opencode_api::failed("/instance/dispose", status, body);
    err.code = "opencode_reload_failed";
    err.message = "OpenCode could not reload the workspace".to_owned();
    err
}

/// `DELETE …/sessions/:sessionId` → `{"ok":true}`; 502 `opencode_request_failed`.
pub(crate) async fn delete_session(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path((id, session)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    if session.is_empty()
        || session.len() > 128
        || !session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_session_id",
            "Session id must be 1-128 of A-Z, a-z, 0-9, _ and -",
        ));
    }
    let path = format!("/session/{}", opencode_api::segment(&session));
    let result = match opencode_api::call(&state, &ws, Method::DELETE, &path).await {
        Ok(up) => opencode_api::success(&path, up).map(drop),
        Err(e) => Err(e),
    };
    let outcome = if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    let entry = AuditEntry::new(
        &ws.id,
        &actor,
        "opencode.session.delete",
        session,
        "Delete an OpenCode session",
        outcome,
    );
    state.audit(vec![entry]).await;
    result?;
    Ok(Json(json!({"ok": true})))
}

/// `GET …/events` → `{"items":[],"cursor":0,"workspaceId","disabled":true}` (the baseline;
/// live events reach clients through the OpenCode proxy's `/opencode/event`).
pub(crate) async fn events(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    Ok(Json(
        json!({"items": [], "cursor": 0, "workspaceId": ws.id, "disabled": true}),
    ))
}
