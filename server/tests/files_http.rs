//! File sessions over HTTP (reference §A11): lifecycle, auth, catalog, events, read, write,
//! ops, validation and limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::files::{
    b64, call, get, issue, ops, post, read, session, unb64, workspace, workspace_with, write,
};
use common::{CLIENT, config};
use openwork_server::ApprovalMode;
use serde_json::json;

#[tokio::test]
async fn session_lifecycle_and_auth() {
    let w = workspace(ApprovalMode::Auto).await;
    let create = format!("/workspace/{}/files/sessions", w.id);
    // Auth failures: missing, wrong.
    assert_eq!(
        call(&w.s, reqwest::Method::POST, &create, None, Some(json!({})))
            .await
            .0,
        401
    );
    let (status, body) = post(&w.s, &create, "nope", json!({})).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Invalid bearer token"))
    );
    // Unknown workspace.
    let (status, body) = post(
        &w.s,
        "/workspace/ws_000000000000/files/sessions",
        CLIENT,
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("workspace_not_found"))
    );
    // TTL clamp and default; a string TTL silently gives the default.
    let (status, body) = post(
        &w.s,
        &create,
        CLIENT,
        json!({"ttlSeconds": 1, "write": true}),
    )
    .await;
    assert_eq!(status, 200);
    let sess = &body["session"];
    assert_eq!(sess["workspaceId"], w.id);
    assert_eq!(sess["canWrite"], true);
    let ttl = sess["expiresAt"].as_u64().unwrap() - sess["createdAt"].as_u64().unwrap();
    assert_eq!(ttl, 30_000);
    assert!(sess["ttlMs"].as_u64().unwrap() <= 30_000);
    let sid = sess["id"].as_str().unwrap().to_owned();
    let (_, body) = post(&w.s, &create, CLIENT, json!({"ttlSeconds": "60"})).await;
    let s2 = &body["session"];
    assert_eq!(
        s2["expiresAt"].as_u64().unwrap() - s2["createdAt"].as_u64().unwrap(),
        900_000
    );
    // Empty body is fine.
    let resp = w.s.post(&create).bearer_auth(CLIENT).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // Viewer: session without write.
    let viewer = issue(&w.s, "viewer").await;
    let (_, body) = post(&w.s, &create, &viewer, json!({"write": true})).await;
    assert_eq!(body["session"]["canWrite"], false);
    // Another token cannot use the session.
    let (status, body) = get(
        &w.s,
        &format!("/files/sessions/{sid}/catalog/events"),
        &viewer,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (403, Some("File session does not belong to this token"))
    );
    // Renew uses the default TTL, not the original one.
    let (status, body) = post(
        &w.s,
        &format!("/files/sessions/{sid}/renew"),
        CLIENT,
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["session"]["ttlMs"].as_u64().unwrap() > 800_000);
    // Close, then the session is gone.
    let (status, body) = call(
        &w.s,
        reqwest::Method::DELETE,
        &format!("/files/sessions/{sid}"),
        Some(CLIENT),
        None,
    )
    .await;
    assert_eq!((status, body), (200, json!({"ok": true})));
    let (status, body) = post(
        &w.s,
        &format!("/files/sessions/{sid}/renew"),
        CLIENT,
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("file_session_not_found"))
    );
}

