//! Helpers for gated-route tests: answer the next manual approval, call with a method.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use openwork_server::{Approvals, Reply};
use serde_json::Value;

use super::TestServer;
use super::files::call;

/// Answers the next pending approval with `reply` (spawned; await the handle after the call).
pub fn answer_next(approvals: &Approvals, reply: Reply) -> tokio::task::JoinHandle<Value> {
    let approvals = approvals.clone();
    tokio::spawn(async move {
        loop {
            if let Some(req) = approvals.list().first() {
                approvals.reply(&req.id, reply).unwrap();
                return req.to_json();
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
}

pub async fn patch(s: &TestServer, path: &str, token: &str, body: Value) -> (u16, Value) {
    call(s, reqwest::Method::PATCH, path, Some(token), Some(body)).await
}

pub async fn delete(s: &TestServer, path: &str, token: &str) -> (u16, Value) {
    call(s, reqwest::Method::DELETE, path, Some(token), None).await
}
