//! File-session routes that change the workspace: write-batch and ops (reference §A11.8–§A11.9).
//!
//! Threats: writes outside the workspace (paths are normalised and resolved beneath the root
//! without following links), unapproved writes (every planned change goes through the
//! approvals engine first; a dropped request withdraws its approval), lost updates (each
//! check-revision-then-rename runs under the path's lock, so of two writers holding the same
//! revision one wins and the other gets `conflict`), torn files (temp file, fsync, rename) and
//! silently mangled content (invalid base64 is refused per item instead of skipped, W10).
//! Items are answered in request order (W12). fs errors carry the OS reason, never a host path.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{AuditEntry, Outcome};
use crate::auth::Actor;
use crate::error::ApiError;
use crate::files::MAX_FILE_BYTES;
use crate::files::beneath::{FsError, Root};
use crate::files::events::Kind;
use crate::files::path::{RelPath, normalize};
use crate::files::sessions::Session;
use crate::routes::body::{Batch, Body, required_batch};
use crate::routes::files::{blocking, open_root, path_error, session_ctx};
use crate::routes::gate;
use crate::state::SharedState;
use crate::workspace::Workspace;

/// Step 1 of both routes after the route layers (read-only, scope): the session and its
/// write flag.
fn write_gate(
    state: &SharedState,
    sid: &str,
    actor: &Actor,
) -> Result<(Session, Workspace), ApiError> {
    let (session, ws) = session_ctx(state, sid, actor)?;
    if !session.can_write {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "File session is read-only",
        ));
    }
    Ok((session, ws))
}

/// Body of write-batch.
#[derive(Debug, Deserialize)]
pub(crate) struct WriteBatch {
    writes: Option<Batch<WriteEntry>>,
}

/// One entry of write-batch.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WriteEntry {
    path: String,
    content_base64: String,
    if_match_revision: Option<String>,
    #[serde(default)]
    force: bool,
}

/// Body of ops.
#[derive(Debug, Deserialize)]
pub(crate) struct Ops {
    operations: Option<Batch<OpEntry>>,
}

/// One entry of ops; an unknown `type` is an item error, not a request error (§A11.9).
#[derive(Debug, Deserialize)]
pub(crate) struct OpEntry {
    #[serde(rename = "type", default)]
    kind: String,
    path: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(default)]
    recursive: bool,
}

fn required_path(raw: Option<&str>) -> Result<RelPath, ApiError> {
    match raw {
        Some(raw) => normalize(raw),
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "Path is required",
        )),
    }
}

/// One planned write.
struct Planned {
    index: usize,
    path: RelPath,
    data: Vec<u8>,
    if_match: Option<String>,
}

fn item_error(path: &RelPath, err: &FsError, io_code: &'static str) -> Value {
    let (code, message) = path_error(err);
    let code = if code == "io_error" { io_code } else { code };
    let mut item = json!({"ok": false, "path": path.as_str(), "code": code, "message": message});
    if let (FsError::TooLarge { size, .. }, Some(map)) = (err, item.as_object_mut()) {
        map.insert("maxBytes".into(), json!(MAX_FILE_BYTES));
        map.insert("size".into(), json!(size));
    }
    item
}

fn conflict(path: &RelPath, expected: &str, current: Option<String>, message: &str) -> Value {
    json!({"ok": false, "path": path.as_str(), "code": "conflict", "message": message,
           "expectedRevision": expected, "currentRevision": current})
}

