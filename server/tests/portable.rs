//! Export and import: round trip, merge vs replace, approval, scopes, read-only, bad names and
//! a planted symlink.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::files::{get, issue, post, workspace, workspace_with};
use common::gated::answer_next;
use common::{CLIENT, config};
use openwork_server::{ApprovalMode, Reply};
use serde_json::json;

#[tokio::test]
async fn export_import_round_trip_merge_and_replace() {
    let a = workspace(ApprovalMode::Auto).await;
    std::fs::write(
        a.root().join("opencode.jsonc"),
        "{\n  // c\n  \"model\": \"m\",\n}\n",
    )
    .unwrap();
    post(
        &a.s,
        &format!("/workspace/{}/skills", a.id),
        CLIENT,
        json!({"name": "s-one", "content": "S", "description": "d"}),
    )
    .await;
    post(
        &a.s,
        &format!("/workspace/{}/commands", a.id),
        CLIENT,
        json!({"name": "c1", "template": "T", "description": "cd"}),
    )
    .await;
    let (status, exported) = get(&a.s, &format!("/workspace/{}/export", a.id), CLIENT).await;
    assert_eq!(status, 200, "{exported}");
    assert_eq!(exported["opencode"], json!({"model": "m"}));
    assert_eq!(exported["skills"][0]["name"], "s-one");
    assert_eq!(
        exported["commands"][0],
        json!({"name": "c1", "description": "cd", "template": "T"})
    );

    let b = workspace(ApprovalMode::Auto).await;
    std::fs::write(
        b.root().join("opencode.jsonc"),
        "{\n  // keep me\n  \"theme\": \"x\",\n}\n",
    )
    .unwrap();
    std::fs::create_dir_all(b.root().join(".opencode/commands")).unwrap();
    std::fs::write(b.root().join(".opencode/commands/old.md"), "old").unwrap();
    let mut body = exported.clone();
    body["mode"] = json!({"commands": "replace"});
    let (status, got) = post(&b.s, &format!("/workspace/{}/import", b.id), CLIENT, body).await;
    assert_eq!(status, 200, "{got}");
    let text = std::fs::read_to_string(b.root().join("opencode.jsonc")).unwrap();
    assert!(
        text.contains("// keep me") && text.contains("\"model\""),
        "merge keeps: {text}"
    );
    assert!(
        !b.root().join(".opencode/commands/old.md").exists(),
        "replace removes"
    );
    let (_, again) = get(&b.s, &format!("/workspace/{}/export", b.id), CLIENT).await;
    assert_eq!(again["skills"], exported["skills"]);
    assert_eq!(again["commands"], exported["commands"]);
    let (_, audit) = get(&b.s, &format!("/workspace/{}/audit", b.id), CLIENT).await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["action"] == "config.import")
    );
    // opencode.jsonc, openwork.json, old.md removed, the skill, the command.
    assert_eq!(audit["items"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn import_gates_and_bad_input() {
    let w = workspace(ApprovalMode::Manual).await;
    let url = format!("/workspace/{}/import", w.id);
    let answer = answer_next(&w.s.approvals, Reply::Deny);
    let (status, _) = post(&w.s, &url, CLIENT, json!({"openwork": {"a": 1}})).await;
    assert_eq!(status, 403);
    assert_eq!(answer.await.unwrap()["action"], "config.import");
    assert!(!w.root().join(".opencode").exists());
    let viewer = issue(&w.s, "viewer").await;
    let (status, _) = post(&w.s, &url, &viewer, json!({})).await;
    assert_eq!(status, 403);
    let (status, body) = post(
        &w.s,
        &url,
        CLIENT,
        json!({"skills": [{"name": "../x", "content": "c"}]}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_name")));
    let (status, body) = post(&w.s, &url, CLIENT, json!({"mode": {"skills": "wipe"}})).await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (400, Some("mode.skills")),
        "{body}"
    );
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), w.root().join(".opencode")).unwrap();
    let (status, _) = post(
        &w.s,
        &url,
        CLIENT,
        json!({"commands": [{"name": "x", "template": "t"}]}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

    let mut c = config();
    c.read_only = true;
    let w = workspace_with(c).await;
    let (status, body) = post(
        &w.s,
        &format!("/workspace/{}/import", w.id),
        CLIENT,
        json!({}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("read_only")));
    let (status, _) = get(&w.s, &format!("/workspace/{}/export", w.id), CLIENT).await;
    assert_eq!(status, 200);
}
