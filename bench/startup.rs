//! Start-up benchmark: `openwork serve` to ready, against the physical floor measured in the same
//! run (a bare `opencode serve` until its health answers), plus the orchestrator's peak RSS and
//! the binary's size.
//!
//! Run: `OPENWORK_TEST_OPENCODE_BIN=/path/to/opencode cargo bench --bench startup`
//! (scripts/test.sh installs that opencode; `OPENWORK_BENCH_RUNS` sets the repetitions).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
use common::{free_port, healthy};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn isolated_env(cmd: &mut Command, root: &Path) {
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    cmd.env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env("OPENCODE_DISABLE_MODELS_FETCH", "1")
        .env("OPENCODE_DISABLE_AUTOUPDATE", "1")
        .env("npm_config_registry", "http://127.0.0.1:9")
        .stdin(Stdio::null());
}

/// Bare opencode: spawn → its ready line → first healthy answer. Probing only after the ready
/// line is the fastest any supervisor can be (earlier requests hang, opencode-serve.md §1.3), so
/// this is the physical floor.
fn bare_opencode(bin: &Path, root: &Path) -> Duration {
    let port = free_port();
    let ws = root.join("ws-bare");
    std::fs::create_dir_all(&ws).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args([
        "serve",
        "--hostname",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ])
    .current_dir(&ws)
    .env("OPENCODE_SERVER_USERNAME", "bench")
    .env("OPENCODE_SERVER_PASSWORD", "bench-password")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    isolated_env(&mut cmd, root);
    // base64("bench:bench-password")
    let auth = "YmVuY2g6YmVuY2gtcGFzc3dvcmQ=";
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    loop {
        let line = lines
            .next()
            .expect("opencode exited before its ready line")
            .unwrap();
        if line.starts_with("opencode server listening on ") {
            break;
        }
    }
    while !healthy(port, auth) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "opencode never became healthy"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    took
}

/// `openwork serve` (opencode from the warm sidecar cache) → its ready block; returns (time,
/// orchestrator peak RSS in KiB).
fn orchestrator(openwork: &Path, sidecars: &Path, root: &Path) -> (Duration, u64) {
    let ws = root.join("ws-orch");
    std::fs::create_dir_all(&ws).unwrap();
    let mut cmd = Command::new(openwork);
    cmd.args([
        "serve",
        "--workspace",
        ws.to_str().unwrap(),
        "--sidecar-dir",
        sidecars.to_str().unwrap(),
        "--sidecar-manifest",
        "http://127.0.0.1:9/none.json",
        "--openwork-port",
        &free_port().to_string(),
    ])
    .env("OPENWORK_DATA_DIR", root.join("data"))
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    isolated_env(&mut cmd, root);
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let out = child.stdout.take().unwrap();
    let mut took = None;
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        if line.starts_with("OpenWork orchestrator running") {
            took = Some(start.elapsed());
            break;
        }
    }
    let took = took.expect("openwork never printed its ready block");
    std::thread::sleep(Duration::from_millis(500));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    (took, hwm)
}

/// Cold first run: a fresh sidecar dir and a fresh npm cache; returns the fetch time openwork
/// reports ("Fetched opencode (…) in N s").
fn cold_fetch(openwork: &Path, sidecars: &Path, root: &Path) -> Duration {
    let ws = root.join("ws-cold");
    std::fs::create_dir_all(&ws).unwrap();
    let mut cmd = Command::new(openwork);
    cmd.args([
        "serve",
        "--workspace",
        ws.to_str().unwrap(),
        "--sidecar-dir",
        sidecars.to_str().unwrap(),
        "--sidecar-manifest",
        "http://127.0.0.1:9/none.json",
        "--no-opencode-router",
        "--check",
    ])
    .env("OPENWORK_DATA_DIR", root.join("data-cold"))
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    isolated_env(&mut cmd, root);
    cmd.env_remove("npm_config_registry")
        .env("npm_config_cache", root.join("npm-cache-openwork"));
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cold run failed:\n{stderr}");
    let secs: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Fetched opencode ("))
        .and_then(|rest| rest.split(" in ").nth(1))
        .and_then(|t| t.trim_end_matches(" s.").parse().ok())
        .expect("no 'Fetched opencode' line");
    Duration::from_secs_f64(secs)
}

/// The floor of the cold fetch: a bare `npm pack` of the same package into a fresh npm cache.
fn bare_npm_pack(root: &Path) -> Duration {
    let dir = root.join("npm-pack");
    std::fs::create_dir_all(&dir).unwrap();
    let start = Instant::now();
    let status = Command::new("npm")
        .args(["pack", "--silent", "opencode-linux-x64@1.18.34"])
        .current_dir(&dir)
        .env("npm_config_cache", root.join("npm-cache-bare"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let opencode = PathBuf::from(std::env::var_os("OPENWORK_TEST_OPENCODE_BIN").expect(
        "set OPENWORK_TEST_OPENCODE_BIN to the pinned opencode (scripts/test.sh installs it)",
    ));
    let openwork = PathBuf::from(env!("CARGO_BIN_EXE_openwork"));
    let runs: usize = std::env::var("OPENWORK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let root = tempfile::tempdir().unwrap();
    let sidecars = root.path().join("sidecars");
    // Cold first run (fills the sidecar cache) next to a bare npm pack.
    let npm_floor = bare_npm_pack(root.path());
    let cold = cold_fetch(&openwork, &sidecars, root.path());
    // Warm-up of both (page cache, opencode's first-run files).
    bare_opencode(&opencode, root.path());
    orchestrator(&openwork, &sidecars, root.path());
    let mut bare = Vec::new();
    let mut orch = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..runs {
        bare.push(bare_opencode(&opencode, root.path()));
        let (t, r) = orchestrator(&openwork, &sidecars, root.path());
        orch.push(t);
        rss.push(r);
    }
    let (b, o) = (median(bare), median(orch));
    let size = std::fs::metadata(&openwork).map(|m| m.len()).unwrap_or(0);
    println!("startup benchmark ({runs} runs each, medians)");
    println!(
        "  bare opencode serve → healthy:        {:>7.0} ms (floor)",
        b.as_secs_f64() * 1e3
    );
    println!(
        "  openwork serve → ready (warm cache):  {:>7.0} ms",
        o.as_secs_f64() * 1e3
    );
    println!(
        "  ratio openwork / floor:               {:>7.2}x",
        o.as_secs_f64() / b.as_secs_f64()
    );
    println!(
        "  cold first run: opencode fetch        {:>7.0} ms vs bare npm pack {:.0} ms ({:.2}x)",
        cold.as_secs_f64() * 1e3,
        npm_floor.as_secs_f64() * 1e3,
        cold.as_secs_f64() / npm_floor.as_secs_f64()
    );
    println!(
        "  orchestrator peak RSS:                {:>7.1} MiB (max {:.1})",
        rss[rss.len() / 2] as f64 / 1024.0,
        *rss.iter().max().unwrap_or(&0) as f64 / 1024.0
    );
    println!(
        "  openwork binary size:                 {:>7.1} MiB ({})",
        size as f64 / 1048576.0,
        openwork.display()
    );
}
