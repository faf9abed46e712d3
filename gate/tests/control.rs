//! The control API: bearer token on every route, the audit stream as JSON lines.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: fail loudly

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;

#[tokio::test]
async fn every_route_needs_the_token() {
    let gate = gate(None, true).await;
    let base = format!("http://{}", gate.control);
    let http = client();
    let routes = [
        ("GET", "/health"),
        ("GET", "/policy"),
        ("PUT", "/policy"),
        ("POST", "/allow"),
        ("PUT", "/credentials"),
        ("GET", "/audit"),
    ];
    for (method, path) in routes {
        for auth in [None, Some("Bearer wrong"), Some(TOKEN)] {
            let mut req = http.request(method.parse().unwrap(), format!("{base}{path}"));
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {auth:?}");
        }
    }
    let r = http
        .get(format!("{base}/health"))
        .header("authorization", bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let health: serde_json::Value = r.json().await.unwrap();
    assert_eq!(health["ok"], true);
    assert_eq!(health["mode"], "enforce");
}

#[tokio::test]
async fn the_audit_stream_carries_denials_with_the_rule_that_would_allow_them() {
    let port = echo_server().await;
    let gate = gate(Some(r#"{"defaults":false}"#), true).await;
    let r = client()
        .get(format!("http://{}/audit", gate.control))
        .header("authorization", bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let mut lines = r.bytes_stream();
    let target = format!("{UPSTREAM}:{port}");
    assert_eq!(connect(gate.proxy.unwrap(), &target).await.0, 403);
    let mut text = String::new();
    while !text.contains('\n') {
        let chunk = tokio::time::timeout(Duration::from_secs(10), lines.next())
            .await
            .expect("an audit line")
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["decision"], "deny");
    assert_eq!(line["host"], UPSTREAM);
    assert_eq!(line["port"], port);
    assert_eq!(line["rule"], target);
    assert_eq!(line["kind"], "connect");
    for key in ["time", "bytesUp", "bytesDown", "durationMs", "reason"] {
        assert!(line.get(key).is_some(), "{key} in {line}");
    }
}
