//! The sandbox part of the run plan: `--sandbox*` flags validated into [`SandboxSettings`]
//! (image, persist dir, resource limits, and extra mounts checked against the allowlist before
//! anything is started), and every read of the host the sandbox needs done here, once: the
//! environment passed through to opencode, the git identity (`git config`), the host user, the
//! host's opencode data dir and the container's architecture. Nothing after the plan reads them.
//!
//! Threat addressed: what enters the agent's environment is decided in one place, from an
//! allow-list of names (`OPENCODE_*` minus opencode's credentials and config dir, the npm
//! registry, git identity); an OpenWork token the orchestrator inherited can never pass.

use camino::{Utf8Path, Utf8PathBuf};
use openwork_backends::Owner;
use openwork_backends::elf::Arch;

use super::{PlanError, absolutize};
use crate::cli::{SandboxArg, SandboxSidecarsArg, StartArgs};

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
    /// The host's opencode data dir whose auth.json/mcp-auth.json are copied into the persist
    /// dir (`None` with `--no-sandbox-auth-copy`).
    pub copy_auth_from: Option<Utf8PathBuf>,
    /// The `container` program given with `OPENWORK_CONTAINER_BIN` (`--container-bin`).
    pub container_bin: Option<std::path::PathBuf>,
    /// Where the Linux binaries mounted into the container come from.
    pub layout: LayoutSource,
    /// Architecture of the containers (the host's).
    pub arch: Arch,
    /// Who the containers run as, and why.
    pub user: SandboxUser,
    /// Whether the workspace's git metadata is guarded (`--sandbox-allow-git-config` turns it off).
    pub git_guard: openwork_backends::GitGuardMode,
    /// `--sandbox-strict`: refuse to run unless every isolation control is enforced.
    pub strict: bool,
    /// This orchestrator (labels of what it creates).
    pub owner: Owner,
    /// The person's environment for opencode: passed-through variables and git identity.
    pub agent_env: Vec<(String, String)>,
    /// The sandbox's outbound network: the egress gate, open, or not enforced.
    pub egress: super::egress::Egress,
}

/// Why the agent runs as the uid it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserChoice {
    /// Given with `--sandbox-user`.
    Given,
    /// The host user (not root): files the agent creates are theirs.
    HostUser,
    /// The orchestrator runs as root: the agent runs as the workspace's owner instead, so it is
    /// not root in the container and the files it creates belong to the workspace's owner.
    WorkspaceOwner,
    /// uid 0 in the container: a root host with a root-owned workspace (reported as degraded;
    /// `--sandbox-strict` refuses it).
    Root,
}

impl UserChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            UserChoice::Given => "given",
            UserChoice::HostUser => "host-user",
            UserChoice::WorkspaceOwner => "workspace-owner",
            UserChoice::Root => "root",
        }
    }
}

/// The `uid:gid` the sandbox's containers run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxUser {
    pub uid: u32,
    pub gid: u32,
    pub choice: UserChoice,
}

impl SandboxUser {
    /// `uid:gid`, as engines take it.
    pub fn spec(&self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }
}

/// The rule: `--sandbox-user` when given; else the host user, except that uid 0 is never used
/// silently: a root host runs the agent as the workspace's owner, and only a root-owned
/// workspace leaves it at uid 0 (reported as degraded).
pub fn choose_user(
    given: Option<&str>,
    host: (u32, u32),
    workspace_owner: (u32, u32),
) -> Result<SandboxUser, PlanError> {
    if let Some(raw) = given {
        let bad = || PlanError::BadValue {
            flag: "sandbox-user",
            value: raw.to_string(),
            reason: "use numeric UID:GID, e.g. 1000:1000",
        };
        let (u, g) = raw.trim().split_once(':').ok_or_else(bad)?;
        let uid: u32 = u.parse().map_err(|_| bad())?;
        let gid: u32 = g.parse().map_err(|_| bad())?;
        let choice = if uid == 0 {
            UserChoice::Root
        } else {
            UserChoice::Given
        };
        return Ok(SandboxUser { uid, gid, choice });
    }
    let (uid, gid, choice) = match (host, workspace_owner) {
        ((0, _), (0, _)) => (0, 0, UserChoice::Root),
        ((0, _), (ouid, ogid)) => (ouid, ogid, UserChoice::WorkspaceOwner),
        ((huid, hgid), _) => (huid, hgid, UserChoice::HostUser),
    };
    Ok(SandboxUser { uid, gid, choice })
}

