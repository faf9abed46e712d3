//! Route layers for the per-route rules of §A8/§A13: read-only mode and the token scope a
//! route needs.
//!
//! Threat: a mutating route that forgets a check. The checks live in layers attached where a
//! route is declared (`routes::mod`), not in handlers, so a write route is visibly wrapped in
//! [`write`] and its handler cannot run for a viewer or on a read-only server. Order follows
//! the reference: authentication (the group guard) first, then read-only, then scope.

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use crate::approvals::ApprovalInput;
use crate::audit::{AuditEntry, Outcome};
use crate::auth::{Actor, Scope};
use crate::error::ApiError;
use crate::state::SharedState;

/// Wraps a mutating route: 403 `read_only` on a read-only server, then 403 `forbidden` below
/// collaborator.
pub(crate) fn write(
    state: &SharedState,
    route: MethodRouter<SharedState>,
) -> MethodRouter<SharedState> {
    route
        .route_layer(middleware::from_fn(require_collaborator))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_writable,
        ))
}

async fn require_writable(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    if state.config.read_only {
        return ApiError::read_only().into_response();
    }
    next.run(req).await
}

async fn require_collaborator(req: Request, next: Next) -> Response {
    let checked = match req.extensions().get::<Actor>() {
        Some(actor) => actor.require_scope(Scope::Collaborator),
        // The group guard always sets the actor; a route outside one is a wiring bug.
        None => Err(ApiError::internal()),
    };
    match checked {
        Ok(()) => next.run(req).await,
        Err(err) => err.into_response(),
    }
}

/// Asks for the host's approval of a write (§A9); a denial or timeout is audited as
/// `denied` (one line per target) and answered 403 `write_denied`.
pub(crate) async fn approve(
    state: &SharedState,
    actor: &Actor,
    workspace_id: &str,
    action: &str,
    summary: String,
    targets: &[String],
    paths: Vec<String>,
) -> Result<(), ApiError> {
    let decision = state
        .approvals
        .request_approval(ApprovalInput {
            workspace_id: workspace_id.to_owned(),
            action: action.to_owned(),
            summary: summary.clone(),
            paths,
            actor: actor.clone(),
        })
        .await;
    match decision.into_error() {
        None => Ok(()),
        Some(err) => {
            let entries = targets
                .iter()
                .map(|t| {
                    AuditEntry::new(
                        workspace_id,
                        actor,
                        action,
                        t.clone(),
                        summary.clone(),
                        Outcome::Denied,
                    )
                })
                .collect();
            state.audit(entries).await;
            Err(err)
        }
    }
}
/// Audits the result of a single write: `ok` or `failed`, then passes it on.
pub(crate) async fn audited<T>(
    state: &SharedState,
    actor: &Actor,
    workspace_id: &str,
    action: &str,
    target: &str,
    summary: String,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    let outcome = if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    let entry = AuditEntry::new(workspace_id, actor, action, target, summary, outcome);
    state.audit(vec![entry]).await;
    result
}

/// Wraps a route that needs collaborator scope but also works read-only (engine reload,
/// router `send`; §A13).
pub(crate) fn collaborator(route: MethodRouter<SharedState>) -> MethodRouter<SharedState> {
    route.route_layer(middleware::from_fn(require_collaborator))
}
