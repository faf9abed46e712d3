//! Skills (reference §A12): `GET …/skills[?includeGlobal=true]`, `GET …/skills/:name`,
//! `POST …/skills`, `DELETE …/skills/:name`, and the hub routes, which answer 404
//! `hub_disabled` (this server makes no outbound calls to the internet).
//!
//! Threats: a skill name that walks out of `.opencode/skills/` (names are kebab-case, 1–64
//! characters, checked before any path is built), a planted symlink (`.opencode/skills ->
//! ~/.ssh`: every access is beneath the workspace root handle and refuses links, 422
//! `unsafe_path`), unapproved writes (create and delete are gated and audited). Deliberate
//! difference: the project scan stays inside the workspace (the original walked up to the git
//! root, which may be outside what this server may read).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use camino::Utf8Path;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Actor;
use crate::error::ApiError;
use crate::files::beneath::Root;
use crate::routes::body::Body;
use crate::routes::files::blocking;
use crate::routes::{frontmatter, gate, ws_fs};
use crate::state::SharedState;

/// Project skill directories, in scan order.
const PROJECT_DIRS: [&str; 2] = [".opencode/skills", ".claude/skills"];
/// Global skill directories under the home directory.
const GLOBAL_DIRS: [&str; 2] = [".config/opencode/skills", ".claude/skills"];

/// 400 `invalid_name` unless `name` is kebab-case of 1–64 characters.
pub(crate) fn check_kebab(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!(
                "Skill name must be kebab-case (a-z, 0-9, single dashes), 1-64 characters: {name:?}"
            ),
        )
        .with_details(json!({"field": "name"})))
    }
}

/// One skill found on disk.
struct Skill {
    name: String,
    path: String,
    description: String,
    scope: &'static str,
    content: String,
}

impl Skill {
    fn item(&self) -> Value {
        json!({"name": self.name, "path": self.path, "description": self.description, "scope": self.scope})
    }
}

/// Skills under `dirs` of `root` (absolute base `base` for the answered paths).
fn scan(
    root: &Root,
    base: &Utf8Path,
    dirs: &[&str],
    scope: &'static str,
    out: &mut Vec<Skill>,
) -> Result<(), ApiError> {
    for dir in dirs {
        for name in ws_fs::list_dir(root, dir)? {
            if check_kebab(&name).is_err() || out.iter().any(|s| s.name == name && s.scope == scope)
            {
                continue;
            }
            let rel = format!("{dir}/{name}/SKILL.md");
            // A link or unreadable entry is skipped in listings, refused when asked for by name.
            let Ok(Some((_, content))) = ws_fs::read_text(root, &ws_fs::rel(&rel)?) else {
                continue;
            };
            let description = frontmatter::parse(&content)
                .0
                .remove("description")
                .unwrap_or_default();
            out.push(Skill {
                path: base.join(&rel).into_string(),
                name,
                description,
                scope,
                content,
            });
        }
    }
    Ok(())
}

fn all_skills(
    state: &SharedState,
    root: &Root,
    ws_path: &Utf8Path,
    global: bool,
) -> Result<Vec<Skill>, ApiError> {
    let mut out = Vec::new();
    scan(root, ws_path, &PROJECT_DIRS, "project", &mut out)?;
    if global
        && let Some(home) = &state.config.home_dir
        && let Ok(home_root) = Root::open(home)
    {
        scan(&home_root, home, &GLOBAL_DIRS, "global", &mut out)?;
    }
    Ok(out)
}

/// Query of the listing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    include_global: Option<String>,
}

/// `GET …/skills` → `{"items":[{name,path,description,scope}]}`.
pub(crate) async fn list(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let global = query.include_global.as_deref() == Some("true");
    let st = state.clone();
    let items = blocking(move || {
        let root = ws_fs::root(&ws)?;
        Ok(all_skills(&st, &root, &ws.path, global)?
            .iter()
            .map(Skill::item)
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!({ "items": items })))
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "skill_not_found",
        format!("Skill not found: {name}"),
    )
}

