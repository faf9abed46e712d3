//! The HTTP routes and the guards in front of them.
//!
//! Routes are grouped by the authentication they need (`none`, `client`,
//! `host`); each group has one guard layer, so a route cannot be added to a
//! group and forget its check. The guard puts the authenticated [`Actor`] in
//! the request extensions and tags the response with its [`AuthMode`] for the
//! request log.

mod approvals;
mod audit;
pub(crate) mod body;
mod commands;
mod config;
mod engine;
mod files;
mod files_write;
mod frontmatter;
mod gate;
mod health;
mod inbox;
mod mcp;
mod mount;
mod opencode_api;
mod plugins;
mod portable;
mod proxy;
mod router_manage;
mod router_proxy;
mod skills;
mod status;
mod tokens;
mod workspaces;
pub(crate) mod ws_fs;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, patch, post};

use crate::auth::Actor;
use crate::error::ApiError;
use crate::request_log::AuthMode;
use crate::state::SharedState;

/// Default largest request body accepted (the original had no explicit limit).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Builds the whole application: the `/w/:id` mount in front of the routes, then CORS and
/// the request log around everything (so both see the path as the client sent it).
pub(crate) fn app(state: SharedState) -> Router {
    let core = routes(state.clone());
    let enter = {
        let (state, core) = (state.clone(), core.clone());
        move |req: Request| mount::enter(state.clone(), core.clone(), req)
    };
    Router::new()
        .route("/w/{id}", any(enter.clone()))
        .route("/w/{id}/{*rest}", any(enter))
        .fallback_service(core)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::cors::layer,
        ))
        .layer(middleware::from_fn_with_state(
            state,
            crate::request_log::layer,
        ))
}

