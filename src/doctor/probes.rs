//! The checks of `openwork doctor`, one probe each. A probe's result is an enum whose `Display`
//! names the cause and the fix; [`Status`] says whether it blocks `start` in the sandbox mode the
//! person asked about.
//!
//! Threat addressed: a machine that half-works (an engine socket this user cannot open, a cached
//! opencode that no longer matches its stamp, a clock so far behind that TLS fails) being found
//! out one failing command at a time. Probes only read: nothing is downloaded, started or
//! written except a temporary file in the data dir, removed at once.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use camino::{Utf8Path, Utf8PathBuf};
use openwork_backends::docker::socket_probe::{
    ImageLookup, SocketProbe, lookup_image, probe_socket,
};

use crate::sidecars::{OPENCODE_VERSION, SidecarName, Target, cache};

/// How one finding bears on `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Fine.
    Ok,
    /// Not needed in the mode asked about (e.g. an engine when `--sandbox none`).
    Skipped,
    /// `start` works, but something is degraded or will bite later.
    Warn,
    /// `start` fails until this is fixed.
    Blocking,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Warn => "warn",
            Status::Blocking => "blocking",
        }
    }
}

/// How long one engine probe may take.
pub const ENGINE_TIMEOUT: Duration = Duration::from_secs(3);

/// Docker: the socket named by `DOCKER_HOST`, else the default one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineFinding {
    pub engine: &'static str,
    /// Every socket tried, in order, with what it answered.
    pub tried: Vec<(PathBuf, SocketProbe)>,
}

impl EngineFinding {
    /// The first socket that answered.
    pub fn reachable(&self) -> Option<(&Path, &SocketProbe)> {
        self.tried
            .iter()
            .find(|(_, p)| matches!(p, SocketProbe::Reachable { .. }))
            .map(|(path, p)| (path.as_path(), p))
    }
}

impl std::fmt::Display for EngineFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engine = self.engine;
        if let Some((path, SocketProbe::Reachable { version, api, .. })) = self.reachable() {
            return write!(
                f,
                "{engine} {version} (API {api}) answers at {}",
                path.display()
            );
        }
        let mut parts = Vec::new();
        for (path, probe) in &self.tried {
            let p = path.display();
            parts.push(match probe {
                SocketProbe::Missing => format!("no socket at {p}"),
                SocketProbe::PermissionDenied => format!("permission denied on {p}"),
                SocketProbe::Unreachable { reason } => format!("{p} does not answer ({reason})"),
                SocketProbe::Reachable { .. } => format!("{p} answers"),
            });
        }
        let fix = if self
            .tried
            .iter()
            .any(|(_, p)| *p == SocketProbe::PermissionDenied)
        {
            match engine {
                "Docker" => {
                    "add your user to the `docker` group (then log in again), or use rootless Docker and set DOCKER_HOST"
                }
                _ => {
                    "run `systemctl --user enable --now podman.socket` as yourself, or set DOCKER_HOST to a socket you may open"
                }
            }
        } else if engine == "Docker" {
            "start the engine (e.g. `sudo systemctl start docker`) or set DOCKER_HOST to its socket"
        } else {
            "start Podman's API socket: `systemctl --user enable --now podman.socket` (rootless) or `sudo systemctl enable --now podman.socket`"
        };
        write!(f, "{engine}: {}. Fix: {fix}", parts.join("; "))
    }
}

/// Sockets Docker users expect: `DOCKER_HOST` (unix), else `/var/run/docker.sock`.
pub fn docker_sockets(docker_host: Option<&str>) -> Vec<PathBuf> {
    match docker_host.and_then(|h| h.strip_prefix("unix://")) {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![PathBuf::from("/var/run/docker.sock")],
    }
}

/// Sockets Podman users expect: the rootless one under `$XDG_RUNTIME_DIR`, then the rootful one.
pub fn podman_sockets(xdg_runtime_dir: Option<&str>, uid: u32) -> Vec<PathBuf> {
    let runtime = match xdg_runtime_dir {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(format!("/run/user/{uid}")),
    };
    vec![
        runtime.join("podman/podman.sock"),
        PathBuf::from("/run/podman/podman.sock"),
    ]
}

/// Probes each socket in turn, stopping at the first that answers.
pub async fn probe_engine(engine: &'static str, sockets: Vec<PathBuf>) -> EngineFinding {
    let mut tried = Vec::new();
    for path in sockets {
        let probe = probe_socket(&path, ENGINE_TIMEOUT).await;
        let done = matches!(probe, SocketProbe::Reachable { .. });
        tried.push((path, probe));
        if done {
            break;
        }
    }
    EngineFinding { engine, tried }
}

/// Apple's `container` CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppleProbe {
    /// Only macOS on Apple silicon runs it.
    NotThisPlatform,
    Missing,
    Found {
        path: PathBuf,
    },
}

