//! The resolved, immutable configuration of one server run.
//!
//! [`Config`] is built once (by [`crate::cli`] from flags and env, or directly
//! by tests and embedders) and never re-reads the environment afterwards.
//! Secrets live in [`Secret`], whose `Debug` output is redacted so a config
//! dump can never leak a token.

use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use crate::workspace::Workspace;

/// How writes are approved (reference §A9).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// Every gated write waits for the host to answer `allow` or `deny`.
    Manual,
    /// Every gated write is approved at once; nothing is queued.
    Auto,
}

impl ApprovalMode {
    /// The wire spelling (`manual` / `auto`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Auto => "auto",
        }
    }
}

/// Output format of log lines (reference §A14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One plain text line per message.
    #[value(alias = "text", alias = "human")]
    #[serde(alias = "text", alias = "human")]
    Pretty,
    /// One OpenTelemetry-style JSON object per line.
    Json,
}

/// Where a token came from, reported by `GET /status` as `tokenSource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    /// A command-line flag.
    Cli,
    /// An environment variable.
    Env,
    /// The config file (`server.json`).
    File,
    /// The server generated a random one.
    Generated,
}

/// A secret string (token or password). `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value; call only where the value must really be used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// Allowed CORS origins: either any origin (`*`) or an explicit list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsOrigins(pub Vec<String>);

impl CorsOrigins {
    /// Parses `*`, a JSON array of strings, or a `,`/`;`-separated list.
    /// Empty entries are dropped; an empty result means "any origin" (the
    /// reference default is `["*"]`).
    pub fn parse(raw: &str) -> Self {
        let trimmed = raw.trim();
        let items: Vec<String> = if trimmed.starts_with('[') {
            serde_json::from_str::<Vec<String>>(trimmed).unwrap_or_default()
        } else {
            trimmed.split([',', ';']).map(str::to_owned).collect()
        };
        Self::from_list(items)
    }

    /// A list of origins (e.g. `corsOrigins` of `server.json`); empty entries
    /// are dropped and an empty result means "any origin".
    pub fn from_list(items: Vec<String>) -> Self {
        let mut items: Vec<String> = items
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if items.is_empty() {
            items.push("*".to_owned());
        }
        Self(items)
    }

    /// Whether any origin is allowed.
    pub fn allows_any(&self) -> bool {
        self.0.iter().any(|o| o == "*")
    }

    /// Whether this exact origin is listed.
    pub fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o == origin)
    }
}

impl Default for CorsOrigins {
    fn default() -> Self {
        Self(vec!["*".to_owned()])
    }
}

/// Default largest inbox upload.
pub const DEFAULT_INBOX_MAX_BYTES: u64 = 50_000_000;
/// Largest inbox upload that can be configured.
pub const MAX_INBOX_MAX_BYTES: u64 = 250_000_000;

/// The approval settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalConfig {
    /// Manual or automatic approval.
    pub mode: ApprovalMode,
    /// How long a manual request waits before it is denied with `timeout`.
    pub timeout: Duration,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        Self {
            mode: ApprovalMode::Manual,
            timeout: Duration::from_millis(30_000),
        }
    }
}

