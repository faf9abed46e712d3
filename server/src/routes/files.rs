//! File-session routes that do not change the workspace: create, renew and close a session,
//! the catalog snapshot and events, and read-batch (reference §A11.2, §A11.5–§A11.7).
//!
//! Threat: reading outside the workspace. Every path goes through `files::path::normalize`
//! and is resolved by `files::beneath` under a root handle without following links; refusals
//! are 400 `invalid_path` for the whole request, as in the original.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Actor, Scope, now_ms};
use crate::error::ApiError;
use crate::files::beneath::{FsError, Root};
use crate::files::catalog::{self, Listing};
use crate::files::path::{RelPath, normalize};
use crate::files::sessions::{CachedListing, LISTING_TTL_MS, Session, ttl_ms};
use crate::files::{MAX_FILE_BYTES, READ_BATCH_BUDGET};
use crate::routes::body::{Batch, Body, Loose, OptionalBody, required_batch};
use crate::state::SharedState;
use crate::workspace::Workspace;

/// Default catalog page size.
const DEFAULT_LIMIT: usize = 2000;
/// Largest catalog page size.
const MAX_LIMIT: usize = 10_000;

/// The hash a session is bound to.
pub(crate) fn token_hash(actor: &Actor) -> &str {
    match actor {
        Actor::Host => "host",
        Actor::Remote { token_hash, .. } => token_hash,
    }
}

/// The session `sid` of this actor and its workspace.
pub(crate) fn session_ctx(
    state: &SharedState,
    sid: &str,
    actor: &Actor,
) -> Result<(Session, Workspace), ApiError> {
    let session = state.sessions.get(sid, token_hash(actor))?;
    let ws = state.workspace(&session.workspace_id)?.clone();
    Ok((session, ws))
}

/// Runs blocking filesystem work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal())?
}

/// Opens a workspace root for a request.
pub(crate) fn open_root(ws: &Workspace) -> Result<Root, ApiError> {
    Root::open(&ws.path).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "workspace_unavailable",
            format!("Workspace directory cannot be opened: {e}"),
        )
    })
}

/// The 400 `invalid_path` (or other) error for a refused path.
pub(crate) fn path_error(err: &FsError) -> (&'static str, String) {
    match err {
        FsError::NotFound => ("file_not_found", "File not found".into()),
        FsError::Symlink => (
            "invalid_path",
            "Path goes through a symbolic link; links are not followed".into(),
        ),
        FsError::NotADirectory => (
            "invalid_path",
            "A parent of the path is not a directory".into(),
        ),
        FsError::NotAFile => ("invalid_path", "Path must point to a file".into()),
        FsError::TooLarge { .. } => ("file_too_large", "File exceeds size limit".into()),
        FsError::Conflict { .. } => ("conflict", "File changed since it was loaded".into()),
        FsError::NotEmpty => (
            "operation_failed",
            "Directory is not empty; pass recursive to delete it".into(),
        ),
        FsError::Os(errno) => ("io_error", errno.desc().to_owned()),
    }
}

/// Body of session create and renew; every field optional and lenient (§A11.2).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionBody {
    /// Seconds; a non-number gives the default TTL.
    ttl_seconds: Option<Loose<f64>>,
    /// Only an explicit `false` asks for a read-only session.
    write: Option<Loose<bool>>,
}

/// `POST /workspace/:id/files/sessions` `{"ttlSeconds"?, "write"?}`.
pub(crate) async fn create(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<SessionBody>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let can_write = body.write.and_then(Loose::get) != Some(false)
        && !state.config.read_only
        && actor.scope() >= Scope::Collaborator;
    let session = state.sessions.create(
        &ws.id,
        token_hash(&actor),
        ttl_ms(body.ttl_seconds.and_then(Loose::get)),
        can_write,
    )?;
    Ok(Json(json!({ "session": session.to_json() })))
}

/// `POST /files/sessions/:sid/renew` `{"ttlSeconds"?}`.
pub(crate) async fn renew(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(sid): Path<String>,
    OptionalBody(body): OptionalBody<SessionBody>,
) -> Result<Json<Value>, ApiError> {
    session_ctx(&state, &sid, &actor)?;
    let session = state.sessions.renew(
        &sid,
        token_hash(&actor),
        ttl_ms(body.ttl_seconds.and_then(Loose::get)),
    )?;
    Ok(Json(json!({ "session": session.to_json() })))
}

/// `DELETE /files/sessions/:sid`.
pub(crate) async fn close(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(sid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.sessions.close(&sid, token_hash(&actor))?;
    Ok(Json(json!({"ok": true})))
}

fn optional_path(raw: Option<&String>) -> Result<Option<RelPath>, ApiError> {
    match raw.map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => normalize(s).map(Some),
    }
}

