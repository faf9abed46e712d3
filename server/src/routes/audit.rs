//! `GET /workspace/:id/audit?limit=` (client auth): the newest audit entries of a workspace,
//! newest first (reference §A12 Audit; default 50, at most 200).
//!
//! Threat: none beyond reading; the entries carry no token hashes.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::SharedState;

/// Default number of entries.
const DEFAULT_LIMIT: usize = 50;
/// Most entries one call returns.
const MAX_LIMIT: usize = 200;

/// Query of the audit route; a limit that is not a positive number gives the default.
#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    limit: Option<String>,
}

/// `{"items":[AuditEntry…]}`, newest first.
pub(crate) async fn list(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let limit = query
        .limit
        .and_then(|l| l.trim().parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_LIMIT)
        .min(MAX_LIMIT);
    let st = state.clone();
    let items = tokio::task::spawn_blocking(move || st.audit.recent(&ws.id, limit))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|_| ApiError::internal())?;
    Ok(Json(json!({ "items": items })))
}
