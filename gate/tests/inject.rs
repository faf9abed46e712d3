//! Credential injection end to end against loopback stand-ins: the agent's key is replaced by
//! the real one, SSE streams in order, refused upstreams stay refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: fail loudly

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use openwork_gate::{Kind, Verdict, placeholder_key};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

async fn put_credentials(control: std::net::SocketAddr, body: serde_json::Value) -> u16 {
    client()
        .put(format!("http://{control}/credentials"))
        .header("authorization", bearer())
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_agents_key_is_replaced_by_the_real_one() {
    let (port, seen) = recording_server().await;
    // No policy entry for the upstream: providers with credentials are allowed implicitly.
    let gate = gate(Some(r#"{"defaults":false}"#), true).await;
    let base = format!("http://{UPSTREAM}:{port}/v1");
    let status = put_credentials(
        gate.control,
        serde_json::json!({
            "anthropic": {"baseUrl": base, "key": "sk-ant-REAL-anthropic"},
            "corp": {"baseUrl": base, "key": "sk-REAL-corp"},
        }),
    )
    .await;
    assert_eq!(status, 200);
    let mut audit = gate.gate.subscribe_audit();
    let inject = format!("http://{}", gate.inject.unwrap());
    let http = client();

    let r = http
        .post(format!("{inject}/p/anthropic/messages?beta=true"))
        .header("x-api-key", placeholder_key("anthropic"))
        .header("authorization", "Bearer sk-agent-made-this-up")
        .header("anthropic-version", "2023-06-01")
        .body("{\"model\":\"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{\"ok\":true,\"received\":13}");

    let r = http
        .post(format!("{inject}/p/corp/chat/completions"))
        .header(
            "authorization",
            format!("Bearer {}", placeholder_key("corp")),
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();

    {
        let seen = seen.lock().unwrap();
        let (path, headers) = &seen[0];
        assert_eq!(path, "/v1/messages?beta=true");
        assert_eq!(headers["x-api-key"], "sk-ant-REAL-anthropic");
        assert!(!headers.contains_key("authorization"), "{headers:?}");
        assert_eq!(headers["anthropic-version"], "2023-06-01");
        let (path, headers) = &seen[1];
        assert_eq!(path, "/v1/chat/completions");
        assert_eq!(headers["authorization"], "Bearer sk-REAL-corp");
        assert!(!headers.contains_key("x-api-key"));
    }

    let record = next_record(&mut audit).await;
    assert_eq!(record.kind, Kind::Inject);
    assert_eq!(record.decision, Verdict::Allow);
    assert_eq!(record.provider.as_deref(), Some("anthropic"));
    assert_eq!(
        record.rule,
        Some(format!("{UPSTREAM}:{port} (credential anthropic)"))
    );
    assert_eq!(record.bytes_up, 13);
    assert_eq!(record.bytes_down, 25);
    assert!(!record.to_json_line().contains("REAL"));
    assert!(!format!("{:?}", gate.gate).contains("REAL"));
}

#[tokio::test]
async fn sse_streams_through_injection_in_order() {
    // The stand-in sends event 1, then waits until the test has *read* event 1 before sending
    // event 2: the test can only pass if the gate streams (no wall-clock involved).
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release = std::sync::Arc::new(std::sync::Mutex::new(Some(release_rx)));
    let app = axum::Router::new().fallback(move || {
        let release = release.clone();
        async move {
            let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(4);
            let wait = release.lock().unwrap().take();
            tokio::spawn(async move {
                tx.send(Ok(Bytes::from("data: one\n\n"))).await.unwrap();
                if let Some(wait) = wait {
                    wait.await.unwrap();
                }
                tx.send(Ok(Bytes::from("data: two\n\n"))).await.unwrap();
            });
            let stream = tokio_stream_from(rx);
            (
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(stream),
            )
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let gate = gate(Some(r#"{"defaults":false}"#), true).await;
    let base = format!("http://{UPSTREAM}:{port}");
    let body = serde_json::json!({"openai": {"baseUrl": base, "key": "sk-REAL"}});
    assert_eq!(put_credentials(gate.control, body).await, 200);

    let r = client()
        .get(format!("http://{}/p/openai/events", gate.inject.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut stream = r.bytes_stream();
    let mut got = String::new();
    while !got.contains("data: one\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event one arrives before event two is sent")
            .unwrap()
            .unwrap();
        got.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(!got.contains("two"));
    release_tx.send(()).unwrap();
    while let Some(chunk) = stream.next().await {
        got.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert_eq!(got, "data: one\n\ndata: two\n\n");
}

/// An mpsc receiver as a stream (without pulling in tokio-stream).
fn tokio_stream_from<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

#[tokio::test]
async fn a_base_url_on_a_refused_address_is_refused() {
    let (port, seen) = recording_server().await;
    // Production address rules: loopback refused even though the credential allows the name.
    let gate = gate(Some(r#"{"defaults":false}"#), false).await;
    let mut audit = gate.gate.subscribe_audit();
    for base in [
        format!("http://{UPSTREAM}:{port}"),
        format!("http://127.0.0.1:{port}"),
    ] {
        let body = serde_json::json!({"openai": {"baseUrl": base, "key": "sk-REAL"}});
        assert_eq!(put_credentials(gate.control, body).await, 200);
        let r = client()
            .get(format!("http://{}/p/openai/models", gate.inject.unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{base}");
        let text = r.text().await.unwrap();
        assert!(text.contains("loopback"), "{text}");
        let record = next_record(&mut audit).await;
        assert_eq!(record.decision, Verdict::Deny, "{record:?}");
    }
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_provider_and_bad_credentials() {
    let gate = gate(None, true).await;
    let r = client()
        .get(format!("http://{}/p/nobody/models", gate.inject.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let bad = serde_json::json!({"openai": {"baseUrl": "ftp://x", "key": "k"}});
    assert_eq!(put_credentials(gate.control, bad).await, 400);
    let empty = serde_json::json!({"openai": {"baseUrl": "https://api.openai.com/v1", "key": ""}});
    assert_eq!(put_credentials(gate.control, empty).await, 400);
    // The error never quotes the key.
    let r = client()
        .put(format!("http://{}/credentials", gate.control))
        .header("authorization", bearer())
        .body(r#"{"openai": {"baseUrl": "https://api.openai.com/v1", "key": 12345678}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.unwrap().contains("12345678"));
}
