//! Request logging: one line per response, on by default, off on request,
//! never containing secrets; JSON records carry OpenTelemetry field names.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CLIENT, HOST, config, start};
use openwork_server::LogFormat;
use serde_json::Value;

fn request_lines(logs: &[String]) -> Vec<String> {
    logs.iter()
        .filter(|l| l.contains("ms"))
        .filter(|l| l.starts_with("GET ") || l.starts_with("POST ") || l.contains("\"method\""))
        .cloned()
        .collect()
}

#[tokio::test]
async fn pretty_request_lines_without_secrets() {
    let s = start(config()).await;
    s.get("/health?token=query-secret").send().await.unwrap();
    s.get("/status")
        .header("Authorization", format!("Bearer {CLIENT}"))
        .send()
        .await
        .unwrap();
    s.get("/status").send().await.unwrap();
    s.post("/tokens")
        .header("X-OpenWork-Host-Token", HOST)
        .body(r#"{"scope":"viewer"}"#)
        .send()
        .await
        .unwrap();
    let logs = s.logs();
    assert!(
        logs[0].starts_with("OpenWork server listening on http://127.0.0.1:"),
        "{logs:?}"
    );
    assert!(logs[0].ends_with(&s.port.to_string()));
    let lines = request_lines(&logs);
    assert_eq!(lines.len(), 4, "{logs:?}");
    assert!(lines[0].starts_with("GET /health 200 ") && lines[0].ends_with("ms"));
    assert!(lines[1].starts_with("GET /status 200 "));
    assert!(lines[2].starts_with("GET /status 401 "));
    assert!(lines[3].starts_with("POST /tokens 201 "));
    let all = logs.join("\n");
    for secret in ["query-secret", CLIENT, HOST, "owt_"] {
        assert!(!all.contains(secret), "{secret} leaked into {all}");
    }
}

#[tokio::test]
async fn logging_can_be_turned_off() {
    let mut c = config();
    c.log_requests = false;
    let s = start(c).await;
    s.get("/health").send().await.unwrap();
    s.get("/nope").send().await.unwrap();
    let logs = s.logs();
    assert!(request_lines(&logs).is_empty(), "{logs:?}");
    // Startup lines are not affected.
    assert!(logs[0].starts_with("OpenWork server listening on"));
}

#[tokio::test]
async fn json_records_use_otel_names() {
    let mut c = config();
    c.log_format = LogFormat::Json;
    c.run_id = "run-42".into();
    let s = start(c).await;
    s.get("/status").send().await.unwrap();
    let logs = s.logs();
    let records: Vec<Value> = logs
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records[0]["body"]
            .as_str()
            .unwrap()
            .starts_with("OpenWork server listening on")
    );
    let req = records
        .iter()
        .find(|r| r["attributes"]["method"] == "GET")
        .unwrap();
    assert!(
        req["timeUnixNano"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .is_ok()
    );
    assert_eq!(req["severityText"], "WARN");
    assert_eq!(req["severityNumber"], 13);
    assert!(
        req["body"]
            .as_str()
            .unwrap()
            .starts_with("GET /status 401 ")
    );
    let a = &req["attributes"];
    assert_eq!(a["path"], "/status");
    assert_eq!(a["status"], 401);
    assert_eq!(a["auth"], "client");
    assert_eq!(a["error"], "Invalid bearer token");
    assert_eq!(a["run.id"], "run-42");
    assert_eq!(a["service.component"], "openwork-server");
    assert!(a["durationMs"].is_u64());
    assert_eq!(req["resource"]["service.name"], "openwork-server");
    assert_eq!(req["resource"]["service.instance.id"], "run-42");
    assert_eq!(req["resource"]["service.version"], openwork_server::VERSION);
}

#[tokio::test]
async fn a_hosts_successful_poll_is_not_logged_but_others_are() {
    let s = start(config()).await;
    // The dashboard's approvals poll: quiet.
    s.get("/approvals")
        .header("X-OpenWork-Host-Token", HOST)
        .header("X-OpenWork-Poll", "1")
        .send()
        .await
        .unwrap();
    // The same header without the host token (a 401), or from a client: logged.
    s.get("/approvals")
        .header("X-OpenWork-Poll", "1")
        .send()
        .await
        .unwrap();
    s.get("/status")
        .header("Authorization", format!("Bearer {CLIENT}"))
        .header("X-OpenWork-Poll", "1")
        .send()
        .await
        .unwrap();
    let lines = request_lines(&s.logs());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("GET /approvals 401 "), "{lines:?}");
    assert!(lines[1].starts_with("GET /status 200 "), "{lines:?}");
}