/// `POST /files/sessions/:sid/write-batch`
/// `{"writes":[{"path","contentBase64","ifMatchRevision"?,"force"?}]}`.
pub(crate) async fn write_batch(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(sid): Path<String>,
    Body(body): Body<WriteBatch>,
) -> Result<Json<Value>, ApiError> {
    let (_, ws) = write_gate(&state, &sid, &actor)?;
    let ws_id = ws.id.clone();
    let mut results: Vec<Option<Value>> = Vec::new();
    let mut planned = Vec::new();
    for (index, entry) in required_batch(body.writes, "writes")?
        .into_iter()
        .enumerate()
    {
        let path = normalize(&entry.path)?;
        let if_match = entry.if_match_revision.filter(|_| !entry.force);
        results.push(None);
        match base64::engine::general_purpose::STANDARD.decode(entry.content_base64.trim()) {
            Ok(data) => planned.push(Planned {
                index,
                path,
                data,
                if_match,
            }),
            Err(_) => {
                results[index] = Some(json!({"ok": false, "path": path.as_str(),
                    "code": "invalid_base64", "message": "contentBase64 is not valid base64"}));
            }
        }
    }

    // Pre-check (step 3): size, kind and revision, before asking anyone.
    let (ws2, planned) = (ws.clone(), planned);
    let (planned, prechecked) = blocking(move || {
        let root = open_root(&ws2)?;
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for p in planned {
            if p.data.len() as u64 > MAX_FILE_BYTES {
                let err = FsError::TooLarge {
                    size: p.data.len() as u64,
                    max: MAX_FILE_BYTES,
                };
                failed.push((p.index, item_error(&p.path, &err, "write_failed")));
                continue;
            }
            match root.stat(&p.path) {
                Ok(Some(meta)) if meta.is_dir => {
                    failed.push((
                        p.index,
                        item_error(&p.path, &FsError::NotAFile, "write_failed"),
                    ));
                }
                Ok(current) => {
                    let current = current.map(|m| m.revision());
                    match &p.if_match {
                        Some(expected) if Some(expected) != current.as_ref() => failed.push((
                            p.index,
                            conflict(
                                &p.path,
                                expected,
                                current,
                                "File changed since it was loaded",
                            ),
                        )),
                        _ => ok.push(p),
                    }
                }
                Err(e) => failed.push((p.index, item_error(&p.path, &e, "write_failed"))),
            }
        }
        Ok((ok, failed))
    })
    .await?;
    for (index, item) in prechecked {
        results[index] = Some(item);
    }

    if !planned.is_empty() {
        let root_paths: Vec<String> = planned
            .iter()
            .map(|p| ws.path.join(p.path.as_str()).into_string())
            .collect();
        let targets: Vec<String> = planned.iter().map(|p| p.path.as_str().to_owned()).collect();
        gate::approve(
            &state,
            &actor,
            &ws.id,
            WRITE_ACTION,
            format!("Write {} file(s) via file session", planned.len()),
            &targets,
            root_paths,
        )
        .await?;
        let st = state.clone();
        let applied = blocking(move || {
            let root = open_root(&ws)?;
            Ok(planned
                .into_iter()
                .map(|p| (p.index, apply_write(&st, &ws, &root, p)))
                .collect::<Vec<_>>())
        })
        .await?;
        let mut entries = Vec::with_capacity(applied.len());
        for (index, item) in applied {
            entries.push(audit_item(&ws_id, &actor, WRITE_ACTION, &item, "path"));
            results[index] = Some(item);
        }
        state.audit(entries).await;
    }
    let items: Vec<Value> = results.into_iter().flatten().collect();
    Ok(Json(
        json!({"items": items, "cursor": state.events.cursor(&ws_id)}),
    ))
}

fn apply_write(state: &SharedState, ws: &Workspace, root: &Root, p: Planned) -> Value {
    let _held = state.locks.lock(&ws.id, &[p.path.as_str()]);
    match root.write_file(&p.path, &p.data, p.if_match.as_deref().map(Some)) {
        Ok((meta, previous)) => {
            let revision = meta.revision();
            state
                .events
                .record(&ws.id, Kind::Write, p.path.as_str(), None, Some(&revision));
            json!({"ok": true, "path": p.path.as_str(), "bytes": p.data.len(),
                   "updatedAt": meta.mtime_ms, "revision": revision, "previousRevision": previous})
        }
        Err(FsError::Conflict { current }) => conflict(
            &p.path,
            p.if_match.as_deref().unwrap_or_default(),
            current,
            "File changed before write could be applied",
        ),
        Err(e) => item_error(&p.path, &e, "write_failed"),
    }
}

/// One parsed operation.
enum Op {
    Mkdir(RelPath),
    Delete(RelPath, bool),
    Rename(RelPath, RelPath),
    Unknown(String),
}

impl Op {
    /// What the audit log names as the target.
    fn target(&self) -> String {
        match self {
            Self::Mkdir(p) | Self::Delete(p, _) => p.as_str().to_owned(),
            Self::Rename(a, b) => format!("{} -> {}", a.as_str(), b.as_str()),
            Self::Unknown(kind) => kind.clone(),
        }
    }
}

/// `POST /files/sessions/:sid/ops` `{"operations":[{"type":"mkdir"|"delete"|"rename",…}]}`.
pub(crate) async fn ops(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(sid): Path<String>,
    Body(body): Body<Ops>,
) -> Result<Json<Value>, ApiError> {
    let (_, ws) = write_gate(&state, &sid, &actor)?;
    let mut parsed = Vec::new();
    let mut abs = Vec::new();
    for entry in required_batch(body.operations, "operations")? {
        let op = match entry.kind.as_str() {
            "mkdir" => Op::Mkdir(required_path(entry.path.as_deref())?),
            "delete" => Op::Delete(required_path(entry.path.as_deref())?, entry.recursive),
            "rename" => Op::Rename(
                required_path(entry.from.as_deref())?,
                required_path(entry.to.as_deref())?,
            ),
            _ => Op::Unknown(entry.kind),
        };
        match &op {
            Op::Mkdir(p) | Op::Delete(p, _) => abs.push(ws.path.join(p.as_str()).into_string()),
            Op::Rename(a, b) => {
                abs.push(ws.path.join(a.as_str()).into_string());
                abs.push(ws.path.join(b.as_str()).into_string());
            }
            Op::Unknown(_) => {}
        }
        parsed.push(op);
    }
    if !abs.is_empty() {
        let targets: Vec<String> = parsed.iter().map(Op::target).collect();
        gate::approve(
            &state,
            &actor,
            &ws.id,
            OPS_ACTION,
            format!("Apply {} file operation(s) via file session", parsed.len()),
            &targets,
            abs,
        )
        .await?;
    }
    let st = state.clone();
    let ws_id = ws.id.clone();
    let items = blocking(move || {
        let root = open_root(&ws)?;
        Ok(parsed
            .into_iter()
            .map(|op| apply_op(&st, &ws, &root, op))
            .collect::<Vec<Value>>())
    })
    .await?;
    // Every operation is audited (the original audited none, W11); unknown types changed nothing.
    let entries = items
        .iter()
        .filter(|item| item["code"] != "invalid_operation")
        .map(|item| audit_item(&ws_id, &actor, OPS_ACTION, item, "type"))
        .collect();
    state.audit(entries).await;
    Ok(Json(
        json!({"items": items, "cursor": state.events.cursor(&ws_id)}),
    ))
}

