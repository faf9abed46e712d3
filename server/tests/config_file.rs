//! `server.json` layered under flags and env (CLI > env > file > default), and bad files
//! failing loudly with the file, line and column.
//!
//! In-process tests assume the test environment sets no `OPENWORK_*` variable (as
//! `tests/cli.rs` does); the env layer is tested in a child process (this binary re-run on
//! one ignored test) because `set_var` is unsafe in a multi-threaded test process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use common::json;
use openwork_server::cli::parse_args_in;
use openwork_server::config::TokenSource;
use openwork_server::config_file::ConfigFileError;
use openwork_server::{ApprovalMode, CliError, Config, Invocation, LogFormat};

/// A file that sets every key to a value different from both the default and the
/// values the env and CLI layers use below.
const FULL: &str = r#"{
  "host": "127.0.0.3",
  "port": 1111,
  "token": "file-client",
  "hostToken": "file-host",
  "approval": {"mode": "auto", "timeoutMs": 2222},
  "workspaces": [
    {"path": "proj", "name": "Project", "baseUrl": "http://127.0.0.1:5000"},
    {"path": "/abs/other", "workspaceType": "remote", "directory": "/remote/dir"}
  ],
  "corsOrigins": ["http://file.test"],
  "authorizedRoots": ["."],
  "readOnly": true,
  "opencodeUsername": "file-user",
  "opencodePassword": "file-pass",
  "logFormat": "json",
  "logRequests": false,
  "hotReload": {"enabled": false}
}"#;

fn os(args: &[&str]) -> Vec<OsString> {
    std::iter::once("openwork-server")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect()
}

fn parse(args: &[&str]) -> Result<(Config, Vec<String>), CliError> {
    let parsed = parse_args_in(os(args), Utf8Path::new("/cwd"))?;
    match parsed.invocation {
        Invocation::Run(c) => Ok((*c, parsed.warnings)),
        Invocation::PrintVersion => panic!("unexpected --version"),
    }
}

fn write_file(dir: &Path, text: &str) -> Utf8PathBuf {
    let path = dir.join("server.json");
    std::fs::write(&path, text).unwrap();
    Utf8PathBuf::from_path_buf(path).unwrap()
}

/// One row of the precedence table: what a layer gave for each setting.
#[derive(Debug, PartialEq)]
struct Row {
    host: String,
    port: u16,
    client: (String, TokenSource),
    host_token: (String, TokenSource),
    approval: (ApprovalMode, Duration),
    read_only: bool,
    cors: Vec<String>,
    log_format: LogFormat,
    log_requests: bool,
    workspaces: Vec<String>,
}

fn row(c: &Config) -> Row {
    Row {
        host: c.host.clone(),
        port: c.port,
        client: (c.client_token.expose().to_owned(), c.client_token_source),
        host_token: (c.host_token.expose().to_owned(), c.host_token_source),
        approval: (c.approval.mode, c.approval.timeout),
        read_only: c.read_only,
        cors: c.cors.0.clone(),
        log_format: c.log_format,
        log_requests: c.log_requests,
        workspaces: c.workspaces.iter().map(|w| w.path.to_string()).collect(),
    }
}

fn file_row(dir: &Utf8Path) -> Row {
    Row {
        host: "127.0.0.3".into(),
        port: 1111,
        client: ("file-client".into(), TokenSource::File),
        host_token: ("file-host".into(), TokenSource::File),
        approval: (ApprovalMode::Auto, Duration::from_millis(2222)),
        read_only: true,
        cors: vec!["http://file.test".into()],
        log_format: LogFormat::Json,
        log_requests: false,
        workspaces: vec![format!("{dir}/proj"), "/abs/other".into()],
    }
}

const CLI_ARGS: &[&str] = &[
    "--host",
    "127.0.0.5",
    "--port",
    "5555",
    "--token",
    "cli-client",
    "--host-token",
    "cli-host",
    "--approval",
    "manual",
    "--approval-timeout",
    "5555",
    "--cors",
    "http://cli.test",
    "--log-format",
    "pretty",
    "--log-requests",
    "--read-only",
    "--workspace",
    "/cli/ws",
];

fn cli_row() -> Row {
    Row {
        host: "127.0.0.5".into(),
        port: 5555,
        client: ("cli-client".into(), TokenSource::Cli),
        host_token: ("cli-host".into(), TokenSource::Cli),
        approval: (ApprovalMode::Manual, Duration::from_millis(5555)),
        read_only: true,
        cors: vec!["http://cli.test".into()],
        log_format: LogFormat::Pretty,
        log_requests: true,
        workspaces: vec!["/cli/ws".into()],
    }
}

