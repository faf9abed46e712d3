//! Client commands that drive a running openwork-server over HTTP: `approvals`, `status` and
//! `files`. Each prints a readable summary, or the server's JSON with `--json`; HTTP errors show
//! the server's status and message, and every failure exits non-zero.

pub mod approvals;
pub mod files;
pub mod status;

use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

/// A client command failure.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("HTTP {status}{}", message.as_deref().map(|m| format!(" {m}")).unwrap_or_default())]
    Http {
        status: u16,
        message: Option<String>,
        body: Value,
    },
    #[error("the server answered with invalid JSON: {0}")]
    BadJson(String),
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    /// Some items of a batch failed (already printed).
    #[error("{0}")]
    Partial(String),
}

/// Base URL from the flag/env value, with a clear error when missing or malformed.
pub fn base_url(given: Option<&str>, what: &str) -> Result<String, ClientError> {
    let url = given
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            ClientError::Usage(format!(
                "{what} is required (pass --openwork-url URL or set OPENWORK_URL)"
            ))
        })?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ClientError::Usage(format!(
            "--openwork-url {url} must start with http:// or https://"
        )));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The HTTP client of the commands (no proxy for loopback URLs, bounded waits).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Sends `req` and returns the JSON body of a 2xx answer, or the server's error.
pub async fn send(url: &str, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
    let resp = req.send().await.map_err(|e| ClientError::Unreachable {
        url: url.to_string(),
        reason: crate::supervisor::health::root_cause(&e),
    })?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| ClientError::Unreachable {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let body: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) if !status.is_success() => Value::String(text.clone()),
            Err(e) => return Err(ClientError::BadJson(e.to_string())),
        }
    };
    if !status.is_success() {
        let message = body["message"]
            .as_str()
            .or_else(|| body["error"].as_str())
            .or_else(|| body.as_str())
            .map(|s| s.chars().take(300).collect());
        return Err(ClientError::Http {
            status: status.as_u16(),
            message,
            body,
        });
    }
    Ok(body)
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(_) => println!("{value}"),
    }
}

/// Reports `err` the way the original's clients expect: `{"ok":false,"error":…}` on stdout with
/// `--json`, the message on stderr otherwise. Returns the exit code.
pub fn report(err: &ClientError, json: bool) -> u8 {
    if json {
        print_json(&serde_json::json!({ "ok": false, "error": err.to_string() }));
    } else {
        eprintln!("openwork: {err}");
    }
    match err {
        ClientError::Usage(_) => 2,
        _ => 1,
    }
}

/// A column-aligned table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        out.trim_end().to_string()
    };
    let mut s = line(headers.iter().map(|h| h.to_string()).collect());
    s.push('\n');
    for row in rows {
        s.push_str(&line(row.clone()));
        s.push('\n');
    }
    s
}

/// `value` as display text (strings without quotes, null as `-`).
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(base_url(Some("http://h:1/"), "x").unwrap(), "http://h:1");
        assert!(matches!(base_url(None, "x"), Err(ClientError::Usage(_))));
        assert!(
            base_url(Some("h:1"), "x")
                .unwrap_err()
                .to_string()
                .contains("h:1")
        );
    }

    #[test]
    fn http_errors_show_status_and_message() {
        let e = ClientError::Http {
            status: 409,
            message: Some("boom".into()),
            body: Value::Null,
        };
        assert_eq!(e.to_string(), "HTTP 409 boom");
    }
}
