//! The persistent store of issued scoped tokens (`tokens.json`, reference §A15).
//!
//! Threats: theft of the file (only SHA-256 digests are stored, never a token), other local
//! users reading it (created 0600), and a torn or half-written file after a crash (temp file in
//! the same directory, fsync, rename). The original wrote it non-atomically with default
//! permissions and treated a corrupt file as empty (W3); here a corrupt file stops the server
//! with an error that names the file, so tokens are never silently dropped.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One stored token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredToken {
    /// Public id.
    pub id: String,
    /// SHA-256 hex of the token.
    pub hash: String,
    /// `owner` | `collaborator` | `viewer`.
    pub scope: String,
    /// Creation time, ms.
    pub created_at: u64,
    /// Optional label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    schema_version: u32,
    #[serde(default)]
    updated_at: u64,
    tokens: Vec<StoredToken>,
}

/// Why the token store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    /// Reading failed.
    #[error("cannot read the token store {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The file is not a valid token store.
    #[error("the token store {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// Writing failed.
    #[error("cannot write the token store {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
}

/// Loads the tokens in `path`; a missing file is an empty store.
pub fn load(path: &Path) -> Result<Vec<StoredToken>, TokenStoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(TokenStoreError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let file: File = serde_json::from_str(&text).map_err(|source| TokenStoreError::Parse {
        path: path.to_owned(),
        source,
    })?;
    Ok(file.tokens)
}

/// Writes `tokens` (newest first) to `path` atomically with mode 0600.
pub fn save(path: &Path, tokens: &[StoredToken], now_ms: u64) -> Result<(), TokenStoreError> {
    let write_err = |source| TokenStoreError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let body = serde_json::to_vec_pretty(&File {
        schema_version: 1,
        updated_at: now_ms,
        tokens: tokens.to_vec(),
    })
    .map_err(|e| write_err(std::io::Error::other(e)))?;
    let tmp = dir.join(format!(
        ".tokens.json.tmp-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&body)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_is_private_and_corruption_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/tokens.json");
        assert!(load(&path).unwrap().is_empty());
        let t = StoredToken {
            id: "i".into(),
            hash: "h".into(),
            scope: "viewer".into(),
            created_at: 1,
            label: None,
        };
        save(&path, std::slice::from_ref(&t), 5).unwrap();
        assert_eq!(load(&path).unwrap(), [t]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "{oops").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("tokens.json") && err.contains("not valid"),
            "{err}"
        );
    }
}
