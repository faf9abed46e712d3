//! The control/health HTTP API on loopback: `/health`, identities, groups, bindings and `send`.
//!
//! Threats handled here (the original had none of these, W-R1): a web page in the user's
//! browser driving the API by CSRF or DNS rebinding, and any local process that can reach the
//! port. Every route but `GET /health` needs `Authorization: Bearer <token>` (compared in
//! constant time); a request whose `Host` is not a loopback name, or that carries an `Origin`,
//! is refused before anything else (no CORS is ever sent, so browsers cannot read answers);
//! writes must be `application/json` (no "simple" cross-site POST) and at most 1 MiB. Bot
//! tokens are never returned. Left open: a local process that can read the token.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::config::{Access, ConfigFile, SlackApp, TelegramBot, normalize_id};
use crate::outbound::SendRequest;
use crate::service::Service;
use crate::store::ChatKey;

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "ok": false, "error": msg.into() }))).into_response()
}

/// An error answer, small enough to return in a `Result`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        err(self.0, self.1)
    }
}

/// Whether `host` (a Host header value) names the loopback interface.
pub fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "127.0.0.1" | "localhost" | "::1"
    )
}

async fn guard(State(svc): State<Arc<Service>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !loopback_host(host) {
        return err(StatusCode::FORBIDDEN, "host not allowed: use 127.0.0.1");
    }
    if headers.contains_key(header::ORIGIN) {
        return err(
            StatusCode::FORBIDDEN,
            "cross-origin requests are not allowed",
        );
    }
    let path = req.uri().path();
    let public = req.method() == axum::http::Method::GET && (path == "/" || path == "/health");
    if !public {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok: bool = given.as_bytes().ct_eq(svc.token.as_bytes()).into();
        if !ok || given.is_empty() {
            return err(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
        let method = req.method();
        if (method == axum::http::Method::POST || method == axum::http::Method::PUT)
            && !headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"))
        {
            return err(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            );
        }
    }
    next.run(req).await
}

/// The control API's router.
pub fn router(svc: Arc<Service>) -> Router {
    Router::new()
        .route("/", get(health))
        .route("/health", get(health))
        .route(
            "/identities/telegram",
            get(list_telegram).post(add_telegram),
        )
        .route("/identities/telegram/{id}", delete(remove_telegram))
        .route("/identities/slack", get(list_slack).post(add_slack))
        .route("/identities/slack/{id}", delete(remove_slack))
        .route("/config/groups", get(get_groups).post(set_groups))
        .route("/bindings", get(list_bindings).post(set_binding))
        .route("/send", axum::routing::post(send))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "Not found") })
        .layer(middleware::from_fn_with_state(svc.clone(), guard))
        .layer(DefaultBodyLimit::max(1 << 20))
        .with_state(svc)
}

/// The `/health` document (also used by `status`).
pub async fn health_doc(svc: &Service) -> (bool, Value) {
    let app = &svc.app;
    let h = app.opencode.health().await;
    let mut opencode = json!({
        "url": app.opencode.url(),
        "healthy": h.healthy,
        "events": app.permissions.events_connected.load(Ordering::Relaxed),
    });
    if let Some(v) = h.version {
        opencode["version"] = json!(v);
    }
    let tg = app.chats.statuses("telegram");
    let sl = app.chats.statuses("slack");
    let running = |v: &[crate::chat::IdentityStatus]| {
        v.iter()
            .any(|s| s.state == crate::chat::IdentityState::Running)
    };
    let a = &app.activity;
    let body = json!({
        "ok": h.healthy,
        "instanceId": app.instance_id,
        "startedAt": app.started_at,
        "opencode": opencode,
        "channels": { "telegram": running(&tg), "whatsapp": false, "slack": running(&sl) },
        "identities": { "telegram": tg, "slack": sl },
        "config": {
            "groupsEnabled": app.groups_enabled(),
            "permissionMode": app.settings.permission_mode.as_str(),
        },
        "activity": {
            "dayStart": 0,
            "inboundToday": a.inbound.load(Ordering::Relaxed),
            "outboundToday": a.outbound.load(Ordering::Relaxed),
            "lastInboundAt": a.last_inbound_at.load(Ordering::Relaxed),
            "lastOutboundAt": a.last_outbound_at.load(Ordering::Relaxed),
        },
        "agent": { "scope": "workspace", "path": app.settings.root, "loaded": false },
    });
    (h.healthy, body)
}

