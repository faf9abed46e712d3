//! `--check` / `--check-events`: after start-up, prove the run works end to end through the same
//! APIs a remote client uses, then report which check failed.
//!
//! 1. openwork-server lists the workspace (`GET /workspaces`, client token) and serves its config
//!    (`GET /workspace/<id>/config`); the host token works (`GET /approvals`).
//! 2. opencode creates a session and lists its messages (basic auth, the workspace directory).
//! 3. With events: opencode's SSE stream (`GET /event`) delivers the `session.created` event of a
//!    session created after subscribing.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use thiserror::Error;

use crate::supervisor::health::{basic_auth, root_cause};

/// The check that failed, and why.
#[derive(Debug, Error)]
#[error("check '{check}' failed: {reason}")]
pub struct CheckError {
    pub check: &'static str,
    pub reason: String,
}

fn fail(check: &'static str, reason: impl Into<String>) -> CheckError {
    CheckError {
        check,
        reason: reason.into(),
    }
}

/// What the checks need to reach the services.
pub struct CheckTarget {
    pub openwork_url: String,
    pub client_token: String,
    pub host_token: String,
    pub opencode_url: String,
    pub opencode_username: String,
    pub opencode_password: String,
    pub workspace: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

async fn get_json(check: &'static str, req: reqwest::RequestBuilder) -> Result<Value, CheckError> {
    let resp = req
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| fail(check, root_cause(&e)))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| fail(check, root_cause(&e)))?;
    if !status.is_success() {
        return Err(fail(check, format!("HTTP {status}: {}", truncate(&body))));
    }
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&body)
        .map_err(|e| fail(check, format!("invalid JSON ({e}): {}", truncate(&body))))
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

/// Runs the checks in order; the first failure is returned.
pub async fn run_checks(t: &CheckTarget, events: bool) -> Result<Vec<&'static str>, CheckError> {
    let http = client();
    let mut passed = Vec::new();
    let bearer = format!("Bearer {}", t.client_token);

    let list = get_json(
        "openwork workspaces",
        http.get(format!("{}/workspaces", t.openwork_url))
            .header("Authorization", &bearer),
    )
    .await?;
    let id = list["items"]
        .as_array()
        .and_then(|items| items.first())
        .and_then(|w| w["id"].as_str())
        .ok_or_else(|| {
            fail(
                "openwork workspaces",
                format!("no workspace listed: {list}"),
            )
        })?
        .to_string();
    passed.push("openwork workspaces");

    get_json(
        "openwork workspace config",
        http.get(format!("{}/workspace/{id}/config", t.openwork_url))
            .header("Authorization", &bearer),
    )
    .await?;
    passed.push("openwork workspace config");

    get_json(
        "openwork host token",
        http.get(format!("{}/approvals", t.openwork_url))
            .header("X-OpenWork-Host-Token", &t.host_token),
    )
    .await?;
    passed.push("openwork host token");

    let auth = basic_auth(&t.opencode_username, &t.opencode_password);
    let session = get_json(
        "opencode session",
        http.post(format!("{}/session", t.opencode_url))
            .query(&[("directory", t.workspace.as_str())])
            .header("Authorization", &auth)
            .json(&json!({ "title": "OpenWork headless check" })),
    )
    .await?;
    let sid = session["id"]
        .as_str()
        .ok_or_else(|| fail("opencode session", format!("no session id in {session}")))?;
    get_json(
        "opencode messages",
        http.get(format!("{}/session/{sid}/message", t.opencode_url))
            .query(&[("directory", t.workspace.as_str()), ("limit", "10")])
            .header("Authorization", &auth),
    )
    .await?;
    passed.push("opencode session");

    if events {
        check_events(&http, t, &auth).await?;
        passed.push("opencode events");
    }
    Ok(passed)
}

async fn check_events(
    http: &reqwest::Client,
    t: &CheckTarget,
    auth: &str,
) -> Result<(), CheckError> {
    const CHECK: &str = "opencode events";
    let resp = http
        .get(format!("{}/event", t.opencode_url))
        .query(&[("directory", t.workspace.as_str())])
        .header("Authorization", auth)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| fail(CHECK, root_cause(&e)))?;
    if !resp.status().is_success() {
        return Err(fail(CHECK, format!("HTTP {}", resp.status())));
    }
    let mut stream = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut buf = String::new();
    let mut seen: Vec<String> = Vec::new();
    let mut created: Option<String> = None;
    loop {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| {
                fail(
                    CHECK,
                    format!("no session.created event within 15s (events seen: {seen:?})"),
                )
            })?;
        let Some(chunk) = chunk else {
            return Err(fail(
                CHECK,
                format!("event stream ended (events seen: {seen:?})"),
            ));
        };
        let chunk = chunk.map_err(|e| fail(CHECK, root_cause(&e)))?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(pos) = buf.find('\n') {
            let line: String = buf.drain(..=pos).collect();
            let Some(data) = line.trim_end().strip_prefix("data:") else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<Value>(data.trim()) else {
                continue;
            };
            let ty = event["type"]
                .as_str()
                .or_else(|| event["payload"]["type"].as_str())
                .unwrap_or("")
                .to_string();
            if ty == "server.connected" && created.is_none() {
                // Subscribed: now cause an event.
                let session = get_json(
                    CHECK,
                    http.post(format!("{}/session", t.opencode_url))
                        .query(&[("directory", t.workspace.as_str())])
                        .header("Authorization", auth)
                        .json(&json!({ "title": "OpenWork headless check events" })),
                )
                .await?;
                created = session["id"].as_str().map(str::to_string);
            }
            if ty == "session.created" {
                let sid = event["properties"]["info"]["id"]
                    .as_str()
                    .or_else(|| event["properties"]["sessionID"].as_str());
                if created.is_some() && sid.is_none_or(|s| Some(s) == created.as_deref()) {
                    return Ok(());
                }
            }
            seen.push(ty);
        }
    }
}
