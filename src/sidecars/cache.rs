//! The sidecar cache: layout, stamp files, cheap re-verification and atomic install.
//!
//! Layout: `<sidecar-dir>/<name>/<version>/<target>/<name>`, with a 0600 stamp
//! `<name>.stamp.json` beside it recording the SHA-256, size, mtime (ns) and inode taken at
//! install. The file name is the sidecar's name whatever the asset was called, so the cache can
//! be found without the manifest (offline runs work).
//!
//! Threat: a cached binary replaced or truncated after install, and a crash or failed check
//! leaving a half-written file under the final name. A file is installed only by renaming a
//! fully written, fsynced, verified temp file created in the same directory; a file without a
//! stamp is never trusted. On start the stamp's size, mtime and inode are compared (cheap: a
//! 185 MB opencode takes ~0.6 s to hash); any difference, or `--verify-sidecars`, re-hashes, and
//! a hash mismatch removes the file so it is fetched again. Left open: an attacker who can write
//! the cache can also rewrite the stamp; the stamp guards against accidents and stale files, the
//! pinned digests guard what is fetched.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::SidecarName;
use super::target::Target;

/// What the cache knows about one installed binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Sidecar name, e.g. `opencode`.
    pub name: String,
    /// Sidecar version.
    pub version: String,
    /// Target name.
    pub target: String,
    /// Lower-case hex SHA-256 of the installed binary.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Inode number.
    pub inode: u64,
    /// Where it came from: an npm spec or a URL.
    pub origin: String,
}

/// A cache entry that passed verification.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The binary.
    pub path: Utf8PathBuf,
    /// Its stamp (updated if the file was re-hashed).
    pub stamp: Stamp,
    /// Whether the file was re-hashed (metadata changed or verification was requested).
    #[allow(dead_code)] // read by tests; kept for diagnostics
    pub rehashed: bool,
}

/// Why a cache entry could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// Nothing cached at this path.
    #[error("not cached at {path}")]
    Missing {
        /// The expected binary path.
        path: Utf8PathBuf,
    },
    /// A file without a stamp: not installed by openwork, or installation was interrupted.
    #[error(
        "{path} has no stamp file (not installed by openwork or interrupted); it will be fetched again"
    )]
    NoStamp {
        /// The binary path.
        path: Utf8PathBuf,
    },
    /// The stamp could not be parsed.
    #[error("stamp {path} is unreadable ({cause}); the entry will be fetched again")]
    BadStamp {
        /// The stamp path.
        path: Utf8PathBuf,
        /// The parse or read error.
        cause: String,
    },
    /// The file's hash no longer matches its stamp; it was removed.
    #[error(
        "cached {path} was modified (sha256 expected {expected}, got {actual}); removed it, it will be fetched again"
    )]
    Tampered {
        /// The binary path.
        path: Utf8PathBuf,
        /// SHA-256 recorded at install.
        expected: String,
        /// SHA-256 now.
        actual: String,
    },
    /// A file system error.
    #[error(
        "cache I/O error at {path}: {cause}. Check permissions of the sidecar dir or pass --sidecar-dir"
    )]
    Io {
        /// The path involved.
        path: Utf8PathBuf,
        /// The error text.
        cause: String,
    },
}

fn io_err(path: &Utf8Path, e: impl std::fmt::Display) -> CacheError {
    CacheError::Io {
        path: path.to_owned(),
        cause: e.to_string(),
    }
}

/// `<sidecar-dir>/<name>/<version>/<target>/<name>`.
pub fn binary_path(
    dir: &Utf8Path,
    name: SidecarName,
    version: &str,
    target: Target,
) -> Utf8PathBuf {
    dir.join(name.as_str())
        .join(version)
        .join(target.as_str())
        .join(name.as_str())
}

/// The stamp beside a binary: `<binary>.stamp.json`.
pub fn stamp_path(binary: &Utf8Path) -> Utf8PathBuf {
    let mut s = binary.as_str().to_string();
    s.push_str(".stamp.json");
    Utf8PathBuf::from(s)
}

/// Lower-case hex SHA-256 and size of a reader's bytes.
pub fn sha256_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

