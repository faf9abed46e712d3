//! SLOW TEST (about 130 s of real time, on purpose): a write that waits on a manual approval
//! for longer than any HTTP idle timeout (the original's was 120 s; weakness W14) still
//! succeeds, on the same TCP connection, once the host allows it.
//!
//! The request is written by hand on a raw socket so that "the same connection" is a fact of
//! the test, not of a client library's retry logic. While the request waits, the approval must
//! still be listed after the long sleep: a server that had cut the connection would have
//! dropped the handler, and a dropped handler withdraws its approval. Nothing here asserts a
//! duration; the long `timeout` around the read is only a hang guard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::files::{b64, session, workspace_with};
use common::{CLIENT, HOST, config};
use openwork_server::ApprovalMode;
use openwork_server::config::ApprovalConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longer than the original's 120 s idle timeout.
const WAIT: Duration = Duration::from_secs(130);

/// Reads one HTTP/1.1 response with a `Content-Length` body from `stream`.
async fn read_response(stream: &mut TcpStream) -> (u16, Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a response arrived");
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .expect("no content-length");
        while buf.len() < end + 4 + length {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed inside the body");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap();
        return (status, body);
    }
}

#[tokio::test]
async fn slow_a_write_waits_130s_for_approval_on_the_same_connection() {
    let mut c = config();
    c.approval = ApprovalConfig {
        mode: ApprovalMode::Manual,
        timeout: Duration::from_millis(180_000),
    };
    let w = workspace_with(c).await;
    let sid = session(&w, CLIENT).await;

    let body = json!({"writes": [{"path": "late.txt", "contentBase64": b64(b"worth the wait")}]})
        .to_string();
    let request = format!(
        "POST /files/sessions/{sid}/write-batch HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
         Authorization: Bearer {CLIENT}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        w.s.port,
        body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", w.s.port)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();

    let id = w.s.wait_pending(1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(WAIT).await;

    // Still waiting: the connection (and with it the handler) is alive.
    let pending = w.s.wait_pending(1).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["id"], id.as_str());

    let reply =
        w.s.post(&format!("/approvals/{id}"))
            .header("X-OpenWork-Host-Token", HOST)
            .json(&json!({"reply": "allow"}))
            .send()
            .await
            .unwrap();
    assert_eq!(reply.status(), 200);

    let (status, body) = tokio::time::timeout(Duration::from_secs(300), read_response(&mut stream))
        .await
        .expect("hang guard: no response after the approval");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["path"], "late.txt");
    assert_eq!(body["items"][0]["ok"], true, "{body}");
    assert_eq!(
        std::fs::read(w.root().join("late.txt")).unwrap(),
        b"worth the wait"
    );
}
