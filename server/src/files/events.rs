//! File events recorded for changes made through this server (reference §A11.6).
//!
//! Threat: a client that silently misses changes. The original's cursor restarts at 0 after a
//! restart and old events fall out of a 500-entry ring without a trace (weakness W8). Here every
//! answer also carries `epoch` (this server instance) and `resync: true` when the client's
//! `since` is ahead of the cursor (a restart) or older than what is retained; clients that
//! ignore the extra fields see the original shape. Changes made on disk by others are not
//! recorded; clients re-snapshot to see them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::auth::now_ms;

/// Events kept per workspace.
pub const KEPT: usize = 500;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file was written.
    Write,
    /// A path was deleted.
    Delete,
    /// A path was renamed (`to_path` set).
    Rename,
    /// A directory was created.
    Mkdir,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Delete => "delete",
            Self::Rename => "rename",
            Self::Mkdir => "mkdir",
        }
    }
}

#[derive(Debug, Default)]
struct Ring {
    seq: u64,
    events: VecDeque<Value>,
}

/// Per-workspace event rings.
#[derive(Debug)]
pub struct FileEvents {
    epoch: String,
    rings: Mutex<HashMap<String, Ring>>,
}

impl Default for FileEvents {
    fn default() -> Self {
        Self {
            epoch: uuid::Uuid::new_v4().to_string(),
            rings: Mutex::new(HashMap::new()),
        }
    }
}

impl FileEvents {
    /// The instance id carried as `epoch`.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Records an event and returns its sequence number.
    pub fn record(
        &self,
        workspace_id: &str,
        kind: Kind,
        path: &str,
        to_path: Option<&str>,
        revision: Option<&str>,
    ) -> u64 {
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let ring = rings.entry(workspace_id.to_owned()).or_default();
        ring.seq += 1;
        let mut event = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "seq": ring.seq,
            "workspaceId": workspace_id,
            "type": kind.as_str(),
            "path": path,
            "timestamp": now_ms(),
        });
        if let Some(map) = event.as_object_mut() {
            if let Some(to) = to_path {
                map.insert("toPath".into(), json!(to));
            }
            if let Some(rev) = revision {
                map.insert("revision".into(), json!(rev));
            }
        }
        ring.events.push_back(event);
        while ring.events.len() > KEPT {
            ring.events.pop_front();
        }
        ring.seq
    }

    /// The latest sequence number of a workspace (0 if none).
    pub fn cursor(&self, workspace_id: &str) -> u64 {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings.get(workspace_id).map_or(0, |r| r.seq)
    }

    /// `{"items","cursor","epoch","resync"}` for events after `since`.
    pub fn since(&self, workspace_id: &str, since: u64, epoch: Option<&str>) -> Value {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let (items, cursor, oldest) = match rings.get(workspace_id) {
            None => (Vec::new(), 0, 1),
            Some(ring) => {
                let items: Vec<Value> = ring
                    .events
                    .iter()
                    .filter(|e| e["seq"].as_u64().is_some_and(|s| s > since))
                    .cloned()
                    .collect();
                let oldest = ring.events.front().and_then(|e| e["seq"].as_u64());
                (items, ring.seq, oldest.unwrap_or(ring.seq + 1))
            }
        };
        let resync = since > cursor
            || (since > 0 && since + 1 < oldest)
            || epoch.is_some_and(|e| e != self.epoch);
        json!({"items": items, "cursor": cursor, "epoch": self.epoch, "resync": resync})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_and_resync() {
        let ev = FileEvents::default();
        assert_eq!(ev.since("w", 0, None)["cursor"], 0);
        assert_eq!(ev.since("w", 0, None)["resync"], false);
        assert_eq!(ev.since("w", 7, None)["resync"], true);
        for i in 0..(KEPT + 10) {
            ev.record("w", Kind::Write, &format!("f{i}"), None, Some("1:1"));
        }
        let all = ev.since("w", 0, None);
        assert_eq!(all["items"].as_array().unwrap().len(), KEPT);
        assert_eq!(all["items"][0]["seq"], 11);
        assert_eq!(ev.since("w", 5, None)["resync"], true);
        assert_eq!(ev.since("w", 10, None)["resync"], false);
        assert_eq!(ev.since("w", 10, Some("other"))["resync"], true);
        assert_eq!(
            ev.since("w", 509, None)["items"].as_array().unwrap().len(),
            1
        );
    }
}