impl std::fmt::Display for AppleProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppleProbe::NotThisPlatform => {
                f.write_str("Apple container: runs only on macOS with Apple silicon")
            }
            AppleProbe::Missing => f.write_str(
                "Apple container: `container` is not on PATH. Fix: install Apple's container CLI and run `container system start`, or use --sandbox docker",
            ),
            AppleProbe::Found { path } => write!(f, "Apple container CLI at {}", path.display()),
        }
    }
}

pub fn probe_apple(apple_silicon: bool) -> AppleProbe {
    if !apple_silicon {
        return AppleProbe::NotThisPlatform;
    }
    match which::which("container") {
        Ok(path) => AppleProbe::Found { path },
        Err(_) => AppleProbe::Missing,
    }
}

/// The sandbox image in the engine that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageProbe {
    Present {
        image: String,
        id: String,
    },
    Missing {
        image: String,
        build_hint: &'static str,
    },
    /// No engine answered, so the image could not be looked up.
    NoEngine {
        image: String,
    },
    Unreadable {
        image: String,
        reason: String,
    },
}

impl std::fmt::Display for ImageProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageProbe::Present { image, id } => {
                write!(f, "sandbox image {image} is present ({id})")
            }
            ImageProbe::Missing { image, build_hint } => write!(
                f,
                "sandbox image {image} is not in the engine. Fix: build it with {build_hint}, or pass --sandbox-image"
            ),
            ImageProbe::NoEngine { image } => write!(
                f,
                "sandbox image {image} not checked: no engine answered (see above)"
            ),
            ImageProbe::Unreadable { image, reason } => {
                write!(f, "sandbox image {image} could not be looked up: {reason}")
            }
        }
    }
}

/// Looks `image` up through the engine at `socket`.
pub async fn probe_image(
    socket: Option<&Path>,
    image: &str,
    build_hint: &'static str,
) -> ImageProbe {
    let image = image.to_string();
    let Some(socket) = socket else {
        return ImageProbe::NoEngine { image };
    };
    match lookup_image(socket, &image, ENGINE_TIMEOUT).await {
        ImageLookup::Present { id } => ImageProbe::Present { image, id },
        ImageLookup::Missing => ImageProbe::Missing { image, build_hint },
        ImageLookup::Failed { reason } => ImageProbe::Unreadable { image, reason },
    }
}

/// The opencode `start` would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpencodeProbe {
    /// The pinned version is cached and matches its stamp.
    Verified { path: Utf8PathBuf, version: String },
    /// An explicit `--opencode-bin` that exists and is executable.
    Explicit { path: Utf8PathBuf },
    /// An explicit binary that cannot be run.
    ExplicitUnusable { path: Utf8PathBuf, reason: String },
    /// Not cached yet: the first `start` fetches it (through npm).
    NotCached { expected: Utf8PathBuf },
    /// Cached, but the file no longer matches what was verified.
    Corrupt { path: Utf8PathBuf, reason: String },
    /// This platform has no pinned opencode build.
    NoTarget,
}

impl std::fmt::Display for OpencodeProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpencodeProbe::Verified { path, version } => {
                write!(f, "opencode {version} cached and verified at {path}")
            }
            OpencodeProbe::Explicit { path } => write!(f, "opencode given explicitly: {path}"),
            OpencodeProbe::ExplicitUnusable { path, reason } => write!(
                f,
                "the opencode given with --opencode-bin ({path}) cannot be run: {reason}. Fix: point --opencode-bin at an executable opencode"
            ),
            OpencodeProbe::NotCached { expected } => write!(
                f,
                "opencode {OPENCODE_VERSION} is not cached yet ({expected}); the first `start` fetches it through npm and verifies it"
            ),
            OpencodeProbe::Corrupt { path, reason } => write!(
                f,
                "the cached opencode at {path} failed verification ({reason}); the next `start` replaces it (or delete it yourself)"
            ),
            OpencodeProbe::NoTarget => write!(
                f,
                "this platform ({} {}) has no pinned opencode. Fix: pass --opencode-bin PATH --allow-external",
                std::env::consts::OS,
                std::env::consts::ARCH
            ),
        }
    }
}

pub fn probe_opencode(sidecar_dir: &Utf8Path, explicit: Option<&Utf8Path>) -> OpencodeProbe {
    if let Some(path) = explicit {
        return match executable(path.as_std_path()) {
            Ok(()) => OpencodeProbe::Explicit {
                path: path.to_path_buf(),
            },
            Err(reason) => OpencodeProbe::ExplicitUnusable {
                path: path.to_path_buf(),
                reason,
            },
        };
    }
    let Some(target) = Target::host() else {
        return OpencodeProbe::NoTarget;
    };
    let path = cache::binary_path(sidecar_dir, SidecarName::Opencode, OPENCODE_VERSION, target);
    if !path.exists() {
        return OpencodeProbe::NotCached { expected: path };
    }
    match cache::verify(&path, false) {
        Ok(_) => OpencodeProbe::Verified {
            path,
            version: OPENCODE_VERSION.into(),
        },
        Err(e) => OpencodeProbe::Corrupt {
            path,
            reason: e.to_string(),
        },
    }
}

