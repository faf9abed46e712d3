//! Client-authenticated reads about the server: `/status`, `/whoami`,
//! `/capabilities` and `/workspaces` (reference §A10).
//!
//! OpenCode credentials inside workspaces are shown only to collaborator and
//! above (weakness W1); the orchestrator's client token is a collaborator.

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{Value, json};

use crate::auth::{Actor, Scope};
use crate::routes::mount::{Mount, visible};
use crate::state::SharedState;

/// opencode's basic-auth pair grants full control of the agent: only owner-scoped callers
/// (including the orchestrator, through the owner token it issues) see it.
fn reveal(actor: &Actor) -> bool {
    actor.scope() >= Scope::Owner
}

/// `GET /status` (under `/w/:id`: only that workspace).
pub(crate) async fn status(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    mount: Option<Extension<Mount>>,
) -> Json<Value> {
    let config = &state.config;
    let workspaces = visible(&state, mount.as_deref());
    let active = workspaces.first();
    Json(json!({
        "ok": true,
        "version": crate::VERSION,
        "uptimeMs": state.uptime_ms(),
        "readOnly": config.read_only,
        "approval": {
            "mode": state.approvals.mode(),
            "timeoutMs": u64::try_from(state.approvals.timeout().as_millis()).unwrap_or(u64::MAX),
        },
        "corsOrigins": config.cors.0,
        "workspaceCount": workspaces.len(),
        "activeWorkspaceId": active.map(|w| w.id.clone()),
        "workspace": active.map(|w| w.to_json(reveal(&actor))),
        "authorizedRoots": config.authorized_roots(),
        "server": {
            "host": config.host,
            "port": state.local_addr.port(),
            "configPath": config.config_path,
        },
        "tokenSource": {
            "client": config.client_token_source,
            "host": config.host_token_source,
        },
    }))
}

/// `GET /whoami`.
pub(crate) async fn whoami(Extension(actor): Extension<Actor>) -> Json<Value> {
    Json(json!({"ok": true, "actor": actor.to_json(true)}))
}

/// `GET /workspaces`: `{"items","workspaces","activeId"}` (`workspaces` is
/// the later upstream alias of `items`); under `/w/:id` only that workspace.
pub(crate) async fn workspaces(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    mount: Option<Extension<Mount>>,
) -> Json<Value> {
    let visible = visible(&state, mount.as_deref());
    let items: Vec<Value> = visible.iter().map(|w| w.to_json(reveal(&actor))).collect();
    Json(json!({
        "items": items,
        "workspaces": items,
        "activeId": visible.first().map(|w| w.id.clone()),
    }))
}

/// `GET /capabilities`: exactly what this server implements. Writes follow read-only mode;
/// the skills hub is off (no internet calls); the router proxy and the runtime forwards are on
/// only when the orchestrator gave their endpoints.
pub(crate) async fn capabilities(State(state): State<SharedState>) -> Json<Value> {
    let config = &state.config;
    let write = !config.read_only;
    let proxy_opencode = state.workspaces().iter().any(|w| w.base_url.is_some());
    Json(json!({
        "schemaVersion": 1,
        "serverVersion": crate::VERSION,
        "skills": {"read": true, "write": write, "source": "openwork"},
        "hub": {"skills": {"read": false, "install": false,
            "repo": {"owner": "different-ai", "name": "openwork-hub", "ref": "main"}}},
        "plugins": {"read": true, "write": write},
        "mcp": {"read": true, "write": write},
        "commands": {"read": true, "write": write},
        "config": {"read": true, "write": write},
        "audit": {"read": true},
        "approvals": {
            "mode": state.approvals.mode(),
            "timeoutMs": u64::try_from(state.approvals.timeout().as_millis()).unwrap_or(u64::MAX),
        },
        "sandbox": {"enabled": false, "backend": "none"},
        "ui": {"toy": false},
        "tokens": {"scoped": true, "scopes": ["owner", "collaborator", "viewer"]},
        "proxy": {"opencode": proxy_opencode, "opencodeRouter": config.router_port.is_some()},
        "runtime": {"control": config.control_base_url.is_some()},
        "toolProviders": {
            "browser": {"enabled": false, "placement": "external", "mode": "none"},
            "files": {
                "injection": write && config.inbox_enabled,
                "outbox": config.outbox_enabled,
                "inboxPath": ".opencode/openwork/inbox/",
                "outboxPath": ".opencode/openwork/outbox/",
                "maxBytes": config.inbox_max_bytes,
            },
        },
    }))
}
