//! Command-line parsing as `main_from_args` does it, without serving.
//!
//! Env variables are tested in a child process (this test binary re-run on
//! one ignored test with the env set), because the test process's own
//! environment is shared by all tests and `set_var` is unsafe.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::time::Duration;

use camino::Utf8Path;
use openwork_server::cli::parse_args_in;
use openwork_server::config::TokenSource;
use openwork_server::{ApprovalMode, CliError, Config, Invocation, LogFormat};

fn os(args: &[&str]) -> Vec<OsString> {
    std::iter::once("openwork-server")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect()
}

fn config(args: &[&str]) -> Config {
    let parsed = parse_args_in(os(args), Utf8Path::new("/home/u")).unwrap();
    match parsed.invocation {
        Invocation::Run(c) => *c,
        Invocation::PrintVersion => panic!("unexpected --version"),
    }
}

fn usage_error(args: &[&str]) -> String {
    match parse_args_in(os(args), Utf8Path::new("/")) {
        Err(CliError::Clap(e)) => {
            assert_eq!(e.exit_code(), 2);
            e.to_string()
        }
        other => panic!("expected a usage error, got {other:?}"),
    }
}

#[test]
fn the_orchestrator_command_line_works() {
    let c = config(&[
        "--host",
        "127.0.0.1",
        "--port",
        "48123",
        "--workspace",
        "/abs/proj",
        "--approval",
        "auto",
        "--approval-timeout",
        "45000",
        "--read-only",
        "--cors",
        "http://a.test,http://b.test",
        "--opencode-base-url",
        "http://127.0.0.1:4096",
        "--opencode-directory",
        "/abs/proj",
        "--log-format",
        "json",
    ]);
    assert_eq!(c.host, "127.0.0.1");
    assert_eq!(c.port, 48123);
    assert_eq!(c.approval.mode, ApprovalMode::Auto);
    assert_eq!(c.approval.timeout, Duration::from_millis(45_000));
    assert!(c.read_only);
    assert_eq!(c.cors.0, ["http://a.test", "http://b.test"]);
    assert_eq!(c.log_format, LogFormat::Json);
    assert!(c.log_requests);
    assert_eq!(c.workspaces.len(), 1);
    let ws = &c.workspaces[0];
    assert_eq!(ws.path, "/abs/proj");
    assert_eq!(ws.base_url.as_deref(), Some("http://127.0.0.1:4096"));
    assert_eq!(ws.opencode_directory().as_deref(), Some("/abs/proj"));
}

#[test]
fn defaults_match_the_reference() {
    // Assumes the test environment sets no OPENWORK_* variables.
    let c = config(&[]);
    assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8787));
    assert_eq!(c.approval.mode, ApprovalMode::Manual);
    assert_eq!(c.approval.timeout, Duration::from_millis(30_000));
    assert!(!c.read_only && c.log_requests && !c.verbose);
    assert!(c.cors.allows_any());
    assert_eq!(c.log_format, LogFormat::Pretty);
    assert_eq!(c.client_token_source, TokenSource::Generated);
    assert_eq!(c.host_token_source, TokenSource::Generated);
    assert_ne!(c.client_token, c.host_token);
    assert!(c.workspaces.is_empty());
}

#[test]
fn workspaces_repeat_and_resolve_against_the_cwd() {
    let c = config(&["--workspace", "proj/", "--workspace", "/x/../y"]);
    let paths: Vec<&str> = c.workspaces.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(paths, ["/home/u/proj", "/y"]);
}

#[test]
fn tokens_from_flags_are_recorded_as_cli() {
    let c = config(&["--token", "t1", "--host-token", "t2"]);
    assert_eq!(c.client_token.expose(), "t1");
    assert_eq!(c.client_token_source, TokenSource::Cli);
    assert_eq!(c.host_token.expose(), "t2");
    assert!(!format!("{c:?}").contains("t1\""));
}

#[test]
fn request_logging_flags() {
    assert!(!config(&["--no-log-requests"]).log_requests);
    assert!(config(&["--no-log-requests", "--log-requests"]).log_requests);
    assert!(!config(&["--log-requests", "--no-log-requests"]).log_requests);
}

#[test]
fn log_format_accepts_text_and_human() {
    assert_eq!(
        config(&["--log-format", "text"]).log_format,
        LogFormat::Pretty
    );
    assert_eq!(
        config(&["--log-format", "HUMAN"]).log_format,
        LogFormat::Pretty
    );
}

