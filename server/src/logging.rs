//! Log lines on stdout, plain or as OpenTelemetry-style JSON records
//! (reference §A14).
//!
//! This is a small purpose-built logger rather than a `tracing` subscriber:
//! the record shape is fixed by the orchestrator (it passes a child's line
//! through only if it is JSON with string `timeUnixNano` and `severityText`),
//! and each server owns its logger, so several servers in one test process
//! log independently and tests can capture lines.
//!
//! Threat handled: secrets in logs. Callers log only method, path (never the
//! query string), status and duration for requests; no header is ever logged.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use crate::config::LogFormat;

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Normal operation.
    Info,
    /// Something a person may want to look at (4xx responses).
    Warn,
    /// A failure (5xx responses).
    Error,
}

impl Level {
    fn text(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }

    fn number(self) -> u8 {
        match self {
            Self::Info => 9,
            Self::Warn => 13,
            Self::Error => 17,
        }
    }
}

/// Where lines go.
#[derive(Debug, Clone)]
pub enum LogSink {
    /// The process's stdout.
    Stdout,
    /// Kept in memory (tests).
    Capture(Arc<Mutex<Vec<String>>>),
}

/// Writes log lines in the configured format. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Logger {
    format: LogFormat,
    sink: LogSink,
    run_id: String,
    host_name: Option<String>,
}

impl Logger {
    /// A logger for this format and run id writing to `sink`.
    pub fn new(format: LogFormat, run_id: impl Into<String>, sink: LogSink) -> Self {
        let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty());
        Self {
            format,
            sink,
            run_id: run_id.into(),
            host_name,
        }
    }

    /// A logger that keeps lines in memory, and the handle to read them.
    pub fn capture(
        format: LogFormat,
        run_id: impl Into<String>,
    ) -> (Self, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (
            Self::new(format, run_id, LogSink::Capture(lines.clone())),
            lines,
        )
    }

    /// Logs an INFO message without attributes.
    pub fn info(&self, body: &str) {
        self.log(Level::Info, body, Map::new());
    }

    /// Logs a WARN message without attributes.
    pub fn warn(&self, body: &str) {
        self.log(Level::Warn, body, Map::new());
    }

    /// Logs one record.
    pub fn log(&self, level: Level, body: &str, attributes: Map<String, Value>) {
        let line = match self.format {
            LogFormat::Pretty => body.to_owned(),
            LogFormat::Json => self.json_record(level, body, attributes).to_string(),
        };
        self.write_line(line);
    }

    /// The JSON record for a message (reference §A14).
    pub fn json_record(&self, level: Level, body: &str, attributes: Map<String, Value>) -> Value {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut attrs = Map::new();
        attrs.insert("run.id".into(), json!(self.run_id));
        attrs.insert("process.pid".into(), json!(std::process::id()));
        attrs.insert("service.component".into(), json!("openwork-server"));
        attrs.extend(attributes);
        let mut resource = Map::new();
        resource.insert("service.name".into(), json!("openwork-server"));
        resource.insert("service.version".into(), json!(crate::VERSION));
        resource.insert("service.instance.id".into(), json!(self.run_id));
        if let Some(host) = &self.host_name {
            resource.insert("host.name".into(), json!(host));
        }
        json!({
            "timeUnixNano": nanos.to_string(),
            "severityText": level.text(),
            "severityNumber": level.number(),
            "body": body,
            "attributes": attrs,
            "resource": resource,
        })
    }

    fn write_line(&self, line: String) {
        match &self.sink {
            LogSink::Stdout => {
                let mut out = std::io::stdout().lock();
                // A closed stdout must not take the server down.
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            LogSink::Capture(lines) => {
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_records_have_otel_fields() {
        let (logger, lines) = Logger::capture(LogFormat::Json, "run-1");
        let mut attrs = Map::new();
        attrs.insert("status".into(), json!(404));
        logger.log(Level::Warn, "GET /x 404 1ms", attrs);
        let line = lines.lock().unwrap()[0].clone();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(v["timeUnixNano"].is_string());
        assert_eq!(v["severityText"], "WARN");
        assert_eq!(v["severityNumber"], 13);
        assert_eq!(v["body"], "GET /x 404 1ms");
        assert_eq!(v["attributes"]["run.id"], "run-1");
        assert_eq!(v["attributes"]["service.component"], "openwork-server");
        assert_eq!(v["attributes"]["status"], 404);
        assert_eq!(v["resource"]["service.name"], "openwork-server");
        assert_eq!(v["resource"]["service.instance.id"], "run-1");
    }

    #[test]
    fn pretty_is_the_plain_body() {
        let (logger, lines) = Logger::capture(LogFormat::Pretty, "r");
        logger.info("hello");
        assert_eq!(lines.lock().unwrap().as_slice(), ["hello"]);
    }
}
