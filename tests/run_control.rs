//! Run control against real runs: `openwork ps`, `stop`, `logs -f` and `attach` on detached runs
//! (host and `--sandbox docker`) and on a foreground run, with the real opencode. `attach` runs a
//! fake `opencode` on PATH that records its argv and environment: the password must be in the
//! environment only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use common::{ContainerGuard, Running, TestEnv, read_json};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

/// A detached host run; its services are stopped on drop whatever the test did.
struct Detached {
    env: TestEnv,
    run_id: String,
    pids: Vec<u32>,
}

impl Detached {
    fn start(run_id: &str, extra: &[&str]) -> Detached {
        let env = TestEnv::new();
        let mut args = vec!["--detach", "--run-id", run_id];
        args.extend_from_slice(extra);
        let out = env.serve_real(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", common::all_output(&out));
        let pids = common::detached_pids(&env.path(&format!("data/runs/{run_id}")));
        Detached {
            env,
            run_id: run_id.into(),
            pids,
        }
    }

    fn dir(&self) -> PathBuf {
        self.env.path(&format!("data/runs/{}", self.run_id))
    }

    fn run(&self, args: &[&str]) -> Output {
        self.env.openwork(args).output().unwrap()
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        common::stop_groups(&self.pids);
    }
}

/// A fake `opencode` in its own directory (to put on PATH) that writes its argv, one per line,
/// and its environment to `record`, then exits 7.
fn fake_opencode(env: &TestEnv) -> (PathBuf, PathBuf) {
    let dir = env.path("fakebin");
    std::fs::create_dir_all(&dir).unwrap();
    let record = env.path("attach-record.txt");
    let script = dir.join("opencode");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ for a in \"$@\"; do echo \"ARG $a\"; done; env | sed 's/^/ENV /'; }} > {}\nexit 7\n",
            record.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, record)
}

/// Runs `openwork attach <run>` with the fake opencode first on PATH; checks what it was given.
fn check_attach(env: &TestEnv, run: &str, creds: &Value, opencode_dir: &str) {
    let (bin_dir, record) = fake_opencode(env);
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = env
        .openwork(&["attach", run])
        .env("PATH", path)
        .output()
        .unwrap();
    let text = common::all_output(&out);
    // The child's exit code is the command's.
    assert_eq!(out.status.code(), Some(7), "{text}");
    let got = std::fs::read_to_string(&record).unwrap();
    let args: Vec<&str> = got.lines().filter_map(|l| l.strip_prefix("ARG ")).collect();
    let url = creds["opencode"]["baseUrl"].as_str().unwrap();
    assert_eq!(args, ["attach", url, "--dir", opencode_dir], "{got}");
    let password = creds["opencode"]["password"].as_str().unwrap();
    let username = creds["opencode"]["username"].as_str().unwrap();
    assert!(
        got.contains(&format!("ENV OPENCODE_SERVER_PASSWORD={password}\n")),
        "{got}"
    );
    assert!(
        got.contains(&format!("ENV OPENCODE_SERVER_USERNAME={username}\n")),
        "{got}"
    );
    assert!(!args.iter().any(|a| a.contains(password)), "{got}");
    assert!(!text.contains(password), "{text}");
}

