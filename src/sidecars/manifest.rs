//! The remote sidecar manifest: fetching it (once per run, with bounded timeouts) and picking
//! the asset of one sidecar for one target.
//!
//! Format (see the host-mode reference §3.2):
//! `{version, entries: {name: {version, targets: {target: {asset|url, sha256, size}}}}}`.
//! Unlike the original, an entry without `sha256` is refused (it could not be verified), `size`
//! is checked when given, an opencode entry for another version than the pinned one is reported
//! rather than skipped silently, and a failed fetch is an error naming the URL and the cause.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::SidecarName;
use super::archive::{ArchiveKind, last_segment};
use super::target::Target;

/// The manifest file name appended to the base URL.
pub const MANIFEST_FILE: &str = "openwork-orchestrator-sidecars.json";

/// `<base without trailing />/openwork-orchestrator-sidecars.json`.
pub fn default_manifest_url(base_url: &str) -> String {
    format!("{}/{MANIFEST_FILE}", base_url.trim_end_matches('/'))
}

/// A parsed manifest. Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// The manifest's own version (informational).
    #[serde(default)]
    pub version: Option<String>,
    /// Entries by sidecar name.
    #[serde(default)]
    pub entries: BTreeMap<String, Entry>,
}

/// One sidecar's entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    /// The sidecar version the assets are.
    pub version: String,
    /// Assets by target name.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetAsset>,
}

/// One asset of one sidecar for one target.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TargetAsset {
    /// Asset file name, fetched from `<base>/<asset>`.
    #[serde(default)]
    pub asset: Option<String>,
    /// A full URL; wins over `asset`.
    #[serde(default)]
    pub url: Option<String>,
    /// Lower-case hex SHA-256 of the asset (required).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Size in bytes (checked when given).
    #[serde(default)]
    pub size: Option<u64>,
}

/// An asset ready to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Sidecar version.
    pub version: String,
    /// Where to fetch it.
    pub url: String,
    /// The asset's file name (for messages and the archive kind).
    pub file_name: String,
    /// Expected SHA-256, lower-case hex.
    pub sha256: String,
    /// Expected size, if the manifest gives it.
    pub size: Option<u64>,
    /// Set when the asset is an archive holding the binary.
    pub archive: Option<ArchiveKind>,
}

/// The manifest could not be fetched or parsed. Cloneable: the result is cached for the run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ManifestError {
    /// Connection failure (DNS, refused, TLS, reset, ...).
    #[error(
        "could not fetch the sidecar manifest {url}: {cause}. Check network access, or pass --sidecar-manifest URL / --sidecar-base-url URL"
    )]
    Network {
        /// The manifest URL.
        url: String,
        /// The error chain.
        cause: String,
    },
    /// The fetch took longer than the bound.
    #[error("fetching the sidecar manifest {url} timed out after {}s. Check network access, or pass --sidecar-manifest URL pointing at a reachable mirror", .timeout.as_secs_f32())]
    Timeout {
        /// The manifest URL.
        url: String,
        /// The bound that was hit.
        timeout: Duration,
    },
    /// A non-2xx answer.
    #[error(
        "the sidecar manifest {url} answered HTTP {status}. Check --sidecar-manifest / --sidecar-base-url"
    )]
    Http {
        /// The manifest URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// Not a manifest.
    #[error("the sidecar manifest {url} is not valid JSON of the expected shape: {cause}")]
    Invalid {
        /// The manifest URL.
        url: String,
        /// The parse error.
        cause: String,
    },
}

/// The manifest has no usable asset for this sidecar and target.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EntryError {
    /// No entry for the sidecar.
    #[error("the manifest {url} has no `{name}` entry")]
    NoEntry {
        /// Manifest URL.
        url: String,
        /// Sidecar.
        name: SidecarName,
    },
    /// An entry, but not for this target.
    #[error("the manifest {url} has no `{name}` {version} asset for target {target}")]
    NoTarget {
        /// Manifest URL.
        url: String,
        /// Sidecar.
        name: SidecarName,
        /// The entry's version.
        version: String,
        /// The target looked for.
        target: Target,
    },
    /// The opencode entry is not the pinned version.
    #[error(
        "the manifest {url} offers {name} {found}, but this openwork runs {expected}; use a manifest for this release"
    )]
    WrongVersion {
        /// Manifest URL.
        url: String,
        /// Sidecar.
        name: SidecarName,
        /// Pinned version.
        expected: String,
        /// Manifest version.
        found: String,
    },
    /// Neither `asset` nor `url`, or no file name in the URL.
    #[error(
        "the manifest {url} entry {name}/{target} has neither `asset` nor a `url` with a file name"
    )]
    NoLocation {
        /// Manifest URL.
        url: String,
        /// Sidecar.
        name: SidecarName,
        /// Target.
        target: Target,
    },
    /// No (valid) `sha256`: the download could not be verified, so it is refused.
    #[error(
        "the manifest {url} entry {name}/{target} has no valid sha256 (got {got:?}); refusing an unverifiable download"
    )]
    NoSha256 {
        /// Manifest URL.
        url: String,
        /// Sidecar.
        name: SidecarName,
        /// Target.
        target: Target,
        /// What the field held.
        got: Option<String>,
    },
}

