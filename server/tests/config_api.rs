//! `GET`/`PATCH /workspace/:id/config` over HTTP: JSONC kept, 422 with position, auth scopes,
//! read-only, manual approval (allow, deny), a planted symlink, the audit line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::files::{get, issue, workspace, workspace_with};
use common::gated::{answer_next, patch};
use common::{CLIENT, config};
use openwork_server::{ApprovalMode, Reply};
use serde_json::json;

const EXISTING: &str = "{\n  // pinned by hand\n  \"model\": \"anthropic/claude\",\n  \"theme\": \"dark\", /* inline */\n  \"share\": \"manual\",\n}\n";

#[tokio::test]
async fn patch_merges_keeping_comments_and_order_and_is_audited() {
    let w = workspace(ApprovalMode::Auto).await;
    std::fs::write(w.root().join("opencode.jsonc"), EXISTING).unwrap();
    let url = format!("/workspace/{}/config", w.id);
    let (status, body) = patch(
        &w.s,
        &url,
        CLIENT,
        json!({"opencode": {"theme": "light", "plugin": ["p"]}, "openwork": {"version": 1}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["updatedAt"].as_u64().unwrap() > 0);
    let text = std::fs::read_to_string(w.root().join("opencode.jsonc")).unwrap();
    assert!(
        text.contains("// pinned by hand") && text.contains("/* inline */"),
        "{text}"
    );
    let (m, t, s, p) = (
        text.find("\"model\"").unwrap(),
        text.find("\"theme\": \"light\"").unwrap(),
        text.find("\"share\"").unwrap(),
        text.find("\"plugin\"").unwrap(),
    );
    assert!(m < t && t < s && s < p, "{text}");
    assert!(!w.root().join("opencode.json").exists());
    let (status, got) = get(&w.s, &url, CLIENT).await;
    assert_eq!(status, 200);
    assert_eq!(got["opencode"]["theme"], "light");
    assert_eq!(got["openwork"], json!({"version": 1}));
    assert!(got["updatedAt"].as_u64().is_some(), "{got}");
    let (_, audit) = get(&w.s, &format!("/workspace/{}/audit", w.id), CLIENT).await;
    let actions: Vec<_> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["action"].clone(), i["target"].clone()))
        .collect();
    assert_eq!(actions.len(), 2);
    assert!(actions.contains(&(json!("config.patch"), json!("opencode.jsonc"))));
}

#[tokio::test]
async fn broken_file_is_422_with_position_and_untouched() {
    let w = workspace(ApprovalMode::Auto).await;
    let broken = "{\n  \"a\": 1,\n  \"b\" 2\n}\n";
    std::fs::write(w.root().join("opencode.json"), broken).unwrap();
    let url = format!("/workspace/{}/config", w.id);
    let (status, body) = patch(&w.s, &url, CLIENT, json!({"opencode": {"a": 2}})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_json")),
        "{body}"
    );
    assert_eq!(body["details"]["line"], 3);
    assert_eq!(body["details"]["file"], "opencode.json");
    assert!(body["details"]["column"].as_u64().is_some());
    assert_eq!(
        std::fs::read_to_string(w.root().join("opencode.json")).unwrap(),
        broken
    );
    let (status, _) = get(&w.s, &url, CLIENT).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn scopes_read_only_and_bad_input() {
    let w = workspace(ApprovalMode::Auto).await;
    let url = format!("/workspace/{}/config", w.id);
    let viewer = issue(&w.s, "viewer").await;
    let (status, _) = get(&w.s, &url, &viewer).await;
    assert_eq!(status, 200);
    let (status, body) = patch(&w.s, &url, &viewer, json!({"opencode": {}})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(body["details"]["required"], "collaborator");
    let (status, _) = patch(&w.s, &url, "nope", json!({"opencode": {}})).await;
    assert_eq!(status, 401);
    let (status, body) = patch(&w.s, &url, CLIENT, json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_payload"))
    );
    let (status, body) = patch(&w.s, &url, CLIENT, json!({"opencode": [1]})).await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (400, Some("opencode"))
    );
    let (status, _) = patch(
        &w.s,
        "/workspace/ws_nope/config",
        CLIENT,
        json!({"opencode": {}}),
    )
    .await;
    assert_eq!(status, 404);

    let mut c = config();
    c.read_only = true;
    let w = workspace_with(c).await;
    let (status, body) = patch(
        &w.s,
        &format!("/workspace/{}/config", w.id),
        CLIENT,
        json!({"opencode": {"a": 1}}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("read_only")));
}

#[tokio::test]
async fn manual_approval_allow_and_deny() {
    let w = workspace(ApprovalMode::Manual).await;
    let url = format!("/workspace/{}/config", w.id);
    let answer = answer_next(&w.s.approvals, Reply::Deny);
    let (status, body) = patch(&w.s, &url, CLIENT, json!({"opencode": {"a": 1}})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("write_denied")));
    let req = answer.await.unwrap();
    assert_eq!(req["action"], "config.patch");
    assert!(
        req["paths"][0]
            .as_str()
            .unwrap()
            .ends_with("/opencode.json")
    );
    assert!(!w.root().join("opencode.json").exists());
    let answer = answer_next(&w.s.approvals, Reply::Allow);
    let (status, _) = patch(&w.s, &url, CLIENT, json!({"opencode": {"a": 1}})).await;
    assert_eq!(status, 200);
    answer.await.unwrap();
    assert!(
        std::fs::read_to_string(w.root().join("opencode.json"))
            .unwrap()
            .contains("\"a\": 1")
    );
}

#[tokio::test]
async fn planted_symlink_is_not_followed() {
    let w = workspace(ApprovalMode::Auto).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("openwork.json"), "{\"secret\": 1}").unwrap();
    std::os::unix::fs::symlink(outside.path(), w.root().join(".opencode")).unwrap();
    let url = format!("/workspace/{}/config", w.id);
    let (status, body) = get(&w.s, &url, CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("unsafe_path")),
        "{body}"
    );
    let (status, body) = patch(&w.s, &url, CLIENT, json!({"openwork": {"x": 1}})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("unsafe_path")));
    assert_eq!(
        std::fs::read_to_string(outside.path().join("openwork.json")).unwrap(),
        "{\"secret\": 1}"
    );
    std::fs::remove_file(w.root().join(".opencode")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", w.root().join("opencode.json")).unwrap();
    let (status, _) = get(&w.s, &url, CLIENT).await;
    assert_eq!(status, 422);
}
