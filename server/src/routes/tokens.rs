//! Scoped tokens: `GET /tokens`, `POST /tokens`, `DELETE /tokens/:id` (host
//! auth, reference §A10).
//!
//! Deliberate deviation: these work in read-only mode. Tokens are server
//! state, not workspace writes, and `openwork start --read-only` must be able
//! to mint its owner token (reference §A13, weakness W13).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Scope;
use crate::error::ApiError;
use crate::routes::body::{Body, Loose};
use crate::state::SharedState;

/// Body of `POST /tokens`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateToken {
    /// Any value that is not a known scope is 400 `invalid_scope`.
    scope: Option<Loose<Scope>>,
    label: Option<String>,
}

/// Longest accepted label, in characters.
const MAX_LABEL_CHARS: usize = 200;

/// `{"items":[{"id","scope","createdAt","label"?}]}`, newest first.
pub(crate) async fn list(State(state): State<SharedState>) -> Json<Value> {
    Json(json!({ "items": state.auth.list() }))
}

/// Body `{"scope":"owner"|"collaborator"|"viewer","label"?}`; answers 201
/// `{"id","token","scope","createdAt","label"?}`.
pub(crate) async fn create(
    State(state): State<SharedState>,
    Body(body): Body<CreateToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let scope = body.scope.and_then(Loose::get).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Token scope must be owner, collaborator or viewer",
        )
    })?;
    let label = match body.label {
        None => None,
        Some(s) if s.chars().count() <= MAX_LABEL_CHARS => {
            Some(s.trim().to_owned()).filter(|s| !s.is_empty())
        }
        Some(_) => {
            return Err(ApiError::invalid_payload(format!(
                "label must be at most {MAX_LABEL_CHARS} characters"
            )));
        }
    };
    let issued = state.auth.issue(scope, label)?;
    let mut out = json!({
        "id": issued.id,
        "token": issued.token.expose(),
        "scope": issued.scope,
        "createdAt": issued.created_at,
    });
    if let (Some(label), Some(map)) = (&issued.label, out.as_object_mut()) {
        map.insert("label".into(), json!(label));
    }
    Ok((StatusCode::CREATED, Json(out)))
}

/// `{"ok":true}`, or 404 `token_not_found`.
pub(crate) async fn revoke(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state.auth.revoke(&id)? {
        Ok(Json(json!({"ok": true})))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "token_not_found",
            "Token not found",
        ))
    }
}
