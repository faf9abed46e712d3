//! Outbound `send`: the host (control API or CLI) sends text or files to chats.
//!
//! Threats handled here: the bridge used to spam arbitrary chats (only chats bound to the
//! router receive, unless the caller binds one explicitly with `autoBind`), and `send` used to
//! exfiltrate files (a file must be a regular file inside the workspace root, symlinks followed
//! before the check, and at most `OPENCODE_ROUTER_MAX_MEDIA_BYTES`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::pipeline::{App, confine};
use crate::store::ChatKey;

/// A part of an outbound message.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OutPart {
    Text {
        text: String,
    },
    #[serde(alias = "image", alias = "audio")]
    File {
        #[serde(rename = "filePath")]
        file_path: String,
        #[serde(default)]
        caption: Option<String>,
    },
}

/// The body of `POST /send` (and the CLI's `send`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendRequest {
    pub channel: String,
    #[serde(default)]
    pub identity_id: Option<String>,
    #[serde(default)]
    pub directory: Option<String>,
    #[serde(default)]
    pub peer_id: Option<String>,
    #[serde(default)]
    pub auto_bind: bool,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub parts: Vec<OutPart>,
}

/// One chat's delivery.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub identity_id: String,
    pub peer_id: String,
    pub attempted_parts: usize,
    pub sent_parts: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// What `send` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendReport {
    pub ok: bool,
    pub channel: String,
    pub attempted: usize,
    pub sent: usize,
    pub targets: Vec<Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A request that cannot be carried out at all.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SendError {
    #[error("channel must be telegram or slack, not {0:?}")]
    BadChannel(String),
    #[error("nothing to send: give text or parts")]
    Empty,
    #[error("give peerId or directory")]
    NoTarget,
    #[error("{0}")]
    Directory(#[from] crate::pipeline::DirError),
    #[error("file {path} is outside the workspace or not a regular file")]
    FileOutside { path: String },
    #[error("file {path} is {size} bytes, over the {limit}-byte media limit")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{channel} chat {peer} is not bound to this router (pass autoBind with a directory)")]
    NotBound { channel: String, peer: String },
    #[error("no running {0} identity to send with")]
    NoIdentity(String),
    #[error("Telegram chat ids are numbers, not {0:?}")]
    BadPeer(String),
}

/// Checks a file part: a regular file inside the root, within the size cap.
fn check_file(app: &App, path: &str) -> Result<PathBuf, SendError> {
    let raw = std::path::Path::new(path);
    let joined = if raw.is_absolute() {
        raw.to_path_buf()
    } else {
        app.settings.root.join(raw)
    };
    let outside = || SendError::FileOutside { path: path.into() };
    let real = std::fs::canonicalize(&joined).map_err(|_| outside())?;
    let meta = std::fs::metadata(&real).map_err(|_| outside())?;
    if !meta.is_file() || !real.starts_with(&app.settings.root) {
        return Err(outside());
    }
    if meta.len() > app.settings.max_media_bytes {
        return Err(SendError::TooLarge {
            path: path.into(),
            size: meta.len(),
            limit: app.settings.max_media_bytes,
        });
    }
    Ok(real)
}

/// Carries out a send.
pub async fn send(app: &App, req: SendRequest) -> Result<SendReport, SendError> {
    if req.channel != "telegram" && req.channel != "slack" {
        return Err(SendError::BadChannel(req.channel));
    }
    let mut parts = req.parts.clone();
    if let Some(t) = req.text.as_ref().filter(|t| !t.is_empty()) {
        parts.insert(0, OutPart::Text { text: t.clone() });
    }
    if parts.is_empty() {
        return Err(SendError::Empty);
    }
    let mut files = Vec::new();
    for p in &parts {
        if let OutPart::File { file_path, .. } = p {
            files.push(check_file(app, file_path)?);
        }
    }
    let directory = match &req.directory {
        Some(d) => Some(confine(&app.settings.root, d)?.display().to_string()),
        None => None,
    };
    let targets: Vec<ChatKey> = match &req.peer_id {
        Some(peer) => {
            if req.channel == "telegram" && peer.parse::<i64>().is_err() {
                return Err(SendError::BadPeer(peer.clone()));
            }
            let bindings = app
                .store
                .bindings(Some(&req.channel), req.identity_id.as_deref())
                .unwrap_or_default();
            let bound = bindings.iter().find(|b| &b.peer_id == peer);
            let identity = match (&req.identity_id, bound) {
                (Some(id), _) => id.clone(),
                (None, Some(b)) => b.identity_id.clone(),
                (None, None) => app
                    .chats
                    .running(&req.channel)
                    .into_iter()
                    .next()
                    .ok_or_else(|| SendError::NoIdentity(req.channel.clone()))?,
            };
            let key = ChatKey::new(&req.channel, &identity, peer);
            let is_bound = app.store.binding(&key).ok().flatten().is_some();
            if !is_bound {
                match (&directory, req.auto_bind) {
                    (Some(d), true) => {
                        let _ = app.store.set_binding(&key, d);
                    }
                    _ => {
                        return Err(SendError::NotBound {
                            channel: req.channel.clone(),
                            peer: peer.clone(),
                        });
                    }
                }
            }
            vec![key]
        }
        None => {
            let dir = directory.clone().ok_or(SendError::NoTarget)?;
            app.store
                .bindings(Some(&req.channel), req.identity_id.as_deref())
                .unwrap_or_default()
                .into_iter()
                .filter(|b| b.directory == dir)
                .map(|b| ChatKey::new(&b.channel, &b.identity_id, &b.peer_id))
                .collect()
        }
    };
    let mut report = SendReport {
        ok: true,
        channel: req.channel.clone(),
        attempted: targets.len(),
        sent: 0,
        targets: Vec::new(),
        reason: None,
    };
    if targets.is_empty() {
        report.reason = Some("no chat is bound to that directory".into());
    }
    for key in targets {
        let mut t = Target {
            identity_id: key.identity_id.clone(),
            peer_id: key.peer_id.clone(),
            attempted_parts: parts.len(),
            sent_parts: 0,
            errors: Vec::new(),
        };
        let Some(sender) = app.chats.sender(&key.channel, &key.identity_id) else {
            t.errors
                .push(format!("identity {} is not running", key.identity_id));
            report.targets.push(t);
            continue;
        };
        let mut file_iter = files.iter();
        for p in &parts {
            let r = match p {
                OutPart::Text { text } => sender.send_text(&key.peer_id, text).await,
                OutPart::File { caption, .. } => match file_iter.next() {
                    Some(path) => {
                        sender
                            .send_file(&key.peer_id, path, caption.as_deref())
                            .await
                    }
                    None => continue,
                },
            };
            match r {
                Ok(()) => {
                    t.sent_parts += 1;
                    app.count_outbound();
                }
                Err(e) => t.errors.push(e.to_string()),
            }
        }
        if t.sent_parts == t.attempted_parts {
            report.sent += 1;
        }
        report.targets.push(t);
    }
    report.ok = report.sent == report.attempted;
    Ok(report)
}
