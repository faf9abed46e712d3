//! The audit log over HTTP: one line per write under 32 concurrent writers, lines that parse,
//! rotation that loses nothing, denials audited, newest first from `GET …/audit`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::files::{Ws, get, ops, session, workspace_with, write};
use common::{CLIENT, HOST, config};
use openwork_server::ApprovalMode;
use serde_json::{Value, json};

fn audit_lines(dir: &std::path::Path, ws: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with(ws) {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            out.push(serde_json::from_str::<Value>(line).expect("each audit line parses"));
        }
    }
    out
}

async fn audited_server(mode: ApprovalMode, rotate: u64) -> (Ws, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut c = config();
    c.approval.mode = mode;
    c.audit_dir = Some(data.path().join("audit"));
    c.audit_rotate_bytes = rotate;
    (workspace_with(c).await, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_each_leave_exactly_one_line_across_rotation() {
    let (w, data) = audited_server(ApprovalMode::Auto, 3000).await;
    let sid = session(&w, CLIENT).await;
    let w = std::sync::Arc::new(w);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (w, sid) = (w.clone(), sid.clone());
        tasks.push(tokio::spawn(async move {
            let (status, body) = write(&w, &sid, &format!("f{i}.txt"), b"x", None).await;
            assert_eq!(status, 200, "{body}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let dir = data.path().join("audit");
    assert!(
        dir.join(format!("{}.jsonl.1", w.id)).exists(),
        "the log rotated"
    );
    let lines = audit_lines(&dir, &w.id);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        assert_eq!(line["action"], "workspace.files.session.write");
        assert_eq!(line["result"], "ok");
        assert_eq!(line["actor"]["scope"], "collaborator");
        assert!(line["actor"].get("tokenHash").is_none());
        *seen
            .entry(line["target"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 32);
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");

    let (status, body) = get(
        &w.s,
        &format!("/workspace/{}/audit?limit=200", w.id),
        CLIENT,
    )
    .await;
    assert_eq!(status, 200);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 32);
    let times: Vec<u64> = items
        .iter()
        .map(|i| i["timestamp"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|p| p[0] >= p[1]), "newest first");
    let (_, body) = get(&w.s, &format!("/workspace/{}/audit?limit=5", w.id), CLIENT).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn denied_writes_and_ops_are_audited() {
    let (w, data) = audited_server(ApprovalMode::Manual, 1 << 20).await;
    let sid = session(&w, CLIENT).await;
    let approvals = w.s.approvals.clone();
    let waiter = tokio::spawn(async move {
        loop {
            if let Some(req) = approvals.list().first() {
                approvals
                    .reply(&req.id, openwork_server::Reply::Deny)
                    .unwrap();
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    let (status, _) = write(&w, &sid, "no.txt", b"x", None).await;
    assert_eq!(status, 403);
    waiter.await.unwrap();
    let approvals = w.s.approvals.clone();
    let waiter = tokio::spawn(async move {
        loop {
            if let Some(req) = approvals.list().first() {
                approvals
                    .reply(&req.id, openwork_server::Reply::Allow)
                    .unwrap();
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    let (status, body) = ops(
        &w,
        &sid,
        json!([{"type": "mkdir", "path": "d"}, {"type": "delete", "path": "missing"}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    waiter.await.unwrap();
    let lines = audit_lines(&data.path().join("audit"), &w.id);
    let summary: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["action"].as_str().unwrap().to_owned(),
                l["target"].as_str().unwrap().to_owned(),
                l["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "workspace.files.session.write".into(),
                "no.txt".into(),
                "denied".into()
            ),
            (
                "workspace.files.session.ops".into(),
                "d".into(),
                "ok".into()
            ),
            (
                "workspace.files.session.ops".into(),
                "missing".into(),
                "failed".into()
            ),
        ]
    );
    // The audit lives outside the workspace.
    assert!(!w.root().join(".opencode").exists());
    let _ = HOST;
}