/// The routes without a prefix, each group behind its guard.
fn routes(state: SharedState) -> Router {
    let open = Router::new()
        .route("/health", get(health::health))
        .route_layer(middleware::map_response(tag_none));
    let client = Router::new()
        .route("/status", get(status::status))
        .route("/whoami", get(status::whoami))
        .route("/capabilities", get(status::capabilities))
        .route("/workspaces", get(status::workspaces))
        .route(
            "/workspace/{id}/config",
            get(config::get_config).merge(gate::write(&state, patch(config::patch_config))),
        )
        .route("/workspace/{id}/audit", get(audit::list))
        .route(
            "/workspace/{id}/skills",
            get(skills::list).merge(gate::write(&state, post(skills::upsert))),
        )
        .route(
            "/workspace/{id}/skills/{name}",
            get(skills::get_one).merge(gate::write(&state, delete(skills::remove))),
        )
        .route("/hub/skills", get(skills::hub_disabled))
        .route(
            "/workspace/{id}/engine/reload",
            gate::collaborator(post(engine::reload)),
        )
        .route(
            "/workspace/{id}/sessions/{session}",
            gate::write(&state, delete(engine::delete_session)),
        )
        .route("/workspace/{id}/events", get(engine::events))
        .route("/workspace/{id}/export", get(portable::export))
        .route(
            "/workspace/{id}/opencode-router/identities/{channel}",
            gate::collaborator(get(router_manage::list_identities))
                .merge(gate::write(&state, post(router_manage::upsert_identity))),
        )
        .route(
            "/workspace/{id}/opencode-router/identities/{channel}/{identity}",
            gate::write(&state, delete(router_manage::delete_identity)),
        )
        .route(
            "/workspace/{id}/opencode-router/bindings",
            gate::collaborator(get(router_manage::list_bindings))
                .merge(gate::write(&state, post(router_manage::set_binding))),
        )
        .route(
            "/workspace/{id}/opencode-router/send",
            gate::collaborator(post(router_manage::send)),
        )
        .route(
            "/workspace/{id}/opencode-router/telegram-token",
            gate::write(&state, post(router_manage::telegram_token)),
        )
        .route(
            "/workspace/{id}/opencode-router/slack-tokens",
            gate::write(&state, post(router_manage::slack_tokens)),
        )
        .route(
            "/workspace/{id}/import",
            gate::write(&state, post(portable::import)),
        )
        .route(
            "/workspace/{id}/inbox",
            get(inbox::list_inbox).merge(
                gate::write(&state, post(inbox::upload)).layer(DefaultBodyLimit::max(
                    usize::try_from(state.config.inbox_max_bytes)
                        .unwrap_or(usize::MAX)
                        .saturating_add(1024 * 1024),
                )),
            ),
        )
        .route("/workspace/{id}/inbox/{file}", get(inbox::get_inbox))
        .route("/workspace/{id}/artifacts", get(inbox::list_artifacts))
        .route("/workspace/{id}/artifacts/{file}", get(inbox::get_artifact))
        .route(
            "/workspace/{id}/skills/hub/{name}",
            gate::write(&state, post(skills::hub_disabled)),
        )
        .route(
            "/workspace/{id}/commands",
            get(commands::list).merge(gate::write(&state, post(commands::upsert))),
        )
        .route(
            "/workspace/{id}/commands/{name}",
            gate::write(&state, delete(commands::remove)),
        )
        .route(
            "/workspace/{id}/plugins",
            get(plugins::list).merge(gate::write(&state, post(plugins::add))),
        )
        .route(
            "/workspace/{id}/plugins/{name}",
            gate::write(&state, delete(plugins::remove)),
        )
        .route(
            "/workspace/{id}/mcp",
            get(mcp::list).merge(gate::write(&state, post(mcp::add))),
        )
        .route(
            "/workspace/{id}/mcp/{name}",
            gate::write(&state, delete(mcp::remove)),
        )
        .route(
            "/workspace/{id}/mcp/{name}/auth",
            gate::write(&state, delete(mcp::remove_auth)),
        )
        .route("/workspace/{id}/files/sessions", post(files::create))
        .route("/files/sessions/{sid}", delete(files::close))
        .route("/files/sessions/{sid}/renew", post(files::renew))
        .route(
            "/files/sessions/{sid}/catalog/snapshot",
            get(files::snapshot),
        )
        .route("/files/sessions/{sid}/catalog/events", get(files::events))
        .route("/files/sessions/{sid}/read-batch", post(files::read_batch))
        .route(
            "/files/sessions/{sid}/write-batch",
            gate::write(&state, post(files_write::write_batch)),
        )
        .route(
            "/files/sessions/{sid}/ops",
            gate::write(&state, post(files_write::ops)),
        )
        .route("/runtime/versions", get(router_proxy::versions))
        .route("/opencode", any(proxy::proxy))
        .route("/opencode/{*rest}", any(proxy::proxy))
        .route_layer(middleware::from_fn_with_state(state.clone(), client_guard));
    let host = Router::new()
        .route("/approvals", get(approvals::list))
        .route("/approvals/{id}", post(approvals::reply))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/runtime/upgrade", post(router_proxy::upgrade))
        .route("/workspaces/{id}/activate", post(workspaces::activate))
        .route(
            "/workspaces/{id}",
            gate::write(&state, delete(workspaces::delete)),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), host_guard));
    // The router proxy decides its auth per path (client, collaborator or host).
    let router = Router::new()
        .route("/opencode-router", any(router_proxy::proxy))
        .route("/opencode-router/{*rest}", any(router_proxy::proxy));
    Router::new()
        .merge(open)
        .merge(router)
        .merge(client)
        .merge(host)
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn tag_none(mut response: Response) -> Response {
    response.extensions_mut().insert(AuthMode::None);
    response
}

async fn guarded(
    mode: AuthMode,
    result: Result<Actor, ApiError>,
    mut req: Request,
    next: Next,
) -> Response {
    let mut response = match result {
        Ok(actor) => {
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        Err(err) => err.into_response(),
    };
    response.extensions_mut().insert(mode);
    response
}

async fn client_guard(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let result = state.auth.client(req.headers());
    guarded(AuthMode::Client, result, req, next).await
}

async fn host_guard(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let result = state.auth.host(req.headers());
    guarded(AuthMode::Host, result, req, next).await
}