/// Where the container's Linux binaries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutSource {
    /// This host's opencode and this executable (a Linux host of the container's architecture).
    Host,
    /// Downloads for `linux-<arch>`: opencode from the manifest or npm, openwork (the
    /// multi-call binary, published as the manifest's `openwork-server` entry) from the manifest.
    Downloaded,
}

/// Pure choice of [`LayoutSource`] (`--sandbox-sidecars`).
pub fn layout_source(
    flag: SandboxSidecarsArg,
    host_is_linux: bool,
) -> Result<LayoutSource, PlanError> {
    match (flag, host_is_linux) {
        (SandboxSidecarsArg::Host, false) => Err(PlanError::BadValue {
            flag: "sandbox-sidecars",
            value: "host".into(),
            reason: "needs a Linux host; use --sandbox-sidecars downloaded (the default here)",
        }),
        (SandboxSidecarsArg::Host, true) | (SandboxSidecarsArg::Auto, true) => {
            Ok(LayoutSource::Host)
        }
        (SandboxSidecarsArg::Downloaded, _) | (SandboxSidecarsArg::Auto, false) => {
            Ok(LayoutSource::Downloaded)
        }
    }
}

/// The person's variables that apply inside too: their own opencode switches (e.g.
/// `OPENCODE_DISABLE_MODELS_FETCH`) and npm registry. opencode's credentials and config dir are
/// the run's own, set elsewhere.
pub fn passthrough_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.into_iter()
        .filter(|(k, _)| {
            (k.starts_with("OPENCODE_")
                && !matches!(
                    k.as_str(),
                    "OPENCODE_SERVER_USERNAME" | "OPENCODE_SERVER_PASSWORD" | "OPENCODE_CONFIG_DIR"
                ))
                || k == "npm_config_registry"
        })
        .collect()
}

/// The person's git identity for commits the agent makes in the sandbox (whose uid has no
/// passwd entry there, so git could not guess one): `GIT_AUTHOR_NAME`/`GIT_AUTHOR_EMAIL` from
/// `env`, else `user.name`/`user.email` from `git_config`; set as author and committer.
pub fn git_identity(
    env: impl Fn(&str) -> Option<String>,
    git_config: impl Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let name = env("GIT_AUTHOR_NAME").or_else(|| git_config("user.name"));
    let email = env("GIT_AUTHOR_EMAIL").or_else(|| git_config("user.email"));
    let mut out = Vec::new();
    if let Some(n) = name {
        out.push(("GIT_AUTHOR_NAME".to_string(), n.clone()));
        out.push(("GIT_COMMITTER_NAME".to_string(), n));
    }
    if let Some(e) = email {
        out.push(("GIT_AUTHOR_EMAIL".to_string(), e.clone()));
        out.push(("GIT_COMMITTER_EMAIL".to_string(), e));
    }
    out
}