#[test]
fn ps_logs_attach_and_stop_a_detached_host_run() {
    let run = Detached::start("rc-host-1", &[]);
    let dir = run.dir();
    let creds = read_json(&dir.join("credentials.json"));
    let state = read_json(&dir.join("state.json"));
    assert_eq!(state["schema"], 1, "{state}");
    assert_eq!(state["kind"], "detached", "{state}");
    assert_eq!(state["ownerUid"], json!(nix_uid()), "{state}");
    use std::os::unix::fs::PermissionsExt;
    for f in ["state.json", "credentials.json"] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }

    // ps: the run, healthy, in both forms, and no secret in either.
    let out = run.run(&["ps"]);
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("rc-host-1"), "{text}");
    assert!(text.contains("healthy"), "{text}");
    assert!(
        text.contains(state["openworkUrl"].as_str().unwrap()),
        "{text}"
    );
    let out = run.run(&["ps", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc[0]["runId"], "rc-host-1", "{doc}");
    assert_eq!(doc[0]["state"], "running", "{doc}");
    assert_eq!(doc[0]["health"], "healthy", "{doc}");
    assert_eq!(doc[0]["sandbox"], Value::Null, "{doc}");
    let password = creds["opencode"]["password"].as_str().unwrap();
    let token = creds["openwork"]["token"].as_str().unwrap();
    assert!(!doc.to_string().contains(password));
    assert!(!doc.to_string().contains(token));

    // logs: a line a service wrote with secrets in it comes out redacted.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("opencode.log"))
        .unwrap();
    writeln!(f, "leaked {password} and {token} marker-1").unwrap();
    drop(f);
    let out = run.run(&["logs", "rc-host", "--service", "opencode"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", common::all_output(&out));
    assert!(
        text.contains("[opencode] opencode server listening"),
        "{text}"
    );
    assert!(
        text.contains("[opencode] leaked [REDACTED] and [REDACTED] marker-1"),
        "{text}"
    );
    assert!(!text.contains("[openwork-server]"), "{text}");
    let out = run.run(&["logs", "--json", "--service", "opencode"]);
    let last: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["body"].as_str().unwrap_or("").contains("marker-1"))
        .unwrap();
    assert_eq!(last["attributes"]["run.id"], "rc-host-1", "{last}");
    assert_eq!(
        last["attributes"]["service.component"], "opencode",
        "{last}"
    );
    assert!(last["timeUnixNano"].is_string(), "{last}");
    assert!(!last.to_string().contains(password), "{last}");
    let out = run.run(&["logs", "--service", "nope"]);
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("opencode, openwork-server"), "{text}");

    // logs -f follows new lines, and ends by itself when the run is stopped.
    let mut follow = Running::spawn(run.env.openwork(&["logs", "-f", "--service", "opencode"]));
    follow.wait_for("marker-1", LONG);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("opencode.log"))
        .unwrap();
    writeln!(f, "a later line marker-2").unwrap();
    drop(f);
    follow.wait_for("marker-2", Duration::from_secs(10));

    // attach: the real `opencode attach` command line, the password in the environment only.
    check_attach(
        &run.env,
        "rc-host-1",
        &creds,
        run.env.workspace().to_str().unwrap(),
    );

    // stop by workspace path: every group gone, the record removed, exit 0.
    let ws = run.env.workspace();
    let out = run.run(&["stop", ws.to_str().unwrap()]);
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Stopped run rc-host-1"), "{text}");
    assert_eq!(
        common::wait_all_dead(&run.pids, Duration::from_secs(1)),
        Vec::<u32>::new()
    );
    assert!(!dir.exists());
    assert_eq!(follow.wait_exit(Duration::from_secs(10)), Some(0));
    let out = run.run(&["ps"]);
    assert!(
        common::all_output(&out).contains("No runs recorded"),
        "{}",
        common::all_output(&out)
    );
}

fn nix_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

#[test]
fn a_run_whose_processes_died_is_stale_pruned_and_stop_says_so() {
    let run = Detached::start("rc-stale-1", &["--no-opencode-router"]);
    assert_eq!(common::stop_groups(&run.pids), Vec::<u32>::new());
    let out = run.run(&["ps", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc[0]["state"], "stale", "{doc}");
    fails_with(
        &run.env,
        &["attach"],
        &["rc-stale-1 is not running any more", "openwork ps --prune"],
    );
    let out = run.run(&["ps"]);
    assert!(
        common::all_output(&out).contains("openwork ps --prune"),
        "{}",
        common::all_output(&out)
    );
    // stop of a run that is already gone prunes it and says so, exit 0.
    let out = run.run(&["stop"]);
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("Run rc-stale-1 was already stopped; removed its record"),
        "{text}"
    );
    assert!(!run.dir().exists());
}

