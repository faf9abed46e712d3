//! The `/w/:id/...` mount prefix over real HTTP: which routes pass, that they are scoped to
//! the mounted workspace, and the 404 bodies for unknown ids and routes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::HeaderMap;
use common::{CLIENT, HOST, TestServer, config, json, start};
use openwork_server::workspace::Workspace;
use serde_json::{Value, json};

struct Two {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    s: TestServer,
    a: Workspace,
    b: Workspace,
}

/// A stand-in OpenCode that answers every path with the directory header it got.
async fn echo_directory() -> String {
    let app = axum::Router::new().fallback(|h: HeaderMap, uri: axum::http::Uri| async move {
        axum::Json(json!({
            "directory": h.get("x-opencode-directory").map(|v| v.to_str().unwrap().to_owned()),
            "path": uri.path(),
            "query": uri.query(),
        }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn two_workspaces() -> Two {
    let base = echo_directory().await;
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ws = |d: &tempfile::TempDir| {
        let path = camino::Utf8PathBuf::from_path_buf(d.path().canonicalize().unwrap()).unwrap();
        let mut w = Workspace::local(path);
        w.base_url = Some(base.clone());
        w
    };
    let (a, b) = (ws(&dirs.0), ws(&dirs.1));
    std::fs::write(dirs.1.path().join("only-in-b.txt"), "b").unwrap();
    let mut c = config();
    c.workspaces = vec![a.clone(), b.clone()];
    let s = start(c).await;
    Two {
        _dirs: dirs,
        s,
        a,
        b,
    }
}

async fn get(s: &TestServer, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = s.get(path);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    json(req.send().await.unwrap()).await
}

async fn post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    json(
        s.post(path)
            .bearer_auth(CLIENT)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn explicit_routes_are_scoped_to_the_mounted_workspace() {
    let t = two_workspaces().await;
    let (s, b) = (&t.s, &t.b);
    let (status, body) = get(s, &format!("/w/{}/health", b.id), None).await;
    assert_eq!((status, body["ok"].clone()), (200, json!(true)));

    let (status, body) = get(s, &format!("/w/{}/status", b.id), Some(CLIENT)).await;
    assert_eq!(status, 200);
    assert_eq!(body["workspaceCount"], 1);
    assert_eq!(body["activeWorkspaceId"], b.id.as_str());
    assert_eq!(body["workspace"]["path"], b.path.as_str());

    let (status, body) = get(s, &format!("/w/{}/workspaces", b.id), Some(CLIENT)).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["id"], b.id.as_str());
    assert_eq!(body["activeId"], b.id.as_str());

    let (status, body) = get(s, &format!("/w/{}/capabilities", b.id), Some(CLIENT)).await;
    assert_eq!((status, body["schemaVersion"].clone()), (200, json!(1)));

    // Unprefixed, both workspaces are still there.
    let (_, body) = get(s, "/status", Some(CLIENT)).await;
    assert_eq!(body["workspaceCount"], 2);
    assert_eq!(body["activeWorkspaceId"], t.a.id.as_str());

    // Client routes still need a credential.
    let (status, body) = get(s, &format!("/w/{}/status", b.id), None).await;
    assert_eq!((status, body["code"].clone()), (401, json!("unauthorized")));
    // The request log shows the path the client sent.
    assert!(
        s.logs()
            .iter()
            .any(|l| l.starts_with(&format!("GET /w/{}/status 200", b.id))),
        "{:?}",
        s.logs()
    );
}

#[tokio::test]
async fn unknown_ids_and_routes_are_404() {
    let t = two_workspaces().await;
    let s = &t.s;
    let unknown = "ws_ffffffffffff";
    for path in ["health", "status", "workspaces", "opencode/session"] {
        let token = (path != "health").then_some(CLIENT);
        let (status, body) = get(s, &format!("/w/{unknown}/{path}"), token).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(
            body,
            json!({"code": "workspace_not_found", "message": format!("Workspace not found: {unknown}")}),
            "{path}"
        );
    }
    // Without a credential an unknown id is not revealed on client routes.
    let (status, _) = get(s, &format!("/w/{unknown}/status"), None).await;
    assert_eq!(status, 401);
    let not_found = json!({"code": "not_found", "message": "Not found"});
    for path in [
        format!("/w/{}", t.b.id),
        format!("/w/{}/", t.b.id),
        format!("/w/{}/ui", t.b.id),
        format!("/w/{}/tokens", t.b.id),
        format!("/w/{}/approvals", t.b.id),
        format!("/w/{}/status/extra", t.b.id),
        format!("/w/{}/workspace/{}/config", t.b.id, t.a.id),
        "/w/".to_owned(),
    ] {
        let (status, body) = get(s, &path, Some(CLIENT)).await;
        assert_eq!((status, &body), (404, &not_found), "{path}");
    }
    // Host routes are not reachable under a mount even with the host token.
    let r = s
        .get(&format!("/w/{}/approvals", t.b.id))
        .header("X-OpenWork-Host-Token", HOST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn opencode_goes_to_the_mounted_workspace() {
    let t = two_workspaces().await;
    let s = &t.s;
    let (status, body) = get(
        s,
        &format!("/w/{}/opencode/session/x?limit=2", t.b.id),
        Some(CLIENT),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"directory": t.b.path.as_str(), "path": "/session/x", "query": "limit=2"})
    );
    let (_, body) = get(s, &format!("/w/{}/opencode", t.b.id), Some(CLIENT)).await;
    assert_eq!(body["path"], "/");
    // Unprefixed it is the first workspace.
    let (_, body) = get(s, "/opencode/session/x", Some(CLIENT)).await;
    assert_eq!(body["directory"], t.a.path.as_str());
}

#[tokio::test]
async fn workspace_and_file_session_routes_pass_for_the_mounted_id_only() {
    let t = two_workspaces().await;
    let (s, a, b) = (&t.s, &t.a, &t.b);
    let (status, _) = get(
        s,
        &format!("/w/{}/workspace/{}/config", b.id, b.id),
        Some(CLIENT),
    )
    .await;
    assert_eq!(status, 200);

    let (status, body) = post(
        s,
        &format!("/w/{}/workspace/{}/files/sessions", b.id, b.id),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session"]["workspaceId"], b.id.as_str());
    let sid = body["session"]["id"].as_str().unwrap().to_owned();

    let snapshot = format!("files/sessions/{sid}/catalog/snapshot");
    let (status, body) = get(s, &format!("/w/{}/{snapshot}", b.id), Some(CLIENT)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["path"], "only-in-b.txt");
    let (status, body) = post(
        s,
        &format!("/w/{}/files/sessions/{sid}/read-batch", b.id),
        json!({"paths": ["only-in-b.txt"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The same session under the other workspace's mount does not exist.
    let (status, body) = get(s, &format!("/w/{}/{snapshot}", a.id), Some(CLIENT)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (404, json!("file_session_not_found"))
    );
    // A session-less path passes through to the route's own answer.
    let (status, body) = get(
        s,
        &format!("/w/{}/files/sessions/nope/catalog/snapshot", b.id),
        Some(CLIENT),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (404, json!("file_session_not_found"))
    );
}
