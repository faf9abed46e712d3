//! Why opencode could not be started or answered unexpectedly; each names what to check.

use std::path::PathBuf;
use std::time::Duration;

/// An error of the opencode launcher or client.
#[derive(Debug, thiserror::Error)]
pub enum OpencodeError {
    #[error(
        "OPENWORK_TEST_OPENCODE_BIN is not set: run the tests with scripts/test.sh, which installs \
         the pinned opencode and sets it (or export it to ~/.cache/openwork-test/opencode-<version>/opencode)"
    )]
    BinNotSet,
    #[error("OPENWORK_TEST_OPENCODE_BIN={path} is not a file: run scripts/test.sh to install it")]
    BinMissing { path: PathBuf },
    #[error("cannot start {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("{bin} exited ({status}) before printing its ready line; its log:\n{logs}")]
    Exited {
        bin: PathBuf,
        status: String,
        logs: String,
    },
    #[error("{bin} printed no ready line within {waited:?}; its log:\n{logs}")]
    NotReady {
        bin: PathBuf,
        waited: Duration,
        logs: String,
    },
    #[error("{what}: {source}")]
    Http {
        what: String,
        source: reqwest::Error,
    },
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
}
