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
