//! Sidecar resolution: finding the `opencode`, `openwork-server` and `opencode-router`
//! binaries a run needs, per source policy, and recording where each came from.
//!
//! Sources: **bundled** (this multi-call executable for openwork-server/opencode-router; an
//! `opencode` file next to it), **cache** (a stamped, verified entry under
//! `<sidecar-dir>/<name>/<version>/<target>/`), **manifest** downloads (SHA-256 pinned by the
//! manifest), **npm** (opencode's pinned package, fetched with the user's `npm`, SHA-512 pinned
//! here) and **external** binaries (only with `--allow-external`).
//!
//! Threat: running a binary other than the one intended: a tampered mirror, a truncated download,
//! a cached file changed later, an archive entry escaping. Every fetched byte is checked against a
//! pinned digest before it gets its final name; the cache is re-verified cheaply on each start.
//! Unverified binaries run only when the user says so (`--allow-external`). Failures are never
//! silent: each step is recorded as an [`Attempt`] and a failure lists them all with the fix.
//!
//! ```ignore
//! let settings = ResolveSettings::new(sidecar_dir, base_url, Target::host().unwrap());
//! let resolver = Resolver::new(settings, Box::new(StderrProgress { verbose }));
//! let opencode = resolver.resolve(&SidecarRequest::new(SidecarName::Opencode, policy)).await?;
//! ```

mod archive;
pub mod cache;
mod download;
mod error;
mod local;
mod manifest;
mod npm;
mod pins;
mod progress;
mod target;

use std::ffi::OsString;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

pub use archive::{ArchiveError, UnsafeReason};
pub use cache::CacheError;
pub use download::DownloadError;
pub use error::{Attempt, AttemptError, PolicyParseError, ResolveError, Step};
pub use manifest::{EntryError, Manifest, ManifestError, default_manifest_url};
pub use npm::NpmError;
pub use pins::{NpmPin, OPENCODE_VERSION, PinTable};
pub use progress::{FetchDone, FetchStart, LiveProgress, NullProgress, Progress, StderrProgress};
pub use target::{Target, TargetParseError};

/// The three sidecars a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SidecarName {
    /// The coding agent.
    Opencode,
    /// The remote-control HTTP server.
    OpenworkServer,
    /// The chat bridge.
    OpencodeRouter,
}

impl SidecarName {
    /// The binary's name: `opencode`, `openwork-server`, `opencode-router`.
    pub fn as_str(self) -> &'static str {
        match self {
            SidecarName::Opencode => "opencode",
            SidecarName::OpenworkServer => "openwork-server",
            SidecarName::OpencodeRouter => "opencode-router",
        }
    }

    /// The flag naming an explicit binary.
    pub fn bin_flag(self) -> &'static str {
        match self {
            SidecarName::Opencode => "--opencode-bin",
            SidecarName::OpenworkServer => "--openwork-server-bin",
            SidecarName::OpencodeRouter => "--opencode-router-bin",
        }
    }

    /// The flag choosing the source policy.
    pub fn source_flag(self) -> &'static str {
        match self {
            SidecarName::Opencode => "--opencode-source",
            SidecarName::OpenworkServer | SidecarName::OpencodeRouter => "--sidecar-source",
        }
    }

    /// The role argument of this executable that plays the sidecar, if it can.
    fn role_arg(self) -> Option<&'static str> {
        match self {
            SidecarName::Opencode => None,
            SidecarName::OpenworkServer => Some("server"),
            SidecarName::OpencodeRouter => Some("router"),
        }
    }
}

