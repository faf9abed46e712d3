//! `GET` and `PATCH /workspace/:id/config`: the workspace's opencode config (`opencode.jsonc`,
//! else `opencode.json`, JSONC) and its OpenWork config (`.opencode/openwork.json`).
//!
//! Threats: reading or writing outside the workspace through a planted symlink (all access
//! goes through [`super::ws_fs`], beneath the root handle, links refused), an unapproved
//! config change (PATCH is a gated write: read-only, collaborator, approval `config.patch`,
//! audited), a person's comments and formatting lost on edit (merged through the JSONC syntax
//! tree, see [`crate::jsonc`]), and a lost update (the write only lands when the file still has
//! the revision read before the approval; else 409 `conflict`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::audit::{AuditEntry, Outcome};
use crate::auth::{Actor, now_ms};
use crate::error::ApiError;
use crate::files::beneath::Root;
use crate::jsonc::{self, JsoncError};
use crate::routes::body::Body;
use crate::routes::files::blocking;
use crate::routes::{gate, ws_fs};
use crate::state::SharedState;

/// The OpenWork config file.
pub(crate) const OPENWORK_FILE: &str = ".opencode/openwork.json";
/// The opencode config files, in the order they are looked for.
pub(crate) const OPENCODE_FILES: [&str; 2] = ["opencode.jsonc", "opencode.json"];

/// 422 `invalid_json` naming file, line and column.
pub(crate) fn jsonc_error(err: JsoncError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_json",
        err.to_string(),
    )
    .with_details(
        json!({"file": err.file, "line": err.line, "column": err.column, "reason": err.reason}),
    )
}

/// One config file as read: its name, text and revision (`None` when missing).
pub(crate) struct ConfigFile {
    pub name: &'static str,
    pub text: String,
    pub revision: Option<String>,
}

/// The opencode config file that exists (`.jsonc` first), or `opencode.json` to be created.
pub(crate) fn read_opencode(root: &Root) -> Result<ConfigFile, ApiError> {
    for name in OPENCODE_FILES {
        if let Some((meta, text)) = ws_fs::read_text(root, &ws_fs::rel(name)?)? {
            return Ok(ConfigFile {
                name,
                text,
                revision: Some(meta.revision()),
            });
        }
    }
    Ok(ConfigFile {
        name: "opencode.json",
        text: String::new(),
        revision: None,
    })
}

/// `.opencode/openwork.json` (empty when missing).
pub(crate) fn read_openwork(root: &Root) -> Result<ConfigFile, ApiError> {
    let found = ws_fs::read_text(root, &ws_fs::rel(OPENWORK_FILE)?)?;
    Ok(match found {
        Some((meta, text)) => ConfigFile {
            name: OPENWORK_FILE,
            text,
            revision: Some(meta.revision()),
        },
        None => ConfigFile {
            name: OPENWORK_FILE,
            text: String::new(),
            revision: None,
        },
    })
}

/// Both configs parsed: `(opencode, openwork)`.
pub(crate) fn read_configs(root: &Root) -> Result<(Value, Value), ApiError> {
    let opencode = read_opencode(root)?;
    let openwork = read_openwork(root)?;
    Ok((
        jsonc::parse(opencode.name, &opencode.text).map_err(jsonc_error)?,
        jsonc::parse(openwork.name, &openwork.text).map_err(jsonc_error)?,
    ))
}

/// `GET /workspace/:id/config` → `{"opencode","openwork","updatedAt"}`.
pub(crate) async fn get_config(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let st = state.clone();
    let (opencode, openwork, updated) = blocking(move || {
        let (opencode, openwork) = read_configs(&ws_fs::root(&ws)?)?;
        Ok((opencode, openwork, st.audit.last_timestamp(&ws.id)))
    })
    .await?;
    Ok(Json(
        json!({ "opencode": opencode, "openwork": openwork, "updatedAt": updated }),
    ))
}

/// Body of `PATCH /workspace/:id/config`: top-level keys to merge (a `null` removes one).
#[derive(Debug, Deserialize)]
pub(crate) struct PatchConfig {
    opencode: Option<Map<String, Value>>,
    openwork: Option<Map<String, Value>>,
}

/// One planned file change.
struct Planned {
    name: &'static str,
    text: String,
    revision: Option<String>,
}

