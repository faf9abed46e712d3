//! The run registry: every run (foreground or detached) records itself under
//! `<data-dir>/runs/<run-id>/`, and `openwork ps | stop | logs | attach` find it there.
//!
//! This module lists the run directories, reads their [`record::RunRecord`]s, decides whether a
//! run is still alive, and resolves the `RUN` argument of the commands (a run id, a unique
//! prefix of one, or a workspace path). The commands live beside it, one per file.
//!
//! Threats addressed:
//! - acting on another user's run (a shared `--data-dir`): a run directory or record owned by
//!   another uid resolves to [`RunsError::OtherUser`], never to a stop or an attach;
//! - a symlinked run directory (e.g. `runs/x -> /home/other/...`): it is not a run; listing
//!   skips it and reports it, and nothing is read or removed through it;
//! - a recycled pid: a process or group counts as the run's only on the boot the run recorded,
//!   and an orchestrator pid only while its command line is openwork's.
//!
//! Left open: a pid recycled within the same boot into another process group leader of the same
//! user would be taken for the run's service (there is no start-time check).

pub mod attach;
pub mod logs;
pub mod ps;
pub mod record;
pub mod stop;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;

use record::{RecordError, RunRecord};

/// Where the registry is: the `--data-dir` shared by every run-control command.
#[derive(Debug, Clone, Args)]
pub struct DataDirArgs {
    /// State directory of the runs (default: ~/.openwork).
    #[arg(long, env = "OPENWORK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<Utf8PathBuf>,
}

impl DataDirArgs {
    /// `<data-dir>/runs`.
    pub fn runs_dir(&self) -> Result<Utf8PathBuf, RunsError> {
        let data = match &self.data_dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => {
                let cwd = std::env::current_dir().map_err(|e| RunsError::Io {
                    path: d.clone(),
                    message: e.to_string(),
                })?;
                Utf8PathBuf::from_path_buf(cwd)
                    .map_err(|_| RunsError::NoHome)?
                    .join(d)
            }
            None => match std::env::var("HOME") {
                Ok(h) if !h.is_empty() => Utf8PathBuf::from(h).join(".openwork"),
                _ => return Err(RunsError::NoHome),
            },
        };
        Ok(data.join("runs"))
    }
}

/// Errors of the run-control commands; each names what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error("no run matches {query:?}. {}", known_runs(known))]
    RunNotFound { query: String, known: Vec<String> },
    #[error(
        "{query:?} matches {} runs ({}); give more of the run id (see `openwork ps`)",
        matches.len(),
        matches.join(", ")
    )]
    Ambiguous { query: String, matches: Vec<String> },
    #[error(
        "run {run} belongs to uid {uid}, not to you (uid {me}); run the command as that user (e.g. `sudo -u '#{uid}' openwork ...`)",
        me = nix::unistd::getuid().as_raw()
    )]
    OtherUser { run: String, uid: u32 },
    #[error("there are {} runs ({}); name one: a run id, a unique prefix, or a workspace path (see `openwork ps`)", known.len(), known.join(", "))]
    RunRequired { known: Vec<String> },
    #[error(
        "no runs are recorded in {dir}; start one with `openwork serve --detach` (or pass the --data-dir it used)"
    )]
    NoRuns { dir: Utf8PathBuf },
    #[error("HOME is not set (or not UTF-8); pass --data-dir DIR")]
    NoHome,
    #[error("{path}: {message}")]
    Io { path: Utf8PathBuf, message: String },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(
        "run {run} is not running any more (its processes and containers are gone); remove its record with `openwork ps --prune` and start a new run"
    )]
    NotRunning { run: String },
    #[error(
        "run {run} is a foreground run: its logs stream in the terminal that started it (only detached runs keep log files)"
    )]
    NoLogs { run: String },
    #[error("run {run} has no service named {service:?}; it has: {}", known.join(", "))]
    UnknownService {
        run: String,
        service: String,
        known: Vec<String>,
    },
    #[error(
        "cannot find `opencode` on PATH ({reason}); install opencode or pass --opencode-bin PATH"
    )]
    OpencodeMissing { reason: String },
    #[error("cannot run {program}: {message}")]
    Exec { program: String, message: String },
    #[error("{0}")]
    Backend(#[from] openwork_backends::BackendError),
    #[error("could not stop {what} of run {run}: {why}")]
    StopFailed {
        run: String,
        what: String,
        why: String,
    },
}