async fn health(State(svc): State<Arc<Service>>) -> Response {
    let (healthy, body) = health_doc(&svc).await;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

fn identity_items(svc: &Service, channel: &str) -> Value {
    let states = svc.app.chats.statuses(channel);
    let ids = svc.app.identities();
    let items: Vec<Value> = match channel {
        "telegram" => ids
            .telegram
            .iter()
            .map(|b| {
                let st = states.iter().find(|s| s.id == b.id);
                json!({ "id": b.id, "enabled": b.enabled,
                        "running": st.is_some_and(|s| s.state == crate::chat::IdentityState::Running),
                        "state": st.map(|s| serde_json::to_value(&s.state).unwrap_or(Value::Null)),
                        "access": b.access, "pairingRequired": b.access == Access::Private,
                        "directory": b.directory })
            })
            .collect(),
        _ => ids
            .slack
            .iter()
            .map(|a| {
                let st = states.iter().find(|s| s.id == a.id);
                json!({ "id": a.id, "enabled": a.enabled,
                        "running": st.is_some_and(|s| s.state == crate::chat::IdentityState::Running),
                        "state": st.map(|s| serde_json::to_value(&s.state).unwrap_or(Value::Null)),
                        "directory": a.directory })
            })
            .collect(),
    };
    json!({ "ok": true, "items": items })
}

async fn list_telegram(State(svc): State<Arc<Service>>) -> Response {
    Json(identity_items(&svc, "telegram")).into_response()
}

async fn list_slack(State(svc): State<Arc<Service>>) -> Response {
    Json(identity_items(&svc, "slack")).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TelegramBody {
    #[serde(default)]
    id: Option<String>,
    token: String,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    directory: Option<String>,
    #[serde(default)]
    access: Option<Access>,
    #[serde(default)]
    pairing_code_hash: Option<String>,
    #[serde(default)]
    pairing_code: Option<String>,
}

fn edit_config(svc: &Service, f: impl FnOnce(&mut ConfigFile)) -> Result<(), ApiError> {
    let mut file = ConfigFile::load(&svc.app.settings.paths.config)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    f(&mut file);
    file.save()
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    svc.reload();
    Ok(())
}

fn check_dir(svc: &Service, dir: &Option<String>) -> Result<Option<String>, ApiError> {
    match dir.as_deref().filter(|d| !d.is_empty()) {
        None => Ok(None),
        Some(d) => crate::pipeline::confine(&svc.app.settings.root, d)
            .map(|p| Some(p.display().to_string()))
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

async fn add_telegram(State(svc): State<Arc<Service>>, Json(body): Json<TelegramBody>) -> Response {
    let id = normalize_id(body.id.as_deref().unwrap_or("default"));
    if id == "env" {
        return err(StatusCode::BAD_REQUEST, "identity id env is reserved");
    }
    if body.token.trim().is_empty() {
        return err(StatusCode::BAD_REQUEST, "token is required");
    }
    let directory = match check_dir(&svc, &body.directory) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let access = body.access.unwrap_or_default();
    let mut new_code = None;
    let hash = match (access, body.pairing_code, body.pairing_code_hash) {
        (Access::Public, _, _) => None,
        (_, Some(code), _) => Some(crate::pairing::hash_code(&code)),
        (_, None, Some(h)) => Some(h),
        (_, None, None) => {
            let code = crate::pairing::new_code();
            let h = crate::pairing::hash_code(&code);
            new_code = Some(code);
            Some(h)
        }
    };
    let bot = TelegramBot {
        id: id.clone(),
        token: body.token.trim().into(),
        enabled: body.enabled.unwrap_or(true),
        directory,
        access,
        pairing_code_hash: hash,
    };
    if let Err(r) = edit_config(&svc, |f| f.upsert_telegram(&bot)) {
        return r.into_response();
    }
    let mut t = json!({ "id": id, "enabled": bot.enabled, "access": access,
                        "pairingRequired": access == Access::Private, "applied": true });
    if let Some(code) = new_code {
        t["pairingCode"] = json!(code);
    }
    Json(json!({ "ok": true, "telegram": t })).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlackBody {
    #[serde(default)]
    id: Option<String>,
    bot_token: String,
    app_token: String,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    directory: Option<String>,
}

async fn add_slack(State(svc): State<Arc<Service>>, Json(body): Json<SlackBody>) -> Response {
    let id = normalize_id(body.id.as_deref().unwrap_or("default"));
    if id == "env" {
        return err(StatusCode::BAD_REQUEST, "identity id env is reserved");
    }
    let directory = match check_dir(&svc, &body.directory) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let app = SlackApp {
        id: id.clone(),
        bot_token: body.bot_token.trim().into(),
        app_token: body.app_token.trim().into(),
        enabled: body.enabled.unwrap_or(true),
        directory,
    };
    if let Err(r) = edit_config(&svc, |f| f.upsert_slack(&app)) {
        return r.into_response();
    }
    Json(json!({ "ok": true, "slack": { "id": id, "enabled": app.enabled, "applied": true } }))
        .into_response()
}

async fn remove_identity(svc: &Service, channel: &'static str, id: &str) -> Response {
    let id = normalize_id(id);
    if id == "env" {
        return err(StatusCode::BAD_REQUEST, "identity id env is reserved");
    }
    let mut deleted = false;
    if let Err(r) = edit_config(svc, |f| deleted = f.remove_identity(channel, &id)) {
        return r.into_response();
    }
    Json(json!({ "ok": true, channel: { "id": id, "deleted": deleted } })).into_response()
}

async fn remove_telegram(State(svc): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    remove_identity(&svc, "telegram", &id).await
}

async fn remove_slack(State(svc): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    remove_identity(&svc, "slack", &id).await
}

async fn get_groups(State(svc): State<Arc<Service>>) -> Response {
    Json(json!({ "ok": true, "groupsEnabled": svc.app.groups_enabled() })).into_response()
}

#[derive(Deserialize)]
struct GroupsBody {
    enabled: bool,
}

async fn set_groups(State(svc): State<Arc<Service>>, Json(b): Json<GroupsBody>) -> Response {
    if let Err(r) = edit_config(&svc, |f| {
        let _ = f.set("groupsEnabled", Value::Bool(b.enabled));
    }) {
        return r.into_response();
    }
    svc.app.set_groups_enabled(b.enabled);
    Json(json!({ "ok": true, "groupsEnabled": b.enabled })).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingsQuery {
    channel: Option<String>,
    identity_id: Option<String>,
}

async fn list_bindings(
    State(svc): State<Arc<Service>>,
    Query(q): Query<BindingsQuery>,
) -> Response {
    match svc
        .app
        .store
        .bindings(q.channel.as_deref(), q.identity_id.as_deref())
    {
        Ok(items) => Json(json!({ "ok": true, "items": items })).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingBody {
    channel: String,
    #[serde(default)]
    identity_id: Option<String>,
    peer_id: String,
    #[serde(default)]
    directory: Option<String>,
}

async fn set_binding(State(svc): State<Arc<Service>>, Json(b): Json<BindingBody>) -> Response {
    if b.channel != "telegram" && b.channel != "slack" {
        return err(StatusCode::BAD_REQUEST, "channel must be telegram or slack");
    }
    if b.channel == "telegram" && b.peer_id.parse::<i64>().is_err() {
        return err(StatusCode::BAD_REQUEST, "Telegram peerId must be a number");
    }
    let identity = normalize_id(b.identity_id.as_deref().unwrap_or("default"));
    let key = ChatKey::new(&b.channel, &identity, &b.peer_id);
    let result = match check_dir(&svc, &b.directory) {
        Err(r) => return r.into_response(),
        Ok(None) => svc.app.store.clear_binding(&key).map(|_| ()),
        Ok(Some(d)) => svc.app.store.set_binding(&key, &d),
    };
    match result {
        Ok(()) => Json(json!({ "ok": true })).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn send(State(svc): State<Arc<Service>>, Json(req): Json<SendRequest>) -> Response {
    match crate::outbound::send(&svc.app, req).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => err(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_only() {
        assert!(loopback_host("127.0.0.1:3005"));
        assert!(loopback_host("localhost"));
        assert!(loopback_host("[::1]:80"));
        assert!(!loopback_host("evil.example:3005"));
        assert!(!loopback_host("127.0.0.1.evil.example"));
        assert!(!loopback_host(""));
    }
}
