//! `server.json`: the optional config file (reference §A5), read once at startup.
//!
//! The file is plain JSON (not JSONC). Where it lives: `--config <path>`, else
//! `OPENWORK_SERVER_CONFIG`, else `~/.config/openwork/server.json`. A missing
//! file at the default location means "no file"; everything else fails loudly:
//! a file named by flag or env that does not exist, an unreadable file, and a
//! file that is not valid JSON or has a value of the wrong type are each an
//! error naming the file and, for parse errors, the line and column. (The
//! original silently used `{}`, so a typo meant fresh random tokens.) Keys
//! this server does not know are reported as warnings, not errors, so a file
//! written for a newer server still starts this one.
//!
//! Layering the file under flags and env (CLI > env > file > default) is done
//! by [`crate::cli`]; this module only loads and validates.

use std::path::{Path, PathBuf};

use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;
use serde_json::Value;

use crate::config::{ApprovalMode, LogFormat, Secret};
use crate::workspace::{Workspace, WorkspaceType, resolve_path};

/// Why `server.json` could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read (missing when named explicitly, a directory, no permission…).
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid JSON or a value has the wrong type.
    #[error("invalid config file {path} at line {line}, column {column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong, without the position.
        message: String,
    },
    /// The path is not valid UTF-8 (relative paths inside it could not be resolved).
    #[error("config file path {0:?} is not valid UTF-8")]
    NonUtf8Path(PathBuf),
}

/// `approval` in `server.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileApproval {
    /// `manual` or `auto`; anything else is a parse error.
    pub mode: Option<ApprovalMode>,
    /// Milliseconds a manual approval waits.
    pub timeout_ms: Option<u64>,
}

/// One entry of `workspaces` in `server.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileWorkspace {
    /// Workspace root; relative paths resolve against the config file's directory.
    pub path: Utf8PathBuf,
    /// Display name (default: last path component).
    pub name: Option<String>,
    /// `local` (default) or `remote`.
    pub workspace_type: Option<WorkspaceType>,
    /// OpenCode base URL of this workspace.
    pub base_url: Option<String>,
    /// OpenCode directory of this workspace.
    pub directory: Option<String>,
    /// OpenCode Basic-auth user name of this workspace.
    pub opencode_username: Option<String>,
    /// OpenCode Basic-auth password of this workspace.
    pub opencode_password: Option<String>,
}

/// The schema of `server.json` (reference §A5). Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileConfig {
    /// Bind host.
    pub host: Option<String>,
    /// Bind port.
    pub port: Option<u16>,
    /// Client bearer token.
    pub token: Option<String>,
    /// Host token.
    pub host_token: Option<String>,
    /// Approval mode and timeout.
    pub approval: Option<FileApproval>,
    /// Workspaces (used only when neither `--workspace` nor `OPENWORK_WORKSPACES` gives any).
    pub workspaces: Option<Vec<FileWorkspace>>,
    /// Allowed CORS origins.
    pub cors_origins: Option<Vec<String>>,
    /// Roots workspaces must lie under; relative ones resolve against the file's directory.
    pub authorized_roots: Option<Vec<Utf8PathBuf>>,
    /// Refuse workspace writes.
    pub read_only: Option<bool>,
    /// OpenCode Basic-auth user name for every workspace.
    pub opencode_username: Option<String>,
    /// OpenCode Basic-auth password for every workspace.
    pub opencode_password: Option<String>,
    /// `pretty` (or `text`/`human`) or `json`.
    pub log_format: Option<LogFormat>,
    /// One log line per request.
    pub log_requests: Option<bool>,
    /// Legacy and inert (the reload-event emitter is a no-op in the reference).
    pub hot_reload: Option<Value>,
}

