//! Host-only workspace management: `POST /workspaces/:id/activate` (make it the active, first
//! workspace) and `DELETE /workspaces/:id` (stop serving it; when the server was configured from
//! a `server.json`, the workspace is also removed from that file, written atomically).

use axum::extract::{Path, State};
use axum::{Extension, Json};
use camino::Utf8Path;
use serde_json::{Value, json};

use crate::audit::{AuditEntry, Outcome};
use crate::auth::Actor;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::workspace::{Workspace, resolve_path};

fn items(list: &[Workspace]) -> Vec<Value> {
    list.iter().map(|w| w.to_json(false)).collect()
}

/// `POST /workspaces/:id/activate` → `{"activeId","workspace"}`.
pub(crate) async fn activate(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    if let Ok(mut list) = state.workspaces.write()
        && let Some(pos) = list.iter().position(|w| w.id == id)
    {
        let w = list.remove(pos);
        list.insert(0, w);
    }
    let entry = AuditEntry::new(
        &ws.id,
        &actor,
        "workspace.activate",
        ws.path.as_str(),
        "Activate workspace",
        Outcome::Ok,
    );
    state.audit(vec![entry]).await;
    Ok(Json(
        json!({ "activeId": ws.id, "workspace": ws.to_json(false) }),
    ))
}

/// `DELETE /workspaces/:id` → `{"ok","deleted","persisted","activeId","items"}`.
pub(crate) async fn delete(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let remaining = match state.workspaces.write() {
        Ok(mut list) => {
            list.retain(|w| w.id != id);
            list.clone()
        }
        Err(_) => return Err(ApiError::internal()),
    };
    let persisted = match &state.config.config_path {
        Some(file) if file.exists() => {
            let file = file.clone();
            let path = ws.path.clone();
            tokio::task::spawn_blocking(move || remove_from_file(&file, &path))
                .await
                .map_err(|_| ApiError::internal())??
        }
        _ => false,
    };
    let entry = AuditEntry::new(
        &ws.id,
        &actor,
        "workspace.delete",
        ws.path.as_str(),
        "Stop serving workspace",
        Outcome::Ok,
    );
    state.audit(vec![entry]).await;
    Ok(Json(json!({
        "ok": true,
        "deleted": true,
        "persisted": persisted,
        "activeId": remaining.first().map(|w| w.id.clone()),
        "items": items(&remaining),
    })))
}

/// Removes the entries of `workspaces` in `file` that resolve to `path`; writes the file back
/// atomically (temp file in the same directory, fsync, rename). Returns whether it changed.
fn remove_from_file(file: &Utf8Path, path: &Utf8Path) -> Result<bool, ApiError> {
    let internal = |what: &str| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "config_write_failed",
            format!("Could not update the config file: {what}"),
        )
    };
    let text = std::fs::read_to_string(file).map_err(|e| internal(&e.to_string()))?;
    let mut doc: Value = serde_json::from_str(&text).map_err(|e| internal(&e.to_string()))?;
    let base = file.parent().unwrap_or(Utf8Path::new("/"));
    let Some(list) = doc.get_mut("workspaces").and_then(Value::as_array_mut) else {
        return Ok(false);
    };
    let before = list.len();
    list.retain(|entry| {
        let raw = entry
            .get("path")
            .and_then(Value::as_str)
            .or_else(|| entry.as_str());
        raw.is_none_or(|r| resolve_path(Utf8Path::new(r), base) != path)
    });
    if list.len() == before {
        return Ok(false);
    }
    let out = serde_json::to_string_pretty(&doc).map_err(|e| internal(&e.to_string()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(base).map_err(|e| internal(&e.to_string()))?;
    use std::io::Write;
    tmp.write_all(out.as_bytes())
        .and_then(|()| tmp.write_all(b"\n"))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| internal(&e.to_string()))?;
    if let Ok(meta) = std::fs::metadata(file) {
        let _ = tmp.as_file().set_permissions(meta.permissions());
    }
    tmp.persist(file)
        .map_err(|e| internal(&e.error.to_string()))?;
    Ok(true)
}
