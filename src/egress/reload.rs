//! Live policy: the policy file is re-read when it changes and the gate's rules are replaced
//! (`PUT /policy`) without restarting the agent. An invalid edit is logged as an error naming
//! `file:line:column` and the fix, and the last valid policy stays in force.
//!
//! The file is polled (every 250 ms: its size, modification time and inode) rather than watched
//! with inotify: editors save by rename, which replaces the inode an inotify watch holds, and a
//! poll needs no extra dependency; a change is in force well within a second.
//!
//! Threat addressed: a policy that silently differs from the file the person edits. Left open:
//! the file is read through symlinks like any config file; it lives on the host, out of the
//! agent's reach (nothing of `~/.config` is mounted into the sandbox).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use openwork_gate::Extras;
use serde_json::{Value, json};

use super::client::GateClient;
use super::session::EGRESS;
use crate::logs::LogSink;

/// What identifies one version of the file (`None`: absent).
fn stamp(path: &std::path::Path) -> Option<(u64, SystemTime, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?, m.ino()))
}

/// Watches one policy file for the run.
pub struct Reloader {
    pub path: PathBuf,
    pub extras: Extras,
    pub client: GateClient,
    /// The last valid policy (also what a restarted gate gets).
    pub policy: Arc<Mutex<Value>>,
    pub sink: Arc<LogSink>,
}

impl Reloader {
    /// Runs until the task is aborted.
    pub async fn run(self) {
        let mut last = stamp(&self.path);
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = stamp(&self.path);
            if now == last {
                continue;
            }
            last = now;
            self.reload().await;
        }
    }

    async fn reload(&self) {
        let file = self.path.display().to_string();
        let policy = match crate::plan::egress::load_policy(&self.path, &self.extras) {
            Ok(p) => p,
            Err(e) => {
                self.sink.error(
                    EGRESS,
                    "The edited sandbox policy is invalid; the last valid policy stays in force",
                    json!({ "file": file, "error": e.to_string() }),
                );
                return;
            }
        };
        let body = policy.to_file_json();
        if let Ok(mut slot) = self.policy.lock() {
            *slot = body.clone();
        }
        match self.client.put_policy(&body).await {
            Ok(()) => self.sink.info(
                EGRESS,
                "Sandbox policy reloaded",
                json!({ "file": file, "rules": policy.rules().len() }),
            ),
            Err(e) => self.sink.error(
                EGRESS,
                "The gate did not take the reloaded policy; it gets it when it reconnects",
                json!({ "file": file, "error": e.to_string() }),
            ),
        }
    }
}
