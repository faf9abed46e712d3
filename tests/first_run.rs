//! First run on a fresh machine (issue: first run through npm): with an empty sidecar dir and no
//! source flags, `openwork serve --check --check-events` fetches the REAL pinned opencode through
//! the real `npm` client and the registry this machine is configured with, verifies it, caches
//! it, and passes. A second run works with the registry unreachable, from the cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestEnv;

#[test]
fn fresh_sidecar_dir_fetches_the_pinned_opencode_through_npm_then_runs_offline() {
    let env = TestEnv::new();
    let ws = env.workspace();
    let sidecars = env.path("sidecars");
    let args = [
        "serve",
        "--workspace",
        ws.to_str().unwrap(),
        "--sidecar-dir",
        sidecars.to_str().unwrap(),
        // Our release manifest is not published: point the manifest step at a closed port so it
        // fails at once instead of waiting on DNS for the default host.
        "--sidecar-manifest",
        "http://127.0.0.1:9/openwork-orchestrator-sidecars.json",
        "--check",
        "--check-events",
        "--verbose",
    ];
    let mut cmd = env.openwork(&args);
    // This run must reach the real registry (the user's npm configuration).
    cmd.env_remove("npm_config_registry");
    if let Some(home) = std::env::var_os("HOME") {
        // Reuse the machine's npm cache so repeated CI runs do not download 60 MB each time;
        // the sidecar dir itself is fresh.
        cmd.env("npm_config_cache", std::path::Path::new(&home).join(".npm"));
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("one-time download"), "{stderr}");
    assert!(stdout.contains("Checks: ok"), "{stdout}");
    let cached = sidecars.join("opencode/1.18.34/linux-x64/opencode");
    assert!(cached.is_file(), "not cached at {}", cached.display());
    let stamp = sidecars.join("opencode/1.18.34/linux-x64/opencode.stamp.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&stamp).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Second run: registry unreachable and no npm on PATH; the cache serves.
    let mut cmd = env.openwork(&args);
    let empty_bin = env.path("empty-bin");
    std::fs::create_dir_all(&empty_bin).unwrap();
    cmd.env("npm_config_registry", "http://127.0.0.1:9")
        .env("PATH", &empty_bin);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("one-time download"),
        "fetched again:\n{stderr}"
    );
    assert!(stdout.contains("Checks: ok"), "{stdout}");
}
