//! A small client of opencode's HTTP API: the calls tests make (sessions, prompts, status).

use serde_json::{Value, json};

use super::OpencodeError;

/// How long one API call may take. A prompt answered by the stand-in takes well under a
/// second; the bound only stops a stuck test (a held turn should use `prompt_async`).
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A client of one `opencode serve`.
#[derive(Clone, Debug)]
pub struct OpencodeClient {
    http: reqwest::Client,
    url: String,
    password: Option<String>,
}

/// An assistant message as `POST /session/:id/message` returns it: `{info, parts}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub json: Value,
}

impl Reply {
    /// The message's text parts, joined.
    pub fn text(&self) -> String {
        self.parts("text")
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect()
    }

    /// The parts of one type (`text`, `tool`, `step-start`, `step-finish`, …).
    pub fn parts(&self, kind: &str) -> Vec<&Value> {
        self.json
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some(kind))
            .collect()
    }

    /// `info.finish` (`stop`, `tool-calls`, …).
    pub fn finish(&self) -> Option<&str> {
        self.json.pointer("/info/finish").and_then(Value::as_str)
    }

    /// `info.error`, when the turn failed (e.g. the model could not be reached).
    pub fn error(&self) -> Option<&Value> {
        self.json.pointer("/info/error")
    }
}

impl OpencodeClient {
    /// A client of the server at `url`, with basic auth (user `opencode`) when `password` is set.
    /// It ignores proxy variables: opencode is on 127.0.0.1.
    pub fn new(url: &str, password: Option<&str>) -> Result<OpencodeClient, OpencodeError> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|source| OpencodeError::Http {
                what: "building the HTTP client".into(),
                source,
            })?;
        Ok(OpencodeClient {
            http,
            url: url.trim_end_matches('/').to_string(),
            password: password.map(str::to_string),
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url));
        match &self.password {
            Some(password) => request.basic_auth("opencode", Some(password)),
            None => request,
        }
    }

    async fn send(
        &self,
        what: String,
        request: reqwest::RequestBuilder,
    ) -> Result<Option<Value>, OpencodeError> {
        let response = request.send().await.map_err(|source| OpencodeError::Http {
            what: what.clone(),
            source,
        })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|source| OpencodeError::Http {
                what: what.clone(),
                source,
            })?;
        if !status.is_success() {
            return Err(OpencodeError::Status {
                what,
                status: status.as_u16(),
                body,
            });
        }
        if body.is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&body)
            .map(Some)
            .map_err(|_| OpencodeError::Status {
                what: format!("{what} (the answer is not JSON)"),
                status: status.as_u16(),
                body: body.chars().take(500).collect(),
            })
    }

    /// `GET path`: the JSON answer.
    pub async fn get(&self, path: &str) -> Result<Value, OpencodeError> {
        let what = format!("GET {path}");
        let answer = self
            .send(what, self.request(reqwest::Method::GET, path))
            .await?;
        Ok(answer.unwrap_or(Value::Null))
    }

    /// `POST path` with a JSON body: the JSON answer (`null` for an empty one).
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, OpencodeError> {
        let what = format!("POST {path}");
        let answer = self
            .send(what, self.request(reqwest::Method::POST, path).json(body))
            .await?;
        Ok(answer.unwrap_or(Value::Null))
    }

    /// Creates a session; returns its id (`ses_…`).
    pub async fn create_session(&self, title: &str) -> Result<String, OpencodeError> {
        let session = self.post("/session", &json!({ "title": title })).await?;
        session
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| OpencodeError::Status {
                what: "POST /session (no id in the answer)".into(),
                status: 200,
                body: session.to_string(),
            })
    }

    /// Sends a text prompt and waits for the turn to end (`POST /session/:id/message`).
    pub async fn prompt(&self, session: &str, text: &str) -> Result<Reply, OpencodeError> {
        let body = json!({ "parts": [{ "type": "text", "text": text }] });
        let json = self
            .post(&format!("/session/{session}/message"), &body)
            .await?;
        Ok(Reply { json })
    }

    /// Starts a turn without waiting for it (`POST /session/:id/prompt_async`).
    pub async fn prompt_async(&self, session: &str, text: &str) -> Result<(), OpencodeError> {
        let body = json!({ "parts": [{ "type": "text", "text": text }] });
        self.post(&format!("/session/{session}/prompt_async"), &body)
            .await
            .map(drop)
    }

    /// `GET /session/status`: `{}` when idle, else `{"ses_…": {"type": "busy"|"retry", …}}`.
    pub async fn status(&self) -> Result<Value, OpencodeError> {
        self.get("/session/status").await
    }

    /// The session's messages (`GET /session/:id/message`).
    pub async fn messages(&self, session: &str) -> Result<Value, OpencodeError> {
        self.get(&format!("/session/{session}/message")).await
    }

    /// Aborts the session's running turn.
    pub async fn abort(&self, session: &str) -> Result<(), OpencodeError> {
        self.post(&format!("/session/{session}/abort"), &json!({}))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_exposes_text_parts_and_finish() {
        let reply = Reply {
            json: json!({
                "info": {"finish": "stop"},
                "parts": [
                    {"type": "step-start"},
                    {"type": "text", "text": "do"},
                    {"type": "tool", "tool": "write"},
                    {"type": "text", "text": "ne"}
                ]
            }),
        };
        assert_eq!(reply.text(), "done");
        assert_eq!(reply.parts("tool").len(), 1);
        assert_eq!(reply.finish(), Some("stop"));
        assert!(reply.error().is_none());
    }
}
