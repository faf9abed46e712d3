//! Helpers for the file-session tests: a server with one temporary workspace.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use openwork_server::ApprovalMode;
use openwork_server::workspace::Workspace;
use serde_json::{Value, json};

use super::{CLIENT, HOST, TestServer, config, start};

pub struct Ws {
    pub dir: tempfile::TempDir,
    pub s: TestServer,
    pub id: String,
}

impl Ws {
    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().to_path_buf()
    }
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn unb64(s: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap())
        .unwrap()
}

pub async fn workspace_with(mut c: openwork_server::Config) -> Ws {
    let dir = tempfile::tempdir().unwrap();
    let path = camino::Utf8PathBuf::from_path_buf(dir.path().canonicalize().unwrap()).unwrap();
    let ws = Workspace::local(path);
    let id = ws.id.clone();
    c.workspaces = vec![ws];
    let s = start(c).await;
    Ws { dir, s, id }
}

pub async fn workspace(mode: ApprovalMode) -> Ws {
    let mut c = config();
    c.approval.mode = mode;
    workspace_with(c).await
}

pub async fn call(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = s.http.request(method, s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn post(s: &TestServer, path: &str, token: &str, body: Value) -> (u16, Value) {
    call(s, reqwest::Method::POST, path, Some(token), Some(body)).await
}

pub async fn get(s: &TestServer, path: &str, token: &str) -> (u16, Value) {
    call(s, reqwest::Method::GET, path, Some(token), None).await
}

pub async fn session(w: &Ws, token: &str) -> String {
    let (status, body) = post(
        &w.s,
        &format!("/workspace/{}/files/sessions", w.id),
        token,
        json!({"write": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["session"]["id"].as_str().unwrap().to_owned()
}

pub async fn write(
    w: &Ws,
    sid: &str,
    path: &str,
    data: &[u8],
    if_match: Option<&str>,
) -> (u16, Value) {
    let mut entry = json!({"path": path, "contentBase64": b64(data)});
    if let Some(rev) = if_match {
        entry["ifMatchRevision"] = json!(rev);
    }
    post(
        &w.s,
        &format!("/files/sessions/{sid}/write-batch"),
        CLIENT,
        json!({"writes": [entry]}),
    )
    .await
}

pub async fn read(w: &Ws, sid: &str, paths: &[&str]) -> (u16, Value) {
    post(
        &w.s,
        &format!("/files/sessions/{sid}/read-batch"),
        CLIENT,
        json!({"paths": paths}),
    )
    .await
}

pub async fn ops(w: &Ws, sid: &str, operations: Value) -> (u16, Value) {
    post(
        &w.s,
        &format!("/files/sessions/{sid}/ops"),
        CLIENT,
        json!({"operations": operations}),
    )
    .await
}

/// Issues a scoped token through the host API.
pub async fn issue(s: &TestServer, scope: &str) -> String {
    let resp = s
        .post("/tokens")
        .header("X-OpenWork-Host-Token", HOST)
        .json(&json!({"scope": scope}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}
