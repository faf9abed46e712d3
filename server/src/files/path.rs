//! Normalising a client-supplied, workspace-relative path (reference §A11.3).
//!
//! Threat: a path string that names something outside the workspace. This module is the
//! lexical half of the defence: it refuses `.`/`..` segments, absolute paths (other than the
//! `/workspace/…` form a sandboxed agent sees), NUL bytes, backslashes, Windows-hostile names
//! and over-long components, so the result is a plain list of names. It cannot see symlinks;
//! [`super::beneath`] resolves the names against a directory handle without following any.

use axum::http::StatusCode;

use crate::error::ApiError;

/// Longest accepted path component, in bytes (the usual `NAME_MAX`).
const MAX_COMPONENT_BYTES: usize = 255;
/// Longest accepted path, in bytes (the usual `PATH_MAX`).
const MAX_PATH_BYTES: usize = 4096;

/// A normalised workspace-relative path: non-empty, `/`-joined plain names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// The normalised form, as echoed back to clients.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components.
    pub fn segments(&self) -> Vec<&str> {
        self.0.split('/').collect()
    }

    /// All components but the last, and the last.
    pub fn split_parent(&self) -> (Vec<&str>, &str) {
        match self.0.rsplit_once('/') {
            Some((parent, name)) => (parent.split('/').collect(), name),
            None => (Vec::new(), self.0.as_str()),
        }
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", message)
}

const WINDOWS_DEVICES: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// Normalises `raw`. Errors are 400 `invalid_path` with a message saying what is wrong.
pub fn normalize(raw: &str) -> Result<RelPath, ApiError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(invalid("Path is required"));
    }
    if trimmed.contains('\0') {
        return Err(invalid("Path must not contain NUL bytes"));
    }
    if trimmed.contains('\\') {
        return Err(invalid("Path must not contain backslashes; use '/'"));
    }
    if trimmed.len() > MAX_PATH_BYTES {
        return Err(invalid(format!(
            "Path is longer than {MAX_PATH_BYTES} bytes"
        )));
    }
    // `/workspace/…` is how the workspace looks from inside the sandbox; any other
    // absolute path is refused rather than silently re-rooted (weakness W9).
    let rest = if let Some(rest) = trimmed.strip_prefix("/workspace/") {
        rest
    } else if trimmed == "/workspace" {
        ""
    } else if trimmed.starts_with('/') {
        return Err(invalid(
            "Absolute paths are not allowed; use a path relative to the workspace",
        ));
    } else {
        trimmed.strip_prefix("./").unwrap_or(trimmed)
    };
    let mut segments = Vec::new();
    for segment in rest.split('/').filter(|s| !s.is_empty()) {
        check_segment(segment)?;
        segments.push(segment);
    }
    if segments.is_empty() {
        return Err(invalid("Path is required"));
    }
    Ok(RelPath(segments.join("/")))
}

fn check_segment(segment: &str) -> Result<(), ApiError> {
    if segment == "." || segment == ".." {
        return Err(invalid("Path traversal is not allowed"));
    }
    if segment.len() > MAX_COMPONENT_BYTES {
        return Err(invalid(format!(
            "Path component is longer than {MAX_COMPONENT_BYTES} bytes"
        )));
    }
    if segment.contains(':') {
        return Err(invalid("Path components must not contain ':'"));
    }
    if segment.ends_with('.') || segment.ends_with(' ') {
        return Err(invalid("Path components must not end with '.' or a space"));
    }
    if segment.chars().any(char::is_control) {
        return Err(invalid(
            "Path components must not contain control characters",
        ));
    }
    let stem = segment.split('.').next().unwrap_or(segment);
    if WINDOWS_DEVICES.contains(&stem.to_ascii_lowercase().as_str()) {
        return Err(invalid(format!("'{segment}' is a reserved device name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        normalize(raw).unwrap().as_str().to_owned()
    }

    fn err(raw: &str) -> String {
        normalize(raw).unwrap_err().message
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(ok("a.md"), "a.md");
        assert_eq!(ok("  ./a.md "), "a.md");
        assert_eq!(ok("/workspace/a.md"), "a.md");
        assert_eq!(ok("workspace/a.md"), "workspace/a.md");
        assert_eq!(ok("a//b///c"), "a/b/c");
        assert_eq!(ok("dir/"), "dir");
        assert_eq!(ok("ünï/ç.txt"), "ünï/ç.txt");
    }

    #[test]
    fn refused_forms() {
        assert_eq!(err(""), "Path is required");
        assert_eq!(err("/workspace/"), "Path is required");
        assert_eq!(err("../etc/passwd"), "Path traversal is not allowed");
        assert_eq!(err("a/../../b"), "Path traversal is not allowed");
        assert_eq!(err("a/./b"), "Path traversal is not allowed");
        assert!(err("/etc/passwd").starts_with("Absolute paths"));
        assert!(err("a\0b").contains("NUL"));
        assert!(err("..\\..\\x").contains("backslash"));
        assert!(err("c:x").contains(':'));
        assert!(err("a./b").contains("end with"));
        assert!(err("NUL.txt").contains("reserved"));
        assert!(err(&"x".repeat(256)).contains("255"));
        assert!(err("a\nb").contains("control"));
    }

    #[test]
    fn parent_split() {
        let p = normalize("a/b/c.txt").unwrap();
        assert_eq!(p.split_parent(), (vec!["a", "b"], "c.txt"));
        let p = normalize("c.txt").unwrap();
        assert_eq!(p.split_parent(), (Vec::<&str>::new(), "c.txt"));
    }
}