/// `GET …/skills/:name` → `{"item","content"}` (project first, then global).
pub(crate) async fn get_one(
    State(state): State<SharedState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    check_kebab(&name)?;
    let st = state.clone();
    blocking(move || {
        let root = ws_fs::root(&ws)?;
        let skills = all_skills(&st, &root, &ws.path, true)?;
        let skill = skills
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| not_found(&name))?;
        Ok(Json(
            json!({"item": skill.item(), "content": skill.content}),
        ))
    })
    .await
}

/// Body of `POST …/skills`.
#[derive(Debug, Deserialize)]
pub(crate) struct UpsertSkill {
    name: String,
    content: String,
    description: Option<String>,
}

/// `POST …/skills` → `{"name","path","description","scope":"project"}` (creates or replaces
/// `.opencode/skills/<name>/SKILL.md`; content without frontmatter gets one).
pub(crate) async fn upsert(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<UpsertSkill>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    check_kebab(&body.name)?;
    let (keys, _) = frontmatter::parse(&body.content);
    let description = body
        .description
        .clone()
        .or_else(|| keys.get("description").cloned())
        .unwrap_or_default();
    let text = if keys.is_empty() {
        frontmatter::render(
            &[("name", &body.name), ("description", &description)],
            &body.content,
        )
    } else {
        body.content.clone()
    };
    let rel_str = format!(".opencode/skills/{}/SKILL.md", body.name);
    let rel = ws_fs::rel(&rel_str)?;
    let abs = ws.path.join(&rel_str).into_string();
    let summary = format!("Write skill {}", body.name);
    gate::approve(
        &state,
        &actor,
        &ws.id,
        "skills.upsert",
        summary.clone(),
        std::slice::from_ref(&rel_str),
        vec![abs.clone()],
    )
    .await?;
    let st = state.clone();
    let ws2 = ws.clone();
    let written = blocking(move || {
        let root = ws_fs::root(&ws2)?;
        let _held = st.locks.lock(&ws2.id, &[rel.as_str()]);
        root.write_file(&rel, text.as_bytes(), None)
            .map_err(|e| ws_fs::fs_error(&rel, e))
    })
    .await;
    gate::audited(
        &state,
        &actor,
        &ws.id,
        "skills.upsert",
        &rel_str,
        summary,
        written,
    )
    .await?;
    Ok(Json(
        json!({"name": body.name, "path": abs, "description": description, "scope": "project"}),
    ))
}

/// `DELETE …/skills/:name` → `{"ok":true,"name","path"}`; 404 `skill_not_found`.
pub(crate) async fn remove(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    check_kebab(&name)?;
    let rel_str = format!(".opencode/skills/{name}");
    let rel = ws_fs::rel(&rel_str)?;
    let ws2 = ws.clone();
    let rel2 = rel.clone();
    let exists = blocking(move || {
        ws_fs::root(&ws2)?
            .stat(&rel2)
            .map_err(|e| ws_fs::fs_error(&rel2, e))
    })
    .await?;
    if !exists.is_some_and(|m| m.is_dir) {
        return Err(not_found(&name));
    }
    let abs = ws.path.join(&rel_str).into_string();
    let summary = format!("Delete skill {name}");
    gate::approve(
        &state,
        &actor,
        &ws.id,
        "skills.delete",
        summary.clone(),
        std::slice::from_ref(&rel_str),
        vec![abs.clone()],
    )
    .await?;
    let st = state.clone();
    let ws2 = ws.clone();
    let removed = blocking(move || {
        let root = ws_fs::root(&ws2)?;
        let _held = st.locks.lock(&ws2.id, &[rel.as_str()]);
        root.remove(&rel, true)
            .map_err(|e| ws_fs::fs_error(&rel, e))
    })
    .await;
    gate::audited(
        &state,
        &actor,
        &ws.id,
        "skills.delete",
        &rel_str,
        summary,
        removed,
    )
    .await?;
    Ok(Json(json!({"ok": true, "name": name, "path": abs})))
}

/// `GET /hub/skills` and `POST …/skills/hub/:name`: 404 `hub_disabled`.
pub(crate) async fn hub_disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "hub_disabled",
        "The skills hub is not available: this server makes no calls to the internet. Copy the skill's SKILL.md and POST it to /workspace/:id/skills instead",
    )
}
