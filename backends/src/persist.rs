//! The sandbox's persist dir (`/persist`: HOME and XDG dirs of the agent), prepared on the host.
//!
//! Threat addressed: the agent plants symlinks in its persist dir (it can write there) so that the
//! host, when it prepares the next run, writes or copies into a file outside it (e.g. a link
//! `.local -> /home/me` turning "copy auth.json" into overwriting a host file). Every directory is
//! opened component by component with `O_NOFOLLOW | O_DIRECTORY` relative to the previous one, and
//! files are written to a fresh temp name (`O_EXCL | O_NOFOLLOW`) in that directory, fsynced and
//! renamed over the destination (rename replaces a planted link, it never follows it).
//!
//! Only opencode's provider credentials (`auth.json`, `mcp-auth.json`) are copied from the host's
//! opencode data folder, never the folder itself (which holds every session of every project).

use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use camino::{Utf8Path, Utf8PathBuf};
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, mkdirat};

use crate::BackendError;

/// Directories created under the persist dir (relative), all mode 0700.
pub const LAYOUT: [&str; 6] = [
    ".config",
    ".cache",
    ".local/share/opencode",
    ".local/state",
    ".tmp",
    ".config/opencode",
];

/// Credential files copied from the host's opencode data dir.
pub const AUTH_FILES: [&str; 2] = ["auth.json", "mcp-auth.json"];

/// Why preparing the host side of a sandbox failed at a path.
#[derive(Debug, thiserror::Error)]
pub enum PrepareFailure {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the persist dir is a symbolic link; refusing to use it")]
    PersistDirIsLink,
    #[error("not a real directory (a symbolic link was planted here?); refusing")]
    PlantedLink,
    #[error("`..` is not allowed")]
    ParentComponent,
}

impl From<nix::errno::Errno> for PrepareFailure {
    fn from(e: nix::errno::Errno) -> Self {
        PrepareFailure::Io(std::io::Error::from(e))
    }
}

fn err(path: &Utf8Path, reason: impl Into<PrepareFailure>) -> BackendError {
    BackendError::Prepare {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn open_root(root: &Utf8Path) -> Result<OwnedFd, BackendError> {
    std::fs::create_dir_all(root).map_err(|e| err(root, e))?;
    let meta = std::fs::symlink_metadata(root).map_err(|e| err(root, e))?;
    if meta.file_type().is_symlink() {
        return Err(err(root, PrepareFailure::PersistDirIsLink));
    }
    let fd = nix::fcntl::open(
        root.as_std_path(),
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .map_err(|e| err(root, e))?;
    Ok(fd)
}

/// Opens (creating as needed) `rel` beneath `root`, refusing any symlinked component.
fn open_dir_beneath(root: &Utf8Path, rel: &str) -> Result<OwnedFd, BackendError> {
    let mut fd = open_root(root)?;
    let mut at = root.to_path_buf();
    for part in rel.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(err(&at, PrepareFailure::ParentComponent));
        }
        at.push(part);
        match mkdirat(fd.as_fd(), part, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(err(&at, e)),
        }
        let next = openat(
            fd.as_fd(),
            part,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(|e| {
            if e == nix::errno::Errno::ELOOP || e == nix::errno::Errno::ENOTDIR {
                err(&at, PrepareFailure::PlantedLink)
            } else {
                err(&at, e)
            }
        })?;
        fd = next;
    }
    Ok(fd)
}

/// Writes `bytes` to `<root>/<dir>/<name>` (mode 0600) without following any link.
pub fn write_beneath(
    root: &Utf8Path,
    dir: &str,
    name: &str,
    bytes: &[u8],
) -> Result<(), BackendError> {
    let dirfd = open_dir_beneath(root, dir)?;
    let target = root.join(dir).join(name);
    let tmp_name = format!(".{name}.tmp-{}", std::process::id());
    let _ = nix::unistd::unlinkat(
        dirfd.as_fd(),
        tmp_name.as_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    let fd = openat(
        dirfd.as_fd(),
        tmp_name.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| err(&target, e))?;
    // SAFETY: `fd` is a freshly opened, owned descriptor that we hand over to File.
    let mut file = unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) };
    file.write_all(bytes).map_err(|e| err(&target, e))?;
    file.sync_all().map_err(|e| err(&target, e))?;
    drop(file);
    nix::fcntl::renameat(dirfd.as_fd(), tmp_name.as_str(), dirfd.as_fd(), name)
        .map_err(|e| err(&target, e))?;
    Ok(())
}

/// Stages `file` as the only entry `name` of the directory `<persist dir>.<suffix>/` (a hard link,
/// a copy across file systems; written to a temp name and renamed) and returns that directory.
///
/// Used for what is mounted read-only into the sandbox through a directory (Apple `container`
/// mounts directories only; an explicit `--opencode-bin /usr/bin/opencode` must not expose all of
/// `/usr/bin`). The directory sits next to the persist dir, not in it: the agent can write
/// `/persist` and must not replace what the next run mounts.
pub fn stage_alone(
    file: &Utf8Path,
    persist_dir: &Utf8Path,
    suffix: &str,
    name: &str,
) -> Result<Utf8PathBuf, BackendError> {
    let base = persist_dir.file_name().unwrap_or("persist");
    let dir = persist_dir
        .parent()
        .unwrap_or(Utf8Path::new("/"))
        .join(format!("{base}.{suffix}"));
    std::fs::create_dir_all(&dir).map_err(|e| err(&dir, e))?;
    for entry in std::fs::read_dir(&dir).map_err(|e| err(&dir, e))?.flatten() {
        if entry.file_name() != name {
            let p = entry.path();
            let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
        }
    }
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(file, &tmp).is_err() {
        std::fs::copy(file, &tmp).map_err(|e| err(file, e))?;
    }
    let target = dir.join(name);
    std::fs::rename(&tmp, &target).map_err(|e| err(&target, e))?;
    // rename(2) does nothing when both names already link the same inode (an earlier run's
    // hard link): the temp name is then still there.
    let _ = std::fs::remove_file(&tmp);
    Ok(dir)
}

/// What [`prepare`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Credential files copied into the persist dir.
    pub copied: Vec<String>,
}

