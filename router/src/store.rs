//! The router's state in SQLite (WAL): chat sessions, directory bindings, seen messages, poll
//! offsets, per-chat model choices and pairing attempts.
//!
//! Threats handled here: a restart answering a message twice (every inbound message is recorded
//! before it is handled, and Telegram's offset is persisted, so a redelivery is dropped), and
//! pairing-code guessing (failures are counted per chat in a window that survives restarts).
//! The database file is created 0600 in the data dir. The CLI and a running router share it;
//! WAL with a busy timeout lets them write without corrupting each other.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use thiserror::Error;

/// A failed store operation.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot create the data dir {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

/// Which chat a row is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatKey {
    pub channel: String,
    pub identity_id: String,
    pub peer_id: String,
}

impl ChatKey {
    pub fn new(channel: &str, identity_id: &str, peer_id: &str) -> ChatKey {
        ChatKey {
            channel: channel.into(),
            identity_id: identity_id.into(),
            peer_id: peer_id.into(),
        }
    }
}

/// A chat's opencode session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub session_id: String,
    pub directory: String,
}

/// A chat routed to a directory.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    pub channel: String,
    pub identity_id: String,
    pub peer_id: String,
    pub directory: String,
    pub updated_at: i64,
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
  channel TEXT NOT NULL, identity_id TEXT NOT NULL, peer_id TEXT NOT NULL,
  session_id TEXT NOT NULL, directory TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY (channel, identity_id, peer_id));
CREATE INDEX IF NOT EXISTS sessions_by_id ON sessions(session_id);
CREATE TABLE IF NOT EXISTS bindings (
  channel TEXT NOT NULL, identity_id TEXT NOT NULL, peer_id TEXT NOT NULL,
  directory TEXT NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY (channel, identity_id, peer_id));
CREATE TABLE IF NOT EXISTS seen (
  channel TEXT NOT NULL, identity_id TEXT NOT NULL, message_key TEXT NOT NULL,
  at INTEGER NOT NULL, PRIMARY KEY (channel, identity_id, message_key));
CREATE TABLE IF NOT EXISTS offsets (
  channel TEXT NOT NULL, identity_id TEXT NOT NULL, value INTEGER NOT NULL,
  PRIMARY KEY (channel, identity_id));
CREATE TABLE IF NOT EXISTS models (
  channel TEXT NOT NULL, identity_id TEXT NOT NULL, peer_id TEXT NOT NULL,
  model TEXT NOT NULL, PRIMARY KEY (channel, identity_id, peer_id));
CREATE TABLE IF NOT EXISTS pairing_failures (
  channel TEXT NOT NULL, identity_id TEXT NOT NULL, peer_id TEXT NOT NULL,
  failures INTEGER NOT NULL, window_start INTEGER NOT NULL,
  PRIMARY KEY (channel, identity_id, peer_id));
";

/// Failed `/pair` attempts allowed per chat per window.
pub const PAIRING_MAX_FAILURES: i64 = 5;
/// The window of [`PAIRING_MAX_FAILURES`].
pub const PAIRING_WINDOW: Duration = Duration::from_secs(3600);

