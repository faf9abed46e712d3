//! The approvals engine driven through the HTTP API: a gated write waits in
//! the engine, the host sees it in `GET /approvals` and answers it with
//! `POST /approvals/:id`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{HOST, config, json, start};
use openwork_server::auth::{Actor, Scope};
use openwork_server::config::ApprovalConfig;
use openwork_server::{ApprovalInput, ApprovalMode, Decision, DenyReason};
use serde_json::json;

fn input() -> ApprovalInput {
    ApprovalInput {
        workspace_id: "ws_0123456789ab".into(),
        action: "workspace.files.session.write".into(),
        summary: "Write 1 file(s) via file session".into(),
        paths: vec!["/abs/proj/a.md".into()],
        actor: Actor::Remote {
            client_id: Some("cli".into()),
            token_hash: "f".repeat(64),
            scope: Scope::Collaborator,
        },
    }
}

async fn answer(s: &common::TestServer, id: &str, reply: &str) -> (u16, serde_json::Value) {
    json(
        s.post(&format!("/approvals/{id}"))
            .header("X-OpenWork-Host-Token", HOST)
            .json(&json!({ "reply": reply }))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn host_allows_a_pending_write() {
    let s = start(config()).await;
    let engine = s.approvals.clone();
    let waiter = tokio::spawn(async move { engine.request_approval(input()).await });
    let items = s.wait_pending(1).await;
    let item = &items[0];
    assert_eq!(item["action"], "workspace.files.session.write");
    assert_eq!(item["workspaceId"], "ws_0123456789ab");
    assert_eq!(item["summary"], "Write 1 file(s) via file session");
    assert_eq!(item["paths"], json!(["/abs/proj/a.md"]));
    assert!(item["createdAt"].is_u64());
    assert_eq!(
        item["actor"],
        json!({"type": "remote", "clientId": "cli", "scope": "collaborator"})
    );
    let id = item["id"].as_str().unwrap().to_owned();

    assert_eq!(
        answer(&s, &id, "allow").await,
        (200, json!({"ok": true, "allowed": true}))
    );
    assert_eq!(
        waiter.await.unwrap(),
        Decision::Allowed {
            request_id: id.clone()
        }
    );
    // Answered requests are gone.
    assert_eq!(answer(&s, &id, "allow").await.0, 404);
    assert_eq!(s.wait_pending(0).await.len(), 0);
}

#[tokio::test]
async fn anything_but_allow_denies() {
    let s = start(config()).await;
    for reply in ["deny", "maybe"] {
        let engine = s.approvals.clone();
        let waiter = tokio::spawn(async move { engine.request_approval(input()).await });
        let id = s.wait_pending(1).await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            answer(&s, &id, reply).await,
            (200, json!({"ok": true, "allowed": false}))
        );
        let decision = waiter.await.unwrap();
        let err = decision.into_error().unwrap();
        assert_eq!(err.status, 403);
        assert_eq!(
            err.body(),
            json!({"code": "write_denied", "message": "Write request denied",
                   "details": {"requestId": id, "reason": "denied"}})
        );
    }
}

#[tokio::test]
async fn unanswered_requests_time_out_and_disappear() {
    let mut c = config();
    c.approval = ApprovalConfig {
        mode: ApprovalMode::Manual,
        timeout: Duration::from_millis(50),
    };
    let s = start(c).await;
    let decision = s.approvals.request_approval(input()).await;
    let Decision::Denied { request_id, reason } = decision else {
        panic!("expected a timeout, got {decision:?}");
    };
    assert_eq!(reason, DenyReason::Timeout);
    assert_eq!(s.wait_pending(0).await.len(), 0);
    let (status, body) = answer(&s, &request_id, "allow").await;
    assert_eq!(
        (status, body["code"].clone()),
        (404, json!("approval_not_found"))
    );
}

#[tokio::test]
async fn auto_mode_never_queues() {
    let mut c = config();
    c.approval.mode = ApprovalMode::Auto;
    let s = start(c).await;
    assert!(s.approvals.request_approval(input()).await.is_allowed());
    let (status, body) = json(
        s.get("/approvals")
            .header("X-OpenWork-Host-Token", HOST)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, json!({"items": []})));
}
