//! The immutable [`RunPlan`]: every decision of a run, made once from the parsed CLI.
//!
//! All validation happens here, before anything is started or written (the original created the
//! workspace and config dirs before it reported a bad flag). Errors are [`PlanError`]s that name
//! the flag, the bad value and what is accepted; the binary reports them with exit code 2.

use std::io::IsTerminal;

use camino::{Utf8Path, Utf8PathBuf};
use thiserror::Error;

use crate::cli::{ApprovalMode, LogFormat, OpencodeLogLevel, SourceArg, StartArgs};
use crate::secrets::{random_hex, random_uuid};

pub mod egress;
mod sandbox;
use sandbox::sandbox_settings;
pub use sandbox::{
    DEFAULT_SANDBOX_IMAGE, LayoutSource, SandboxSettings, SandboxUser, UserChoice, choose_user,
    parse_size, workspace_id,
};

/// Default port of openwork-server (used when free; otherwise a free port is chosen and said).
pub const DEFAULT_OPENWORK_PORT: u16 = 8787;

/// A flag value that cannot be used. Exit code 2.
#[derive(Debug, Error)]
pub enum PlanError {
    #[error("workspace directory does not exist: {path}. Create it first or pass --workspace DIR.")]
    WorkspaceMissing { path: Utf8PathBuf },
    #[error("--workspace {path} is not a directory. Pass a directory with --workspace DIR.")]
    WorkspaceNotDir { path: Utf8PathBuf },
    #[error("cannot resolve --workspace {path}: {source}")]
    WorkspaceUnreadable {
        path: Utf8PathBuf,
        source: std::io::Error,
    },
    #[error("the current directory is not valid UTF-8; pass --workspace DIR")]
    CwdNotUtf8,
    #[error(
        "--opencode-host {value} is not supported: opencode must stay on loopback. Use 127.0.0.1 (or localhost)."
    )]
    OpencodeHost { value: String },
    #[error(
        "--openwork-host {value} is not supported. Use 127.0.0.1 (default), or --remote-access to bind 0.0.0.0."
    )]
    OpenworkHost { value: String },
    #[error(
        "--{flag} 0 is not a usable port. Pass a port from 1 to 65535, or leave it out for a free port."
    )]
    ZeroPort { flag: &'static str },
    #[error("--{flag} must not be empty. Leave it out to have one generated.")]
    EmptyToken { flag: &'static str },
    #[error(
        "--cors {value}: {reason}. Pass a comma-separated list of origins, a JSON array, or '*'."
    )]
    Cors { value: String, reason: String },
    #[error("--{flag} is not supported yet in this build ({why}). {hint}")]
    NotSupportedYet {
        flag: &'static str,
        why: &'static str,
        hint: &'static str,
    },
    #[error("--{flag} {value}: {reason}")]
    BadSource {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("--{flag} {path} requires --allow-external (or OPENWORK_ALLOW_EXTERNAL=1)")]
    ExternalNotAllowed {
        flag: &'static str,
        path: Utf8PathBuf,
    },
    #[error("cannot find a home directory for the default --data-dir; pass --data-dir DIR")]
    NoHome,
    #[error("--check-events needs --check")]
    CheckEventsWithoutCheck,
    #[error("--detach and --check cannot be combined: a check stops the services it started")]
    DetachWithCheck,
    #[error("--sandbox-mount: {0}")]
    Mount(Box<openwork_allowlist::Error>),
    #[error("--{flag} {value}: {reason}")]
    BadValue {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{0}")]
    Egress(#[from] egress::EgressError),
    #[error("--{flag} needs --sandbox docker|container|auto")]
    SandboxOnly { flag: &'static str },
    #[error(
        "--run-id must be 1-128 printable characters without spaces or `/` (it names the run's directory), got {value:?}"
    )]
    RunId { value: String },
    #[error(
        "--tui needs a terminal, but stdout is not one (redirected or piped); drop --tui, or use --no-tui / `openwork serve` for logs"
    )]
    TuiWithoutTerminal,
    #[error("--tui cannot be combined with --{with}: that mode prints to stdout for a script")]
    TuiWith { with: &'static str },
}