#[tokio::test]
async fn write_read_catalog_and_events() {
    let w = workspace(ApprovalMode::Auto).await;
    std::fs::create_dir_all(w.root().join(".git")).unwrap();
    std::fs::write(w.root().join(".git/HEAD"), "ref").unwrap();
    std::fs::create_dir_all(w.root().join("node_modules/x")).unwrap();
    std::fs::write(w.root().join("node_modules/x/i.js"), "x").unwrap();
    let sid = session(&w, CLIENT).await;
    let (status, body) = post(
        &w.s,
        &format!("/files/sessions/{sid}/write-batch"),
        CLIENT,
        json!({"writes": [
            {"path": "b.md", "contentBase64": b64(b"bee")},
            {"path": "/workspace/src/a.ts", "contentBase64": b64(b"let a = 1;")},
            {"path": "empty.txt", "contentBase64": ""},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(
        items
            .iter()
            .map(|i| i["path"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["b.md", "src/a.ts", "empty.txt"]
    );
    assert!(items.iter().all(|i| i["ok"] == true));
    assert_eq!(items[0]["previousRevision"], serde_json::Value::Null);
    assert_eq!(items[2]["bytes"], 0);
    assert_eq!(body["cursor"], 3);
    assert_eq!(
        std::fs::read(w.root().join("src/a.ts")).unwrap(),
        b"let a = 1;"
    );
    let rev = items[0]["revision"].as_str().unwrap();
    let (mtime, size) = rev.split_once(':').unwrap();
    assert!(mtime.parse::<u64>().is_ok());
    assert_eq!(size, "3");

    let (status, body) = read(&w, &sid, &["b.md", "missing.md", "src", "empty.txt"]).await;
    assert_eq!(status, 200);
    let items = body["items"].as_array().unwrap();
    assert_eq!(unb64(&items[0]["contentBase64"]), b"bee");
    assert_eq!(items[0]["revision"], rev);
    assert_eq!(items[0]["kind"], "file");
    assert_eq!(items[1]["code"], "file_not_found");
    assert_eq!(items[2]["code"], "file_not_found");
    assert_eq!(items[3]["bytes"], 0);

    // Catalog: byte order, paging with nextAfter, heavy dirs skipped by default.
    let snap = format!("/files/sessions/{sid}/catalog/snapshot");
    let (_, body) = get(&w.s, &snap, CLIENT).await;
    let paths: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["b.md", "empty.txt", "src", "src/a.ts"]);
    assert_eq!(body["total"], 4);
    assert_eq!(body["truncated"], false);
    assert_eq!(body["cursor"], 3);
    assert_eq!(body["sessionId"], sid.as_str());
    let (_, p1) = get(&w.s, &format!("{snap}?limit=2&includeDirs=false"), CLIENT).await;
    assert_eq!(p1["truncated"], true);
    assert_eq!(p1["nextAfter"], "empty.txt");
    let (_, p2) = get(
        &w.s,
        &format!("{snap}?limit=2&includeDirs=false&after=empty.txt"),
        CLIENT,
    )
    .await;
    assert_eq!(p2["items"][0]["path"], "src/a.ts");
    assert_eq!(p2["truncated"], false);
    let (_, pre) = get(&w.s, &format!("{snap}?prefix=src"), CLIENT).await;
    assert_eq!(pre["total"], 2);
    let (_, heavy) = get(
        &w.s,
        &format!("{snap}?excludeHeavyDirectories=false"),
        CLIENT,
    )
    .await;
    let all: Vec<&str> = heavy["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert!(all.contains(&".git/HEAD") && all.contains(&"node_modules/x/i.js"));
    let (status, body) = get(&w.s, &format!("{snap}?prefix=../x"), CLIENT).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_path")));

    // Events: since, cursor and resync after a "restart" (since ahead of cursor).
    let ev = format!("/files/sessions/{sid}/catalog/events");
    let (_, body) = get(&w.s, &format!("{ev}?since=1"), CLIENT).await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["type"], "write");
    assert_eq!(items[0]["seq"], 2);
    assert_eq!(items[0]["path"], "src/a.ts");
    assert_eq!(body["cursor"], 3);
    assert_eq!(body["resync"], false);
    let (_, body) = get(&w.s, &format!("{ev}?since=99"), CLIENT).await;
    assert_eq!(body["resync"], true);
    let (_, body) = get(&w.s, &format!("{ev}?since=-4"), CLIENT).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn revisions_conflicts_and_force() {
    let w = workspace(ApprovalMode::Auto).await;
    let sid = session(&w, CLIENT).await;
    let (_, body) = write(&w, &sid, "a.txt", b"one", None).await;
    let r1 = body["items"][0]["revision"].as_str().unwrap().to_owned();
    let (_, body) = write(&w, &sid, "a.txt", b"two", Some(&r1)).await;
    let r2 = body["items"][0]["revision"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "same-size rewrite must change the revision");
    assert_eq!(body["items"][0]["previousRevision"], r1.as_str());
    let (status, body) = write(&w, &sid, "a.txt", b"three", Some(&r1)).await;
    assert_eq!(status, 200);
    let item = &body["items"][0];
    assert_eq!(item["code"], "conflict");
    assert_eq!(item["expectedRevision"], r1.as_str());
    assert_eq!(item["currentRevision"], r2.as_str());
    assert_eq!(std::fs::read(w.root().join("a.txt")).unwrap(), b"two");
    let (_, body) = post(
        &w.s,
        &format!("/files/sessions/{sid}/write-batch"),
        CLIENT,
        json!({"writes": [
        {"path": "a.txt", "contentBase64": b64(b"forced"), "ifMatchRevision": r1, "force": true}]}),
    )
    .await;
    assert_eq!(body["items"][0]["ok"], true);
    // A missing file has revision null, so any ifMatchRevision conflicts.
    let (_, body) = write(&w, &sid, "new.txt", b"x", Some("1:1")).await;
    assert_eq!(body["items"][0]["currentRevision"], serde_json::Value::Null);
}

#[tokio::test]
async fn validation_and_limits() {
    let mut c = config();
    c.approval.mode = ApprovalMode::Auto;
    c.max_body_bytes = 7_000_000;
    let w = workspace_with(c).await;
    let sid = session(&w, CLIENT).await;
    let rb = format!("/files/sessions/{sid}/read-batch");
    let wb = format!("/files/sessions/{sid}/write-batch");
    for (body, message) in [
        (json!({}), "paths must be an array"),
        (json!({"paths": []}), "paths must not be empty"),
        (
            json!({"paths": vec!["a"; 65]}),
            "paths must include <= 64 items",
        ),
    ] {
        let (status, got) = post(&w.s, &rb, CLIENT, body).await;
        assert_eq!(
            (status, got["code"].as_str(), got["message"].as_str()),
            (400, Some("invalid_payload"), Some(message))
        );
    }
    let (status, got) = post(&w.s, &rb, CLIENT, json!({"paths": ["ok.md", "../x"]})).await;
    assert_eq!((status, got["code"].as_str()), (400, Some("invalid_path")));
    let resp =
        w.s.post(&rb)
            .bearer_auth(CLIENT)
            .body("{not json")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["code"],
        "invalid_json"
    );
    // Typed bodies: the 400 names the entry and the field.
    let (status, got) = post(&w.s, &wb, CLIENT, json!({"writes": ["a"]})).await;
    assert_eq!(
        (status, got["details"]["field"].as_str()),
        (400, Some("writes[0]"))
    );
    assert!(
        got["message"]
            .as_str()
            .unwrap()
            .starts_with("writes[0]: invalid type")
    );
    let (status, got) = post(&w.s, &wb, CLIENT, json!({"writes": [{"path": "a"}]})).await;
    assert_eq!(
        (status, got["message"].as_str()),
        (400, Some("writes[0]: missing field `contentBase64`"))
    );
    let (_, got) = post(
        &w.s,
        &wb,
        CLIENT,
        json!({"writes": [{"path": "a", "contentBase64": "!!notbase64"}]}),
    )
    .await;
    assert_eq!(got["items"][0]["code"], "invalid_base64");
    assert!(!w.root().join("a").exists());
    // Over the 5 MB file limit (the body itself fits the 7 MB request limit).
    let big = vec![b'x'; 5_000_001];
    let (status, got) = write(&w, &sid, "big.bin", &big, None).await;
    assert_eq!(status, 200);
    assert_eq!(got["items"][0]["code"], "file_too_large");
    assert_eq!(got["items"][0]["maxBytes"], 5_000_000);
    assert_eq!(got["items"][0]["size"], 5_000_001);
    std::fs::write(w.root().join("big.bin"), &big).unwrap();
    let (_, got) = read(&w, &sid, &["big.bin"]).await;
    assert_eq!(got["items"][0]["code"], "file_too_large");
    // Over the request limit: 413 JSON.
    let huge = vec![b'y'; 6_000_000];
    let (status, got) = write(&w, &sid, "huge.bin", &huge, None).await;
    assert_eq!(
        (status, got["code"].as_str()),
        (413, Some("payload_too_large"))
    );
}

#[tokio::test]
async fn scope_read_only_and_session_write_flag() {
    let w = workspace(ApprovalMode::Auto).await;
    let viewer = issue(&w.s, "viewer").await;
    let vsid = session(&w, &viewer).await;
    // Viewers may read and list.
    std::fs::write(w.root().join("r.md"), "r").unwrap();
    let (status, _) = post(
        &w.s,
        &format!("/files/sessions/{vsid}/read-batch"),
        &viewer,
        json!({"paths": ["r.md"]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post(
        &w.s,
        &format!("/files/sessions/{vsid}/write-batch"),
        &viewer,
        json!({"writes": [{"path": "x", "contentBase64": b64(b"x")}]}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(
        body["details"],
        json!({"required": "collaborator", "scope": "viewer"})
    );
    let (status, _) = post(
        &w.s,
        &format!("/files/sessions/{vsid}/ops"),
        &viewer,
        json!({"operations": [{"type": "mkdir", "path": "d"}]}),
    )
    .await;
    assert_eq!(status, 403);
    // A session opened with write:false refuses writes.
    let (_, body) = post(
        &w.s,
        &format!("/workspace/{}/files/sessions", w.id),
        CLIENT,
        json!({"write": false}),
    )
    .await;
    let rsid = body["session"]["id"].as_str().unwrap();
    let (status, body) = write(&w, rsid, "x", b"x", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (403, Some("File session is read-only"))
    );

    let mut c = config();
    c.read_only = true;
    let ro = workspace_with(c).await;
    let sid = session(&ro, CLIENT).await;
    let (status, body) = write(&ro, &sid, "x", b"x", None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("read_only")));
    let (status, _) = ops(&ro, &sid, json!([{"type": "mkdir", "path": "d"}])).await;
    assert_eq!(status, 403);
    assert!(!ro.root().join("x").exists());
}

#[tokio::test]
async fn ops_mkdir_delete_rename() {
    let w = workspace(ApprovalMode::Auto).await;
    let sid = session(&w, CLIENT).await;
    write(&w, &sid, "d/f.txt", b"f", None).await;
    let (status, body) = ops(
        &w,
        &sid,
        json!([
            {"type": "mkdir", "path": "m/n"},
            {"type": "rename", "from": "d/f.txt", "to": "e/g.txt"},
            {"type": "delete", "path": "m"},
            {"type": "delete", "path": "m", "recursive": true},
            {"type": "delete", "path": "gone"},
            {"type": "rename", "from": "gone", "to": "x"},
            {"type": "chmod", "path": "e"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(
        items[0],
        json!({"ok": true, "type": "mkdir", "path": "m/n"})
    );
    assert_eq!(
        items[1],
        json!({"ok": true, "type": "rename", "from": "d/f.txt", "to": "e/g.txt"})
    );
    assert_eq!(items[2]["ok"], false);
    assert_eq!(items[3], json!({"ok": true, "type": "delete", "path": "m"}));
    assert_eq!(items[4]["code"], "file_not_found");
    assert_eq!(items[4]["message"], "Path not found");
    assert_eq!(items[5]["message"], "Source path not found");
    assert_eq!(items[6]["code"], "invalid_operation");
    assert_eq!(items[6]["message"], "Unsupported operation type: chmod");
    assert_eq!(std::fs::read(w.root().join("e/g.txt")).unwrap(), b"f");
    assert!(!w.root().join("m").exists());
    let (_, ev) = get(
        &w.s,
        &format!("/files/sessions/{sid}/catalog/events?since=1"),
        CLIENT,
    )
    .await;
    let kinds: Vec<&str> = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["mkdir", "rename", "delete"]);
    assert_eq!(ev["items"][1]["toPath"], "e/g.txt");
    let (status, body) = ops(&w, &sid, json!([{"type": "delete", "path": "/etc"}])).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_path")));
    let (status, _) = ops(&w, &sid, json!([])).await;
    assert_eq!(status, 400);
}
