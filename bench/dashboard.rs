//! Dashboard overhead: the orchestrator's CPU time and peak RSS while a service floods 10 000
//! lines a second for 60 s, with the dashboard (`start` in a terminal) and without (`serve`, its
//! log stream going to the same kind of terminal), measured in one run; prints the ratios.
//!
//! Both runs happen in a tmux pane (100×30), so the log stream pays for a real terminal too.
//! The flood comes from the fault-injection double (`tests/support/fake_service.py`, mode
//! `flood`) standing in for opencode; openwork-server is the bundled one.
//!
//! Run: `cargo bench --bench dashboard` (`OPENWORK_BENCH_SECS` shortens the flood; tmux and
//! python3 are needed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RATE: u64 = 10_000;

/// CPU seconds (user + system) and peak RSS (KiB) of `pid`.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit(')').next().unwrap();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state(0) ppid(1) … utime(11) stime(12).
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (ticks as f64 / hz, hwm)
}

fn tmux(socket: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One run of `openwork <mode>` under the flood; returns (CPU s, peak RSS KiB).
fn measure(openwork: &Path, mode: &str, root: &Path, secs: u64) -> (f64, u64) {
    let dir = root.join(mode);
    for d in ["home", "ws", "data", "state"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_service.py");
    let fake = dir.join("fake-opencode.sh");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nFAKE_ROLE=opencode FAKE_MODE=flood FAKE_FLOOD_LINES={} FAKE_FLOOD_RATE={RATE} exec python3 {} \"$@\"\n",
            RATE * secs,
            script.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.display();
    let run = dir.join("run.sh");
    std::fs::write(
        &run,
        format!(
            "#!/bin/sh\nexec env -i PATH=\"$PATH\" TERM=xterm-256color HOME={d}/home OPENWORK_DATA_DIR={d}/data FAKE_STATE={d}/state OPENWORK_PORT={port} {} {mode} --workspace {d}/ws --allow-external --opencode-bin {} --no-opencode-router\n",
            openwork.display(),
            fake.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = format!("openwork-bench-{}-{mode}", std::process::id());
    tmux(
        &socket,
        &[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "b",
            "-x",
            "100",
            "-y",
            "30",
        ],
    );
    tmux(
        &socket,
        &["respawn-pane", "-k", "-t", "b", run.to_str().unwrap()],
    );
    let pid: u32 = tmux(
        &socket,
        &["display-message", "-p", "-t", "b", "#{pane_pid}"],
    )
    .trim()
    .parse()
    .unwrap();
    // The flood starts once the fake opencode is up (it records its pid first).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("state/pids.txt").exists() {
        assert!(Instant::now() < deadline, "the fake opencode never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(secs + 2));
    let result = usage(pid);
    // Stop: q for the dashboard, Ctrl-C for serve; then make sure the pane is gone.
    tmux(
        &socket,
        &[
            "send-keys",
            "-t",
            "b",
            if mode == "start" { "q" } else { "C-c" },
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    tmux(&socket, &["kill-server"]);
    result
}

fn main() {
    let openwork = PathBuf::from(env!("CARGO_BIN_EXE_openwork"));
    let secs: u64 = std::env::var("OPENWORK_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let root = tempfile::tempdir().unwrap();
    let (serve_cpu, serve_rss) = measure(&openwork, "serve", root.path(), secs);
    let (dash_cpu, dash_rss) = measure(&openwork, "start", root.path(), secs);
    println!("dashboard benchmark: {secs} s of {RATE} lines/s from one service, orchestrator only");
    println!(
        "  serve (log stream to a terminal):  CPU {serve_cpu:>6.2} s   peak RSS {:>6.1} MiB",
        serve_rss as f64 / 1024.0
    );
    println!(
        "  start (dashboard):                 CPU {dash_cpu:>6.2} s   peak RSS {:>6.1} MiB",
        dash_rss as f64 / 1024.0
    );
    println!(
        "  ratio dashboard / serve:           CPU {:>6.2}x  peak RSS {:>6.2}x",
        dash_cpu / serve_cpu,
        dash_rss as f64 / serve_rss as f64
    );
}
