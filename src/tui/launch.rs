//! The dashboard beside a run: the task that draws it, the channel that tells it the run is
//! ready, and the cancel that stops it before anything else is printed.
//!
//! Threat addressed: a run that ends (an error, a signal, a required service giving up) while
//! the dashboard still owns the terminal, printing its last words into the alternate screen.
//! [`DashboardTask::finish`] cancels the dashboard and waits until the terminal is restored;
//! the run calls it on every way out before it prints.

use std::sync::Arc;

use tokio::sync::watch;

use super::app::Ready;
use crate::logs::LogSink;
use crate::plan::RunPlan;
use crate::services::{Ports, openwork_local_url};
use crate::supervisor::Supervisor;

/// The dashboard running beside the supervisor (or nothing, in log-only mode).
pub struct DashboardTask {
    task: Option<tokio::task::JoinHandle<super::Outcome>>,
    cancel: tokio_util::sync::CancellationToken,
    ready: watch::Sender<Option<Ready>>,
}

impl DashboardTask {
    pub fn start(
        terminal: Option<super::TerminalGuard>,
        plan: &RunPlan,
        supervisor: &Supervisor,
        sink: &Arc<LogSink>,
    ) -> DashboardTask {
        let cancel = tokio_util::sync::CancellationToken::new();
        let (ready, ready_rx) = watch::channel(None);
        let task = terminal.map(|guard| {
            // The orchestrator's own records (port chosen, warnings, shutting down) join the
            // log panel; a full channel drops a record rather than wait.
            let (tap, orchestrator) = tokio::sync::mpsc::channel(256);
            sink.set_tap(Box::new(move |level, text| {
                let _ = tap.try_send((level, text));
            }));
            let dashboard = super::Dashboard {
                orchestrator,
                run: run_info(plan),
                bus: supervisor.events().clone(),
                restarter: supervisor.restarter(),
                sink: sink.clone(),
                ready: ready_rx,
                cancel: cancel.clone(),
                started: std::time::Instant::now(),
            };
            tokio::spawn(super::app::run(guard, dashboard))
        });
        DashboardTask {
            task,
            cancel,
            ready,
        }
    }

    /// Hands the dashboard what the ready run knows: URLs, tokens, ports, the approvals client.
    pub fn ready(&self, ready: &crate::output::Ready<'_>, owner_token: &str, ports: &Ports) {
        if self.task.is_none() {
            return;
        }
        let connect = crate::tui::ConnectInfo {
            openwork_url: ready.openwork_base_url(),
            connect_url: ready.openwork_connect_url(),
            opencode_url: ready.opencode_url(),
            attach_raw: ready.attach_command(true),
            attach_masked: format!(
                "opencode attach {} --dir {} (with opencode's credentials: v shows, c copies)",
                ready.opencode_url(),
                ready.plan.workspace
            ),
            tokens: vec![
                ("collaborator", ready.plan.credentials.client_token.clone()),
                ("owner", owner_token.to_string()),
                ("host", ready.plan.credentials.host_token.clone()),
            ],
            ports: vec![
                ("opencode", ports.opencode),
                ("openwork-server", ports.openwork),
                ("opencode-router", ports.router_health),
            ],
        };
        let remote = crate::tui::remote::Remote::new(
            openwork_local_url(ports),
            ready.plan.credentials.host_token.clone(),
            ready.opencode_url(),
            &ready.plan.credentials.opencode_username,
            &ready.plan.credentials.opencode_password,
        );
        let _ = self.ready.send(Some(Ready { connect, remote }));
    }

    pub fn active(&self) -> bool {
        self.task.is_some()
    }

    /// Resolves when the person quits the dashboard (never in log-only mode).
    pub async fn quit(&mut self) -> super::Outcome {
        match &mut self.task {
            Some(task) => {
                let outcome = task.await.unwrap_or(super::Outcome::Quit);
                self.task = None;
                outcome
            }
            None => std::future::pending().await,
        }
    }

    /// Stops the dashboard (if still running) and waits until the terminal is restored.
    pub async fn finish(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        // Belt and braces: a dashboard task that panicked restored through its hook already.
        super::terminal::restore();
    }
}

/// The header facts of the dashboard.
pub fn run_info(plan: &RunPlan) -> super::RunInfo {
    let mut expected = vec![("opencode", false), ("openwork-server", false)];
    if plan.router_enabled {
        expected.push(("opencode-router", !plan.router_required));
    }
    super::RunInfo {
        workspace: plan.workspace.to_string(),
        run_id: plan.run_id.clone(),
        sandbox: match &plan.sandbox {
            Some(sb) => format!("{:?}", sb.kind).to_lowercase(),
            None => "none".into(),
        },
        container: plan
            .sandbox
            .as_ref()
            .map(|_| openwork_backends::container_name(&plan.run_id)),
        version: env!("CARGO_PKG_VERSION"),
        color: plan.color,
        expected,
    }
}