/// Builds the HTTP client used for the manifest and downloads: bounded connect and read
/// timeouts, rustls, a user agent naming openwork.
pub fn http_client(connect: Duration, read: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(connect)
        .read_timeout(read)
        .user_agent(concat!("openwork/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| error_chain(&e))
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// GETs and parses the manifest; the whole request is bounded by `timeout`.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Manifest, ManifestError> {
    let net = |e: reqwest::Error| {
        if e.is_timeout() {
            ManifestError::Timeout {
                url: url.to_string(),
                timeout,
            }
        } else {
            ManifestError::Network {
                url: url.to_string(),
                cause: error_chain(&e),
            }
        }
    };
    let resp = client.get(url).timeout(timeout).send().await.map_err(net)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ManifestError::Http {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    let body = resp.bytes().await.map_err(net)?;
    serde_json::from_slice(&body).map_err(|e| ManifestError::Invalid {
        url: url.to_string(),
        cause: e.to_string(),
    })
}

impl Manifest {
    /// The asset of `name` for `target`. Relative assets resolve against `base_url`; when
    /// `pinned` is given the entry's version must equal it.
    pub fn asset_for(
        &self,
        manifest_url: &str,
        name: SidecarName,
        target: Target,
        base_url: &str,
        pinned: Option<&str>,
    ) -> Result<Asset, EntryError> {
        let url = manifest_url.to_string();
        let entry = self
            .entries
            .get(name.as_str())
            .ok_or_else(|| EntryError::NoEntry {
                url: url.clone(),
                name,
            })?;
        if let Some(expected) = pinned.filter(|p| entry.version.trim() != *p) {
            return Err(EntryError::WrongVersion {
                url,
                name,
                expected: expected.to_string(),
                found: entry.version.clone(),
            });
        }
        let t = entry
            .targets
            .get(target.as_str())
            .ok_or_else(|| EntryError::NoTarget {
                url: url.clone(),
                name,
                version: entry.version.clone(),
                target,
            })?;
        let explicit_url = t.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        let asset = t.asset.as_deref().map(str::trim).filter(|a| !a.is_empty());
        let (fetch_url, file_name) = match (explicit_url, asset) {
            (Some(u), a) => (
                u.to_string(),
                a.map(str::to_string).or_else(|| last_segment(u)),
            ),
            (None, Some(a)) => (
                format!("{}/{a}", base_url.trim_end_matches('/')),
                Some(a.to_string()),
            ),
            (None, None) => (String::new(), None),
        };
        let file_name = file_name.ok_or_else(|| EntryError::NoLocation {
            url: url.clone(),
            name,
            target,
        })?;
        let sha = t.sha256.as_deref().map(|s| s.trim().to_ascii_lowercase());
        let sha = match sha {
            Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => s,
            other => {
                return Err(EntryError::NoSha256 {
                    url,
                    name,
                    target,
                    got: other,
                });
            }
        };
        Ok(Asset {
            version: entry.version.trim().to_string(),
            url: fetch_url,
            archive: ArchiveKind::from_file_name(&file_name),
            file_name,
            sha256: sha,
            size: t.size,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn manifest(json: serde_json::Value) -> Manifest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn default_url_strips_trailing_slash() {
        assert_eq!(
            default_manifest_url("https://h/rel/"),
            "https://h/rel/openwork-orchestrator-sidecars.json"
        );
    }

    #[test]
    fn asset_resolves_against_base_and_url_wins() {
        let m = manifest(serde_json::json!({"version":"0.1","entries":{
            "openwork-server":{"version":"0.11.42","targets":{
                "linux-x64":{"asset":"openwork-server-linux-x64","sha256":SHA,"size":5},
                "darwin-arm64":{"url":" https://x/y/owsrv.zip ","sha256":SHA}}}}}));
        let a = m
            .asset_for(
                "m",
                SidecarName::OpenworkServer,
                Target::LINUX_X64,
                "https://b/",
                None,
            )
            .unwrap();
        assert_eq!(a.url, "https://b/openwork-server-linux-x64");
        assert_eq!(a.size, Some(5));
        assert_eq!(a.archive, None);
        let a = m
            .asset_for(
                "m",
                SidecarName::OpenworkServer,
                Target::DARWIN_ARM64,
                "https://b",
                None,
            )
            .unwrap();
        assert_eq!(a.url, "https://x/y/owsrv.zip");
        assert_eq!(a.file_name, "owsrv.zip");
        assert_eq!(a.archive, Some(ArchiveKind::Zip));
    }

    #[test]
    fn missing_sha_wrong_version_and_missing_target_are_named() {
        let m = manifest(serde_json::json!({"entries":{
            "opencode":{"version":"1.17.11","targets":{"linux-x64":{"asset":"o.tar.gz","sha256":SHA}}},
            "openwork-server":{"version":"1","targets":{"linux-x64":{"asset":"s"}}}}}));
        let e = m
            .asset_for(
                "M",
                SidecarName::Opencode,
                Target::LINUX_X64,
                "b",
                Some("1.18.34"),
            )
            .unwrap_err();
        assert!(
            e.to_string().contains("1.17.11") && e.to_string().contains("1.18.34"),
            "{e}"
        );
        let e = m
            .asset_for(
                "M",
                SidecarName::OpenworkServer,
                Target::LINUX_X64,
                "b",
                None,
            )
            .unwrap_err();
        assert!(matches!(e, EntryError::NoSha256 { .. }), "{e}");
        let e = m
            .asset_for(
                "M",
                SidecarName::OpenworkServer,
                Target::DARWIN_X64,
                "b",
                None,
            )
            .unwrap_err();
        assert!(e.to_string().contains("darwin-x64"), "{e}");
        let e = m
            .asset_for(
                "M",
                SidecarName::OpencodeRouter,
                Target::LINUX_X64,
                "b",
                None,
            )
            .unwrap_err();
        assert!(e.to_string().contains("opencode-router"), "{e}");
    }
}
