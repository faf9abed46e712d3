//! Inbox and outbox (reference §A12): `POST …/inbox` (multipart `file`, gated, size-capped),
//! `GET …/inbox`, `GET …/inbox/:id`, `GET …/artifacts`, `GET …/artifacts/:id`. The inbox is
//! `.opencode/openwork/inbox/` (files handed to the agent), the outbox
//! `.opencode/openwork/outbox/` (files the agent hands back); ids are base64url of the path
//! below that directory.
//!
//! Threats: an upload or download path that leaves the directory (the name is normalised as a
//! file-session path, §A11.3, then resolved beneath the workspace root handle with every link
//! refused, so `outbox -> /home/me` or `outbox/x -> ~/.ssh/id_ed25519` serves nothing), an
//! upload that fills the disk (capped at `OPENWORK_INBOX_MAX_BYTES`, 413 while reading, before
//! approval), unapproved writes (gated `workspace.inbox.upload`, audited).

use axum::body::Body as HttpBody;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::{Extension, Json};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Actor;
use crate::error::ApiError;
use crate::files::catalog;
use crate::files::path::normalize;
use crate::routes::files::blocking;
use crate::routes::{gate, ws_fs};
use crate::state::SharedState;

/// Where uploads land.
pub(crate) const INBOX_DIR: &str = ".opencode/openwork/inbox";
/// Where the agent leaves artifacts.
pub(crate) const OUTBOX_DIR: &str = ".opencode/openwork/outbox";

fn disabled(which: &'static str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        which,
        "This server does not serve it (disabled by configuration)",
    )
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!("Upload exceeds the inbox limit of {max} bytes"),
    )
    .with_details(json!({"maxBytes": max}))
}

/// Query of the upload.
#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    path: Option<String>,
}

/// `POST …/inbox` → `{"ok":true,"path","bytes"}`.
pub(crate) async fn upload(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Query(query): Query<UploadQuery>,
    mut form: Multipart,
) -> Result<Json<Value>, ApiError> {
    if !state.config.inbox_enabled {
        return Err(disabled("inbox_disabled"));
    }
    let ws = state.workspace(&id)?;
    let max = state.config.inbox_max_bytes;
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(max)
        } else {
            ApiError::invalid_payload(format!("Invalid multipart body: {}", e.body_text()))
        }
    };
    let (mut data, mut filename, mut form_path) = (None::<Vec<u8>>, None, None);
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        match field.name() {
            Some("file") => {
                filename = field.file_name().map(str::to_owned);
                let mut buf = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
                    if (buf.len() + chunk.len()) as u64 > max {
                        return Err(too_large(max));
                    }
                    buf.extend_from_slice(&chunk);
                }
                data = Some(buf);
            }
            Some("path") => form_path = Some(field.text().await.map_err(bad_form)?),
            _ => {}
        }
    }
    let data = data.ok_or_else(|| {
        ApiError::invalid_payload("Multipart field file is required")
            .with_details(json!({"field": "file"}))
    })?;
    let name = query.path.or(form_path).or(filename).ok_or_else(|| {
        ApiError::invalid_payload("Give ?path=, a path field or a file name")
            .with_details(json!({"field": "path"}))
    })?;
    let rel_in_inbox = normalize(&name)?;
    let rel_str = format!("{INBOX_DIR}/{}", rel_in_inbox.as_str());
    let rel = ws_fs::rel(&rel_str)?;
    let bytes = data.len();
    let summary = format!(
        "Upload {} ({bytes} bytes) to the inbox",
        rel_in_inbox.as_str()
    );
    let abs = ws.path.join(&rel_str).into_string();
    gate::approve(
        &state,
        &actor,
        &ws.id,
        "workspace.inbox.upload",
        summary.clone(),
        std::slice::from_ref(&rel_str),
        vec![abs],
    )
    .await?;
    let st = state.clone();
    let ws2 = ws.clone();
    let written = blocking(move || {
        let root = ws_fs::root(&ws2)?;
        let _held = st.locks.lock(&ws2.id, &[rel.as_str()]);
        root.write_file(&rel, &data, None)
            .map_err(|e| ws_fs::fs_error(&rel, e))
    })
    .await;
    gate::audited(
        &state,
        &actor,
        &ws.id,
        "workspace.inbox.upload",
        &rel_str,
        summary,
        written,
    )
    .await?;
    Ok(Json(
        json!({"ok": true, "path": rel_in_inbox.as_str(), "bytes": bytes}),
    ))
}

async fn listing(
    state: SharedState,
    id: String,
    dir: &'static str,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let mut items = blocking(move || {
        let root = ws_fs::root(&ws)?;
        let dir_rel = ws_fs::rel(dir)?;
        let listing = catalog::walk(&root, Some(dir), false).map_err(|e| ws_fs::fs_error(&dir_rel, e))?;
        Ok(listing
            .entries
            .into_iter()
            .filter(|e| !e.meta.is_dir)
            .filter_map(|e| {
                let inner = e.path.strip_prefix(dir)?.strip_prefix('/')?.to_owned();
                let name = inner.rsplit('/').next().unwrap_or(&inner).to_owned();
                let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&inner);
                Some((e.meta.mtime_ms, json!({"id": id, "path": inner, "name": name, "size": e.meta.size, "updatedAt": e.meta.mtime_ms})))
            })
            .collect::<Vec<_>>())
    })
    .await?;
    items.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(Json(
        json!({"items": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>()}),
    ))
}

/// `GET …/inbox` → `{"items":[{id,path,name,size,updatedAt}]}`, newest first.
pub(crate) async fn list_inbox(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !state.config.inbox_enabled {
        return Err(disabled("inbox_disabled"));
    }
    listing(state, id, INBOX_DIR).await
}

/// `GET …/artifacts` → like the inbox listing, of the outbox.
pub(crate) async fn list_artifacts(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !state.config.outbox_enabled {
        return Err(disabled("outbox_disabled"));
    }
    listing(state, id, OUTBOX_DIR).await
}

async fn download(
    state: SharedState,
    id: String,
    file_id: String,
    dir: &'static str,
) -> Result<Response, ApiError> {
    let ws = state.workspace(&id)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "file_not_found", "File not found");
    let inner = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(file_id.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(not_found)?;
    let inner = normalize(&inner)?;
    let rel = ws_fs::rel(&format!("{dir}/{}", inner.as_str()))?;
    let max = state
        .config
        .inbox_max_bytes
        .max(crate::config::MAX_INBOX_MAX_BYTES);
    let data = blocking(move || {
        let root = ws_fs::root(&ws)?;
        root.read_file(&rel, max)
            .map(|(_, d)| d)
            .map_err(|e| ws_fs::fs_error(&rel, e))
    })
    .await?;
    let name = inner
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or("file")
        .replace(['"', '\\', '\r', '\n'], "_");
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(HttpBody::from(data))
        .map_err(|_| ApiError::internal())
}

/// `GET …/inbox/:fileId`: the file as an attachment.
pub(crate) async fn get_inbox(
    State(state): State<SharedState>,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if !state.config.inbox_enabled {
        return Err(disabled("inbox_disabled"));
    }
    download(state, id, file, INBOX_DIR).await
}

/// `GET …/artifacts/:fileId`: the file as an attachment.
pub(crate) async fn get_artifact(
    State(state): State<SharedState>,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if !state.config.outbox_enabled {
        return Err(disabled("outbox_disabled"));
    }
    download(state, id, file, OUTBOX_DIR).await
}
