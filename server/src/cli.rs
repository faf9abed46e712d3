//! The command line of `openwork-server`: flags, their env variables and
//! `server.json` (reference §A3–§A5), resolved once into a [`Config`].
//!
//! Precedence is CLI > env > file > default for every setting (clap tells
//! which of CLI, env or default gave a value; the file fills in only where
//! clap fell back to its default). Nothing reads the environment after
//! [`parse_args`] returns. Values the original silently ignored (an unknown
//! `--approval`, a non-numeric `--port`) are usage errors here that name the
//! flag, the value and what is accepted. Unknown `--flags` are still skipped
//! with a warning, as the reference requires, so a newer orchestrator can pass
//! flags this server does not know yet.

use std::collections::HashSet;
use std::ffi::OsString;

use camino::{Utf8Path, Utf8PathBuf};
use clap::builder::{BoolishValueParser, FalseyValueParser};
use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

use crate::config::{
    ApprovalConfig, ApprovalMode, Config, CorsOrigins, LogFormat, Secret, TokenSource,
};
use crate::config_file::{self, ConfigFileError, LoadedFile};
use crate::workspace::{OpencodeAttachment, Workspace, resolve_path};

/// Flags of `openwork-server`.
#[derive(Debug, Parser)]
#[command(
    name = "openwork-server",
    about = "Remote-control HTTP API of an openwork workspace",
    disable_version_flag = true
)]
struct Args {
    /// server.json location (default `~/.config/openwork/server.json`; a missing default file is fine).
    #[arg(long, env = "OPENWORK_SERVER_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Bind host.
    #[arg(long, env = "OPENWORK_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Bind port; 0 picks a free port.
    #[arg(long, env = "OPENWORK_PORT", default_value_t = 8787)]
    port: u16,
    /// Workspace root (repeatable); relative paths resolve against the current directory
    /// (in server.json: against the file's directory).
    #[arg(long = "workspace", value_name = "PATH", action = ArgAction::Append)]
    workspaces: Vec<Utf8PathBuf>,
    /// Workspaces from the environment: a JSON array or a `,`/`;` list.
    #[arg(long = "workspaces", env = "OPENWORK_WORKSPACES", hide = true)]
    workspaces_list: Option<String>,
    /// How writes are approved.
    #[arg(
        long,
        env = "OPENWORK_APPROVAL_MODE",
        value_enum,
        default_value = "manual"
    )]
    approval: ApprovalMode,
    /// How long a manual approval waits, in milliseconds.
    #[arg(
        long = "approval-timeout",
        env = "OPENWORK_APPROVAL_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = 30_000
    )]
    approval_timeout: u64,
    /// Refuse workspace writes.
    #[arg(long = "read-only", env = "OPENWORK_READONLY", action = ArgAction::SetTrue,
          value_parser = BoolishValueParser::new())]
    read_only: bool,
    /// Allowed CORS origins: `*`, a `,`/`;` list or a JSON array.
    #[arg(long, env = "OPENWORK_CORS_ORIGINS", value_name = "ORIGINS")]
    cors: Option<String>,
    /// OpenCode URL to attach to workspaces.
    #[arg(
        long = "opencode-base-url",
        env = "OPENWORK_OPENCODE_BASE_URL",
        value_name = "URL"
    )]
    opencode_base_url: Option<String>,
    /// OpenCode directory (applied only when there is exactly one workspace).
    #[arg(
        long = "opencode-directory",
        env = "OPENWORK_OPENCODE_DIRECTORY",
        value_name = "PATH"
    )]
    opencode_directory: Option<String>,
    /// OpenCode Basic-auth user name.
    #[arg(
        long = "opencode-username",
        env = "OPENWORK_OPENCODE_USERNAME",
        hide_env_values = true
    )]
    opencode_username: Option<String>,
    /// OpenCode Basic-auth password (prefer the env variable).
    #[arg(
        long = "opencode-password",
        env = "OPENWORK_OPENCODE_PASSWORD",
        hide_env_values = true
    )]
    opencode_password: Option<String>,
    /// Client bearer token, scope collaborator (prefer the env variable).
    #[arg(long, env = "OPENWORK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Host token for `X-OpenWork-Host-Token` (prefer the env variable).
    #[arg(
        long = "host-token",
        env = "OPENWORK_HOST_TOKEN",
        hide_env_values = true
    )]
    host_token: Option<String>,
    /// Log line format.
    #[arg(
        long = "log-format",
        env = "OPENWORK_LOG_FORMAT",
        value_enum,
        ignore_case = true,
        default_value = "pretty"
    )]
    log_format: LogFormat,
    /// Log one line per request (the default).
    #[arg(long = "log-requests", env = "OPENWORK_LOG_REQUESTS", action = ArgAction::SetTrue,
          value_parser = FalseyValueParser::new(), overrides_with = "no_log_requests")]
    log_requests: bool,
    /// Do not log requests.
    #[arg(long = "no-log-requests", action = ArgAction::SetTrue, overrides_with = "log_requests")]
    no_log_requests: bool,
    /// Print the resolved configuration at startup.
    #[arg(long)]
    verbose: bool,
    /// Log correlation id.
    #[arg(long = "run-id", env = "OPENWORK_RUN_ID", hide = true)]
    run_id: Option<String>,
    /// Where issued tokens are stored (default `<data dir>/tokens.json`).
    #[arg(
        long = "token-store",
        env = "OPENWORK_TOKEN_STORE",
        value_name = "FILE"
    )]
    token_store: Option<std::path::PathBuf>,
    /// Server data directory (default `~/.openwork/openwork-server`).
    #[arg(long = "data-dir", env = "OPENWORK_DATA_DIR", value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// Accept inbox uploads: `1/true/yes/on` (the default) or anything else for off.
    #[arg(
        long = "inbox-enabled",
        env = "OPENWORK_INBOX_ENABLED",
        value_name = "BOOL"
    )]
    inbox_enabled: Option<String>,
    /// Serve outbox artifacts: `1/true/yes/on` (the default) or anything else for off.
    #[arg(
        long = "outbox-enabled",
        env = "OPENWORK_OUTBOX_ENABLED",
        value_name = "BOOL"
    )]
    outbox_enabled: Option<String>,
    /// Largest inbox upload in bytes (default 50000000, capped at 250000000).
    #[arg(
        long = "inbox-max-bytes",
        env = "OPENWORK_INBOX_MAX_BYTES",
        value_name = "BYTES"
    )]
    inbox_max_bytes: Option<u64>,
    /// opencode-router control port on 127.0.0.1 (enables `/opencode-router`).
    #[arg(
        long = "opencode-router-health-port",
        env = "OPENCODE_ROUTER_HEALTH_PORT",
        value_name = "PORT"
    )]
    router_port: Option<u16>,
    /// Bearer secret for the opencode-router control API (prefer the env variable).
    #[arg(
        long = "opencode-router-token",
        env = "OPENCODE_ROUTER_TOKEN",
        hide_env_values = true
    )]
    router_token: Option<String>,
    /// The orchestrator's control endpoint for `/runtime/*`.
    #[arg(
        long = "control-base-url",
        env = "OPENWORK_CONTROL_BASE_URL",
        value_name = "URL"
    )]
    control_base_url: Option<String>,
    /// Bearer secret for the control endpoint (prefer the env variable).
    #[arg(
        long = "control-token",
        env = "OPENWORK_CONTROL_TOKEN",
        hide_env_values = true
    )]
    control_token: Option<String>,
    /// Print the version and exit.
    #[arg(long, short = 'V', action = ArgAction::SetTrue)]
    version: bool,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run the server with this configuration.
    Run(Box<Config>),
    /// Print the bare version and exit 0.
    PrintVersion,
}

