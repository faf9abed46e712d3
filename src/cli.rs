//! Command-line surface of the orchestrator: clap definitions only.
//!
//! Every flag of `start`/`serve` carries its `OPENWORK_*` environment variable (`env = ...`), so
//! precedence is flag › env › default, resolved once here. Turning these raw values into a
//! validated, immutable [`crate::plan::RunPlan`] is `plan.rs`'s job; nothing after that reads the
//! environment again.

use camino::Utf8PathBuf;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// The pinned opencode version and this build's version, as `--version` prints them.
pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (opencode ", "1.18.34", ")");

#[derive(Debug, Parser)]
#[command(
    name = "openwork",
    version = LONG_VERSION,
    about = "Sandbox-first orchestrator for the opencode coding agent",
    long_about = "Runs opencode, openwork-server and opencode-router for a workspace, prints how \
                  remote clients pair with it, and keeps one unified log stream.\n\n\
                  With no command, `openwork` runs `start`.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options of `start` when no command is given.
    #[command(flatten)]
    pub start: StartArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start opencode + openwork-server + opencode-router for a workspace (dashboard on a TTY).
    Start(StartArgs),
    /// Start the services and stream logs (never the dashboard).
    Serve(StartArgs),
    /// List and answer pending write approvals (host token).
    Approvals(crate::client::approvals::ApprovalsArgs),
    /// Check that openwork-server and opencode answer; non-zero exit when one is down.
    Status(crate::client::status::StatusArgs),
    /// Remote file sessions on a workspace (client token).
    Files(crate::client::files::FilesArgs),
    /// Check this machine for what `start` needs (engines, image, opencode, npm, data dir,
    /// ports, temp dir, clock) and name the fix for each problem; exit 1 when something blocks.
    Doctor(crate::doctor::DoctorArgs),
    /// List the recorded runs with their URLs and health; `--prune` removes stale ones.
    Ps(crate::runs::ps::PsArgs),
    /// Stop a run (its process groups and container) and remove its record.
    Stop(crate::runs::stop::StopArgs),
    /// Print (or follow) the logs of a detached run.
    Logs(crate::runs::logs::LogsArgs),
    /// Run `opencode attach` against a run's opencode (credentials through the environment).
    Attach(crate::runs::attach::AttachArgs),
    /// The sandbox's egress policy: `show` the effective one, `check` a file.
    Policy(crate::policy::PolicyArgs),
    /// Run openwork-server (the remote-control API). Same as invoking this binary as `openwork-server`.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Server {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Internal: minimal init (PID 1) for a sandbox container (see init.rs).
    #[command(name = "__init", hide = true, disable_help_flag = true)]
    Init {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Internal: the sandbox's egress gate container (see gate/README.md).
    #[command(name = "gate", hide = true, disable_help_flag = true)]
    Gate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Internal: stops the run's process groups if the orchestrator dies (see watchdog.rs).
    #[command(name = "__watchdog", hide = true)]
    Watchdog,
    /// Run opencode-router (the chat bridge). Same as invoking this binary as `opencode-router`.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Router {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// Approval mode of openwork-server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApprovalMode {
    /// Every gated write waits for the host to allow or deny it.
    Manual,
    /// Gated writes are allowed without asking.
    Auto,
}

impl ApprovalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Manual => "manual",
            ApprovalMode::Auto => "auto",
        }
    }
}

/// Log stream format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `[service] message` lines for people.
    #[value(alias = "text", alias = "human")]
    Pretty,
    /// One OpenTelemetry-shaped JSON object per line.
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        }
    }
}

/// Where a sidecar binary comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// Try bundled, then the verified cache, then downloads.
    Auto,
    /// This executable (opencode: an `opencode` file next to it).
    Bundled,
    /// The SHA-256 sidecar manifest.
    Downloaded,
    /// An explicit `--*-bin` path or a binary on PATH (needs `--allow-external`).
    External,
    /// opencode only: the pinned npm package, fetched with the `npm` client.
    Npm,
}

/// Sandbox backend choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxArg {
    /// No sandbox: services run on the host.
    None,
    /// Apple `container` on Apple silicon, else Docker, else an error.
    Auto,
    /// Docker engine (through its API).
    Docker,
    /// Apple's `container` CLI.
    Container,
}

/// Egress of a sandbox (`--sandbox-network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxNetworkArg {
    /// Through the egress gate: default-deny policy, provider keys injected.
    Enforce,
    /// No gate: unrestricted outbound network.
    Open,
}