/// Everything one server run needs, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bind host, e.g. `127.0.0.1`.
    pub host: String,
    /// Bind port; 0 picks a free one.
    pub port: u16,
    /// Workspaces in order; the first is the active one.
    pub workspaces: Vec<Workspace>,
    /// Approval mode and timeout.
    pub approval: ApprovalConfig,
    /// When true, workspace writes answer 403 `read_only`.
    pub read_only: bool,
    /// Allowed CORS origins.
    pub cors: CorsOrigins,
    /// The client bearer token (scope `collaborator`).
    pub client_token: Secret,
    /// The host token (`X-OpenWork-Host-Token`).
    pub host_token: Secret,
    /// Where the client token came from.
    pub client_token_source: TokenSource,
    /// Where the host token came from.
    pub host_token_source: TokenSource,
    /// Log line format.
    pub log_format: LogFormat,
    /// One log line per request when true.
    pub log_requests: bool,
    /// Print the resolved configuration at startup.
    pub verbose: bool,
    /// Correlation id for logs (`run.id`, `service.instance.id`).
    pub run_id: String,
    /// Largest request body accepted, in bytes (larger ones get 413).
    pub max_body_bytes: usize,
    /// `tokens.json` for issued tokens; `None` keeps them in memory only.
    pub token_store: Option<std::path::PathBuf>,
    /// Directory of the audit log (`<data dir>/audit`); `None` keeps entries in memory.
    pub audit_dir: Option<std::path::PathBuf>,
    /// The user's home, for global skills (`~/.config/opencode/skills`, `~/.claude/skills`),
    /// commands and plugins; `None` lists no global items.
    pub home_dir: Option<Utf8PathBuf>,
    /// Accept inbox uploads (`OPENWORK_INBOX_ENABLED`, default on).
    pub inbox_enabled: bool,
    /// Serve outbox artifacts (`OPENWORK_OUTBOX_ENABLED`, default on).
    pub outbox_enabled: bool,
    /// Largest inbox upload (`OPENWORK_INBOX_MAX_BYTES`, default 50 000 000, at most 250 000 000).
    pub inbox_max_bytes: u64,
    /// `OPENCODE_ROUTER_HEALTH_PORT`: the opencode-router control port on 127.0.0.1; `None`
    /// answers the router routes 404 `opencodeRouter_unconfigured`.
    pub router_port: Option<u16>,
    /// `OPENCODE_ROUTER_TOKEN`: bearer secret sent to the router's control API.
    pub router_token: Option<Secret>,
    /// `OPENWORK_CONTROL_BASE_URL`: the orchestrator's control endpoint for `/runtime/*`.
    pub control_base_url: Option<String>,
    /// `OPENWORK_CONTROL_TOKEN`: bearer secret for the control endpoint.
    pub control_token: Option<Secret>,
    /// Size at which the live audit file is rotated.
    pub audit_rotate_bytes: u64,
    /// The `server.json` that was read, if any (reported by `/status`).
    pub config_path: Option<Utf8PathBuf>,
    /// `authorizedRoots` from `server.json`; empty means "the workspace paths".
    pub authorized_roots: Vec<Utf8PathBuf>,
}

impl Config {
    /// A config with the reference defaults, the given tokens and no
    /// workspaces; convenient for tests and embedders.
    pub fn new(client_token: impl Into<String>, host_token: impl Into<String>) -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8787,
            workspaces: Vec::new(),
            approval: ApprovalConfig::default(),
            read_only: false,
            cors: CorsOrigins::default(),
            client_token: Secret::new(client_token),
            host_token: Secret::new(host_token),
            client_token_source: TokenSource::Cli,
            host_token_source: TokenSource::Cli,
            log_format: LogFormat::Pretty,
            log_requests: true,
            verbose: false,
            run_id: uuid::Uuid::new_v4().to_string(),
            max_body_bytes: crate::routes::MAX_BODY_BYTES,
            token_store: None,
            audit_dir: None,
            home_dir: None,
            router_port: None,
            router_token: None,
            control_base_url: None,
            control_token: None,
            inbox_enabled: true,
            outbox_enabled: true,
            inbox_max_bytes: DEFAULT_INBOX_MAX_BYTES,
            audit_rotate_bytes: crate::audit::DEFAULT_MAX_BYTES,
            config_path: None,
            authorized_roots: Vec::new(),
        }
    }

    /// The paths under which workspaces may be resolved: `authorizedRoots`
    /// from `server.json` when it lists any, else the workspace paths.
    pub fn authorized_roots(&self) -> Vec<String> {
        if self.authorized_roots.is_empty() {
            self.workspaces.iter().map(|w| w.path.to_string()).collect()
        } else {
            self.authorized_roots
                .iter()
                .map(|p| p.to_string())
                .collect()
        }
    }

    /// Whether `path` is an authorized root or lies below one (component-wise).
    pub fn is_authorized(&self, path: &Utf8Path) -> bool {
        self.authorized_roots()
            .iter()
            .any(|root| path.starts_with(root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_parses_lists_json_and_star() {
        assert_eq!(
            CorsOrigins::parse("http://a, http://b;http://c").0,
            ["http://a", "http://b", "http://c"]
        );
        assert_eq!(CorsOrigins::parse(r#"["http://a"]"#).0, ["http://a"]);
        assert!(CorsOrigins::parse("*").allows_any());
        assert!(CorsOrigins::parse("").allows_any());
        assert!(!CorsOrigins::parse("http://a").allows_any());
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
