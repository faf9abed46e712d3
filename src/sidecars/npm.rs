//! Fetching opencode from its npm package with the user's own `npm` client.
//!
//! `npm pack <pkg>@<version>` runs in a fresh temp directory, so the user's npm configuration
//! (registry, proxy, credentials, `npm_config_*` env) decides where the tarball comes from, the
//! way `npm install` would. openwork then checks the tarball against the pinned SHA-512
//! integrity itself, extracts only `package/bin/opencode` (refusing links, absolute paths and
//! `..`), and installs it atomically in the cache with a stamp.
//!
//! Threat: a registry, mirror or proxy serving other bytes; a tarball whose entries escape.
//! Both are refused before anything reaches the cache. Left open: npm's own code and config
//! run with the user's rights (it is the user's tool).

use std::ffi::OsString;
use std::time::{Duration, Instant};

use base64::Engine as _;
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha512};

use super::archive::{self, ArchiveError, ArchiveKind, Wanted};
use super::cache::{self, CacheError, CommitError, Origin, Stamp};
use super::pins::NpmPin;
use super::target::Target;

/// The path of the binary inside the npm package tarball.
pub const PACKAGE_BINARY: &str = "package/bin/opencode";

/// Why opencode could not be fetched from npm.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NpmError {
    /// No npm package is published for this target at the pinned version.
    #[error(
        "no pinned npm package of opencode {version} for target {target}. Pass --opencode-bin PATH --allow-external, or use a sidecar manifest (--sidecar-manifest URL)"
    )]
    NoPin {
        /// The target.
        target: Target,
        /// The pinned opencode version.
        version: String,
    },
    /// `npm` is not on PATH.
    #[error(
        "npm was not found on PATH ({path}). Install Node.js and npm, or pass --opencode-bin PATH --allow-external, or use a sidecar manifest (--sidecar-manifest URL)"
    )]
    NotOnPath {
        /// The PATH searched.
        path: String,
    },
    /// `npm` could not be started.
    #[error(
        "could not run {npm}: {cause}. Check the npm installation, or pass --opencode-bin PATH --allow-external"
    )]
    Spawn {
        /// The npm executable.
        npm: Utf8PathBuf,
        /// The OS error.
        cause: String,
    },
    /// `npm pack` failed; carries npm's own message.
    #[error(
        "npm pack {spec} failed ({status}): {stderr}. Check your npm registry, proxy and credentials (npm config get registry), or pass --opencode-bin PATH --allow-external"
    )]
    PackFailed {
        /// `<package>@<version>`.
        spec: String,
        /// Exit status description.
        status: String,
        /// npm's stderr (trimmed to its last lines).
        stderr: String,
    },
    /// `npm pack` did not finish in time.
    #[error("npm pack {spec} did not finish within {}s. Check the network and your npm registry/proxy, or pass --opencode-bin PATH --allow-external", .timeout.as_secs())]
    Timeout {
        /// `<package>@<version>`.
        spec: String,
        /// The bound.
        timeout: Duration,
    },
    /// `npm pack` succeeded but left no tarball.
    #[error("npm pack {spec} reported success but left no tarball in {dir}")]
    NoTarball {
        /// `<package>@<version>`.
        spec: String,
        /// The pack destination.
        dir: Utf8PathBuf,
    },
    /// The pin is not a `sha512-` integrity string.
    #[error("the pinned integrity for {spec} is not a sha512 integrity string: {integrity}")]
    BadPin {
        /// `<package>@<version>`.
        spec: String,
        /// The pin.
        integrity: String,
    },
    /// The tarball is not the pinned one.
    #[error(
        "integrity mismatch for npm package {spec}: expected {expected}, got {actual}; nothing was cached. Your registry or proxy served a different tarball; check `npm config get registry`"
    )]
    IntegrityMismatch {
        /// `<package>@<version>`.
        spec: String,
        /// The pinned integrity.
        expected: String,
        /// The tarball's integrity.
        actual: String,
    },
    /// The tarball was refused or lacks the binary.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A cache file system error.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// How to run npm.
#[derive(Debug, Clone)]
pub struct NpmContext {
    /// PATH to find npm on and to give the npm child (`None`: this process's PATH).
    pub path_env: Option<OsString>,
    /// Extra environment for the npm child (e.g. `npm_config_registry` in tests).
    pub extra_env: Vec<(OsString, OsString)>,
    /// Bound on the whole `npm pack`.
    pub timeout: Duration,
}

/// An installed npm fetch.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The cached binary.
    pub path: Utf8PathBuf,
    /// Its stamp.
    #[allow(dead_code)] // read by tests; kept for diagnostics
    pub stamp: Stamp,
    /// Tarball size.
    pub bytes: u64,
    /// Wall time of the fetch and install.
    pub elapsed: Duration,
}

/// The `sha512-<base64>` integrity of bytes read from `r`.
pub fn sha512_integrity(mut r: impl std::io::Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha512::new();
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
    let b64 = base64::engine::general_purpose::STANDARD.encode(hasher.finalize());
    Ok((format!("sha512-{b64}"), total))
}

/// The `sha512-...` option of an integrity string (which may list several, space-separated).
fn sha512_option(integrity: &str) -> Option<&str> {
    integrity
        .split_whitespace()
        .find(|o| o.starts_with("sha512-"))
        .map(|o| o.split('?').next().unwrap_or(o))
}