fn known_runs(known: &[String]) -> String {
    if known.is_empty() {
        "No runs are recorded; start one with `openwork serve --detach`.".into()
    } else {
        format!(
            "Known runs: {}. Give a run id, a unique prefix, or a workspace path (see `openwork ps`).",
            known.join(", ")
        )
    }
}

/// One run directory found in the registry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The directory name: the run id.
    pub run_id: String,
    pub dir: Utf8PathBuf,
    /// Owner of the directory.
    pub uid: u32,
    /// The record, when it could be read (another user's usually cannot).
    pub record: Result<RunRecord, String>,
}

impl Entry {
    /// Whether the run belongs to the calling user (the directory and the record say so).
    pub fn mine(&self) -> bool {
        let me = nix::unistd::getuid().as_raw();
        self.uid == me
            && self
                .record
                .as_ref()
                .map(|r| r.owner_uid == me)
                .unwrap_or(true)
    }

    /// The owner uid that is not the caller's.
    fn foreign_uid(&self) -> u32 {
        let me = nix::unistd::getuid().as_raw();
        match &self.record {
            Ok(r) if r.owner_uid != me => r.owner_uid,
            _ => self.uid,
        }
    }
}

/// The registry's contents: the runs, and what was skipped and why.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<Entry>,
    /// Paths that are not runs (a symlink, a file), with the reason.
    pub skipped: Vec<(Utf8PathBuf, String)>,
}

/// Lists `runs_dir`, oldest run first. A missing directory is an empty registry.
pub fn list(runs_dir: &Utf8Path) -> Result<Listing, RunsError> {
    use std::os::unix::fs::MetadataExt;
    let mut listing = Listing::default();
    let read = match std::fs::read_dir(runs_dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(listing),
        Err(e) => {
            return Err(RunsError::Io {
                path: runs_dir.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    for item in read.flatten() {
        let Some(name) = item.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let dir = runs_dir.join(&name);
        let meta = match std::fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(_) => continue,
        };
        if meta.file_type().is_symlink() {
            listing
                .skipped
                .push((dir, "a symlink, not a run directory; left alone".into()));
            continue;
        }
        if !meta.is_dir() {
            continue;
        }
        let record = record::read(&dir).map_err(|e| e.to_string());
        listing.entries.push(Entry {
            run_id: name,
            dir,
            uid: meta.uid(),
            record,
        });
    }
    listing.entries.sort_by_key(|e| {
        (
            e.record
                .as_ref()
                .map(|r| r.started_at_unix_ms)
                .unwrap_or(u64::MAX),
            e.run_id.clone(),
        )
    });
    Ok(listing)
}

/// Picks the run `query` names among `entries` (`None`: the only run). Another user's run is an
/// error, not a match to act on.
pub fn resolve<'a>(
    entries: &'a [Entry],
    query: Option<&str>,
    runs_dir: &Utf8Path,
) -> Result<&'a Entry, RunsError> {
    let ids = || entries.iter().map(|e| e.run_id.clone()).collect::<Vec<_>>();
    let found = match query.map(str::trim).filter(|q| !q.is_empty()) {
        None => match entries {
            [] => {
                return Err(RunsError::NoRuns {
                    dir: runs_dir.to_path_buf(),
                });
            }
            [only] => only,
            _ => return Err(RunsError::RunRequired { known: ids() }),
        },
        Some(q) => match_query(entries, q).map_err(|matches| {
            if matches.is_empty() {
                RunsError::RunNotFound {
                    query: q.to_string(),
                    known: ids(),
                }
            } else {
                RunsError::Ambiguous {
                    query: q.to_string(),
                    matches,
                }
            }
        })?,
    };
    if !found.mine() {
        return Err(RunsError::OtherUser {
            run: found.run_id.clone(),
            uid: found.foreign_uid(),
        });
    }
    Ok(found)
}

/// The one entry `q` names, or the ids it matched (none, or several).
fn match_query<'a>(entries: &'a [Entry], q: &str) -> Result<&'a Entry, Vec<String>> {
    if let Some(e) = entries.iter().find(|e| e.run_id == q) {
        return Ok(e);
    }
    let pick = |found: Vec<&'a Entry>| match found.as_slice() {
        [one] => Ok(*one),
        _ => Err(found.iter().map(|e| e.run_id.clone()).collect::<Vec<_>>()),
    };
    let looks_like_path = q.contains('/') || q == "." || q == "..";
    if !looks_like_path {
        let by_prefix: Vec<&Entry> = entries.iter().filter(|e| e.run_id.starts_with(q)).collect();
        if !by_prefix.is_empty() {
            return pick(by_prefix);
        }
    }
    // A workspace path, compared after resolving symlinks (as the run recorded it).
    let Ok(real) = std::fs::canonicalize(q) else {
        return Err(Vec::new());
    };
    let by_workspace: Vec<&Entry> = entries
        .iter()
        .filter(|e| {
            e.record
                .as_ref()
                .is_ok_and(|r| r.workspace.as_std_path() == real.as_path())
        })
        .collect();
    pick(by_workspace)
}

