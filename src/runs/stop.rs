//! `openwork stop [RUN] [--all]`: stops a run gracefully and removes its record.
//!
//! A foreground run is stopped by sending its orchestrator SIGTERM: its own shutdown stops the
//! services in order and removes the record. A detached run (or what a killed orchestrator left)
//! is stopped here the way the supervisor stops: each process group in reverse start order gets
//! SIGTERM, SIGKILL after the same grace (5 s), and we wait until the group is empty; containers
//! are stopped and removed through the backend (Docker's API, Apple's recorded CLI). Stopping a
//! run that is already gone prunes its record and says so (exit 0).
//!
//! Threats addressed: orphans (signals go to whole groups and we wait for them to empty) and
//! signalling someone else's processes: only runs of the calling user resolve, and a pid counts
//! only on the boot the run recorded.

use std::time::Duration;

use clap::Args;
use nix::sys::signal::Signal;

use super::record::RunRecord;
use super::{DataDirArgs, Entry, RunsError, list, remove_dir, resolve};
use crate::supervisor::process::{signal_group, wait_group_gone};

/// Same SIGTERM → SIGKILL grace as the supervisor's.
pub const GRACE: Duration = Duration::from_secs(5);
/// How long a foreground orchestrator gets to finish its own shutdown (it stops up to three
/// services, each with the grace above).
const ORCHESTRATOR_BUDGET: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// The run: its id, a unique prefix of it, or its workspace path (optional with one run).
    #[arg(value_name = "RUN", conflicts_with = "all")]
    pub run: Option<String>,
    /// Stop every run of yours.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// What stopping one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Something was running and is now stopped.
    Stopped { run: String, what: Vec<String> },
    /// Nothing was left; the record was pruned.
    AlreadyStopped { run: String },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Stopped { run, what } => {
                write!(f, "Stopped run {run} ({})", what.join(", "))
            }
            Outcome::AlreadyStopped { run } => {
                write!(f, "Run {run} was already stopped; removed its record")
            }
        }
    }
}

pub async fn run(args: &StopArgs) -> Result<u8, RunsError> {
    let runs_dir = args.data.runs_dir()?;
    let listing = list(&runs_dir)?;
    let targets: Vec<&Entry> = if args.all {
        listing.entries.iter().filter(|e| e.mine()).collect()
    } else {
        vec![resolve(&listing.entries, args.run.as_deref(), &runs_dir)?]
    };
    if targets.is_empty() {
        println!("No runs to stop.");
        return Ok(0);
    }
    let mut failed = false;
    for entry in targets {
        match stop_entry(entry).await {
            Ok(outcome) => println!("{outcome}"),
            Err(e) => {
                eprintln!("openwork: {e}");
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}

/// Stops one run (its record already checked to be the caller's) and removes its directory.
pub async fn stop_entry(entry: &Entry) -> Result<Outcome, RunsError> {
    // An unreadable record (corrupt, or of a newer openwork whose run may well be alive) names
    // nothing that can be signalled safely, and is not removed behind its owner's back.
    let record = entry.record.as_ref().map_err(|why| RunsError::Io {
        path: entry.dir.join(super::record::STATE_FILE),
        message: why.clone(),
    })?;
    let what = stop_record(record).await?;
    remove_dir(&entry.dir)?;
    Ok(if what.is_empty() {
        Outcome::AlreadyStopped {
            run: entry.run_id.clone(),
        }
    } else {
        Outcome::Stopped {
            run: entry.run_id.clone(),
            what,
        }
    })
}

/// Stops whatever of `record` is alive; returns what was stopped (empty: nothing was).
async fn stop_record(record: &RunRecord) -> Result<Vec<String>, RunsError> {
    let same_boot = record.boot_id == openwork_backends::boot_id();
    let mut what = Vec::new();
    if same_boot
        && let Some(pid) = record.orchestrator_pid
        && super::orchestrator_alive(pid)
    {
        stop_orchestrator(record, pid).await?;
        what.push(format!("orchestrator pid {pid}"));
    }
    // Reverse start order, as the supervisor stops: router, server, then opencode.
    for service in record.services.iter().rev() {
        if let Some(pgid) = service.process_group.or(service.pid)
            && same_boot
            && super::group_has_live_member(pgid)
        {
            stop_group(record, &service.name, pgid).await?;
            what.push(format!("{} (process group {pgid})", service.name));
        }
        if let (Some(name), Some(engine)) = (&service.container, record.engine()) {
            let stopped = openwork_backends::control::stop_and_remove(&engine, name, GRACE)
                .await
                .map_err(|e| RunsError::StopFailed {
                    run: record.run_id.clone(),
                    what: format!("container {name}"),
                    why: e.to_string(),
                })?;
            if stopped {
                what.push(format!("{} (container {name})", service.name));
            }
        }
    }
    Ok(what)
}

/// SIGTERM to a foreground orchestrator; its shutdown stops the services. SIGKILL after its
/// budget (its watchdog then stops the groups); waits until it is gone.
async fn stop_orchestrator(record: &RunRecord, pid: u32) -> Result<(), RunsError> {
    let raw = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    let _ = nix::sys::signal::kill(raw, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + ORCHESTRATOR_BUDGET;
    while super::orchestrator_alive(pid) {
        if tokio::time::Instant::now() >= deadline {
            let _ = nix::sys::signal::kill(raw, Signal::SIGKILL);
            tokio::time::sleep(Duration::from_millis(200)).await;
            if super::orchestrator_alive(pid) {
                return Err(RunsError::StopFailed {
                    run: record.run_id.clone(),
                    what: format!("orchestrator pid {pid}"),
                    why: "it survived SIGKILL".into(),
                });
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// SIGTERM to the group, SIGKILL after the grace, then wait until the group is empty.
async fn stop_group(record: &RunRecord, name: &str, pgid: u32) -> Result<(), RunsError> {
    signal_group(pgid, Signal::SIGTERM);
    if !wait_group_gone(pgid, GRACE).await {
        signal_group(pgid, Signal::SIGKILL);
        if !wait_group_gone(pgid, Duration::from_secs(5)).await {
            return Err(RunsError::StopFailed {
                run: record.run_id.clone(),
                what: format!("{name} (process group {pgid})"),
                why: "the group is still there after SIGKILL".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_say_what_happened() {
        assert_eq!(
            Outcome::AlreadyStopped { run: "r1".into() }.to_string(),
            "Run r1 was already stopped; removed its record"
        );
        assert_eq!(
            Outcome::Stopped {
                run: "r1".into(),
                what: vec!["opencode (process group 7)".into()]
            }
            .to_string(),
            "Stopped run r1 (opencode (process group 7))"
        );
    }
}
