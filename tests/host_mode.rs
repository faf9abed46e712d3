//! End-to-end tests of `openwork serve`/`start` in host mode, against the real opencode binary
//! and the bundled openwork-server/opencode-router (this executable). The fault-injection double
//! (`tests/support/fake_service.py`) is used only where a service must crash, hang or leave a
//! grandchild on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Running, TestEnv, descendants, wait_all_dead};

const LONG: Duration = Duration::from_secs(90);

#[test]
fn check_events_passes_against_real_opencode() {
    let env = TestEnv::new();
    let out = env
        .serve_real(&["--approval", "auto", "--check", "--check-events"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("Checks: ok"), "{stdout}");
    assert!(stdout.contains("OpenWork orchestrator running"), "{stdout}");
    assert!(stdout.contains("[opencode] Healthy"), "{stdout}");
    assert!(stdout.contains("[openwork-server] Healthy"), "{stdout}");
    assert!(stdout.contains("[opencode-router] Healthy"), "{stdout}");
}

#[test]
fn json_log_format_gives_only_json_lines_and_no_secrets() {
    let env = TestEnv::new();
    let out = env
        .serve_real(&[
            "--approval",
            "auto",
            "--check",
            "--check-events",
            "--log-format",
            "json",
            "--openwork-token",
            "client-token-for-redaction-test",
            "--run-id",
            "run-json-1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bodies = Vec::new();
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timeUnixNano"].is_string(), "{line}");
        assert!(v["severityText"].is_string(), "{line}");
        assert!(v["resource"]["service.name"].is_string(), "{line}");
        bodies.push(v["body"].as_str().unwrap_or("").to_string());
        if v["attributes"]["service.component"] == "openwork-orchestrator" {
            assert_eq!(v["attributes"]["run.id"], "run-json-1", "{line}");
        }
    }
    assert!(bodies.iter().any(|b| b == "Ready"), "{bodies:?}");
    assert!(bodies.iter().any(|b| b == "Checks ok"), "{bodies:?}");
    assert!(
        !stdout.contains("client-token-for-redaction-test"),
        "token leaked:\n{stdout}"
    );
}

#[test]
fn json_flag_prints_one_document_with_credentials() {
    let env = TestEnv::new();
    let out = env
        .serve_real(&["--json", "--check", "--no-opencode-router"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{stdout}"));
    assert_eq!(doc["opencode"]["password"].as_str().unwrap().len(), 512);
    assert!(doc["openwork"]["ownerToken"].as_str().unwrap().len() > 8);
    assert_eq!(
        doc["openwork"]["token"],
        doc["openwork"]["collaboratorToken"]
    );
    assert!(
        doc["openwork"]["baseUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
}

#[test]
fn crashed_opencode_is_restarted() {
    let env = TestEnv::new();
    let fake = env.fake("opencode", "crash-once");
    let mut run = Running::spawn(env.serve_with_opencode(&fake, &["--no-opencode-router"]));
    run.wait_for("OpenWork orchestrator running", LONG);
    run.wait_for("[opencode] WARN Restarting after crash", LONG);
    run.wait_for("[opencode] Healthy", LONG);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(LONG), Some(0), "{}", run.output());
}

#[test]
fn required_router_that_dies_ends_the_run() {
    let env = TestEnv::new();
    let router = env.fake("router", "crash-always");
    let mut run = Running::spawn(env.serve_real(&[
        "--opencode-router-bin",
        router.to_str().unwrap(),
        "--opencode-router-required",
        "--max-restarts",
        "1",
    ]));
    let code = run.wait_exit(LONG);
    assert_eq!(code, Some(1), "{}", run.output());
    let out = run.output();
    assert!(out.contains("opencode-router gave up"), "{out}");
}

#[test]
fn optional_router_that_dies_does_not_end_the_run() {
    let env = TestEnv::new();
    let router = env.fake("router", "crash-always");
    let mut run = Running::spawn(env.serve_real(&[
        "--opencode-router-bin",
        router.to_str().unwrap(),
        "--max-restarts",
        "1",
    ]));
    run.wait_for("OpenWork orchestrator running", LONG);
    run.wait_for("Continuing without this optional service", LONG);
    // Still running: it answers a signal with a clean stop.
    assert!(run.child.try_wait().unwrap().is_none(), "{}", run.output());
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(LONG), Some(0), "{}", run.output());
}

#[test]
fn sigterm_leaves_no_process_behind_grandchildren_included() {
    let env = TestEnv::new();
    let fake = env.fake("opencode", "grandchild");
    let mut run = Running::spawn(env.serve_with_opencode(&fake, &[]));
    run.wait_for("OpenWork orchestrator running", LONG);
    let mut pids = descendants(run.pid());
    pids.extend(env.fake_pids());
    assert!(
        pids.len() >= 4,
        "expected opencode, its grandchild, server, router: {pids:?}"
    );
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(LONG), Some(0), "{}", run.output());
    assert_eq!(
        wait_all_dead(&pids, Duration::from_secs(10)),
        Vec::<u32>::new()
    );
}

#[test]
fn sigkill_of_the_orchestrator_leaves_no_service_behind() {
    let env = TestEnv::new();
    let mut run = Running::spawn(env.serve_real(&[]));
    run.wait_for("OpenWork orchestrator running", LONG);
    let pids = descendants(run.pid());
    assert!(
        pids.len() >= 3,
        "expected opencode, server, router: {pids:?}"
    );
    run.signal(libc::SIGKILL);
    run.wait_exit(LONG);
    assert_eq!(
        wait_all_dead(&pids, Duration::from_secs(10)),
        Vec::<u32>::new()
    );
}

#[test]
fn sigterm_before_ready_stops_what_was_started() {
    let env = TestEnv::new();
    let fake = env.fake("opencode", "hang-health");
    let mut run = Running::spawn(env.serve_with_opencode(&fake, &[]));
    run.wait_for("[opencode] Waiting for health", LONG);
    let pids = descendants(run.pid());
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(LONG), Some(143), "{}", run.output());
    assert_eq!(
        wait_all_dead(&pids, Duration::from_secs(10)),
        Vec::<u32>::new()
    );
}

#[test]
fn hung_health_endpoint_fails_with_the_probe_error() {
    let env = TestEnv::new();
    let fake = env.fake("opencode", "hang-health");
    let out = env
        .serve_with_opencode(&fake, &["--health-timeout", "3", "--max-restarts", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("opencode gave up"), "{stderr}");
    assert!(stdout.contains("not healthy after 3s"), "{stdout}");
}

#[test]
fn bad_flag_values_are_usage_errors() {
    let env = TestEnv::new();
    let ws = env.workspace();
    let ws = ws.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["serve", "--workspace", ws, "--approval", "maybe"],
            "maybe",
        ),
        (
            vec!["serve", "--workspace", ws, "--log-format", "xml"],
            "xml",
        ),
        (
            vec!["serve", "--workspace", ws, "--opencode-port", "http"],
            "http",
        ),
        (
            vec!["serve", "--workspace", ws, "--opencode-source", "github"],
            "github",
        ),
        (
            vec!["serve", "--workspace", ws, "--opencode-host", "0.0.0.0"],
            "0.0.0.0",
        ),
        (
            vec!["serve", "--workspace", "/definitely/not/here"],
            "/definitely/not/here",
        ),
        (
            vec![
                "serve",
                "--workspace",
                ws,
                "--sandbox",
                "docker",
                "--sandbox-memory",
                "lots",
            ],
            "lots",
        ),
        (
            vec!["serve", "--workspace", ws, "--sandbox", "podman"],
            "podman",
        ),
        (
            vec!["serve", "--workspace", ws, "--sandbox-mount", "/tmp:x"],
            "--sandbox docker",
        ),
        (
            vec!["serve", "--workspace", ws, "--opencode-hot-reload"],
            "not supported yet",
        ),
        (
            vec!["serve", "--workspace", ws, "--opencode-bin", "/bin/true"],
            "--allow-external",
        ),
        (
            vec!["serve", "--workspace", ws, "--bogus-flag"],
            "--bogus-flag",
        ),
    ] {
        let out = env.openwork(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn busy_explicit_port_is_an_error_not_a_silent_change() {
    let env = TestEnv::new();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let fake = env.fake("opencode", "ok");
    let out = env
        .serve_with_opencode(&fake, &["--openwork-port", &port])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--openwork-port {port}")),
        "{stderr}"
    );
}

#[test]
fn version_names_the_pinned_opencode() {
    let out = std::process::Command::new(common::openwork_bin())
        .arg("--version")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("opencode 1.18.34"), "{stdout}");
}

#[test]
fn multi_call_roles_answer_by_argv0_and_subcommand() {
    let env = TestEnv::new();
    let link = env.path("opencode-router");
    std::os::unix::fs::symlink(common::openwork_bin(), &link).unwrap();
    let out = std::process::Command::new(&link)
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("opencode-router"));
    let out = std::process::Command::new(common::openwork_bin())
        .args(["router", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("opencode-router"));
}

#[test]
fn sigkill_of_the_orchestrator_also_stops_grandchildren() {
    // The double leaves a grandchild in opencode's process group; the death signal only reaches
    // the group leader, the watchdog takes care of the rest.
    let env = TestEnv::new();
    let fake = env.fake("opencode", "grandchild");
    let server = env.fake("server", "ok");
    let mut run = Running::spawn(env.serve_with_opencode(
        &fake,
        &[
            "--openwork-server-bin",
            server.to_str().unwrap(),
            "--no-opencode-router",
        ],
    ));
    run.wait_for("OpenWork orchestrator running", LONG);
    let mut pids = descendants(run.pid());
    pids.extend(env.fake_pids());
    pids.sort_unstable();
    pids.dedup();
    assert!(
        pids.len() >= 4,
        "expected watchdog, opencode, its grandchild, server: {pids:?}"
    );
    run.signal(libc::SIGKILL);
    run.wait_exit(LONG);
    assert_eq!(
        wait_all_dead(&pids, Duration::from_secs(15)),
        Vec::<u32>::new()
    );
}

#[test]
fn detach_leaves_services_running_with_state_and_a_way_to_stop_them() {
    let env = TestEnv::new();
    let out = env
        .serve_real(&["--detach", "--run-id", "detached-1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Detached. Services still running:"),
        "{stdout}"
    );
    // The summary names the run-control commands (no raw kill line, no credentials).
    for line in [
        "Runs: openwork ps",
        "Logs: openwork logs detached-1",
        "Attach: openwork attach detached-1",
        "Stop: openwork stop detached-1",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    assert!(!stdout.contains("kill -TERM"), "{stdout}");
    let run_dir = env.path("data/runs/detached-1");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("state.json")).unwrap())
            .unwrap();
    let creds_path = run_dir.join("credentials.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&creds_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&creds_path).unwrap()).unwrap();
    // No secret on stdout.
    let token = creds["openwork"]["token"].as_str().unwrap();
    assert!(!stdout.contains(token), "{stdout}");
    let pids: Vec<u32> = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(pids.len(), 3, "{state}");
    // The detached server keeps answering after the orchestrator is gone.
    let url = format!("{}/health", state["openworkUrl"].as_str().unwrap());
    let health = std::process::Command::new("curl")
        .args(["-fsS", "--max-time", "5", &url])
        .output()
        .unwrap();
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    // Their logs go to files, not to closed pipes.
    assert!(run_dir.join("opencode.log").exists());
    assert!(pids.iter().all(|p| common::alive(*p)));
    assert_eq!(common::stop_groups(&pids), Vec::<u32>::new());
}

#[test]
fn an_owner_token_dies_with_its_run() {
    let env = TestEnv::new();
    let out = env
        .serve_real(&[
            "--json",
            "--check",
            "--no-opencode-router",
            "--run-id",
            "tok-1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let old_owner = doc["openwork"]["ownerToken"].as_str().unwrap().to_string();
    assert!(
        !env.path("data/runs/tok-1").exists(),
        "the run's token store outlived it"
    );

    // A later run of the same workspace does not accept the earlier run's owner token.
    let out = env
        .serve_real(&["--detach", "--no-opencode-router", "--run-id", "tok-2"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = env.path("data/runs/tok-2");
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("credentials.json")).unwrap())
            .unwrap();
    let url = format!(
        "{}/workspaces",
        creds["openwork"]["baseUrl"].as_str().unwrap()
    );
    let status = |token: &str| {
        let o = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
                "-H",
            ])
            .arg(format!("Authorization: Bearer {token}"))
            .arg(&url)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(status(&old_owner), "401");
    assert_eq!(
        status(creds["openwork"]["ownerToken"].as_str().unwrap()),
        "200"
    );
    assert_eq!(
        common::stop_groups(&common::detached_pids(&dir)),
        Vec::<u32>::new()
    );
}
