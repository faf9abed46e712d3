//! Binaries found on this machine rather than fetched: the bundled role of this executable, an
//! `opencode` shipped next to it, an explicit `--*-bin` path, or a name on PATH.
//!
//! Threat: running a binary nobody verified. External binaries are used only with
//! `--allow-external` (checked by the caller), and a path that does not exist is an error naming
//! it rather than a late spawn failure. Left open: what an external binary is; that is the
//! user's explicit choice.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;

use camino::{Utf8Path, Utf8PathBuf};

/// The first executable regular file called `name` on `path_env` (this process's PATH when
/// `None`).
pub fn find_on_path(name: &str, path_env: Option<&OsStr>) -> Option<Utf8PathBuf> {
    let owned;
    let path = match path_env {
        Some(p) => p,
        None => {
            owned = std::env::var_os("PATH")?;
            owned.as_os_str()
        }
    };
    std::env::split_paths(path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name))
        .find(|p| is_executable_file(p))
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
}

/// A regular file (after following links) with an execute bit.
pub fn is_executable_file(path: &std::path::Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Path-like = contains `/` or starts with `.`; otherwise it is a name to look up on PATH.
pub fn is_path_like(s: &str) -> bool {
    s.contains('/') || s.starts_with('.')
}

/// Makes a path absolute against the current directory (without resolving links).
pub fn absolute(path: &Utf8Path) -> Utf8PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    std::env::current_dir()
        .ok()
        .and_then(|d| Utf8PathBuf::from_path_buf(d).ok())
        .map(|d| d.join(path))
        .unwrap_or_else(|| path.to_owned())
}

/// This executable, from the override or the OS.
pub fn current_exe(override_path: Option<&Utf8Path>) -> Result<Utf8PathBuf, String> {
    if let Some(p) = override_path {
        return Ok(p.to_owned());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Utf8PathBuf::from_path_buf(exe).map_err(|p| format!("path is not UTF-8: {}", p.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_only() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let path = dir.path().as_os_str().to_owned();
        assert!(
            find_on_path("tool", Some(&path)).is_none(),
            "not executable yet"
        );
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_on_path("tool", Some(&path)).unwrap().as_std_path(),
            exe
        );
        assert!(find_on_path("nope", Some(&path)).is_none());
    }

    #[test]
    fn path_like() {
        assert!(is_path_like("./opencode"));
        assert!(is_path_like("/usr/bin/opencode"));
        assert!(!is_path_like("opencode"));
    }
}