fn executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a file".into());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("not executable".into());
    }
    Ok(())
}

/// npm, which the first run uses to fetch opencode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NpmProbe {
    Found { path: PathBuf },
    Missing,
}

impl std::fmt::Display for NpmProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NpmProbe::Found { path } => write!(f, "npm at {}", path.display()),
            NpmProbe::Missing => f.write_str(
                "npm is not on PATH. Fix: install Node.js/npm (the first `start` fetches opencode through it), or pass --opencode-bin",
            ),
        }
    }
}

pub fn probe_npm() -> NpmProbe {
    match which::which("npm") {
        Ok(path) => NpmProbe::Found { path },
        Err(_) => NpmProbe::Missing,
    }
}

/// The data dir (`--data-dir`): state, sidecar cache, run records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDirProbe {
    Writable { path: Utf8PathBuf },
    NotWritable { path: Utf8PathBuf, reason: String },
}

impl std::fmt::Display for DataDirProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataDirProbe::Writable { path } => write!(f, "data dir {path} is writable"),
            DataDirProbe::NotWritable { path, reason } => write!(
                f,
                "data dir {path} is not writable ({reason}). Fix: fix its permissions, or pass --data-dir (OPENWORK_DATA_DIR) pointing at a writable directory"
            ),
        }
    }
}

/// Writes (then removes) a temporary file in the data dir; a data dir that does not exist yet
/// is checked through its nearest existing parent (where `start` would create it), without
/// creating anything.
pub fn probe_data_dir(path: &Utf8Path) -> DataDirProbe {
    let mut existing = path;
    while !existing.exists() {
        match existing.parent() {
            Some(p) if !p.as_str().is_empty() => existing = p,
            _ => break,
        }
    }
    let result = if existing.is_dir() {
        if existing == path {
            tempfile::NamedTempFile::new_in(path).map(drop)
        } else {
            nix::unistd::access(existing.as_std_path(), nix::unistd::AccessFlags::W_OK)
                .map_err(std::io::Error::from)
        }
    } else {
        Err(std::io::Error::other(format!(
            "{existing} is not a directory"
        )))
    };
    match result {
        Ok(()) => DataDirProbe::Writable {
            path: path.to_path_buf(),
        },
        Err(e) => DataDirProbe::NotWritable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    }
}

/// A port `start` binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortProbe {
    Free {
        port: u16,
    },
    /// Busy: an explicit port is an error at start; the default falls back to a free one.
    Busy {
        port: u16,
        explicit: bool,
    },
}

impl std::fmt::Display for PortProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortProbe::Free { port } => write!(f, "port {port} is free"),
            PortProbe::Busy {
                port,
                explicit: true,
            } => write!(
                f,
                "port {port} (--openwork-port) is in use. Fix: stop what uses it or choose another port"
            ),
            PortProbe::Busy {
                port,
                explicit: false,
            } => write!(
                f,
                "the default openwork port {port} is in use; `start` will pick a free port (pass --openwork-port to choose one)"
            ),
        }
    }
}

pub fn probe_port(host: &str, port: u16, explicit: bool) -> PortProbe {
    match crate::ports::check_free(host, port) {
        Ok(()) => PortProbe::Free { port },
        Err(_) => PortProbe::Busy { port, explicit },
    }
}

/// The temporary directory opencode's runtime (Bun) unpacks native code into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TempDirProbe {
    Exec {
        path: PathBuf,
    },
    /// Mounted `noexec`: `opencode attach` (its TUI loads a library from there) fails.
    Noexec {
        path: PathBuf,
    },
    Unreadable {
        path: PathBuf,
        reason: String,
    },
}

impl std::fmt::Display for TempDirProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TempDirProbe::Exec { path } => {
                write!(f, "temp dir {} allows executables", path.display())
            }
            TempDirProbe::Noexec { path } => write!(
                f,
                "temp dir {} is mounted noexec; opencode's runtime unpacks a native library there, so `opencode attach` fails. Fix: export TMPDIR and BUN_TMPDIR to a directory on an exec-allowed filesystem",
                path.display()
            ),
            TempDirProbe::Unreadable { path, reason } => {
                write!(f, "temp dir {} cannot be checked: {reason}", path.display())
            }
        }
    }
}

