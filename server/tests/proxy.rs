//! The OpenCode proxy against a stand-in OpenCode: Basic auth is added server-side, the
//! caller's bearer is not forwarded, and SSE events arrive one by one (not buffered): the
//! stand-in sends its second event only after the test has received the first through the
//! proxy, so a buffering proxy would never deliver anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::http::HeaderMap;
use common::{CLIENT, config, start};
use futures_util::StreamExt;
use openwork_server::config::Secret;
use openwork_server::workspace::Workspace;

async fn stand_in(go: std::sync::Arc<tokio::sync::Notify>) -> String {
    let app = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(|h: HeaderMap| async move {
                let auth = h
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned());
                // base64("opencode:pw")
                if auth.as_deref() == Some("Basic b3BlbmNvZGU6cHc=") {
                    (axum::http::StatusCode::OK, "ok")
                } else {
                    (axum::http::StatusCode::UNAUTHORIZED, "no")
                }
            }),
        )
        .route(
            "/event",
            axum::routing::get(move || async move {
                let stream = futures_util::stream::unfold(0u32, move |i| {
                    let go = go.clone();
                    async move {
                        if i == 3 {
                            return None;
                        }
                        if i == 1 {
                            // Only after the client saw event 0 through the proxy.
                            go.notified().await;
                        }
                        Some((
                            Ok::<_, std::io::Error>(axum::body::Bytes::from(format!(
                                "data: {i}\n\n"
                            ))),
                            i + 1,
                        ))
                    }
                });
                (
                    [("content-type", "text/event-stream")],
                    axum::body::Body::from_stream(stream),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn proxies_with_basic_auth_and_streams_sse() {
    let go = std::sync::Arc::new(tokio::sync::Notify::new());
    let base = stand_in(go.clone()).await;
    let mut c = config();
    let mut ws = Workspace::local("/tmp".into());
    ws.base_url = Some(base);
    ws.opencode_username = Some(Secret::new("opencode"));
    ws.opencode_password = Some(Secret::new("pw"));
    c.workspaces = vec![ws];
    let s = start(c).await;
    assert_eq!(
        s.get("/opencode/health").send().await.unwrap().status(),
        401
    );
    let r = s
        .get("/opencode/health")
        .bearer_auth(CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let resp = s
        .get("/opencode/event")
        .bearer_auth(CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream();
    // A hang guard only (no speed is asserted): a buffering proxy never delivers event 0,
    // because the stand-in holds the rest of the stream until we have it.
    let first = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("event 0 never arrived: the proxy buffers the stream")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: 0\n\n");
    go.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"data: 1\n\ndata: 2\n\n");
}
