//! Safe extraction of one executable from a `.tar.gz`/`.tgz` or `.zip` archive.
//!
//! Threat: an archive whose entries escape the extraction target (absolute paths, `..`
//! components) or plant links that later writes would follow. We never unpack an archive into a
//! directory: we stream it, refuse the whole archive if any entry is a symlink, a hard link, a
//! device/fifo, has an absolute path or a `..` component, and copy the bytes of the one wanted
//! regular file into a file the caller opened (a temp file in the cache directory). The archive
//! has already been checked against a pinned digest, so a refusal means the pin itself is wrong;
//! the error names the entry so that is easy to see. Left open: the content of the binary itself,
//! which only the digest vouches for.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// The archive formats opencode releases use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// gzip-compressed tar (`.tar.gz`, `.tgz`).
    TarGz,
    /// zip (`.zip`).
    Zip,
}

impl ArchiveKind {
    /// The archive kind implied by a file name or URL, or `None` for a plain binary.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
            Some(ArchiveKind::TarGz)
        } else if lower.ends_with(".zip") {
            Some(ArchiveKind::Zip)
        } else {
            None
        }
    }
}

/// Which entry to take out of the archive.
#[derive(Debug, Clone, Copy)]
pub enum Wanted<'a> {
    /// Exactly this path (e.g. `package/bin/opencode` in an npm tarball).
    Path(&'a str),
    /// The first regular file with this name, at any depth (release archives).
    FileNamed(&'a str),
}

impl Wanted<'_> {
    fn matches(&self, entry: &str) -> bool {
        let trimmed = entry.trim_start_matches("./");
        match self {
            Wanted::Path(p) => trimmed == *p,
            Wanted::FileNamed(n) => trimmed.rsplit('/').next() == Some(*n),
        }
    }

    fn describe(&self) -> &str {
        match self {
            Wanted::Path(p) | Wanted::FileNamed(p) => p,
        }
    }
}

/// Why an archive was refused or could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArchiveError {
    /// An entry that could escape or link out; the whole archive is refused.
    #[error("refused archive {archive}: entry `{entry}` {reason}; nothing was extracted")]
    UnsafeEntry {
        /// The archive's file or URL.
        archive: String,
        /// The entry's path as stored.
        entry: String,
        /// What is wrong with it.
        reason: UnsafeReason,
    },
    /// No regular file matched.
    #[error(
        "archive {archive} has no file `{wanted}`; check the manifest entry or the pinned package"
    )]
    NotFound {
        /// The archive's file or URL.
        archive: String,
        /// The path or name looked for.
        wanted: String,
    },
    /// The archive is corrupt or could not be read or written.
    #[error("could not extract from archive {archive}: {cause}")]
    Io {
        /// The archive's file or URL.
        archive: String,
        /// The underlying error text.
        cause: String,
    },
}

/// What makes an archive entry unsafe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeReason {
    /// A symbolic link.
    Symlink,
    /// A hard link.
    Hardlink,
    /// A device, fifo or other special file.
    Special,
    /// An absolute path.
    Absolute,
    /// A `..` component.
    ParentDir,
}

impl std::fmt::Display for UnsafeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UnsafeReason::Symlink => "is a symbolic link",
            UnsafeReason::Hardlink => "is a hard link",
            UnsafeReason::Special => "is a special file",
            UnsafeReason::Absolute => "has an absolute path",
            UnsafeReason::ParentDir => "has a `..` component",
        })
    }
}

/// Checks an entry path for absolute paths and `..` components.
fn check_path(path: &str) -> Result<(), UnsafeReason> {
    if path.starts_with('/') || path.starts_with('\\') || path.get(1..2) == Some(":") {
        return Err(UnsafeReason::Absolute);
    }
    if path.split(['/', '\\']).any(|c| c == "..") {
        return Err(UnsafeReason::ParentDir);
    }
    Ok(())
}

/// Streams `archive` and copies the wanted regular file into `out`; returns its size.
/// `label` names the archive in errors (its URL or file name). Blocking.
pub fn extract_one(
    archive: &Path,
    kind: ArchiveKind,
    wanted: Wanted<'_>,
    out: &mut File,
    label: &str,
) -> Result<u64, ArchiveError> {
    match kind {
        ArchiveKind::TarGz => extract_tar_gz(archive, wanted, out, label),
        ArchiveKind::Zip => extract_zip(archive, wanted, out, label),
    }
}