#[test]
fn the_file_fills_every_setting_the_cli_and_env_leave_unset() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), FULL);
    let (c, warnings) = parse(&["--config", path.as_str()]).unwrap();
    let file_dir = path.parent().unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(row(&c), file_row(file_dir));
    assert_eq!(c.config_path.as_deref(), Some(path.as_path()));
    assert_eq!(c.authorized_roots(), [file_dir.to_string()]);
    let (proj, other) = (&c.workspaces[0], &c.workspaces[1]);
    assert_eq!(proj.name, "Project");
    assert_eq!(proj.base_url.as_deref(), Some("http://127.0.0.1:5000"));
    assert_eq!(
        proj.opencode_directory().as_deref(),
        Some(proj.path.as_str())
    );
    assert_eq!(other.opencode_directory().as_deref(), Some("/remote/dir"));
    // Top-level credentials reach every workspace.
    for ws in &c.workspaces {
        assert_eq!(ws.opencode_username.as_ref().unwrap().expose(), "file-user");
        assert_eq!(ws.opencode_password.as_ref().unwrap().expose(), "file-pass");
    }
}

#[test]
fn the_command_line_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), FULL);
    let mut args = vec!["--config", path.as_str()];
    args.extend_from_slice(CLI_ARGS);
    args.extend_from_slice(&["--opencode-username", "cli-user"]);
    let (c, _) = parse(&args).unwrap();
    assert_eq!(row(&c), cli_row());
    let ws = &c.workspaces[0];
    assert_eq!(ws.opencode_username.as_ref().unwrap().expose(), "cli-user");
    assert_eq!(ws.opencode_password.as_ref().unwrap().expose(), "file-pass");
    // `--no-log-requests` beats a file that turns logging on.
    let path = write_file(dir.path(), r#"{"logRequests": true}"#);
    let (c, _) = parse(&["--config", path.as_str(), "--no-log-requests"]).unwrap();
    assert!(!c.log_requests);
}

#[test]
fn an_empty_file_gives_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "{}");
    let (c, _) = parse(&["--config", path.as_str()]).unwrap();
    assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8787));
    assert_eq!(c.approval.mode, ApprovalMode::Manual);
    assert_eq!(c.approval.timeout, Duration::from_millis(30_000));
    assert!(!c.read_only && c.log_requests && c.cors.allows_any());
    assert_eq!(c.client_token_source, TokenSource::Generated);
    assert!(c.workspaces.is_empty());
}

#[test]
fn unknown_keys_are_warnings_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        r#"{"port": 1, "prot": 2, "workspaces": [{"path": "/a", "colour": "red"}]}"#,
    );
    let (c, warnings) = parse(&["--config", path.as_str()]).unwrap();
    assert_eq!(c.port, 1);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains(path.as_str()) && warnings[0].contains("`prot`"));
    assert!(warnings[1].contains("`workspaces[0].colour`"));
}

fn file_error(text: &str) -> (Utf8PathBuf, ConfigFileError) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), text);
    match parse(&["--config", path.as_str()]) {
        Err(CliError::ConfigFile(err)) => (path, err),
        other => panic!("expected a config file error, got {other:?}"),
    }
}

