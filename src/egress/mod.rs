//! The host side of the sandbox's egress gate, for the length of a run: a [`session`] keeps the
//! gate configured (credentials, policy) and records its audit stream; a [`reload`]er applies
//! edits of the policy file live. The gate's control API is reached on its 127.0.0.1-published
//! port through [`client`].
//!
//! Threat addressed: the provider keys and the gate's token must reach the gate from the host
//! side only. They travel in `PUT /credentials` over loopback to the gate's control port, which
//! only the host and the gate's own container see; the agent's container holds placeholders.
//! Both values are added to the log sink's redactor before anything is started.
//!
//! Left open: the tasks end with the orchestrator (a detached run keeps its last policy and is
//! not audited afterwards).

pub mod client;
pub mod reload;
pub mod session;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::logs::LogSink;
use crate::plan::egress::GatePlan;

/// File name of the audit log in the run's directory.
pub const AUDIT_FILE: &str = "egress-audit.jsonl";

/// What the run's output says about its egress (`sandbox.egress` in `--json`).
#[derive(Debug, Clone)]
pub struct EgressReport {
    /// `gate`, `open` or `not-enforced`.
    pub mode: &'static str,
    pub policy_file: Option<String>,
    pub audit_file: Option<String>,
    pub injected_providers: Vec<String>,
}

impl EgressReport {
    pub fn json(&self) -> Value {
        json!({
            "mode": self.mode,
            "policyFile": self.policy_file,
            "auditFile": self.audit_file,
            "injectedProviders": self.injected_providers,
        })
    }

    /// The ready block's line (loud when egress is unrestricted).
    pub fn line(&self) -> String {
        match self.mode {
            "gate" => format!(
                "Egress: gate (policy {})\n",
                self.policy_file.as_deref().unwrap_or("default")
            ),
            "open" => "Egress: UNRESTRICTED (--sandbox-network open)\n".into(),
            _ => "Egress: NOT ENFORCED (Apple container has no egress fence yet)\n".into(),
        }
    }
}

/// The running host side of a gate; its tasks stop when this is dropped.
pub struct Egress {
    configured: watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Egress {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Why the gate could not be made ready.
#[derive(Debug, thiserror::Error)]
#[error(
    "the egress gate was not configured within {seconds}s (credentials and policy); see the log above"
)]
pub struct NotConfigured {
    pub seconds: u64,
}

impl Egress {
    /// Starts the session and the policy watcher against the gate's control API at
    /// `http://127.0.0.1:<control_port>`.
    pub fn start(
        gate: &GatePlan,
        control_port: u16,
        audit_path: camino::Utf8PathBuf,
        sink: Arc<LogSink>,
    ) -> Egress {
        let client = client::GateClient::new(
            format!("http://127.0.0.1:{control_port}"),
            gate.token.clone(),
        );
        let policy = Arc::new(Mutex::new(gate.policy.to_file_json()));
        let (tx, rx) = watch::channel(false);
        let session = session::Session {
            client: client.clone(),
            credentials: gate.keys.put_body(),
            policy: policy.clone(),
            audit_path,
            policy_file: gate.policy_path.display().to_string(),
            sink: sink.clone(),
            configured: tx,
        };
        let reloader = reload::Reloader {
            path: gate.policy_path.clone(),
            extras: gate.extras.clone(),
            client,
            policy,
            sink,
        };
        Egress {
            configured: rx,
            tasks: vec![tokio::spawn(session.run()), tokio::spawn(reloader.run())],
        }
    }

    /// Waits until the gate holds the credentials and the policy.
    pub async fn configured(&self, within: Duration) -> Result<(), NotConfigured> {
        let mut rx = self.configured.clone();
        tokio::time::timeout(within, rx.wait_for(|c| *c))
            .await
            .ok()
            .and_then(|r| r.ok())
            .map(|_| ())
            .ok_or(NotConfigured {
                seconds: within.as_secs(),
            })
    }
}
