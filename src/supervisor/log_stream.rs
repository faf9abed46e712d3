//! The unified log stream as a subscriber of the supervisor's events: each [`ServiceEvent`]
//! becomes one record of the [`LogSink`] (which redacts every line before it is written).
//!
//! It is an [`Observer`], not a broadcast reader, so a flood of child output can never make the
//! log skip a line: the child waits on its own pipe instead.

use std::sync::Arc;

use serde_json::{Value, json};

use super::events::{Instance, Observer, ServiceEvent};
use crate::logs::{LogSink, ORCHESTRATOR};

/// Writes every supervisor event to the run's log.
pub struct LogStream(pub Arc<LogSink>);

impl Observer for LogStream {
    fn observe(&self, event: &ServiceEvent) {
        let sink = &self.0;
        match event {
            ServiceEvent::Spawned {
                service,
                instance: Instance::Process { pid },
            } => sink.info(service, "Process spawned", json!({ "pid": pid })),
            ServiceEvent::Spawned {
                service,
                instance: Instance::Container { id, .. },
            } => sink.info(service, "Sandbox started", json!({ "container": id })),
            ServiceEvent::StartFailed { service, error } => {
                sink.error(service, "Failed to start", json!({ "error": error }))
            }
            ServiceEvent::WaitingForHealth { service, url } => {
                sink.info(service, "Waiting for health", json!({ "url": url }))
            }
            ServiceEvent::StillWaiting {
                service,
                last_error,
            } => sink.info(
                service,
                "Still waiting for health",
                json!({ "lastError": last_error }),
            ),
            ServiceEvent::Healthy {
                service,
                url,
                latency,
            } => sink.info(
                service,
                "Healthy",
                json!({ "url": url, "probeMs": latency.as_secs_f64() * 1000.0 }),
            ),
            ServiceEvent::Unhealthy { service, reason } => sink.error(
                service,
                "Did not become healthy",
                json!({ "reason": reason }),
            ),
            ServiceEvent::Log {
                service,
                stream,
                pid,
                line,
            } => sink.child_line(service, *stream, *pid, line),
            ServiceEvent::Exited {
                service,
                status,
                expected: true,
                ..
            } => sink.info(
                service,
                "Process exited",
                json!({ "status": status.to_string() }),
            ),
            ServiceEvent::Exited {
                service,
                status,
                pid,
                expected: false,
            } => sink.error(
                service,
                "Process exited unexpectedly",
                json!({ "status": status.to_string(), "pid": pid }),
            ),
            ServiceEvent::Restarting {
                service,
                attempt,
                max,
                delay,
            } => sink.warn(
                service,
                "Restarting after crash",
                json!({ "attempt": attempt, "maxAttempts": max, "delayMs": delay.as_millis() as u64 }),
            ),
            ServiceEvent::RestartRequested { service } => {
                sink.info(service, "Restart requested", Value::Null)
            }
            ServiceEvent::GaveUp {
                service,
                reason,
                required: false,
            } => sink.warn(
                service,
                "Continuing without this optional service",
                json!({ "reason": reason }),
            ),
            ServiceEvent::GaveUp {
                service,
                reason,
                required: true,
            } => sink.error(service, "Gave up", json!({ "reason": reason })),
            ServiceEvent::ShuttingDown { order } => {
                sink.info(ORCHESTRATOR, "Shutting down", json!({ "children": order }))
            }
            ServiceEvent::StopTimedOut { service, grace } => sink.warn(
                service,
                "Did not stop within the grace period; sending SIGKILL",
                json!({ "graceMs": grace.as_millis() as u64 }),
            ),
            ServiceEvent::StopFailed {
                service,
                container,
                error,
            } => sink.warn(
                service,
                "Could not stop the sandbox",
                json!({ "container": container, "error": error }),
            ),
        }
    }
}