/// Whether any part of a run is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Its orchestrator, a process group or a container is alive.
    Running,
    /// Nothing of it is left: the record is all there is.
    Stale,
}

/// Whether `pid` (a process, or with `group` a process group) exists on the boot `record` names.
fn pid_alive(record: &RunRecord, pid: u32, group: bool) -> bool {
    if record.boot_id != openwork_backends::boot_id() {
        return false;
    }
    if group {
        group_has_live_member(pid)
    } else {
        orchestrator_alive(pid)
    }
}

/// Whether process group `pgid` has a member that is not a zombie. A group whose processes have
/// all exited but are not yet reaped (by init, for a detached run) is gone for `ps`.
pub fn group_has_live_member(pgid: u32) -> bool {
    if !crate::supervisor::process::group_alive(pgid) {
        return false;
    }
    if !cfg!(target_os = "linux") {
        return true;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
            && fields.first().is_some_and(|s| *s != "Z" && *s != "X")
    })
}

/// Whether `pid` is a live openwork process (its command line, where /proc exists).
pub fn orchestrator_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 1 {
        return false;
    }
    if cfg!(target_os = "linux") {
        return match std::fs::read(format!("/proc/{pid}/cmdline")) {
            Ok(cmd) => String::from_utf8_lossy(&cmd).contains("openwork"),
            Err(_) => false,
        };
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None).is_ok()
}

/// The process-side liveness of `record`: its orchestrator or a group alive.
pub fn processes_alive(record: &RunRecord) -> bool {
    record
        .orchestrator_pid
        .is_some_and(|p| pid_alive(record, p, false))
        || record
            .process_groups()
            .iter()
            .any(|(_, g)| pid_alive(record, *g, true))
}

/// Whether the run is alive: its processes, then (engine calls, bounded) its containers. An
/// engine that cannot be asked counts the container as alive: never prune what may still run.
pub async fn liveness(record: &RunRecord) -> Liveness {
    if processes_alive(record) {
        return Liveness::Running;
    }
    if let Some(engine) = record.engine() {
        for (_, name) in record.containers() {
            let state = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                openwork_backends::control::state(&engine, name),
            )
            .await;
            match state {
                Ok(Ok(openwork_backends::control::ContainerState::Missing)) => {}
                Ok(Ok(openwork_backends::control::ContainerState::Stopped)) => {}
                _ => return Liveness::Running,
            }
        }
    }
    Liveness::Stale
}

