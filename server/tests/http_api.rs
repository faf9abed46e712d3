//! Every route of this slice over real HTTP: success, auth failures,
//! validation errors, CORS and the not-found fallback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CLIENT, HOST, config, json, start};
use openwork_server::config::{CorsOrigins, Secret};
use openwork_server::workspace::{OpencodeAttachment, Workspace};
use serde_json::{Value, json};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn with_workspace() -> openwork_server::Config {
    let mut c = config();
    let mut ws = vec![Workspace::local("/abs/proj".into())];
    OpencodeAttachment {
        base_url: Some("http://127.0.0.1:4096".into()),
        directory: Some("/abs/proj".into()),
        username: Some(Secret::new("oc-user")),
        password: Some(Secret::new("oc-pass")),
    }
    .apply(&mut ws);
    c.workspaces = ws;
    c
}

async fn issue(server: &common::TestServer, scope: &str) -> String {
    let (status, body) = json(
        server
            .post("/tokens")
            .header("X-OpenWork-Host-Token", HOST)
            .json(&json!({"scope": scope}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn health_needs_no_auth() {
    let s = start(config()).await;
    let (status, body) = json(s.get("/health").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    assert_eq!(body["version"], openwork_server::VERSION);
    assert!(body["uptimeMs"].is_u64());
    let head = s.http.head(s.url("/health")).send().await.unwrap();
    assert_eq!(head.status(), 200);
}

#[tokio::test]
async fn client_routes_reject_missing_and_wrong_tokens() {
    let s = start(config()).await;
    let expected = json!({"code": "unauthorized", "message": "Invalid bearer token"});
    for path in ["/status", "/workspaces", "/whoami", "/capabilities"] {
        let (status, body) = json(s.get(path).send().await.unwrap()).await;
        assert_eq!((status, &body), (401, &expected), "{path} without token");
        let (status, body) = json(
            s.get(path)
                .header("Authorization", bearer("wrong"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, &body), (401, &expected), "{path} wrong token");
        // The host token alone is not client auth.
        let (status, _) = json(
            s.get(path)
                .header("X-OpenWork-Host-Token", HOST)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401, "{path} host header");
    }
}

#[tokio::test]
async fn workspaces_carry_the_opencode_connection() {
    let s = start(with_workspace()).await;
    let owner = issue(&s, "owner").await;
    let resp = s
        .get("/workspaces")
        .header("Authorization", bearer(&owner))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let (status, body) = json(resp).await;
    assert_eq!(status, 200);
    let ws = &body["items"][0];
    assert_eq!(ws["path"], "/abs/proj");
    assert_eq!(ws["name"], "proj");
    assert_eq!(ws["workspaceType"], "local");
    assert_eq!(
        ws["opencode"],
        json!({"baseUrl": "http://127.0.0.1:4096", "directory": "/abs/proj",
               "username": "oc-user", "password": "oc-pass"})
    );
    // id = "ws_" + first 12 hex of sha256("/abs/proj")
    let id = openwork_server::workspace::workspace_id("/abs/proj".into());
    assert_eq!(ws["id"], id);
    assert_eq!(body["activeId"], id);
    assert_eq!(body["workspaces"], body["items"]);
}

#[tokio::test]
async fn collaborators_do_not_get_opencode_credentials() {
    let s = start(with_workspace()).await;
    let (status, body) = json(
        s.get("/workspaces")
            .header("Authorization", bearer(CLIENT))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let oc = &body["items"][0]["opencode"];
    assert_eq!(oc["baseUrl"], "http://127.0.0.1:4096");
    assert!(oc.get("password").is_none() && oc.get("username").is_none());
}

#[tokio::test]
async fn viewers_do_not_get_opencode_credentials() {
    let s = start(with_workspace()).await;
    let viewer = issue(&s, "viewer").await;
    let (status, body) = json(
        s.get("/workspaces")
            .header("Authorization", bearer(&viewer))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let oc = &body["items"][0]["opencode"];
    assert_eq!(oc["baseUrl"], "http://127.0.0.1:4096");
    assert!(oc.get("password").is_none() && oc.get("username").is_none());
}

#[tokio::test]
async fn status_whoami_and_capabilities() {
    let mut c = with_workspace();
    c.read_only = true;
    let s = start(c).await;
    let auth = bearer(CLIENT);
    let (status, body) = json(
        s.get("/status")
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    assert_eq!(body["readOnly"], true);
    assert_eq!(
        body["approval"],
        json!({"mode": "manual", "timeoutMs": 30000})
    );
    assert_eq!(body["corsOrigins"], json!(["*"]));
    assert_eq!(body["workspaceCount"], 1);
    assert_eq!(body["workspace"]["path"], "/abs/proj");
    assert_eq!(body["authorizedRoots"], json!(["/abs/proj"]));
    assert_eq!(body["server"]["port"], s.port);
    assert_eq!(body["tokenSource"], json!({"client": "cli", "host": "cli"}));

    let (_, who) = json(
        s.get("/whoami")
            .header("Authorization", &auth)
            .header("X-OpenWork-Client-Id", "laptop")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(who["actor"]["type"], "remote");
    assert_eq!(who["actor"]["scope"], "collaborator");
    assert_eq!(who["actor"]["clientId"], "laptop");
    assert_eq!(who["actor"]["tokenHash"].as_str().unwrap().len(), 64);

    let (_, caps) = json(
        s.get("/capabilities")
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(caps["schemaVersion"], 1);
    assert_eq!(caps["config"]["write"], false);
    assert_eq!(caps["proxy"]["opencode"], true);
    // Only what is implemented and configured: no hub, no router, no runtime control here.
    assert_eq!(caps["hub"]["skills"]["install"], false);
    assert_eq!(caps["proxy"]["opencodeRouter"], false);
    assert_eq!(caps["runtime"]["control"], false);
    assert_eq!(caps["toolProviders"]["files"]["injection"], false);
    assert_eq!(caps["toolProviders"]["files"]["maxBytes"], 50_000_000);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_404() {
    let s = start(config()).await;
    let expected = json!({"code": "not_found", "message": "Not found"});
    for resp in [
        s.get("/nope").send().await.unwrap(),
        s.post("/health").send().await.unwrap(),
        s.get("/status/").send().await.unwrap(),
    ] {
        assert_eq!(json(resp).await, (404, expected.clone()));
    }
}

#[tokio::test]
async fn options_is_204_without_auth_and_cors_is_applied() {
    let mut c = config();
    c.cors = CorsOrigins::parse("http://app.test");
    let s = start(c).await;
    let resp = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/approvals"))
        .header("Origin", "http://app.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "http://app.test");
    assert_eq!(h["vary"], "Origin");
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("X-OpenWork-Host-Token")
    );
    // CORS also on errors; an unlisted origin gets no CORS headers.
    let err = s
        .get("/status")
        .header("Origin", "http://app.test")
        .send()
        .await
        .unwrap();
    assert_eq!(err.status(), 401);
    assert_eq!(
        err.headers()["access-control-allow-origin"],
        "http://app.test"
    );
    let other = s
        .get("/health")
        .header("Origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn host_routes_need_the_host_token_or_an_owner() {
    let s = start(config()).await;
    let expected = json!({"code": "unauthorized", "message": "Invalid host token"});
    let collaborator = s
        .get("/approvals")
        .header("Authorization", bearer(CLIENT))
        .send()
        .await
        .unwrap();
    assert_eq!(json(collaborator).await, (401, expected.clone()));
    let wrong = s
        .post("/tokens")
        .header("X-OpenWork-Host-Token", "not-it")
        .json(&json!({"scope": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(wrong).await, (401, expected.clone()));

    let owner = issue(&s, "owner").await;
    let viewer = issue(&s, "viewer").await;
    let (status, _) = json(
        s.get("/approvals")
            .header("Authorization", bearer(&owner))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = json(
        s.get("/tokens")
            .header("Authorization", bearer(&viewer))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (401, expected));
}

#[tokio::test]
async fn tokens_are_issued_listed_used_and_revoked() {
    let s = start(config()).await;
    let (status, body) = json(
        s.post("/tokens")
            .header("X-OpenWork-Host-Token", HOST)
            .header("Content-Type", "application/json")
            .body(r#"{"scope":"owner","label":"OpenWork owner token"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("owt_") && token.len() == 36);
    assert_eq!(body["scope"], "owner");
    assert_eq!(body["label"], "OpenWork owner token");
    assert!(body["createdAt"].is_u64());
    let id = body["id"].as_str().unwrap().to_owned();

    let (_, list) = json(
        s.get("/tokens")
            .header("X-OpenWork-Host-Token", HOST)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert!(!list.to_string().contains(&token));
    assert!(list["items"][0].get("hash").is_none());

    let (status, who) = json(
        s.get("/whoami")
            .header("Authorization", bearer(&token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &who["actor"]["scope"]), (200, &json!("owner")));

    let del = |id: String| {
        s.http
            .delete(s.url(&format!("/tokens/{id}")))
            .header("X-OpenWork-Host-Token", HOST)
            .send()
    };
    assert_eq!(
        json(del(id.clone()).await.unwrap()).await,
        (200, json!({"ok": true}))
    );
    let (status, body) = json(del(id).await.unwrap()).await;
    assert_eq!(
        (status, body["code"].clone()),
        (404, json!("token_not_found"))
    );
    let (status, _) = json(
        s.get("/whoami")
            .header("Authorization", bearer(&token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn token_validation_errors() {
    let s = start(config()).await;
    let post = |body: &'static str| {
        s.post("/tokens")
            .header("X-OpenWork-Host-Token", HOST)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let invalid_json = json!({"code": "invalid_json", "message": "Invalid JSON body"});
    assert_eq!(
        json(post("{not json").await.unwrap()).await,
        (400, invalid_json.clone())
    );
    assert_eq!(json(post("").await.unwrap()).await, (400, invalid_json));
    for bad in [r#"{"scope":"admin"}"#, r#"{}"#, r#"{"scope":1}"#] {
        let (status, body) = json(post(bad).await.unwrap()).await;
        assert_eq!(
            (status, body["code"].clone()),
            (400, json!("invalid_scope")),
            "{bad}"
        );
    }
    let (status, body) = json(post(r#"{"scope":"viewer","label":7}"#).await.unwrap()).await;
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("invalid_payload"))
    );
}

#[tokio::test]
async fn read_only_still_lets_the_host_mint_tokens() {
    let mut c = config();
    c.read_only = true;
    let s = start(c).await;
    let (status, body) = json(
        s.post("/tokens")
            .header("X-OpenWork-Host-Token", HOST)
            .json(&json!({"scope": "owner", "label": "OpenWork owner token"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    assert!(!body["token"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn approval_reply_validation() {
    let s = start(config()).await;
    let (status, body) = json(
        s.post("/approvals/does-not-exist")
            .header("X-OpenWork-Host-Token", HOST)
            .json(&json!({"reply": "allow"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"code": "approval_not_found", "message": "Approval request not found"})
        )
    );
    let (status, body) = json(
        s.post("/approvals/x")
            .header("X-OpenWork-Host-Token", HOST)
            .body("nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (400, Value::from("invalid_json"))
    );
}

#[tokio::test]
async fn issued_tokens_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state/tokens.json");
    let mut c = config();
    c.token_store = Some(store.clone());
    let s = start(c.clone()).await;
    let viewer = issue(&s, "viewer").await;
    let owner = issue(&s, "owner").await;
    drop(s);
    let text = std::fs::read_to_string(&store).unwrap();
    assert!(
        !text.contains(&viewer) && !text.contains(&owner),
        "tokens stored in clear"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let s = start(c.clone()).await;
    let r = s.get("/whoami").bearer_auth(&viewer).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let list: serde_json::Value = s
        .get("/tokens")
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let viewer_id = items.iter().find(|t| t["scope"] == "viewer").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .http
        .delete(s.url(&format!("/tokens/{viewer_id}")))
        .header("X-OpenWork-Host-Token", common::HOST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(s);
    let s = start(c).await;
    assert_eq!(
        s.get("/whoami")
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        s.get("/whoami")
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