#[test]
fn a_foreground_run_is_recorded_and_stop_ends_it_cleanly() {
    let env = TestEnv::new();
    let mut fg = Running::spawn(env.serve_real(&["--run-id", "rc-fg-1"]));
    fg.wait_for("Stop: openwork stop rc-fg-1", LONG);
    let dir = env.path("data/runs/rc-fg-1");
    let state = read_json(&dir.join("state.json"));
    assert_eq!(state["kind"], "foreground", "{state}");
    assert_eq!(state["orchestratorPid"], json!(fg.pid()), "{state}");
    let pids = common::detached_pids(&dir);
    assert_eq!(pids.len(), 3, "{state}");
    let creds = read_json(&dir.join("credentials.json"));
    check_attach(&env, "rc-fg", &creds, env.workspace().to_str().unwrap());
    // A foreground run's logs are in its terminal: the command says so.
    let out = env.openwork(&["logs"]).output().unwrap();
    assert!(
        common::all_output(&out).contains("foreground run"),
        "{}",
        common::all_output(&out)
    );

    // A restarted service gets a new process group: the record follows it.
    let opencode = pids[0];
    unsafe {
        libc::kill(-(opencode as i32), libc::SIGKILL);
    }
    let deadline = std::time::Instant::now() + LONG;
    let new_pid = loop {
        let now = common::detached_pids(&dir);
        if now.len() == 3 && now[0] != opencode {
            break now[0];
        }
        assert!(std::time::Instant::now() < deadline, "record not updated");
        std::thread::sleep(Duration::from_millis(100));
    };

    let out = env.openwork(&["stop", "rc-fg-1"]).output().unwrap();
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("orchestrator pid"), "{text}");
    // The orchestrator ran its normal shutdown: exit 0, services gone, run dir removed.
    assert_eq!(
        fg.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        fg.output()
    );
    let mut all = pids.clone();
    all.push(new_pid);
    assert_eq!(
        common::wait_all_dead(&all, Duration::from_secs(5)),
        Vec::<u32>::new()
    );
    assert!(!dir.exists());
}

/// Writes a record by hand (dead pids), for the resolution errors.
fn fake_record(env: &TestEnv, run_id: &str, owner: u32) -> PathBuf {
    let dir = env.path(&format!("data/runs/{run_id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = json!({
        "schema": 1, "runId": run_id, "ownerUid": owner, "kind": "detached",
        "bootId": "no-such-boot", "workspace": "/nonexistent", "opencodeDirectory": "/nonexistent",
        "startedAtUnixMs": 1, "openworkUrl": "http://127.0.0.1:9", "openworkConnectUrl": "http://127.0.0.1:9",
        "opencodeUrl": "http://127.0.0.1:9", "services": [{ "name": "opencode", "pid": 999999 }],
    });
    std::fs::write(dir.join("state.json"), doc.to_string()).unwrap();
    dir
}

fn fails_with(env: &TestEnv, args: &[&str], needles: &[&str]) {
    let out = env.openwork(args).output().unwrap();
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
    for n in needles {
        assert!(text.contains(n), "{args:?}: {n:?} not in {text}");
    }
}