fn io_err(label: &str, e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Io {
        archive: label.to_string(),
        cause: e.to_string(),
    }
}

fn unsafe_entry(label: &str, entry: &str, reason: UnsafeReason) -> ArchiveError {
    ArchiveError::UnsafeEntry {
        archive: label.to_string(),
        entry: entry.to_string(),
        reason,
    }
}

fn extract_tar_gz(
    archive: &Path,
    wanted: Wanted<'_>,
    out: &mut File,
    label: &str,
) -> Result<u64, ArchiveError> {
    use tar::EntryType;
    let file = File::open(archive).map_err(|e| io_err(label, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let mut found: Option<u64> = None;
    for entry in tar.entries().map_err(|e| io_err(label, e))? {
        let mut entry = entry.map_err(|e| io_err(label, e))?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        check_path(&path).map_err(|r| unsafe_entry(label, &path, r))?;
        match entry.header().entry_type() {
            EntryType::Symlink => return Err(unsafe_entry(label, &path, UnsafeReason::Symlink)),
            EntryType::Link => return Err(unsafe_entry(label, &path, UnsafeReason::Hardlink)),
            EntryType::Directory | EntryType::XGlobalHeader | EntryType::XHeader => continue,
            EntryType::Regular | EntryType::Continuous => {}
            _ => return Err(unsafe_entry(label, &path, UnsafeReason::Special)),
        }
        if found.is_none() && wanted.matches(&path) {
            let n = io::copy(&mut entry, out).map_err(|e| io_err(label, e))?;
            found = Some(n);
        }
    }
    finish(found, out, wanted, label)
}

fn extract_zip(
    archive: &Path,
    wanted: Wanted<'_>,
    out: &mut File,
    label: &str,
) -> Result<u64, ArchiveError> {
    let file = File::open(archive).map_err(|e| io_err(label, e))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| io_err(label, e))?;
    // First pass: refuse the whole archive before writing anything.
    let mut index = None;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| io_err(label, e))?;
        let name = entry.name().to_string();
        check_path(&name).map_err(|r| unsafe_entry(label, &name, r))?;
        if entry.is_symlink() {
            return Err(unsafe_entry(label, &name, UnsafeReason::Symlink));
        }
        if entry.is_dir() {
            continue;
        }
        if index.is_none() && wanted.matches(&name) {
            index = Some(i);
        }
    }
    let found = match index {
        Some(i) => {
            let mut entry = zip.by_index(i).map_err(|e| io_err(label, e))?;
            Some(copy_all(&mut entry, out).map_err(|e| io_err(label, e))?)
        }
        None => None,
    };
    finish(found, out, wanted, label)
}

fn copy_all(from: &mut impl Read, to: &mut File) -> io::Result<u64> {
    io::copy(from, to)
}

fn finish(
    found: Option<u64>,
    out: &mut File,
    wanted: Wanted<'_>,
    label: &str,
) -> Result<u64, ArchiveError> {
    let n = found.ok_or_else(|| ArchiveError::NotFound {
        archive: label.to_string(),
        wanted: wanted.describe().to_string(),
    })?;
    out.flush().map_err(|e| io_err(label, e))?;
    Ok(n)
}