/// The parsed command line plus warnings to print to stderr.
#[derive(Debug)]
pub struct Parsed {
    /// What to do.
    pub invocation: Invocation,
    /// Human-readable warnings (e.g. ignored unknown flags).
    pub warnings: Vec<String>,
}

/// Why the command line could not be turned into a configuration.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A usage error, `--help`, or similar; print it with [`clap::Error::print`].
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The current directory could not be read.
    #[error("cannot read the current directory: {0}")]
    CurrentDir(std::io::Error),
    /// The current directory is not valid UTF-8.
    #[error("the current directory {0:?} is not valid UTF-8")]
    NonUtf8CurrentDir(std::path::PathBuf),
    /// `server.json` could not be read or parsed.
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
}

/// Removes `--flags` this server does not know (and their values), returning
/// the remaining arguments and one warning per removed flag. The server has
/// no positional arguments, so a bare word after an unknown flag can only be
/// that flag's value.
fn strip_unknown_flags(args: Vec<OsString>) -> (Vec<OsString>, Vec<String>) {
    let command = Args::command();
    let known: HashSet<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .chain(["help".to_owned()])
        .collect();
    let mut kept = Vec::with_capacity(args.len());
    let mut warnings = Vec::new();
    let mut iter = args.into_iter().peekable();
    if let Some(program) = iter.next() {
        kept.push(program);
    }
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy().into_owned();
        if text == "--" {
            kept.push(arg);
            kept.extend(iter);
            break;
        }
        let Some(name) = text.strip_prefix("--") else {
            kept.push(arg);
            continue;
        };
        let (name, has_inline_value) = match name.split_once('=') {
            Some((n, _)) => (n, true),
            None => (name, false),
        };
        if known.contains(name) {
            kept.push(arg);
            continue;
        }
        warnings.push(format!("ignoring unknown flag --{name}"));
        if !has_inline_value
            && iter
                .peek()
                .is_some_and(|next| !next.to_string_lossy().starts_with('-'))
        {
            iter.next();
        }
    }
    (kept, warnings)
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn source_of(matches: &clap::ArgMatches, id: &str) -> TokenSource {
    match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => TokenSource::Env,
        _ => TokenSource::Cli,
    }
}

