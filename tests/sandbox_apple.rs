//! The Apple `container` backend end to end on Linux: `OPENWORK_CONTAINER_BIN` points the binary
//! at `tests/support/fake-container`, a TEST DOUBLE of Apple's CLI that carries out the
//! subcommands the backend uses with the `docker` CLI on the local engine, with the real opencode
//! inside the locally built image. What this covers is the backend's process handling (argv,
//! start, log streaming, exit codes, stop, restart after a crash, orphans); Apple's VM itself is
//! not exercised. Containers are named `openwork-apl-…` and removed by guards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Running, TestEnv};

const LONG: Duration = Duration::from_secs(120);

/// One sandbox at a time (2 cores; every run removes orphans at start).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a test's container whatever happens.
struct ContainerGuard(String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.0])
            .output();
    }
}

fn fake_container() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake-container")
}

fn serve(env: &TestEnv, run_id: &str, extra: &[&str]) -> std::process::Command {
    let mut args = vec!["--sandbox", "container", "--run-id", run_id];
    args.extend_from_slice(extra);
    let mut c = env.serve_real(&args);
    c.env("OPENWORK_CONTAINER_BIN", fake_container());
    c
}

use common::container_exists as exists;

#[test]
fn check_events_pass_through_the_container_cli_and_stop_removes_it() {
    let _serial = serial();
    let env = TestEnv::new();
    let name = "openwork-apl-check";
    let _guard = ContainerGuard(name.into());
    let out = serve(&env, "apl-check", &["--check", "--check-events"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Checks: ok"), "{stdout}");
    assert!(stdout.contains("backend=container"), "{stdout}");
    // opencode's own line, from inside the container, through `container run`'s pipe.
    assert!(
        stdout.contains("[opencode] opencode server listening on http://0.0.0.0:4096"),
        "{stdout}"
    );
    assert!(!exists(name), "the container is still there after stop");
    // The executable's directory holds nothing else and is not inside /persist.
    let sandbox = env.path("data/sandbox");
    let bin_dir = std::fs::read_dir(&sandbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".openwork-bin"))
        .expect("no staged openwork-bin dir");
    let entries: Vec<_> = std::fs::read_dir(&bin_dir).unwrap().collect();
    assert_eq!(entries.len(), 1, "{bin_dir:?}");
}

#[test]
fn a_container_killed_from_outside_is_an_exit_and_is_restarted() {
    let _serial = serial();
    let env = TestEnv::new();
    let name = "openwork-apl-crash";
    let _guard = ContainerGuard(name.into());
    let mut run = Running::spawn(serve(&env, "apl-crash", &["--no-opencode-router"]));
    run.wait_for("OpenWork orchestrator running", LONG);
    // No egress fence on Apple container yet: the run says so, loudly.
    run.wait_for("Egress: NOT ENFORCED", LONG);
    assert!(run.output().contains("SANDBOX EGRESS IS NOT ENFORCED"));
    let killed = std::process::Command::new("docker")
        .args(["kill", name])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{killed:?}");
    let exited = run.wait_for("Process exited unexpectedly", LONG);
    assert!(exited.contains("137"), "{exited}");
    run.wait_for("Restarting after crash", LONG);
    run.wait_for("[opencode] Sandbox started", LONG);
    run.wait_for("[opencode] Healthy", LONG);
    assert!(exists(name));
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(LONG), Some(0), "{}", run.output());
    assert!(!exists(name), "the container is still there after stop");
}

#[test]
fn orphan_of_a_killed_run_is_removed_by_the_next_run() {
    let _serial = serial();
    let env = TestEnv::new();
    let orphan = "openwork-apl-orphan";
    let _g1 = ContainerGuard(orphan.into());
    let _g2 = ContainerGuard("openwork-apl-next".into());
    let mut run = Running::spawn(serve(&env, "apl-orphan", &["--no-opencode-router"]));
    run.wait_for("OpenWork orchestrator running", LONG);
    // Orchestrator and watchdog die together: only the next run's sweep can clean up.
    common::kill_watchdog(run.pid());
    run.signal(libc::SIGKILL);
    run.wait_exit(LONG);
    assert!(exists(orphan), "the killed run's container should remain");
    let out = serve(&env, "apl-next", &["--check", "--no-opencode-router"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("left behind by a killed run"), "{stdout}");
    assert!(stdout.contains(orphan), "{stdout}");
    assert!(!exists(orphan));
}

#[test]
fn missing_image_names_the_build_command() {
    let _serial = serial();
    let env = TestEnv::new();
    let out = serve(
        &env,
        "apl-noimage",
        &[
            "--sandbox-image",
            "openwork-sandbox:does-not-exist",
            "--check",
        ],
    )
    .output()
    .unwrap();
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("openwork-sandbox:does-not-exist"), "{text}");
    assert!(text.contains("images/build.sh"), "{text}");
}

#[test]
fn container_without_the_cli_on_linux_is_a_clear_error() {
    let env = TestEnv::new();
    let ws = env.workspace();
    let out = env
        .openwork(&[
            "serve",
            "--workspace",
            ws.to_str().unwrap(),
            "--sandbox",
            "container",
            "--check",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("macOS with Apple silicon"), "{stderr}");
    assert!(stderr.contains("--sandbox docker"), "{stderr}");

    // Asking Apple container to enforce egress is a clear usage error, before anything runs.
    let out = env
        .openwork(&[
            "serve",
            "--workspace",
            ws.to_str().unwrap(),
            "--sandbox",
            "container",
            "--sandbox-network",
            "enforce",
            "--check",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("not available with Apple `container`"),
        "{stderr}"
    );
}

#[test]
fn detached_sandbox_keeps_running_and_says_how_to_delete_it() {
    let _serial = serial();
    let env = TestEnv::new();
    let name = "openwork-apl-detach";
    let _guard = ContainerGuard(name.into());
    let out = serve(&env, "apl-detach", &["--detach", "--no-opencode-router"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Logs came through `container logs --follow` before the orchestrator left.
    assert!(
        stdout.contains("[opencode] opencode server listening on"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Stop: openwork stop apl-detach"),
        "{stdout}"
    );
    assert!(exists(name), "the detached container is gone");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.path("data/runs/apl-detach/state.json")).unwrap(),
    )
    .unwrap();
    // The record keeps the CLI that started the container, so `openwork stop` drives the same one.
    assert!(
        state["sandbox"]["program"]
            .as_str()
            .is_some_and(|p| p.ends_with("fake-container")),
        "{state}"
    );
    assert_eq!(state["services"][0]["container"], name, "{state}");
    let pids: Vec<u32> = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["pid"].as_u64().map(|p| p as u32))
        .collect();
    // Run control drives the recorded CLI: ps asks it about the container, logs reads
    // `container logs`, stop runs `container stop` + `container delete`.
    let out = env.openwork(&["ps", "--json"]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc[0]["health"], "healthy", "{doc}");
    let out = env
        .openwork(&["logs", "apl", "--service", "opencode"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("[opencode] opencode server listening"),
        "{}",
        common::all_output(&out)
    );
    let out = env.openwork(&["stop", "apl-detach"]).output().unwrap();
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("(container {name})")), "{text}");
    assert!(!exists(name), "the container outlived openwork stop");
    assert_eq!(
        common::wait_all_dead(&pids, Duration::from_secs(1)),
        Vec::<u32>::new()
    );
    assert_eq!(common::stop_groups(&pids), Vec::<u32>::new());
}
