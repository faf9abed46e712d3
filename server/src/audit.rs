//! The audit log: one JSON line per write made through the server, per workspace, kept on the
//! host (`<data dir>/audit/<workspaceId>.jsonl`), rotated by size (reference §A15, §A12 Audit).
//!
//! Threats: an agent rewriting history (the log lives outside every workspace; the server
//! refuses to start when the audit directory lies inside one, see [`Audit::check_outside`]),
//! torn or interleaved lines under concurrent writers (every append of a request's lines is one
//! `write` under one lock, followed by `fdatasync`), unbounded growth (the live file is rotated
//! to `.1`, `.2`, … when it passes `max_bytes`; the oldest beyond `keep` is dropped, and only
//! that loses lines). Left open: the host user can edit the file, as with any local log.
//!
//! Without a directory (tests and embedders that set none) entries are kept in memory only.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{Actor, now_ms};

/// Default size at which the live file is rotated.
pub const DEFAULT_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Default number of rotated files kept (`.1` … `.keep`).
pub const DEFAULT_KEEP: usize = 5;
/// Entries kept per workspace without a directory.
const MEMORY_CAP: usize = 1000;

/// What happened to an audited write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused by the host (or timed out waiting).
    Denied,
    /// Approved but the change failed.
    Failed,
}

/// One line of the log (the reference's shape plus `result`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Unique id.
    pub id: String,
    /// The workspace written to.
    pub workspace_id: String,
    /// Who asked (type, scope, clientId; never the token hash).
    pub actor: Value,
    /// The action, e.g. `config.patch` (the approval action names of §A9).
    pub action: String,
    /// What was written: a workspace-relative path or a name.
    pub target: String,
    /// One line for people.
    pub summary: String,
    /// What happened.
    pub result: Outcome,
    /// ms since the Unix epoch.
    pub timestamp: u64,
}

impl AuditEntry {
    /// A new entry stamped now.
    pub fn new(
        workspace_id: &str,
        actor: &Actor,
        action: &str,
        target: impl Into<String>,
        summary: impl Into<String>,
        result: Outcome,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            workspace_id: workspace_id.to_owned(),
            actor: actor.to_json(false),
            action: action.to_owned(),
            target: target.into(),
            summary: summary.into(),
            result,
            timestamp: now_ms(),
        }
    }
}

/// Why the audit log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The audit directory is inside a workspace, where the agent could edit it.
    #[error(
        "audit directory {dir} lies inside workspace {workspace}; pass --data-dir (OPENWORK_DATA_DIR) outside every workspace"
    )]
    InsideWorkspace {
        /// The audit directory.
        dir: PathBuf,
        /// The workspace containing it.
        workspace: String,
    },
    /// A file operation failed.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS reason.
        source: std::io::Error,
    },
}

/// The audit log of all workspaces of one server.
#[derive(Debug)]
pub struct Audit {
    dir: Option<PathBuf>,
    max_bytes: u64,
    keep: usize,
    /// One lock for appends and rotation; memory entries when there is no directory.
    inner: Mutex<HashMap<String, Vec<AuditEntry>>>,
}

