//! CORS headers on every response, and `OPTIONS` on any path answered with
//! 204 before authentication (reference §A7).
//!
//! Deliberately never sends `Access-Control-Allow-Credentials`; an origin that
//! is not listed gets no CORS headers at all.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::CorsOrigins;
use crate::state::SharedState;

const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-OpenWork-Host-Token, X-OpenWork-Client-Id, X-OpenCode-Directory";
const ALLOW_METHODS: &str = "GET,POST,PATCH,DELETE,OPTIONS";

/// Adds the CORS headers for `origin` to `headers`, if the origin is allowed.
pub(crate) fn apply(origins: &CorsOrigins, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
    let allow = if origins.allows_any() {
        HeaderValue::from_static("*")
    } else {
        match origin {
            Some(o) if o.to_str().is_ok_and(|s| origins.allows(s)) => o.clone(),
            _ => return,
        }
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
}

/// Middleware: answers `OPTIONS` with 204 and adds CORS headers to everything.
pub(crate) async fn layer(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut response = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    apply(&state.config.cors, origin.as_ref(), response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_origin_is_echoed_and_others_get_nothing() {
        let origins = CorsOrigins::parse("http://a.test");
        let mut h = HeaderMap::new();
        apply(
            &origins,
            Some(&HeaderValue::from_static("http://a.test")),
            &mut h,
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://a.test");
        assert_eq!(h[header::VARY], "Origin");
        let mut h = HeaderMap::new();
        apply(
            &origins,
            Some(&HeaderValue::from_static("http://b.test")),
            &mut h,
        );
        assert!(h.is_empty());
    }

    #[test]
    fn star_allows_everyone() {
        let mut h = HeaderMap::new();
        apply(&CorsOrigins::default(), None, &mut h);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    }
}