impl fmt::Display for SidecarName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a sidecar may come from (`--opencode-source`, `--sidecar-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePolicy {
    /// Try every source in order (see [`plan`]).
    Auto,
    /// Only the bundled binary.
    Bundled,
    /// Only the cache or a manifest download.
    Downloaded,
    /// Only an explicit path or PATH (needs `--allow-external`).
    External,
    /// Only the cache or the pinned npm package (opencode only).
    Npm,
}

impl SourcePolicy {
    /// Parses a source value for `name`: trimmed, case-insensitive; `npm` only for opencode.
    pub fn parse_for(name: SidecarName, value: &str) -> Result<Self, PolicyParseError> {
        let (flag, allowed) = match name {
            SidecarName::Opencode => ("opencode-source", "auto|bundled|downloaded|external|npm"),
            _ => ("sidecar-source", "auto|bundled|downloaded|external"),
        };
        let policy = match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(SourcePolicy::Auto),
            "bundled" => Some(SourcePolicy::Bundled),
            "downloaded" => Some(SourcePolicy::Downloaded),
            "external" => Some(SourcePolicy::External),
            "npm" if name == SidecarName::Opencode => Some(SourcePolicy::Npm),
            _ => None,
        };
        policy.ok_or_else(|| PolicyParseError {
            flag,
            value: value.to_string(),
            allowed,
        })
    }
}

impl FromStr for SourcePolicy {
    type Err = PolicyParseError;

    /// Parses an `--opencode-source` value (the superset); use [`SourcePolicy::parse_for`] for
    /// `--sidecar-source`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SourcePolicy::parse_for(SidecarName::Opencode, s)
    }
}

impl fmt::Display for SourcePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourcePolicy::Auto => "auto",
            SourcePolicy::Bundled => "bundled",
            SourcePolicy::Downloaded => "downloaded",
            SourcePolicy::External => "external",
            SourcePolicy::Npm => "npm",
        })
    }
}

/// Where a resolved binary came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This executable, or an `opencode` next to it.
    Bundled,
    /// A verified cache entry from an earlier run.
    Cache,
    /// Downloaded from the manifest in this run.
    Downloaded,
    /// Fetched from npm in this run.
    Npm,
    /// Explicit path or PATH.
    External,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Bundled => "bundled",
            Source::Cache => "cache",
            Source::Downloaded => "downloaded",
            Source::Npm => "npm",
            Source::External => "external",
        })
    }
}

/// Everything resolution needs, taken from the run plan (nothing here reads env vars).
#[derive(Debug, Clone)]
pub struct ResolveSettings {
    /// Cache root (`--sidecar-dir`).
    pub sidecar_dir: Utf8PathBuf,
    /// Base for relative manifest assets (`--sidecar-base-url`).
    pub base_url: String,
    /// Manifest URL (`--sidecar-manifest`, else [`default_manifest_url`]).
    pub manifest_url: String,
    /// Target to resolve for (host, or a Linux target for a sandbox).
    pub target: Target,
    /// `--allow-external`.
    pub allow_external: bool,
    /// `--verify-sidecars`: re-hash cached binaries even when their stamp matches.
    pub verify: bool,
    /// Bound on the whole manifest fetch.
    pub manifest_timeout: Duration,
    /// PATH used to find npm and external binaries (`None`: this process's).
    pub path_env: Option<OsString>,
    /// Bound on connecting for the manifest and downloads.
    pub connect_timeout: Duration,
    /// Bound on a stalled read during a download.
    pub read_timeout: Duration,
    /// Pinned npm packages (tests substitute their own).
    pub npm_pins: PinTable,
    /// Extra environment for the `npm` child (tests point `npm_config_registry` at a stand-in).
    pub npm_env: Vec<(OsString, OsString)>,
    /// Bound on the whole `npm pack`.
    pub npm_timeout: Duration,
    /// This executable (`None`: from the OS); tests point it at a temp dir.
    pub current_exe: Option<Utf8PathBuf>,
}

impl ResolveSettings {
    /// Settings with the defaults: manifest from the base URL, no external binaries, 10 s
    /// manifest bound, 5 s connect bound, 30 s read stall bound, 15 min npm bound, built-in pins.
    pub fn new(sidecar_dir: Utf8PathBuf, base_url: impl Into<String>, target: Target) -> Self {
        let base_url = base_url.into();
        ResolveSettings {
            sidecar_dir,
            manifest_url: default_manifest_url(&base_url),
            base_url,
            target,
            allow_external: false,
            verify: false,
            manifest_timeout: Duration::from_secs(10),
            path_env: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            npm_pins: PinTable::pinned(),
            npm_env: Vec::new(),
            npm_timeout: Duration::from_secs(15 * 60),
            current_exe: None,
        }
    }
}

/// One sidecar to resolve.
#[derive(Debug, Clone)]
pub struct SidecarRequest {
    /// Which sidecar.
    pub name: SidecarName,
    /// Its source policy.
    pub policy: SourcePolicy,
    /// `--opencode-bin` / `--openwork-server-bin` / `--opencode-router-bin`.
    pub explicit_bin: Option<Utf8PathBuf>,
}

impl SidecarRequest {
    /// A request without an explicit binary.
    pub fn new(name: SidecarName, policy: SourcePolicy) -> Self {
        SidecarRequest {
            name,
            policy,
            explicit_bin: None,
        }
    }
}

/// A resolved sidecar: what to run and where it came from.
#[derive(Debug, Clone)]
pub struct ResolvedSidecar {
    /// Which sidecar.
    pub name: SidecarName,
    /// The executable.
    pub path: Utf8PathBuf,
    /// Where it came from.
    pub source: Source,
    /// Its version when known without running it (pinned, manifest, or this build's).
    pub version: Option<String>,
    /// Arguments before the sidecar's own, e.g. `["server"]` when it is this executable.
    pub args_prefix: Vec<String>,
    /// What was tried, in order, for `--verbose`.
    pub attempts: Vec<Attempt>,
}

/// The steps a policy tries, in order. Pure; `allow_external` adds PATH as a last resort to
/// `auto` (recorded as an attempt, never silent).
pub fn plan(name: SidecarName, policy: SourcePolicy, allow_external: bool) -> Vec<Step> {
    match policy {
        SourcePolicy::Bundled => vec![Step::Bundled],
        SourcePolicy::Downloaded => vec![Step::Cache, Step::Manifest],
        SourcePolicy::Npm => vec![Step::Cache, Step::Npm],
        SourcePolicy::External => vec![Step::External],
        SourcePolicy::Auto => {
            let mut steps = vec![Step::Bundled, Step::Cache, Step::Manifest];
            if name == SidecarName::Opencode {
                steps.push(Step::Npm);
            }
            if allow_external {
                steps.push(Step::External);
            }
            steps
        }
    }
}

/// What a successful step found.
struct Found {
    path: Utf8PathBuf,
    source: Source,
    version: Option<String>,
    args_prefix: Vec<String>,
}

impl Found {
    fn plain(path: Utf8PathBuf, source: Source, version: Option<String>) -> Self {
        Found {
            path,
            source,
            version,
            args_prefix: Vec::new(),
        }
    }
}

/// Resolves sidecars for one run. Holds the settings, one HTTP client, the manifest (fetched at
/// most once, success or failure) and the progress sink.
pub struct Resolver {
    /// From the run plan.
    settings: ResolveSettings,
    /// Where fetch lines and attempts go.
    progress: Box<dyn Progress>,
    /// Shared client with bounded timeouts (or why it could not be built).
    client: Result<reqwest::Client, String>,
    /// The manifest, fetched on first need.
    manifest: tokio::sync::OnceCell<Result<Arc<Manifest>, ManifestError>>,
}

impl Resolver {
    /// A resolver for one run.
    pub fn new(settings: ResolveSettings, progress: Box<dyn Progress>) -> Self {
        let client = manifest::http_client(settings.connect_timeout, settings.read_timeout);
        Resolver {
            settings,
            progress,
            client,
            manifest: tokio::sync::OnceCell::new(),
        }
    }

    /// The settings this resolver was built with.
    pub fn settings(&self) -> &ResolveSettings {
        &self.settings
    }

    /// Resolves one sidecar by its policy; see [`plan`] for the order.
    pub async fn resolve(&self, req: &SidecarRequest) -> Result<ResolvedSidecar, ResolveError> {
        let name = req.name;
        if req.policy == SourcePolicy::Npm && name != SidecarName::Opencode {
            return Err(ResolveError::InvalidPolicy(PolicyParseError {
                flag: "sidecar-source",
                value: "npm".to_string(),
                allowed: "auto|bundled|downloaded|external",
            }));
        }
        if let Some(bin) = &req.explicit_bin {
            return self.resolve_explicit(name, req.policy, bin);
        }
        if req.policy == SourcePolicy::External && !self.settings.allow_external {
            return Err(ResolveError::ExternalNotAllowed { name });
        }
        let mut attempts = Vec::new();
        for step in plan(name, req.policy, self.settings.allow_external) {
            let result = self.run_step(name, step).await;
            let attempt = Attempt {
                step,
                result: result
                    .as_ref()
                    .map(|f| f.path.clone())
                    .map_err(Clone::clone),
            };
            self.progress.attempt(name, &attempt);
            attempts.push(attempt);
            if let Ok(found) = result {
                return Ok(ResolvedSidecar {
                    name,
                    path: found.path,
                    source: found.source,
                    version: found.version,
                    args_prefix: found.args_prefix,
                    attempts,
                });
            }
        }
        Err(ResolveError::AllFailed {
            name,
            policy: req.policy,
            attempts,
        })
    }

    /// `--*-bin PATH`: needs `--allow-external` and policy auto/external; must exist.
    fn resolve_explicit(
        &self,
        name: SidecarName,
        policy: SourcePolicy,
        bin: &Utf8Path,
    ) -> Result<ResolvedSidecar, ResolveError> {
        if !self.settings.allow_external {
            return Err(ResolveError::ExplicitNeedsAllowExternal {
                name,
                path: bin.to_owned(),
            });
        }
        if !matches!(policy, SourcePolicy::Auto | SourcePolicy::External) {
            return Err(ResolveError::ExplicitNeedsExternalPolicy { name, policy });
        }
        let path = if local::is_path_like(bin.as_str()) {
            let abs = local::absolute(bin);
            if !abs.is_file() {
                return Err(ResolveError::ExplicitNotFound { name, path: abs });
            }
            abs
        } else {
            local::find_on_path(bin.as_str(), self.settings.path_env.as_deref()).ok_or_else(
                || ResolveError::ExplicitNotFound {
                    name,
                    path: bin.to_owned(),
                },
            )?
        };
        let attempt = Attempt {
            step: Step::External,
            result: Ok(path.clone()),
        };
        self.progress.attempt(name, &attempt);
        Ok(ResolvedSidecar {
            name,
            path,
            source: Source::External,
            version: None,
            args_prefix: Vec::new(),
            attempts: vec![attempt],
        })
    }

    async fn run_step(&self, name: SidecarName, step: Step) -> Result<Found, AttemptError> {
        match step {
            Step::Bundled => self.bundled(name),
            Step::Cache => self.cached(name).await,
            Step::Manifest => self.via_manifest(name).await,
            Step::Npm => self.via_npm().await,
            Step::External => self.external(name),
        }
    }

    fn bundled(&self, name: SidecarName) -> Result<Found, AttemptError> {
        let exe = local::current_exe(self.settings.current_exe.as_deref())
            .map_err(|cause| AttemptError::CurrentExe { cause })?;
        match name.role_arg() {
            Some(role) => Ok(Found {
                path: exe,
                source: Source::Bundled,
                version: Some(env!("CARGO_PKG_VERSION").to_string()),
                args_prefix: vec![role.to_string()],
            }),
            None => {
                let path = exe
                    .parent()
                    .map(|d| d.join(name.as_str()))
                    .unwrap_or_else(|| Utf8PathBuf::from(name.as_str()));
                if local::is_executable_file(path.as_std_path()) {
                    Ok(Found::plain(path, Source::Bundled, None))
                } else {
                    Err(AttemptError::BundledMissing { name, path })
                }
            }
        }
    }

    /// The cache path of `name`: pinned version for opencode, else the newest stamped one.
    fn cache_binary(&self, name: SidecarName) -> Result<Utf8PathBuf, AttemptError> {
        let s = &self.settings;
        let version = match name {
            SidecarName::Opencode => Some(OPENCODE_VERSION.to_string()),
            _ => cache::newest_stamped_version(&s.sidecar_dir, name, s.target),
        };
        version
            .map(|v| cache::binary_path(&s.sidecar_dir, name, &v, s.target))
            .ok_or_else(|| AttemptError::NothingCached {
                dir: s.sidecar_dir.join(name.as_str()),
            })
    }

    async fn verify_cached(&self, binary: Utf8PathBuf) -> Result<cache::Verified, CacheError> {
        let force = self.settings.verify;
        let path = binary.clone();
        tokio::task::spawn_blocking(move || cache::verify(&path, force))
            .await
            .map_err(|e| CacheError::Io {
                path: binary,
                cause: e.to_string(),
            })?
    }

    async fn cached(&self, name: SidecarName) -> Result<Found, AttemptError> {
        let binary = self.cache_binary(name)?;
        let v = self.verify_cached(binary).await?;
        Ok(Found::plain(v.path, Source::Cache, Some(v.stamp.version)))
    }

    async fn manifest(&self) -> Result<Arc<Manifest>, ManifestError> {
        self.manifest
            .get_or_init(|| async {
                let client = self
                    .client
                    .as_ref()
                    .map_err(|cause| ManifestError::Network {
                        url: self.settings.manifest_url.clone(),
                        cause: cause.clone(),
                    })?;
                manifest::fetch(
                    client,
                    &self.settings.manifest_url,
                    self.settings.manifest_timeout,
                )
                .await
                .map(Arc::new)
            })
            .await
            .clone()
    }

    async fn via_manifest(&self, name: SidecarName) -> Result<Found, AttemptError> {
        let s = &self.settings;
        let manifest = self.manifest().await?;
        let pinned = (name == SidecarName::Opencode).then_some(OPENCODE_VERSION);
        let asset = manifest.asset_for(&s.manifest_url, name, s.target, &s.base_url, pinned)?;
        let binary = cache::binary_path(&s.sidecar_dir, name, &asset.version, s.target);
        // Already cached under the manifest's version (possible for unpinned sidecars)?
        if let Ok(v) = self.verify_cached(binary.clone()).await {
            return Ok(Found::plain(v.path, Source::Cache, Some(v.stamp.version)));
        }
        let client = self
            .client
            .as_ref()
            .map_err(|cause| DownloadError::Network {
                url: asset.url.clone(),
                cause: cause.clone(),
            })?;
        self.progress.fetch_started(&FetchStart {
            name,
            source: Source::Downloaded,
            from: asset.url.clone(),
            version: asset.version.clone(),
            target: s.target,
            cache_path: binary.clone(),
        });
        let origin = cache::Origin {
            name,
            version: asset.version.clone(),
            target: s.target,
            origin: asset.url.clone(),
        };
        let installed = download::install_asset(client, &asset, &binary, origin).await?;
        self.progress.fetch_finished(&FetchDone {
            name,
            bytes: installed.bytes,
            elapsed: installed.elapsed,
        });
        Ok(Found::plain(
            installed.path,
            Source::Downloaded,
            Some(asset.version),
        ))
    }

    async fn via_npm(&self) -> Result<Found, AttemptError> {
        let s = &self.settings;
        let pin = s
            .npm_pins
            .for_target(s.target)
            .ok_or_else(|| NpmError::NoPin {
                target: s.target,
                version: OPENCODE_VERSION.to_string(),
            })?;
        let binary = cache::binary_path(
            &s.sidecar_dir,
            SidecarName::Opencode,
            &pin.version,
            s.target,
        );
        let ctx = npm::NpmContext {
            path_env: s.path_env.clone(),
            extra_env: s.npm_env.clone(),
            timeout: s.npm_timeout,
        };
        self.progress.fetch_started(&FetchStart {
            name: SidecarName::Opencode,
            source: Source::Npm,
            from: pin.spec(),
            version: pin.version.clone(),
            target: s.target,
            cache_path: binary.clone(),
        });
        let installed = npm::install(&ctx, pin, &binary, s.target).await?;
        self.progress.fetch_finished(&FetchDone {
            name: SidecarName::Opencode,
            bytes: installed.bytes,
            elapsed: installed.elapsed,
        });
        Ok(Found::plain(
            installed.path,
            Source::Npm,
            Some(pin.version.clone()),
        ))
    }

    fn external(&self, name: SidecarName) -> Result<Found, AttemptError> {
        if !self.settings.allow_external {
            return Err(AttemptError::ExternalNotAllowed);
        }
        local::find_on_path(name.as_str(), self.settings.path_env.as_deref())
            .map(|p| Found::plain(p, Source::External, None))
            .ok_or_else(|| AttemptError::NotOnPath {
                name: name.as_str().to_string(),
            })
    }
}

#[cfg(test)]
mod tests;
