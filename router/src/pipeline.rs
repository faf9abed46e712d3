//! The inbound pipeline: one message from a chat to one reply, through the chat's opencode
//! session.
//!
//! Threats handled here: strangers using a private bot (only `/pair` is heard until the chat is
//! bound), a chat steering the agent outside the workspace (every directory is resolved to a
//! real path and must stay inside the root), a message answered twice (redeliveries are dropped
//! by the store before anything runs) and two prompts racing in one session (each chat has one
//! FIFO worker). Left open: what the person says to the agent: their text goes to opencode as is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;

use crate::chat::{Chats, Inbound, Sender};
use crate::config::{Access, Settings, SlackApp, TelegramBot};
use crate::opencode::{Opencode, OpencodeError};
use crate::permissions::Permissions;
use crate::store::{ChatKey, SessionRow, Store, StoreError, now_ms};

/// Why a directory was refused.
#[derive(Debug, Error, PartialEq)]
pub enum DirError {
    #[error("{path} does not exist or is not a directory")]
    Missing { path: String },
    #[error("{path} is outside the workspace {root}")]
    Outside { path: String, root: String },
}

/// Resolves `candidate` (absolute, or relative to `root`) to a real directory inside `root`
/// (symlinks followed before the check).
pub fn confine(root: &Path, candidate: &str) -> Result<PathBuf, DirError> {
    let raw = Path::new(candidate.trim());
    let joined = if raw.is_absolute() {
        raw.to_path_buf()
    } else {
        root.join(raw)
    };
    let real = std::fs::canonicalize(&joined)
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| DirError::Missing {
            path: candidate.into(),
        })?;
    let real_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    if real.starts_with(&real_root) {
        Ok(real)
    } else {
        Err(DirError::Outside {
            path: candidate.into(),
            root: real_root.display().to_string(),
        })
    }
}

/// Message counters for `/health`.
#[derive(Default)]
pub struct Activity {
    pub inbound: AtomicU64,
    pub outbound: AtomicU64,
    pub last_inbound_at: AtomicI64,
    pub last_outbound_at: AtomicI64,
}

/// The configured identities (from the file and env), as the pipeline consults them.
#[derive(Default, Clone)]
pub struct Identities {
    pub telegram: Vec<TelegramBot>,
    pub slack: Vec<SlackApp>,
}

impl Identities {
    /// (access, pairing code hash, directory) of an identity.
    fn policy(&self, channel: &str, id: &str) -> (Access, Option<String>, Option<String>) {
        match channel {
            "telegram" => self
                .telegram
                .iter()
                .find(|b| b.id == id)
                .map(|b| (b.access, b.pairing_code_hash.clone(), b.directory.clone()))
                .unwrap_or((Access::Private, None, None)),
            // Slack workspaces are closed membership: the app's install is its pairing.
            _ => self
                .slack
                .iter()
                .find(|a| a.id == id)
                .map(|a| (Access::Public, None, a.directory.clone()))
                .unwrap_or((Access::Public, None, None)),
        }
    }
}

/// The running router: settings, state and the per-chat workers.
pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub opencode: Opencode,
    pub chats: Chats,
    pub identities: RwLock<Identities>,
    pub permissions: Permissions,
    pub activity: Activity,
    groups_enabled: AtomicBool,
    workers: Mutex<HashMap<ChatKey, mpsc::UnboundedSender<Inbound>>>,
    pub started_at: i64,
    pub instance_id: String,
}

/// The help text of `/help`.
pub const HELP: &str = "Commands:\n/help — this text\n/reset — start a fresh session\n/dir [path] — show or change this chat's directory (inside the workspace)\n/model [provider/model|default] — show or choose the model\n/pair <code> — connect this chat to a private bot";

