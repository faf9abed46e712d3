//! Skills, commands, plugins and MCP over HTTP: success, scopes, read-only, manual approval,
//! bad input and a planted symlink for each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::files::{Ws, get, issue, post, workspace, workspace_with};
use common::gated::{answer_next, delete};
use common::{CLIENT, HOST, config};
use openwork_server::{ApprovalMode, Reply};
use serde_json::{Value, json};

fn url(w: &Ws, rest: &str) -> String {
    format!("/workspace/{}/{rest}", w.id)
}

#[tokio::test]
async fn skills_create_list_get_delete() {
    let w = workspace(ApprovalMode::Auto).await;
    let (status, body) = post(
        &w.s,
        &url(&w, "skills"),
        CLIENT,
        json!({"name": "pdf-tools", "content": "Use pdftotext.", "description": "PDF helpers"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "project");
    let text =
        std::fs::read_to_string(w.root().join(".opencode/skills/pdf-tools/SKILL.md")).unwrap();
    assert!(
        text.starts_with("---\nname: \"pdf-tools\"\ndescription: \"PDF helpers\"\n---\n"),
        "{text}"
    );
    std::fs::create_dir_all(w.root().join(".claude/skills/other")).unwrap();
    std::fs::write(
        w.root().join(".claude/skills/other/SKILL.md"),
        "---\ndescription: x\n---\nbody",
    )
    .unwrap();
    let (_, body) = get(&w.s, &url(&w, "skills"), CLIENT).await;
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pdf-tools", "other"]);
    assert_eq!(body["items"][0]["description"], "PDF helpers");
    let (status, body) = get(&w.s, &url(&w, "skills/pdf-tools"), CLIENT).await;
    assert_eq!(status, 200);
    assert!(body["content"].as_str().unwrap().contains("Use pdftotext."));
    let (status, body) = get(&w.s, &url(&w, "skills/nope"), CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("skill_not_found"))
    );
    for bad in ["Bad_Name", "a--b", "../x", "-a"] {
        let (status, body) = post(
            &w.s,
            &url(&w, "skills"),
            CLIENT,
            json!({"name": bad, "content": "x"}),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_name")),
            "{bad}"
        );
    }
    let (status, body) = post(&w.s, &url(&w, "skills"), CLIENT, json!({"name": "a"})).await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (400, Some(".")),
        "{body}"
    );
    let (status, body) = delete(&w.s, &url(&w, "skills/pdf-tools"), CLIENT).await;
    assert_eq!((status, body["ok"].as_bool()), (200, Some(true)));
    assert!(!w.root().join(".opencode/skills/pdf-tools").exists());
    let (status, _) = delete(&w.s, &url(&w, "skills/pdf-tools"), CLIENT).await;
    assert_eq!(status, 404);
    let (status, body) = get(&w.s, "/hub/skills", CLIENT).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("hub_disabled")));
    let (_, audit) = get(&w.s, &url(&w, "audit"), CLIENT).await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["skills.delete", "skills.upsert"]);
}

