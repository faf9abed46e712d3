//! Export and import of a workspace's setup (reference §A12): `GET …/export` →
//! `{"workspaceId","exportedAt","opencode","openwork","skills","commands"}`, and `POST …/import`
//! with the same parts plus `mode` per part (`merge`, the default, or `replace`).
//!
//! Threats: an import that writes outside the project directories (skill and command names are
//! validated as by their own routes, files are written beneath the root handle, links
//! refused), a partial import that nobody approved (one approval `config.import` lists every
//! file; each file is audited), and comments lost on a merge (merges go through the JSONC
//! syntax tree; `replace` writes plain JSON on purpose).

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::audit::{AuditEntry, Outcome};
use crate::auth::{Actor, now_ms};
use crate::error::ApiError;
use crate::files::beneath::Root;
use crate::jsonc;
use crate::routes::body::Body;
use crate::routes::config::{jsonc_error, read_configs, read_opencode, read_openwork};
use crate::routes::files::blocking;
use crate::routes::{commands, frontmatter, gate, skills, ws_fs};
use crate::state::SharedState;

const SKILLS_DIR: &str = ".opencode/skills";
const COMMANDS_DIR: &str = ".opencode/commands";

fn project_skills(root: &Root) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for name in ws_fs::list_dir(root, SKILLS_DIR)? {
        if skills::check_kebab(&name).is_err() {
            continue;
        }
        if let Ok(Some((_, content))) =
            ws_fs::read_text(root, &ws_fs::rel(&format!("{SKILLS_DIR}/{name}/SKILL.md"))?)
        {
            let description = frontmatter::parse(&content)
                .0
                .remove("description")
                .unwrap_or_default();
            out.push(json!({"name": name, "description": description, "content": content}));
        }
    }
    Ok(out)
}

fn project_commands(root: &Root) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for file in ws_fs::list_dir(root, COMMANDS_DIR)? {
        let Some(name) = file.strip_suffix(".md") else {
            continue;
        };
        if commands::check_name(name).is_err() {
            continue;
        }
        if let Ok(Some((_, text))) =
            ws_fs::read_text(root, &ws_fs::rel(&format!("{COMMANDS_DIR}/{file}"))?)
        {
            let (keys, body) = frontmatter::parse(&text);
            out.push(json!({"name": name, "description": keys.get("description"), "template": body.trim_end_matches('\n')}));
        }
    }
    Ok(out)
}

/// `GET …/export`.
pub(crate) async fn export(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    blocking(move || {
        let root = ws_fs::root(&ws)?;
        let (opencode, openwork) = read_configs(&root)?;
        Ok(Json(json!({
            "workspaceId": ws.id, "exportedAt": now_ms(), "opencode": opencode, "openwork": openwork,
            "skills": project_skills(&root)?, "commands": project_commands(&root)?,
        })))
    })
    .await
}

/// How one part is imported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Keep what is there, add and replace what is given.
    #[default]
    Merge,
    /// Make the part exactly what is given.
    Replace,
}

/// `mode` of an import.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Modes {
    #[serde(default)]
    opencode: Mode,
    #[serde(default)]
    openwork: Mode,
    #[serde(default)]
    skills: Mode,
    #[serde(default)]
    commands: Mode,
}

/// A skill in an import.
#[derive(Debug, Deserialize)]
pub(crate) struct SkillIn {
    name: String,
    content: String,
    description: Option<String>,
}

/// A command in an import.
#[derive(Debug, Deserialize)]
pub(crate) struct CommandIn {
    name: String,
    template: String,
    description: Option<String>,
}

/// Body of `POST …/import`.
#[derive(Debug, Deserialize)]
pub(crate) struct Import {
    opencode: Option<Map<String, Value>>,
    openwork: Option<Map<String, Value>>,
    skills: Option<Vec<SkillIn>>,
    commands: Option<Vec<CommandIn>>,
    #[serde(default)]
    mode: Modes,
}

/// One change of an import.
enum Change {
    Write {
        rel: String,
        text: String,
        revision: Option<String>,
    },
    RemoveDir(String),
    RemoveFile(String),
}

impl Change {
    fn target(&self) -> &str {
        match self {
            Self::Write { rel, .. } | Self::RemoveDir(rel) | Self::RemoveFile(rel) => rel,
        }
    }
}

