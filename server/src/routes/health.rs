//! `GET /health`: liveness and version, without authentication.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::SharedState;

/// `{"ok":true,"version","uptimeMs","startedAt"}`. `startedAt` is an addition
/// so clients can tell that a restart wiped in-memory state.
pub(crate) async fn health(State(state): State<SharedState>) -> Json<Value> {
    Json(json!({
        "ok": true,
        "version": crate::VERSION,
        "uptimeMs": state.uptime_ms(),
        "startedAt": state.started_at_ms,
    }))
}
