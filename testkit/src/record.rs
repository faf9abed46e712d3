//! What arrived at the stand-in: every request, in order, so tests can check what a client sent
//! (the `Authorization` an egress gate injected, the tools opencode offered, the messages).
//!
//! The log is kept in memory for the stand-in's lifetime (tests are short); `DELETE
//! /__standin/requests` or [`crate::StandIn::clear_requests`] empties it. Requests to the
//! stand-in's own `/__standin/…` endpoints are not recorded, so reading the log does not change it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One request as it arrived.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Position in the log, from 0.
    pub seq: usize,
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Header names in lower case; repeated headers joined with `, `. Nothing is redacted: the
    /// point is to see the credential that arrived.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON; a body that is not JSON is kept as a JSON string (lossy UTF-8);
    /// an empty body is `null`.
    pub body: Value,
    /// For chat completions: the script step the request was answered with (`None` for an
    /// untooled request or another path).
    pub step: Option<usize>,
}

impl RecordedRequest {
    /// A header's value (`name` in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The `Authorization` header.
    pub fn authorization(&self) -> Option<&str> {
        self.header("authorization")
    }

    /// Whether this is a chat-completions call (`POST /v1/chat/completions`).
    pub fn is_chat(&self) -> bool {
        self.method == "POST" && self.path == crate::server::CHAT_PATH
    }

    /// The names of the tools a chat-completions request offered.
    pub fn tool_names(&self) -> Vec<&str> {
        self.body
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|tool| tool.pointer("/function/name").and_then(Value::as_str))
            .collect()
    }

    /// A tool's declared JSON-schema parameters (`tools[].function.parameters`).
    pub fn tool_parameters(&self, name: &str) -> Option<&Value> {
        self.body
            .get("tools")
            .and_then(Value::as_array)?
            .iter()
            .find(|tool| tool.pointer("/function/name").and_then(Value::as_str) == Some(name))?
            .pointer("/function/parameters")
    }
}

/// The shared, append-only request log.
#[derive(Debug, Default)]
pub(crate) struct Log {
    entries: Mutex<Vec<RecordedRequest>>,
}

impl Log {
    /// Appends a request; returns its position (for [`Log::set_step`]).
    pub(crate) fn push(&self, mut request: RecordedRequest) -> usize {
        let mut entries = lock(&self.entries);
        let seq = entries.len();
        request.seq = seq;
        entries.push(request);
        seq
    }

    /// Notes which script step answered request `seq`.
    pub(crate) fn set_step(&self, seq: usize, step: Option<usize>) {
        if let Some(entry) = lock(&self.entries).get_mut(seq) {
            entry.step = step;
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        lock(&self.entries).clone()
    }

    /// Empties the log; positions then start again at 0.
    pub(crate) fn clear(&self) {
        lock(&self.entries).clear();
    }
}

/// Locks a mutex, recovering the data if a panicking holder poisoned it (every writer leaves the
/// data consistent, so a poison only means a test thread panicked elsewhere).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(path: &str, body: Value) -> RecordedRequest {
        RecordedRequest {
            seq: 99,
            method: "POST".into(),
            path: path.into(),
            query: None,
            headers: BTreeMap::from([("authorization".into(), "Bearer k".into())]),
            body,
            step: None,
        }
    }

    #[test]
    fn the_log_numbers_entries_and_notes_steps() {
        let log = Log::default();
        assert_eq!(log.push(request("/a", Value::Null)), 0);
        assert_eq!(log.push(request("/b", Value::Null)), 1);
        log.set_step(1, Some(3));
        let all = log.snapshot();
        assert_eq!(
            all.iter().map(|r| (r.seq, r.step)).collect::<Vec<_>>(),
            [(0, None), (1, Some(3))]
        );
        log.clear();
        assert!(log.snapshot().is_empty());
    }

    #[test]
    fn helpers_read_headers_and_tools() {
        let body = json!({"tools": [
            {"type": "function", "function": {"name": "write", "parameters": {"required": ["filePath"]}}},
            {"type": "function", "function": {"name": "bash"}}
        ]});
        let r = request("/v1/chat/completions", body);
        assert_eq!(r.header("Authorization"), Some("Bearer k"));
        assert_eq!(r.authorization(), Some("Bearer k"));
        assert!(r.is_chat());
        assert_eq!(r.tool_names(), ["write", "bash"]);
        assert_eq!(
            r.tool_parameters("write").unwrap()["required"],
            json!(["filePath"])
        );
        assert!(r.tool_parameters("bash").is_none());
    }
}
