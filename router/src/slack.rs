//! Slack: a small Web API client (`auth.test`, `apps.connections.open`, `chat.postMessage`,
//! file upload) and the Socket Mode loop of one app.
//!
//! Threats handled here: tokens leaking into logs (errors name the method, never a token),
//! Slack redelivering an envelope we did not acknowledge in time (every envelope is acknowledged
//! before it is handled, and handled messages are deduplicated by event id in the store), a
//! retry storm (reconnects back off; a `disconnect` message reconnects at once, as Slack asks),
//! and the bot answering itself (messages with a `bot_id` or from the bot's own user are dropped).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use thiserror::Error;
use tokio_tungstenite::tungstenite::Message;

use crate::chat::{IdentityState, Inbound};
use crate::store::ChatKey;

/// Slack's practical limit on one message's text.
pub const MESSAGE_LIMIT: usize = 39_000;

/// A failed Slack call. Never holds a token.
#[derive(Debug, Error)]
pub enum SlackError {
    #[error("Slack {method}: cannot connect ({kind})")]
    Http { method: &'static str, kind: String },
    #[error("Slack {method}: rate limited, retry after {retry_after}s")]
    RetryAfter {
        method: &'static str,
        retry_after: u64,
    },
    #[error("Slack {method}: {error}")]
    Api { method: &'static str, error: String },
    #[error("Slack socket: {0}")]
    Socket(String),
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// Web API client of one Slack app.
#[derive(Clone)]
pub struct SlackApi {
    base: String,
    bot_token: String,
    app_token: String,
    http: reqwest::Client,
}

/// Splits a peer id `C…|<thread_ts>` into channel and thread.
pub fn split_peer(peer: &str) -> (&str, Option<&str>) {
    match peer.split_once('|') {
        Some((c, t)) if !t.is_empty() => (c, Some(t)),
        _ => (peer, None),
    }
}

impl SlackApi {
    pub fn new(base: &str, bot_token: &str, app_token: &str) -> SlackApi {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        SlackApi {
            base: base.trim_end_matches('/').into(),
            bot_token: bot_token.into(),
            app_token: app_token.into(),
            http,
        }
    }

    async fn call(
        &self,
        method: &'static str,
        token: &str,
        body: Value,
    ) -> Result<Value, SlackError> {
        let resp = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| SlackError::Http {
                method,
                kind: if e.is_connect() {
                    "connection refused or unreachable".into()
                } else {
                    "request failed".into()
                },
            })?;
        if resp.status().as_u16() == 429 {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            return Err(SlackError::RetryAfter {
                method,
                retry_after,
            });
        }
        let v: Value = resp.json().await.map_err(|_| SlackError::Http {
            method,
            kind: "bad response body".into(),
        })?;
        if v["ok"] == Value::Bool(true) {
            Ok(v)
        } else {
            Err(SlackError::Api {
                method,
                error: v["error"].as_str().unwrap_or("unknown_error").into(),
            })
        }
    }

    /// The bot's own user id (`auth.test`).
    pub async fn auth_test(&self) -> Result<String, SlackError> {
        let v = self.call("auth.test", &self.bot_token, json!({})).await?;
        Ok(v["user_id"].as_str().unwrap_or_default().to_string())
    }

    /// A fresh Socket Mode URL (`apps.connections.open`, with the app-level token).
    pub async fn open_connection(&self) -> Result<String, SlackError> {
        let v = self
            .call("apps.connections.open", &self.app_token, json!({}))
            .await?;
        v["url"]
            .as_str()
            .map(str::to_string)
            .ok_or(SlackError::Api {
                method: "apps.connections.open",
                error: "no url in the answer".into(),
            })
    }

    /// `chat.postMessage` to a peer (`C…` or `C…|thread_ts`), split at the limit.
    pub async fn send_text(&self, peer: &str, text: &str) -> Result<(), SlackError> {
        let (channel, thread) = split_peer(peer);
        for piece in crate::chat::split_message(text, MESSAGE_LIMIT) {
            let mut body = json!({ "channel": channel, "text": piece });
            if let Some(t) = thread {
                body["thread_ts"] = json!(t);
            }
            let mut tries = 0;
            loop {
                match self
                    .call("chat.postMessage", &self.bot_token, body.clone())
                    .await
                {
                    Err(SlackError::RetryAfter { retry_after, .. }) if tries < 5 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_secs(retry_after)).await;
                    }
                    other => {
                        other?;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Uploads a file into the peer's channel (`files.upload` v1 form).
    pub async fn send_file(
        &self,
        peer: &str,
        path: &std::path::Path,
        caption: Option<&str>,
    ) -> Result<(), SlackError> {
        let (channel, thread) = split_peer(peer);
        let part = crate::chat::file_part(path)
            .await
            .map_err(|source| SlackError::File {
                path: path.display().to_string(),
                source,
            })?;
        let mut form = reqwest::multipart::Form::new()
            .text("channels", channel.to_string())
            .part("file", part);
        if let Some(t) = thread {
            form = form.text("thread_ts", t.to_string());
        }
        if let Some(c) = caption {
            form = form.text("initial_comment", c.to_string());
        }
        let method = "files.upload";
        let resp = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(&self.bot_token)
            .multipart(form)
            .send()
            .await
            .map_err(|_| SlackError::Http {
                method,
                kind: "request failed".into(),
            })?;
        let v: Value = resp.json().await.map_err(|_| SlackError::Http {
            method,
            kind: "bad response body".into(),
        })?;
        if v["ok"] == Value::Bool(true) {
            Ok(())
        } else {
            Err(SlackError::Api {
                method,
                error: v["error"].as_str().unwrap_or("unknown_error").into(),
            })
        }
    }
}

/// Turns one `events_api` payload into an inbound message, or `None` to ignore it.
pub fn to_inbound(identity: &str, bot_user: &str, payload: &Value) -> Option<Inbound> {
    let event = &payload["event"];
    if event.get("bot_id").is_some_and(|b| !b.is_null())
        || event["user"].as_str() == Some(bot_user)
        || event.get("subtype").is_some_and(|s| !s.is_null())
    {
        return None;
    }
    let channel = event["channel"].as_str()?;
    let peer = match event["type"].as_str()? {
        "message" if event["channel_type"].as_str() == Some("im") => channel.to_string(),
        "app_mention" => {
            let ts = event["thread_ts"]
                .as_str()
                .or_else(|| event["ts"].as_str())?;
            format!("{channel}|{ts}")
        }
        _ => return None,
    };
    let mention = format!("<@{bot_user}>");
    let text = event["text"]
        .as_str()?
        .replace(&mention, "")
        .trim()
        .to_string();
    if text.is_empty() {
        return None;
    }
    let message_key = payload["event_id"]
        .as_str()
        .map(str::to_string)
        .or_else(|| event["ts"].as_str().map(|ts| format!("{channel}:{ts}")))?;
    Some(Inbound {
        key: ChatKey::new("slack", identity, &peer),
        message_key,
        text,
    })
}

/// Why a socket session ended.
enum Ended {
    /// Slack asked us to reconnect (`disconnect`), or the socket closed: reconnect now.
    Reconnect,
    Failed(SlackError),
}

/// Runs one Slack app until the task is aborted: `auth.test`, then Socket Mode sessions,
/// reconnecting with back-off.
pub async fn run(app: Arc<crate::pipeline::App>, identity: String, api: SlackApi) {
    let key = ("slack".to_string(), identity.clone());
    let mut backoff = Duration::from_secs(1);
    let bot_user = loop {
        match api.auth_test().await {
            Ok(u) => break u,
            Err(e) => {
                app.chats
                    .set_state(&key, IdentityState::Error(e.to_string()));
                tracing::warn!(identity = %identity, error = %e, "slack auth.test failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    };
    loop {
        let ended = match api.open_connection().await {
            Ok(url) => session(&app, &identity, &bot_user, &url, &key).await,
            Err(e) => Ended::Failed(e),
        };
        match ended {
            Ended::Reconnect => {
                backoff = Duration::from_secs(1);
                app.chats.set_state(&key, IdentityState::Starting);
                tracing::info!(identity = %identity, "slack socket reconnecting");
            }
            Ended::Failed(e) => {
                let wait = match &e {
                    SlackError::RetryAfter { retry_after, .. } => Duration::from_secs(*retry_after),
                    _ => backoff,
                };
                app.chats
                    .set_state(&key, IdentityState::Error(e.to_string()));
                tracing::warn!(identity = %identity, error = %e, "slack socket failed");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

async fn session(
    app: &Arc<crate::pipeline::App>,
    identity: &str,
    bot_user: &str,
    url: &str,
    key: &crate::chat::IdentityKey,
) -> Ended {
    let (ws, _) = match tokio_tungstenite::connect_async(url).await {
        Ok(x) => x,
        Err(e) => return Ended::Failed(SlackError::Socket(e.to_string())),
    };
    let (mut tx, mut rx) = ws.split();
    while let Some(msg) = rx.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t.to_string(),
            Ok(Message::Ping(p)) => {
                let _ = tx.send(Message::Pong(p)).await;
                continue;
            }
            Ok(Message::Close(_)) => return Ended::Reconnect,
            Ok(_) => continue,
            Err(e) => return Ended::Failed(SlackError::Socket(e.to_string())),
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if let Some(envelope) = v["envelope_id"].as_str() {
            let ack = json!({ "envelope_id": envelope }).to_string();
            if let Err(e) = tx.send(Message::Text(ack.into())).await {
                return Ended::Failed(SlackError::Socket(e.to_string()));
            }
        }
        match v["type"].as_str() {
            Some("hello") => app.chats.set_state(key, IdentityState::Running),
            Some("disconnect") => return Ended::Reconnect,
            Some("events_api") => {
                if let Some(msg) = to_inbound(identity, bot_user, &v["payload"]) {
                    app.clone().inbound(msg).await;
                }
            }
            _ => {}
        }
    }
    Ended::Reconnect
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dms_and_mentions_become_messages() {
        let dm = json!({"event_id": "Ev1", "event": {"type": "message", "channel_type": "im", "channel": "D1", "user": "U1", "text": "hi", "ts": "1.1"}});
        let m = to_inbound("a", "UBOT", &dm).unwrap();
        assert_eq!((m.key.peer_id.as_str(), m.text.as_str()), ("D1", "hi"));
        let mention = json!({"event_id": "Ev2", "event": {"type": "app_mention", "channel": "C1", "user": "U1", "text": "<@UBOT> go", "ts": "2.2"}});
        let m = to_inbound("a", "UBOT", &mention).unwrap();
        assert_eq!((m.key.peer_id.as_str(), m.text.as_str()), ("C1|2.2", "go"));
        let own = json!({"event_id": "Ev3", "event": {"type": "message", "channel_type": "im", "channel": "D1", "bot_id": "B1", "text": "x"}});
        assert!(to_inbound("a", "UBOT", &own).is_none());
        let chan = json!({"event_id": "Ev4", "event": {"type": "message", "channel_type": "channel", "channel": "C1", "user": "U1", "text": "x"}});
        assert!(to_inbound("a", "UBOT", &chan).is_none());
        assert_eq!(split_peer("C1|2.2"), ("C1", Some("2.2")));
    }
}
