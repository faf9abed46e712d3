//! Host-only workspace management over real HTTP: activate reorders, delete removes (and
//! rewrites server.json when the server was configured from one), both need the host token,
//! delete is refused in read-only mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CLIENT, HOST, config, json, start};
use openwork_server::workspace::{Workspace, workspace_id};

fn two() -> openwork_server::Config {
    let mut c = config();
    c.workspaces = vec![
        Workspace::local("/abs/one".into()),
        Workspace::local("/abs/two".into()),
    ];
    c
}

#[tokio::test]
async fn activate_makes_a_workspace_the_active_one() {
    let s = start(two()).await;
    let id2 = workspace_id("/abs/two".into());
    let url = s.url(&format!("/workspaces/{id2}/activate"));
    let client = reqwest::Client::new();
    // Client tokens cannot manage workspaces.
    let r = client.post(&url).bearer_auth(CLIENT).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (status, body) = json(
        client
            .post(&url)
            .header("X-OpenWork-Host-Token", HOST)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["activeId"], id2);
    let (_, list) = json(
        s.get("/workspaces")
            .bearer_auth(CLIENT)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["activeId"], id2);
    assert_eq!(list["items"][0]["path"], "/abs/two");
    // Unknown id.
    let (status, body) = json(
        client
            .post(s.url("/workspaces/ws_nope/activate"))
            .header("X-OpenWork-Host-Token", HOST)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "workspace_not_found");
}

#[tokio::test]
async fn delete_removes_and_persists_to_server_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.json");
    std::fs::write(
        &file,
        r#"{"workspaces": [{"path": "/abs/one"}, {"path": "/abs/two"}], "approval": {"mode": "auto"}}"#,
    )
    .unwrap();
    let mut c = two();
    c.config_path = Some(camino::Utf8PathBuf::from_path_buf(file.clone()).unwrap());
    let s = start(c).await;
    let id1 = workspace_id("/abs/one".into());
    let (status, body) = json(
        reqwest::Client::new()
            .delete(s.url(&format!("/workspaces/{id1}")))
            .header("X-OpenWork-Host-Token", HOST)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], true);
    assert_eq!(body["persisted"], true);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        saved["workspaces"],
        serde_json::json!([{"path": "/abs/two"}])
    );
    assert_eq!(saved["approval"]["mode"], "auto", "other settings are kept");
    let (_, list) = json(
        s.get("/workspaces")
            .bearer_auth(CLIENT)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn delete_is_refused_when_read_only() {
    let mut c = two();
    c.read_only = true;
    let s = start(c).await;
    let id1 = workspace_id("/abs/one".into());
    let (status, body) = json(
        reqwest::Client::new()
            .delete(s.url(&format!("/workspaces/{id1}")))
            .header("X-OpenWork-Host-Token", HOST)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "read_only");
}
