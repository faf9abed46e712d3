//! Nothing outside the workspace is ever read or written through file sessions: traversal
//! strings, file and directory symlinks, and a directory swapped for a symlink while requests run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::CLIENT;
use common::files::{b64, ops, post, read, session, workspace, write};
use openwork_server::ApprovalMode;
use serde_json::json;

const TRAVERSALS: [&str; 9] = [
    "../outside.txt",
    "a/../../outside.txt",
    "/etc/passwd",
    "..\\..\\x",
    "a\0b",
    "./../x",
    "a/./b",
    "C:/x",
    "",
];

#[tokio::test]
async fn traversal_strings_are_refused_everywhere() {
    let w = workspace(ApprovalMode::Auto).await;
    let sid = session(&w, CLIENT).await;
    for bad in TRAVERSALS {
        let (status, body) = read(&w, &sid, &[bad]).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_path")),
            "read {bad:?}"
        );
        let (status, body) = write(&w, &sid, bad, b"x", None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_path")),
            "write {bad:?}"
        );
        for op in [
            json!({"type": "delete", "path": bad}),
            json!({"type": "mkdir", "path": bad}),
            json!({"type": "rename", "from": "a", "to": bad}),
        ] {
            let (status, _) = ops(&w, &sid, json!([op])).await;
            assert_eq!(status, 400, "op {op}");
        }
    }
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_refused() {
    let w = workspace(ApprovalMode::Auto).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), w.root().join("dirlink")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), w.root().join("filelink"))
        .unwrap();
    let sid = session(&w, CLIENT).await;
    let (_, body) = read(&w, &sid, &["filelink", "dirlink/secret.txt"]).await;
    for item in body["items"].as_array().unwrap() {
        assert_eq!(item["ok"], false, "{item}");
        assert!(item.get("contentBase64").is_none());
    }
    for target in ["filelink", "dirlink/secret.txt", "dirlink/new.txt"] {
        let (_, body) = write(&w, &sid, target, b"pwned", None).await;
        assert_eq!(body["items"][0]["ok"], false, "{target}: {body}");
        assert_eq!(body["items"][0]["code"], "invalid_path");
    }
    std::fs::write(w.root().join("inside.txt"), "in").unwrap();
    let (_, body) = ops(
        &w,
        &sid,
        json!([
            {"type": "delete", "path": "dirlink/secret.txt"},
            {"type": "delete", "path": "filelink"},
            {"type": "rename", "from": "dirlink/secret.txt", "to": "stolen.txt"},
            {"type": "rename", "from": "inside.txt", "to": "dirlink/planted.txt"},
            {"type": "mkdir", "path": "dirlink/newdir"},
            {"type": "delete", "path": "dirlink", "recursive": true},
        ]),
    )
    .await;
    for item in body["items"].as_array().unwrap() {
        assert_eq!(item["ok"], false, "{item}");
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret.txt")).unwrap(),
        "secret"
    );
    let names: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["secret.txt"]);
    // The catalog does not list links.
    let (_, snap) = common::files::get(
        &w.s,
        &format!("/files/sessions/{sid}/catalog/snapshot"),
        CLIENT,
    )
    .await;
    let paths: Vec<&str> = snap["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["inside.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_swapped_for_a_symlink_mid_flight_never_escapes() {
    let w = workspace(ApprovalMode::Auto).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.txt"), "outside-secret").unwrap();
    let flip = w.root().join("flip");
    std::fs::create_dir(&flip).unwrap();
    std::fs::write(flip.join("x.txt"), "inside").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, flip, outside) = (stop.clone(), flip.clone(), outside.path().to_path_buf());
        let parked = flip.with_extension("parked");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // dir → symlink → dir, as fast as possible.
                let _ = std::fs::rename(&flip, &parked);
                let _ = std::os::unix::fs::symlink(&outside, &flip);
                std::thread::yield_now();
                let _ = std::fs::remove_file(&flip);
                let _ = std::fs::rename(&parked, &flip);
            }
        })
    };
    let sid = session(&w, CLIENT).await;
    for i in 0..150 {
        let (_, body) = read(&w, &sid, &["flip/x.txt"]).await;
        let item = &body["items"][0];
        if item["ok"] == true {
            let got = String::from_utf8(common::files::unb64(&item["contentBase64"])).unwrap();
            assert!(
                got == "inside" || got.starts_with("write-"),
                "read outside the root: {got:?}"
            );
        }
        let data = format!("write-{i}");
        let _ = post(&w.s, &format!("/files/sessions/{sid}/write-batch"), CLIENT,
            json!({"writes": [{"path": "flip/x.txt", "contentBase64": b64(data.as_bytes()), "force": true},
                              {"path": format!("flip/new-{i}.txt"), "contentBase64": b64(b"n")}]})).await;
        let _ = ops(
            &w,
            &sid,
            json!([{"type": "delete", "path": format!("flip/new-{}.txt", i.max(1) - 1)},
                                     {"type": "mkdir", "path": format!("flip/d{i}")}]),
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.path().join("x.txt")).unwrap(),
        "outside-secret"
    );
    let names: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["x.txt"], "something was created outside the root");
}
