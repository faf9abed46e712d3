//! Plugins (reference §A12): `GET …/plugins[?includeGlobal=true]`, `POST …/plugins {"spec"}`,
//! `DELETE …/plugins/:name`. Config plugins are the `plugin` array of opencode.json[c]
//! (edited through the JSONC syntax tree); directory plugins are the files of
//! `.opencode/plugins/` (and `~/.config/opencode/plugins/` when global ones are asked for).
//!
//! Threats: a spec that smuggles shell or path syntax into the config (specs are 1–256
//! printable characters without whitespace), planted symlinks (directory listings go beneath
//! the root handle and skip links), unapproved changes (gated, audited).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Actor;
use crate::error::ApiError;
use crate::files::beneath::Root;
use crate::jsonc;
use crate::routes::body::Body;
use crate::routes::config::{edit_opencode, jsonc_error, read_configs};
use crate::routes::files::blocking;
use crate::routes::ws_fs;
use crate::state::SharedState;
use crate::workspace::Workspace;

fn check_spec(spec: &str) -> Result<(), ApiError> {
    if !spec.is_empty()
        && spec.len() <= 256
        && spec.chars().all(|c| !c.is_whitespace() && !c.is_control())
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            "Plugin spec must be 1-256 characters without spaces (an npm name, name@version, or a file: URL)",
        )
        .with_details(json!({"field": "spec"})))
    }
}

fn config_specs(opencode: &Value) -> Vec<String> {
    opencode["plugin"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn listing(
    home: Option<&camino::Utf8Path>,
    ws: &Workspace,
    global: bool,
) -> Result<Value, ApiError> {
    let root = ws_fs::root(ws)?;
    let (opencode, _) = read_configs(&root)?;
    let mut items = Vec::new();
    for spec in config_specs(&opencode) {
        items.push(json!({"spec": spec, "source": "config", "scope": "project"}));
    }
    for name in ws_fs::list_dir(&root, ".opencode/plugins")? {
        if matches!(root.stat(&ws_fs::rel(&format!(".opencode/plugins/{name}"))?), Ok(Some(m)) if !m.is_dir)
        {
            let path = ws.path.join(".opencode/plugins").join(&name).into_string();
            items.push(
                json!({"spec": name, "source": "dir.project", "scope": "project", "path": path}),
            );
        }
    }
    if global
        && let Some(home) = home
        && let Ok(home_root) = Root::open(home)
    {
        let dir = ".config/opencode/plugins";
        for name in ws_fs::list_dir(&home_root, dir)? {
            if matches!(home_root.stat(&ws_fs::rel(&format!("{dir}/{name}"))?), Ok(Some(m)) if !m.is_dir)
            {
                let path = home.join(dir).join(&name).into_string();
                items.push(
                    json!({"spec": name, "source": "dir.global", "scope": "global", "path": path}),
                );
            }
        }
    }
    let load_order: Vec<Value> = items.iter().map(|i| i["spec"].clone()).collect();
    Ok(json!({"items": items, "loadOrder": load_order}))
}

/// Query of the listing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    include_global: Option<String>,
}

/// `GET …/plugins` → `{"items":[{spec,source,scope,path?}],"loadOrder"}`.
pub(crate) async fn list(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let global = query.include_global.as_deref() == Some("true");
    let home = state.config.home_dir.clone();
    blocking(move || listing(home.as_deref(), &ws, global))
        .await
        .map(Json)
}

/// Body of `POST …/plugins`.
#[derive(Debug, Deserialize)]
pub(crate) struct AddPlugin {
    spec: String,
}

/// `POST …/plugins` → the refreshed listing; adding a listed spec changes nothing.
pub(crate) async fn add(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<AddPlugin>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let spec = body.spec.trim().to_owned();
    check_spec(&spec)?;
    let summary = format!("Add plugin {spec}");
    let spec2 = spec.clone();
    edit_opencode(
        &state,
        &actor,
        &ws,
        "plugins.add",
        &spec,
        summary,
        move |parsed, file| {
            let mut specs = config_specs(parsed);
            if specs.contains(&spec2) {
                return Ok(None);
            }
            specs.push(spec2);
            jsonc::set_in(file.name, &file.text, &["plugin"], Some(&json!(specs)))
                .map(Some)
                .map_err(jsonc_error)
        },
    )
    .await?;
    let home = state.config.home_dir.clone();
    blocking(move || listing(home.as_deref(), &ws, false))
        .await
        .map(Json)
}

/// `DELETE …/plugins/:name` → the refreshed listing; 404 `plugin_not_found`. `name` matches a
/// spec exactly or its package name (`name@version`).
pub(crate) async fn remove(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    check_spec(&name)?;
    let summary = format!("Remove plugin {name}");
    let name2 = name.clone();
    edit_opencode(
        &state,
        &actor,
        &ws,
        "plugins.remove",
        &name,
        summary,
        move |parsed, file| {
            let specs = config_specs(parsed);
            let matches = |s: &String| {
                *s == name2
                    || s.strip_prefix(name2.as_str())
                        .is_some_and(|r| r.starts_with('@'))
            };
            if !specs.iter().any(matches) {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "plugin_not_found",
                    format!("Plugin not found: {name2}"),
                ));
            }
            let kept: Vec<&String> = specs.iter().filter(|s| !matches(s)).collect();
            jsonc::set_in(file.name, &file.text, &["plugin"], Some(&json!(kept)))
                .map(Some)
                .map_err(jsonc_error)
        },
    )
    .await?;
    let home = state.config.home_dir.clone();
    blocking(move || listing(home.as_deref(), &ws, false))
        .await
        .map(Json)
}