const TOP_KEYS: &[&str] = &[
    "host",
    "port",
    "token",
    "hostToken",
    "approval",
    "workspaces",
    "corsOrigins",
    "authorizedRoots",
    "readOnly",
    "opencodeUsername",
    "opencodePassword",
    "logFormat",
    "logRequests",
    "hotReload",
];
const APPROVAL_KEYS: &[&str] = &["mode", "timeoutMs"];
const WORKSPACE_KEYS: &[&str] = &[
    "path",
    "name",
    "workspaceType",
    "baseUrl",
    "directory",
    "opencodeUsername",
    "opencodePassword",
];

/// A loaded `server.json`.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    /// Where it was read from (absolute).
    pub path: Utf8PathBuf,
    /// Its settings.
    pub config: FileConfig,
    /// Keys this server does not know, as JSON paths (e.g. `workspaces[0].color`).
    pub unknown_keys: Vec<String>,
}

impl LoadedFile {
    /// The directory relative paths in the file resolve against.
    pub fn dir(&self) -> &Utf8Path {
        self.path.parent().unwrap_or(Utf8Path::new("/"))
    }

    /// The file's workspaces, resolved against its directory.
    pub fn workspaces(&self) -> Vec<Workspace> {
        let dir = self.dir();
        self.config
            .workspaces
            .iter()
            .flatten()
            .map(|entry| {
                let mut ws = Workspace::local(resolve_path(&entry.path, dir));
                if let Some(name) = entry.name.as_ref().filter(|n| !n.trim().is_empty()) {
                    ws.name.clone_from(name);
                }
                if let Some(kind) = entry.workspace_type {
                    ws.workspace_type = kind;
                }
                ws.base_url.clone_from(&non_empty(&entry.base_url));
                ws.directory.clone_from(&non_empty(&entry.directory));
                ws.opencode_username = non_empty(&entry.opencode_username).map(Secret::new);
                ws.opencode_password = non_empty(&entry.opencode_password).map(Secret::new);
                ws
            })
            .collect()
    }

    /// `authorizedRoots`, resolved against the file's directory.
    pub fn authorized_roots(&self) -> Vec<Utf8PathBuf> {
        let dir = self.dir();
        self.config
            .authorized_roots
            .iter()
            .flatten()
            .filter(|p| !p.as_str().trim().is_empty())
            .map(|p| resolve_path(p, dir))
            .collect()
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.trim().is_empty())
}

/// The default location, `~/.config/openwork/server.json`, when `home` is known.
pub fn default_path(home: Option<&Path>) -> Option<PathBuf> {
    home.map(|h| h.join(".config/openwork/server.json"))
}

/// Reads `path`. With `explicit` false (the default location), a missing file
/// is `Ok(None)`; in every other case a file that cannot be read or parsed is
/// an error.
pub fn load(path: &Utf8Path, explicit: bool) -> Result<Option<LoadedFile>, ConfigFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if !explicit && err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigFileError::Read {
                path: path.into(),
                source,
            });
        }
    };
    parse(path, &text).map(Some)
}

/// Parses the text of the file at `path` (used for messages and relative paths).
pub fn parse(path: &Utf8Path, text: &str) -> Result<LoadedFile, ConfigFileError> {
    let parse_error = |err: serde_json::Error| {
        // serde_json appends " at line L column C"; the position is reported separately.
        let full = err.to_string();
        let suffix = format!(" at line {} column {}", err.line(), err.column());
        ConfigFileError::Parse {
            path: path.into(),
            line: err.line(),
            column: err.column(),
            message: full.strip_suffix(&suffix).unwrap_or(&full).to_owned(),
        }
    };
    // Syntax first (with its position), then the typed schema: a wrong type is
    // reported at the offending value, which `from_str` into the struct gives.
    let value: Value = serde_json::from_str(text).map_err(parse_error)?;
    if !value.is_object() {
        return Err(ConfigFileError::Parse {
            path: path.into(),
            line: 1,
            column: 1,
            message: "the top level must be a JSON object".to_owned(),
        });
    }
    let config: FileConfig = serde_json::from_str(text).map_err(parse_error)?;
    Ok(LoadedFile {
        path: path.to_path_buf(),
        config,
        unknown_keys: unknown_keys(&value),
    })
}