fn mtime_ns(meta: &fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

fn read_stamp(path: &Utf8Path) -> Result<Stamp, CacheError> {
    let text = fs::read_to_string(path).map_err(|e| CacheError::BadStamp {
        path: path.to_owned(),
        cause: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| CacheError::BadStamp {
        path: path.to_owned(),
        cause: e.to_string(),
    })
}

/// Removes a binary and its stamp, ignoring ones that are already gone.
pub fn remove_entry(binary: &Utf8Path) {
    let _ = fs::remove_file(stamp_path(binary));
    let _ = fs::remove_file(binary);
}

/// Checks the cached binary at `binary` against its stamp. Re-hashes when size, mtime or inode
/// differ, or when `force_hash`. A hash mismatch removes the entry. Blocking.
pub fn verify(binary: &Utf8Path, force_hash: bool) -> Result<Verified, CacheError> {
    let meta = match fs::metadata(binary) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CacheError::Missing {
                path: binary.to_owned(),
            });
        }
        Err(e) => return Err(io_err(binary, e)),
    };
    let spath = stamp_path(binary);
    if !spath.exists() {
        return Err(CacheError::NoStamp {
            path: binary.to_owned(),
        });
    }
    let mut stamp = read_stamp(&spath)?;
    let unchanged =
        meta.len() == stamp.size && mtime_ns(&meta) == stamp.mtime_ns && meta.ino() == stamp.inode;
    if unchanged && !force_hash {
        ensure_executable(binary, &meta)?;
        return Ok(Verified {
            path: binary.to_owned(),
            stamp,
            rehashed: false,
        });
    }
    let file = File::open(binary).map_err(|e| io_err(binary, e))?;
    let (actual, size) = sha256_reader(file).map_err(|e| io_err(binary, e))?;
    if actual != stamp.sha256 {
        let expected = stamp.sha256.clone();
        remove_entry(binary);
        return Err(CacheError::Tampered {
            path: binary.to_owned(),
            expected,
            actual,
        });
    }
    // Same bytes, new metadata (copied, touched, restored from backup): refresh the stamp.
    let meta = fs::metadata(binary).map_err(|e| io_err(binary, e))?;
    ensure_executable(binary, &meta)?;
    if !unchanged {
        stamp.size = size;
        stamp.mtime_ns = mtime_ns(&meta);
        stamp.inode = meta.ino();
        write_stamp(&spath, &stamp)?;
    }
    Ok(Verified {
        path: binary.to_owned(),
        stamp,
        rehashed: true,
    })
}

fn ensure_executable(binary: &Utf8Path, meta: &fs::Metadata) -> Result<(), CacheError> {
    if meta.permissions().mode() & 0o111 != 0o111 {
        fs::set_permissions(binary, fs::Permissions::from_mode(0o755))
            .map_err(|e| io_err(binary, e))?;
    }
    Ok(())
}

/// Writes a stamp atomically (temp file in the same directory, mode 0600, rename).
fn write_stamp(path: &Utf8Path, stamp: &Stamp) -> Result<(), CacheError> {
    let dir = path.parent().unwrap_or(Utf8Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".stamp.tmp-")
        .tempfile_in(dir)
        .map_err(|e| io_err(dir, e))?;
    let text = serde_json::to_vec_pretty(stamp).map_err(|e| io_err(path, e))?;
    tmp.write_all(&text).map_err(|e| io_err(path, e))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| io_err(path, e))?;
    tmp.as_file().sync_all().map_err(|e| io_err(path, e))?;
    tmp.persist(path).map_err(|e| io_err(path, e.error))?;
    Ok(())
}

/// Starts installing `binary`: creates its directory and a temp file beside it. Dropping the
/// returned file without [`commit`] deletes it, so a failed fetch leaves nothing behind.
pub fn begin(binary: &Utf8Path) -> Result<tempfile::NamedTempFile, CacheError> {
    let dir = binary.parent().unwrap_or(Utf8Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let prefix = format!(".{}.tmp-", binary.file_name().unwrap_or("sidecar"));
    tempfile::Builder::new()
        .prefix(&prefix)
        .tempfile_in(dir)
        .map_err(|e| io_err(dir, e))
}

/// What a commit records besides the file's own metadata.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Sidecar.
    pub name: SidecarName,
    /// Version.
    pub version: String,
    /// Target.
    pub target: Target,
    /// npm spec or URL.
    pub origin: String,
}

/// Finishes an install: fsync, chmod 755, hash, write the stamp and rename the temp file onto
/// `binary`. When `expected_sha256` is given the file must match it (else nothing is installed).
/// Blocking.
pub fn commit(
    tmp: tempfile::NamedTempFile,
    binary: &Utf8Path,
    origin: Origin,
    expected_sha256: Option<&str>,
) -> Result<Stamp, CommitError> {
    let file = tmp.as_file();
    file.sync_all()
        .map_err(|e| CommitError::Cache(io_err(binary, e)))?;
    file.set_permissions(fs::Permissions::from_mode(0o755))
        .map_err(|e| CommitError::Cache(io_err(binary, e)))?;
    let reader = File::open(tmp.path()).map_err(|e| CommitError::Cache(io_err(binary, e)))?;
    let (sha256, size) =
        sha256_reader(reader).map_err(|e| CommitError::Cache(io_err(binary, e)))?;
    if let Some(expected) = expected_sha256.filter(|e| !e.eq_ignore_ascii_case(&sha256)) {
        return Err(CommitError::Mismatch {
            expected: expected.to_ascii_lowercase(),
            actual: sha256,
        });
    }
    let meta = file
        .metadata()
        .map_err(|e| CommitError::Cache(io_err(binary, e)))?;
    let stamp = Stamp {
        name: origin.name.as_str().to_string(),
        version: origin.version,
        target: origin.target.as_str().to_string(),
        sha256,
        size,
        mtime_ns: mtime_ns(&meta),
        inode: meta.ino(),
        origin: origin.origin,
    };
    let spath = stamp_path(binary);
    // Drop an old stamp first: a crash between the two renames then leaves an unstamped file,
    // which is never trusted, rather than a stale stamp beside new bytes.
    let _ = fs::remove_file(&spath);
    tmp.persist(binary)
        .map_err(|e| CommitError::Cache(io_err(binary, e.error)))?;
    write_stamp(&spath, &stamp).map_err(CommitError::Cache)?;
    if let Some(Ok(d)) = binary.parent().map(File::open) {
        let _ = d.sync_all();
    }
    Ok(stamp)
}

