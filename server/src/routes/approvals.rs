//! `GET /approvals` and `POST /approvals/:id` (host auth, reference §A9).
//! Not blocked in read-only mode: answering approvals writes nothing.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::approvals::Reply;
use crate::error::ApiError;
use crate::routes::body::{Body, Loose};
use crate::state::SharedState;

/// Body of `POST /approvals/:id`; anything but the string `"allow"` denies.
#[derive(Debug, Deserialize)]
pub(crate) struct ReplyBody {
    reply: Option<Loose<String>>,
}

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
    Body(body): Body<ReplyBody>,
) -> Result<Json<Value>, ApiError> {
    let reply = match body.reply.and_then(Loose::get).as_deref() {
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
