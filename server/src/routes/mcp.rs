//! MCP servers (reference §A12): `GET …/mcp`, `POST …/mcp {"name","config"}`,
//! `DELETE …/mcp/:name` (the `mcp` object of opencode.json[c], edited through the JSONC syntax
//! tree) and `DELETE …/mcp/:name/auth`, which asks OpenCode to disconnect the server and forget
//! its OAuth credential.
//!
//! Threats: a config that is not what OpenCode runs (`config` is a typed local/remote entry:
//! a non-empty `command` array or an http(s) `url`), names that become paths or keys of
//! something else (`[A-Za-z0-9_-]`, 1–64), unapproved changes (gated, audited).

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::audit::{AuditEntry, Outcome};
use crate::auth::Actor;
use crate::error::ApiError;
use crate::jsonc;
use crate::routes::body::Body;
use crate::routes::config::{edit_opencode, jsonc_error, read_configs};
use crate::routes::files::blocking;
use crate::routes::{gate, opencode_api, ws_fs};
use crate::state::SharedState;
use crate::workspace::Workspace;

fn check_name(name: &str) -> Result<(), ApiError> {
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
            format!("MCP name must be 1-64 of A-Z, a-z, 0-9, _ and -: {name:?}"),
        )
        .with_details(json!({"field": "name"})))
    }
}

/// An MCP entry as OpenCode reads it; other keys (`environment`, `headers`, `enabled`,
/// `timeout`…) are kept as given.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum McpConfig {
    /// A server OpenCode starts.
    Local {
        command: Vec<String>,
        #[serde(flatten)]
        rest: Map<String, Value>,
    },
    /// A server OpenCode connects to.
    Remote {
        url: String,
        #[serde(flatten)]
        rest: Map<String, Value>,
    },
}

impl McpConfig {
    fn check(&self) -> Result<(), ApiError> {
        let bad = |m: &str, field: &str| {
            Err(ApiError::invalid_payload(m).with_details(json!({"field": field})))
        };
        match self {
            Self::Local { command, .. } if command.is_empty() || command[0].trim().is_empty() => {
                bad("config.command must name a program", "config.command")
            }
            Self::Remote { url, .. }
                if !(url.starts_with("https://") || url.starts_with("http://")) =>
            {
                bad("config.url must be an http(s) URL", "config.url")
            }
            _ => Ok(()),
        }
    }
}

fn items(opencode: &Value) -> Vec<Value> {
    let tools = &opencode["tools"];
    opencode["mcp"]
        .as_object()
        .map(|servers| {
            servers
                .iter()
                .map(|(name, config)| {
                    let mut item = json!({"name": name, "config": config, "source": "config"});
                    if tools[format!("{name}_*")] == json!(false) {
                        item["disabledByTools"] = json!(true);
                    }
                    item
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn listing(ws: Workspace) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let (opencode, _) = read_configs(&ws_fs::root(&ws)?)?;
        Ok(Json(json!({ "items": items(&opencode) })))
    })
    .await
}

/// `GET …/mcp` → `{"items":[{name,config,source,disabledByTools?}]}`.
pub(crate) async fn list(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    listing(state.workspace(&id)?).await
}

/// Body of `POST …/mcp`.
#[derive(Debug, Deserialize)]
pub(crate) struct AddMcp {
    name: String,
    config: McpConfig,
}

/// `POST …/mcp` → `{"items"}` (adds or replaces the entry).
pub(crate) async fn add(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<AddMcp>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    check_name(&body.name)?;
    body.config.check()?;
    let value = serde_json::to_value(&body.config).map_err(|_| ApiError::internal())?;
    let name = body.name.clone();
    let summary = format!("Add MCP server {name}");
    edit_opencode(
        &state,
        &actor,
        &ws,
        "mcp.add",
        &body.name,
        summary,
        move |_, file| {
            jsonc::set_in(file.name, &file.text, &["mcp", &name], Some(&value))
                .map(Some)
                .map_err(jsonc_error)
        },
    )
    .await?;
    listing(ws).await
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "mcp_not_found",
        format!("MCP server not found: {name}"),
    )
}

/// `DELETE …/mcp/:name` → `{"items"}`; 404 `mcp_not_found`.
pub(crate) async fn remove(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    check_name(&name)?;
    let summary = format!("Remove MCP server {name}");
    let name2 = name.clone();
    edit_opencode(
        &state,
        &actor,
        &ws,
        "mcp.remove",
        &name,
        summary,
        move |parsed, file| {
            if parsed["mcp"].get(&name2).is_none() {
                return Err(not_found(&name2));
            }
            jsonc::set_in(file.name, &file.text, &["mcp", &name2], None)
                .map(Some)
                .map_err(jsonc_error)
        },
    )
    .await?;
    listing(ws).await
}

/// `DELETE …/mcp/:name/auth` → `{"ok":true}`: OpenCode `POST /mcp/:name/disconnect` (best
/// effort), then `DELETE /mcp/:name/auth` (404 counts as done). Gated as `mcp.auth.remove`.
pub(crate) async fn remove_auth(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    check_name(&name)?;
    if ws.base_url.is_none() {
        return Err(opencode_api::unconfigured());
    }
    let summary = format!("Remove the stored credential of MCP server {name}");
    gate::approve(
        &state,
        &actor,
        &ws.id,
        "mcp.auth.remove",
        summary.clone(),
        std::slice::from_ref(&name),
        Vec::new(),
    )
    .await?;
    let seg = opencode_api::segment(&name);
    let _ = opencode_api::call(&state, &ws, Method::POST, &format!("/mcp/{seg}/disconnect")).await;
    let path = format!("/mcp/{seg}/auth");
    let result = match opencode_api::call(&state, &ws, Method::DELETE, &path).await {
        Ok(up) if up.status == 404 => Ok(()),
        Ok(up) => opencode_api::success(&path, up).map(drop),
        Err(e) => Err(e),
    };
    let outcome = if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    state
        .audit(vec![AuditEntry::new(
            &ws.id,
            &actor,
            "mcp.auth.remove",
            name,
            summary,
            outcome,
        )])
        .await;
    result?;
    Ok(Json(json!({"ok": true})))
}
