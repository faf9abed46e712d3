//! The opencode HTTP client: health, sessions, the synchronous prompt, permission replies, and
//! the server-wide event stream (`GET /global/event`).
//!
//! Threats handled here: opencode's Basic credentials go only to the configured opencode URL
//! (the client has no proxy and follows no redirect to another host); the directory of every
//! call is one the pipeline already confined to the workspace root. Sessions are created with a
//! permission ruleset that matches the router's permission mode, so a chat never inherits a
//! permissive workspace default. Left open: what the agent does inside the permissions given.

use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;
use tokio::sync::mpsc;

use crate::config::PermissionMode;

/// A failed opencode call.
#[derive(Debug, Error)]
pub enum OpencodeError {
    #[error("opencode at {url} is unreachable: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("opencode answered {status} to {what}: {body}")]
    Status {
        what: &'static str,
        status: u16,
        body: String,
    },
    #[error("opencode sent an unexpected {what} body: {source}")]
    Body {
        what: &'static str,
        source: reqwest::Error,
    },
}

impl OpencodeError {
    /// A short message for the chat (no URLs, no bodies).
    pub fn user_message(&self) -> &'static str {
        match self {
            OpencodeError::Unreachable { .. } => {
                "⚠️ The agent is unreachable right now. Try again in a moment."
            }
            OpencodeError::Status { status: 401, .. }
            | OpencodeError::Status { status: 403, .. } => {
                "⚠️ The bridge is not authorised to talk to the agent."
            }
            OpencodeError::Status { status: 404, .. } => {
                "⚠️ The agent lost this conversation. Send your message again."
            }
            OpencodeError::Status { status: 429, .. } => {
                "⚠️ The agent is rate limited. Try again later."
            }
            _ => "⚠️ The agent failed to answer. Try again.",
        }
    }
}

/// Tools that only read: allowed without asking in `ask` and `deny` modes.
const READ_ONLY: &[&str] = &["read", "glob", "grep", "list", "todoread", "todowrite"];

/// The session ruleset for a permission mode. opencode applies the last matching rule, and the
/// session's rules come after the config's.
pub fn ruleset(mode: PermissionMode) -> Value {
    let base = match mode {
        PermissionMode::Allow => "allow",
        PermissionMode::Ask => "ask",
        PermissionMode::Deny => "deny",
    };
    let mut rules = vec![json!({"permission": "*", "pattern": "*", "action": base})];
    if mode != PermissionMode::Allow {
        rules.extend(
            READ_ONLY
                .iter()
                .map(|t| json!({"permission": t, "pattern": "*", "action": "allow"})),
        );
    }
    // Nobody in the chat can answer opencode's question tool; never let it block a prompt.
    rules.push(json!({"permission": "question", "pattern": "*", "action": "deny"}));
    Value::Array(rules)
}

/// Health of opencode.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub healthy: bool,
    pub version: Option<String>,
}

/// A permission prompt raised by opencode.
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionAsked {
    pub id: String,
    pub session_id: String,
    pub permission: String,
    pub patterns: Vec<String>,
    pub directory: Option<String>,
}

/// The events the router acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Connected,
    PermissionAsked(PermissionAsked),
    /// A prompt was answered (by us, another client, or opencode itself).
    PermissionReplied {
        id: String,
    },
    /// A tool part changed state.
    Tool {
        session_id: String,
        tool: String,
        status: String,
        title: String,
    },
}

/// Client for one opencode server (any directory).
#[derive(Clone)]
pub struct Opencode {
    base: String,
    auth: Option<String>,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    ignored: bool,
    #[serde(default)]
    synthetic: bool,
}

#[derive(Deserialize)]
struct PromptReply {
    #[serde(default)]
    parts: Vec<Part>,
}

