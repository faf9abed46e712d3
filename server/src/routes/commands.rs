//! Commands (reference §A12): `GET …/commands?scope=workspace|global`, `POST …/commands`,
//! `DELETE …/commands/:name`, stored as `.opencode/commands/<name>.md` (frontmatter + template).
//!
//! Threats: a name that walks out of the directory (names are `[A-Za-z0-9_-]`, 1–64, checked
//! before any path is built), a planted symlink (beneath-root access, links refused), the
//! user's global commands shown to any token (`scope=global` also needs host auth, as in the
//! original), unapproved writes (gated, audited).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::Actor;
use crate::error::ApiError;
use crate::files::beneath::Root;
use crate::routes::body::Body;
use crate::routes::files::blocking;
use crate::routes::{frontmatter, gate, ws_fs};
use crate::state::SharedState;

const PROJECT_DIR: &str = ".opencode/commands";
const GLOBAL_DIR: &str = ".config/opencode/commands";

/// 400 `invalid_name` unless `name` is 1–64 of `[A-Za-z0-9_-]`.
pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!("Command name must be 1-64 of A-Z, a-z, 0-9, _ and -: {name:?}"),
        )
        .with_details(json!({"field": "name"})))
    }
}

fn scan(root: &Root, dir: &str, scope: &str) -> Result<Vec<Value>, ApiError> {
    let mut items = Vec::new();
    for file in ws_fs::list_dir(root, dir)? {
        let Some(name) = file.strip_suffix(".md") else {
            continue;
        };
        if check_name(name).is_err() {
            continue;
        }
        let Ok(Some((_, text))) = ws_fs::read_text(root, &ws_fs::rel(&format!("{dir}/{file}"))?)
        else {
            continue;
        };
        let (keys, body) = frontmatter::parse(&text);
        let mut item = Map::new();
        item.insert("name".into(), json!(name));
        for key in ["description", "agent", "model"] {
            if let Some(v) = keys.get(key) {
                item.insert(key.into(), json!(v));
            }
        }
        if let Some(v) = keys.get("subtask") {
            item.insert("subtask".into(), json!(v == "true"));
        }
        item.insert("template".into(), json!(body.trim_end_matches('\n')));
        item.insert("scope".into(), json!(scope));
        items.push(Value::Object(item));
    }
    Ok(items)
}

/// Query of the listing.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    scope: Option<String>,
}

/// `GET …/commands?scope=` → `{"items":[{name,description?,template,agent?,model?,subtask?,scope}]}`.
pub(crate) async fn list(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let global = match query.scope.as_deref() {
        None | Some("workspace") => false,
        Some("global") => {
            state.auth.host(&headers)?;
            true
        }
        Some(other) => {
            return Err(ApiError::invalid_payload(format!(
                "scope must be workspace or global, not {other:?}"
            ))
            .with_details(json!({"field": "scope"})));
        }
    };
    let home = state.config.home_dir.clone();
    let items = blocking(move || {
        if global {
            match home.as_deref().map(Root::open) {
                Some(Ok(root)) => scan(&root, GLOBAL_DIR, "global"),
                _ => Ok(Vec::new()),
            }
        } else {
            scan(&ws_fs::root(&ws)?, PROJECT_DIR, "workspace")
        }
    })
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// Body of `POST …/commands`.
#[derive(Debug, Deserialize)]
pub(crate) struct UpsertCommand {
    name: String,
    template: String,
    description: Option<String>,
    agent: Option<String>,
    model: Option<String>,
    subtask: Option<bool>,
}

/// `POST …/commands` → `{"items"}` (the workspace's commands after the write).
pub(crate) async fn upsert(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<UpsertCommand>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    check_name(&body.name)?;
    if body.template.trim().is_empty() {
        return Err(ApiError::invalid_payload("template must not be empty")
            .with_details(json!({"field": "template"})));
    }
    let subtask = body.subtask.map(|b| b.to_string());
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (key, value) in [
        ("description", body.description.as_deref()),
        ("agent", body.agent.as_deref()),
        ("model", body.model.as_deref()),
        ("subtask", subtask.as_deref()),
    ] {
        if let Some(v) = value {
            pairs.push((key, v));
        }
    }
    let text = frontmatter::render(&pairs, &body.template);
    let rel_str = format!("{PROJECT_DIR}/{}.md", body.name);
    let summary = format!("Write command {}", body.name);
    let abs = ws.path.join(&rel_str).into_string();
    gate::approve(
        &state,
        &actor,
        &ws.id,
        "commands.upsert",
        summary.clone(),
        std::slice::from_ref(&rel_str),
        vec![abs],
    )
    .await?;
    let st = state.clone();
    let ws2 = ws.clone();
    let rel_for_write = rel_str.clone();
    let written = blocking(move || {
        let root = ws_fs::root(&ws2)?;
        let rel = ws_fs::rel(&rel_for_write)?;
        let _held = st.locks.lock(&ws2.id, &[rel.as_str()]);
        root.write_file(&rel, text.as_bytes(), None)
            .map_err(|e| ws_fs::fs_error(&rel, e))?;
        scan(&root, PROJECT_DIR, "workspace")
    })
    .await;
    let items = gate::audited(
        &state,
        &actor,
        &ws.id,
        "commands.upsert",
        &rel_str,
        summary,
        written,
    )
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// `DELETE …/commands/:name` → `{"ok":true}`; 404 `command_not_found`.
pub(crate) async fn remove(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    check_name(&name)?;
    let rel_str = format!("{PROJECT_DIR}/{name}.md");
    let rel = ws_fs::rel(&rel_str)?;
    let (ws2, rel2) = (ws.clone(), rel.clone());
    let exists = blocking(move || {
        ws_fs::root(&ws2)?
            .stat(&rel2)
            .map_err(|e| ws_fs::fs_error(&rel2, e))
    })
    .await?;
    if exists.is_none_or(|m| m.is_dir) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "command_not_found",
            format!("Command not found: {name}"),
        ));
    }
    let summary = format!("Delete command {name}");
    let abs = ws.path.join(&rel_str).into_string();
    gate::approve(
        &state,
        &actor,
        &ws.id,
        "commands.delete",
        summary.clone(),
        std::slice::from_ref(&rel_str),
        vec![abs],
    )
    .await?;
    let st = state.clone();
    let ws2 = ws.clone();
    let removed = blocking(move || {
        let root = ws_fs::root(&ws2)?;
        let _held = st.locks.lock(&ws2.id, &[rel.as_str()]);
        root.remove(&rel, false)
            .map_err(|e| ws_fs::fs_error(&rel, e))
    })
    .await;
    gate::audited(
        &state,
        &actor,
        &ws.id,
        "commands.delete",
        &rel_str,
        summary,
        removed,
    )
    .await?;
    Ok(Json(json!({"ok": true})))
}