/// Whether the flag or its env variable gave `id` (rather than clap's default).
fn given(matches: &clap::ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// `parsed` when the flag or env gave it, else the file's value, else `parsed` (the default).
fn layered<T>(matches: &clap::ArgMatches, id: &str, parsed: T, file: Option<T>) -> T {
    if given(matches, id) {
        parsed
    } else {
        file.unwrap_or(parsed)
    }
}

/// A token from flag/env, else the file, else a random UUID, with its source.
fn token(
    matches: &clap::ArgMatches,
    id: &str,
    parsed: Option<String>,
    file: Option<&String>,
) -> (String, TokenSource) {
    if let Some(t) = non_empty(parsed) {
        return (t, source_of(matches, id));
    }
    if let Some(t) = non_empty(file.cloned()) {
        return (t, TokenSource::File);
    }
    (uuid::Uuid::new_v4().to_string(), TokenSource::Generated)
}

/// Loads `server.json` from `--config`/`OPENWORK_SERVER_CONFIG`, else the default location.
fn load_file(
    explicit: Option<&std::path::Path>,
    cwd: &Utf8Path,
) -> Result<Option<LoadedFile>, CliError> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let (path, explicit) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => match config_file::default_path(home.as_deref()) {
            Some(p) => (p, false),
            None => return Ok(None),
        },
    };
    let path = config_file::absolute(&path, cwd)?;
    Ok(config_file::load(&path, explicit)?)
}

/// Splits `OPENWORK_WORKSPACES`: a JSON array of strings or a `,`/`;` list.
/// The reference's inbox/outbox switches: unset is on; set, only `1/true/yes/on` keeps it on.
fn switch_on(raw: Option<&str>) -> bool {
    raw.is_none_or(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

fn split_workspace_list(raw: &str) -> Vec<Utf8PathBuf> {
    let trimmed = raw.trim();
    let items: Vec<String> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).unwrap_or_default()
    } else {
        trimmed.split([',', ';']).map(str::to_owned).collect()
    };
    items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(Utf8PathBuf::from)
        .collect()
}

/// Parses `args` (args[0] is the program name) and the `OPENWORK_*`
/// environment into what to do. Relative workspace paths resolve against the
/// current directory.
pub fn parse_args(args: Vec<OsString>) -> Result<Parsed, CliError> {
    let cwd = std::env::current_dir().map_err(CliError::CurrentDir)?;
    let cwd = Utf8PathBuf::from_path_buf(cwd).map_err(CliError::NonUtf8CurrentDir)?;
    parse_args_in(args, &cwd)
}

