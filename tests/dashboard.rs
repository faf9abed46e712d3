//! The dashboard in a real terminal: tmux runs `openwork start` in a pane of a known size, the
//! test reads the screen with `capture-pane` and types with `send-keys`. Every wait is bounded
//! polling for screen contents; nothing asserts a wall-clock time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::TestEnv;

/// A tmux server of its own (its own socket) with one pane running a script; killed on drop,
/// with everything the pane started.
struct Pane {
    socket: String,
    dir: PathBuf,
    /// Every process seen under the pane (services included), for the "nothing left" check.
    seen: Vec<u32>,
}

impl Pane {
    /// Runs `cmd` (its program, args and environment) in a `width`×`height` pane. The script
    /// records `stty -a` before and after, and the exit code.
    fn start(env: &TestEnv, cmd: &Command, width: u16, height: u16) -> Pane {
        let dir = env.path("pane");
        std::fs::create_dir_all(&dir).unwrap();
        let q = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut line = String::from("env -i");
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                line.push_str(&format!(
                    " {}",
                    q(&format!("{}={}", k.to_str().unwrap(), v.to_str().unwrap()))
                ));
            }
        }
        line.push_str(" TERM=xterm-256color");
        line.push_str(&format!(" {}", q(cmd.get_program().to_str().unwrap())));
        for a in cmd.get_args() {
            line.push_str(&format!(" {}", q(a.to_str().unwrap())));
        }
        let d = dir.display();
        let script = format!(
            "#!/bin/sh\nstty -a > {d}/before.txt\n{line}\necho \"rc=$?\" > {d}/rc.tmp && mv {d}/rc.tmp {d}/rc.txt\nstty -a > {d}/after.txt\nexec sleep 600\n"
        );
        let path = dir.join("run.sh");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("openwork-test-{}-{n}", std::process::id());
        let out = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "t",
            ])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg(path.to_str().unwrap())
            .output()
            .expect("tmux is needed for the dashboard tests (scripts/test.sh installs it)");
        assert!(out.status.success(), "{}", common::all_output(&out));
        Pane {
            socket,
            dir,
            seen: Vec::new(),
        }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    fn keys(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", "t", keys]);
    }

    fn shell_pid(&self) -> u32 {
        self.tmux(&["display-message", "-p", "-t", "t", "#{pane_pid}"])
            .trim()
            .parse()
            .unwrap()
    }

    /// The orchestrator: the pane shell's child running `openwork start`.
    fn orchestrator(&self) -> Option<u32> {
        common::descendants(self.shell_pid()).into_iter().find(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("openwork") && cmd.contains("start") && !cmd.contains("__watchdog")
        })
    }

    /// Remembers every process under the pane now.
    fn record(&mut self) {
        for p in common::descendants(self.shell_pid()) {
            if !self.seen.contains(&p) {
                self.seen.push(p);
            }
        }
    }

    /// Waits (bounded) until the screen satisfies `ok`; panics with the screen otherwise.
    fn wait_screen(&mut self, what: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.screen();
            if ok(&s) {
                self.record();
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {what} within {limit:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(name)).ok()
    }

    /// Waits (bounded) for the orchestrator's exit code.
    fn wait_rc(&self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(rc) = self.file("rc.txt") {
                return rc.trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "openwork did not exit within {limit:?}:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        self.record();
        for p in &self.seen {
            unsafe {
                libc::kill(*p as i32, libc::SIGKILL);
            }
        }
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn healthy_rows(screen: &str) -> usize {
    screen.lines().filter(|l| l.contains("● healthy")).count()
}

/// The pid on opencode's row of the services panel.
fn opencode_pid(screen: &str) -> Option<u32> {
    let row = screen
        .lines()
        .find(|l| l.contains(" opencode ") && l.contains("pid "))?;
    let words: Vec<&str> = row.split_whitespace().collect();
    let i = words.iter().position(|w| *w == "pid")?;
    words.get(i + 1)?.parse().ok()
}

fn start_cmd(env: &TestEnv, opencode: &Path, extra: &[&str]) -> Command {
    let ws = env.workspace();
    let mut args = vec![
        "start",
        "--workspace",
        ws.to_str().unwrap(),
        "--allow-external",
        "--opencode-bin",
        opencode.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    env.openwork(&args)
}

/// `GET <url>/workspaces` with a bearer token: the id of the only workspace.
fn workspace_id(openwork_url: &str, token: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let v: serde_json::Value = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{openwork_url}/workspaces"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["items"][0]["id"].as_str().unwrap().to_string()
    })
}

#[test]
fn dashboard_shows_the_services_answers_an_approval_and_quits_cleanly() {
    let env = TestEnv::new();
    let port = common::free_port();
    let collab = "dashboard-collaborator-token";
    let host = "dashboard-host-token-value";
    let mut cmd = start_cmd(
        &env,
        &common::opencode_bin(),
        &[
            "--approval",
            "manual",
            "--approval-timeout",
            "120000",
            "--openwork-token",
            collab,
            "--openwork-host-token",
            host,
        ],
    );
    cmd.env("OPENWORK_PORT", port.to_string());
    let mut pane = Pane::start(&env, &cmd, 100, 30);

    // The three services healthy, and how to connect.
    let screen = pane.wait_screen("three healthy services", Duration::from_secs(90), |s| {
        healthy_rows(s) == 3 && s.contains("OpenWork URL")
    });
    for name in ["opencode", "openwork-server", "opencode-router"] {
        assert!(screen.contains(name), "{name} missing:\n{screen}");
    }
    assert!(
        !screen.contains(host) && !screen.contains(collab),
        "{screen}"
    );
    let first_pid = opencode_pid(&screen).expect("opencode's pid on screen");

    // v reveals the tokens, v masks them again; c copies the attach command, with a toast.
    pane.keys("v");
    pane.wait_screen("the revealed host token", Duration::from_secs(10), |s| {
        s.contains(host)
    });
    pane.keys("v");
    pane.wait_screen("the masked tokens", Duration::from_secs(10), |s| {
        !s.contains(host)
    });
    pane.keys("c");
    pane.wait_screen("the copy confirmation", Duration::from_secs(10), |s| {
        s.contains("Attach command")
    });

    // A write through the server waits for a manual approval...
    let url = format!("http://127.0.0.1:{port}");
    let ws_id = workspace_id(&url, collab);
    let files = |args: &[&str]| {
        let mut a = vec!["files"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--openwork-url", &url, "--token", collab]);
        env.openwork(&a)
    };
    let out = files(&["session", "create", "--workspace-id", &ws_id, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::all_output(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sid = v["session"]["id"].as_str().unwrap().to_string();
    let mut write = files(&[
        "write",
        &sid,
        "--path",
        "notes/approved.md",
        "--content",
        "allowed from the dashboard",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();

    // ...shows up with what is asked and who asks, and `a` allows it.
    let screen = pane.wait_screen("the pending approval", Duration::from_secs(30), |s| {
        s.contains("Approvals pending: 1") && s.contains("approved.md")
    });
    assert!(screen.contains("remote"), "who asked:\n{screen}");
    // Quitting now would fail the waiting write: the dashboard asks first; n keeps running.
    pane.keys("q");
    pane.wait_screen("the quit confirmation", Duration::from_secs(10), |s| {
        s.contains("Quit?") && s.contains("approval is pending")
    });
    pane.keys("n");
    pane.wait_screen("the dialog closed", Duration::from_secs(10), |s| {
        !s.contains("Quit?")
    });
    pane.keys("a");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = write.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the write never finished");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = write.wait_with_output().unwrap();
    assert!(status.success(), "{}", common::all_output(&out));
    assert_eq!(
        std::fs::read_to_string(env.workspace().join("notes/approved.md")).unwrap(),
        "allowed from the dashboard"
    );
    pane.wait_screen("the approval gone", Duration::from_secs(10), |s| {
        !s.contains("Approvals pending")
    });

    // r restarts the selected service (opencode): a new pid, counted, healthy again.
    pane.keys("r");
    pane.wait_screen("opencode restarted", Duration::from_secs(60), |s| {
        healthy_rows(s) == 3 && opencode_pid(s).is_some_and(|p| p != first_pid)
    });

    // `q` stops everything; the shell's terminal is as it was.
    pane.record();
    assert!(pane.seen.len() >= 4, "orchestrator, watchdog and services");
    pane.keys("q");
    assert_eq!(pane.wait_rc(Duration::from_secs(60)), "rc=0");
    let left: Vec<u32> = pane
        .seen
        .iter()
        .copied()
        .filter(|p| common::alive(*p) && !is_pane_sleep(*p))
        .collect();
    let left = common::wait_all_dead(&left, Duration::from_secs(10));
    assert!(left.is_empty(), "processes left after quit: {left:?}");
    let (before, after) = (pane.file("before.txt"), pane.file("after.txt"));
    assert!(before.is_some());
    assert_eq!(before, after, "stty -a differs after the dashboard");
}

/// The pane's own `sleep` after the run (not ours to count).
fn is_pane_sleep(pid: u32) -> bool {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmd).starts_with("sleep")
}

/// Peak resident memory (VmHWM) of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn tui_without_a_terminal_is_refused_with_a_usage_error() {
    let env = TestEnv::new();
    let ws = env.workspace();
    let out = env
        .openwork(&["start", "--workspace", ws.to_str().unwrap(), "--tui"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", common::all_output(&out));
    assert!(
        common::all_output(&out).contains("--tui needs a terminal"),
        "{}",
        common::all_output(&out)
    );
}

#[test]
fn a_log_flood_neither_blocks_keys_nor_grows_memory() {
    let env = TestEnv::new();
    let flood = env.fake("opencode", "flood");
    let mut cmd = start_cmd(&env, &flood, &["--no-opencode-router"]);
    cmd.env("FAKE_FLOOD_LINES", "100000");
    let mut pane = Pane::start(&env, &cmd, 100, 30);
    pane.wait_screen("the flood in the log", Duration::from_secs(60), |s| {
        s.contains("flood line")
    });
    let orchestrator = pane.orchestrator().expect("the orchestrator runs");
    // A key is handled while the lines pour in.
    pane.keys("?");
    pane.wait_screen("the help view", Duration::from_secs(20), |s| {
        s.contains("restart the selected service")
    });
    pane.keys("Escape");
    pane.wait_screen("the end of the flood", Duration::from_secs(120), |s| {
        s.contains("flood done") || s.contains("skipped")
    });
    // Every line went through the orchestrator; its peak memory stayed small (the ring holds at
    // most 5 000 lines / 2 MiB; a debug build's baseline is most of this bound).
    let peak = peak_rss_kib(orchestrator);
    eprintln!("orchestrator peak RSS after the flood: {peak} KiB");
    assert!(peak > 0);
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB after 100 000 lines");
    pane.keys("q");
    assert_eq!(pane.wait_rc(Duration::from_secs(60)), "rc=0");
}

#[test]
fn detach_leaves_the_services_running_and_prints_the_summary_after_the_terminal_is_back() {
    let env = TestEnv::new();
    let fake = env.fake("opencode", "ok");
    let cmd = start_cmd(
        &env,
        &fake,
        &["--no-opencode-router", "--run-id", "dash-detach"],
    );
    let mut pane = Pane::start(&env, &cmd, 100, 30);
    pane.wait_screen("two healthy services", Duration::from_secs(60), |s| {
        healthy_rows(s) == 2 && s.contains("OpenWork URL")
    });
    let orchestrator = pane.orchestrator().expect("the orchestrator runs");
    pane.keys("d");
    assert_eq!(pane.wait_rc(Duration::from_secs(30)), "rc=0");
    let screen = pane.wait_screen("the detach summary", Duration::from_secs(10), |s| {
        s.contains("Detached. Services still running")
    });
    assert!(!common::alive(orchestrator));
    let run_dir = env.path("data/runs/dash-detach");
    let pids = common::detached_pids(&run_dir);
    assert_eq!(pids.len(), 2, "{screen}");
    // The watchdog let go: the orchestrator and its watchdog are gone, the services are not.
    let watchdogs: Vec<u32> = pane
        .seen
        .iter()
        .copied()
        .filter(|p| {
            String::from_utf8_lossy(
                &std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default(),
            )
            .contains("__watchdog")
        })
        .collect();
    assert!(common::wait_all_dead(&watchdogs, Duration::from_secs(10)).is_empty());
    for pid in &pids {
        assert!(
            common::alive(*pid),
            "service {pid} did not survive the detach"
        );
    }
    // Their output still goes to the run's log files.
    assert!(run_dir.join("opencode.log").exists());
    assert_eq!(pane.file("before.txt"), pane.file("after.txt"));
    assert!(common::stop_groups(&pids).is_empty());
}
