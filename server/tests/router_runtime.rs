//! `/opencode-router` proxy and `/runtime/*` forwards against recording stand-ins: the 404/503
//! shapes, the per-path auth rule, the secrets added (and the caller's not forwarded), the mount.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::StatusCode;
use common::files::{call, get, issue, post};
use common::{CLIENT, HOST, config, start};
use openwork_server::config::Secret;
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// A stand-in that records (method, path?query, authorization) and answers `status` with JSON.
async fn stand_in(status: StatusCode) -> (u16, Seen) {
    let seen: Seen = Arc::default();
    let rec = seen.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let rec = rec.clone();
        async move {
            let auth = req
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            rec.lock()
                .unwrap()
                .push((req.method().to_string(), req.uri().to_string(), auth));
            (status, axum::Json(json!({"ok": true, "from": "stand-in"})))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn host_call(s: &common::TestServer, method: reqwest::Method, path: &str) -> (u16, Value) {
    let resp = s
        .http
        .request(method, s.url(path))
        .header("X-OpenWork-Host-Token", HOST)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn router_unconfigured_and_unreachable() {
    let s = start(config()).await;
    let (status, body) = get(&s, "/opencode-router/health", CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("opencodeRouter_unconfigured"))
    );
    let mut c = config();
    let port = free_port();
    c.router_port = Some(port);
    let s = start(c).await;
    let (status, body) = get(&s, "/opencode-router/health", CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("opencodeRouter_unreachable"))
    );
    assert_eq!(body["details"]["port"], port);
    assert_eq!(
        body["details"]["targetUrl"],
        format!("http://127.0.0.1:{port}/health")
    );
}

#[tokio::test]
async fn router_auth_policy_and_secrets() {
    let (port, seen) = stand_in(StatusCode::OK).await;
    let mut c = config();
    c.router_port = Some(port);
    c.router_token = Some(Secret::new("router-secret"));
    let dir = tempfile::tempdir().unwrap();
    let ws = openwork_server::workspace::Workspace::local(
        camino::Utf8PathBuf::from_path_buf(dir.path().canonicalize().unwrap()).unwrap(),
    );
    let id = ws.id.clone();
    c.workspaces = vec![ws];
    let s = start(c).await;
    let viewer = issue(&s, "viewer").await;
    let (status, body) = get(&s, "/opencode-router/health", &viewer).await;
    assert_eq!((status, body["from"].as_str()), (200, Some("stand-in")));
    let (status, _) = get(&s, "/opencode-router/bindings?channel=telegram", &viewer).await;
    assert_eq!(status, 403);
    let (status, _) = get(&s, "/opencode-router/bindings?channel=telegram", CLIENT).await;
    assert_eq!(status, 200);
    let (status, _) = post(&s, "/opencode-router/send", CLIENT, json!({"text": "hi"})).await;
    assert_eq!(status, 401, "sending needs host auth");
    let (status, _) = host_call(&s, reqwest::Method::POST, "/opencode-router/send").await;
    assert_eq!(status, 200);
    let (status, _) = get(&s, "/opencode-router/health", "wrong").await;
    assert_eq!(status, 401);
    // Under the mount, with the host token alone for a host path.
    let (status, _) = host_call(
        &s,
        reqwest::Method::GET,
        &format!("/w/{id}/opencode-router/config/groups"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = get(&s, &format!("/w/{id}/opencode-router/health"), CLIENT).await;
    assert_eq!(status, 200);
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|(_, p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/health",
            "/bindings?channel=telegram",
            "/send",
            "/config/groups",
            "/health"
        ]
    );
    assert!(
        seen.iter()
            .all(|(_, _, a)| a.as_deref() == Some("Bearer router-secret")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn runtime_routes_forward_with_the_control_token() {
    let s = start(config()).await;
    let (status, body) = get(&s, "/runtime/versions", CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("runtime_control_unconfigured"))
    );
    let (port, seen) = stand_in(StatusCode::ACCEPTED).await;
    let mut c = config();
    c.control_base_url = Some(format!("http://127.0.0.1:{port}"));
    c.control_token = Some(Secret::new("control-secret"));
    let s = start(c).await;
    let viewer = issue(&s, "viewer").await;
    let (status, body) = get(&s, "/runtime/versions", &viewer).await;
    assert_eq!((status, body["from"].as_str()), (202, Some("stand-in")));
    let (status, _) = post(&s, "/runtime/upgrade", CLIENT, json!({})).await;
    assert_eq!(status, 401, "upgrade needs host auth");
    let (status, _) = host_call(&s, reqwest::Method::POST, "/runtime/upgrade").await;
    assert_eq!(status, 202);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (
                "GET".into(),
                "/runtime/versions".into(),
                Some("Bearer control-secret".into())
            ),
            (
                "POST".into(),
                "/runtime/upgrade".into(),
                Some("Bearer control-secret".into())
            ),
        ]
    );
    let _ = call;
}

#[tokio::test]
async fn workspace_router_management_forwards_with_derived_identity() {
    let (port, seen) = stand_in(StatusCode::OK).await;
    let mut c = config();
    c.router_port = Some(port);
    c.approval.mode = openwork_server::ApprovalMode::Manual;
    let dir = tempfile::tempdir().unwrap();
    let ws = openwork_server::workspace::Workspace::local(
        camino::Utf8PathBuf::from_path_buf(dir.path().canonicalize().unwrap()).unwrap(),
    );
    let id = ws.id.clone();
    c.workspaces = vec![ws];
    let s = start(c).await;
    let base = format!("/workspace/{id}/opencode-router");
    let viewer = issue(&s, "viewer").await;
    let (status, _) = get(&s, &format!("{base}/bindings"), &viewer).await;
    assert_eq!(status, 403);
    let (status, body) = get(&s, &format!("{base}/bindings?channel=telegram"), CLIENT).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &s,
        &format!("{base}/identities/telegram"),
        CLIENT,
        json!({"id": "someone-else", "token": "t"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("identity_mismatch"))
    );
    let (status, body) = post(
        &s,
        &format!("{base}/identities/fax"),
        CLIENT,
        json!({"token": "t"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_channel"))
    );
    let answer = common::gated::answer_next(&s.approvals, openwork_server::Reply::Deny);
    let (status, _) = post(
        &s,
        &format!("{base}/telegram-token"),
        CLIENT,
        json!({"token": "123:abc"}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        answer.await.unwrap()["action"],
        "opencodeRouter.telegram.set-token"
    );
    let answer = common::gated::answer_next(&s.approvals, openwork_server::Reply::Allow);
    let (status, body) = post(
        &s,
        &format!("{base}/identities/telegram"),
        CLIENT,
        json!({"token": "123:abc", "healthPort": 22}),
    )
    .await;
    assert_eq!(
        (status, body["applied"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    answer.await.unwrap();
    let (status, _) = post(
        &s,
        &format!("{base}/send"),
        CLIENT,
        json!({"channel": "telegram", "text": "hi", "peerId": "42"}),
    )
    .await;
    assert_eq!(status, 200);
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|(_, p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            format!("/bindings?identityId={id}&channel=telegram").as_str(),
            "/identities/telegram",
            "/send"
        ]
    );

    let mut c = config();
    c.router_port = Some(port);
    c.read_only = true;
    let s = start(c).await;
    let (status, body) = post(
        &s,
        "/workspace/ws_x/opencode-router/telegram-token",
        CLIENT,
        json!({"token": "t"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("read_only")));
}