/// [`parse_args`] with an explicit base directory for relative workspace paths.
pub fn parse_args_in(args: Vec<OsString>, cwd: &Utf8Path) -> Result<Parsed, CliError> {
    let (args, warnings) = strip_unknown_flags(args);
    let matches = Args::command().try_get_matches_from(args)?;
    let parsed = Args::from_arg_matches(&matches)?;
    if parsed.version {
        return Ok(Parsed {
            invocation: Invocation::PrintVersion,
            warnings,
        });
    }

    let file = load_file(parsed.config.as_deref(), cwd)?;
    let mut warnings = warnings;
    let empty = config_file::FileConfig::default();
    let fc = file.as_ref().map_or(&empty, |f| &f.config);
    if let Some(f) = &file {
        warnings.extend(
            f.unknown_keys
                .iter()
                .map(|k| format!("config file {}: ignoring unknown key `{k}`", f.path)),
        );
    }

    // Workspaces: the first non-empty of --workspace, OPENWORK_WORKSPACES,
    // server.json; a source with entries replaces the others.
    let raw_workspaces = if parsed.workspaces.is_empty() {
        parsed
            .workspaces_list
            .as_deref()
            .map(split_workspace_list)
            .unwrap_or_default()
    } else {
        parsed.workspaces
    };
    let mut workspaces: Vec<Workspace> = if raw_workspaces.is_empty() {
        file.as_ref()
            .map(LoadedFile::workspaces)
            .unwrap_or_default()
    } else {
        raw_workspaces
            .iter()
            .map(|p| Workspace::local(resolve_path(p, cwd)))
            .collect()
    };
    // Base URL and directory come from flag/env only; credentials also from the file.
    OpencodeAttachment {
        base_url: non_empty(parsed.opencode_base_url),
        directory: non_empty(parsed.opencode_directory),
        username: non_empty(parsed.opencode_username)
            .or_else(|| non_empty(fc.opencode_username.clone()))
            .map(Secret::new),
        password: non_empty(parsed.opencode_password)
            .or_else(|| non_empty(fc.opencode_password.clone()))
            .map(Secret::new),
    }
    .apply(&mut workspaces);

    let (client_token, client_token_source) =
        token(&matches, "token", parsed.token, fc.token.as_ref());
    let (host_token, host_token_source) = token(
        &matches,
        "host_token",
        parsed.host_token,
        fc.host_token.as_ref(),
    );

    let log_requests = if parsed.no_log_requests {
        false
    } else if given(&matches, "log_requests") {
        parsed.log_requests
    } else {
        fc.log_requests.unwrap_or(true)
    };
    let file_approval = fc.approval.clone().unwrap_or_default();
    let cors = match parsed.cors.as_deref() {
        Some(raw) => CorsOrigins::parse(raw),
        None => fc
            .cors_origins
            .as_ref()
            .map(|list| CorsOrigins::from_list(list.clone()))
            .unwrap_or_default(),
    };

    let data_dir = parsed.data_dir.clone().or_else(|| {
        std::env::var_os("HOME")
            .map(|h| std::path::PathBuf::from(h).join(".openwork/openwork-server"))
    });
    let config = Config {
        host: layered(&matches, "host", parsed.host, fc.host.clone()),
        port: layered(&matches, "port", parsed.port, fc.port),
        workspaces,
        approval: ApprovalConfig {
            mode: layered(&matches, "approval", parsed.approval, file_approval.mode),
            timeout: std::time::Duration::from_millis(layered(
                &matches,
                "approval_timeout",
                parsed.approval_timeout,
                file_approval.timeout_ms,
            )),
        },
        read_only: layered(&matches, "read_only", parsed.read_only, fc.read_only),
        cors,
        client_token: Secret::new(client_token),
        host_token: Secret::new(host_token),
        client_token_source,
        host_token_source,
        log_format: layered(&matches, "log_format", parsed.log_format, fc.log_format),
        log_requests,
        verbose: parsed.verbose,
        run_id: non_empty(parsed.run_id).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        max_body_bytes: crate::routes::MAX_BODY_BYTES,
        token_store: parsed
            .token_store
            .or_else(|| data_dir.as_ref().map(|d| d.join("tokens.json"))),
        audit_dir: data_dir.map(|d| d.join("audit")),
        home_dir: std::env::var("HOME").ok().map(Utf8PathBuf::from),
        router_port: parsed.router_port,
        router_token: non_empty(parsed.router_token).map(Secret::new),
        control_base_url: non_empty(parsed.control_base_url),
        control_token: non_empty(parsed.control_token).map(Secret::new),
        inbox_enabled: switch_on(parsed.inbox_enabled.as_deref()),
        outbox_enabled: switch_on(parsed.outbox_enabled.as_deref()),
        inbox_max_bytes: parsed
            .inbox_max_bytes
            .unwrap_or(crate::config::DEFAULT_INBOX_MAX_BYTES)
            .min(crate::config::MAX_INBOX_MAX_BYTES),
        audit_rotate_bytes: crate::audit::DEFAULT_MAX_BYTES,
        authorized_roots: file
            .as_ref()
            .map(LoadedFile::authorized_roots)
            .unwrap_or_default(),
        config_path: file.map(|f| f.path),
    };
    Ok(Parsed {
        invocation: Invocation::Run(Box::new(config)),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn strips_unknown_flags_and_their_values() {
        let (kept, warnings) = strip_unknown_flags(os(&[
            "bin",
            "--future",
            "x",
            "--port",
            "1",
            "--other=3",
            "--bare",
            "--host",
            "h",
        ]));
        assert_eq!(kept, os(&["bin", "--port", "1", "--host", "h"]));
        assert_eq!(warnings.len(), 3);
    }

    #[test]
    fn workspace_list_accepts_json_and_separators() {
        assert_eq!(split_workspace_list(r#"["/a","/b"]"#), ["/a", "/b"]);
        assert_eq!(split_workspace_list("/a, /b;/c"), ["/a", "/b", "/c"]);
    }
}