/// What the run prints after the services are ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Run until a signal (or the dashboard's quit), streaming logs or showing the dashboard.
    Foreground,
    /// Start, print a summary, leave services running.
    Detach,
    /// Start, run checks, stop.
    Check { events: bool },
}

/// The credentials of one run. Never logged: the log sink redacts each value.
#[derive(Clone)]
pub struct Credentials {
    /// Collaborator token for remote clients (`Authorization: Bearer`).
    pub client_token: String,
    /// Host/admin token (`X-OpenWork-Host-Token`).
    pub host_token: String,
    /// opencode basic-auth user name (256 random bytes, hex).
    pub opencode_username: String,
    /// opencode basic-auth password (256 random bytes, hex).
    pub opencode_password: String,
    /// Bearer token of opencode-router's control API, shared with openwork-server (per run).
    pub router_token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials([REDACTED])")
    }
}

impl Credentials {
    /// Every secret value, for the redactor.
    pub fn secret_values(&self) -> Vec<String> {
        vec![
            self.client_token.clone(),
            self.host_token.clone(),
            self.opencode_username.clone(),
            self.opencode_password.clone(),
            self.router_token.clone(),
        ]
    }
}

/// Where sidecars come from and where they are cached.
#[derive(Debug, Clone)]
pub struct SidecarPlan {
    pub dir: Utf8PathBuf,
    pub base_url: String,
    pub manifest_url: String,
    pub sidecar_source: SourceArg,
    pub opencode_source: SourceArg,
    pub allow_external: bool,
    pub verify: bool,
    pub opencode_bin: Option<Utf8PathBuf>,
    pub server_bin: Option<Utf8PathBuf>,
    pub router_bin: Option<Utf8PathBuf>,
}

/// Every decision of one run. Built once by [`RunPlan::from_args`]; read-only afterwards.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub run_id: String,
    /// Absolute, symlink-resolved workspace directory.
    pub workspace: Utf8PathBuf,
    pub data_dir: Utf8PathBuf,
    pub approval: ApprovalMode,
    pub approval_timeout_ms: u64,
    pub read_only: bool,
    pub cors: Vec<String>,
    /// Host openwork-server binds (127.0.0.1, or 0.0.0.0 with remote access).
    pub openwork_bind_host: String,
    /// Requested port; `None` = 8787 when free, else a free port.
    pub openwork_port: Option<u16>,
    pub connect_host: Option<String>,
    pub remote_access: bool,
    pub opencode_port: Option<u16>,
    pub opencode_log_level: Option<OpencodeLogLevel>,
    pub credentials: Credentials,
    pub log_format: LogFormat,
    pub color: bool,
    pub verbose: bool,
    pub json: bool,
    pub mode: RunMode,
    pub router_enabled: bool,
    pub router_required: bool,
    pub sidecars: SidecarPlan,
    pub health_timeout: std::time::Duration,
    pub max_restarts: u32,
    /// Sandbox mode; `None` runs opencode on the host.
    pub sandbox: Option<SandboxSettings>,
    /// Show the dashboard: `start` with stdout on a terminal (or `--tui`), in the foreground
    /// mode, with pretty logs. `serve`, `--no-tui`, `--check`, `--json`, `--detach` and
    /// `--log-format json` stream logs instead.
    pub tui_requested: bool,
    /// The person's `OTEL_RESOURCE_ATTRIBUTES` (`k=v,…`), which each service's own are added to.
    pub otel_resource_attributes: String,
}

