//! `GET /approvals` and `POST /approvals/:id` (host auth, reference §A9).
//! Not blocked in read-only mode: answering approvals writes nothing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::approvals::Reply;
use crate::error::ApiError;
use crate::routes::json_body;
use crate::state::SharedState;

/// `{"items":[ApprovalRequest…]}`, pending only, oldest first.
pub(crate) async fn list(State(state): State<SharedState>) -> Json<Value> {
    let items: Vec<Value> = state.approvals.list().iter().map(|r| r.to_json()).collect();
    Json(json!({ "items": items }))
}

/// Body `{"reply":"allow"|"deny"}`; anything but `"allow"` denies.
/// Answers `{"ok":true,"allowed":bool}` or 404 `approval_not_found`.
pub(crate) async fn reply(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(body)?;
    let reply = match body.get("reply").and_then(Value::as_str) {
        Some("allow") => Reply::Allow,
        _ => Reply::Deny,
    };
    let allowed = state.approvals.reply(&id, reply).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "approval_not_found",
            "Approval request not found",
        )
    })?;
    Ok(Json(json!({"ok": true, "allowed": allowed})))
}
