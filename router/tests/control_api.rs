//! The control API's guards, against a router whose opencode is down (none are needed for them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Router, router_env};
use serde_json::{Value, json};

#[tokio::test]
async fn token_host_origin_and_content_type_are_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let env = router_env(&tmp.path().join("data"), &root, &format!("http://{dead}"));
    let router = Router::start(env).await;
    let http = reqwest::Client::new();

    // Health is open (the supervisor probes it) and reports opencode down.
    let r = http.get(router.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["opencode"]["healthy"], false);
    assert_eq!(v["config"]["permissionMode"], "ask");

    // No token, wrong token → 401.
    let r = http.get(router.url("/bindings")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(router.url("/bindings"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(router.url("/send"))
        .json(&json!({"channel": "telegram", "peerId": "1", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Another host (DNS rebinding, or a caller-supplied host) → refused, even with the token.
    let r = http
        .get(router.url("/bindings"))
        .bearer_auth(&router.token)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A browser's cross-origin request → refused, with no CORS headers.
    let r = http
        .post(router.url("/bindings"))
        .bearer_auth(&router.token)
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // A "simple" text/plain POST → 415.
    let r = http
        .post(router.url("/bindings"))
        .bearer_auth(&router.token)
        .header("content-type", "text/plain")
        .body(r#"{"channel":"telegram","peerId":"1","directory":"."}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // With the token: bindings inside the root only.
    let r = http
        .post(router.url("/bindings"))
        .bearer_auth(&router.token)
        .json(&json!({"channel": "telegram", "identityId": "a", "peerId": "5", "directory": "/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(router.url("/bindings"))
        .bearer_auth(&router.token)
        .json(&json!({"channel": "telegram", "identityId": "a", "peerId": "5", "directory": "."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = http
        .get(router.url("/bindings"))
        .bearer_auth(&router.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["items"][0]["peerId"], "5");

    // A new Telegram identity is private: a pairing code comes back once; the token never does.
    let v: Value = http
        .post(router.url("/identities/telegram"))
        .bearer_auth(&router.token)
        .json(&json!({"id": "ws one", "token": "1:secret-token"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["telegram"]["id"], "ws-one");
    assert_eq!(v["telegram"]["access"], "private");
    assert!(v["telegram"]["pairingCode"].as_str().unwrap().len() >= 10);
    let list = http
        .get(router.url("/identities/telegram"))
        .bearer_auth(&router.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("ws-one") && !list.contains("secret-token"),
        "{list}"
    );
    let r = http
        .post(router.url("/identities/telegram"))
        .bearer_auth(&router.token)
        .json(&json!({"id": "env", "token": "1:x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = http
        .delete(router.url("/identities/telegram/ws-one"))
        .bearer_auth(&router.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["telegram"]["deleted"], true);
    router.stop().await;
}