impl RunPlan {
    /// Validates `args` (of `start` when `is_start`, else `serve`) into a plan.
    pub fn from_args(args: &StartArgs, is_start: bool) -> Result<RunPlan, PlanError> {
        reject_unsupported(args)?;
        if args.check_events && !args.check {
            return Err(PlanError::CheckEventsWithoutCheck);
        }
        if args.detach && args.check {
            return Err(PlanError::DetachWithCheck);
        }
        let workspace = resolve_workspace(args.workspace.as_deref())?;

        let opencode_host = args.opencode_host.as_deref().unwrap_or("127.0.0.1");
        if !matches!(opencode_host, "127.0.0.1" | "localhost") {
            return Err(PlanError::OpencodeHost {
                value: opencode_host.to_string(),
            });
        }
        let openwork_bind_host = match (args.openwork_host.as_deref(), args.remote_access) {
            (_, true) => "0.0.0.0".to_string(),
            (None | Some("127.0.0.1" | "localhost"), false) => "127.0.0.1".to_string(),
            (Some("0.0.0.0"), false) => {
                return Err(PlanError::OpenworkHost {
                    value: "0.0.0.0 without --remote-access".to_string(),
                });
            }
            (Some(other), false) => {
                return Err(PlanError::OpenworkHost {
                    value: other.to_string(),
                });
            }
        };
        if args.openwork_port == Some(0) {
            return Err(PlanError::ZeroPort {
                flag: "openwork-port",
            });
        }
        if args.opencode_port == Some(0) {
            return Err(PlanError::ZeroPort {
                flag: "opencode-port",
            });
        }
        let cors = parse_cors(args.cors.as_deref())?;
        let credentials = Credentials {
            client_token: token_or_random(args.openwork_token.as_deref(), "openwork-token")?,
            host_token: token_or_random(
                args.openwork_host_token.as_deref(),
                "openwork-host-token",
            )?,
            opencode_username: random_hex(256),
            opencode_password: random_hex(256),
            router_token: random_hex(32),
        };
        let run_id = match &args.run_id {
            Some(id) => {
                if id.is_empty()
                    || id.len() > 128
                    || id
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
                    || id == "."
                    || id == ".."
                {
                    return Err(PlanError::RunId { value: id.clone() });
                }
                id.clone()
            }
            None => random_uuid(),
        };
        let data_dir = match &args.data_dir {
            Some(d) => absolutize(d)?,
            None => default_data_dir()?,
        };
        let sidecars = sidecar_plan(args, &data_dir)?;
        let sandbox = sandbox_settings(args, &workspace, &data_dir)?;
        let mode = if args.check {
            RunMode::Check {
                events: args.check_events,
            }
        } else if args.detach {
            RunMode::Detach
        } else {
            RunMode::Foreground
        };
        let stdout_tty = std::io::stdout().is_terminal();
        if is_start && args.tui && !args.no_tui {
            if !stdout_tty {
                return Err(PlanError::TuiWithoutTerminal);
            }
            for (set, with) in [
                (args.json, "json"),
                (args.check, "check"),
                (args.detach, "detach"),
            ] {
                if set {
                    return Err(PlanError::TuiWith { with });
                }
            }
        }
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = !no_color_env && !args.no_color && (args.color || stdout_tty);
        let tui_requested = is_start
            && !args.no_tui
            && (args.tui || stdout_tty)
            && mode == RunMode::Foreground
            && !args.json
            && args.log_format == LogFormat::Pretty;
        Ok(RunPlan {
            run_id,
            workspace,
            data_dir,
            approval: args.approval,
            approval_timeout_ms: args.approval_timeout,
            read_only: args.read_only,
            cors,
            openwork_bind_host,
            openwork_port: args.openwork_port,
            connect_host: args.connect_host.clone(),
            remote_access: args.remote_access,
            opencode_port: args.opencode_port,
            opencode_log_level: args.opencode_log_level,
            credentials,
            log_format: args.log_format,
            color,
            verbose: args.verbose,
            json: args.json,
            mode,
            router_enabled: !args.no_opencode_router,
            router_required: args.opencode_router_required,
            sidecars,
            health_timeout: std::time::Duration::from_secs(args.health_timeout),
            max_restarts: args.max_restarts,
            sandbox,
            tui_requested,
            otel_resource_attributes: std::env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default(),
        })
    }

    /// The directory opencode sees as the workspace: `/workspace` in a sandbox.
    pub fn opencode_directory(&self) -> String {
        match self.sandbox {
            Some(_) => openwork_backends::layout::WORKSPACE.to_string(),
            None => self.workspace.to_string(),
        }
    }

    /// `<data-dir>/opencode-config`, opencode's `OPENCODE_CONFIG_DIR`.
    pub fn opencode_config_dir(&self) -> Utf8PathBuf {
        self.data_dir.join("opencode-config")
    }

    /// `<data-dir>/runs/<run-id>`: logs and state of a detached run.
    pub fn run_dir(&self) -> Utf8PathBuf {
        self.data_dir.join("runs").join(&self.run_id)
    }
}