/// Source of the sandbox's Linux binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxSidecarsArg {
    /// This host's binaries on Linux, downloads elsewhere.
    Auto,
    /// This host's binaries (Linux hosts only).
    Host,
    /// The Linux binaries from the sidecar manifest (opencode also from npm).
    Downloaded,
}

/// opencode's own log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum OpencodeLogLevel {
    #[value(alias = "debug")]
    Debug,
    #[value(alias = "info")]
    Info,
    #[value(alias = "warn")]
    Warn,
    #[value(alias = "error")]
    Error,
}

/// Options of `start` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// Workspace directory (must exist).
    #[arg(long, env = "OPENWORK_WORKSPACE", value_name = "DIR")]
    pub workspace: Option<Utf8PathBuf>,

    /// State directory (sidecar cache, opencode config, detached-run state).
    #[arg(long, env = "OPENWORK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<Utf8PathBuf>,

    /// How openwork-server gates writes.
    #[arg(
        long,
        env = "OPENWORK_APPROVAL_MODE",
        value_enum,
        default_value = "manual"
    )]
    pub approval: ApprovalMode,

    /// How long a gated write waits for the host, in milliseconds.
    #[arg(long, env = "OPENWORK_APPROVAL_TIMEOUT_MS", value_name = "MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub approval_timeout: u64,

    /// Serve the workspace read-only (no writes through openwork-server).
    #[arg(long, env = "OPENWORK_READONLY", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub read_only: bool,

    /// Allowed CORS origins (comma-separated, or a JSON array); `*` allows any.
    #[arg(long, env = "OPENWORK_CORS_ORIGINS", value_name = "LIST")]
    pub cors: Option<String>,

    /// Bind host of openwork-server: loopback, or 0.0.0.0 with --remote-access.
    #[arg(long, env = "OPENWORK_HOST", value_name = "HOST")]
    pub openwork_host: Option<String>,

    /// Port of openwork-server (default 8787, or a free port when 8787 is busy).
    #[arg(long, env = "OPENWORK_PORT", value_name = "PORT")]
    pub openwork_port: Option<u16>,

    /// Bind host of opencode (loopback only).
    #[arg(long, env = "OPENWORK_OPENCODE_BIND_HOST", value_name = "HOST")]
    pub opencode_host: Option<String>,

    /// Port of opencode (default: a free port).
    #[arg(long, env = "OPENWORK_OPENCODE_PORT", value_name = "PORT")]
    pub opencode_port: Option<u16>,

    /// opencode's log level.
    #[arg(
        long,
        env = "OPENWORK_OPENCODE_LOG_LEVEL",
        value_enum,
        ignore_case = true
    )]
    pub opencode_log_level: Option<OpencodeLogLevel>,

    /// Client (collaborator) token (default: random).
    #[arg(
        long,
        env = "OPENWORK_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub openwork_token: Option<String>,

    /// Host/admin token (default: random).
    #[arg(
        long,
        env = "OPENWORK_HOST_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub openwork_host_token: Option<String>,

    /// Bind openwork-server on all interfaces and print a LAN connect URL.
    #[arg(long, env = "OPENWORK_REMOTE_ACCESS", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub remote_access: bool,

    /// Host name used in connect URLs (with --remote-access).
    #[arg(long, env = "OPENWORK_CONNECT_HOST", value_name = "HOST")]
    pub connect_host: Option<String>,

    /// Correlation id of this run (default: a random UUID).
    #[arg(long, env = "OPENWORK_RUN_ID", value_name = "ID")]
    pub run_id: Option<String>,

    /// Log stream format.
    #[arg(
        long,
        env = "OPENWORK_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,

    /// Print diagnostics (resolved binaries, each resolution attempt).
    #[arg(long, env = "OPENWORK_VERBOSE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub verbose: bool,

    /// Print one JSON document with the raw pairing credentials on stdout (logs go to stderr).
    #[arg(long, action = ArgAction::SetTrue)]
    pub json: bool,

    /// Leave the services running in the background and exit after printing a summary.
    #[arg(long, env = "OPENWORK_DETACH", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub detach: bool,

    /// Start everything, verify health and the API, then stop. Exit 0 when all checks pass.
    #[arg(long, action = ArgAction::SetTrue)]
    pub check: bool,

    /// With --check: also verify that opencode's event stream delivers events.
    #[arg(long, action = ArgAction::SetTrue)]
    pub check_events: bool,

    /// Show the dashboard (default on a terminal for `start`).
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "no_tui")]
    pub tui: bool,

    /// Never show the dashboard; stream logs instead.
    #[arg(long, action = ArgAction::SetTrue)]
    pub no_tui: bool,

    /// Colour the pretty log stream (default: when stdout is a terminal; NO_COLOR wins).
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "no_color")]
    pub color: bool,

    /// Never colour output.
    #[arg(long, action = ArgAction::SetTrue)]
    pub no_color: bool,

    /// End the run when opencode-router exits or cannot start.
    #[arg(long, env = "OPENWORK_OPENCODE_ROUTER_REQUIRED", action = ArgAction::SetTrue,
          value_parser = BoolishValueParser::new())]
    pub opencode_router_required: bool,

    /// Do not start opencode-router.
    #[arg(long, action = ArgAction::SetTrue)]
    pub no_opencode_router: bool,

    /// Allow binaries that are not bundled or verified downloads (`--*-bin`, PATH).
    #[arg(long, env = "OPENWORK_ALLOW_EXTERNAL", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub allow_external: bool,

    /// opencode binary to use (needs --allow-external).
    #[arg(long, env = "OPENWORK_OPENCODE_BIN", value_name = "PATH")]
    pub opencode_bin: Option<Utf8PathBuf>,

    /// openwork-server binary to use (needs --allow-external).
    #[arg(long, env = "OPENWORK_SERVER_BIN", value_name = "PATH")]
    pub openwork_server_bin: Option<Utf8PathBuf>,

    /// opencode-router binary to use (needs --allow-external).
    #[arg(long, env = "OPENCODE_ROUTER_BIN", value_name = "PATH")]
    pub opencode_router_bin: Option<Utf8PathBuf>,

    /// Sidecar cache directory (default: <data-dir>/sidecars).
    #[arg(long, env = "OPENWORK_SIDECAR_DIR", value_name = "DIR")]
    pub sidecar_dir: Option<Utf8PathBuf>,

    /// Base URL of sidecar release assets.
    #[arg(long, env = "OPENWORK_SIDECAR_BASE_URL", value_name = "URL")]
    pub sidecar_base_url: Option<String>,

    /// URL of the sidecar manifest (default: <base-url>/openwork-orchestrator-sidecars.json).
    #[arg(long, env = "OPENWORK_SIDECAR_MANIFEST_URL", value_name = "URL")]
    pub sidecar_manifest: Option<String>,

    /// Where openwork-server and opencode-router come from.
    #[arg(
        long,
        env = "OPENWORK_SIDECAR_SOURCE",
        value_enum,
        ignore_case = true,
        default_value = "auto"
    )]
    pub sidecar_source: SourceArg,

    /// Where opencode comes from.
    #[arg(
        long,
        env = "OPENWORK_OPENCODE_SOURCE",
        value_enum,
        ignore_case = true,
        default_value = "auto"
    )]
    pub opencode_source: SourceArg,

    /// Re-hash cached sidecars even when their size, mtime and inode are unchanged.
    #[arg(long, env = "OPENWORK_VERIFY_SIDECARS", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub verify_sidecars: bool,

    /// How long to wait for all services to become healthy, in seconds.
    #[arg(long, env = "OPENWORK_HEALTH_TIMEOUT", value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub health_timeout: u64,

    /// How many times in a row a crashed service is restarted before the run gives up on it.
    #[arg(long, env = "OPENWORK_MAX_RESTARTS", value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_restarts: u32,

    /// Run the agent in a container: none, auto (Apple container on Apple silicon, else Docker), docker, container.
    #[arg(
        long,
        env = "OPENWORK_SANDBOX",
        value_enum,
        ignore_case = true,
        default_value = "none"
    )]
    pub sandbox: SandboxArg,

    /// Memory limit of the sandbox (e.g. 4g, 512m).
    #[arg(
        long,
        env = "OPENWORK_SANDBOX_MEMORY",
        value_name = "SIZE",
        default_value = "4g"
    )]
    pub sandbox_memory: String,

    /// CPU limit of the sandbox (e.g. 2, 0.5).
    #[arg(
        long,
        env = "OPENWORK_SANDBOX_CPUS",
        value_name = "CPUS",
        default_value = "2"
    )]
    pub sandbox_cpus: f64,

    /// Process limit of the sandbox.
    #[arg(long, env = "OPENWORK_SANDBOX_PIDS_LIMIT", value_name = "N", default_value_t = 512,
          value_parser = clap::value_parser!(i64).range(16..=1_000_000))]
    pub sandbox_pids_limit: i64,

    /// Where the Linux binaries mounted into the sandbox come from: auto (this host's own when it
    /// is Linux, else the sidecar manifest / npm for linux-<arch>), host, or downloaded.
    #[arg(
        long,
        env = "OPENWORK_SANDBOX_SIDECARS",
        value_enum,
        default_value = "auto"
    )]
    pub sandbox_sidecars: SandboxSidecarsArg,

    /// Do not copy opencode's provider credentials (auth.json, mcp-auth.json) into the sandbox.
    #[arg(long, env = "OPENWORK_SANDBOX_NO_AUTH_COPY", action = ArgAction::SetTrue,
          value_parser = BoolishValueParser::new())]
    pub no_sandbox_auth_copy: bool,

    /// Let the agent change the workspace's `.git/config` and hooks (by default they are
    /// read-only in the sandbox, so nothing the agent plants runs when you use git on the host).
    #[arg(long, env = "OPENWORK_SANDBOX_ALLOW_GIT_CONFIG", action = ArgAction::SetTrue,
          value_parser = BoolishValueParser::new())]
    pub sandbox_allow_git_config: bool,

    /// `UID:GID` the agent runs as (default: yours; on a root host, the workspace's owner).
    #[arg(long, env = "OPENWORK_SANDBOX_USER", value_name = "UID:GID")]
    pub sandbox_user: Option<String>,

    /// Refuse to run unless every control of the isolation report is enforced.
    #[arg(long, env = "OPENWORK_SANDBOX_STRICT", action = ArgAction::SetTrue,
          value_parser = BoolishValueParser::new())]
    pub sandbox_strict: bool,

    /// Sandbox image (sandbox mode).
    #[arg(long, env = "OPENWORK_SANDBOX_IMAGE", value_name = "IMAGE")]
    pub sandbox_image: Option<String>,

    /// Host directory mounted at /persist (sandbox mode).
    #[arg(long, env = "OPENWORK_SANDBOX_PERSIST_DIR", value_name = "DIR")]
    pub sandbox_persist_dir: Option<Utf8PathBuf>,

    /// Extra mount `host:sub[:ro|rw]` (sandbox mode; repeatable).
    #[arg(long, env = "OPENWORK_SANDBOX_MOUNT", value_name = "SPEC")]
    pub sandbox_mount: Vec<String>,

    /// Egress of the sandbox: enforce (the egress gate: default with Docker) or open (no gate;
    /// unrestricted outbound network). Apple `container` is "not enforced" and refuses enforce.
    #[arg(long, env = "OPENWORK_SANDBOX_NETWORK", value_enum, ignore_case = true)]
    pub sandbox_network: Option<SandboxNetworkArg>,

    /// The egress policy file (default ~/.config/openwork/sandbox-policy.json; schema in
    /// gate/README.md). Edits apply to the running gate.
    #[arg(long, env = "OPENWORK_SANDBOX_POLICY", value_name = "FILE")]
    pub sandbox_policy: Option<std::path::PathBuf>,

    /// Allow HOST[:PORT] (port 443 by default) through the egress gate for this run
    /// (repeatable; the variable takes a comma list).
    #[arg(
        long,
        env = "OPENWORK_SANDBOX_ALLOW",
        value_name = "HOST[:PORT]",
        value_delimiter = ','
    )]
    pub sandbox_allow: Vec<String>,

    /// Apple `container` CLI to run for `--sandbox container` (default: `container` on PATH, macOS
    /// on Apple silicon only). On other hosts only a test double of that CLI can be given here.
    #[arg(long, env = "OPENWORK_CONTAINER_BIN", value_name = "PATH", hide = true)]
    pub container_bin: Option<std::path::PathBuf>,

    /// Reload opencode when its config changes.
    #[arg(long, env = "OPENWORK_OPENCODE_HOT_RELOAD", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, default_missing_value = "true")]
    pub opencode_hot_reload: Option<bool>,

    /// Do not reload opencode when its config changes.
    #[arg(long, action = ArgAction::SetTrue)]
    pub no_opencode_hot_reload: bool,

    /// Hot-reload debounce, in milliseconds.
    #[arg(
        long,
        env = "OPENWORK_OPENCODE_HOT_RELOAD_DEBOUNCE_MS",
        value_name = "MS"
    )]
    pub opencode_hot_reload_debounce_ms: Option<u64>,

    /// Hot-reload cooldown, in milliseconds.
    #[arg(
        long,
        env = "OPENWORK_OPENCODE_HOT_RELOAD_COOLDOWN_MS",
        value_name = "MS"
    )]
    pub opencode_hot_reload_cooldown_ms: Option<u64>,
}
