//! Inbox upload (multipart, size cap, approval), inbox/outbox listings and downloads, read-only,
//! scopes and planted symlinks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::files::{Ws, get, issue, workspace, workspace_with};
use common::gated::answer_next;
use common::{CLIENT, config};
use openwork_server::{ApprovalMode, Reply};
use serde_json::Value;

fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XBOUNDARYx42";
    let mut body = Vec::new();
    for (name, filename, data) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(f) = filename {
            body.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    w: &Ws,
    token: &str,
    query: &str,
    fields: &[(&str, Option<&str>, &[u8])],
) -> (u16, Value) {
    let (ctype, body) = multipart(fields);
    let resp =
        w.s.post(&format!("/workspace/{}/inbox{query}", w.id))
            .bearer_auth(token)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn upload_list_download_and_outbox() {
    let w = workspace(ApprovalMode::Auto).await;
    let (status, body) = upload(&w, CLIENT, "", &[("file", Some("report.pdf"), b"%PDF-1")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["path"].as_str(), body["bytes"].as_u64()),
        (Some("report.pdf"), Some(6))
    );
    let (status, body) = upload(
        &w,
        CLIENT,
        "?path=docs/a.txt",
        &[("file", Some("ignored.txt"), b"hello")],
    )
    .await;
    assert_eq!((status, body["path"].as_str()), (200, Some("docs/a.txt")));
    let (status, body) = upload(
        &w,
        CLIENT,
        "",
        &[("file", Some("x"), b"1"), ("path", None, b"from-form.txt")],
    )
    .await;
    assert_eq!(
        (status, body["path"].as_str()),
        (200, Some("from-form.txt"))
    );
    assert_eq!(
        std::fs::read(w.root().join(".opencode/openwork/inbox/docs/a.txt")).unwrap(),
        b"hello"
    );
    let (status, list) = get(&w.s, &format!("/workspace/{}/inbox", w.id), CLIENT).await;
    assert_eq!(status, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let a = items.iter().find(|i| i["path"] == "docs/a.txt").unwrap();
    assert_eq!(
        (a["name"].as_str(), a["size"].as_u64()),
        (Some("a.txt"), Some(5))
    );
    let resp =
        w.s.get(&format!(
            "/workspace/{}/inbox/{}",
            w.id,
            a["id"].as_str().unwrap()
        ))
        .bearer_auth(CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"a.txt\""
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"hello");

    std::fs::create_dir_all(w.root().join(".opencode/openwork/outbox")).unwrap();
    std::fs::write(w.root().join(".opencode/openwork/outbox/result.csv"), "a,b").unwrap();
    let viewer = issue(&w.s, "viewer").await;
    let (status, list) = get(&w.s, &format!("/workspace/{}/artifacts", w.id), &viewer).await;
    assert_eq!(status, 200);
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let resp =
        w.s.get(&format!("/workspace/{}/artifacts/{id}", w.id))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"a,b");
    let (status, _) = get(
        &w.s,
        &format!("/workspace/{}/artifacts/bm9wZQ", w.id),
        CLIENT,
    )
    .await;
    assert_eq!(status, 404);
    // Viewers cannot upload.
    let (status, body) = upload(&w, &viewer, "", &[("file", Some("v.txt"), b"x")]).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
}

#[tokio::test]
async fn bad_input_size_cap_read_only_and_approval() {
    let mut c = config();
    c.inbox_max_bytes = 10;
    c.approval.mode = ApprovalMode::Manual;
    let w = workspace_with(c).await;
    let (status, body) = upload(&w, CLIENT, "", &[("file", Some("big.bin"), b"01234567890")]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("file_too_large")),
        "{body}"
    );
    let (status, body) = upload(&w, CLIENT, "", &[("path", None, b"x.txt")]).await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (400, Some("file"))
    );
    let (status, body) = upload(
        &w,
        CLIENT,
        "?path=../escape.txt",
        &[("file", Some("a"), b"x")],
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_path")));
    let answer = answer_next(&w.s.approvals, Reply::Deny);
    let (status, body) = upload(&w, CLIENT, "", &[("file", Some("a.txt"), b"x")]).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("write_denied")));
    assert_eq!(answer.await.unwrap()["action"], "workspace.inbox.upload");
    assert!(!w.root().join(".opencode/openwork/inbox/a.txt").exists());
    let answer = answer_next(&w.s.approvals, Reply::Allow);
    let (status, _) = upload(&w, CLIENT, "", &[("file", Some("a.txt"), b"x")]).await;
    assert_eq!(status, 200);
    answer.await.unwrap();

    let mut c = config();
    c.read_only = true;
    let w = workspace_with(c).await;
    let (status, body) = upload(&w, CLIENT, "", &[("file", Some("a.txt"), b"x")]).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("read_only")));
    let (status, _) = get(&w.s, &format!("/workspace/{}/inbox", w.id), CLIENT).await;
    assert_eq!(status, 200, "reads work read-only");

    let mut c = config();
    c.inbox_enabled = false;
    c.outbox_enabled = false;
    let w = workspace_with(c).await;
    let (status, body) = get(&w.s, &format!("/workspace/{}/inbox", w.id), CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("inbox_disabled"))
    );
    let (status, body) = get(&w.s, &format!("/workspace/{}/artifacts", w.id), CLIENT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("outbox_disabled"))
    );
}

#[tokio::test]
async fn planted_symlinks_are_not_followed() {
    let w = workspace(ApprovalMode::Auto).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("id_ed25519"), "PRIVATE").unwrap();
    std::fs::create_dir_all(w.root().join(".opencode/openwork")).unwrap();
    // The whole outbox is a link; then one file in a real outbox is a link.
    std::os::unix::fs::symlink(outside.path(), w.root().join(".opencode/openwork/outbox")).unwrap();
    let (status, list) = get(&w.s, &format!("/workspace/{}/artifacts", w.id), CLIENT).await;
    assert_eq!(
        (status, list["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let id = "aWRfZWQyNTUxOQ"; // base64url("id_ed25519")
    let (status, body) = get(&w.s, &format!("/workspace/{}/artifacts/{id}", w.id), CLIENT).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("unsafe_path")));
    std::fs::remove_file(w.root().join(".opencode/openwork/outbox")).unwrap();
    std::fs::create_dir(w.root().join(".opencode/openwork/outbox")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("id_ed25519"),
        w.root().join(".opencode/openwork/outbox/id_ed25519"),
    )
    .unwrap();
    let (_, list) = get(&w.s, &format!("/workspace/{}/artifacts", w.id), CLIENT).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));
    let (status, _) = get(&w.s, &format!("/workspace/{}/artifacts/{id}", w.id), CLIENT).await;
    assert_eq!(status, 422);
    // An inbox that is a link receives nothing.
    std::os::unix::fs::symlink(outside.path(), w.root().join(".opencode/openwork/inbox")).unwrap();
    let (status, _) = upload(&w, CLIENT, "", &[("file", Some("drop.txt"), b"x")]).await;
    assert_eq!(status, 422);
    assert!(!outside.path().join("drop.txt").exists());
}