impl Audit {
    /// A log under `dir` (created on first write), or in memory when `None`.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self::with_limits(dir, DEFAULT_MAX_BYTES, DEFAULT_KEEP)
    }

    /// A log rotating at `max_bytes` and keeping `keep` rotated files.
    pub fn with_limits(dir: Option<PathBuf>, max_bytes: u64, keep: usize) -> Self {
        Self {
            dir,
            max_bytes: max_bytes.max(1),
            keep: keep.max(1),
            inner: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses an audit directory inside any of `workspaces` (compared after resolving links
    /// of the parts that exist).
    pub fn check_outside<'a>(
        &self,
        workspaces: impl IntoIterator<Item = &'a Path>,
    ) -> Result<(), AuditError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let resolved = resolve_existing(dir);
        for ws in workspaces {
            let ws_real = std::fs::canonicalize(ws).unwrap_or_else(|_| ws.to_path_buf());
            if resolved.starts_with(&ws_real) || dir.starts_with(ws) {
                return Err(AuditError::InsideWorkspace {
                    dir: dir.clone(),
                    workspace: ws.display().to_string(),
                });
            }
        }
        Ok(())
    }

    /// The live file of a workspace.
    pub fn file(&self, workspace_id: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{workspace_id}.jsonl")))
    }

    /// Appends entries (all of one workspace) as one write. Their timestamps are set here,
    /// under the lock, so the file's order and its times agree.
    pub fn append(&self, mut entries: Vec<AuditEntry>) -> Result<(), AuditError> {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = now_ms();
        for entry in &mut entries {
            entry.timestamp = now;
        }
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let Some(path) = self.file(&first.workspace_id) else {
            let list = guard.entry(first.workspace_id.clone()).or_default();
            list.extend(entries.iter().cloned());
            let excess = list.len().saturating_sub(MEMORY_CAP);
            list.drain(..excess);
            return Ok(());
        };
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        let mut text = Vec::new();
        for entry in &entries {
            // Serializing a struct of strings and numbers cannot fail.
            serde_json::to_writer(&mut text, entry).map_err(|e| io(std::io::Error::other(e)))?;
            text.push(b'\n');
        }
        if let Some(dir) = path.parent() {
            create_private_dir(dir).map_err(io)?;
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size > 0 && size + text.len() as u64 > self.max_bytes {
            self.rotate(&path).map_err(io)?;
        }
        let mut file = open_append(&path).map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(())
    }

    fn rotate(&self, path: &Path) -> std::io::Result<()> {
        let numbered = |n: usize| {
            let mut p = path.as_os_str().to_owned();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        match std::fs::remove_file(numbered(self.keep)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..self.keep).rev() {
            match std::fs::rename(numbered(n), numbered(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(path, numbered(1))
    }

    /// The newest `limit` entries of a workspace, newest first (live file, then `.1`, `.2`…).
    pub fn recent(&self, workspace_id: &str, limit: usize) -> Result<Vec<AuditEntry>, AuditError> {
        let guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(path) = self.file(workspace_id) else {
            let list = guard
                .get(workspace_id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            return Ok(list.iter().rev().take(limit).cloned().collect());
        };
        let mut out = Vec::new();
        for n in 0..=self.keep {
            if out.len() >= limit {
                break;
            }
            let file_path = if n == 0 {
                path.clone()
            } else {
                let mut p = path.as_os_str().to_owned();
                p.push(format!(".{n}"));
                PathBuf::from(p)
            };
            let file = match File::open(&file_path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(AuditError::Io {
                        path: file_path,
                        source,
                    });
                }
            };
            let mut lines: Vec<AuditEntry> = BufReader::new(file)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str(&l).ok())
                .collect();
            lines.reverse();
            out.extend(lines.into_iter().take(limit - out.len()));
        }
        Ok(out)
    }

    /// Time of the newest entry of a workspace (`GET …/config`'s `updatedAt`).
    pub fn last_timestamp(&self, workspace_id: &str) -> Option<u64> {
        self.recent(workspace_id, 1)
            .ok()
            .and_then(|v| v.first().map(|e| e.timestamp))
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// `path` with its longest existing ancestor resolved.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut tail = Vec::new();
    let mut cur = path.to_path_buf();
    loop {
        if let Ok(real) = std::fs::canonicalize(&cur) {
            let mut out = real;
            for part in tail.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (cur.file_name().map(|n| n.to_os_string()), cur.parent()) {
            (Some(name), Some(parent)) => {
                tail.push(name);
                cur = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scope;

    fn actor() -> Actor {
        Actor::Remote {
            client_id: Some("app".into()),
            token_hash: "secret-hash".into(),
            scope: Scope::Collaborator,
        }
    }

    #[test]
    fn newest_first_across_rotation_and_no_token_hash() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::with_limits(Some(dir.path().join("audit")), 600, 50);
        for i in 0..20 {
            let e = AuditEntry::new(
                "ws_1",
                &actor(),
                "skills.upsert",
                format!("s{i}"),
                "x",
                Outcome::Ok,
            );
            audit.append(vec![e]).unwrap();
        }
        assert!(dir.path().join("audit/ws_1.jsonl.1").exists());
        let got = audit.recent("ws_1", 100).unwrap();
        let targets: Vec<_> = got.iter().map(|e| e.target.clone()).collect();
        let want: Vec<_> = (0..20).rev().map(|i| format!("s{i}")).collect();
        assert_eq!(targets, want);
        let text = std::fs::read_to_string(dir.path().join("audit/ws_1.jsonl")).unwrap();
        assert!(!text.contains("secret-hash"));
        assert_eq!(audit.recent("ws_1", 3).unwrap().len(), 3);
        assert_eq!(audit.last_timestamp("ws_1"), Some(got[0].timestamp));
    }

    #[test]
    fn refuses_a_directory_inside_a_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::new(Some(dir.path().join("ws/.data/audit")));
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        assert!(matches!(
            audit.check_outside([ws.as_path()]),
            Err(AuditError::InsideWorkspace { .. })
        ));
        let other = dir.path().join("other");
        assert!(audit.check_outside([other.as_path()]).is_ok());
    }
}