#[test]
fn invalid_values_name_the_flag_and_the_choices() {
    let msg = usage_error(&["--approval", "sometimes"]);
    assert!(
        msg.contains("--approval") && msg.contains("sometimes"),
        "{msg}"
    );
    assert!(msg.contains("manual") && msg.contains("auto"), "{msg}");
    let msg = usage_error(&["--port", "eighty"]);
    assert!(msg.contains("--port") && msg.contains("eighty"), "{msg}");
    let msg = usage_error(&["--log-format", "xml"]);
    assert!(msg.contains("pretty") && msg.contains("json"), "{msg}");
    let msg = usage_error(&["--approval-timeout", "soon"]);
    assert!(msg.contains("--approval-timeout"), "{msg}");
}

#[test]
fn unknown_flags_are_skipped_with_a_warning() {
    let parsed = parse_args_in(
        os(&["--future-flag", "v", "--port", "9", "--also=x"]),
        Utf8Path::new("/"),
    )
    .unwrap();
    assert_eq!(parsed.warnings.len(), 2);
    assert!(parsed.warnings[0].contains("--future-flag"));
    let Invocation::Run(c) = parsed.invocation else {
        panic!("expected a run")
    };
    assert_eq!(c.port, 9);
}

#[test]
fn version_and_help() {
    let parsed = parse_args_in(os(&["--version"]), Utf8Path::new("/")).unwrap();
    assert!(matches!(parsed.invocation, Invocation::PrintVersion));
    match parse_args_in(os(&["--help"]), Utf8Path::new("/")) {
        Err(CliError::Clap(e)) => {
            assert_eq!(e.exit_code(), 0);
            let help = e.to_string();
            assert!(help.contains("--approval-timeout") && help.contains("OPENWORK_TOKEN"));
        }
        other => panic!("expected help, got {other:?}"),
    }
}

#[test]
fn main_from_args_exit_codes() {
    assert_eq!(
        openwork_server::main_from_args(os(&["--version"])),
        std::process::ExitCode::SUCCESS
    );
    assert_eq!(
        openwork_server::main_from_args(os(&["--approval", "bogus"])),
        std::process::ExitCode::from(2)
    );
}

const CHILD_MARKER: &str = "OPENWORK_SERVER_CLI_TEST_CHILD";

/// Runs in the child process started by `env_variables_are_read`.
#[test]
#[ignore = "run by env_variables_are_read in a child process"]
fn env_child() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    let c = config(&["--workspace", "/abs/proj", "--port", "1"]);
    assert_eq!(c.client_token.expose(), "env-client");
    assert_eq!(c.client_token_source, TokenSource::Env);
    assert_eq!(c.host_token.expose(), "env-host");
    assert_eq!(c.host_token_source, TokenSource::Env);
    assert_eq!(c.port, 1, "CLI beats env");
    assert_eq!(c.approval.mode, ApprovalMode::Auto);
    assert_eq!(c.approval.timeout, Duration::from_millis(1234));
    assert!(c.read_only);
    assert!(!c.log_requests);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.run_id, "run-env");
    let ws = &c.workspaces[0];
    assert_eq!(ws.path, "/abs/proj", "CLI workspaces replace env ones");
    assert_eq!(ws.opencode_username.as_ref().unwrap().expose(), "oc-user");
    assert_eq!(ws.opencode_password.as_ref().unwrap().expose(), "oc-pass");
    assert_eq!(ws.base_url.as_deref(), Some("http://127.0.0.1:4096"));
    let only_env = config(&[]);
    let paths: Vec<&str> = only_env
        .workspaces
        .iter()
        .map(|w| w.path.as_str())
        .collect();
    assert_eq!(paths, ["/e1", "/e2"]);
    assert_eq!(only_env.port, 7777);
}

#[test]
fn env_variables_are_read() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args([
            "--exact",
            "env_child",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(CHILD_MARKER, "1")
        .env("OPENWORK_TOKEN", "env-client")
        .env("OPENWORK_HOST_TOKEN", "env-host")
        .env("OPENWORK_PORT", "7777")
        .env("OPENWORK_APPROVAL_MODE", "auto")
        .env("OPENWORK_APPROVAL_TIMEOUT_MS", "1234")
        .env("OPENWORK_READONLY", "yes")
        .env("OPENWORK_LOG_REQUESTS", "0")
        .env("OPENWORK_LOG_FORMAT", "json")
        .env("OPENWORK_RUN_ID", "run-env")
        .env("OPENWORK_WORKSPACES", "/e1;/e2")
        .env("OPENWORK_OPENCODE_BASE_URL", "http://127.0.0.1:4096")
        .env("OPENWORK_OPENCODE_USERNAME", "oc-user")
        .env("OPENWORK_OPENCODE_PASSWORD", "oc-pass")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "child did not run: {stdout}");
}
