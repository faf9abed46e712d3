//! Filesystem access confined to a workspace root, through directory handles.
//!
//! Threat: a symlink planted inside the workspace (by the agent, a checked-out repository or a
//! concurrent process) that would make a read, write, rename or delete land outside the root,
//! including one swapped in between a check and the use (TOCTOU). The original resolved paths
//! as strings and followed symlinks (weakness W2).
//!
//! Defence: every operation starts from an open handle on the root and resolves the
//! [`RelPath`] components beneath it without following *any* symlink: on Linux with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, elsewhere (or when
//! the kernel lacks `openat2`) one `openat(O_NOFOLLOW | O_DIRECTORY)` per component. The final
//! component is then used relative to its parent's handle (`openat`, `fstatat`, `renameat`,
//! `unlinkat`) with `O_NOFOLLOW` / `AT_SYMLINK_NOFOLLOW`, so swapping a directory for a link
//! after a check changes nothing: the handle still names the directory that was checked, or
//! the open fails. Refusing symlinks that stay inside the root too is stricter than needed, but
//! it keeps both resolution paths identical (the catalog does not list symlinks either).
//!
//! Writes are atomic: a temporary file in the same directory, `fsync`, `renameat` over the
//! target, `fsync` of the directory. Left open: processes other than this server that write
//! the same file are not serialised with it (their edits are visible as a new revision).

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use camino::{Utf8Path, Utf8PathBuf};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;

use super::path::RelPath;

/// Why a confined filesystem operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path (or one of its parents) does not exist.
    #[error("not found")]
    NotFound,
    /// A component of the path is a symbolic link (or leaves the root).
    #[error("path goes through a symbolic link")]
    Symlink,
    /// A parent component is not a directory.
    #[error("a parent of the path is not a directory")]
    NotADirectory,
    /// The target exists but is not a regular file.
    #[error("path must point to a regular file")]
    NotAFile,
    /// The file is larger than allowed.
    #[error("file is {size} bytes, over the {max} byte limit")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// `ifMatchRevision` did not match.
    #[error("file changed since it was loaded")]
    Conflict {
        /// The current revision, `None` if the file is missing.
        current: Option<String>,
    },
    /// A directory to delete is not empty and `recursive` was not set.
    #[error("directory is not empty (pass recursive to delete it)")]
    NotEmpty,
    /// Any other operating-system error.
    #[error("{0}")]
    Os(Errno),
}

impl From<Errno> for FsError {
    fn from(errno: Errno) -> Self {
        match errno {
            Errno::ENOENT => Self::NotFound,
            Errno::ELOOP | Errno::EXDEV => Self::Symlink,
            Errno::ENOTDIR => Self::NotADirectory,
            Errno::ENOTEMPTY => Self::NotEmpty,
            other => Self::Os(other),
        }
    }
}

impl From<std::io::Error> for FsError {
    fn from(err: std::io::Error) -> Self {
        Self::Os(err.raw_os_error().map_or(Errno::EIO, Errno::from_raw))
    }
}

/// Size, times and kind of an entry, from `fstat`/`fstatat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Meta {
    /// Whether it is a directory (else a regular file).
    pub is_dir: bool,
    /// Size in bytes (0 for directories in revisions).
    pub size: u64,
    /// Modification time in ms since the epoch, with sub-ms precision.
    pub mtime_ms: f64,
    /// Raw modification time, seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Permission bits.
    pub mode: u32,
}

impl Meta {
    fn from_stat(st: &FileStat) -> Option<Self> {
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let is_dir = match kind {
            SFlag::S_IFDIR => true,
            SFlag::S_IFREG => false,
            _ => return None,
        };
        #[allow(clippy::cast_precision_loss)]
        let mtime_ms = st.st_mtime as f64 * 1000.0 + st.st_mtime_nsec as f64 / 1_000_000.0;
        Some(Self {
            is_dir,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_ms,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            mode: st.st_mode & 0o7777,
        })
    }