/// `GET /files/sessions/:sid/catalog/snapshot?prefix=&after=&limit=&includeDirs=&excludeHeavyDirectories=`.
pub(crate) async fn snapshot(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(sid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (session, ws) = session_ctx(&state, &sid, &actor)?;
    let prefix = optional_path(query.get("prefix"))?;
    let after = optional_path(query.get("after"))?;
    let include_dirs = query.get("includeDirs").map(String::as_str) != Some("false");
    let exclude_heavy = query.get("excludeHeavyDirectories").map(String::as_str) != Some("false");
    let limit = match query
        .get("limit")
        .and_then(|l| l.trim().parse::<f64>().ok())
    {
        Some(l) if l.is_finite() && l >= 1.0 => {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let l = l.floor() as usize;
            l.min(MAX_LIMIT)
        }
        _ => DEFAULT_LIMIT,
    };
    let cursor = state.events.cursor(&ws.id);
    let key = (
        prefix.as_ref().map(|p| p.as_str().to_owned()),
        exclude_heavy,
    );
    // Later pages reuse the walk of the first page while nothing changed through this server
    // and it is fresh; `after` is a byte-order cursor, so a re-walk stays consistent too.
    let reusable = session.listing.filter(|c| {
        after.is_some()
            && c.key == key
            && c.cursor == cursor
            && now_ms().saturating_sub(c.generated_at) < LISTING_TTL_MS
    });
    let listing: Arc<Listing> = match reusable {
        Some(cached) => cached.listing,
        None => {
            let walk_prefix = key.0.clone();
            let listing = blocking(move || {
                let root = open_root(&ws)?;
                catalog::walk(&root, walk_prefix.as_deref(), exclude_heavy).map_err(|e| {
                    let (code, message) = path_error(&e);
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
                })
            })
            .await?;
            let listing = Arc::new(listing);
            state.sessions.store_listing(
                &sid,
                CachedListing {
                    key,
                    generated_at: now_ms(),
                    cursor,
                    listing: listing.clone(),
                },
            );
            listing
        }
    };
    let page = catalog::page(
        &listing,
        prefix.as_ref().map(RelPath::as_str),
        after.as_ref().map(RelPath::as_str),
        include_dirs,
        limit,
    );
    let mut out = json!({
        "sessionId": sid,
        "workspaceId": session.workspace_id,
        "generatedAt": now_ms(),
        "cursor": cursor,
        "epoch": state.events.epoch(),
        "total": page.total,
        "truncated": page.truncated,
        "items": page.items.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
    });
    if let Some(map) = out.as_object_mut() {
        if page.truncated
            && let Some(last) = page.items.last()
        {
            map.insert("nextAfter".into(), json!(last.path));
        }
        if listing.incomplete {
            map.insert("incomplete".into(), json!(true));
            map.insert("skippedDirectories".into(), json!(listing.skipped));
        }
    }
    Ok(Json(out))
}

/// `GET /files/sessions/:sid/catalog/events?since=&epoch=`.
pub(crate) async fn events(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(sid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (_, ws) = session_ctx(&state, &sid, &actor)?;
    let since = query
        .get("since")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let epoch = query.get("epoch").map(String::as_str);
    Ok(Json(state.events.since(&ws.id, since, epoch)))
}

/// Body of read-batch.
#[derive(Debug, Deserialize)]
pub(crate) struct ReadBatch {
    paths: Option<Batch<String>>,
}

/// `POST /files/sessions/:sid/read-batch` `{"paths":[…]}`.
pub(crate) async fn read_batch(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(sid): Path<String>,
    Body(body): Body<ReadBatch>,
) -> Result<axum::response::Response, ApiError> {
    let (_, ws) = session_ctx(&state, &sid, &actor)?;
    let paths = required_batch(body.paths, "paths")?
        .iter()
        .map(|p| normalize(p))
        .collect::<Result<Vec<RelPath>, ApiError>>()?;
    let body = blocking(move || {
        let root = open_root(&ws)?;
        let mut budget = READ_BATCH_BUDGET;
        let mut out = Vec::with_capacity(64 * 1024);
        out.extend_from_slice(b"{\"items\":[");
        for (i, rel) in paths.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            read_one(&root, rel, &mut budget, &mut out).map_err(|_| ApiError::internal())?;
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    })
    .await?;
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body))
        .map_err(|_| ApiError::internal())
}

/// Writes one read-batch item as JSON to `out`. A file's content is base64-encoded straight
/// into the response buffer (no `Value` tree, no intermediate string, no escaping pass: the
/// base64 alphabet needs none), so the response costs one read and one encode per file.
fn read_one(
    root: &Root,
    rel: &RelPath,
    budget: &mut u64,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    let path = rel.as_str();
    let value = match root.read_file(rel, MAX_FILE_BYTES.min(*budget)) {
        Ok((meta, data)) => {
            *budget = budget.saturating_sub(data.len() as u64);
            out.extend_from_slice(b"{\"ok\":true,\"path\":");
            serde_json::to_writer(&mut *out, path)?;
            out.extend_from_slice(
                format!(",\"kind\":\"file\",\"bytes\":{},\"updatedAt\":", data.len()).as_bytes(),
            );
            serde_json::to_writer(&mut *out, &meta.mtime_ms)?;
            out.extend_from_slice(b",\"revision\":");
            serde_json::to_writer(&mut *out, &meta.revision())?;
            out.extend_from_slice(b",\"contentBase64\":\"");
            let start = out.len();
            out.resize(
                start + base64::encoded_len(data.len(), true).unwrap_or(0),
                0,
            );
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(&data, &mut out[start..])
                .map_err(|e| <serde_json::Error as serde::ser::Error>::custom(e.to_string()))?;
            out.truncate(start + written);
            out.extend_from_slice(b"\"}");
            return Ok(());
        }
        Err(FsError::TooLarge { size, .. }) if size <= MAX_FILE_BYTES => json!({
            "ok": false, "path": path, "code": "response_too_large",
            "message": "Batch response budget exceeded; read this file in a separate request",
        }),
        Err(FsError::TooLarge { size, .. }) => json!({
            "ok": false, "path": path, "code": "file_too_large",
            "message": "File exceeds size limit", "maxBytes": MAX_FILE_BYTES, "size": size,
        }),
        Err(FsError::NotFound | FsError::NotAFile) => json!({
            "ok": false, "path": path, "code": "file_not_found", "message": "File not found",
        }),
        Err(e) => {
            let (code, message) = path_error(&e);
            let code = if code == "io_error" {
                "read_failed"
            } else {
                code
            };
            json!({"ok": false, "path": path, "code": code, "message": message})
        }
    };
    serde_json::to_writer(out, &value)
}
