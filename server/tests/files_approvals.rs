//! Writes through file sessions wait for the host's approval: allow, deny, timeout, and a
//! client that hangs up withdraws its request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::files::{b64, session, workspace, workspace_with, write};
use common::{CLIENT, HOST, config};
use openwork_server::ApprovalMode;
use serde_json::json;

async fn reply(w: &common::files::Ws, id: &str, answer: &str) {
    let resp =
        w.s.post(&format!("/approvals/{id}"))
            .header("X-OpenWork-Host-Token", HOST)
            .json(&json!({"reply": answer}))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn allow_writes_and_deny_refuses() {
    let w = workspace(ApprovalMode::Manual).await;
    let sid = session(&w, CLIENT).await;
    for (answer, written) in [("allow", true), ("deny", false)] {
        let name = format!("{answer}.txt");
        let pending = {
            let (w2, sid2, name2) = (&w, sid.clone(), name.clone());
            async move { write(w2, &sid2, &name2, b"data", None).await }
        };
        let waiter = async {
            let items = w.s.wait_pending(1).await;
            let item = &items[0];
            assert_eq!(item["action"], "workspace.files.session.write");
            assert_eq!(item["summary"], "Write 1 file(s) via file session");
            let abs = w.dir.path().canonicalize().unwrap().join(&name);
            assert_eq!(item["paths"], json!([abs.to_str().unwrap()]));
            assert!(
                !w.root().join(&name).exists(),
                "nothing is written before the answer"
            );
            reply(&w, item["id"].as_str().unwrap(), answer).await;
        };
        let ((status, body), ()) = tokio::join!(pending, waiter);
        assert_eq!(w.root().join(&name).exists(), written);
        if written {
            assert_eq!(status, 200);
        } else {
            assert_eq!((status, body["code"].as_str()), (403, Some("write_denied")));
            assert_eq!(body["details"]["reason"], "denied");
        }
    }
    // Ops are gated too.
    let op = common::files::ops(&w, &sid, json!([{"type": "mkdir", "path": "d"}]));
    let deny = async {
        let items = w.s.wait_pending(1).await;
        assert_eq!(items[0]["action"], "workspace.files.session.ops");
        reply(&w, items[0]["id"].as_str().unwrap(), "deny").await;
    };
    let ((status, _), ()) = tokio::join!(op, deny);
    assert_eq!(status, 403);
    assert!(!w.root().join("d").exists());
}

#[tokio::test]
async fn unanswered_write_times_out() {
    let mut c = config();
    c.approval.timeout = Duration::from_millis(100);
    let w = workspace_with(c).await;
    let sid = session(&w, CLIENT).await;
    let (status, body) = write(&w, &sid, "t.txt", b"x", None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("write_denied")));
    assert_eq!(body["details"]["reason"], "timeout");
    assert!(!w.root().join("t.txt").exists());
}

#[tokio::test]
async fn client_hang_up_withdraws_the_approval() {
    let w = workspace(ApprovalMode::Manual).await;
    let sid = session(&w, CLIENT).await;
    let url = w.s.url(&format!("/files/sessions/{sid}/write-batch"));
    let body = json!({"writes": [{"path": "h.txt", "contentBase64": b64(b"x")}]});
    // A separate client whose connection is dropped with the aborted task.
    let task = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let _ = client
            .post(url)
            .bearer_auth(CLIENT)
            .json(&body)
            .send()
            .await;
    });
    let items = w.s.wait_pending(1).await;
    let id = items[0]["id"].as_str().unwrap().to_owned();
    task.abort();
    let _ = task.await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while !w.s.wait_pending(0).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the pending approval was not withdrawn after the client hung up");
    let resp =
        w.s.post(&format!("/approvals/{id}"))
            .header("X-OpenWork-Host-Token", HOST)
            .json(&json!({"reply": "allow"}))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 404);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!w.root().join("h.txt").exists());
}
