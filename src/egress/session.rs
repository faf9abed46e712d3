//! One gate, kept configured and listened to for the whole run: wait for `/health`, subscribe
//! to `/audit` first, then send the credentials and the current policy, then read audit records
//! until the stream ends (the gate stopped or was replaced after a crash), and start over.
//!
//! Threat addressed: a decision nobody recorded, and a gate running without the host's policy or
//! keys. The audit stream is opened before the gate is configured (records emitted while no one
//! listens are dropped by the gate), every record is appended to `<run-dir>/egress-audit.jsonl`
//! on the host (mode 0600, never inside a container), and a gate that comes back (the sandbox
//! restarted) is configured again before anything else.
//!
//! Left open: the audit stream ends with the orchestrator, so a detached run is not audited
//! after `--detach` returns.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::client::GateClient;
use crate::logs::LogSink;

/// Component name of the egress lines in the unified log.
pub const EGRESS: &str = "openwork-egress";

/// What a session needs, shared with the policy watcher.
pub struct Session {
    pub client: GateClient,
    /// The body of `PUT /credentials` (holds the keys).
    pub credentials: Value,
    /// The last valid policy, as `PUT /policy` takes it (the watcher replaces it).
    pub policy: Arc<Mutex<Value>>,
    pub audit_path: camino::Utf8PathBuf,
    /// The policy file, named in denial hints.
    pub policy_file: String,
    pub sink: Arc<LogSink>,
    /// `true` once the gate holds the credentials and the policy (again after a restart).
    pub configured: watch::Sender<bool>,
}

impl Session {
    /// Runs until the task is aborted.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if !self.client.healthy().await {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
            backoff = Duration::from_millis(50);
            let audit = match self.client.audit().await {
                Ok(r) => r,
                Err(e) => {
                    self.sink.warn(
                        EGRESS,
                        "Cannot subscribe to the gate's audit stream; retrying",
                        json!({ "error": e.to_string() }),
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if let Err(e) = self.configure().await {
                self.sink.error(
                    EGRESS,
                    "Cannot configure the egress gate; retrying",
                    json!({ "error": e.to_string() }),
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            self.configured.send_replace(true);
            self.read(audit).await;
            self.configured.send_replace(false);
        }
    }

    async fn configure(&self) -> Result<(), super::client::ControlError> {
        self.client.put_credentials(&self.credentials).await?;
        let policy = self.policy.lock().map(|p| p.clone()).unwrap_or(Value::Null);
        self.client.put_policy(&policy).await
    }

    async fn read(&self, audit: reqwest::Response) {
        let mut file = match open_append(&self.audit_path) {
            Ok(f) => Some(f),
            Err(e) => {
                self.sink.error(
                    EGRESS,
                    "Cannot write the egress audit file; records go to the log only",
                    json!({ "path": self.audit_path, "error": e.to_string() }),
                );
                None
            }
        };
        let mut stream = audit.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line).trim().to_string();
                if text.is_empty() {
                    continue;
                }
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{text}");
                }
                self.log(&text);
            }
        }
    }

    fn log(&self, line: &str) {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            return;
        };
        if let Some(n) = record.get("lagged") {
            self.sink.warn(
                EGRESS,
                "Egress audit records were dropped (the host fell behind)",
                json!({ "dropped": n }),
            );
            return;
        }
        if record["decision"] != "deny" {
            return;
        }
        let hint = match record["rule"].as_str() {
            Some(rule) => format!(
                "add \"{}\" to \"allow\" in {} (or run with --sandbox-allow {})",
                rule.split(' ').next().unwrap_or(rule),
                self.policy_file,
                rule.split(' ').next().unwrap_or(rule)
            ),
            None => "no policy entry can allow this destination".to_string(),
        };
        self.sink.warn(
            EGRESS,
            "Egress denied",
            json!({
                "host": record["host"],
                "port": record["port"],
                "kind": record["kind"],
                "reason": record["reason"],
                "rule": record["rule"],
                "fix": hint,
            }),
        );
    }
}

/// Opens (creating with mode 0600) the audit file for appending.
fn open_append(path: &camino::Utf8Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}