fn encode_dir(dir: &str) -> String {
    let mut out = String::new();
    for b in dir.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Opencode {
    pub fn new(base: &str, username: Option<&str>, password: Option<&str>) -> Opencode {
        let auth = password.map(|p| {
            let user = username.unwrap_or("opencode");
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{p}"))
            )
        });
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Opencode {
            base: base.trim_end_matches('/').into(),
            auth,
            http,
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        dir: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let url = match dir {
            Some(d) => format!("{}{path}?directory={}", self.base, encode_dir(d)),
            None => format!("{}{path}", self.base),
        };
        let mut r = self.http.request(method, url);
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        r
    }

    async fn send(
        &self,
        what: &'static str,
        r: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OpencodeError> {
        let resp = r
            .send()
            .await
            .map_err(|source| OpencodeError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            let status = resp.status().as_u16();
            let body: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            Err(OpencodeError::Status { what, status, body })
        }
    }

    /// `GET /global/health` with a short timeout (a probe must never hang; see opencode-serve §1.3).
    pub async fn health(&self) -> Health {
        let r = self
            .req(reqwest::Method::GET, "/global/health", None)
            .timeout(Duration::from_secs(2));
        match self.send("health", r).await {
            Ok(resp) => match resp.json::<Value>().await {
                Ok(v) => Health {
                    healthy: v["healthy"] == Value::Bool(true),
                    version: v["version"].as_str().map(str::to_string),
                },
                Err(_) => Health::default(),
            },
            Err(_) => Health::default(),
        }
    }

    /// `POST /session` in `dir` with the mode's permission ruleset; returns the session id.
    pub async fn create_session(
        &self,
        dir: &str,
        title: &str,
        mode: PermissionMode,
    ) -> Result<String, OpencodeError> {
        let r = self
            .req(reqwest::Method::POST, "/session", Some(dir))
            .timeout(Duration::from_secs(30))
            .json(&json!({ "title": title, "permission": ruleset(mode) }));
        let v: Value = self
            .send("session create", r)
            .await?
            .json()
            .await
            .map_err(|source| OpencodeError::Body {
                what: "session",
                source,
            })?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    /// Whether a session still exists.
    pub async fn session_exists(&self, dir: &str, id: &str) -> Result<bool, OpencodeError> {
        let r = self
            .req(reqwest::Method::GET, &format!("/session/{id}"), Some(dir))
            .timeout(Duration::from_secs(10));
        match self.send("session get", r).await {
            Ok(_) => Ok(true),
            Err(OpencodeError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `POST /session/:id/message`: waits for the whole turn and returns the visible text parts
    /// joined by newlines.
    pub async fn prompt(
        &self,
        dir: &str,
        session: &str,
        text: &str,
        model: Option<&str>,
    ) -> Result<String, OpencodeError> {
        let mut body = json!({ "parts": [{ "type": "text", "text": text }] });
        if let Some((provider, model)) = model.and_then(|m| m.split_once('/')) {
            body["model"] = json!({ "providerID": provider, "modelID": model });
        }
        let r = self
            .req(
                reqwest::Method::POST,
                &format!("/session/{session}/message"),
                Some(dir),
            )
            .json(&body);
        let reply: PromptReply = self
            .send("prompt", r)
            .await?
            .json()
            .await
            .map_err(|source| OpencodeError::Body {
                what: "prompt",
                source,
            })?;
        Ok(reply
            .parts
            .iter()
            .filter(|p| p.kind == "text" && !p.ignored && !p.synthetic)
            .filter_map(|p| p.text.as_deref())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// `POST /session/:id/abort`.
    pub async fn abort(&self, dir: &str, session: &str) -> Result<(), OpencodeError> {
        let r = self
            .req(
                reqwest::Method::POST,
                &format!("/session/{session}/abort"),
                Some(dir),
            )
            .timeout(Duration::from_secs(10));
        self.send("abort", r).await.map(|_| ())
    }

    /// `POST /permission/:id/reply` with `once` or `reject`.
    pub async fn reply_permission(
        &self,
        dir: Option<&str>,
        id: &str,
        allow: bool,
    ) -> Result<(), OpencodeError> {
        let r = self
            .req(
                reqwest::Method::POST,
                &format!("/permission/{id}/reply"),
                dir,
            )
            .timeout(Duration::from_secs(10))
            .json(&json!({ "reply": if allow { "once" } else { "reject" } }));
        self.send("permission reply", r).await.map(|_| ())
    }

    /// Streams `/global/event` into `tx` until the stream ends or fails.
    pub async fn events(&self, tx: &mpsc::Sender<Event>) -> Result<(), OpencodeError> {
        let r = self.req(reqwest::Method::GET, "/global/event", None);
        let resp = self.send("event stream", r).await?;
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| OpencodeError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = buf.drain(..pos + 2).collect();
                for line in String::from_utf8_lossy(&frame).lines() {
                    if let Some(data) = line.strip_prefix("data:")
                        && let Some(ev) = parse_event(data.trim())
                        && tx.send(ev).await.is_err()
                    {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Parses one `/global/event` (or bare `/event`) frame into an [`Event`] the router acts on.
pub fn parse_event(data: &str) -> Option<Event> {
    let v: Value = serde_json::from_str(data).ok()?;
    let directory = v["directory"].as_str().map(str::to_string);
    let payload = if v.get("payload").is_some() {
        &v["payload"]
    } else {
        &v
    };
    let props = &payload["properties"];
    match payload["type"].as_str()? {
        "server.connected" => Some(Event::Connected),
        "permission.asked" => Some(Event::PermissionAsked(PermissionAsked {
            id: props["id"].as_str()?.into(),
            session_id: props["sessionID"].as_str()?.into(),
            permission: props["permission"].as_str().unwrap_or("?").into(),
            patterns: props["patterns"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            directory,
        })),
        "permission.replied" => Some(Event::PermissionReplied {
            id: props["requestID"]
                .as_str()
                .or_else(|| props["permissionID"].as_str())
                .or_else(|| props["id"].as_str())?
                .into(),
        }),
        "message.part.updated" if props["part"]["type"] == "tool" => {
            let part = &props["part"];
            Some(Event::Tool {
                session_id: part["sessionID"].as_str()?.into(),
                tool: part["tool"].as_str().unwrap_or("tool").into(),
                status: part["state"]["status"].as_str().unwrap_or("").into(),
                title: part["state"]["title"].as_str().unwrap_or("").into(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrapped_permission_events() {
        let ev = parse_event(
            r#"{"directory":"/ws","payload":{"type":"permission.asked","properties":{"id":"per_1","sessionID":"ses_1","permission":"bash","patterns":["ls"],"metadata":{},"always":[]}}}"#,
        )
        .unwrap();
        assert_eq!(
            ev,
            Event::PermissionAsked(PermissionAsked {
                id: "per_1".into(),
                session_id: "ses_1".into(),
                permission: "bash".into(),
                patterns: vec!["ls".into()],
                directory: Some("/ws".into()),
            })
        );
        assert!(parse_event(r#"{"payload":{"type":"server.heartbeat"}}"#).is_none());
        assert_eq!(
            parse_event(
                r#"{"payload":{"type":"permission.replied","properties":{"sessionID":"ses_1","requestID":"per_1","reply":"once"}}}"#
            ),
            Some(Event::PermissionReplied { id: "per_1".into() })
        );
    }

    #[test]
    fn ask_mode_asks_for_everything_but_reading() {
        let r = ruleset(PermissionMode::Ask);
        assert_eq!(r[0]["action"], "ask");
        assert!(
            r.as_array()
                .unwrap()
                .iter()
                .any(|x| x["permission"] == "read" && x["action"] == "allow")
        );
        assert!(
            !r.as_array()
                .unwrap()
                .iter()
                .any(|x| x["permission"] == "bash" && x["action"] == "allow")
        );
        assert_eq!(encode_dir("/a b"), "/a%20b");
    }
}