/// The file name of a URL or path (its last `/` segment, without query or fragment).
pub fn last_segment(url: &str) -> Option<String> {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let seg = no_query.trim_end_matches('/').rsplit('/').next()?;
    (!seg.is_empty()).then(|| seg.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    fn tar_gz(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> tempfile::NamedTempFile {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let gz = flate2::write::GzEncoder::new(tmp.reopen().unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            // Write the name bytes directly so `..` and absolute paths can be tested.
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        tmp
    }

    fn extract(tmp: &tempfile::NamedTempFile, wanted: Wanted<'_>) -> Result<Vec<u8>, ArchiveError> {
        let mut out = tempfile::tempfile().unwrap();
        extract_one(tmp.path(), ArchiveKind::TarGz, wanted, &mut out, "test.tgz")?;
        out.seek(SeekFrom::Start(0)).unwrap();
        let mut v = Vec::new();
        out.read_to_end(&mut v).unwrap();
        Ok(v)
    }

    #[test]
    fn extracts_the_wanted_file() {
        let t = tar_gz(&[
            ("package/package.json", tar::EntryType::Regular, b"{}", None),
            (
                "package/bin/opencode",
                tar::EntryType::Regular,
                b"#!/bin/sh\n",
                None,
            ),
        ]);
        assert_eq!(
            extract(&t, Wanted::Path("package/bin/opencode")).unwrap(),
            b"#!/bin/sh\n"
        );
        assert_eq!(
            extract(&t, Wanted::FileNamed("opencode")).unwrap(),
            b"#!/bin/sh\n"
        );
    }

    #[test]
    fn refuses_symlinks_hardlinks_absolute_and_parent() {
        let cases: [(&str, tar::EntryType, Option<&str>, UnsafeReason); 4] = [
            (
                "package/bin/opencode",
                tar::EntryType::Symlink,
                Some("/etc/passwd"),
                UnsafeReason::Symlink,
            ),
            (
                "package/bin/opencode",
                tar::EntryType::Link,
                Some("package/x"),
                UnsafeReason::Hardlink,
            ),
            (
                "/package/bin/opencode",
                tar::EntryType::Regular,
                None,
                UnsafeReason::Absolute,
            ),
            (
                "package/../../evil",
                tar::EntryType::Regular,
                None,
                UnsafeReason::ParentDir,
            ),
        ];
        for (path, kind, link, reason) in cases {
            let t = tar_gz(&[(path, kind, b"", link)]);
            match extract(&t, Wanted::Path("package/bin/opencode")) {
                Err(ArchiveError::UnsafeEntry {
                    entry, reason: r, ..
                }) => {
                    assert_eq!(entry, path);
                    assert_eq!(r, reason);
                }
                other => panic!("{path}: expected refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn missing_file_is_named() {
        let t = tar_gz(&[("package/README", tar::EntryType::Regular, b"x", None)]);
        let err = extract(&t, Wanted::Path("package/bin/opencode")).unwrap_err();
        assert!(err.to_string().contains("package/bin/opencode"), "{err}");
    }

    #[test]
    fn zip_extracts_and_refuses_parent() {
        use zip::write::SimpleFileOptions;
        let tmp = tempfile::NamedTempFile::new().unwrap();
        {
            let mut w = zip::ZipWriter::new(tmp.reopen().unwrap());
            w.start_file(
                "opencode-darwin-arm64/opencode",
                SimpleFileOptions::default(),
            )
            .unwrap();
            w.write_all(b"bin").unwrap();
            w.finish().unwrap();
        }
        let mut out = tempfile::tempfile().unwrap();
        let n = extract_one(
            tmp.path(),
            ArchiveKind::Zip,
            Wanted::FileNamed("opencode"),
            &mut out,
            "z",
        )
        .unwrap();
        assert_eq!(n, 3);

        let bad = tempfile::NamedTempFile::new().unwrap();
        {
            let mut w = zip::ZipWriter::new(bad.reopen().unwrap());
            w.start_file("../opencode", SimpleFileOptions::default())
                .unwrap();
            w.write_all(b"bin").unwrap();
            w.finish().unwrap();
        }
        let err = extract_one(
            bad.path(),
            ArchiveKind::Zip,
            Wanted::FileNamed("opencode"),
            &mut out,
            "z",
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ArchiveError::UnsafeEntry {
                    reason: UnsafeReason::ParentDir,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn kinds_and_segments() {
        assert_eq!(
            ArchiveKind::from_file_name("opencode-linux-x64.tar.gz"),
            Some(ArchiveKind::TarGz)
        );
        assert_eq!(ArchiveKind::from_file_name("x.ZIP"), Some(ArchiveKind::Zip));
        assert_eq!(
            ArchiveKind::from_file_name("openwork-server-linux-x64"),
            None
        );
        assert_eq!(
            last_segment("https://h/a/b.tgz?x=1").as_deref(),
            Some("b.tgz")
        );
    }
}
