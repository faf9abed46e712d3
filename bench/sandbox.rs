//! Sandbox start-up benchmark: `openwork serve --sandbox docker` to ready, with the egress gate
//! (the default) and with `--sandbox-network open`, and `--check` to its exit, next to the floor
//! measured in the same run — a bare `docker run` of the same image
//! starting the same opencode until its health answers — and their ratio. Times are printed,
//! never asserted.
//!
//! Run: `OPENWORK_TEST_OPENCODE_BIN=/path/to/opencode cargo bench --bench sandbox`
//! (needs the Docker engine and the image `openwork-sandbox:bookworm-1` from `images/build.sh`;
//! `OPENWORK_BENCH_RUNS` sets the repetitions). Containers are named `openwork-apl-bench-*` /
//! `apl-bench-floor-*` and removed after each run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
use common::{free_port, healthy};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "openwork-sandbox:bookworm-1";

/// Removes a container (and of a gated run its gate and networks) whatever happens.
struct Guard(String);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.0, &format!("{}-gate", self.0)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for net in ["internal", "egress"] {
            let _ = Command::new("docker")
                .args(["network", "rm", &format!("{}-{net}", self.0)])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

const OFFLINE: [(&str, &str); 3] = [
    ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
    ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
    ("npm_config_registry", "http://127.0.0.1:9"),
];

/// The floor: `docker run -d` of the image with opencode mounted, until its health answers
/// (probing from the start: the container's ready line is not visible without attaching).
fn bare_docker(opencode: &Path, i: usize) -> Duration {
    let port = free_port();
    let name = format!("apl-bench-floor-{}-{i}", std::process::id());
    let _guard = Guard(name.clone());
    let dir = opencode.parent().unwrap();
    let file = opencode.file_name().unwrap().to_str().unwrap();
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "-d", "--name", &name, "-p"])
        .arg(format!("127.0.0.1:{port}:4096"))
        .arg("-v")
        .arg(format!("{}:/opt/opencode:ro", dir.display()))
        .args(["-e", "OPENCODE_SERVER_USERNAME=bench"])
        .args(["-e", "OPENCODE_SERVER_PASSWORD=bench-password"]);
    for (k, v) in OFFLINE {
        cmd.arg("-e").arg(format!("{k}={v}"));
    }
    cmd.args([IMAGE, &format!("/opt/opencode/{file}")])
        .args(["serve", "--hostname", "0.0.0.0", "--port", "4096"])
        .stdout(Stdio::null());
    // base64("bench:bench-password")
    let auth = "YmVuY2g6YmVuY2gtcGFzc3dvcmQ=";
    let start = Instant::now();
    assert!(cmd.status().unwrap().success(), "docker run failed");
    // Probe only after opencode's ready line (earlier requests hang): the fastest any
    // supervisor can be, as in bench/startup.rs.
    let mut logs = Command::new("docker")
        .args(["logs", "-f", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = logs.stdout.take().unwrap();
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        if line.starts_with("opencode server listening on ") {
            break;
        }
    }
    let _ = logs.kill();
    let _ = logs.wait();
    while !healthy(port, auth) {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the bare container never became healthy"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

fn openwork_cmd(openwork: &Path, opencode: &Path, root: &Path, run_id: &str) -> Command {
    let ws = root.join(format!("ws-{run_id}"));
    let home = root.join("home");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(openwork);
    cmd.args(["serve", "--workspace", ws.to_str().unwrap()])
        .args([
            "--sandbox",
            "docker",
            "--run-id",
            run_id,
            "--allow-external",
        ])
        .args(["--opencode-bin", opencode.to_str().unwrap()])
        .args(["--openwork-port", &free_port().to_string()])
        .env("OPENWORK_DATA_DIR", root.join("data"))
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .envs(OFFLINE)
        .stdin(Stdio::null());
    cmd
}

/// `openwork serve --sandbox docker [--sandbox-network NETWORK]` → its ready block; then SIGTERM
/// and wait.
fn orchestrator(
    openwork: &Path,
    opencode: &Path,
    root: &Path,
    i: usize,
    network: &str,
) -> Duration {
    let run_id = format!("apl-bench-{network}-{}-{i}", std::process::id());
    let _guard = Guard(format!("openwork-{run_id}"));
    let mut cmd = openwork_cmd(openwork, opencode, root, &run_id);
    cmd.args(["--sandbox-network", network]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let mut took = None;
    for line in lines.by_ref().map_while(Result::ok) {
        if line.starts_with("OpenWork orchestrator running") {
            took = Some(start.elapsed());
            break;
        }
    }
    let took = took.expect("openwork never printed its ready block");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    // Keep reading so the orchestrator never blocks on a full pipe while it stops.
    for _ in lines.map_while(Result::ok) {}
    let _ = child.wait();
    took
}

/// `openwork serve --sandbox docker --check`: spawn → exit (start, checks, stop and removal).
fn orchestrator_check(openwork: &Path, opencode: &Path, root: &Path, i: usize) -> Duration {
    let run_id = format!("apl-bench-check-{}-{i}", std::process::id());
    let _guard = Guard(format!("openwork-{run_id}"));
    let mut cmd = openwork_cmd(openwork, opencode, root, &run_id);
    cmd.arg("--check")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let start = Instant::now();
    let status = cmd.status().unwrap();
    assert!(status.success(), "openwork --check failed");
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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
    // Warm-up of both (page cache, image layers, opencode's first-run files in /persist).
    bare_docker(&opencode, 0);
    orchestrator(&openwork, &opencode, root.path(), 0, "enforce");
    let (mut bare, mut orch, mut open, mut check) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 1..=runs {
        bare.push(bare_docker(&opencode, i));
        orch.push(orchestrator(
            &openwork,
            &opencode,
            root.path(),
            i,
            "enforce",
        ));
        open.push(orchestrator(&openwork, &opencode, root.path(), i, "open"));
        check.push(orchestrator_check(&openwork, &opencode, root.path(), i));
    }
    let (b, o, n, c) = (median(bare), median(orch), median(open), median(check));
    println!("sandbox benchmark ({runs} runs each, medians; image {IMAGE})");
    println!(
        "  bare docker run → opencode healthy:          {:>7.0} ms (floor)",
        ms(b)
    );
    println!(
        "  openwork serve --sandbox docker → ready:     {:>7.0} ms (egress gate)",
        ms(o)
    );
    println!(
        "  … --sandbox-network open → ready:            {:>7.0} ms (no gate)",
        ms(n)
    );
    println!(
        "  ratio gated / floor:                         {:>7.2}x",
        o.as_secs_f64() / b.as_secs_f64()
    );
    println!(
        "  ratio open / floor:                          {:>7.2}x",
        n.as_secs_f64() / b.as_secs_f64()
    );
    println!(
        "  ratio gated / open (the gate's cost):        {:>7.2}x",
        o.as_secs_f64() / n.as_secs_f64()
    );
    println!(
        "  openwork serve --sandbox docker --check:     {:>7.0} ms (start, checks, stop, removal)",
        ms(c)
    );
    println!(
        "  openwork binary: {} ({})",
        openwork.display(),
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "optimized build"
        }
    );
}