#[test]
fn invalid_json_names_the_file_line_and_column() {
    let (path, err) = file_error("{\n  \"port\": 1,\n  \"host\": \"a\"\n  \"token\": \"t\"\n}\n");
    let ConfigFileError::Parse {
        path: p,
        line,
        column,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(p, &path.as_std_path().to_path_buf());
    assert_eq!((*line, *column), (4, 3));
    let text = err.to_string();
    assert!(
        text.contains(path.as_str()) && text.contains("line 4, column 3"),
        "{text}"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_an_error_at_its_position() {
    let (_, err) = file_error("{\n  \"readOnly\": \"yes\"\n}");
    assert!(
        matches!(&err, ConfigFileError::Parse { line: 2, message, .. } if message.contains("boolean")),
        "{err:?}"
    );
    let (_, err) = file_error(r#"{"approval": {"mode": "sometimes"}}"#);
    assert!(err.to_string().contains("sometimes"), "{err}");
    let (_, err) = file_error(r#"{"port": 70000}"#);
    assert!(matches!(err, ConfigFileError::Parse { .. }), "{err:?}");
    let (_, err) = file_error("");
    assert!(matches!(err, ConfigFileError::Parse { .. }), "{err:?}");
}

#[test]
fn a_named_file_that_cannot_be_read_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    match parse(&["--config", missing]) {
        Err(CliError::ConfigFile(ConfigFileError::Read { path, .. })) => {
            assert_eq!(path, Path::new(missing));
        }
        other => panic!("expected a read error, got {other:?}"),
    }
    // A directory is not a file.
    let err = parse(&["--config", dir.path().to_str().unwrap()]).unwrap_err();
    assert!(
        err.to_string().contains(dir.path().to_str().unwrap()),
        "{err}"
    );
    // The binary's entry point turns it into exit code 2.
    assert_eq!(
        openwork_server::main_from_args(os(&["--config", missing])),
        std::process::ExitCode::from(2)
    );
}

#[tokio::test]
async fn status_reports_the_file_and_authorized_roots_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().canonicalize().unwrap()).unwrap();
    std::fs::create_dir(root.join("inside")).unwrap();
    let path = write_file(
        root.as_std_path(),
        r#"{"token": "ft", "hostToken": "fh", "authorizedRoots": ["inside"],
            "workspaces": [{"path": "inside"}, {"path": "/elsewhere"}]}"#,
    );
    let (mut c, _) = parse(&["--config", path.as_str(), "--port", "0"]).unwrap();
    c.token_store = None;
    let ids: Vec<String> = c.workspaces.iter().map(|w| w.id.clone()).collect();
    let s = common::start(c).await;
    let (status, body) = json(s.get("/status").bearer_auth("ft").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["server"]["configPath"], path.as_str());
    assert_eq!(body["tokenSource"]["client"], "file");
    assert_eq!(body["authorizedRoots"][0], format!("{root}/inside"));
    let session = |id: &str| {
        s.post(&format!("/workspace/{id}/files/sessions"))
            .bearer_auth("ft")
            .json(&serde_json::json!({}))
            .send()
    };
    assert_eq!(session(&ids[0]).await.unwrap().status(), 200);
    let (status, body) = json(session(&ids[1]).await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("workspace_unauthorized"))
    );
}

const CHILD_MARKER: &str = "OPENWORK_SERVER_CONFIG_TEST_CHILD";

/// Runs in the child process started by `env_beats_the_file_and_the_default_location_is_read`.
#[test]
#[ignore = "run by env_beats_the_file_and_the_default_location_is_read in a child process"]
fn env_child() {
    let Some(home) = std::env::var_os(CHILD_MARKER) else {
        return;
    };
    let home = Utf8PathBuf::from(home.to_str().unwrap());
    let file_dir = home.join(".config/openwork");
    // No --config and no OPENWORK_SERVER_CONFIG: ~/.config/openwork/server.json.
    let (c, _) = parse(&[]).unwrap();
    let env_row = Row {
        host: "127.0.0.4".into(),
        port: 4444,
        client: ("env-client".into(), TokenSource::Env),
        host_token: ("env-host".into(), TokenSource::Env),
        approval: (ApprovalMode::Manual, Duration::from_millis(4444)),
        // OPENWORK_READONLY=no turns off what the file turned on.
        read_only: false,
        cors: vec!["http://env.test".into()],
        log_format: LogFormat::Pretty,
        log_requests: true,
        workspaces: vec!["/env/ws".into()],
    };
    assert_eq!(row(&c), env_row);
    assert_eq!(c.config_path, Some(file_dir.join("server.json")));
    assert_eq!(
        c.workspaces[0].opencode_username.as_ref().unwrap().expose(),
        "env-user"
    );
    assert_eq!(
        c.workspaces[0].opencode_password.as_ref().unwrap().expose(),
        "file-pass"
    );
    // CLI beats env.
    let (c, _) = parse(CLI_ARGS).unwrap();
    assert_eq!(row(&c), cli_row());
}

#[test]
fn env_beats_the_file_and_the_default_location_is_read() {
    let home = tempfile::tempdir().unwrap();
    let file_dir = home.path().join(".config/openwork");
    std::fs::create_dir_all(&file_dir).unwrap();
    write_file(&file_dir, FULL);
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args([
            "--exact",
            "env_child",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(CHILD_MARKER, home.path())
        .env("HOME", home.path())
        .env("OPENWORK_HOST", "127.0.0.4")
        .env("OPENWORK_PORT", "4444")
        .env("OPENWORK_TOKEN", "env-client")
        .env("OPENWORK_HOST_TOKEN", "env-host")
        .env("OPENWORK_APPROVAL_MODE", "manual")
        .env("OPENWORK_APPROVAL_TIMEOUT_MS", "4444")
        .env("OPENWORK_READONLY", "no")
        .env("OPENWORK_CORS_ORIGINS", "http://env.test")
        .env("OPENWORK_LOG_FORMAT", "pretty")
        .env("OPENWORK_LOG_REQUESTS", "1")
        .env("OPENWORK_WORKSPACES", "/env/ws")
        .env("OPENWORK_OPENCODE_USERNAME", "env-user")
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
