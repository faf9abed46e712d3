//! What the chat adapters share: the inbound message, the per-identity connection state shown by
//! `/health`, the senders the pipeline replies through, and message splitting.
//!
//! Threat handled here: a reply larger than a service accepts being dropped or cut mid-character
//! (split on character boundaries, preferring line breaks). The registry holds senders only for
//! running identities, so `send` never reaches a bot that was removed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::slack::SlackApi;
use crate::store::ChatKey;
use crate::telegram::TelegramApi;

/// One message from a chat, already filtered (not ours, mentions stripped).
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub key: ChatKey,
    /// Unique per identity (Telegram update id, Slack event id): dedupes redeliveries.
    pub message_key: String,
    pub text: String,
}

/// Connection state of one identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", content = "error", rename_all = "lowercase")]
pub enum IdentityState {
    Starting,
    Running,
    /// Retrying after this error.
    Error(String),
    Disabled,
}

/// How the pipeline talks back to one identity's chats.
#[derive(Clone)]
pub enum Sender {
    Telegram(TelegramApi),
    Slack(SlackApi),
}

/// A failed send, for the chat-facing and API-facing reports.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Telegram(#[from] crate::telegram::TelegramError),
    #[error(transparent)]
    Slack(#[from] crate::slack::SlackError),
}

impl Sender {
    pub async fn send_text(&self, peer: &str, text: &str) -> Result<(), SendError> {
        match self {
            Sender::Telegram(t) => Ok(t.send_text(peer, text).await?),
            Sender::Slack(s) => Ok(s.send_text(peer, text).await?),
        }
    }

    pub async fn typing(&self, peer: &str) {
        if let Sender::Telegram(t) = self {
            let _ = t.typing(peer).await;
        }
    }

    pub async fn send_file(
        &self,
        peer: &str,
        path: &std::path::Path,
        caption: Option<&str>,
    ) -> Result<(), SendError> {
        match self {
            Sender::Telegram(t) => Ok(t.send_document(peer, path, caption).await?),
            Sender::Slack(s) => Ok(s.send_file(peer, path, caption).await?),
        }
    }
}

/// An identity as `/health` and `…/identities` show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityStatus {
    pub id: String,
    pub enabled: bool,
    #[serde(flatten)]
    pub state: IdentityState,
}

/// (channel, identity id)
pub type IdentityKey = (String, String);

/// States and senders of every identity.
#[derive(Default)]
pub struct Chats {
    states: Mutex<BTreeMap<IdentityKey, IdentityState>>,
    senders: Mutex<BTreeMap<IdentityKey, Sender>>,
}

impl Chats {
    pub fn set_state(&self, key: &IdentityKey, state: IdentityState) {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), state);
    }

    pub fn set_sender(&self, key: &IdentityKey, sender: Option<Sender>) {
        let mut s = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        match sender {
            Some(x) => {
                s.insert(key.clone(), x);
            }
            None => {
                s.remove(key);
            }
        }
    }

    pub fn remove(&self, key: &IdentityKey) {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        self.set_sender(key, None);
    }

    pub fn sender(&self, channel: &str, identity: &str) -> Option<Sender> {
        self.senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(channel.to_string(), identity.to_string()))
            .cloned()
    }

    /// Ids of identities of `channel` that have a sender.
    pub fn running(&self, channel: &str) -> Vec<String> {
        self.senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|(c, _)| c == channel)
            .map(|(_, id)| id.clone())
            .collect()
    }

    pub fn statuses(&self, channel: &str) -> Vec<IdentityStatus> {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((c, _), _)| c == channel)
            .map(|((_, id), st)| IdentityStatus {
                id: id.clone(),
                enabled: *st != IdentityState::Disabled,
                state: st.clone(),
            })
            .collect()
    }
}

/// A file to upload as a multipart part named after the file (both adapters' `send` with media).
pub async fn file_part(path: &std::path::Path) -> std::io::Result<reqwest::multipart::Part> {
    let bytes = tokio::fs::read(path).await?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file")
        .to_string();
    Ok(reqwest::multipart::Part::bytes(bytes).file_name(name))
}

/// Splits `text` into pieces of at most `limit` characters, preferring to cut at a line break.
pub fn split_message(text: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest: Vec<char> = text.chars().collect();
    while rest.len() > limit {
        let window = &rest[..limit];
        let cut = window
            .iter()
            .rposition(|c| *c == '\n')
            .filter(|&i| i > limit / 2)
            .map(|i| i + 1)
            .unwrap_or(limit);
        out.push(rest[..cut].iter().collect::<String>());
        rest.drain(..cut);
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest.into_iter().collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_limit_on_char_boundaries() {
        let text = "é".repeat(10_000);
        let parts = split_message(&text, 4096);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= 4096));
        assert_eq!(parts.concat(), text);
        let lines = format!("{}\n{}", "a".repeat(3000), "b".repeat(3000));
        let parts = split_message(&lines, 4096);
        assert_eq!(parts[0], format!("{}\n", "a".repeat(3000)));
        assert_eq!(split_message("", 10), vec![String::new()]);
    }
}