#[tokio::test]
async fn gated_routes_refuse_viewers_read_only_and_denials() {
    let w = workspace(ApprovalMode::Manual).await;
    let viewer = issue(&w.s, "viewer").await;
    let writes: Vec<(&str, Value)> = vec![
        ("skills", json!({"name": "s", "content": "x"})),
        ("commands", json!({"name": "c", "template": "do it"})),
        ("plugins", json!({"spec": "opencode-foo"})),
        (
            "mcp",
            json!({"name": "m", "config": {"type": "remote", "url": "https://example.invalid/mcp"}}),
        ),
    ];
    for (route, body) in &writes {
        let (status, got) = post(&w.s, &url(&w, route), &viewer, body.clone()).await;
        assert_eq!(
            (status, got["code"].as_str()),
            (403, Some("forbidden")),
            "{route}"
        );
        let (status, _) = get(&w.s, &url(&w, route), &viewer).await;
        assert_eq!(status, 200, "{route}: viewers read");
        let answer = answer_next(&w.s.approvals, Reply::Deny);
        let (status, got) = post(&w.s, &url(&w, route), CLIENT, body.clone()).await;
        assert_eq!(
            (status, got["code"].as_str()),
            (403, Some("write_denied")),
            "{route}"
        );
        answer.await.unwrap();
    }
    assert!(!w.root().join(".opencode").exists() && !w.root().join("opencode.json").exists());
    for (route, body) in &writes {
        let answer = answer_next(&w.s.approvals, Reply::Allow);
        let (status, got) = post(&w.s, &url(&w, route), CLIENT, body.clone()).await;
        assert_eq!(status, 200, "{route}: {got}");
        let req = answer.await.unwrap();
        assert!(
            req["action"].as_str().unwrap().ends_with(".upsert")
                || req["action"].as_str().unwrap().ends_with(".add")
        );
    }
    let mut c = config();
    c.read_only = true;
    let w = workspace_with(c).await;
    for (route, body) in &writes {
        let (status, got) = post(&w.s, &url(&w, route), CLIENT, body.clone()).await;
        assert_eq!(
            (status, got["code"].as_str()),
            (403, Some("read_only")),
            "{route}"
        );
    }
    for route in ["skills/s", "commands/c", "plugins/p", "mcp/m", "mcp/m/auth"] {
        let (status, got) = delete(&w.s, &url(&w, route), CLIENT).await;
        assert_eq!(
            (status, got["code"].as_str()),
            (403, Some("read_only")),
            "{route}"
        );
    }
}

