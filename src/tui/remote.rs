//! The dashboard's two HTTP conversations: openwork-server's approvals (list, allow, deny; with
//! the host token) and opencode's session status (is a session busy? with its basic auth).
//!
//! Threat addressed: credentials leaking through errors. The host token and the opencode
//! password travel in headers only; errors carry the URL path and status, never a header.

use std::time::Duration;

use serde_json::{Value, json};
use thiserror::Error;

use super::state::Approval;

/// An approvals or status request failed.
#[derive(Debug, Error)]
pub enum RemoteError {
    #[error("{what}: {source}")]
    Http {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: HTTP {status}")]
    Status { what: &'static str, status: u16 },
}

/// What the dashboard needs to talk to the run's services.
#[derive(Clone)]
pub struct Remote {
    http: reqwest::Client,
    /// openwork-server's local URL.
    pub openwork_url: String,
    host_token: String,
    opencode_url: String,
    opencode_auth: String,
}

impl Remote {
    pub fn new(
        openwork_url: String,
        host_token: String,
        opencode_url: String,
        opencode_username: &str,
        opencode_password: &str,
    ) -> Remote {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Remote {
            http,
            openwork_url,
            host_token,
            opencode_url,
            opencode_auth: crate::supervisor::health::basic_auth(
                opencode_username,
                opencode_password,
            ),
        }
    }

    /// The pending approvals.
    pub async fn approvals(&self) -> Result<Vec<Approval>, RemoteError> {
        let what = "GET /approvals";
        let resp = self
            .http
            .get(format!("{}/approvals", self.openwork_url))
            .header("X-OpenWork-Host-Token", &self.host_token)
            // A routine poll: openwork-server leaves it out of its request log.
            .header("X-OpenWork-Poll", "1")
            .send()
            .await
            .map_err(|source| RemoteError::Http { what, source })?;
        if !resp.status().is_success() {
            return Err(RemoteError::Status {
                what,
                status: resp.status().as_u16(),
            });
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|source| RemoteError::Http { what, source })?;
        Ok(parse_approvals(&body))
    }

    /// Allows or denies one approval.
    pub async fn reply(&self, id: &str, allow: bool) -> Result<(), RemoteError> {
        let what = "POST /approvals/:id";
        let resp = self
            .http
            .post(format!(
                "{}/approvals/{}",
                self.openwork_url,
                crate::client::approvals::encode(id)
            ))
            .header("X-OpenWork-Host-Token", &self.host_token)
            .json(&json!({ "reply": if allow { "allow" } else { "deny" } }))
            .send()
            .await
            .map_err(|source| RemoteError::Http { what, source })?;
        if !resp.status().is_success() {
            return Err(RemoteError::Status {
                what,
                status: resp.status().as_u16(),
            });
        }
        Ok(())
    }

    /// Whether opencode reports a busy session (`GET /session/status`). Unknown counts as idle.
    pub async fn opencode_busy(&self) -> bool {
        let Ok(Ok(resp)) = tokio::time::timeout(
            Duration::from_millis(800),
            self.http
                .get(format!("{}/session/status", self.opencode_url))
                .header("Authorization", &self.opencode_auth)
                .send(),
        )
        .await
        else {
            return false;
        };
        match resp.json::<Value>().await {
            Ok(v) => any_busy(&v),
            Err(_) => false,
        }
    }
}

/// `{items: [...]}` → approvals (fields missing in a reply are shown empty).
pub fn parse_approvals(body: &Value) -> Vec<Approval> {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|a| {
                    let actor = &a["actor"];
                    let who = match (actor["type"].as_str(), actor["scope"].as_str()) {
                        (Some("host"), _) => "host".to_string(),
                        (Some(t), Some(s)) => match actor["clientId"].as_str() {
                            Some(c) => format!("{t} {s} ({c})"),
                            None => format!("{t} {s}"),
                        },
                        (Some(t), None) => t.to_string(),
                        _ => "unknown".to_string(),
                    };
                    Approval {
                        id: text(&a["id"]),
                        action: text(&a["action"]),
                        summary: text(&a["summary"]),
                        paths: a["paths"]
                            .as_array()
                            .map(|p| p.iter().map(text).collect())
                            .unwrap_or_default(),
                        who,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// opencode's `{sessionId: {type: "busy"|"idle"|"retry"}}`: any not idle.
fn any_busy(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        m.values()
            .any(|s| matches!(s["type"].as_str(), Some("busy" | "retry")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_and_status_are_parsed() {
        let a = parse_approvals(&json!({"items": [{
            "id": "ap1", "action": "workspace.files.session.write", "summary": "write a.txt",
            "paths": ["/ws/a.txt"], "actor": {"type": "remote", "scope": "collaborator"}
        }]}));
        assert_eq!(a[0].who, "remote collaborator");
        assert_eq!(a[0].paths, ["/ws/a.txt"]);
        assert!(any_busy(&json!({"s1": {"type": "busy"}})));
        assert!(!any_busy(&json!({"s1": {"type": "idle"}})));
        assert!(!any_busy(&json!({})));
    }
}