/// Fetches the pinned package with npm and installs its opencode at `binary`.
pub async fn install(
    ctx: &NpmContext,
    pin: &NpmPin,
    binary: &Utf8Path,
    target: Target,
) -> Result<Installed, NpmError> {
    let started = Instant::now();
    let spec = pin.spec();
    let expected = sha512_option(&pin.integrity)
        .ok_or_else(|| NpmError::BadPin {
            spec: spec.clone(),
            integrity: pin.integrity.clone(),
        })?
        .to_string();
    let npm = super::local::find_on_path("npm", ctx.path_env.as_deref()).ok_or_else(|| {
        NpmError::NotOnPath {
            path: ctx
                .path_env
                .clone()
                .or_else(|| std::env::var_os("PATH"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    })?;
    let pack_dir = tempfile::Builder::new()
        .prefix("openwork-npm-pack-")
        .tempdir()
        .map_err(|e| cache_io(binary, e))?;
    let pack_path = Utf8PathBuf::from_path_buf(pack_dir.path().to_path_buf())
        .map_err(|p| cache_io(binary, format!("temp dir is not UTF-8: {}", p.display())))?;
    let tarball = run_pack(ctx, &npm, &spec, &pack_path).await?;

    let binary_owned = binary.to_owned();
    let origin = Origin {
        name: super::SidecarName::Opencode,
        version: pin.version.clone(),
        target,
        origin: format!("npm:{spec}"),
    };
    let (stamp, bytes) = tokio::task::spawn_blocking(move || -> Result<(Stamp, u64), NpmError> {
        let file = std::fs::File::open(&tarball).map_err(|e| cache_io(&tarball, e))?;
        let (actual, bytes) =
            sha512_integrity(std::io::BufReader::new(file)).map_err(|e| cache_io(&tarball, e))?;
        if actual != expected {
            return Err(NpmError::IntegrityMismatch {
                spec: spec.clone(),
                expected,
                actual,
            });
        }
        let mut out = cache::begin(&binary_owned)?;
        archive::extract_one(
            tarball.as_std_path(),
            ArchiveKind::TarGz,
            Wanted::Path(PACKAGE_BINARY),
            out.as_file_mut(),
            &format!("npm package {spec}"),
        )?;
        let stamp = cache::commit(out, &binary_owned, origin, None).map_err(|e| match e {
            CommitError::Cache(c) => NpmError::Cache(c),
            CommitError::Mismatch { .. } => cache_io(&binary_owned, "unexpected digest check"),
        })?;
        Ok((stamp, bytes))
    })
    .await
    .map_err(|e| cache_io(binary, e))??;
    drop(pack_dir);
    Ok(Installed {
        path: binary.to_owned(),
        stamp,
        bytes,
        elapsed: started.elapsed(),
    })
}

fn cache_io(path: &Utf8Path, e: impl std::fmt::Display) -> NpmError {
    NpmError::Cache(CacheError::Io {
        path: path.to_owned(),
        cause: e.to_string(),
    })
}

/// Runs `npm pack <spec> --pack-destination <dir> --json` in `dir`; returns the tarball path.
async fn run_pack(
    ctx: &NpmContext,
    npm: &Utf8Path,
    spec: &str,
    dir: &Utf8Path,
) -> Result<Utf8PathBuf, NpmError> {
    let mut cmd = tokio::process::Command::new(npm);
    cmd.arg("pack")
        .arg(spec)
        .arg("--pack-destination")
        .arg(dir)
        .arg("--json")
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(path) = &ctx.path_env {
        cmd.env("PATH", path);
    }
    cmd.envs(ctx.extra_env.iter().map(|(k, v)| (k, v)));
    let child = cmd.spawn().map_err(|e| NpmError::Spawn {
        npm: npm.to_owned(),
        cause: e.to_string(),
    })?;
    let output = tokio::time::timeout(ctx.timeout, child.wait_with_output())
        .await
        .map_err(|_| NpmError::Timeout {
            spec: spec.to_string(),
            timeout: ctx.timeout,
        })?
        .map_err(|e| NpmError::Spawn {
            npm: npm.to_owned(),
            cause: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(NpmError::PackFailed {
            spec: spec.to_string(),
            status: output.status.to_string(),
            stderr: npm_message(&String::from_utf8_lossy(&output.stderr)),
        });
    }
    // npm --json prints `[{"filename": "..."}]`; fall back to the one .tgz in the directory.
    let from_json = serde_json::from_slice::<serde_json::Value>(&output.stdout)
        .ok()
        .and_then(|v| v.get(0)?.get("filename")?.as_str().map(str::to_string))
        .map(|f| dir.join(f.rsplit('/').next().unwrap_or(&f)))
        .filter(|p| p.is_file());
    let found = from_json.or_else(|| {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| Utf8PathBuf::from_path_buf(e.ok()?.path()).ok())
            .find(|p| p.extension() == Some("tgz"))
    });
    found.ok_or_else(|| NpmError::NoTarball {
        spec: spec.to_string(),
        dir: dir.to_owned(),
    })
}

/// npm's error lines (`npm error ...`), without the log-file noise; at most the last 8.
fn npm_message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("A complete log of this run"))
        .filter(|l| !l.starts_with("npm warn"))
        .collect();
    let start = lines.len().saturating_sub(8);
    let text = lines[start..].join(" | ");
    if text.is_empty() {
        "(npm printed nothing on stderr)".to_string()
    } else {
        text
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn integrity_is_base64_sha512() {
        let (i, n) = sha512_integrity(&b"abc"[..]).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            i,
            "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw=="
        );
    }

    #[test]
    fn picks_the_sha512_option() {
        assert_eq!(sha512_option("sha1-x sha512-abc"), Some("sha512-abc"));
        assert_eq!(sha512_option("sha1-x"), None);
    }

    #[test]
    fn npm_message_keeps_error_lines() {
        let m = npm_message(
            "npm warn Unknown user config\nnpm error code E404\nnpm error 404 Not Found\nnpm error A complete log of this run can be found in: x\n",
        );
        assert_eq!(m, "npm error code E404 | npm error 404 Not Found");
    }
}
