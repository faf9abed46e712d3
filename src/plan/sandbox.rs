//! The sandbox part of the run plan: `--sandbox*` flags validated into [`SandboxSettings`]
//! (image, persist dir, resource limits, and extra mounts checked against the allowlist before
//! anything is started).

use camino::{Utf8Path, Utf8PathBuf};

use super::{PlanError, absolutize};
use crate::cli::{SandboxArg, StartArgs};

/// Default sandbox image (built locally by `images/build.sh`; the tag is also in `images/IMAGE`).
pub const DEFAULT_SANDBOX_IMAGE: &str = "openwork-sandbox:bookworm-1";

/// Sandbox mode settings (`--sandbox` other than `none`).
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// `auto`, `docker` or `container`.
    pub kind: SandboxArg,
    pub image: String,
    /// Host dir mounted at /persist.
    pub persist_dir: Utf8PathBuf,
    /// Validated extra mounts (real host paths).
    pub mounts: Vec<openwork_backends::ExtraMount>,
    pub limits: openwork_backends::Limits,
    /// Copy opencode's auth.json/mcp-auth.json into the persist dir.
    pub copy_auth: bool,
    /// The `container` program given with `OPENWORK_CONTAINER_BIN` (`--container-bin`).
    pub container_bin: Option<std::path::PathBuf>,
    /// Where the Linux binaries mounted into the container come from.
    pub sidecars: crate::cli::SandboxSidecarsArg,
}

/// `ws_` + the first 12 hex characters of SHA-256 of the workspace path (openwork-server's id).
pub fn workspace_id(path: &Utf8Path) -> String {
    openwork_server::workspace::workspace_id(path)
}

/// Parses `4g`, `512m`, `1024k` or a byte count.
pub fn parse_size(raw: &str) -> Option<i64> {
    let t = raw.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1024_i64),
        'm' => (&t[..t.len() - 1], 1024 * 1024),
        'g' => (&t[..t.len() - 1], 1024 * 1024 * 1024),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    if !n.is_finite() || n <= 0.0 {
        return None;
    }
    Some((n * mult as f64) as i64)
}

pub(super) fn sandbox_settings(
    args: &StartArgs,
    workspace: &Utf8Path,
    data_dir: &Utf8Path,
) -> Result<Option<SandboxSettings>, PlanError> {
    if args.sandbox == SandboxArg::None {
        let sandbox_only: [(&'static str, bool); 3] = [
            ("sandbox-image", args.sandbox_image.is_some()),
            ("sandbox-persist-dir", args.sandbox_persist_dir.is_some()),
            ("sandbox-mount", !args.sandbox_mount.is_empty()),
        ];
        for (flag, given) in sandbox_only {
            if given {
                return Err(PlanError::SandboxOnly { flag });
            }
        }
        return Ok(None);
    }
    let memory_bytes = parse_size(&args.sandbox_memory)
        .filter(|b| *b >= 64 * 1024 * 1024)
        .ok_or_else(|| PlanError::BadValue {
            flag: "sandbox-memory",
            value: args.sandbox_memory.clone(),
            reason: "use a size of at least 64m, e.g. 512m or 4g",
        })?;
    if !(args.sandbox_cpus.is_finite() && args.sandbox_cpus >= 0.1 && args.sandbox_cpus <= 1024.0) {
        return Err(PlanError::BadValue {
            flag: "sandbox-cpus",
            value: args.sandbox_cpus.to_string(),
            reason: "use a number of CPUs from 0.1 to 1024, e.g. 2",
        });
    }
    let persist_dir = match &args.sandbox_persist_dir {
        Some(p) => absolutize(p)?,
        None => data_dir.join("sandbox").join(workspace_id(workspace)),
    };
    let home = std::env::var("HOME").map_err(|_| PlanError::NoHome)?;
    let cwd = std::env::current_dir().map_err(|source| PlanError::WorkspaceUnreadable {
        path: ".".into(),
        source,
    })?;
    let specs = openwork_allowlist::parse_specs(&args.sandbox_mount)
        .map_err(|e| PlanError::Mount(Box::new(e)))?;
    let allowlist_file = openwork_allowlist::allowlist_path(
        std::env::var_os(openwork_allowlist::ALLOWLIST_ENV)
            .as_deref()
            .map(std::path::Path::new),
        std::path::Path::new(&home),
        &cwd,
    );
    let host = openwork_allowlist::HostEnv::new(&home, &cwd)
        .map_err(|e| PlanError::Mount(Box::new(e)))?
        .protect(data_dir.as_std_path())
        .protect(persist_dir.as_std_path());
    let validated = openwork_allowlist::validate_with_file(&specs, &allowlist_file, &host)
        .map_err(|e| PlanError::Mount(Box::new(e)))?;
    let mut mounts = Vec::new();
    for m in validated {
        let host =
            Utf8PathBuf::from_path_buf(m.host_real_path).map_err(|p| PlanError::BadValue {
                flag: "sandbox-mount",
                value: p.display().to_string(),
                reason: "host paths must be valid UTF-8",
            })?;
        mounts.push(openwork_backends::ExtraMount {
            host,
            container: m.container_path,
            read_only: m.read_only,
        });
    }
    Ok(Some(SandboxSettings {
        kind: args.sandbox,
        image: args
            .sandbox_image
            .clone()
            .unwrap_or_else(|| DEFAULT_SANDBOX_IMAGE.to_string()),
        persist_dir,
        mounts,
        limits: openwork_backends::Limits {
            memory_bytes,
            nano_cpus: (args.sandbox_cpus * 1e9) as i64,
            pids: args.sandbox_pids_limit,
            ..openwork_backends::Limits::default()
        },
        copy_auth: !args.no_sandbox_auth_copy,
        container_bin: args.container_bin.clone(),
        sidecars: args.sandbox_sidecars,
    }))
}