#[test]
fn bad_run_arguments_are_clear_errors_naming_the_fix() {
    let env = TestEnv::new();
    fails_with(
        &env,
        &["stop"],
        &[
            "no runs are recorded",
            "--data-dir",
            "openwork serve --detach",
        ],
    );
    fake_record(&env, "abc-1", nix_uid());
    fake_record(&env, "abc-2", nix_uid());
    fails_with(
        &env,
        &["stop", "zzz"],
        &["no run matches \"zzz\"", "abc-1, abc-2", "openwork ps"],
    );
    fails_with(
        &env,
        &["attach", "abc"],
        &["matches 2 runs", "abc-1, abc-2", "more of the run id"],
    );
    fails_with(&env, &["logs"], &["there are 2 runs", "openwork ps"]);
    // Another user's run (its directory and record say so) is never acted on.
    let theirs = fake_record(&env, "theirs-1", 4242);
    std::os::unix::fs::chown(&theirs, Some(4242), None).unwrap();
    fails_with(
        &env,
        &["stop", "theirs"],
        &["run theirs-1 belongs to uid 4242", "sudo -u '#4242'"],
    );
    assert!(theirs.exists());
    // A symlinked run directory is not a run, and nothing is removed through it.
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.path("data/runs/linked-1")).unwrap();
    fails_with(
        &env,
        &["stop", "linked-1"],
        &["no run matches \"linked-1\""],
    );
    assert!(elsewhere.exists());
    // `stop --all` prunes every stale run of ours and leaves the other user's alone.
    let out = env.openwork(&["stop", "--all"]).output().unwrap();
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Run abc-1 was already stopped"), "{text}");
    assert!(text.contains("Run abc-2 was already stopped"), "{text}");
    assert!(theirs.exists());
    // A record of a newer openwork is neither signalled nor removed.
    let newer = fake_record(&env, "newer-1", nix_uid());
    let mut doc = read_json(&newer.join("state.json"));
    doc["schema"] = json!(2);
    std::fs::write(newer.join("state.json"), doc.to_string()).unwrap();
    fails_with(
        &env,
        &["stop", "newer-1"],
        &[
            "newer than this openwork",
            "use the openwork that started the run",
        ],
    );
    assert!(newer.join("state.json").exists());
    // A run id that would escape the runs directory is refused before anything starts.
    let out = env
        .serve_real(&["--run-id", "../escape", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", common::all_output(&out));
}

#[test]
fn ps_logs_attach_and_stop_a_detached_docker_run() {
    let env = TestEnv::new();
    let name = "openwork-rc-sbx-1";
    let _guard = ContainerGuard(name.into());
    let ws = env.workspace();
    let oc = common::opencode_bin();
    let out = env
        .openwork(&[
            "serve",
            "--workspace",
            ws.to_str().unwrap(),
            "--sandbox",
            "docker",
            "--run-id",
            "rc-sbx-1",
            "--allow-external",
            "--opencode-bin",
            oc.to_str().unwrap(),
            "--detach",
            "--no-opencode-router",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::all_output(&out));
    let dir = env.path("data/runs/rc-sbx-1");
    let state = read_json(&dir.join("state.json"));
    let pids = common::detached_pids(&dir);
    let _groups = GroupsGuard(pids.clone());
    assert_eq!(state["sandbox"]["backend"], "docker", "{state}");
    assert_eq!(state["services"][0]["container"], name, "{state}");
    assert!(common::container_exists(name));

    let out = env.openwork(&["ps", "--json"]).output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc[0]["health"], "healthy", "{doc}");
    assert_eq!(doc[0]["sandbox"]["backend"], "docker", "{doc}");

    // The container's output comes from the engine.
    let out = env
        .openwork(&["logs", "--service", "opencode"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", common::all_output(&out));
    assert!(
        text.contains("[opencode] opencode server listening"),
        "{text}"
    );
    let mut follow = Running::spawn(env.openwork(&["logs", "-f"]));
    follow.wait_for("[opencode] opencode server listening", LONG);

    let creds = read_json(&dir.join("credentials.json"));
    check_attach(&env, "rc-sbx", &creds, "/workspace");

    let out = env.openwork(&["stop", "rc-sbx-1"]).output().unwrap();
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("opencode (container {name})")),
        "{text}"
    );
    assert!(
        !common::container_exists(name),
        "the container outlived stop"
    );
    assert_eq!(
        common::wait_all_dead(&pids, Duration::from_secs(1)),
        Vec::<u32>::new()
    );
    assert!(!dir.exists());
    assert_eq!(follow.wait_exit(Duration::from_secs(10)), Some(0));
}

/// Stops process groups on drop (a failed assertion must not leave services running).
struct GroupsGuard(Vec<u32>);

impl Drop for GroupsGuard {
    fn drop(&mut self) {
        common::stop_groups(&self.0);
    }
}
