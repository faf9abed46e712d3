//! The control API: how the host drives the gate (policy, one-off allows, credentials) and
//! receives its audit stream.
//!
//! Threat: the agent (on the same internal network) calling this API to widen its own policy,
//! read keys, or forge audit records. Every route, `/health` included, needs
//! `Authorization: Bearer <token>`, compared in constant time; the token reaches the gate
//! through the gate container's own environment (`OPENWORK_GATE_TOKEN`), which the agent
//! cannot read. No route returns a key. Credentials are replaceable (the host may rotate a key
//! mid-run), always as a whole set.
//!
//! Left open: the API is plain HTTP; on the internal network the agent cannot observe the
//! host's traffic to the gate's other interface, but bind this listener to the host-facing
//! network where the topology allows it. There is no rate limit on wrong tokens (a 256-bit
//! token makes guessing pointless).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::inject::{CredentialSpec, credentials_from_specs};
use crate::policy::file::PolicyFile;
use crate::policy::{Extras, Policy};
use crate::secret::Secret;
use crate::state::Gate;

/// State of the control listener.
#[derive(Clone)]
struct Control {
    gate: Arc<Gate>,
    token: Arc<Secret>,
}

/// The control API's router (see the crate README for the routes).
pub fn router(gate: Arc<Gate>, token: Secret) -> Router {
    let state = Control {
        gate,
        token: Arc::new(token),
    };
    Router::new()
        .route("/health", get(health))
        .route("/policy", put(put_policy).get(get_policy))
        .route("/allow", post(allow))
        .route("/credentials", put(put_credentials))
        .route("/audit", get(audit))
        .layer(middleware::from_fn_with_state(state.clone(), bearer))
        .with_state(state)
}

async fn bearer(State(state): State<Control>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if state.token.is_empty() || !state.token.ct_eq(presented.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "missing or wrong bearer token"})),
        )
            .into_response();
    }
    next.run(req).await
}

async fn health(State(state): State<Control>) -> Json<serde_json::Value> {
    let policy = state.gate.policy();
    Json(json!({
        "ok": true,
        "mode": policy.mode(),
        "rules": policy.rules().len(),
        "providers": state.gate.providers(),
    }))
}

async fn get_policy(State(state): State<Control>) -> Json<serde_json::Value> {
    Json(state.gate.policy().to_file_json())
}

async fn put_policy(State(state): State<Control>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    match PolicyFile::from_json(&text, "PUT /policy") {
        Ok(file) => {
            let policy = Policy::build(&file, &Extras::default());
            let rules = policy.rules().len();
            state.gate.replace_policy(policy);
            tracing::info!(rules, "sandbox policy replaced");
            Json(json!({"ok": true, "rules": rules})).into_response()
        }
        Err(e) => bad_request(e.to_string()),
    }
}

/// `POST /allow` body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowBody {
    host: String,
    port: u16,
}

async fn allow(State(state): State<Control>, body: Bytes) -> Response {
    let body: AllowBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return bad_request(format!("expected {{\"host\":…,\"port\":…}}: {e}")),
    };
    match state.gate.allow_once(&body.host, body.port) {
        Ok(entry) => {
            tracing::info!(entry = %entry, "allowed for this run");
            Json(json!({"ok": true, "allowed": entry.to_string()})).into_response()
        }
        Err(e) => bad_request(e.to_string()),
    }
}

async fn put_credentials(State(state): State<Control>, body: Bytes) -> Response {
    let specs: BTreeMap<String, CredentialSpec> = match serde_json::from_slice(&body) {
        Ok(specs) => specs,
        Err(e) => {
            // serde_json's message may quote the offending value: keep only the position.
            return bad_request(format!(
                "expected {{\"<provider>\": {{\"baseUrl\", \"key\", \"header\"?}}}} \
                 (invalid at line {} column {})",
                e.line(),
                e.column()
            ));
        }
    };
    match credentials_from_specs(specs) {
        Ok(credentials) => {
            let providers: Vec<String> = credentials.keys().cloned().collect();
            state.gate.set_credentials(credentials);
            tracing::info!(?providers, "provider credentials set");
            Json(json!({"ok": true, "providers": providers})).into_response()
        }
        Err(e) => bad_request(e.to_string()),
    }
}

/// Streams audit records as JSON lines until the client goes away.
async fn audit(State(state): State<Control>) -> Response {
    let rx = state.gate.subscribe_audit();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = match rx.recv().await {
            Ok(record) => record.to_json_line(),
            Err(RecvError::Lagged(n)) => json!({"lagged": n}).to_string(),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(format!("{line}\n")), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn bad_request(error: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response()
}