/// `git config --get <key>` on the host (`None` when git or the key is missing).
fn host_git_config(key: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["config", "--get", key])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let v = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
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
        let sandbox_only: [(&'static str, bool); 5] = [
            ("sandbox-image", args.sandbox_image.is_some()),
            ("sandbox-persist-dir", args.sandbox_persist_dir.is_some()),
            ("sandbox-mount", !args.sandbox_mount.is_empty()),
            ("sandbox-user", args.sandbox_user.is_some()),
            ("sandbox-strict", args.sandbox_strict),
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
    let layout = layout_source(args.sandbox_sidecars, cfg!(target_os = "linux"))?;
    let arch = Arch::host().ok_or(PlanError::BadValue {
        flag: "sandbox",
        value: std::env::consts::ARCH.into(),
        reason: "sandbox mode needs an x86_64 or aarch64 host; use --sandbox none",
    })?;
    let copy_auth_from = (!args.no_sandbox_auth_copy).then(|| {
        let xdg = std::env::var("XDG_DATA_HOME").ok();
        openwork_backends::persist::host_opencode_data_dir(xdg.as_deref(), Utf8Path::new(&home))
    });
    let owner = {
        use std::os::unix::fs::MetadataExt;
        let meta =
            std::fs::metadata(workspace).map_err(|source| PlanError::WorkspaceUnreadable {
                path: workspace.to_path_buf(),
                source,
            })?;
        (meta.uid(), meta.gid())
    };
    let user = choose_user(
        args.sandbox_user.as_deref(),
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        ),
        owner,
    )?;
    let git_guard = if args.sandbox_allow_git_config {
        openwork_backends::GitGuardMode::Off
    } else {
        openwork_backends::GitGuardMode::On {
            host_git: which::which("git").ok(),
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    let config_home = std::env::var("XDG_CONFIG_HOME")
        .ok()
        .filter(|x| !x.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(&home).join(".config"));
    let egress = super::egress::egress(
        args.sandbox,
        args.sandbox_network,
        &args.sandbox_allow,
        &super::egress::HostInputs {
            home: std::path::Path::new(&home),
            cwd: &std::env::current_dir().map_err(|source| PlanError::WorkspaceUnreadable {
                path: ".".into(),
                source,
            })?,
            policy_override: args.sandbox_policy.as_deref(),
            // `--no-sandbox-auth-copy`: the host's opencode logins are not used at all.
            auth_json: copy_auth_from
                .as_ref()
                .and_then(|d| super::egress::read_json(d.join("auth.json").as_std_path())),
            opencode_config: super::egress::host_opencode_config(
                &config_home,
                workspace.as_std_path(),
                &env,
            ),
            env: &env,
        },
    )?;
    let mut agent_env = passthrough_env(std::env::vars());
    agent_env.extend(git_identity(|k| std::env::var(k).ok(), host_git_config));
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
        copy_auth_from,
        container_bin: args.container_bin.clone(),
        layout,
        arch,
        user,
        git_guard,
        strict: args.sandbox_strict,
        owner: Owner::current(),
        agent_env,
        egress,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_0_is_never_chosen_silently() {
        let u = choose_user(None, (1000, 1000), (0, 0)).unwrap();
        assert_eq!(
            (u.spec(), u.choice),
            ("1000:1000".into(), UserChoice::HostUser)
        );
        let u = choose_user(None, (0, 0), (1000, 100)).unwrap();
        assert_eq!(
            (u.spec(), u.choice),
            ("1000:100".into(), UserChoice::WorkspaceOwner)
        );
        let u = choose_user(None, (0, 0), (0, 0)).unwrap();
        assert_eq!(u.choice, UserChoice::Root);
        let u = choose_user(Some("0:0"), (1000, 1000), (1000, 1000)).unwrap();
        assert_eq!(u.choice, UserChoice::Root);
        let u = choose_user(Some(" 4242:4242 "), (0, 0), (0, 0)).unwrap();
        assert_eq!(
            (u.spec(), u.choice),
            ("4242:4242".into(), UserChoice::Given)
        );
        for bad in ["1000", "a:b", "1000:", "-1:0", "1000:1000:1"] {
            let e = choose_user(Some(bad), (0, 0), (0, 0)).unwrap_err();
            assert!(e.to_string().contains("UID:GID"), "{bad}: {e}");
        }
    }

    #[test]
    fn layout_follows_the_host() {
        use SandboxSidecarsArg::*;
        assert_eq!(layout_source(Auto, true).unwrap(), LayoutSource::Host);
        assert_eq!(
            layout_source(Auto, false).unwrap(),
            LayoutSource::Downloaded
        );
        assert_eq!(
            layout_source(Downloaded, true).unwrap(),
            LayoutSource::Downloaded
        );
        let e = layout_source(Host, false).unwrap_err().to_string();
        assert!(e.contains("Linux host"), "{e}");
    }

    #[test]
    fn only_opencode_switches_and_the_registry_pass_through() {
        let vars = [
            ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
            ("OPENCODE_SERVER_PASSWORD", "host-secret"),
            ("OPENCODE_CONFIG_DIR", "/host/cfg"),
            ("OPENWORK_TOKEN", "t"),
            ("OPENWORK_HOST_TOKEN", "h"),
            ("npm_config_registry", "https://r.example"),
            ("HOME", "/home/me"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let keys: Vec<String> = passthrough_env(vars).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["OPENCODE_DISABLE_MODELS_FETCH", "npm_config_registry"]
        );
    }

    #[test]
    fn git_identity_prefers_the_environment_then_git_config() {
        let env = |k: &str| (k == "GIT_AUTHOR_NAME").then(|| "Env Name".to_string());
        let git = |k: &str| match k {
            "user.name" => Some("Git Name".to_string()),
            "user.email" => Some("me@example.com".to_string()),
            _ => None,
        };
        let id = git_identity(env, git);
        let get = |k: &str| id.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("GIT_AUTHOR_NAME"), Some("Env Name"));
        assert_eq!(get("GIT_COMMITTER_NAME"), Some("Env Name"));
        assert_eq!(get("GIT_COMMITTER_EMAIL"), Some("me@example.com"));
        assert!(git_identity(|_| None, |_| None).is_empty());
    }
}