/// Flags whose feature lands with a later issue: accepted by the parser, refused here with a
/// message, never silently ignored.
fn reject_unsupported(args: &StartArgs) -> Result<(), PlanError> {
    if args.opencode_hot_reload == Some(true) {
        return Err(PlanError::NotSupportedYet {
            flag: "opencode-hot-reload",
            why: "config hot reload is not implemented yet",
            hint: "Restart the run after changing opencode config, or pass --no-opencode-hot-reload.",
        });
    }
    for (flag, given) in [
        (
            "opencode-hot-reload-debounce-ms",
            args.opencode_hot_reload_debounce_ms.is_some(),
        ),
        (
            "opencode-hot-reload-cooldown-ms",
            args.opencode_hot_reload_cooldown_ms.is_some(),
        ),
    ] {
        if given {
            return Err(PlanError::NotSupportedYet {
                flag,
                why: "config hot reload is not implemented yet",
                hint: "Remove the flag.",
            });
        }
    }
    Ok(())
}

fn resolve_workspace(arg: Option<&Utf8Path>) -> Result<Utf8PathBuf, PlanError> {
    let given = match arg {
        Some(p) => p.to_path_buf(),
        None => {
            let cwd = std::env::current_dir().map_err(|source| PlanError::WorkspaceUnreadable {
                path: ".".into(),
                source,
            })?;
            Utf8PathBuf::from_path_buf(cwd).map_err(|_| PlanError::CwdNotUtf8)?
        }
    };
    match std::fs::metadata(&given) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(PlanError::WorkspaceNotDir { path: given }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PlanError::WorkspaceMissing { path: given });
        }
        Err(source) => {
            return Err(PlanError::WorkspaceUnreadable {
                path: given,
                source,
            });
        }
    }
    let real = std::fs::canonicalize(&given).map_err(|source| PlanError::WorkspaceUnreadable {
        path: given.clone(),
        source,
    })?;
    Utf8PathBuf::from_path_buf(real).map_err(|_| PlanError::CwdNotUtf8)
}

fn absolutize(p: &Utf8Path) -> Result<Utf8PathBuf, PlanError> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|source| PlanError::WorkspaceUnreadable {
        path: p.to_path_buf(),
        source,
    })?;
    let cwd = Utf8PathBuf::from_path_buf(cwd).map_err(|_| PlanError::CwdNotUtf8)?;
    Ok(cwd.join(p))
}

fn default_data_dir() -> Result<Utf8PathBuf, PlanError> {
    let home = std::env::var("HOME").map_err(|_| PlanError::NoHome)?;
    if home.is_empty() {
        return Err(PlanError::NoHome);
    }
    Ok(Utf8PathBuf::from(home).join(".openwork"))
}

fn token_or_random(given: Option<&str>, flag: &'static str) -> Result<String, PlanError> {
    match given {
        Some(t) if t.trim().is_empty() => Err(PlanError::EmptyToken { flag }),
        Some(t) => Ok(t.trim().to_string()),
        None => Ok(random_uuid()),
    }
}

/// Parses `--cors`: a JSON array, or a `,`/`;` separated list. Empty means `*`.
pub fn parse_cors(raw: Option<&str>) -> Result<Vec<String>, PlanError> {
    let Some(raw) = raw else {
        return Ok(vec!["*".to_string()]);
    };
    let trimmed = raw.trim();
    let items: Vec<String> = if trimmed.starts_with('[') {
        serde_json::from_str::<Vec<String>>(trimmed).map_err(|e| PlanError::Cors {
            value: raw.to_string(),
            reason: format!("not a JSON array of strings ({e})"),
        })?
    } else {
        trimmed.split([',', ';']).map(str::to_string).collect()
    };
    let mut out = Vec::new();
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        if item != "*" && !(item.starts_with("http://") || item.starts_with("https://")) {
            return Err(PlanError::Cors {
                value: raw.to_string(),
                reason: format!("origin {item:?} must start with http:// or https://"),
            });
        }
        out.push(item.trim_end_matches('/').to_string());
    }
    if out.is_empty() {
        out.push("*".to_string());
    }
    Ok(out)
}