pub fn probe_temp_dir(path: &Path) -> TempDirProbe {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) if s.flags().contains(nix::sys::statvfs::FsFlags::ST_NOEXEC) => {
            TempDirProbe::Noexec { path: path.into() }
        }
        Ok(_) => TempDirProbe::Exec { path: path.into() },
        Err(e) => TempDirProbe::Unreadable {
            path: path.into(),
            reason: e.to_string(),
        },
    }
}

/// The clock, for TLS: a clock before this build existed makes every certificate look
/// not-yet-valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockProbe {
    Sane,
    Behind { now_unix: i64, floor_unix: i64 },
}

/// 2026-01-01T00:00:00Z: no correct clock reads earlier for this build.
pub const CLOCK_FLOOR_UNIX: i64 = 1_767_225_600;

impl std::fmt::Display for ClockProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClockProbe::Sane => f.write_str("system clock is plausible"),
            ClockProbe::Behind {
                now_unix,
                floor_unix,
            } => write!(
                f,
                "system clock reads {now_unix} (unix seconds), before {floor_unix}; TLS certificates will look not yet valid. Fix: sync the clock (e.g. `sudo timedatectl set-ntp true`)"
            ),
        }
    }
}

pub fn probe_clock(now: SystemTime) -> ClockProbe {
    let now_unix = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if now_unix < CLOCK_FLOOR_UNIX {
        ClockProbe::Behind {
            now_unix,
            floor_unix: CLOCK_FLOOR_UNIX,
        }
    } else {
        ClockProbe::Sane
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_tried_where_users_expect_them() {
        assert_eq!(
            docker_sockets(Some("unix:///tmp/d.sock")),
            vec![PathBuf::from("/tmp/d.sock")]
        );
        assert_eq!(
            docker_sockets(None),
            vec![PathBuf::from("/var/run/docker.sock")]
        );
        assert_eq!(
            podman_sockets(Some("/run/user/1000"), 1000),
            vec![
                PathBuf::from("/run/user/1000/podman/podman.sock"),
                PathBuf::from("/run/podman/podman.sock")
            ]
        );
        assert_eq!(
            podman_sockets(None, 42)[0],
            PathBuf::from("/run/user/42/podman/podman.sock")
        );
    }

    #[test]
    fn engine_findings_name_every_socket_and_the_fix() {
        let f = EngineFinding {
            engine: "Docker",
            tried: vec![(PathBuf::from("/x.sock"), SocketProbe::PermissionDenied)],
        };
        let text = f.to_string();
        assert!(text.contains("permission denied on /x.sock"), "{text}");
        assert!(text.contains("docker` group"), "{text}");
        let f = EngineFinding {
            engine: "Podman",
            tried: vec![(PathBuf::from("/p.sock"), SocketProbe::Missing)],
        };
        assert!(f.to_string().contains("podman.socket"), "{f}");
    }

    #[test]
    fn a_clock_before_the_floor_is_named() {
        assert_eq!(probe_clock(SystemTime::now()), ClockProbe::Sane);
        let past = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let p = probe_clock(past);
        assert!(matches!(p, ClockProbe::Behind { .. }));
        assert!(p.to_string().contains("timedatectl"));
    }

    #[test]
    fn an_unwritable_data_dir_is_named_with_the_flag() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("file");
        std::fs::write(&file, "x").unwrap();
        // A path below a regular file can never be created.
        let bad = Utf8PathBuf::from_path_buf(file.join("data")).unwrap();
        let p = probe_data_dir(&bad);
        assert!(matches!(p, DataDirProbe::NotWritable { .. }), "{p:?}");
        assert!(p.to_string().contains("--data-dir"));
        let good = Utf8PathBuf::from_path_buf(t.path().join("d")).unwrap();
        assert!(matches!(
            probe_data_dir(&good),
            DataDirProbe::Writable { .. }
        ));
    }

    #[test]
    fn a_busy_port_is_blocking_only_when_explicit() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(
            probe_port("127.0.0.1", port, true),
            PortProbe::Busy {
                port,
                explicit: true
            }
        );
        drop(l);
    }

    #[test]
    fn an_explicit_opencode_must_be_executable() {
        let t = tempfile::tempdir().unwrap();
        let f = Utf8PathBuf::from_path_buf(t.path().join("opencode")).unwrap();
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        assert!(matches!(
            probe_opencode(Utf8Path::new("/nonexistent"), Some(&f)),
            OpencodeProbe::ExplicitUnusable { .. }
        ));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            probe_opencode(Utf8Path::new("/nonexistent"), Some(&f)),
            OpencodeProbe::Explicit { .. }
        ));
    }

    #[test]
    fn an_uncached_opencode_is_not_cached() {
        let t = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
        assert!(matches!(
            probe_opencode(&dir, None),
            OpencodeProbe::NotCached { .. } | OpencodeProbe::NoTarget
        ));
    }
}