#[tokio::test]
async fn commands_round_trip_and_global_needs_host() {
    let w = workspace(ApprovalMode::Auto).await;
    let (status, body) = post(
        &w.s,
        &url(&w, "commands"),
        CLIENT,
        json!({"name": "review", "template": "Review $ARGUMENTS", "description": "a: b\n---", "subtask": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let item = &body["items"][0];
    assert_eq!(
        (
            item["name"].as_str(),
            item["template"].as_str(),
            item["description"].as_str(),
            item["subtask"].as_bool()
        ),
        (
            Some("review"),
            Some("Review $ARGUMENTS"),
            Some("a: b\n---"),
            Some(true)
        )
    );
    let (status, body) = post(
        &w.s,
        &url(&w, "commands"),
        CLIENT,
        json!({"name": "x/y", "template": "t"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_name")));
    let (status, _) = get(&w.s, &url(&w, "commands?scope=global"), CLIENT).await;
    assert_eq!(status, 401);
    let resp =
        w.s.get(&url(&w, "commands?scope=global"))
            .bearer_auth(CLIENT)
            .header("X-OpenWork-Host-Token", HOST)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, _) = delete(&w.s, &url(&w, "commands/review"), CLIENT).await;
    assert_eq!(status, 200);
    let (status, body) = delete(&w.s, &url(&w, "commands/review"), CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("command_not_found"))
    );
}

#[tokio::test]
async fn plugins_and_mcp_edit_the_jsonc_in_place() {
    let w = workspace(ApprovalMode::Auto).await;
    std::fs::write(
        w.root().join("opencode.jsonc"),
        "{\n  // mine\n  \"plugin\": [\"a@1\"],\n  \"mcp\": {\n    // keep\n    \"old\": {\"type\": \"local\", \"command\": [\"x\"]},\n  },\n}\n",
    )
    .unwrap();
    std::fs::create_dir_all(w.root().join(".opencode/plugins")).unwrap();
    std::fs::write(w.root().join(".opencode/plugins/local.ts"), "export {}").unwrap();
    let (status, body) = post(&w.s, &url(&w, "plugins"), CLIENT, json!({"spec": "b"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["loadOrder"], json!(["a@1", "b", "local.ts"]));
    assert_eq!(body["items"][2]["source"], "dir.project");
    let (status, body) = delete(&w.s, &url(&w, "plugins/a"), CLIENT).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["loadOrder"], json!(["b", "local.ts"]));
    let (status, body) = delete(&w.s, &url(&w, "plugins/zzz"), CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("plugin_not_found"))
    );
    let (status, body) = post(
        &w.s,
        &url(&w, "plugins"),
        CLIENT,
        json!({"spec": "has space"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_spec")));

    let (status, body) = post(
        &w.s,
        &url(&w, "mcp"),
        CLIENT,
        json!({"name": "docs", "config": {"type": "remote", "url": "https://docs.example/mcp", "enabled": true}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert_eq!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "docs")
            .unwrap()["config"]["enabled"],
        true
    );
    for bad in [
        json!({"name": "bad name", "config": {"type": "local", "command": ["x"]}}),
        json!({"name": "n", "config": {"type": "local", "command": []}}),
        json!({"name": "n", "config": {"type": "remote", "url": "file:///etc/passwd"}}),
        json!({"name": "n", "config": {"type": "carrier-pigeon"}}),
    ] {
        let (status, _) = post(&w.s, &url(&w, "mcp"), CLIENT, bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _) = delete(&w.s, &url(&w, "mcp/old"), CLIENT).await;
    assert_eq!(status, 200);
    let (status, body) = delete(&w.s, &url(&w, "mcp/old"), CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("mcp_not_found"))
    );
    let text = std::fs::read_to_string(w.root().join("opencode.jsonc")).unwrap();
    assert!(
        text.contains("// mine") && text.contains("// keep"),
        "{text}"
    );
    let (status, body) = delete(&w.s, &url(&w, "mcp/docs/auth"), CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("opencode_unconfigured"))
    );
}

#[tokio::test]
async fn planted_symlinks_are_not_followed() {
    let w = workspace(ApprovalMode::Auto).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("skills/leak")).unwrap();
    std::fs::write(outside.path().join("skills/leak/SKILL.md"), "secret").unwrap();
    std::fs::write(outside.path().join("x.md"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), w.root().join(".opencode")).unwrap();
    let (status, body) = get(&w.s, &url(&w, "skills"), CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("unsafe_path")),
        "{body}"
    );
    let (status, _) = post(
        &w.s,
        &url(&w, "skills"),
        CLIENT,
        json!({"name": "leak", "content": "x"}),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = post(
        &w.s,
        &url(&w, "commands"),
        CLIENT,
        json!({"name": "x", "template": "y"}),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = delete(&w.s, &url(&w, "skills/leak"), CLIENT).await;
    assert_eq!(status, 422);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("x.md")).unwrap(),
        "secret"
    );
    assert!(outside.path().join("skills/leak/SKILL.md").exists());
    std::fs::remove_file(w.root().join(".opencode")).unwrap();
    // A link for the skill directory itself, and for opencode.json.
    std::fs::create_dir_all(w.root().join(".opencode/skills")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("skills/leak"),
        w.root().join(".opencode/skills/leak"),
    )
    .unwrap();
    let (_, body) = get(&w.s, &url(&w, "skills"), CLIENT).await;
    assert_eq!(body["items"], json!([]), "a linked skill is not listed");
    let (status, _) = get(&w.s, &url(&w, "skills/leak"), CLIENT).await;
    assert_eq!(status, 404);
    std::os::unix::fs::symlink(outside.path().join("x.md"), w.root().join("opencode.json"))
        .unwrap();
    let (status, _) = post(&w.s, &url(&w, "plugins"), CLIENT, json!({"spec": "p"})).await;
    assert_eq!(status, 422);
    let (status, _) = post(
        &w.s,
        &url(&w, "mcp"),
        CLIENT,
        json!({"name": "m", "config": {"type": "local", "command": ["x"]}}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("x.md")).unwrap(),
        "secret"
    );
}
