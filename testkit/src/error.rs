//! The stand-in's errors: each names the value at fault and what to do about it.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the stand-in model could not start or load its script.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    #[error(
        "cannot listen on {addr}: {source} (is the port in use? pass another --listen address, or port 0 for a free one)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the script file {path}: {source}")]
    ScriptRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the script from {origin} is not valid: {source} (expected a JSON array of steps, each \
         {{\"text\": \"...\"}} or {{\"tool_call\": {{\"name\": \"...\", \"arguments\": {{...}}}}}}, \
         or an object {{\"steps\": [...], \"exhausted\": step, \"untooled\": \"...\"}}; see testkit/README.md)"
    )]
    ScriptParse {
        origin: String,
        source: serde_json::Error,
    },
    #[error("cannot start a runtime thread for the stand-in: {0}")]
    Runtime(std::io::Error),
}
