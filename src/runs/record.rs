//! The record a run keeps of itself: `<data-dir>/runs/<run-id>/state.json` (what runs, where, as
//! whom) and `credentials.json` (the raw secrets), both written atomically with mode 0600.
//!
//! Threats addressed: a torn or world-readable state file. Each file is written to a temp file in
//! the same directory (mode 0600 before any byte is written), synced and renamed over the old one,
//! so a reader sees the old record or the new one, never half of one, and no other user reads the
//! credentials. The record never holds a secret: `ps` and `stop` can read it without reading
//! `credentials.json`. Reading refuses a symlinked file (`O_NOFOLLOW`), so a link planted in a run
//! directory cannot make `openwork` read (and print) another file.

use std::io::{Read, Write};
use std::path::PathBuf;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the record's layout; a reader refuses records of a newer schema.
pub const SCHEMA: u32 = 1;

/// Name of the record file inside a run directory.
pub const STATE_FILE: &str = "state.json";
/// Name of the credentials file inside a run directory.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// How the run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// The orchestrator is still running (a terminal's `openwork serve`); stopping it means
    /// signalling it, and its own shutdown stops the services.
    Foreground,
    /// The orchestrator left; the services run on their own.
    Detached,
}

/// The sandbox engine of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRecord {
    /// `docker` or `container`.
    pub backend: String,
    /// Apple's `container` CLI used to start the run (absent for Docker, driven through its API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<PathBuf>,
    /// The isolation report read back at start (`sandbox.isolation` of `--json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<serde_json::Value>,
}

/// One service of the run, in start order: a process group or a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRecord {
    /// `opencode`, `openwork-server` or `opencode-router`.
    pub name: String,
    /// Leader pid of the service's process group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The process group (= `pid`: every service leads its own group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_group: Option<u32>,
    /// Where a detached process writes its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<Utf8PathBuf>,
    /// Container name, for a sandboxed service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The command a person would run to stop that container (shown, never executed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
}

/// `state.json`: everything `ps`, `stop`, `logs` and `attach` need, and no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub schema: u32,
    pub run_id: String,
    /// uid of the user who started the run; nobody else may stop it.
    pub owner_uid: u32,
    pub kind: RunKind,
    /// The orchestrator's pid, while it runs (foreground runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_pid: Option<u32>,
    /// Boot id of the host: a pid means nothing after a reboot.
    pub boot_id: String,
    /// Absolute, symlink-resolved workspace.
    pub workspace: Utf8PathBuf,
    /// The directory opencode sees as the workspace (`/workspace` in a sandbox).
    pub opencode_directory: String,
    /// Milliseconds since the Unix epoch when the run became ready.
    pub started_at_unix_ms: u64,
    pub openwork_url: String,
    pub openwork_connect_url: String,
    pub opencode_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxRecord>,
    pub services: Vec<ServiceRecord>,
}

impl RunRecord {
    /// The process groups of the run, in start order.
    pub fn process_groups(&self) -> Vec<(&str, u32)> {
        self.services
            .iter()
            .filter_map(|s| Some((s.name.as_str(), s.process_group.or(s.pid)?)))
            .collect()
    }

    /// The containers of the run, in start order.
    pub fn containers(&self) -> Vec<(&str, &str)> {
        self.services
            .iter()
            .filter_map(|s| Some((s.name.as_str(), s.container.as_deref()?)))
            .collect()
    }

    /// The engine of the run's containers.
    pub fn engine(&self) -> Option<openwork_backends::control::Engine> {
        use openwork_backends::control::Engine;
        let sb = self.sandbox.as_ref()?;
        Some(match (sb.backend.as_str(), &sb.program) {
            ("container", Some(p)) => Engine::Apple { program: p.clone() },
            ("container", None) => Engine::Apple {
                program: PathBuf::from("container"),
            },
            _ => Engine::Docker,
        })
    }
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: Utf8PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a run record ({source}); remove the directory if it is left over")]
    Malformed {
        path: Utf8PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{path} has record schema {found}, newer than this openwork understands ({SCHEMA}); use the openwork that started the run"
    )]
    NewerSchema { path: Utf8PathBuf, found: u32 },
}