const DEFAULT_BASE_URL_PREFIX: &str =
    "https://github.com/different-ai/openwork/releases/download/openwork-orchestrator-v";

fn sidecar_plan(args: &StartArgs, data_dir: &Utf8Path) -> Result<SidecarPlan, PlanError> {
    let dir = match &args.sidecar_dir {
        Some(d) => absolutize(d)?,
        None => data_dir.join("sidecars"),
    };
    let base_url = args
        .sidecar_base_url
        .clone()
        .unwrap_or_else(|| format!("{DEFAULT_BASE_URL_PREFIX}{}", env!("CARGO_PKG_VERSION")));
    for (flag, url) in [
        ("sidecar-base-url", Some(&base_url)),
        ("sidecar-manifest", args.sidecar_manifest.as_ref()),
    ] {
        if let Some(url) = url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(PlanError::BadSource {
                flag,
                value: url.clone(),
                reason: "must be an http:// or https:// URL",
            });
        }
    }
    let manifest_url = args.sidecar_manifest.clone().unwrap_or_else(|| {
        format!(
            "{}/openwork-orchestrator-sidecars.json",
            base_url.trim_end_matches('/')
        )
    });
    if args.sidecar_source == SourceArg::Npm {
        return Err(PlanError::BadSource {
            flag: "sidecar-source",
            value: "npm".into(),
            reason: "npm is a source for opencode only; use auto|bundled|downloaded|external",
        });
    }
    let explicit = [
        ("opencode-bin", &args.opencode_bin, args.opencode_source),
        (
            "openwork-server-bin",
            &args.openwork_server_bin,
            args.sidecar_source,
        ),
        (
            "opencode-router-bin",
            &args.opencode_router_bin,
            args.sidecar_source,
        ),
    ];
    for (flag, bin, policy) in explicit {
        if let Some(path) = bin {
            if !args.allow_external {
                return Err(PlanError::ExternalNotAllowed {
                    flag,
                    path: path.clone(),
                });
            }
            if !matches!(policy, SourceArg::Auto | SourceArg::External) {
                return Err(PlanError::BadSource {
                    flag,
                    value: path.to_string(),
                    reason: "an explicit binary needs source auto or external",
                });
            }
        }
    }
    let abs = |p: &Option<Utf8PathBuf>| -> Result<Option<Utf8PathBuf>, PlanError> {
        match p {
            Some(p) if p.as_str().contains('/') => Ok(Some(absolutize(p)?)),
            Some(p) => Ok(Some(p.clone())),
            None => Ok(None),
        }
    };
    Ok(SidecarPlan {
        dir,
        base_url,
        manifest_url,
        sidecar_source: args.sidecar_source,
        opencode_source: args.opencode_source,
        allow_external: args.allow_external,
        verify: args.verify_sidecars,
        opencode_bin: abs(&args.opencode_bin)?,
        server_bin: abs(&args.openwork_server_bin)?,
        router_bin: abs(&args.opencode_router_bin)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn plan(extra: &[&str]) -> Result<RunPlan, PlanError> {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().to_str().unwrap().to_string();
        let mut argv = vec!["openwork", "serve", "--workspace", &ws, "--data-dir", &ws];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).unwrap();
        match cli.command {
            Some(crate::cli::Command::Serve(a)) => RunPlan::from_args(&a, false),
            _ => unreachable!(),
        }
    }

    #[test]
    fn tui_is_refused_without_a_terminal() {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            return; // a person running the tests in a terminal: nothing to check
        }
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().to_str().unwrap();
        let cli = Cli::try_parse_from(["openwork", "start", "--workspace", ws, "--tui"]).unwrap();
        let Some(crate::cli::Command::Start(a)) = cli.command else {
            unreachable!()
        };
        assert!(matches!(
            RunPlan::from_args(&a, true).unwrap_err(),
            PlanError::TuiWithoutTerminal
        ));
        // --no-tui after --tui wins, and `serve` never shows the dashboard.
        let cli =
            Cli::try_parse_from(["openwork", "start", "--workspace", ws, "--tui", "--no-tui"])
                .unwrap();
        let Some(crate::cli::Command::Start(a)) = cli.command else {
            unreachable!()
        };
        assert!(!RunPlan::from_args(&a, true).unwrap().tui_requested);
    }

    #[test]
    fn defaults_are_loopback_and_random_secrets() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.openwork_bind_host, "127.0.0.1");
        assert_eq!(p.cors, vec!["*"]);
        assert_eq!(p.credentials.opencode_password.len(), 512);
        assert_ne!(p.credentials.client_token, p.credentials.host_token);
        assert_eq!(p.mode, RunMode::Foreground);
        assert!(!p.tui_requested);
    }

    #[test]
    fn missing_workspace_is_named() {
        let cli =
            Cli::try_parse_from(["openwork", "serve", "--workspace", "/nonexistent/ws-x"]).unwrap();
        let Some(crate::cli::Command::Serve(a)) = cli.command else {
            unreachable!()
        };
        let err = RunPlan::from_args(&a, false).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ws-x"), "{err}");
    }

    #[test]
    fn non_loopback_opencode_host_is_refused() {
        let err = plan(&["--opencode-host", "0.0.0.0"]).unwrap_err();
        assert!(err.to_string().contains("0.0.0.0"), "{err}");
    }

    #[test]
    fn remote_access_binds_all_interfaces() {
        let p = plan(&["--remote-access"]).unwrap();
        assert_eq!(p.openwork_bind_host, "0.0.0.0");
    }

    #[test]
    fn cors_lists_parse_and_validate() {
        assert_eq!(
            parse_cors(Some("https://a.example, https://b.example/")).unwrap(),
            vec!["https://a.example", "https://b.example"]
        );
        assert_eq!(
            parse_cors(Some(r#"["https://a.example"]"#)).unwrap(),
            vec!["https://a.example"]
        );
        assert_eq!(parse_cors(Some(" ")).unwrap(), vec!["*"]);
        assert!(
            parse_cors(Some("ftp://x"))
                .unwrap_err()
                .to_string()
                .contains("ftp://x")
        );
        assert!(parse_cors(Some("[1,2]")).is_err());
    }

    #[test]
    fn later_features_say_not_supported_yet() {
        let err = plan(&["--opencode-hot-reload"]).unwrap_err();
        assert!(err.to_string().contains("not supported yet"), "{err}");
        // Turning hot reload off is what this build does anyway.
        plan(&["--no-opencode-hot-reload"]).unwrap();
    }

    #[test]
    fn sandbox_flags_need_a_sandbox_and_valid_values() {
        assert!(matches!(
            plan(&["--sandbox-mount", "/tmp:x"]).unwrap_err(),
            PlanError::SandboxOnly {
                flag: "sandbox-mount"
            }
        ));
        let err = plan(&["--sandbox", "docker", "--sandbox-memory", "lots"]).unwrap_err();
        assert!(err.to_string().contains("lots"), "{err}");
        let p = plan(&["--sandbox", "docker", "--sandbox-memory", "512m"]).unwrap();
        let sb = p.sandbox.clone().unwrap();
        assert_eq!(sb.limits.memory_bytes, 512 * 1024 * 1024);
        assert_eq!(sb.image, DEFAULT_SANDBOX_IMAGE);
        assert_eq!(p.opencode_directory(), "/workspace");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4g"), Some(4 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("-1g"), None);
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn default_image_matches_images_dir() {
        let tag = include_str!("../images/IMAGE").trim().to_string();
        assert_eq!(tag, DEFAULT_SANDBOX_IMAGE);
    }

    #[test]
    fn explicit_bin_needs_allow_external() {
        let err = plan(&["--opencode-bin", "/bin/true"]).unwrap_err();
        assert!(err.to_string().contains("--allow-external"), "{err}");
        plan(&["--opencode-bin", "/bin/true", "--allow-external"]).unwrap();
        let err = plan(&[
            "--opencode-bin",
            "/bin/true",
            "--allow-external",
            "--opencode-source",
            "npm",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("auto or external"), "{err}");
    }

    #[test]
    fn check_events_needs_check() {
        assert!(matches!(
            plan(&["--check-events"]).unwrap_err(),
            PlanError::CheckEventsWithoutCheck
        ));
        let p = plan(&["--check", "--check-events"]).unwrap();
        assert_eq!(p.mode, RunMode::Check { events: true });
    }
}
