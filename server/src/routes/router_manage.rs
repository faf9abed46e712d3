//! Workspace-scoped opencode-router management (reference §A12.2):
//! `GET|POST /workspace/:id/opencode-router/identities/:channel`,
//! `DELETE …/identities/:channel/:identityId`, `GET|POST …/opencode-router/bindings`,
//! `POST …/opencode-router/send`, and the legacy `POST …/telegram-token` / `…/slack-tokens`.
//!
//! Each is a call to the router's own control API on `127.0.0.1:<port>` with the identity id
//! derived from the workspace id and the workspace path as directory; the router persists its
//! config itself. Threats: two writers of `opencode-router.json` losing each other's updates
//! (W-R4: this server never writes the file), an SSRF through the caller's Host header or a
//! `healthPort` in the body (the port comes only from `OPENCODE_ROUTER_HEALTH_PORT`), a
//! workspace acting on another's identity (ids are derived, a different one is 400
//! `identity_mismatch`), unapproved token or binding changes (gated and audited; `send` is
//! collaborator only, as in the original).

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::Actor;
use crate::error::ApiError;
use crate::routes::body::Body;
use crate::routes::gate;
use crate::routes::router_proxy::{unconfigured, unreachable};
use crate::state::SharedState;
use crate::workspace::Workspace;

/// The router identity of a workspace: `[A-Za-z0-9_.-]` kept, others `-`, trimmed, 48 max.
pub(crate) fn identity_id(workspace_id: &str) -> String {
    let mapped: String = workspace_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = mapped.trim_matches('-').chars().take(48).collect();
    if trimmed.is_empty() {
        "default".to_owned()
    } else {
        trimmed
    }
}

fn channel(raw: &str) -> Result<&'static str, ApiError> {
    match raw {
        "telegram" => Ok("telegram"),
        "slack" => Ok("slack"),
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_channel",
            format!("channel must be telegram or slack, not {other:?}"),
        )
        .with_details(json!({"field": "channel"}))),
    }
}

/// Calls the router; its JSON answer and status come back as they are.
async fn call(
    state: &SharedState,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value), ApiError> {
    let port = state.config.router_port.ok_or_else(unconfigured)?;
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut req = state.http.request(method, &url);
    if let Some(token) = &state.config.router_token {
        req = req.bearer_auth(token.expose());
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| unreachable(port, &url, &e.to_string()))?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let value = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, value))
}

/// A gated write through the router: approval `action`, the call, the audit line, and the
/// reference's `{"ok","persisted","applied",…}` answer.
async fn write(
    state: &SharedState,
    actor: &Actor,
    ws: &Workspace,
    action: &str,
    target: String,
    path: &str,
    body: Value,
) -> Result<Json<Value>, ApiError> {
    let summary = format!("opencode-router: {action} {target}");
    gate::approve(
        state,
        actor,
        &ws.id,
        action,
        summary.clone(),
        std::slice::from_ref(&target),
        Vec::new(),
    )
    .await?;
    let result = call(state, Method::POST, path, Some(body)).await;
    let result = result.and_then(|(status, value)| {
        if status.is_success() {
            Ok(value)
        } else {
            let message = value["error"]
                .as_str()
                .unwrap_or("opencode-router refused the change")
                .to_owned();
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "opencodeRouter_request_failed",
                message,
            )
            .with_details(json!({"status": status.as_u16(), "body": value})))
        }
    });
    let value = gate::audited(state, actor, &ws.id, action, &target, summary, result).await?;
    let mut out = json!({"ok": true, "persisted": true, "applied": true});
    if let (Some(map), Value::Object(extra)) = (out.as_object_mut(), value) {
        for (k, v) in extra {
            map.entry(k).or_insert(v);
        }
    }
    Ok(Json(out))
}

/// `GET …/opencode-router/identities/:channel`: this workspace's identity only.
pub(crate) async fn list_identities(
    State(state): State<SharedState>,
    Path((id, ch)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let ch = channel(&ch)?;
    let (_, value) = call(&state, Method::GET, &format!("/identities/{ch}"), None).await?;
    let mine = identity_id(&ws.id);
    let items: Vec<Value> = value["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["id"] == mine.as_str())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(json!({"ok": true, "items": items})))
}

/// `POST …/opencode-router/identities/:channel`: the body of the router's identity upsert,
/// with `id` and `directory` set from the workspace.
pub(crate) async fn upsert_identity(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path((id, ch)): Path<(String, String)>,
    Body(mut body): Body<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let ch = channel(&ch)?;
    let mine = identity_id(&ws.id);
    if let Some(given) = body.get("id").filter(|v| !v.is_null())
        && given != &json!(mine)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "identity_mismatch",
            format!("This workspace's identity is {mine}"),
        ));
    }
    body.remove("healthPort");
    body.insert("id".into(), json!(mine));
    body.insert("directory".into(), json!(ws.path.as_str()));
    let action = format!("opencodeRouter.{ch}.identity.upsert");
    write(
        &state,
        &actor,
        &ws,
        &action,
        mine,
        &format!("/identities/{ch}"),
        Value::Object(body),
    )
    .await
}