/// Removes a run directory (never through a symlink: the entry was checked to be a directory,
/// and `remove_dir_all` does not follow links inside it).
pub fn remove_dir(dir: &Utf8Path) -> Result<(), RunsError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(RunsError::Io {
                path: dir.to_path_buf(),
                message: "is a symlink, not a run directory; left alone".into(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        _ => {}
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RunsError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

/// Runs a run-control command on a small runtime; returns the process exit code.
pub fn run_command<F>(fut: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<u8, RunsError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("openwork: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(fut) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("openwork: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::record::tests::sample;
    use super::*;

    fn entry(id: &str, ws: &str) -> Entry {
        Entry {
            run_id: id.into(),
            dir: Utf8PathBuf::from("/nonexistent").join(id),
            uid: nix::unistd::getuid().as_raw(),
            record: Ok(sample(id, ws)),
        }
    }

    const DIR: &str = "/data/runs";

    #[test]
    fn runs_resolve_by_id_prefix_and_workspace() {
        let t = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(t.path()).unwrap();
        let ws = ws.to_str().unwrap();
        let entries = vec![
            entry("abc-1", "/elsewhere"),
            entry("abd-2", ws),
            entry("abc", "/x"),
        ];
        let dir = Utf8Path::new(DIR);
        // An exact id wins over being a prefix of another.
        assert_eq!(resolve(&entries, Some("abc"), dir).unwrap().run_id, "abc");
        assert_eq!(resolve(&entries, Some("abd"), dir).unwrap().run_id, "abd-2");
        assert_eq!(resolve(&entries, Some(ws), dir).unwrap().run_id, "abd-2");
        // A symlink to the workspace names it too.
        let link = t.path().join("link");
        std::os::unix::fs::symlink(ws, &link).unwrap();
        assert!(resolve(&entries, Some(link.join(".").to_str().unwrap()), dir).is_ok());
    }

    #[test]
    fn bad_queries_are_typed_errors_that_name_the_fix() {
        let entries = vec![entry("abc-1", "/a"), entry("abc-2", "/b")];
        let dir = Utf8Path::new(DIR);
        match resolve(&entries, Some("ab"), dir).unwrap_err() {
            e @ RunsError::Ambiguous { .. } => {
                let text = e.to_string();
                assert!(text.contains("abc-1, abc-2"), "{text}");
                assert!(text.contains("openwork ps"), "{text}");
            }
            other => panic!("{other}"),
        }
        match resolve(&entries, Some("zzz"), dir).unwrap_err() {
            e @ RunsError::RunNotFound { .. } => {
                let text = e.to_string();
                assert!(text.contains("\"zzz\""), "{text}");
                assert!(text.contains("abc-1, abc-2"), "{text}");
            }
            other => panic!("{other}"),
        }
        assert!(matches!(
            resolve(&entries, None, dir),
            Err(RunsError::RunRequired { .. })
        ));
        let e = resolve(&[], None, dir).unwrap_err();
        assert!(e.to_string().contains("/data/runs"), "{e}");
        assert!(e.to_string().contains("--data-dir"), "{e}");
        // With one run, RUN is optional.
        assert_eq!(resolve(&entries[..1], None, dir).unwrap().run_id, "abc-1");
    }

    #[test]
    fn another_users_run_is_refused_with_its_uid() {
        let mut e = entry("theirs", "/t");
        e.uid = 4242;
        e.record = Err("permission denied".into());
        let entries = vec![e];
        match resolve(&entries, Some("the"), Utf8Path::new(DIR)).unwrap_err() {
            err @ RunsError::OtherUser { uid: 4242, .. } => {
                let text = err.to_string();
                assert!(text.contains("theirs"), "{text}");
                assert!(text.contains("sudo -u '#4242'"), "{text}");
            }
            other => panic!("{other}"),
        }
        // A record that says another owner, in a directory of ours, is refused too.
        let mut e = entry("forged", "/f");
        if let Ok(r) = e.record.as_mut() {
            r.owner_uid = 4343;
        }
        assert!(matches!(
            resolve(&[e], None, Utf8Path::new(DIR)),
            Err(RunsError::OtherUser { uid: 4343, .. })
        ));
    }

    #[test]
    fn listing_skips_symlinked_run_dirs_and_reads_records() {
        let t = tempfile::tempdir().unwrap();
        let runs = Utf8Path::from_path(t.path()).unwrap().join("runs");
        std::fs::create_dir_all(runs.join("real")).unwrap();
        record::write(&runs.join("real"), &sample("real", "/ws")).unwrap();
        let elsewhere = Utf8Path::from_path(t.path()).unwrap().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        record::write(&elsewhere, &sample("planted", "/ws")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, runs.join("planted")).unwrap();
        let listing = list(&runs).unwrap();
        assert_eq!(listing.entries.len(), 1);
        assert_eq!(listing.entries[0].run_id, "real");
        assert!(listing.entries[0].record.is_ok());
        assert_eq!(listing.skipped.len(), 1);
        // Removing through the symlink is refused; the target stays.
        assert!(remove_dir(&runs.join("planted")).is_err());
        assert!(elsewhere.join("state.json").exists());
        assert_eq!(
            list(&Utf8PathBuf::from("/nonexistent/runs"))
                .unwrap()
                .entries
                .len(),
            0
        );
    }

    #[tokio::test]
    async fn a_run_whose_processes_are_gone_is_stale() {
        let mut r = sample("gone", "/ws");
        assert_eq!(liveness(&r).await, Liveness::Stale);
        // Our own process group is alive (the test runner leads or belongs to one).
        let pgid = nix::unistd::getpgrp().as_raw() as u32;
        r.services[0].process_group = Some(pgid);
        assert_eq!(liveness(&r).await, Liveness::Running);
        // ...but not on another boot.
        r.boot_id = "another-boot".into();
        assert_eq!(liveness(&r).await, Liveness::Stale);
    }
}
