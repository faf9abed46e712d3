//! Workspace files the server itself manages (configs, skills, commands, plugins, inbox,
//! outbox), read and written through the same directory-handle confinement as file sessions
//! ([`crate::files::beneath`]).
//!
//! Threat: a symlink planted in the workspace (`.opencode -> /home/me/.ssh`) turning a config
//! edit or a skill upload into a read or write outside it. Every access resolves beneath the
//! root handle and refuses any link; the refusal is 422 `unsafe_path` naming the relative path,
//! never the host path.

use axum::http::StatusCode;

use crate::error::ApiError;
use crate::files::beneath::{FsError, Meta, Root};
use crate::files::path::{RelPath, normalize};
use crate::routes::files::open_root;
use crate::workspace::Workspace;

/// Largest text file (config, skill, command) the server reads or writes.
pub(crate) const MAX_TEXT_BYTES: u64 = 1024 * 1024;

/// A relative path built by the server (constants and validated names).
pub(crate) fn rel(path: &str) -> Result<RelPath, ApiError> {
    normalize(path)
}

/// Opens the workspace root.
pub(crate) fn root(ws: &Workspace) -> Result<Root, ApiError> {
    open_root(ws)
}

/// The API error for a failed confined operation on `rel`.
pub(crate) fn fs_error(rel: &RelPath, err: FsError) -> ApiError {
    let path = rel.as_str();
    match err {
        FsError::Symlink => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsafe_path",
            format!("{path} goes through a symbolic link; links are not followed"),
        ),
        FsError::NotADirectory | FsError::NotAFile => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsafe_path",
            format!("{path} is not a regular file in a directory"),
        ),
        FsError::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "file_not_found",
            format!("{path} not found"),
        ),
        FsError::TooLarge { size, max } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!("{path} is {size} bytes, over the {max} byte limit"),
        ),
        FsError::Conflict { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{path} changed while the request waited; retry"),
        ),
        FsError::NotEmpty => ApiError::new(
            StatusCode::CONFLICT,
            "not_empty",
            format!("{path} is a directory that is not empty"),
        ),
        FsError::Os(errno) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "io_error",
            format!("{path}: {}", errno.desc()),
        ),
    }
}

/// The text of `rel` with its metadata, `None` when it (or a parent) does not exist.
pub(crate) fn read_text(root: &Root, rel: &RelPath) -> Result<Option<(Meta, String)>, ApiError> {
    match root.read_file(rel, MAX_TEXT_BYTES) {
        Ok((meta, data)) => String::from_utf8(data)
            .map(|text| Some((meta, text)))
            .map_err(|_| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_utf8",
                    format!("{} is not UTF-8 text", rel.as_str()),
                )
            }),
        Err(FsError::NotFound) => Ok(None),
        Err(e) => Err(fs_error(rel, e)),
    }
}

/// Atomically writes `text` to `rel` when its revision is still `expected` (`None` = must not
/// exist); parents are created beneath the root.
pub(crate) fn write_text(
    root: &Root,
    rel: &RelPath,
    text: &str,
    expected: Option<&str>,
) -> Result<Meta, ApiError> {
    root.write_file(rel, text.as_bytes(), Some(expected))
        .map(|(meta, _)| meta)
        .map_err(|e| fs_error(rel, e))
}
/// Names of the entries of directory `rel` (empty when it does not exist); links are refused.
pub(crate) fn list_dir(root: &Root, rel: &str) -> Result<Vec<String>, ApiError> {
    let rel_path = crate::files::path::normalize(rel)?;
    match root.open_dir(&rel_path.segments(), false) {
        Ok(dir) => {
            let mut names =
                crate::files::beneath::list_names(&dir).map_err(|e| fs_error(&rel_path, e))?;
            names.sort();
            Ok(names)
        }
        Err(FsError::NotFound) => Ok(Vec::new()),
        Err(e) => Err(fs_error(&rel_path, e)),
    }
}