/// Reads a file of a run directory without following a symlink.
pub fn read_no_follow(path: &Utf8Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Reads `<dir>/state.json`.
pub fn read(dir: &Utf8Path) -> Result<RunRecord, RecordError> {
    let path = dir.join(STATE_FILE);
    let bytes = read_no_follow(&path).map_err(|source| RecordError::Io {
        path: path.clone(),
        source,
    })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|source| RecordError::Malformed {
        path: path.clone(),
        source,
    })?;
    if let Some(found) = value["schema"].as_u64().and_then(|s| u32::try_from(s).ok())
        && found > SCHEMA
    {
        return Err(RecordError::NewerSchema { path, found });
    }
    serde_json::from_value(value).map_err(|source| RecordError::Malformed { path, source })
}

/// Reads `<dir>/credentials.json` (the `--json` document of the run).
pub fn read_credentials(dir: &Utf8Path) -> Result<Value, RecordError> {
    let path = dir.join(CREDENTIALS_FILE);
    let bytes = read_no_follow(&path).map_err(|source| RecordError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| RecordError::Malformed { path, source })
}

/// Writes `<dir>/state.json` atomically (0600).
pub fn write(dir: &Utf8Path, record: &RunRecord) -> std::io::Result<()> {
    let value = serde_json::to_value(record)?;
    write_private(&dir.join(STATE_FILE), &value)
}

/// Writes `<dir>/credentials.json` atomically (0600) and returns its path.
pub fn write_credentials(dir: &Utf8Path, doc: &Value) -> std::io::Result<Utf8PathBuf> {
    let path = dir.join(CREDENTIALS_FILE);
    write_private(&path, doc)?;
    Ok(path)
}

/// Atomically writes `value` as pretty JSON to `path` with mode 0600.
pub fn write_private(path: &Utf8Path, value: &Value) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Utf8Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    serde_json::to_writer_pretty(&mut tmp, value)?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(run_id: &str, workspace: &str) -> RunRecord {
        RunRecord {
            schema: SCHEMA,
            run_id: run_id.into(),
            owner_uid: nix::unistd::getuid().as_raw(),
            kind: RunKind::Detached,
            orchestrator_pid: None,
            boot_id: openwork_backends::boot_id(),
            workspace: workspace.into(),
            opencode_directory: workspace.into(),
            started_at_unix_ms: now_unix_ms(),
            openwork_url: "http://127.0.0.1:1".into(),
            openwork_connect_url: "http://127.0.0.1:1".into(),
            opencode_url: "http://127.0.0.1:2".into(),
            sandbox: None,
            services: vec![ServiceRecord {
                name: "opencode".into(),
                pid: Some(999_999),
                process_group: Some(999_999),
                log: None,
                container: None,
                stop: None,
            }],
        }
    }

    #[test]
    fn records_round_trip_with_mode_0600_and_keep_the_services_pid_field() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(t.path()).unwrap();
        let r = sample("r1", "/ws");
        write(dir, &r).unwrap();
        assert_eq!(read(dir).unwrap(), r);
        let mode = std::fs::metadata(dir.join(STATE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let raw: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(STATE_FILE)).unwrap()).unwrap();
        assert_eq!(raw["services"][0]["pid"], 999_999);
        assert_eq!(raw["schema"], SCHEMA);
    }

    #[test]
    fn a_newer_schema_and_a_symlinked_record_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(t.path()).unwrap();
        let mut v = serde_json::to_value(sample("r1", "/ws")).unwrap();
        v["schema"] = 99.into();
        write_private(&dir.join(STATE_FILE), &v).unwrap();
        let e = read(dir).unwrap_err();
        assert!(
            matches!(e, RecordError::NewerSchema { found: 99, .. }),
            "{e}"
        );

        let other = dir.join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(dir.join("secret"), "{}").unwrap();
        std::os::unix::fs::symlink(dir.join("secret"), other.join(STATE_FILE)).unwrap();
        assert!(matches!(read(&other), Err(RecordError::Io { .. })));
    }
}