/// `DELETE …/opencode-router/identities/:channel/:identityId`.
pub(crate) async fn delete_identity(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path((id, ch, identity)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let ch = channel(&ch)?;
    let mine = identity_id(&ws.id);
    if identity != mine {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "identity_mismatch",
            format!("This workspace's identity is {mine}"),
        ));
    }
    let action = format!("opencodeRouter.{ch}.identity.delete");
    let summary = format!("opencode-router: {action} {mine}");
    gate::approve(
        &state,
        &actor,
        &ws.id,
        &action,
        summary.clone(),
        std::slice::from_ref(&mine),
        Vec::new(),
    )
    .await?;
    let result = call(
        &state,
        Method::DELETE,
        &format!("/identities/{ch}/{mine}"),
        None,
    )
    .await
    .map(|(_, v)| v);
    let value = gate::audited(&state, &actor, &ws.id, &action, &mine, summary, result).await?;
    Ok(Json(
        json!({"ok": true, "persisted": true, "applied": true, ch: value[ch].clone()}),
    ))
}

/// Query of the bindings listing.
#[derive(Debug, Deserialize)]
pub(crate) struct BindingsQuery {
    channel: Option<String>,
}

/// `GET …/opencode-router/bindings[?channel=]`: this workspace's identity's bindings.
pub(crate) async fn list_bindings(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Query(q): Query<BindingsQuery>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let mut path = format!("/bindings?identityId={}", identity_id(&ws.id));
    if let Some(ch) = q.channel {
        path.push_str(&format!("&channel={}", channel(&ch)?));
    }
    let (_, value) = call(&state, Method::GET, &path, None).await?;
    Ok(Json(json!({"ok": true, "items": value["items"].clone()})))
}

/// Body of `POST …/bindings`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Binding {
    channel: String,
    peer_id: String,
    directory: Option<String>,
}

/// `POST …/opencode-router/bindings` `{channel,peerId,directory?}` (empty directory clears).
pub(crate) async fn set_binding(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<Binding>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let ch = channel(&body.channel)?;
    let directory = body.directory.unwrap_or_else(|| ws.path.to_string());
    let action = if directory.is_empty() {
        "opencodeRouter.binding.clear"
    } else {
        "opencodeRouter.binding.set"
    };
    let target = format!("{ch}:{}", body.peer_id);
    let payload = json!({"channel": ch, "identityId": identity_id(&ws.id), "peerId": body.peer_id, "directory": directory});
    write(&state, &actor, &ws, action, target, "/bindings", payload).await
}

/// Body of `POST …/send`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Send {
    channel: String,
    text: String,
    peer_id: Option<String>,
    directory: Option<String>,
    auto_bind: Option<bool>,
}

/// `POST …/opencode-router/send` (collaborator; not gated, not blocked read-only).
pub(crate) async fn send(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Body(body): Body<Send>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let ch = channel(&body.channel)?;
    let payload = json!({
        "channel": ch, "identityId": identity_id(&ws.id), "text": body.text, "peerId": body.peer_id,
        "directory": body.directory.unwrap_or_else(|| ws.path.to_string()), "autoBind": body.auto_bind.unwrap_or(false),
    });
    let (status, value) = call(&state, Method::POST, "/send", Some(payload)).await?;
    if status.is_success() {
        Ok(Json(value))
    } else {
        Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "opencodeRouter_request_failed",
            value["error"].as_str().unwrap_or("send failed").to_owned(),
        )
        .with_details(json!({"status": status.as_u16(), "body": value})))
    }
}

/// Body of the legacy token routes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Tokens {
    token: Option<String>,
    bot_token: Option<String>,
    app_token: Option<String>,
}

/// `POST …/opencode-router/telegram-token` `{token}`: the workspace identity's bot token.
pub(crate) async fn telegram_token(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<Tokens>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let token = body.token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        ApiError::invalid_payload("token is required").with_details(json!({"field": "token"}))
    })?;
    let mine = identity_id(&ws.id);
    let payload = json!({"id": mine, "token": token, "directory": ws.path.as_str()});
    write(
        &state,
        &actor,
        &ws,
        "opencodeRouter.telegram.set-token",
        mine,
        "/identities/telegram",
        payload,
    )
    .await
}

/// `POST …/opencode-router/slack-tokens` `{botToken,appToken}`.
pub(crate) async fn slack_tokens(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<Tokens>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let (Some(bot), Some(app)) = (body.bot_token, body.app_token) else {
        return Err(
            ApiError::invalid_payload("botToken and appToken are required")
                .with_details(json!({"field": "botToken"})),
        );
    };
    let mine = identity_id(&ws.id);
    let payload =
        json!({"id": mine, "botToken": bot, "appToken": app, "directory": ws.path.as_str()});
    write(
        &state,
        &actor,
        &ws,
        "opencodeRouter.slack.set-tokens",
        mine,
        "/identities/slack",
        payload,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_ids_follow_the_reference() {
        assert_eq!(identity_id("ws_0123abcd"), "ws_0123abcd");
        assert_eq!(identity_id("--a b/c--"), "a-b-c");
        assert_eq!(identity_id("///"), "default");
        assert_eq!(identity_id(&"x".repeat(60)).len(), 48);
    }
}
