//! What resolution tried and why it failed: [`Attempt`] records for `--verbose`, and
//! [`ResolveError`], whose `Display` names the sidecar, every attempt with its cause, and the
//! flags that would fix it, in one message.

use std::fmt;

use camino::Utf8PathBuf;

use super::cache::CacheError;
use super::download::DownloadError;
use super::manifest::{EntryError, ManifestError};
use super::npm::NpmError;
use super::{SidecarName, SourcePolicy};

/// One step of a resolution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This executable (or an `opencode` next to it).
    Bundled,
    /// A verified entry in the sidecar cache.
    Cache,
    /// A download listed in the sidecar manifest.
    Manifest,
    /// The pinned npm package, fetched with the user's `npm`.
    Npm,
    /// A binary named on the command line or found on PATH (`--allow-external`).
    External,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Bundled => "bundled",
            Step::Cache => "cache",
            Step::Manifest => "manifest",
            Step::Npm => "npm",
            Step::External => "external",
        })
    }
}

/// One thing resolution tried, and how it went.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// What was tried.
    pub step: Step,
    /// The binary found, or why the step failed.
    pub result: Result<Utf8PathBuf, AttemptError>,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Ok(path) => write!(f, "{}: using {path}", self.step),
            Err(e) => write!(f, "{}: {e}", self.step),
        }
    }
}

/// Why one step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AttemptError {
    /// No bundled binary at the expected place.
    #[error("no bundled {name} at {path}")]
    BundledMissing {
        /// Sidecar.
        name: SidecarName,
        /// Where it was looked for.
        path: Utf8PathBuf,
    },
    /// This executable's path is unknown.
    #[error("cannot locate this executable: {cause}")]
    CurrentExe {
        /// OS error.
        cause: String,
    },
    /// Nothing cached for an unpinned sidecar.
    #[error("nothing cached under {dir}")]
    NothingCached {
        /// `<sidecar-dir>/<name>`.
        dir: Utf8PathBuf,
    },
    /// The cache entry is missing or unusable.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The manifest could not be fetched.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The manifest has no usable entry.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// The download failed or did not verify.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The npm fetch failed.
    #[error(transparent)]
    Npm(#[from] NpmError),
    /// External binaries are off.
    #[error("not allowed without --allow-external")]
    ExternalNotAllowed,
    /// Not on PATH.
    #[error("`{name}` not found on PATH")]
    NotOnPath {
        /// The name looked up.
        name: String,
    },
}

/// Resolution failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// A source value that does not exist (or is not valid for this sidecar).
    #[error(transparent)]
    InvalidPolicy(#[from] PolicyParseError),
    /// `--*-bin` without `--allow-external`.
    #[error("{flag} {path} requires --allow-external (openwork runs binaries it did not verify only when asked to)", flag = .name.bin_flag())]
    ExplicitNeedsAllowExternal {
        /// Sidecar.
        name: SidecarName,
        /// The explicit path.
        path: Utf8PathBuf,
    },
    /// `--*-bin` with a policy other than auto/external.
    #[error("{flag} requires {source_flag} external or auto (got {policy})", flag = .name.bin_flag(), source_flag = .name.source_flag())]
    ExplicitNeedsExternalPolicy {
        /// Sidecar.
        name: SidecarName,
        /// The policy given.
        policy: SourcePolicy,
    },
    /// `--*-bin` names a file that does not exist.
    #[error("{flag} not found: {path}. Check the path, or drop {flag} to use the bundled or downloaded {name}", flag = .name.bin_flag())]
    ExplicitNotFound {
        /// Sidecar.
        name: SidecarName,
        /// The path (absolute) or name looked for.
        path: Utf8PathBuf,
    },
    /// `--*-source external` without `--allow-external`.
    #[error("External {name} requires --allow-external (or choose another {source_flag})", source_flag = .name.source_flag())]
    ExternalNotAllowed {
        /// Sidecar.
        name: SidecarName,
    },
    /// Every step of the policy failed.
    #[error("{}", all_failed_text(*.name, *.policy, .attempts))]
    AllFailed {
        /// Sidecar.
        name: SidecarName,
        /// The policy that was followed.
        policy: SourcePolicy,
        /// Every step and why it failed.
        attempts: Vec<Attempt>,
    },
}

/// A source value that is not one of the allowed ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid {flag} value: {value}. Use {allowed}.")]
pub struct PolicyParseError {
    /// `opencode-source` or `sidecar-source`.
    pub flag: &'static str,
    /// The value as given.
    pub value: String,
    /// The allowed values, `|`-separated.
    pub allowed: &'static str,
}

/// The one message of [`ResolveError::AllFailed`].
fn all_failed_text(name: SidecarName, policy: SourcePolicy, attempts: &[Attempt]) -> String {
    let tried: Vec<String> = attempts.iter().map(|a| a.step.to_string()).collect();
    let mut text = format!(
        "Could not resolve {name} ({} {policy}): tried {}.",
        name.source_flag(),
        tried.join(", ")
    );
    for (i, a) in attempts.iter().enumerate() {
        text.push_str(&format!("\n  {}. {a}", i + 1));
    }
    text.push_str("\nTo fix it, any of:");
    for hint in hints(name, attempts) {
        text.push_str("\n  - ");
        text.push_str(&hint);
    }
    text
}

/// The flags and actions that would make resolution succeed.
fn hints(name: SidecarName, attempts: &[Attempt]) -> Vec<String> {
    let mut out = Vec::new();
    let tried = |s: Step| attempts.iter().any(|a| a.step == s);
    if tried(Step::Manifest) {
        out.push(
            "restore network access to the manifest, or pass --sidecar-manifest URL / --sidecar-base-url URL for a reachable mirror"
                .to_string(),
        );
    }
    if name == SidecarName::Opencode {
        let npm_missing = attempts
            .iter()
            .any(|a| matches!(a.result, Err(AttemptError::Npm(NpmError::NotOnPath { .. }))));
        if npm_missing {
            out.push(
                "install Node.js and npm (opencode is then fetched from its npm package)"
                    .to_string(),
            );
        } else if tried(Step::Npm) {
            out.push(
                "check your npm registry, proxy and credentials (npm config get registry)"
                    .to_string(),
            );
        } else {
            out.push("pass --opencode-source npm to fetch opencode with npm".to_string());
        }
    }
    out.push(format!(
        "pass {} PATH --allow-external to use a binary you provide",
        name.bin_flag()
    ));
    if !tried(Step::External) {
        out.push(format!(
            "pass --allow-external {} external to use `{name}` from PATH",
            name.source_flag()
        ));
    }
    out
}