impl Store {
    /// Opens (creating) the database at `path` in WAL mode.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            crate::config::create_private_dir(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let fresh = !path.exists();
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        if fresh {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&guard)?)
    }

    pub fn session(&self, k: &ChatKey) -> Result<Option<SessionRow>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT session_id, directory FROM sessions WHERE channel=?1 AND identity_id=?2 AND peer_id=?3",
                params![k.channel, k.identity_id, k.peer_id],
                |r| Ok(SessionRow { session_id: r.get(0)?, directory: r.get(1)? }),
            )
            .optional()
        })
    }

    pub fn set_session(&self, k: &ChatKey, row: &SessionRow) -> Result<(), StoreError> {
        let now = now_ms();
        self.with(|c| {
            c.execute(
                "INSERT INTO sessions VALUES (?1,?2,?3,?4,?5,?6,?6)
                 ON CONFLICT(channel, identity_id, peer_id) DO UPDATE SET
                 session_id=excluded.session_id, directory=excluded.directory, updated_at=excluded.updated_at",
                params![k.channel, k.identity_id, k.peer_id, row.session_id, row.directory, now],
            )
            .map(|_| ())
        })
    }

    pub fn clear_session(&self, k: &ChatKey) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM sessions WHERE channel=?1 AND identity_id=?2 AND peer_id=?3",
                params![k.channel, k.identity_id, k.peer_id],
            )
            .map(|_| ())
        })
    }

    /// The chat that owns an opencode session, if it is one of ours.
    pub fn chat_of_session(&self, session_id: &str) -> Result<Option<ChatKey>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT channel, identity_id, peer_id FROM sessions WHERE session_id=?1",
                params![session_id],
                |r| {
                    Ok(ChatKey {
                        channel: r.get(0)?,
                        identity_id: r.get(1)?,
                        peer_id: r.get(2)?,
                    })
                },
            )
            .optional()
        })
    }

    pub fn binding(&self, k: &ChatKey) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT directory FROM bindings WHERE channel=?1 AND identity_id=?2 AND peer_id=?3",
                params![k.channel, k.identity_id, k.peer_id],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Binds a chat to a directory; a changed directory drops the chat's session.
    pub fn set_binding(&self, k: &ChatKey, directory: &str) -> Result<(), StoreError> {
        let now = now_ms();
        self.with(|c| {
            c.execute(
                "DELETE FROM sessions WHERE channel=?1 AND identity_id=?2 AND peer_id=?3 AND directory<>?4",
                params![k.channel, k.identity_id, k.peer_id, directory],
            )?;
            c.execute(
                "INSERT INTO bindings VALUES (?1,?2,?3,?4,?5)
                 ON CONFLICT(channel, identity_id, peer_id) DO UPDATE SET
                 directory=excluded.directory, updated_at=excluded.updated_at",
                params![k.channel, k.identity_id, k.peer_id, directory, now],
            )
            .map(|_| ())
        })
    }

    /// Removes a binding and the chat's session; true when a binding was there.
    pub fn clear_binding(&self, k: &ChatKey) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM sessions WHERE channel=?1 AND identity_id=?2 AND peer_id=?3",
                params![k.channel, k.identity_id, k.peer_id],
            )?;
            c.execute(
                "DELETE FROM bindings WHERE channel=?1 AND identity_id=?2 AND peer_id=?3",
                params![k.channel, k.identity_id, k.peer_id],
            )
            .map(|n| n > 0)
        })
    }

    pub fn bindings(
        &self,
        channel: Option<&str>,
        identity: Option<&str>,
    ) -> Result<Vec<Binding>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT channel, identity_id, peer_id, directory, updated_at FROM bindings
                 WHERE (?1 IS NULL OR channel=?1) AND (?2 IS NULL OR identity_id=?2)
                 ORDER BY channel, identity_id, peer_id",
            )?;
            let rows = stmt.query_map(params![channel, identity], |r| {
                Ok(Binding {
                    channel: r.get(0)?,
                    identity_id: r.get(1)?,
                    peer_id: r.get(2)?,
                    directory: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Records an inbound message; false when it was already seen (a redelivery).
    pub fn first_sight(
        &self,
        channel: &str,
        identity: &str,
        message_key: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        self.with(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO seen VALUES (?1,?2,?3,?4)",
                params![channel, identity, message_key, now],
            )?;
            // Keep a week of history: enough for any redelivery.
            c.execute(
                "DELETE FROM seen WHERE at < ?1",
                params![now - 7 * 24 * 3600 * 1000],
            )?;
            Ok(n == 1)
        })
    }

    pub fn offset(&self, channel: &str, identity: &str) -> Result<Option<i64>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT value FROM offsets WHERE channel=?1 AND identity_id=?2",
                params![channel, identity],
                |r| r.get(0),
            )
            .optional()
        })
    }

    pub fn set_offset(&self, channel: &str, identity: &str, value: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO offsets VALUES (?1,?2,?3) ON CONFLICT(channel, identity_id)
                 DO UPDATE SET value=excluded.value",
                params![channel, identity, value],
            )
            .map(|_| ())
        })
    }

    pub fn model(&self, k: &ChatKey) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT model FROM models WHERE channel=?1 AND identity_id=?2 AND peer_id=?3",
                params![k.channel, k.identity_id, k.peer_id],
                |r| r.get(0),
            )
            .optional()
        })
    }

    pub fn set_model(&self, k: &ChatKey, model: Option<&str>) -> Result<(), StoreError> {
        self.with(|c| {
            match model {
                Some(m) => c.execute(
                    "INSERT INTO models VALUES (?1,?2,?3,?4) ON CONFLICT(channel, identity_id, peer_id)
                     DO UPDATE SET model=excluded.model",
                    params![k.channel, k.identity_id, k.peer_id, m],
                ),
                None => c.execute(
                    "DELETE FROM models WHERE channel=?1 AND identity_id=?2 AND peer_id=?3",
                    params![k.channel, k.identity_id, k.peer_id],
                ),
            }
            .map(|_| ())
        })
    }

    /// Whether this chat may try a pairing code now (fewer than the allowed failures in the
    /// current window).
    pub fn pairing_allowed(&self, k: &ChatKey) -> Result<bool, StoreError> {
        let since = now_ms() - PAIRING_WINDOW.as_millis() as i64;
        self.with(|c| {
            let failures: Option<i64> = c
                .query_row(
                    "SELECT failures FROM pairing_failures WHERE channel=?1 AND identity_id=?2
                     AND peer_id=?3 AND window_start >= ?4",
                    params![k.channel, k.identity_id, k.peer_id, since],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(failures.unwrap_or(0) < PAIRING_MAX_FAILURES)
        })
    }

    /// Counts a failed pairing attempt.
    pub fn pairing_failure(&self, k: &ChatKey) -> Result<(), StoreError> {
        let now = now_ms();
        let since = now - PAIRING_WINDOW.as_millis() as i64;
        self.with(|c| {
            c.execute(
                "INSERT INTO pairing_failures VALUES (?1,?2,?3,1,?4)
                 ON CONFLICT(channel, identity_id, peer_id) DO UPDATE SET
                 failures = CASE WHEN window_start < ?5 THEN 1 ELSE failures + 1 END,
                 window_start = CASE WHEN window_start < ?5 THEN ?4 ELSE window_start END",
                params![k.channel, k.identity_id, k.peer_id, now, since],
            )
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_bindings_and_dedupe_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/r.db");
        let k = ChatKey::new("telegram", "a", "42");
        {
            let s = Store::open(&path).unwrap();
            s.set_binding(&k, "/ws").unwrap();
            s.set_session(
                &k,
                &SessionRow {
                    session_id: "ses_1".into(),
                    directory: "/ws".into(),
                },
            )
            .unwrap();
            assert!(s.first_sight("telegram", "a", "7").unwrap());
            s.set_offset("telegram", "a", 8).unwrap();
        }
        let s = Store::open(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert!(!s.first_sight("telegram", "a", "7").unwrap());
        assert_eq!(s.offset("telegram", "a").unwrap(), Some(8));
        assert_eq!(s.session(&k).unwrap().unwrap().session_id, "ses_1");
        assert_eq!(s.chat_of_session("ses_1").unwrap(), Some(k.clone()));
        // Re-binding elsewhere drops the session.
        s.set_binding(&k, "/ws/sub").unwrap();
        assert!(s.session(&k).unwrap().is_none());
        assert_eq!(s.bindings(Some("telegram"), None).unwrap().len(), 1);
        assert!(s.clear_binding(&k).unwrap());
        assert!(s.bindings(None, None).unwrap().is_empty());
    }

    #[test]
    fn pairing_failures_are_limited() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("r.db")).unwrap();
        let k = ChatKey::new("telegram", "a", "1");
        for _ in 0..PAIRING_MAX_FAILURES {
            assert!(s.pairing_allowed(&k).unwrap());
            s.pairing_failure(&k).unwrap();
        }
        assert!(!s.pairing_allowed(&k).unwrap());
    }
}