/// `PATCH /workspace/:id/config` → `{"updatedAt"}`.
pub(crate) async fn patch_config(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<PatchConfig>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    if body.opencode.is_none() && body.openwork.is_none() {
        return Err(ApiError::invalid_payload("Body needs opencode or openwork")
            .with_details(json!({"field": "opencode"})));
    }
    // Merge first, so a broken file is a 422 before anyone is asked to approve.
    let ws2 = ws.clone();
    let planned = blocking(move || {
        let root = ws_fs::root(&ws2)?;
        let mut planned = Vec::new();
        for (patch, file) in [
            (body.opencode, read_opencode(&root)?),
            (body.openwork, read_openwork(&root)?),
        ] {
            if let Some(patch) = patch {
                let text =
                    jsonc::merge_top_level(file.name, &file.text, &patch).map_err(jsonc_error)?;
                planned.push(Planned {
                    name: file.name,
                    text,
                    revision: file.revision,
                });
            }
        }
        Ok(planned)
    })
    .await?;
    let targets: Vec<String> = planned.iter().map(|p| p.name.to_owned()).collect();
    let abs = targets
        .iter()
        .map(|t| ws.path.join(t).into_string())
        .collect();
    let summary = format!("Update workspace config ({})", targets.join(", "));
    gate::approve(
        &state,
        &actor,
        &ws.id,
        "config.patch",
        summary.clone(),
        &targets,
        abs,
    )
    .await?;
    let st = state.clone();
    let ws_id = ws.id.clone();
    let results = blocking(move || {
        let root = ws_fs::root(&ws)?;
        let names: Vec<&str> = planned.iter().map(|p| p.name).collect();
        let _held = st.locks.lock(&ws.id, &names);
        Ok(planned
            .iter()
            .map(|p| {
                let rel = ws_fs::rel(p.name)?;
                ws_fs::write_text(&root, &rel, &p.text, p.revision.as_deref()).map(|_| p.name)
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let mut entries = Vec::new();
    let mut first_error = None;
    for (target, result) in targets.iter().zip(results) {
        let outcome = match result {
            Ok(_) => Outcome::Ok,
            Err(err) => {
                first_error.get_or_insert(err);
                Outcome::Failed
            }
        };
        entries.push(AuditEntry::new(
            &ws_id,
            &actor,
            "config.patch",
            target.clone(),
            summary.clone(),
            outcome,
        ));
    }
    state.audit(entries).await;
    match first_error {
        Some(err) => Err(err),
        None => Ok(Json(json!({ "updatedAt": now_ms() }))),
    }
}

/// A gated edit of the workspace's opencode config: `edit` gets the parsed config and the
/// file and returns the new text (`None`: nothing to change, no approval asked). Then the
/// approval `action`, a write only if the file is unchanged since it was read (409), and the
/// audit line with `target`.
pub(crate) async fn edit_opencode<F>(
    state: &SharedState,
    actor: &Actor,
    ws: &crate::workspace::Workspace,
    action: &str,
    target: &str,
    summary: String,
    edit: F,
) -> Result<(), ApiError>
where
    F: FnOnce(&Value, &ConfigFile) -> Result<Option<String>, ApiError> + Send + 'static,
{
    let ws2 = ws.clone();
    let planned = blocking(move || {
        let root = ws_fs::root(&ws2)?;
        let file = read_opencode(&root)?;
        let parsed = jsonc::parse(file.name, &file.text).map_err(jsonc_error)?;
        Ok(edit(&parsed, &file)?.map(|text| Planned {
            name: file.name,
            text,
            revision: file.revision,
        }))
    })
    .await?;
    let Some(planned) = planned else {
        return Ok(());
    };
    let abs = ws.path.join(planned.name).into_string();
    gate::approve(
        state,
        actor,
        &ws.id,
        action,
        summary.clone(),
        &[target.to_owned()],
        vec![abs],
    )
    .await?;
    let st = state.clone();
    let ws2 = ws.clone();
    let written = blocking(move || {
        let root = ws_fs::root(&ws2)?;
        let rel = ws_fs::rel(planned.name)?;
        let _held = st.locks.lock(&ws2.id, &[rel.as_str()]);
        ws_fs::write_text(&root, &rel, &planned.text, planned.revision.as_deref()).map(drop)
    })
    .await;
    gate::audited(state, actor, &ws.id, action, target, summary, written).await
}
