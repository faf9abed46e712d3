//! Downloading a manifest asset into the cache: stream to a temp file in the cache directory
//! while hashing, check size and SHA-256, extract the binary if the asset is an archive, then
//! install it atomically with a stamp.
//!
//! Threat: a mirror, proxy or truncated transfer delivering other bytes than the manifest
//! promises. Nothing reaches its final name before the digest matched; every temp file is
//! deleted on any failure (drop of `NamedTempFile`), so the cache never holds a half-written or
//! unverified file. Connect and read stalls are bounded by the client's timeouts.

use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::archive::{self, ArchiveError, Wanted};
use super::cache::{self, CacheError, CommitError, Origin, Stamp};
use super::manifest::{Asset, error_chain};

/// Why a manifest asset could not be installed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DownloadError {
    /// Connection or transfer failure.
    #[error(
        "download of {url} failed: {cause}. Check network access, or pass --sidecar-base-url / --sidecar-manifest for a reachable mirror"
    )]
    Network {
        /// The asset URL.
        url: String,
        /// The error chain.
        cause: String,
    },
    /// A non-2xx answer.
    #[error(
        "download of {url} failed with HTTP {status}. Check the manifest entry or --sidecar-base-url"
    )]
    Http {
        /// The asset URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// The body had another size than the manifest says.
    #[error(
        "size mismatch for {url}: the manifest says {expected} bytes, got {actual}; nothing was cached"
    )]
    SizeMismatch {
        /// The asset URL.
        url: String,
        /// Manifest size.
        expected: u64,
        /// Received size.
        actual: u64,
    },
    /// The body's SHA-256 differs from the manifest's.
    #[error(
        "checksum mismatch for {url} (destined for {file}): expected sha256 {expected}, got {actual}; nothing was cached. The manifest or the mirror is wrong: check --sidecar-manifest / --sidecar-base-url"
    )]
    ChecksumMismatch {
        /// The asset URL.
        url: String,
        /// Where it would have been cached.
        file: Utf8PathBuf,
        /// Manifest SHA-256.
        expected: String,
        /// Received SHA-256.
        actual: String,
    },
    /// The archive was refused or did not hold the binary.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A cache file system error.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// An installed download.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The cached binary.
    pub path: Utf8PathBuf,
    /// Its stamp.
    #[allow(dead_code)] // read by tests; kept for diagnostics
    pub stamp: Stamp,
    /// Bytes transferred.
    pub bytes: u64,
    /// Wall time of the fetch and install.
    pub elapsed: std::time::Duration,
}

/// Downloads `asset`, verifies it and installs the binary at `binary` (the cache path).
pub async fn install_asset(
    client: &reqwest::Client,
    asset: &Asset,
    binary: &Utf8Path,
    origin: Origin,
) -> Result<Installed, DownloadError> {
    let started = Instant::now();
    let dir = binary.parent().unwrap_or(Utf8Path::new("."));
    // The asset (binary or archive) lands in a temp file beside the final name.
    let download = cache::begin(&dir.join(&asset.file_name))?;
    let (sha, bytes) = fetch_into(client, &asset.url, &download, binary).await?;
    if let Some(expected) = asset.size.filter(|&e| e != bytes) {
        return Err(DownloadError::SizeMismatch {
            url: asset.url.clone(),
            expected,
            actual: bytes,
        });
    }
    if sha != asset.sha256 {
        return Err(DownloadError::ChecksumMismatch {
            url: asset.url.clone(),
            file: binary.to_owned(),
            expected: asset.sha256.clone(),
            actual: sha,
        });
    }
    let binary_owned = binary.to_owned();
    let asset_owned = asset.clone();
    let stamp = tokio::task::spawn_blocking(move || -> Result<Stamp, DownloadError> {
        let commit_err = |e: CommitError| match e {
            CommitError::Cache(c) => DownloadError::Cache(c),
            CommitError::Mismatch { expected, actual } => DownloadError::ChecksumMismatch {
                url: asset_owned.url.clone(),
                file: binary_owned.clone(),
                expected,
                actual,
            },
        };
        match asset_owned.archive {
            None => cache::commit(download, &binary_owned, origin, Some(&asset_owned.sha256))
                .map_err(commit_err),
            Some(kind) => {
                let mut out = cache::begin(&binary_owned)?;
                let wanted = binary_owned.file_name().unwrap_or("opencode");
                archive::extract_one(
                    download.path(),
                    kind,
                    Wanted::FileNamed(wanted),
                    out.as_file_mut(),
                    &asset_owned.url,
                )?;
                drop(download);
                cache::commit(out, &binary_owned, origin, None).map_err(commit_err)
            }
        }
    })
    .await
    .map_err(|e| {
        DownloadError::Cache(CacheError::Io {
            path: binary.to_owned(),
            cause: e.to_string(),
        })
    })??;
    Ok(Installed {
        path: binary.to_owned(),
        stamp,
        bytes,
        elapsed: started.elapsed(),
    })
}

/// Streams `url` into `tmp`, returning the body's SHA-256 (hex) and size.
async fn fetch_into(
    client: &reqwest::Client,
    url: &str,
    tmp: &tempfile::NamedTempFile,
    binary: &Utf8Path,
) -> Result<(String, u64), DownloadError> {
    let net = |e: reqwest::Error| DownloadError::Network {
        url: url.to_string(),
        cause: error_chain(&e),
    };
    let io = |e: std::io::Error| {
        DownloadError::Cache(CacheError::Io {
            path: binary.to_owned(),
            cause: e.to_string(),
        })
    };
    let mut resp = client.get(url).send().await.map_err(net)?;
    if !resp.status().is_success() {
        return Err(DownloadError::Http {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    let mut file = tokio::fs::File::from_std(tmp.as_file().try_clone().map_err(io)?);
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(net)? {
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    Ok((hex::encode(hasher.finalize()), bytes))
}