/// Creates the persist dir layout and, when `host_opencode_data` is given, copies opencode's
/// provider credentials from it into `<persist>/.local/share/opencode/`.
pub fn prepare(
    persist: &Utf8Path,
    host_opencode_data: Option<&Utf8Path>,
    keys_injected: bool,
) -> Result<Prepared, BackendError> {
    for dir in LAYOUT {
        open_dir_beneath(persist, dir)?;
    }
    let mut prepared = Prepared::default();
    if keys_injected {
        // The gate injects the provider keys: the agent must not find them in /persist, not
        // even in a copy an earlier ungated run left there.
        let dir = open_dir_beneath(persist, ".local/share/opencode")?;
        match nix::unistd::unlinkat(&dir, "auth.json", nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(err(
                    &persist.join(".local/share/opencode/auth.json"),
                    std::io::Error::from(e),
                ));
            }
        }
    }
    if let Some(src_dir) = host_opencode_data {
        let names = AUTH_FILES
            .iter()
            .filter(|n| !(keys_injected && **n == "auth.json"));
        for name in names {
            let src = src_dir.join(name);
            let bytes = match std::fs::read(&src) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(err(&src, e)),
            };
            write_beneath(persist, ".local/share/opencode", name, &bytes)?;
            prepared.copied.push(name.to_string());
        }
    }
    Ok(prepared)
}

/// The host's opencode data dir: `$XDG_DATA_HOME/opencode`, else `~/.local/share/opencode`.
pub fn host_opencode_data_dir(xdg_data_home: Option<&str>, home: &Utf8Path) -> Utf8PathBuf {
    match xdg_data_home {
        Some(x) if !x.is_empty() => Utf8PathBuf::from(x).join("opencode"),
        _ => home.join(".local/share/opencode"),
    }
}

/// Gives `path` and everything below it to `uid:gid`, never following a symbolic link (the
/// persist dir is agent-writable: a link planted there must not redirect the change).
pub fn chown_tree(path: &Utf8Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))?;
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p)? {
                if let Ok(child) = Utf8PathBuf::from_path_buf(entry?.path()) {
                    stack.push(child);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf8(p: &std::path::Path) -> Utf8PathBuf {
        Utf8PathBuf::from_path_buf(p.to_path_buf()).unwrap()
    }

    #[test]
    fn copies_only_the_credential_files() {
        let t = tempfile::tempdir().unwrap();
        let host = utf8(&t.path().join("host-data"));
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("auth.json"), "{\"k\":1}").unwrap();
        std::fs::write(host.join("opencode.db"), "sessions").unwrap();
        let persist = utf8(&t.path().join("persist"));
        let p = prepare(&persist, Some(&host), false).unwrap();
        assert_eq!(p.copied, vec!["auth.json"]);
        let copied = persist.join(".local/share/opencode/auth.json");
        assert_eq!(std::fs::read_to_string(&copied).unwrap(), "{\"k\":1}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&copied).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!persist.join(".local/share/opencode/opencode.db").exists());
        assert!(persist.join(".tmp").is_dir());
        // With the gate injecting keys: no auth.json, and the earlier copy is gone.
        std::fs::write(host.join("mcp-auth.json"), "{}").unwrap();
        let p = prepare(&persist, Some(&host), true).unwrap();
        assert_eq!(p.copied, vec!["mcp-auth.json"]);
        assert!(!copied.exists());
    }

    #[test]
    fn a_planted_directory_link_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let outside = utf8(&t.path().join("outside"));
        std::fs::create_dir_all(&outside).unwrap();
        let persist = utf8(&t.path().join("persist"));
        std::fs::create_dir_all(&persist).unwrap();
        std::os::unix::fs::symlink(&outside, persist.join(".local")).unwrap();
        let host = utf8(&t.path().join("host"));
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("auth.json"), "secret").unwrap();
        let e = prepare(&persist, Some(&host), false).unwrap_err();
        assert!(e.to_string().contains(".local"), "{e}");
        assert!(
            matches!(
                e,
                BackendError::Prepare {
                    reason: PrepareFailure::PlantedLink,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            std::fs::read_dir(&outside).unwrap().next().is_none(),
            "wrote outside"
        );
    }

    #[test]
    fn a_planted_file_link_is_replaced_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let victim = utf8(&t.path().join("victim"));
        std::fs::write(&victim, "host file").unwrap();
        let persist = utf8(&t.path().join("persist"));
        prepare(&persist, None, false).unwrap();
        std::os::unix::fs::symlink(&victim, persist.join(".local/share/opencode/auth.json"))
            .unwrap();
        write_beneath(&persist, ".local/share/opencode", "auth.json", b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host file");
        let meta =
            std::fs::symlink_metadata(persist.join(".local/share/opencode/auth.json")).unwrap();
        assert!(meta.is_file());
    }
}