impl App {
    pub fn new(settings: Settings, store: Store, identities: Identities) -> App {
        let opencode = Opencode::new(
            &settings.opencode_url,
            settings.username.as_deref(),
            settings.password.as_deref(),
        );
        let groups = settings.groups_enabled;
        App {
            settings,
            store,
            opencode,
            chats: Chats::default(),
            identities: RwLock::new(identities),
            permissions: Permissions::default(),
            activity: Activity::default(),
            groups_enabled: AtomicBool::new(groups),
            workers: Mutex::new(HashMap::new()),
            started_at: now_ms(),
            instance_id: hex::encode(rand::random::<[u8; 8]>()),
        }
    }

    pub fn groups_enabled(&self) -> bool {
        self.groups_enabled.load(Ordering::Relaxed)
    }

    pub fn set_groups_enabled(&self, on: bool) {
        self.groups_enabled.store(on, Ordering::Relaxed);
    }

    pub fn identities(&self) -> Identities {
        self.identities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Entry point of every adapter: dedupe, answer a pending permission prompt, or queue the
    /// message on its chat's worker.
    pub async fn inbound(self: Arc<Self>, msg: Inbound) {
        match self
            .store
            .first_sight(&msg.key.channel, &msg.key.identity_id, &msg.message_key)
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(key = %msg.message_key, "dropping a redelivered message");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record an inbound message; dropping it");
                return;
            }
        }
        self.activity.inbound.fetch_add(1, Ordering::Relaxed);
        self.activity
            .last_inbound_at
            .store(now_ms(), Ordering::Relaxed);
        if crate::permissions::answer(&self, &msg).await {
            return;
        }
        let tx = {
            let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
            let tx = workers.entry(msg.key.clone()).or_insert_with(|| {
                let (tx, mut rx) = mpsc::unbounded_channel::<Inbound>();
                let app = self.clone();
                tokio::spawn(async move {
                    while let Some(m) = rx.recv().await {
                        app.handle(m).await;
                    }
                });
                tx
            });
            tx.clone()
        };
        let _ = tx.send(msg);
    }

    /// Sends `text` to a chat, counting it.
    pub async fn reply(&self, key: &ChatKey, text: &str) {
        let Some(sender) = self.chats.sender(&key.channel, &key.identity_id) else {
            tracing::warn!(channel = %key.channel, identity = %key.identity_id, "no running sender for a reply");
            return;
        };
        match sender.send_text(&key.peer_id, text).await {
            Ok(()) => self.count_outbound(),
            Err(e) => tracing::warn!(error = %e, "reply failed"),
        }
    }

    pub fn count_outbound(&self) {
        self.activity.outbound.fetch_add(1, Ordering::Relaxed);
        self.activity
            .last_outbound_at
            .store(now_ms(), Ordering::Relaxed);
    }

    async fn handle(self: &Arc<Self>, msg: Inbound) {
        let key = msg.key.clone();
        let (access, pairing_hash, identity_dir) =
            self.identities().policy(&key.channel, &key.identity_id);
        let bound = match self.store.binding(&key) {
            Ok(b) => b,
            Err(e) => return self.store_failed(&key, e).await,
        };
        let command = crate::commands::parse(&msg.text);
        if access == Access::Private && bound.is_none() {
            let answer = match command {
                Some(("pair", code)) => crate::commands::pair(
                    self,
                    &key,
                    code,
                    pairing_hash.as_deref(),
                    identity_dir.as_deref(),
                ),
                _ => "🔒 This bot is private. Send /pair <code> to connect this chat.".into(),
            };
            return self.reply(&key, &answer).await;
        }
        if let Some((name, arg)) = command
            && let Some(answer) =
                crate::commands::run(self, &key, name, arg, bound.as_deref()).await
        {
            return self.reply(&key, &answer).await;
        }
        let dir = match self.directory_for(&key, bound.as_deref(), identity_dir.as_deref()) {
            Ok(d) => d,
            Err(text) => return self.reply(&key, &text).await,
        };
        if bound.is_none()
            && let Err(e) = self.store.set_binding(&key, &dir)
        {
            return self.store_failed(&key, e).await;
        }
        match self.prompt(&key, &dir, &msg.text).await {
            Ok(text) => self.reply(&key, &text).await,
            Err(e) => {
                tracing::warn!(error = %e, "prompt failed");
                self.reply(&key, e.user_message()).await
            }
        }
    }

    async fn store_failed(&self, key: &ChatKey, e: StoreError) {
        tracing::error!(error = %e, "store failed");
        self.reply(key, "⚠️ The bridge cannot read its state. Try again later.")
            .await
    }

    /// Binding, else the session's directory, else the identity's, else the root; always inside
    /// the root.
    fn directory_for(
        &self,
        key: &ChatKey,
        bound: Option<&str>,
        identity_dir: Option<&str>,
    ) -> Result<String, String> {
        let session_dir = self.store.session(key).ok().flatten().map(|s| s.directory);
        let explicit = bound
            .map(str::to_string)
            .or(session_dir)
            .or(identity_dir.map(str::to_string));
        let root = &self.settings.root;
        let candidate = match explicit {
            Some(d) => d,
            None if root == Path::new("/") => {
                return Err("No workspace directory is configured. Reply with /dir <path>.".into());
            }
            None => root.display().to_string(),
        };
        confine(root, &candidate)
            .map(|p| p.display().to_string())
            .map_err(|e| format!("⚠️ {e}. Reply with /dir <path> to choose another."))
    }

    /// Runs one prompt in the chat's session (created on first use), with a typing indicator.
    async fn prompt(&self, key: &ChatKey, dir: &str, text: &str) -> Result<String, OpencodeError> {
        let model = self
            .store
            .model(key)
            .ok()
            .flatten()
            .or_else(|| self.settings.model.clone());
        let typing = self.chats.sender(&key.channel, &key.identity_id).map(|s| {
            let peer = key.peer_id.clone();
            tokio::spawn(typing_loop(s, peer))
        });
        let result = async {
            let mut retried = false;
            loop {
                let session = self.session_for(key, dir).await?;
                match self
                    .opencode
                    .prompt(dir, &session, text, model.as_deref())
                    .await
                {
                    Err(OpencodeError::Status { status: 404, .. }) if !retried => {
                        // The session is gone (opencode's data was reset): start a fresh one.
                        let _ = self.store.clear_session(key);
                        retried = true;
                    }
                    Ok(reply) if reply.is_empty() => {
                        break Ok(
                            "No visible response was generated. Try rephrasing, or /reset."
                                .to_string(),
                        );
                    }
                    other => break other,
                }
            }
        }
        .await;
        if let Some(t) = typing {
            t.abort();
        }
        result
    }

    async fn session_for(&self, key: &ChatKey, dir: &str) -> Result<String, OpencodeError> {
        if let Ok(Some(row)) = self.store.session(key)
            && row.directory == dir
        {
            return Ok(row.session_id);
        }
        let title = format!(
            "opencode-router {}/{} {}",
            key.channel, key.identity_id, key.peer_id
        );
        let id = self
            .opencode
            .create_session(dir, &title, self.settings.permission_mode)
            .await?;
        if let Err(e) = self.store.set_session(
            key,
            &SessionRow {
                session_id: id.clone(),
                directory: dir.into(),
            },
        ) {
            tracing::error!(error = %e, "cannot store the session");
        }
        Ok(id)
    }
}

async fn typing_loop(sender: Sender, peer: String) {
    loop {
        sender.typing(&peer).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("link")).unwrap();
        let real_root = std::fs::canonicalize(&root).unwrap();
        assert_eq!(confine(&root, "sub").unwrap(), real_root.join("sub"));
        assert!(matches!(
            confine(&root, "../outside"),
            Err(DirError::Outside { .. })
        ));
        assert!(matches!(
            confine(&root, "link"),
            Err(DirError::Outside { .. })
        ));
        assert!(matches!(
            confine(&root, "nope"),
            Err(DirError::Missing { .. })
        ));
        assert!(matches!(confine(&root, "/"), Err(DirError::Outside { .. })));
    }
}
