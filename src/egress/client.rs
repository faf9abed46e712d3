//! The host's client of the gate's control API (`gate/README.md`, "Control API"): health,
//! credentials, policy and the audit stream, each with the run's bearer token.
//!
//! Threat addressed: the control API is reachable by anything on the host's loopback; only the
//! holder of the token (this orchestrator, and the gate's own environment) can drive it. The
//! token and the keys this client sends are never logged (the log sink redacts them too).

use std::time::Duration;

use serde_json::Value;

/// Why a control call failed (never quoting a key or the token).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the gate's control API at {url} did not answer: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the gate refused {route} ({status}): {message}")]
    Refused {
        route: &'static str,
        status: u16,
        message: String,
    },
}

/// The control API of one run's gate.
#[derive(Clone)]
pub struct GateClient {
    /// `http://127.0.0.1:<published control port>`.
    base: String,
    token: String,
    http: reqwest::Client,
}

impl GateClient {
    pub fn new(base: String, token: String) -> GateClient {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        GateClient { base, token, http }
    }

    fn url(&self, route: &str) -> String {
        format!("{}{route}", self.base)
    }

    fn unreachable(&self, e: reqwest::Error) -> ControlError {
        ControlError::Unreachable {
            url: self.base.clone(),
            reason: e.without_url().to_string(),
        }
    }

    /// `GET /health` answered `ok` (the gate is up and the token is right).
    pub async fn healthy(&self) -> bool {
        let req = self
            .http
            .get(self.url("/health"))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(2));
        matches!(req.send().await, Ok(r) if r.status().is_success())
    }

    async fn put(&self, route: &'static str, body: &Value) -> Result<(), ControlError> {
        let resp = self
            .http
            .put(self.url(route))
            .bearer_auth(&self.token)
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(());
        }
        let message = resp
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_default();
        Err(ControlError::Refused {
            route,
            status,
            message,
        })
    }

    /// `PUT /credentials` (the body holds the real keys: sent, never logged).
    pub async fn put_credentials(&self, body: &Value) -> Result<(), ControlError> {
        self.put("/credentials", body).await
    }

    /// `PUT /policy` with a policy file's JSON.
    pub async fn put_policy(&self, body: &Value) -> Result<(), ControlError> {
        self.put("/policy", body).await
    }

    /// `GET /audit`: the open response, whose body is one JSON record per line.
    pub async fn audit(&self) -> Result<reqwest::Response, ControlError> {
        let resp = self
            .http
            .get(self.url("/audit"))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(ControlError::Refused {
                route: "/audit",
                status: resp.status().as_u16(),
                message: String::new(),
            });
        }
        Ok(resp)
    }
}