/// Why [`commit`] installed nothing.
#[derive(Debug, Clone)]
pub enum CommitError {
    /// The bytes did not match the expected SHA-256.
    Mismatch {
        /// Expected digest (lower-case hex).
        expected: String,
        /// Actual digest.
        actual: String,
    },
    /// A file system error.
    Cache(CacheError),
}

/// The newest version of `name` for `target` that has a stamp in the cache, if any. Used when
/// the version is not pinned (openwork-server, opencode-router) and the manifest is not needed.
pub fn newest_stamped_version(dir: &Utf8Path, name: SidecarName, target: Target) -> Option<String> {
    let entries = fs::read_dir(dir.join(name.as_str())).ok()?;
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|v| stamp_path(&binary_path(dir, name, v, target)).exists())
        .max_by(|a, b| compare_versions(a, b))
}

/// Compares dotted versions numerically where possible (`0.10.2` > `0.9.9`).
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<(u64, String)> {
        s.split(['.', '-'])
            .map(|p| (p.parse::<u64>().unwrap_or(0), p.to_string()))
            .collect()
    };
    parts(a).cmp(&parts(b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn install(dir: &Utf8Path, bytes: &[u8]) -> Utf8PathBuf {
        let bin = binary_path(dir, SidecarName::Opencode, "1.18.34", Target::LINUX_X64);
        let mut tmp = begin(&bin).unwrap();
        tmp.write_all(bytes).unwrap();
        let origin = Origin {
            name: SidecarName::Opencode,
            version: "1.18.34".into(),
            target: Target::LINUX_X64,
            origin: "test".into(),
        };
        commit(tmp, &bin, origin, None).map_err(|_| ()).unwrap();
        bin
    }

    fn utf8_tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
        (t, p)
    }

    #[test]
    fn install_writes_a_0600_stamp_and_a_0755_binary() {
        let (_t, dir) = utf8_tempdir();
        let bin = install(&dir, b"hello");
        assert!(bin.ends_with("opencode/1.18.34/linux-x64/opencode"));
        let mode = fs::metadata(stamp_path(&bin)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mode = fs::metadata(&bin).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);
        let v = verify(&bin, false).unwrap();
        assert!(!v.rehashed);
        assert!(verify(&bin, true).unwrap().rehashed);
    }

    #[test]
    fn changed_mtime_rehashes_and_refreshes_the_stamp() {
        let (_t, dir) = utf8_tempdir();
        let bin = install(&dir, b"hello");
        let f = File::options().write(true).open(&bin).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        let v = verify(&bin, false).unwrap();
        assert!(v.rehashed);
        assert!(!verify(&bin, false).unwrap().rehashed, "stamp refreshed");
    }

    #[test]
    fn tampered_file_is_removed() {
        let (_t, dir) = utf8_tempdir();
        let bin = install(&dir, b"hello");
        fs::write(&bin, b"HELLO").unwrap();
        match verify(&bin, false) {
            Err(CacheError::Tampered {
                expected, actual, ..
            }) => assert_ne!(expected, actual),
            other => panic!("expected tampered, got {other:?}"),
        }
        assert!(!bin.exists());
        assert!(!stamp_path(&bin).exists());
    }

    #[test]
    fn unstamped_file_is_not_trusted() {
        let (_t, dir) = utf8_tempdir();
        let bin = binary_path(&dir, SidecarName::Opencode, "1", Target::LINUX_X64);
        fs::create_dir_all(bin.parent().unwrap()).unwrap();
        fs::write(&bin, b"x").unwrap();
        assert!(matches!(
            verify(&bin, false),
            Err(CacheError::NoStamp { .. })
        ));
    }

    #[test]
    fn mismatch_installs_nothing() {
        let (_t, dir) = utf8_tempdir();
        let bin = binary_path(&dir, SidecarName::OpenworkServer, "1", Target::LINUX_X64);
        let mut tmp = begin(&bin).unwrap();
        tmp.write_all(b"x").unwrap();
        let origin = Origin {
            name: SidecarName::OpenworkServer,
            version: "1".into(),
            target: Target::LINUX_X64,
            origin: "t".into(),
        };
        assert!(matches!(
            commit(tmp, &bin, origin, Some("00")),
            Err(CommitError::Mismatch { .. })
        ));
        assert_eq!(fs::read_dir(bin.parent().unwrap()).unwrap().count(), 0);
    }

    #[test]
    fn versions_compare_numerically() {
        use std::cmp::Ordering;
        assert_eq!(compare_versions("0.10.2", "0.9.9"), Ordering::Greater);
        assert_eq!(compare_versions("1.18.34", "1.18.34"), Ordering::Equal);
    }
}
