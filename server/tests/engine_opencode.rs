//! Engine reload, session delete and MCP auth removal against the real opencode; the events
//! route; scopes and read-only rules of each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::files::{get, issue, post, workspace_with};
use common::gated::{answer_next, delete};
use common::opencode::Opencode;
use common::{CLIENT, config};
use openwork_server::config::Secret;
use openwork_server::{ApprovalMode, Reply};
use serde_json::{Value, json};

/// A server whose workspace is `dir`, attached to `oc`.
async fn server_for(oc: &Opencode, dir: &tempfile::TempDir, read_only: bool) -> common::TestServer {
    let path = camino::Utf8PathBuf::from_path_buf(dir.path().canonicalize().unwrap()).unwrap();
    let mut ws = openwork_server::workspace::Workspace::local(path);
    ws.base_url = Some(oc.url.clone());
    ws.opencode_username = Some(Secret::new(oc.user.clone()));
    ws.opencode_password = Some(Secret::new(oc.pass.clone()));
    let mut c = config();
    c.approval.mode = ApprovalMode::Manual;
    c.read_only = read_only;
    c.workspaces = vec![ws];
    common::start(c).await
}

fn ws_id(dir: &tempfile::TempDir) -> String {
    let path = camino::Utf8PathBuf::from_path_buf(dir.path().canonicalize().unwrap()).unwrap();
    openwork_server::workspace::workspace_id(&path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_delete_session_and_mcp_auth_against_real_opencode() {
    let dir = tempfile::tempdir().unwrap();
    let oc = Opencode::start(dir.path());
    let s = server_for(&oc, &dir, false).await;
    let id = ws_id(&dir);
    let real_dir = dir.path().canonicalize().unwrap();

    // Engine reload: collaborator, no approval; force must be a bool.
    let (status, body) = common::files::post(
        &s,
        &format!("/workspace/{id}/engine/reload"),
        CLIENT,
        json!({"force": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["reloadedAt"].as_u64().is_some());
    let (status, body) = common::files::post(
        &s,
        &format!("/workspace/{id}/engine/reload"),
        CLIENT,
        json!({"force": "yes"}),
    )
    .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (400, Some("force")),
        "{body}"
    );
    let viewer = issue(&s, "viewer").await;
    let (status, _) = common::files::post(
        &s,
        &format!("/workspace/{id}/engine/reload"),
        &viewer,
        json!({}),
    )
    .await;
    assert_eq!(status, 403);

    // Session delete: a session made in opencode disappears.
    let created: Value = oc
        .request(reqwest::Method::POST, "/session", &real_dir)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = created["id"].as_str().unwrap().to_owned();
    let (status, _) = delete(&s, &format!("/workspace/{id}/sessions/{sid}"), &viewer).await;
    assert_eq!(status, 403);
    let (status, body) = delete(&s, &format!("/workspace/{id}/sessions/{sid}"), CLIENT).await;
    assert_eq!(status, 200, "{body}");
    let after = oc
        .request(reqwest::Method::GET, &format!("/session/{sid}"), &real_dir)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 404);
    let (status, body) = delete(&s, &format!("/workspace/{id}/sessions/bad%2Fid"), CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_session_id"))
    );

    // MCP auth removal: approval first, then opencode's disconnect + auth delete.
    let answer = answer_next(&s.approvals, Reply::Deny);
    let (status, _) = delete(&s, &format!("/workspace/{id}/mcp/docs/auth"), CLIENT).await;
    assert_eq!(status, 403);
    assert_eq!(answer.await.unwrap()["action"], "mcp.auth.remove");
    let answer = answer_next(&s.approvals, Reply::Allow);
    let (status, body) = delete(&s, &format!("/workspace/{id}/mcp/docs/auth"), CLIENT).await;
    assert_eq!((status, body["ok"].as_bool()), (200, Some(true)), "{body}");
    answer.await.unwrap();

    let (_, audit) = get(&s, &format!("/workspace/{id}/audit"), CLIENT).await;
    let actions: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["action"].as_str().unwrap(), i["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("mcp.auth.remove", "ok"),
            ("mcp.auth.remove", "denied"),
            ("opencode.session.delete", "ok"),
            ("engine.reload", "ok"),
        ]
    );

    // Read-only: reload still works, session delete does not.
    let ro = server_for(&oc, &dir, true).await;
    let (status, _) = common::files::post(
        &ro,
        &format!("/workspace/{id}/engine/reload"),
        CLIENT,
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = delete(&ro, &format!("/workspace/{id}/sessions/{sid}"), CLIENT).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("read_only")));
}

#[tokio::test]
async fn unconfigured_and_unreachable_opencode_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let w = workspace_with(config()).await;
    let (status, body) = post(
        &w.s,
        &format!("/workspace/{}/engine/reload", w.id),
        CLIENT,
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("opencode_unconfigured"))
    );
    let (status, body) = get(&w.s, &format!("/workspace/{}/events", w.id), CLIENT).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"items": [], "cursor": 0, "workspaceId": w.id, "disabled": true})
    );

    // Nothing listens on the attached URL: 502 with the reference's codes.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = camino::Utf8PathBuf::from_path_buf(dir.path().canonicalize().unwrap()).unwrap();
    let mut ws = openwork_server::workspace::Workspace::local(path);
    ws.base_url = Some(format!("http://127.0.0.1:{port}"));
    let id = ws.id.clone();
    let mut c = config();
    c.workspaces = vec![ws];
    let s = common::start(c).await;
    let (status, body) = post(
        &s,
        &format!("/workspace/{id}/engine/reload"),
        CLIENT,
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("opencode_reload_failed"))
    );
    let (status, body) = delete(&s, &format!("/workspace/{id}/sessions/ses_1"), CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("opencode_request_failed"))
    );
    assert_eq!(body["details"]["path"], "/session/ses_1");
}
