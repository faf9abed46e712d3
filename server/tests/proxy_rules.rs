//! The OpenCode proxy's rules against a stand-in OpenCode that records what reaches it:
//! viewers may only GET/HEAD, only owners may reply to permission prompts, an unreachable
//! upstream is 502, the caller's credentials never go upstream, and a request body is streamed
//! upstream (the stand-in must see the first chunk before the client sends the second).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use common::{CLIENT, HOST, TestServer, config, json, start};
use futures_util::StreamExt;
use openwork_server::config::Secret;
use openwork_server::workspace::Workspace;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// What reached the stand-in.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
}

#[derive(Clone, Default)]
struct StandIn {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Notified when `/upload` has received its first body chunk.
    first_chunk: Arc<Notify>,
}

impl StandIn {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Starts the stand-in: `/upload` echoes its body after reading it chunk by chunk; every
/// other path answers `{"ok":true}`.
async fn stand_in() -> (StandIn, String) {
    let rec = StandIn::default();
    let r = rec.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let r = r.clone();
        async move {
            r.seen.lock().unwrap().push(Seen {
                method: req.method().to_string(),
                path: req.uri().path().to_owned(),
                headers: req.headers().clone(),
            });
            if req.uri().path() != "/upload" {
                return Body::from(json!({"ok": true}).to_string());
            }
            let mut stream = req.into_body().into_data_stream();
            let mut body = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.unwrap();
                if body.is_empty() && !chunk.is_empty() {
                    r.first_chunk.notify_one();
                }
                body.extend_from_slice(&chunk);
            }
            Body::from(body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rec, format!("http://{addr}"))
}

/// A server whose first workspace has OpenCode credentials and whose second has none.
async fn proxied(base: &str) -> (TestServer, Workspace, Workspace) {
    let mut with_creds = Workspace::local("/srv/with-creds".into());
    with_creds.base_url = Some(base.to_owned());
    with_creds.opencode_username = Some(Secret::new("opencode"));
    with_creds.opencode_password = Some(Secret::new("pw"));
    let mut without = Workspace::local("/srv/without".into());
    without.base_url = Some(base.to_owned());
    let mut c = config();
    c.workspaces = vec![with_creds.clone(), without.clone()];
    (start(c).await, with_creds, without)
}

async fn issue(s: &TestServer, scope: &str) -> String {
    let (status, body) = json(
        s.post("/tokens")
            .header("X-OpenWork-Host-Token", HOST)
            .json(&json!({"scope": scope}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn call(s: &TestServer, method: &str, path: &str, token: &str) -> (u16, String) {
    let r = s
        .http
        .request(method.parse().unwrap(), s.url(path))
        .bearer_auth(token)
        .body(if method == "GET" || method == "HEAD" {
            ""
        } else {
            "{}"
        })
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn viewers_may_only_get_and_head() {
    let (rec, base) = stand_in().await;
    let (s, _, _) = proxied(&base).await;
    let viewer = issue(&s, "viewer").await;
    assert_eq!(call(&s, "GET", "/opencode/session", &viewer).await.0, 200);
    assert_eq!(call(&s, "HEAD", "/opencode/session", &viewer).await.0, 200);
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let (status, body) = call(&s, method, "/opencode/session", &viewer).await;
        assert_eq!(status, 403, "{method}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            json!({"code": "forbidden", "message": "Viewer tokens are read-only"})
        );
    }
    let methods: Vec<String> = rec.seen().into_iter().map(|s| s.method).collect();
    assert_eq!(
        methods,
        ["GET", "HEAD"],
        "refused requests must not reach OpenCode"
    );
    // A collaborator may write.
    assert_eq!(call(&s, "POST", "/opencode/session", CLIENT).await.0, 200);
}

#[tokio::test]
async fn only_owners_reply_to_permission_prompts() {
    let (rec, base) = stand_in().await;
    let (s, _, without) = proxied(&base).await;
    let owner = issue(&s, "owner").await;
    let refused = json!({"code": "forbidden",
        "message": "Only owner tokens can reply to permission requests"});
    let mounted = format!("/w/{}/opencode/permission/p1/reply", without.id);
    for path in [
        "/opencode/permission/p1/reply",
        "/opencode/session/s1/permission/p1/reply",
        mounted.as_str(),
    ] {
        let (status, body) = call(&s, "POST", path, CLIENT).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), refused);
    }
    assert!(rec.seen().is_empty());
    // Reading the same path is not a reply.
    assert_eq!(
        call(&s, "GET", "/opencode/permission/p1/reply", CLIENT)
            .await
            .0,
        200
    );
    for path in ["/opencode/permission/p1/reply", mounted.as_str()] {
        assert_eq!(call(&s, "POST", path, &owner).await.0, 200, "{path}");
    }
    let posts: Vec<String> = rec
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .map(|s| s.path)
        .collect();
    assert_eq!(posts, ["/permission/p1/reply", "/permission/p1/reply"]);
}

#[tokio::test]
async fn an_unreachable_opencode_is_502() {
    // A port that was free a moment ago: nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (s, _, _) = proxied(&base).await;
    let (status, body) = call(&s, "GET", "/opencode/health", CLIENT).await;
    assert_eq!(status, 502);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "opencode_unreachable");
}

#[tokio::test]
async fn caller_credentials_are_not_forwarded() {
    let (rec, base) = stand_in().await;
    let (s, with_creds, without) = proxied(&base).await;
    let upstream_host = base.trim_start_matches("http://").to_owned();
    for path in [
        "/opencode/session".to_owned(),
        format!("/w/{}/opencode/session", without.id),
    ] {
        let r = s
            .get(&path)
            .bearer_auth(CLIENT)
            .header("X-OpenWork-Host-Token", HOST)
            .header("X-OpenWork-Client-Id", "laptop")
            .header("Origin", "http://evil.test")
            .header("X-Custom", "kept")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let seen = rec.seen();
    assert_eq!(seen.len(), 2);
    for (hit, ws) in seen.iter().zip([&with_creds, &without]) {
        let h = &hit.headers;
        let text = format!("{h:?}");
        assert!(!text.contains(CLIENT), "bearer forwarded: {text}");
        assert!(!text.contains(HOST), "host token forwarded: {text}");
        assert!(h.get("x-openwork-host-token").is_none());
        assert!(h.get("x-openwork-client-id").is_none());
        assert!(h.get("origin").is_none());
        assert_eq!(h["x-custom"], "kept");
        assert_eq!(h["host"], upstream_host.as_str());
        assert_eq!(h["x-opencode-directory"], ws.path.as_str());
    }
    // base64("opencode:pw"), added by the server; nothing at all without credentials.
    assert_eq!(seen[0].headers["authorization"], "Basic b3BlbmNvZGU6cHc=");
    assert!(seen[1].headers.get("authorization").is_none());

    // A directory the client chose is kept.
    s.get("/opencode/x")
        .bearer_auth(CLIENT)
        .header("X-OpenCode-Directory", "/chosen")
        .send()
        .await
        .unwrap();
    assert_eq!(rec.seen()[2].headers["x-opencode-directory"], "/chosen");
}

#[tokio::test]
async fn request_bodies_stream_upstream() {
    let (rec, base) = stand_in().await;
    let (s, _, _) = proxied(&base).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let request = s
        .post("/opencode/upload")
        .bearer_auth(CLIENT)
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let response = tokio::spawn(request);
    tx.send(Ok(b"first-".to_vec())).await.unwrap();
    // A hang guard only (no speed is asserted): a proxy that buffers the whole body never
    // delivers the first chunk, because the second is sent only after it arrived.
    tokio::time::timeout(Duration::from_secs(60), rec.first_chunk.notified())
        .await
        .expect("the first chunk never reached OpenCode: the proxy buffers request bodies");
    tx.send(Ok(b"second".to_vec())).await.unwrap();
    drop(tx);
    let response = response.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "first-second");
}
