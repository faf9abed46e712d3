//! Telegram: a small Bot API client (`getMe`, `getUpdates`, `sendMessage`, `sendChatAction`,
//! `sendDocument`) and the long-polling loop of one bot.
//!
//! Threats handled here: a flood of retries against Telegram (errors back off exponentially up
//! to a minute, a 429's `retry_after` is honoured on both polling and sending), the bot token
//! leaking into logs (errors carry the method name, never the URL, which holds the token), and a
//! restart handling an update twice (the offset is persisted before the update is handed on).
//! Groups are ignored unless enabled, and then only messages that mention the bot count.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;

use crate::chat::{IdentityState, Inbound};
use crate::store::ChatKey;

/// Telegram's limit on one message's text.
pub const MESSAGE_LIMIT: usize = 4096;

/// A failed Bot API call. Never holds the URL (it contains the token).
#[derive(Debug, Error)]
pub enum TelegramError {
    #[error("Telegram {method}: cannot connect ({kind})")]
    Http { method: &'static str, kind: String },
    #[error("Telegram {method}: rate limited, retry after {retry_after}s")]
    RetryAfter {
        method: &'static str,
        retry_after: u64,
    },
    #[error("Telegram {method}: error {code}: {description}")]
    Api {
        method: &'static str,
        code: i64,
        description: String,
    },
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

fn http_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else if e.is_decode() {
        "bad response body".into()
    } else {
        "request failed".into()
    }
}

/// Bot API client of one bot.
#[derive(Clone)]
pub struct TelegramApi {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// `getMe`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    pub id: i64,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
}

impl TelegramApi {
    pub fn new(base: &str, token: &str) -> TelegramApi {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        TelegramApi {
            base: base.trim_end_matches('/').into(),
            token: token.into(),
            http,
        }
    }

    fn url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.base, self.token)
    }

    async fn decode(
        method: &'static str,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Value, TelegramError> {
        let resp = resp.map_err(|e| TelegramError::Http {
            method,
            kind: http_kind(&e),
        })?;
        let v: Value = resp.json().await.map_err(|e| TelegramError::Http {
            method,
            kind: http_kind(&e),
        })?;
        if v["ok"] == Value::Bool(true) {
            return Ok(v["result"].clone());
        }
        let code = v["error_code"].as_i64().unwrap_or(0);
        if code == 429 {
            return Err(TelegramError::RetryAfter {
                method,
                retry_after: v["parameters"]["retry_after"].as_u64().unwrap_or(1).max(1),
            });
        }
        Err(TelegramError::Api {
            method,
            code,
            description: v["description"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect(),
        })
    }

    async fn call(
        &self,
        method: &'static str,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, TelegramError> {
        let resp = self
            .http
            .post(self.url(method))
            .timeout(timeout)
            .json(&body)
            .send()
            .await;
        Self::decode(method, resp).await
    }

    pub async fn get_me(&self) -> Result<Me, TelegramError> {
        let v = self
            .call("getMe", json!({}), Duration::from_secs(15))
            .await?;
        serde_json::from_value(v).map_err(|e| TelegramError::Api {
            method: "getMe",
            code: 0,
            description: e.to_string(),
        })
    }

    /// Long-polls for updates after `offset`.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout_s: u64,
    ) -> Result<Vec<Value>, TelegramError> {
        let mut body = json!({ "timeout": timeout_s, "allowed_updates": ["message"] });
        if let Some(o) = offset {
            body["offset"] = json!(o);
        }
        let v = self
            .call("getUpdates", body, Duration::from_secs(timeout_s + 15))
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Sends one message (≤ [`MESSAGE_LIMIT`]), waiting out 429s up to five times.
    pub async fn send_message(&self, chat_id: &str, text: &str) -> Result<(), TelegramError> {
        let mut tries = 0;
        loop {
            let r = self
                .call(
                    "sendMessage",
                    json!({ "chat_id": chat_id, "text": text }),
                    Duration::from_secs(30),
                )
                .await;
            match r {
                Err(TelegramError::RetryAfter { retry_after, .. }) if tries < 5 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_secs(retry_after)).await;
                }
                other => return other.map(|_| ()),
            }
        }
    }

    /// Sends `text` split at Telegram's limit.
    pub async fn send_text(&self, chat_id: &str, text: &str) -> Result<(), TelegramError> {
        for piece in crate::chat::split_message(text, MESSAGE_LIMIT) {
            self.send_message(chat_id, &piece).await?;
        }
        Ok(())
    }

    pub async fn typing(&self, chat_id: &str) -> Result<(), TelegramError> {
        self.call(
            "sendChatAction",
            json!({ "chat_id": chat_id, "action": "typing" }),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
    }

    /// `sendDocument` with a file from disk (the caller checked its size and place).
    pub async fn send_document(
        &self,
        chat_id: &str,
        path: &std::path::Path,
        caption: Option<&str>,
    ) -> Result<(), TelegramError> {
        let part = crate::chat::file_part(path)
            .await
            .map_err(|source| TelegramError::File {
                path: path.display().to_string(),
                source,
            })?;
        let mut form = reqwest::multipart::Form::new()
            .text("chat_id", chat_id.to_string())
            .part("document", part);
        if let Some(c) = caption {
            form = form.text("caption", c.to_string());
        }
        let resp = self
            .http
            .post(self.url("sendDocument"))
            .timeout(Duration::from_secs(120))
            .multipart(form)
            .send()
            .await;
        Self::decode("sendDocument", resp).await.map(|_| ())
    }
}

