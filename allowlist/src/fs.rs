//! The only filesystem access of the crate: resolving real paths and reading a file's type.
//!
//! Threat: a check made on a path as written, not on what it resolves to. Every check of
//! [`crate::validate`] runs on the path returned by [`Fs::canonicalize`] (all symlinks
//! followed, `.`/`..` removed), and [`Fs::kind`] reads the type without following a final
//! symlink, so a socket or device cannot hide behind a link.
//!
//! Left open: time-of-check to time-of-use. Between validation and the engine's bind mount, a
//! process that can write inside an allowed root could swap a folder on the path for a symlink.
//! Callers must mount [`crate::ValidatedMount::host_real_path`] (never the spec's path), soon
//! after validating, and should not allow-list folders that the agent itself can write.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::Error;

/// The type of a filesystem entry, read without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    File,
    Symlink,
    Socket,
    CharDevice,
    BlockDevice,
    Fifo,
    Other,
}

/// Filesystem access used by validation; swap it in tests to simulate paths that cannot be
/// created unprivileged (e.g. an engine socket under `/run`).
pub trait Fs {
    /// The absolute real path: every symlink followed, no `.` or `..` left
    /// (`std::fs::canonicalize` semantics). `NotFound` when the path or a link target is missing.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
    /// The entry's type, not following a final symlink (`lstat`).
    fn kind(&self, path: &Path) -> io::Result<FileKind>;
}

/// The real filesystem, through `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl Fs for RealFs {
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }

    fn kind(&self, path: &Path) -> io::Result<FileKind> {
        let file_type = std::fs::symlink_metadata(path)?.file_type();
        Ok(kind_of(&file_type))
    }
}

#[cfg(unix)]
fn kind_of(t: &std::fs::FileType) -> FileKind {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Dir
    } else if t.is_file() {
        FileKind::File
    } else if t.is_socket() {
        FileKind::Socket
    } else if t.is_char_device() {
        FileKind::CharDevice
    } else if t.is_block_device() {
        FileKind::BlockDevice
    } else if t.is_fifo() {
        FileKind::Fifo
    } else {
        FileKind::Other
    }
}

#[cfg(not(unix))]
fn kind_of(t: &std::fs::FileType) -> FileKind {
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Dir
    } else if t.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

/// The host facts validation needs: home (for `~`), the working directory (for relative host
/// paths), the filesystem, and extra paths the caller wants protected (e.g. the data dir).
/// Built once by the caller from its run plan; the crate reads no environment variables.
#[derive(Debug, Clone)]
pub struct HostEnv<F: Fs = RealFs> {
    /// Absolute home folder; `~` and `~/…` expand to it.
    home: PathBuf,
    /// Absolute working directory; relative host paths resolve against it.
    cwd: PathBuf,
    /// Filesystem access.
    fs: F,
    /// Paths never mounted, nor any folder containing them, in addition to the built-in ones.
    extra_protected: Vec<PathBuf>,
}

impl HostEnv<RealFs> {
    /// The real filesystem with this home and working directory (both must be absolute).
    pub fn new(home: impl Into<PathBuf>, cwd: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::with_fs(home, cwd, RealFs)
    }
}

impl<F: Fs> HostEnv<F> {
    /// A custom filesystem with this home and working directory (both must be absolute).
    pub fn with_fs(
        home: impl Into<PathBuf>,
        cwd: impl Into<PathBuf>,
        fs: F,
    ) -> Result<Self, Error> {
        let home = home.into();
        let cwd = cwd.into();
        if !home.is_absolute() {
            return Err(Error::RelativeContext {
                what: "home",
                path: home,
            });
        }
        if !cwd.is_absolute() {
            return Err(Error::RelativeContext {
                what: "working",
                path: cwd,
            });
        }
        Ok(Self {
            home,
            cwd,
            fs,
            extra_protected: Vec::new(),
        })
    }

    /// Also refuse this path, anything inside it and any folder containing it (e.g. openwork's
    /// data dir when `--data-dir` moved it). Relative paths resolve against the working dir.
    #[must_use]
    pub fn protect(mut self, path: impl AsRef<Path>) -> Self {
        let path = self.cwd.join(path);
        self.extra_protected.push(path);
        self
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    pub fn fs(&self) -> &F {
        &self.fs
    }

    pub(crate) fn extra_protected(&self) -> &[PathBuf] {
        &self.extra_protected
    }

    /// `~` → home, `~/x` → home/x, absolute as is, anything else against the working dir.
    /// `~user` is not expanded (it is a relative name, like in the reference).
    pub fn expand(&self, raw: &str) -> PathBuf {
        if raw == "~" {
            self.home.clone()
        } else if let Some(rest) = raw.strip_prefix("~/") {
            self.home.join(rest)
        } else {
            self.cwd.join(raw)
        }
    }

    /// The real form of `path` when it exists; otherwise the real form of its longest existing
    /// ancestor with the rest appended. For protected paths, which need not exist (so that
    /// `/var/run/docker.sock` still protects `/run` when `/var/run` is a link to it).
    pub(crate) fn canonicalize_lenient(&self, path: &Path) -> PathBuf {
        let mut tail: Vec<&std::ffi::OsStr> = Vec::new();
        let mut current = path;
        loop {
            if let Ok(real) = self.fs.canonicalize(current) {
                let mut out = real;
                for part in tail.iter().rev() {
                    out.push(part);
                }
                return out;
            }
            match (current.parent(), current.file_name()) {
                (Some(parent), Some(name)) => {
                    tail.push(name);
                    current = parent;
                }
                _ => return normalize_lexically(path),
            }
        }
    }
}

/// Drops `.` components and folds `..` lexically; used only where nothing exists to resolve.
pub(crate) fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_tilde_and_relative_paths() {
        let host = HostEnv::new("/home/me", "/work").unwrap();
        assert_eq!(host.expand("~"), PathBuf::from("/home/me"));
        assert_eq!(host.expand("~/x/y"), PathBuf::from("/home/me/x/y"));
        assert_eq!(host.expand("/abs"), PathBuf::from("/abs"));
        assert_eq!(host.expand("rel/x"), PathBuf::from("/work/rel/x"));
        assert_eq!(host.expand("~user/x"), PathBuf::from("/work/~user/x"));
    }

    #[test]
    fn refuses_relative_context() {
        assert!(matches!(
            HostEnv::new("home", "/work"),
            Err(Error::RelativeContext { what: "home", .. })
        ));
        assert!(matches!(
            HostEnv::new("/home", "work"),
            Err(Error::RelativeContext {
                what: "working",
                ..
            })
        ));
    }

    #[test]
    fn lenient_canonicalization_resolves_the_existing_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let host = HostEnv::new("/", "/").unwrap();
        let got = host.canonicalize_lenient(&dir.path().join("link/missing/sock"));
        let want = std::fs::canonicalize(&real).unwrap().join("missing/sock");
        assert_eq!(got, want);
    }
}