fn plan(root: &Root, body: Import) -> Result<Vec<Change>, ApiError> {
    let mut changes = Vec::new();
    for (patch, file, mode) in [
        (body.opencode, read_opencode(root)?, body.mode.opencode),
        (body.openwork, read_openwork(root)?, body.mode.openwork),
    ] {
        let Some(patch) = patch else { continue };
        let text = match mode {
            Mode::Merge => {
                jsonc::merge_top_level(file.name, &file.text, &patch).map_err(jsonc_error)?
            }
            Mode::Replace => {
                serde_json::to_string_pretty(&patch).map_err(|_| ApiError::internal())? + "\n"
            }
        };
        changes.push(Change::Write {
            rel: file.name.to_owned(),
            text,
            revision: file.revision,
        });
    }
    if let Some(list) = body.skills {
        for s in &list {
            skills::check_kebab(&s.name)?;
        }
        if body.mode.skills == Mode::Replace {
            for name in ws_fs::list_dir(root, SKILLS_DIR)? {
                if !list.iter().any(|s| s.name == name) {
                    changes.push(Change::RemoveDir(format!("{SKILLS_DIR}/{name}")));
                }
            }
        }
        for s in list {
            let has_frontmatter = !frontmatter::parse(&s.content).0.is_empty();
            let text = if has_frontmatter {
                s.content
            } else {
                frontmatter::render(
                    &[
                        ("name", &s.name),
                        ("description", s.description.as_deref().unwrap_or("")),
                    ],
                    &s.content,
                )
            };
            changes.push(Change::Write {
                rel: format!("{SKILLS_DIR}/{}/SKILL.md", s.name),
                text,
                revision: None,
            });
        }
    }
    if let Some(list) = body.commands {
        for c in &list {
            commands::check_name(&c.name)?;
        }
        if body.mode.commands == Mode::Replace {
            for file in ws_fs::list_dir(root, COMMANDS_DIR)? {
                if file
                    .strip_suffix(".md")
                    .is_some_and(|n| !list.iter().any(|c| c.name == n))
                {
                    changes.push(Change::RemoveFile(format!("{COMMANDS_DIR}/{file}")));
                }
            }
        }
        for c in list {
            let pairs: Vec<(&str, &str)> = c
                .description
                .as_deref()
                .map(|d| vec![("description", d)])
                .unwrap_or_default();
            changes.push(Change::Write {
                rel: format!("{COMMANDS_DIR}/{}.md", c.name),
                text: frontmatter::render(&pairs, &c.template),
                revision: None,
            });
        }
    }
    Ok(changes)
}

fn apply(root: &Root, change: &Change) -> Result<(), ApiError> {
    match change {
        Change::Write {
            rel,
            text,
            revision,
        } => {
            let rel = ws_fs::rel(rel)?;
            match revision {
                Some(rev) => ws_fs::write_text(root, &rel, text, Some(rev)).map(drop),
                None => root
                    .write_file(&rel, text.as_bytes(), None)
                    .map(drop)
                    .map_err(|e| ws_fs::fs_error(&rel, e)),
            }
        }
        Change::RemoveDir(rel) | Change::RemoveFile(rel) => {
            let rel = ws_fs::rel(rel)?;
            root.remove(&rel, matches!(change, Change::RemoveDir(_)))
                .map_err(|e| ws_fs::fs_error(&rel, e))
        }
    }
}

/// `POST …/import` → `{"ok":true}`.
pub(crate) async fn import(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<Import>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let ws2 = ws.clone();
    let changes = blocking(move || plan(&ws_fs::root(&ws2)?, body)).await?;
    if changes.is_empty() {
        return Ok(Json(json!({"ok": true})));
    }
    let targets: Vec<String> = changes.iter().map(|c| c.target().to_owned()).collect();
    let abs = targets
        .iter()
        .map(|t| ws.path.join(t).into_string())
        .collect();
    let summary = format!("Import {} file change(s) into the workspace", targets.len());
    gate::approve(
        &state,
        &actor,
        &ws.id,
        "config.import",
        summary.clone(),
        &targets,
        abs,
    )
    .await?;
    let st = state.clone();
    let ws2 = ws.clone();
    let results = blocking(move || {
        let root = ws_fs::root(&ws2)?;
        let names: Vec<&str> = changes.iter().map(Change::target).collect();
        let _held = st.locks.lock(&ws2.id, &names);
        Ok(changes.iter().map(|c| apply(&root, c)).collect::<Vec<_>>())
    })
    .await?;
    let mut first_error = None;
    let entries = targets
        .iter()
        .zip(results)
        .map(|(t, r)| {
            let outcome = match r {
                Ok(()) => Outcome::Ok,
                Err(e) => {
                    first_error.get_or_insert(e);
                    Outcome::Failed
                }
            };
            AuditEntry::new(
                &ws.id,
                &actor,
                "config.import",
                t.clone(),
                summary.clone(),
                outcome,
            )
        })
        .collect();
    state.audit(entries).await;
    match first_error {
        Some(e) => Err(e),
        None => Ok(Json(json!({"ok": true}))),
    }
}