    /// `"<floor(mtimeMs)>:<size>"` (reference §A11.4); directories use size 0.
    pub fn revision(&self) -> String {
        let ms = self.mtime.0 * 1000 + self.mtime.1 / 1_000_000;
        format!("{ms}:{}", if self.is_dir { 0 } else { self.size })
    }
}

/// Kind of a path as seen without following links.
enum Kind {
    Missing,
    Symlink,
    Other,
    Entry(Meta),
}

fn kind_at(dir: impl AsFd, name: &str) -> Result<Kind, FsError> {
    match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => {
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            if kind == SFlag::S_IFLNK {
                Ok(Kind::Symlink)
            } else {
                Ok(Meta::from_stat(&st).map_or(Kind::Other, Kind::Entry))
            }
        }
        Err(Errno::ENOENT) => Ok(Kind::Missing),
        Err(e) => Err(e.into()),
    }
}

/// Set once `openat2` turned out to be unavailable (old kernel or seccomp filter).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// An open workspace root.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: Utf8PathBuf,
}

impl Root {
    /// Opens the workspace directory (configured by the operator, so a link here is followed).
    pub fn open(path: &Utf8Path) -> Result<Self, FsError> {
        let fd = nix::fcntl::openat(
            nix::fcntl::AT_FDCWD,
            path.as_std_path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// The absolute path a relative path names (for approvals and messages only).
    pub fn display(&self, rel: &RelPath) -> String {
        self.path.join(rel.as_str()).into_string()
    }

    /// Opens the directory `segments` beneath the root, creating missing ones when `create`.
    pub fn open_dir(&self, segments: &[&str], create: bool) -> Result<OwnedFd, FsError> {
        if segments.is_empty() {
            return Ok(self.fd.try_clone()?);
        }
        if !create && !NO_OPENAT2.load(Ordering::Relaxed) {
            match open_dir_openat2(&self.fd, segments) {
                Err(FsError::Os(Errno::ENOSYS | Errno::EPERM | Errno::E2BIG)) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        open_dir_walk(&self.fd, segments, create)
    }

    /// Metadata of `rel` without following links; `None` if it is missing.
    pub fn stat(&self, rel: &RelPath) -> Result<Option<Meta>, FsError> {
        let (parent, name) = rel.split_parent();
        let dir = match self.open_dir(&parent, false) {
            Ok(dir) => dir,
            Err(FsError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        match kind_at(&dir, name)? {
            Kind::Missing => Ok(None),
            Kind::Symlink => Err(FsError::Symlink),
            Kind::Other => Err(FsError::NotAFile),
            Kind::Entry(meta) => Ok(Some(meta)),
        }
    }

    /// Reads a regular file of at most `max` bytes.
    pub fn read_file(&self, rel: &RelPath, max: u64) -> Result<(Meta, Vec<u8>), FsError> {
        let (parent, name) = rel.split_parent();
        let dir = self.open_dir(&parent, false)?;
        // O_NONBLOCK: opening a FIFO must not hang the worker; fstat refuses it next.
        let fd = nix::fcntl::openat(
            &dir,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let meta = Meta::from_stat(&nix::sys::stat::fstat(&fd)?).ok_or(FsError::NotAFile)?;
        if meta.is_dir {
            return Err(FsError::NotAFile);
        }
        if meta.size > max {
            return Err(FsError::TooLarge {
                size: meta.size,
                max,
            });
        }
        let mut data = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
        std::fs::File::from(fd)
            .take(max.saturating_add(1))
            .read_to_end(&mut data)?;
        if data.len() as u64 > max {
            return Err(FsError::TooLarge {
                size: data.len() as u64,
                max,
            });
        }
        Ok((meta, data))
    }

    /// Atomically replaces (or creates) the file `rel` with `data`, creating parent
    /// directories. With `if_match`, the current revision must equal it (`None` inside means
    /// "must not exist"). The caller serialises writers of the same path (see `locks`).
    /// Returns the new metadata and the previous revision.
    pub fn write_file(
        &self,
        rel: &RelPath,
        data: &[u8],
        if_match: Option<Option<&str>>,
    ) -> Result<(Meta, Option<String>), FsError> {
        let (parent, name) = rel.split_parent();
        let dir = self.open_dir(&parent, true)?;
        let previous = match kind_at(&dir, name)? {
            Kind::Missing => None,
            Kind::Symlink => return Err(FsError::Symlink),
            Kind::Other => return Err(FsError::NotAFile),
            Kind::Entry(meta) if meta.is_dir => return Err(FsError::NotAFile),
            Kind::Entry(meta) => Some(meta),
        };
        let previous_rev = previous.map(|m| m.revision());
        if let Some(expected) = if_match
            && expected != previous_rev.as_deref()
        {
            return Err(FsError::Conflict {
                current: previous_rev,
            });
        }
        let tmp = format!(".openwork-tmp-{}", uuid::Uuid::new_v4().simple());
        let mode = previous.map_or(0o644, |m| m.mode & 0o777);
        let fd = nix::fcntl::openat(
            &dir,
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )?;
        let result = finish_tmp(&dir, fd, &tmp, name, data, previous_rev.as_deref());
        if result.is_err() {
            let _ = nix::unistd::unlinkat(&dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        Ok((result?, previous_rev))
    }

    /// `mkdir -p rel`.
    pub fn mkdir_all(&self, rel: &RelPath) -> Result<(), FsError> {
        self.open_dir(&rel.segments(), true).map(drop)
    }

    /// Removes `rel`; a directory only when empty or with `recursive`.
    pub fn remove(&self, rel: &RelPath, recursive: bool) -> Result<(), FsError> {
        let (parent, name) = rel.split_parent();
        let dir = self.open_dir(&parent, false)?;
        match kind_at(&dir, name)? {
            Kind::Missing => Err(FsError::NotFound),
            Kind::Symlink => Err(FsError::Symlink),
            Kind::Entry(meta) if meta.is_dir => {
                if recursive {
                    remove_tree(&dir, name, 0)
                } else {
                    Ok(nix::unistd::unlinkat(&dir, name, UnlinkatFlags::RemoveDir)?)
                }
            }
            Kind::Entry(_) | Kind::Other => Ok(nix::unistd::unlinkat(
                &dir,
                name,
                UnlinkatFlags::NoRemoveDir,
            )?),
        }
    }

    /// Renames `from` to `to` (overwriting a file there), creating `to`'s parents.
    pub fn rename(&self, from: &RelPath, to: &RelPath) -> Result<(), FsError> {
        let (from_parent, from_name) = from.split_parent();
        let from_dir = self.open_dir(&from_parent, false)?;
        match kind_at(&from_dir, from_name)? {
            Kind::Missing => return Err(FsError::NotFound),
            Kind::Symlink => return Err(FsError::Symlink),
            _ => {}
        }
        let (to_parent, to_name) = to.split_parent();
        let to_dir = self.open_dir(&to_parent, true)?;
        if let Kind::Symlink = kind_at(&to_dir, to_name)? {
            return Err(FsError::Symlink);
        }
        nix::fcntl::renameat(&from_dir, from_name, &to_dir, to_name)?;
        let _ = nix::unistd::fsync(&to_dir);
        Ok(())
    }
}

/// Writes, syncs, de-duplicates the revision and renames the temporary file into place.
fn finish_tmp(
    dir: &OwnedFd,
    fd: OwnedFd,
    tmp: &str,
    name: &str,
    data: &[u8],
    previous_rev: Option<&str>,
) -> Result<Meta, FsError> {
    let mut file = std::fs::File::from(fd);
    file.write_all(data)?;
    let mut meta = Meta::from_stat(&nix::sys::stat::fstat(&file)?).ok_or(FsError::NotAFile)?;
    if Some(meta.revision().as_str()) == previous_rev {
        // Same size within the same millisecond: bump the mtime by 1 ms so every write made
        // here yields a new revision and a stale `ifMatchRevision` cannot match (weakness W5).
        let ms = meta.mtime.0 * 1000 + meta.mtime.1 / 1_000_000 + 1;
        let mtime = nix::sys::time::TimeSpec::new(ms / 1000, (ms % 1000) * 1_000_000);
        nix::sys::stat::futimens(&file, &nix::sys::time::TimeSpec::UTIME_OMIT, &mtime)?;
        meta = Meta::from_stat(&nix::sys::stat::fstat(&file)?).ok_or(FsError::NotAFile)?;
    }
    file.sync_all()?;
    nix::fcntl::renameat(dir, tmp, dir, name)?;
    let _ = nix::unistd::fsync(dir);
    Ok(meta)
}

#[cfg(target_os = "linux")]
fn open_dir_openat2(root: &OwnedFd, segments: &[&str]) -> Result<OwnedFd, FsError> {
    use nix::fcntl::{OpenHow, ResolveFlag};
    let how = OpenHow::new().flags(DIR_FLAGS).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    );
    match nix::fcntl::openat2(root, segments.join("/").as_str(), how) {
        Ok(fd) => Ok(fd),
        // A link as the last component reads as ENOTDIR; the walk tells links and files apart.
        Err(Errno::ENOTDIR) => open_dir_walk(root, segments, false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn open_dir_openat2(_root: &OwnedFd, _segments: &[&str]) -> Result<OwnedFd, FsError> {
    Err(FsError::Os(Errno::ENOSYS))
}

/// One `openat(O_NOFOLLOW | O_DIRECTORY)` per component, each relative to the previous handle.
pub(crate) fn open_dir_walk(
    root: &OwnedFd,
    segments: &[&str],
    create: bool,
) -> Result<OwnedFd, FsError> {
    let mut current = root.try_clone()?;
    for segment in segments {
        if create {
            match nix::sys::stat::mkdirat(&current, *segment, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        current = match nix::fcntl::openat(&current, *segment, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(match kind_at(&current, segment)? {
                    Kind::Symlink => FsError::Symlink,
                    _ => FsError::NotADirectory,
                });
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(current)
}

/// Deepest directory nesting `remove_tree` descends into.
const MAX_DEPTH: usize = 512;

fn remove_tree(parent: &OwnedFd, name: &str, depth: usize) -> Result<(), FsError> {
    if depth > MAX_DEPTH {
        return Err(FsError::Os(Errno::ELOOP));
    }
    let dir = nix::fcntl::openat(parent, name, DIR_FLAGS, Mode::empty())?;
    for child in list_names(&dir)? {
        match kind_at(&dir, &child)? {
            Kind::Missing => {}
            Kind::Entry(meta) if meta.is_dir => remove_tree(&dir, &child, depth + 1)?,
            // Links are removed as links, never followed.
            _ => nix::unistd::unlinkat(&dir, child.as_str(), UnlinkatFlags::NoRemoveDir)?,
        }
    }
    Ok(nix::unistd::unlinkat(
        parent,
        name,
        UnlinkatFlags::RemoveDir,
    )?)
}

/// Names in a directory handle (without `.` and `..`); non-UTF-8 names are skipped.
pub(crate) fn list_names(dir: &OwnedFd) -> Result<Vec<String>, FsError> {
    let mut handle = nix::dir::Dir::from_fd(dir.try_clone()?)?;
    let mut names = Vec::new();
    for entry in handle.iter() {
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name != "." && name != ".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Metadata of `name` in `dir` when it is a regular file or directory (links and others: `None`).
pub(crate) fn entry_meta(dir: &OwnedFd, name: &str) -> Result<Option<Meta>, FsError> {
    Ok(match kind_at(dir, name)? {
        Kind::Entry(meta) => Some(meta),
        _ => None,
    })
}

/// Opens the child directory `name` of `dir` without following a link.
pub(crate) fn open_child_dir(dir: &OwnedFd, name: &str) -> Result<OwnedFd, FsError> {
    Ok(nix::fcntl::openat(dir, name, DIR_FLAGS, Mode::empty())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::path::normalize;

    fn setup() -> (tempfile::TempDir, tempfile::TempDir, Root) {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.path().join("dirlink")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.txt"),
            ws.path().join("filelink"),
        )
        .unwrap();
        std::fs::create_dir(ws.path().join("sub")).unwrap();
        std::fs::write(ws.path().join("sub/a.txt"), "hello").unwrap();
        let root = Root::open(Utf8Path::from_path(ws.path()).unwrap()).unwrap();
        (ws, outside, root)
    }

    fn rel(s: &str) -> RelPath {
        normalize(s).unwrap()
    }

    #[test]
    fn both_resolvers_refuse_directory_links() {
        let (_ws, _out, root) = setup();
        assert!(matches!(
            open_dir_walk(&root.fd, &["dirlink"], false),
            Err(FsError::Symlink)
        ));
        assert!(matches!(
            open_dir_walk(&root.fd, &["dirlink", "x"], true),
            Err(FsError::Symlink)
        ));
        if cfg!(target_os = "linux") {
            match open_dir_openat2(&root.fd, &["dirlink"]) {
                Err(FsError::Symlink) => {}
                Err(FsError::Os(Errno::ENOSYS | Errno::EPERM)) => {} // no openat2 here
                other => panic!("openat2 followed a link: {other:?}"),
            }
        }
        assert!(open_dir_walk(&root.fd, &["sub"], false).is_ok());
    }

    #[test]
    fn links_are_refused_for_every_operation() {
        let (_ws, out, root) = setup();
        assert!(matches!(
            root.read_file(&rel("filelink"), 100),
            Err(FsError::Symlink)
        ));
        assert!(matches!(
            root.read_file(&rel("dirlink/secret.txt"), 100),
            Err(FsError::Symlink)
        ));
        assert!(matches!(
            root.write_file(&rel("dirlink/new.txt"), b"x", None),
            Err(FsError::Symlink)
        ));
        assert!(matches!(
            root.write_file(&rel("filelink"), b"x", None),
            Err(FsError::Symlink)
        ));
        assert!(matches!(
            root.remove(&rel("dirlink/secret.txt"), false),
            Err(FsError::Symlink)
        ));
        assert!(matches!(
            root.rename(&rel("dirlink/secret.txt"), &rel("stolen.txt")),
            Err(FsError::Symlink)
        ));
        assert!(matches!(
            root.rename(&rel("sub/a.txt"), &rel("dirlink/a.txt")),
            Err(FsError::Symlink)
        ));
        assert_eq!(
            std::fs::read_to_string(out.path().join("secret.txt")).unwrap(),
            "secret"
        );
        assert!(!out.path().join("new.txt").exists());
        assert!(!out.path().join("a.txt").exists());
    }

    #[test]
    fn write_is_atomic_and_revisions_always_change() {
        let (ws, _out, root) = setup();
        let p = rel("deep/er/f.txt");
        let (m1, prev) = root.write_file(&p, b"abc", None).unwrap();
        assert_eq!(prev, None);
        let (m2, prev) = root
            .write_file(&p, b"xyz", Some(Some(&m1.revision())))
            .unwrap();
        assert_eq!(prev, Some(m1.revision()));
        assert_ne!(m1.revision(), m2.revision());
        assert!(matches!(
            root.write_file(&p, b"zzz", Some(Some(&m1.revision()))),
            Err(FsError::Conflict { .. })
        ));
        let (_, data) = root.read_file(&p, 10).unwrap();
        assert_eq!(data, b"xyz");
        let (m3, _) = root.write_file(&rel("empty"), b"", None).unwrap();
        assert_eq!(m3.size, 0);
        let leftovers: Vec<_> = std::fs::read_dir(ws.path().join("deep/er"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1);
    }

    #[test]
    fn recursive_delete_does_not_follow_links() {
        let (ws, out, root) = setup();
        std::fs::create_dir_all(ws.path().join("t/u")).unwrap();
        std::os::unix::fs::symlink(out.path(), ws.path().join("t/u/escape")).unwrap();
        assert!(matches!(
            root.remove(&rel("t"), false),
            Err(FsError::NotEmpty)
        ));
        root.remove(&rel("t"), true).unwrap();
        assert!(!ws.path().join("t").exists());
        assert!(out.path().join("secret.txt").exists());
    }
}