/// Turns one update into an inbound message, or `None` when the bot should ignore it.
pub fn to_inbound(
    identity: &str,
    username: Option<&str>,
    groups_enabled: bool,
    update: &Value,
) -> Option<Inbound> {
    let msg = &update["message"];
    if msg["from"]["is_bot"] == Value::Bool(true) {
        return None;
    }
    let chat_id = msg["chat"]["id"].as_i64()?;
    let chat_type = msg["chat"]["type"].as_str().unwrap_or("private");
    let mut text = msg["text"]
        .as_str()
        .or_else(|| msg["caption"].as_str())?
        .to_string();
    let is_group = chat_type != "private";
    if let Some(name) = username {
        let mention = format!("@{name}");
        if is_group && (!groups_enabled || !text.to_lowercase().contains(&mention.to_lowercase())) {
            return None;
        }
        // `/help@bot` and `@bot hello` both lose the mention.
        text = strip_ci(&text, &mention);
    } else if is_group {
        return None;
    }
    let text = text.trim().to_string();
    if text.is_empty() {
        return None;
    }
    Some(Inbound {
        key: ChatKey::new("telegram", identity, &chat_id.to_string()),
        message_key: update["update_id"].as_i64()?.to_string(),
        text,
    })
}

fn strip_ci(text: &str, needle: &str) -> String {
    let lower = text.to_lowercase();
    let n = needle.to_lowercase();
    match lower.find(&n) {
        // ASCII usernames: byte offsets of the lower-case copy match the original.
        Some(i) if text.is_char_boundary(i) && text.is_char_boundary(i + n.len()) => {
            format!("{}{}", &text[..i], &text[i + n.len()..])
        }
        _ => text.to_string(),
    }
}

/// Runs one bot until the task is aborted: `getMe`, then long polling with back-off.
pub async fn run(app: Arc<crate::pipeline::App>, identity: String, api: TelegramApi) {
    let key = ("telegram".to_string(), identity.clone());
    let mut backoff = Duration::from_secs(1);
    let me = loop {
        match api.get_me().await {
            Ok(me) => break me,
            Err(e) => {
                let wait = wait_for(&e, backoff);
                app.chats
                    .set_state(&key, IdentityState::Error(e.to_string()));
                tracing::warn!(identity = %identity, error = %e, "telegram getMe failed; retrying");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    };
    app.chats.set_state(&key, IdentityState::Running);
    backoff = Duration::from_secs(1);
    tracing::info!(identity = %identity, bot = ?me.username, "telegram bot polling");
    loop {
        let offset = app.store.offset("telegram", &identity).ok().flatten();
        match api
            .get_updates(offset, app.settings.telegram_poll_timeout)
            .await
        {
            Ok(updates) => {
                backoff = Duration::from_secs(1);
                app.chats.set_state(&key, IdentityState::Running);
                for u in updates {
                    let Some(id) = u["update_id"].as_i64() else {
                        continue;
                    };
                    if let Err(e) = app.store.set_offset("telegram", &identity, id + 1) {
                        tracing::error!(error = %e, "cannot persist the telegram offset");
                    }
                    if let Some(msg) =
                        to_inbound(&identity, me.username.as_deref(), app.groups_enabled(), &u)
                    {
                        app.clone().inbound(msg).await;
                    }
                }
            }
            Err(e) => {
                let wait = wait_for(&e, backoff);
                app.chats
                    .set_state(&key, IdentityState::Error(e.to_string()));
                tracing::warn!(identity = %identity, error = %e, wait_ms = wait.as_millis() as u64, "telegram getUpdates failed");
                tokio::time::sleep(wait).await;
                if !matches!(e, TelegramError::RetryAfter { .. }) {
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}

fn wait_for(e: &TelegramError, backoff: Duration) -> Duration {
    match e {
        TelegramError::RetryAfter { retry_after, .. } => Duration::from_secs(*retry_after),
        _ => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dms_pass_groups_need_a_mention() {
        let dm = json!({"update_id": 5, "message": {"chat": {"id": 42, "type": "private"}, "from": {"id": 1}, "text": "hi"}});
        let m = to_inbound("a", Some("bot"), false, &dm).unwrap();
        assert_eq!(m.key.peer_id, "42");
        assert_eq!(m.message_key, "5");
        let group = json!({"update_id": 6, "message": {"chat": {"id": -7, "type": "group"}, "from": {"id": 1}, "text": "@Bot do it"}});
        assert!(to_inbound("a", Some("bot"), false, &group).is_none());
        assert_eq!(
            to_inbound("a", Some("bot"), true, &group).unwrap().text,
            "do it"
        );
        let plain = json!({"update_id": 7, "message": {"chat": {"id": -7, "type": "group"}, "from": {"id": 1}, "text": "chatter"}});
        assert!(to_inbound("a", Some("bot"), true, &plain).is_none());
        let caption = json!({"update_id": 8, "message": {"chat": {"id": 1, "type": "private"}, "from": {"id": 1}, "caption": "/help@bot"}});
        assert_eq!(
            to_inbound("a", Some("bot"), false, &caption).unwrap().text,
            "/help"
        );
        let from_bot = json!({"update_id": 9, "message": {"chat": {"id": 1, "type": "private"}, "from": {"id": 1, "is_bot": true}, "text": "x"}});
        assert!(to_inbound("a", Some("bot"), false, &from_bot).is_none());
    }
}