/// Action name of write-batch in approvals and the audit log.
const WRITE_ACTION: &str = "workspace.files.session.write";
/// Action name of ops.
const OPS_ACTION: &str = "workspace.files.session.ops";

/// The audit line of one answered item (`ok` or `failed`).
fn audit_item(
    ws_id: &str,
    actor: &Actor,
    action: &str,
    item: &Value,
    kind_field: &str,
) -> AuditEntry {
    let target = match (
        item["path"].as_str(),
        item["from"].as_str(),
        item["to"].as_str(),
    ) {
        (Some(path), _, _) => path.to_owned(),
        (None, Some(from), Some(to)) => format!("{from} -> {to}"),
        _ => String::new(),
    };
    let (summary, outcome) = if item["ok"] == true {
        (
            format!("{} {target}", item[kind_field].as_str().unwrap_or("write")),
            Outcome::Ok,
        )
    } else {
        (
            format!(
                "{}: {}",
                item["code"].as_str().unwrap_or("failed"),
                item["message"].as_str().unwrap_or("")
            ),
            Outcome::Failed,
        )
    };
    AuditEntry::new(ws_id, actor, action, target, summary, outcome)
}

fn op_error(err: &FsError) -> (String, String) {
    let (code, message) = path_error(err);
    let code = if code == "io_error" {
        "operation_failed"
    } else {
        code
    };
    (code.to_owned(), message)
}

fn apply_op(state: &SharedState, ws: &Workspace, root: &Root, op: Op) -> Value {
    match op {
        Op::Mkdir(path) => {
            let _held = state.locks.lock(&ws.id, &[path.as_str()]);
            match root.mkdir_all(&path) {
                Ok(()) => {
                    state
                        .events
                        .record(&ws.id, Kind::Mkdir, path.as_str(), None, None);
                    json!({"ok": true, "type": "mkdir", "path": path.as_str()})
                }
                Err(e) => {
                    let (code, message) = op_error(&e);
                    json!({"ok": false, "type": "mkdir", "path": path.as_str(), "code": code, "message": message})
                }
            }
        }
        Op::Delete(path, recursive) => {
            let _held = state.locks.lock(&ws.id, &[path.as_str()]);
            match root.remove(&path, recursive) {
                Ok(()) => {
                    state
                        .events
                        .record(&ws.id, Kind::Delete, path.as_str(), None, None);
                    json!({"ok": true, "type": "delete", "path": path.as_str()})
                }
                Err(FsError::NotFound) => json!({"ok": false, "type": "delete",
                    "path": path.as_str(), "code": "file_not_found", "message": "Path not found"}),
                Err(e) => {
                    let (code, message) = op_error(&e);
                    json!({"ok": false, "type": "delete", "path": path.as_str(), "code": code, "message": message})
                }
            }
        }
        Op::Rename(from, to) => {
            let _held = state.locks.lock(&ws.id, &[from.as_str(), to.as_str()]);
            match root.rename(&from, &to) {
                Ok(()) => {
                    state.events.record(
                        &ws.id,
                        Kind::Rename,
                        from.as_str(),
                        Some(to.as_str()),
                        None,
                    );
                    json!({"ok": true, "type": "rename", "from": from.as_str(), "to": to.as_str()})
                }
                Err(FsError::NotFound) => json!({"ok": false, "type": "rename",
                    "from": from.as_str(), "to": to.as_str(),
                    "code": "file_not_found", "message": "Source path not found"}),
                Err(e) => {
                    let (code, message) = op_error(&e);
                    json!({"ok": false, "type": "rename", "from": from.as_str(), "to": to.as_str(),
                           "code": code, "message": message})
                }
            }
        }
        Op::Unknown(kind) => json!({"ok": false, "type": kind, "code": "invalid_operation",
            "message": format!("Unsupported operation type: {kind}")}),
    }
}