/// Keys of `value` this server does not know, as JSON paths.
fn unknown_keys(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(top) = value.as_object() else {
        return out;
    };
    for (key, child) in top {
        if !TOP_KEYS.contains(&key.as_str()) {
            out.push(key.clone());
            continue;
        }
        match (key.as_str(), child) {
            ("approval", Value::Object(map)) => out.extend(
                map.keys()
                    .filter(|k| !APPROVAL_KEYS.contains(&k.as_str()))
                    .map(|k| format!("approval.{k}")),
            ),
            ("workspaces", Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Object(map) = item {
                        out.extend(
                            map.keys()
                                .filter(|k| !WORKSPACE_KEYS.contains(&k.as_str()))
                                .map(|k| format!("workspaces[{i}].{k}")),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Makes `raw` an absolute UTF-8 path against `cwd`.
pub fn absolute(raw: &Path, cwd: &Utf8Path) -> Result<Utf8PathBuf, ConfigFileError> {
    let utf8 = Utf8Path::from_path(raw).ok_or_else(|| ConfigFileError::NonUtf8Path(raw.into()))?;
    Ok(resolve_path(utf8, cwd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> ConfigFileError {
        match parse(Utf8Path::new("/etc/ow/server.json"), text) {
            Err(err) => err,
            Ok(file) => panic!("expected an error, got {file:?}"),
        }
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let err = parse_err("{\n  \"port\": 1,\n  \"host\": }\n");
        let ConfigFileError::Parse { line, column, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!((*line, *column), (3, 11));
        let text = err.to_string();
        assert!(text.contains("/etc/ow/server.json"), "{text}");
        assert!(text.contains("line 3, column 11"), "{text}");
    }

    #[test]
    fn type_errors_point_at_the_value() {
        let err = parse_err("{\n  \"host\": \"h\",\n  \"port\": \"eighty\"\n}");
        let ConfigFileError::Parse { line, message, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*line, 3);
        assert!(message.contains("u16"), "{message}");
        let err = parse_err(r#"{"approval": {"mode": "sometimes"}}"#);
        assert!(err.to_string().contains("manual"), "{err}");
        assert!(matches!(parse_err("[1]"), ConfigFileError::Parse { .. }));
    }

    #[test]
    fn unknown_keys_are_listed_not_fatal() {
        let file = parse(
            Utf8Path::new("/c/server.json"),
            r#"{"port": 1, "colour": "red", "approval": {"mode": "auto", "x": 1},
                "workspaces": [{"path": "a", "y": 2}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            file.unknown_keys,
            ["approval.x", "colour", "workspaces[0].y"]
        );
        assert_eq!(file.config.port, Some(1));
    }

    #[test]
    fn relative_paths_resolve_against_the_file_directory() {
        let file = parse(
            Utf8Path::new("/c/server.json"),
            r#"{"workspaces": [{"path": "proj", "name": "P", "workspaceType": "remote"}],
                "authorizedRoots": ["..", "/abs"]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ws = file.workspaces();
        assert_eq!(ws[0].path, "/c/proj");
        assert_eq!(ws[0].name, "P");
        assert_eq!(ws[0].workspace_type, WorkspaceType::Remote);
        assert_eq!(file.authorized_roots(), ["/", "/abs"]);
    }

    #[test]
    fn a_missing_default_file_is_no_file_but_a_named_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let missing = Utf8PathBuf::from_path_buf(dir.path().join("nope.json"))
            .unwrap_or_else(|p| panic!("{p:?}"));
        assert!(matches!(load(&missing, false), Ok(None)));
        let err = load(&missing, true).err();
        assert!(
            matches!(&err, Some(ConfigFileError::Read { path, .. }) if path.ends_with("nope.json")),
            "{err:?}"
        );
    }
}
