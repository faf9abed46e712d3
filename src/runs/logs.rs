//! `openwork logs [RUN] [-f] [--service NAME] [--json]`: the output of a detached run's services.
//!
//! Host processes of a detached run write `<run-dir>/<service>.log`; a sandboxed service's output
//! is read from its engine (Docker's API, Apple's `container logs`). Every line goes through the
//! same writer as the live log stream ([`crate::logs::LogSink`]): pretty `[service] line`, or with
//! `--json` one OpenTelemetry-shaped object per line, and redacted the same way, knowing the run's
//! secrets from its credentials file. `-f` follows until interrupted, or until the run is stopped
//! (its record disappears).
//!
//! Threats addressed: secrets in logs (a service that prints a token or the opencode password is
//! redacted before the line is written) and reading outside the run (log files are opened only
//! as `<run-dir>/<service>.log`, never through a symlink, whatever path the record holds).
//!
//! Left open: log rotation is not followed.

use std::io::{Read, Seek};
use std::sync::Arc;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::signal::unix::{SignalKind, signal};

use super::record::{RunKind, RunRecord, STATE_FILE, ServiceRecord};
use super::{DataDirArgs, RunsError, list, resolve};
use crate::cli::LogFormat;
use crate::logs::{LogSink, Output, Stream};

/// How often a followed log file is read for new lines.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The run: its id, a unique prefix of it, or its workspace path (optional with one run).
    #[arg(value_name = "RUN")]
    pub run: Option<String>,
    /// Keep printing new lines until interrupted (or the run is stopped).
    #[arg(short, long)]
    pub follow: bool,
    /// Only this service (opencode, openwork-server, opencode-router).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// One OpenTelemetry-shaped JSON object per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// Every secret value in the credentials document (strings under token/password/username keys).
pub fn secrets_of(doc: &Value) -> Vec<String> {
    fn walk(v: &Value, sensitive: bool, out: &mut Vec<String>) {
        match v {
            Value::String(s) if sensitive => out.push(s.clone()),
            Value::Object(map) => {
                for (k, x) in map {
                    let k = k.to_ascii_lowercase();
                    let s = ["token", "password", "username", "secret"]
                        .iter()
                        .any(|w| k.contains(w));
                    walk(x, s, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, sensitive, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, false, &mut out);
    out
}

pub async fn run(args: &LogsArgs) -> Result<u8, RunsError> {
    let runs_dir = args.data.runs_dir()?;
    let listing = list(&runs_dir)?;
    let entry = resolve(&listing.entries, args.run.as_deref(), &runs_dir)?;
    let record = entry.record.clone().map_err(|why| RunsError::Io {
        path: entry.dir.join(STATE_FILE),
        message: why,
    })?;
    if record.kind == RunKind::Foreground {
        return Err(RunsError::NoLogs {
            run: record.run_id.clone(),
        });
    }
    let services: Vec<ServiceRecord> = match &args.service {
        None => record.services.clone(),
        Some(name) => {
            let found: Vec<ServiceRecord> = record
                .services
                .iter()
                .filter(|s| &s.name == name)
                .cloned()
                .collect();
            if found.is_empty() {
                return Err(RunsError::UnknownService {
                    run: record.run_id.clone(),
                    service: name.clone(),
                    known: record.services.iter().map(|s| s.name.clone()).collect(),
                });
            }
            found
        }
    };
    let secrets = super::record::read_credentials(&entry.dir)
        .map(|doc| secrets_of(&doc))
        .unwrap_or_default();
    let format = if args.json {
        LogFormat::Json
    } else {
        LogFormat::Pretty
    };
    let sink = Arc::new(LogSink::new(
        format,
        false,
        false,
        record.run_id.clone(),
        Output::Stdout,
        secrets,
    ));
    if !args.follow {
        for service in &services {
            print_service(&record, &entry.dir, service, &sink, false).await?;
        }
        return Ok(0);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for service in services {
        let (record, dir, sink) = (record.clone(), entry.dir.clone(), sink.clone());
        tasks.spawn(async move { print_service(&record, &dir, &service, &sink, true).await });
    }
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| io_err(&entry.dir, e))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| io_err(&entry.dir, e))?;
    let state = entry.dir.join(STATE_FILE);
    let gone = async {
        while state.exists() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
        _ = gone => {}
        _ = async { while tasks.join_next().await.is_some() {} } => {}
    }
    Ok(0)
}

fn io_err(path: &Utf8Path, e: std::io::Error) -> RunsError {
    RunsError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Prints one service's output (and with `follow`, what it writes next).
async fn print_service(
    record: &RunRecord,
    dir: &Utf8Path,
    service: &ServiceRecord,
    sink: &LogSink,
    follow: bool,
) -> Result<(), RunsError> {
    let name = service.name.as_str();
    if let (Some(container), Some(engine)) = (&service.container, record.engine()) {
        let mut lines = openwork_backends::control::logs(&engine, container, follow).await?;
        while let Some(line) = lines.next().await {
            let stream = match line.stream {
                openwork_backends::LogStream::Stdout => Stream::Stdout,
                openwork_backends::LogStream::Stderr => Stream::Stderr,
            };
            sink.child_line(name, stream, None, &line.text);
        }
        return Ok(());
    }
    if name.contains('/') || name.starts_with('.') {
        return Ok(());
    }
    let path = dir.join(format!("{name}.log"));
    follow_file(&path, name, service.pid, sink, follow).await
}

/// Prints the lines of `path`; with `follow`, keeps reading what is appended.
async fn follow_file(
    path: &Utf8PathBuf,
    name: &str,
    pid: Option<u32>,
    sink: &LogSink,
    follow: bool,
) -> Result<(), RunsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => return Ok(()),
        Err(e) => return Err(io_err(path, e)),
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut chunk).map_err(|e| io_err(path, e))?;
        if n > 0 {
            pending.extend_from_slice(&chunk[..n]);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                sink.child_line(name, Stream::Stdout, pid, &String::from_utf8_lossy(&line));
            }
            continue;
        }
        if !follow {
            if !pending.is_empty() {
                sink.child_line(
                    name,
                    Stream::Stdout,
                    pid,
                    &String::from_utf8_lossy(&pending),
                );
            }
            return Ok(());
        }
        // A truncated file starts over (not rotation-aware, but never stuck past the end).
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let pos = file.stream_position().unwrap_or(0);
        if len < pos {
            let _ = file.seek(std::io::SeekFrom::Start(0));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_under_sensitive_keys_only() {
        let doc = serde_json::json!({
            "runId": "r",
            "opencode": { "username": "u-123456", "password": "p-123456", "baseUrl": "http://x" },
            "openwork": { "token": "t-123456", "hostToken": "h-123456", "ownerToken": "o-123456" },
        });
        let mut s = secrets_of(&doc);
        s.sort();
        assert_eq!(
            s,
            vec!["h-123456", "o-123456", "p-123456", "t-123456", "u-123456"]
        );
    }
}
