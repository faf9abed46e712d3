//! `openwork ps [--json] [--prune]`: the recorded runs, with workspace, age, sandbox, URLs and a
//! live health probe of each (short timeout, all runs probed at once). A run whose processes and
//! containers are all gone is shown as stale; `--prune` removes stale records.
//!
//! Threats addressed: a hung service making `ps` hang (every probe is bounded); leaking secrets
//! (the table and `--json` show URLs and pids, never a token or password: the credentials file is
//! read only to authenticate the opencode probe); pruning a live run (only a run whose every
//! process and container is gone is stale, and an engine that cannot be asked keeps the record).

use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::record::RunRecord;
use super::{DataDirArgs, Entry, Liveness, RunsError, list, liveness, remove_dir};
use crate::supervisor::health::{HealthCheck, probe, probe_client};

/// Budget of one health probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Args)]
pub struct PsArgs {
    /// Print one JSON array.
    #[arg(long)]
    pub json: bool,
    /// Remove the records of stale runs (nothing of them is running any more).
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// What `ps` found about one run.
#[derive(Debug, Clone)]
struct Row {
    run_id: String,
    record: Option<RunRecord>,
    /// `running`, `stale`, `other-user` or `unreadable`.
    state: &'static str,
    openwork: Option<Result<(), String>>,
    opencode: Option<Result<(), String>>,
    note: Option<String>,
    pruned: bool,
}

pub async fn run(args: &PsArgs) -> Result<u8, RunsError> {
    let runs_dir = args.data.runs_dir()?;
    let listing = list(&runs_dir)?;
    for (path, why) in &listing.skipped {
        eprintln!("openwork: skipped {path}: {why}");
    }
    let rows = futures_util::future::join_all(listing.entries.iter().map(inspect)).await;
    let mut rows = rows;
    if args.prune {
        for (row, entry) in rows.iter_mut().zip(&listing.entries) {
            if row.state == "stale" {
                remove_dir(&entry.dir)?;
                row.pruned = true;
            }
        }
    }
    if args.json {
        let doc: Vec<Value> = rows.iter().map(row_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&Value::Array(doc)).unwrap_or_default()
        );
    } else if rows.is_empty() {
        println!("No runs recorded in {runs_dir}.");
    } else {
        print!("{}", table(&rows));
        let pruned = rows.iter().filter(|r| r.pruned).count();
        if pruned > 0 {
            println!("Pruned {pruned} stale run(s).");
        } else if rows.iter().any(|r| r.state == "stale") {
            println!("Stale runs: remove their records with `openwork ps --prune`.");
        }
    }
    Ok(0)
}

async fn inspect(entry: &Entry) -> Row {
    let mut row = Row {
        run_id: entry.run_id.clone(),
        record: entry.record.as_ref().ok().cloned(),
        state: "running",
        openwork: None,
        opencode: None,
        note: None,
        pruned: false,
    };
    if !entry.mine() {
        row.state = "other-user";
        row.note = Some(format!("owned by uid {}", entry.uid));
        return row;
    }
    let record = match &entry.record {
        Ok(r) => r,
        Err(e) => {
            row.state = "unreadable";
            row.note = Some(e.clone());
            return row;
        }
    };
    if liveness(record).await == Liveness::Stale {
        row.state = "stale";
        return row;
    }
    let client = probe_client(PROBE_TIMEOUT);
    let openwork = HealthCheck::Http {
        url: format!("{}/health", record.openwork_url),
    };
    let creds = super::record::read_credentials(&entry.dir).ok();
    let opencode = creds.as_ref().and_then(|c| {
        Some(HealthCheck::Opencode {
            base_url: record.opencode_url.clone(),
            username: c["opencode"]["username"].as_str()?.to_string(),
            password: c["opencode"]["password"].as_str()?.to_string(),
        })
    });
    let (a, b) = tokio::join!(probe(&client, &openwork), async {
        match &opencode {
            Some(check) => Some(probe(&client, check).await),
            None => None,
        }
    });
    row.openwork = Some(a.map_err(|e| e.to_string()));
    row.opencode = b.map(|r| r.map_err(|e| e.to_string()));
    row
}

fn health_text(row: &Row) -> String {
    match row.state {
        "running" => {}
        "stale" if row.pruned => return "stale (pruned)".into(),
        other => return other.to_string(),
    }
    let mut down = Vec::new();
    if let Some(Err(_)) = &row.openwork {
        down.push("openwork-server");
    }
    match &row.opencode {
        Some(Err(_)) => down.push("opencode"),
        None => down.push("opencode (no credentials)"),
        Some(Ok(())) => {}
    }
    if down.is_empty() {
        "healthy".into()
    } else {
        format!("down: {}", down.join(", "))
    }
}

/// Age as `12s`, `5m`, `3h`, `2d`.
pub fn age(started_at_unix_ms: u64, now_unix_ms: u64) -> String {
    let secs = now_unix_ms.saturating_sub(started_at_unix_ms) / 1000;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn sandbox_text(record: &RunRecord) -> String {
    match &record.sandbox {
        Some(sb) => sb.backend.clone(),
        None => "none".into(),
    }
}

fn table(rows: &[Row]) -> String {
    let now = super::record::now_unix_ms();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| match &row.record {
            Some(r) => vec![
                row.run_id.clone(),
                r.workspace.to_string(),
                age(r.started_at_unix_ms, now),
                sandbox_text(r),
                format!("{:?}", r.kind).to_lowercase(),
                r.openwork_connect_url.clone(),
                r.opencode_url.clone(),
                health_text(row),
            ],
            None => vec![
                row.run_id.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!(
                    "{}{}",
                    health_text(row),
                    row.note
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                ),
            ],
        })
        .collect();
    crate::client::table(
        &[
            "RUN",
            "WORKSPACE",
            "AGE",
            "SANDBOX",
            "MODE",
            "OPENWORK",
            "OPENCODE",
            "HEALTH",
        ],
        &cells,
    )
}

fn probe_json(p: &Option<Result<(), String>>) -> Value {
    match p {
        None => Value::Null,
        Some(Ok(())) => json!({ "healthy": true }),
        Some(Err(e)) => json!({ "healthy": false, "error": e }),
    }
}

fn row_json(row: &Row) -> Value {
    let now = super::record::now_unix_ms();
    let mut doc = json!({
        "runId": row.run_id,
        "state": row.state,
        "health": health_text(row),
        "pruned": row.pruned,
        "probes": { "openwork": probe_json(&row.openwork), "opencode": probe_json(&row.opencode) },
    });
    if let Some(note) = &row.note {
        doc["note"] = json!(note);
    }
    if let Some(r) = &row.record {
        doc["workspace"] = json!(r.workspace);
        doc["kind"] = json!(r.kind);
        doc["startedAtUnixMs"] = json!(r.started_at_unix_ms);
        doc["ageSeconds"] = json!(now.saturating_sub(r.started_at_unix_ms) / 1000);
        doc["sandbox"] = json!(r.sandbox);
        doc["openworkUrl"] = json!(r.openwork_url);
        doc["openworkConnectUrl"] = json!(r.openwork_connect_url);
        doc["opencodeUrl"] = json!(r.opencode_url);
        doc["orchestratorPid"] = json!(r.orchestrator_pid);
        doc["services"] = json!(r.services);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_short() {
        assert_eq!(age(0, 59_000), "59s");
        assert_eq!(age(0, 61_000), "1m");
        assert_eq!(age(0, 7_200_000), "2h");
        assert_eq!(age(0, 3 * 86_400_000), "3d");
        assert_eq!(age(10, 0), "0s");
    }
}
