//! opencode's permission prompts, answered for the chat that owns the session, and the event
//! stream that brings them (with optional tool-update messages).
//!
//! Threat handled here: a chat bridge that approves everything (the original's default), which
//! hands shell access to anyone who can message the bot. In the default `ask` mode the prompt is
//! put to the chat's bound person, who answers yes or no; silence past the timeout is a no.
//! Prompts of sessions that are not ours are left alone (another client owns them). `allow` and
//! `deny` are explicit opt-ins. A lost event stream reconnects with back-off and shows in
//! `/health`, and a prompt raised while it was down stays pending in opencode (never approved).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::chat::Inbound;
use crate::config::PermissionMode;
use crate::opencode::{Event, PermissionAsked};
use crate::pipeline::App;
use crate::store::ChatKey;

/// A prompt waiting for the chat's answer.
#[derive(Debug, Clone)]
struct Pending {
    id: String,
    directory: Option<String>,
}

/// Pending prompts per chat, oldest first, and the event stream's state.
#[derive(Default)]
pub struct Permissions {
    pending: Mutex<HashMap<ChatKey, VecDeque<Pending>>>,
    /// Whether the event stream is connected (shown in `/health`).
    pub events_connected: AtomicBool,
}

impl Permissions {
    fn push(&self, key: &ChatKey, p: Pending) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .push_back(p);
    }

    /// Takes the oldest pending prompt of a chat.
    fn pop(&self, key: &ChatKey) -> Option<Pending> {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let q = map.get_mut(key)?;
        let p = q.pop_front();
        if q.is_empty() {
            map.remove(key);
        }
        p
    }

    /// Removes a prompt by id; true when it was still pending.
    fn take(&self, key: &ChatKey, id: &str) -> Option<Pending> {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let q = map.get_mut(key)?;
        let i = q.iter().position(|p| p.id == id)?;
        let p = q.remove(i);
        if q.is_empty() {
            map.remove(key);
        }
        p
    }

    /// Forgets a prompt answered elsewhere, so the chat is not left waiting for a yes/no.
    fn forget(&self, id: &str) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for q in map.values_mut() {
            q.retain(|p| p.id != id);
        }
        map.retain(|_, q| !q.is_empty());
    }

    fn has(&self, key: &ChatKey) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(key)
    }
}

/// yes → Some(true), no → Some(false), anything else → None.
pub fn parse_answer(text: &str) -> Option<bool> {
    let t = text.trim().trim_end_matches(['.', '!']).to_lowercase();
    match t.as_str() {
        "yes" | "y" | "allow" | "ok" | "approve" | "/yes" | "/allow" => Some(true),
        "no" | "n" | "deny" | "reject" | "/no" | "/deny" => Some(false),
        _ => None,
    }
}

/// If the chat has a pending prompt and `msg` is a yes/no, answers it; true when consumed.
pub async fn answer(app: &Arc<App>, msg: &Inbound) -> bool {
    if !app.permissions.has(&msg.key) {
        return false;
    }
    let Some(allow) = parse_answer(&msg.text) else {
        app.reply(
            &msg.key,
            "⏳ The agent is waiting for a yes or no to its permission request.",
        )
        .await;
        return true;
    };
    let Some(p) = app.permissions.pop(&msg.key) else {
        return false;
    };
    let text = match app
        .opencode
        .reply_permission(p.directory.as_deref(), &p.id, allow)
        .await
    {
        Ok(()) if allow => "👍 Allowed once.",
        Ok(()) => "🚫 Rejected.",
        Err(e) => {
            tracing::warn!(error = %e, "permission reply failed");
            "⚠️ The agent did not take the answer (the request may have expired)."
        }
    };
    app.reply(&msg.key, text).await;
    true
}

async fn on_asked(app: &Arc<App>, ask: PermissionAsked) {
    let Ok(Some(key)) = app.store.chat_of_session(&ask.session_id) else {
        return;
    };
    let dir = ask.directory.clone();
    let decision = match app.settings.permission_mode {
        PermissionMode::Allow => Some(true),
        PermissionMode::Deny => Some(false),
        PermissionMode::Ask => None,
    };
    if let Some(allow) = decision {
        if let Err(e) = app
            .opencode
            .reply_permission(dir.as_deref(), &ask.id, allow)
            .await
        {
            tracing::warn!(error = %e, "permission reply failed");
        }
        return;
    }
    app.permissions.push(
        &key,
        Pending {
            id: ask.id.clone(),
            directory: dir,
        },
    );
    let patterns = if ask.patterns.is_empty() {
        String::new()
    } else {
        format!(": {}", ask.patterns.join(", "))
    };
    let timeout = app.settings.permission_timeout;
    app.reply(
        &key,
        &format!(
            "🔐 The agent asks permission for {}{patterns}\nReply yes or no (no answer in {} s means no).",
            ask.permission,
            timeout.as_secs()
        ),
    )
    .await;
    let app = app.clone();
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        if let Some(p) = app.permissions.take(&key, &ask.id) {
            let _ = app
                .opencode
                .reply_permission(p.directory.as_deref(), &p.id, false)
                .await;
            app.reply(&key, "⌛ No answer in time: the permission was rejected.")
                .await;
        }
    });
}

async fn on_tool(app: &Arc<App>, session_id: &str, tool: &str, status: &str, title: &str) {
    if !app.settings.tool_updates || !matches!(status, "completed" | "error") {
        return;
    }
    let Ok(Some(key)) = app.store.chat_of_session(session_id) else {
        return;
    };
    let mut line = format!("[tool] {tool} {status}: {title}");
    if line.chars().count() > app.settings.tool_output_limit {
        line = line.chars().take(app.settings.tool_output_limit).collect();
        line.push('…');
    }
    app.reply(&key, &line).await;
}

/// Follows opencode's event stream forever, reconnecting with back-off.
pub async fn run_events(app: Arc<App>) {
    let (tx, mut rx) = mpsc::channel::<Event>(256);
    let consumer = {
        let app = app.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                match ev {
                    Event::Connected => app
                        .permissions
                        .events_connected
                        .store(true, Ordering::Relaxed),
                    Event::PermissionAsked(ask) => {
                        let app = app.clone();
                        tokio::spawn(async move { on_asked(&app, ask).await });
                    }
                    Event::PermissionReplied { id } => app.permissions.forget(&id),
                    Event::Tool {
                        session_id,
                        tool,
                        status,
                        title,
                    } => on_tool(&app, &session_id, &tool, &status, &title).await,
                }
            }
        })
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        let result = app.opencode.events(&tx).await;
        app.permissions
            .events_connected
            .store(false, Ordering::Relaxed);
        match result {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => tracing::warn!(error = %e, "opencode event stream lost; reconnecting"),
        }
        if consumer.is_finished() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(parse_answer("Yes!"), Some(true));
        assert_eq!(parse_answer(" no "), Some(false));
        assert_eq!(parse_answer("maybe"), None);
    }
}
