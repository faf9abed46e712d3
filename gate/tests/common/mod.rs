//! Test helpers: a gate on 127.0.0.1 whose resolver maps `upstream.test` to 127.0.0.1, and
//! stand-in upstreams. Nothing here contacts any address but 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests: fail loudly

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use openwork_gate::{GateConfig, Resolver, RunningGate, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const TOKEN: &str = "test-token-0123456789abcdef0123456789";
pub const UPSTREAM: &str = "upstream.test";

/// A gate with every listener on an ephemeral 127.0.0.1 port. `loopback` relaxes the address
/// check for loopback (the test-only `GateConfig::unsafe_allow_loopback_for_tests`), so
/// `upstream.test` (→ 127.0.0.1) stands in for the internet.
pub async fn gate(policy_json: Option<&str>, loopback: bool) -> RunningGate {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut table = BTreeMap::new();
    table.insert(UPSTREAM.to_owned(), vec!["127.0.0.1".parse().unwrap()]);
    let config = GateConfig {
        proxy: Some(any),
        inject: Some(any),
        control: any,
        forwards: Vec::new(),
        token: Secret::new(TOKEN),
        policy_json: policy_json.map(str::to_owned),
        resolver: Resolver::Static(table),
        unsafe_allow_loopback_for_tests: loopback,
    };
    openwork_gate::start(config).await.unwrap()
}

/// A policy allowing exactly `upstream.test:<port>`, without the built-in profile.
pub fn allow_upstream(port: u16) -> String {
    format!(r#"{{"defaults":false,"allow":["{UPSTREAM}:{port}"]}}"#)
}

/// A TCP echo server; returns its port.
pub async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// Sends `CONNECT host:port` and returns the status code, the head, and the stream.
pub async fn connect(proxy: SocketAddr, target: &str) -> (u16, String, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).await.unwrap(), 1, "proxy closed early");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head, s)
}

/// Reads the rest of a response after its head (a 403 body ends with the connection or its
/// content-length).
pub async fn body_after(head: &str, s: &mut TcpStream) -> String {
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    String::from_utf8(body).unwrap()
}

/// A client for the control API (no proxy from the environment).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// `Authorization: Bearer TOKEN`.
pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// Headers seen by a stand-in upstream, one map per request.
pub type Seen = Arc<Mutex<Vec<(String, BTreeMap<String, String>)>>>;

/// An HTTP stand-in that records each request's path and headers and answers `{"ok":true}`.
pub async fn recording_server() -> (u16, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let record = record.clone();
        async move {
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            record.lock().unwrap().push((path, headers));
            format!("{{\"ok\":true,\"received\":{}}}", body.len())
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

/// Waits for the next audit record that is not a `kind` other than `kind`.
pub async fn next_record(
    rx: &mut tokio::sync::broadcast::Receiver<openwork_gate::AuditRecord>,
) -> openwork_gate::AuditRecord {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("an audit record within 10 s")
        .unwrap()
}
