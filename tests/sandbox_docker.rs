//! Sandbox mode against the REAL Docker engine (started by scripts/test.sh) with the real opencode
//! inside the locally built image (`images/build.sh`). Containers are found by the run id we
//! give each test and removed by a guard even when a test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{ContainerGuard, Running, TestEnv};
use openwork_backends::docker::DockerBackend;

const LONG: Duration = Duration::from_secs(120);

/// Sandbox tests run one at a time: every run removes orphans at start, which must not race
/// with the orphan test's killed run (and two hardened containers at once are slow on 2 cores).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn docker() -> DockerBackend {
    rt().block_on(DockerBackend::connect("images/build.sh"))
        .expect("the Docker engine must be running (scripts/test.sh starts it)")
}

fn sandbox_args<'a>(
    env: &'a TestEnv,
    ws: &'a str,
    run_id: &'a str,
    extra: &[&'a str],
) -> Vec<String> {
    let oc = common::opencode_bin();
    let mut v: Vec<String> = [
        "serve",
        "--workspace",
        ws,
        "--sandbox",
        "docker",
        "--run-id",
        run_id,
        "--allow-external",
        "--opencode-bin",
        oc.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    let _ = env;
    v
}

fn cmd(env: &TestEnv, args: &[String]) -> std::process::Command {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    env.openwork(&refs)
}

fn exec(container: &str, script: &str) -> (i32, String) {
    let out = std::process::Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .unwrap();
    let text = common::all_output(&out);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn sandboxed_check_events_passes_with_real_opencode_inside() {
    let _serial = serial();
    let env = TestEnv::new();
    let ws = env.workspace();
    let _guard = ContainerGuard("openwork-sbx-check".into());
    let args = sandbox_args(
        &env,
        ws.to_str().unwrap(),
        "sbx-check",
        &["--check", "--check-events"],
    );
    let out = cmd(&env, &args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Checks: ok"), "{stdout}");
    assert!(stdout.contains("Starting sandbox"), "{stdout}");
    // Stopped and removed afterwards.
    let ps = std::process::Command::new("docker")
        .args(["ps", "-a", "--filter", "name=openwork-sbx-check", "-q"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ps.stdout).trim().is_empty());
}

#[test]
fn running_sandbox_is_hardened_and_holds_no_control_secrets() {
    let _serial = serial();
    let env = TestEnv::new();
    let ws = env.workspace();
    // An allow-listed read-only extra mount.
    let data_root = env.path("datasets");
    std::fs::create_dir_all(data_root.join("set1")).unwrap();
    std::fs::write(data_root.join("set1/readme.txt"), "data").unwrap();
    let allowlist = env.path("allowlist.json");
    std::fs::write(
        &allowlist,
        format!(
            r#"{{"allowedRoots":[{{"path":"{}","allowReadWrite":false}}],"blockedPatterns":[]}}"#,
            data_root.display()
        ),
    )
    .unwrap();
    let mount = format!("{}:set1:ro", data_root.join("set1").display());
    let name = "openwork-sbx-hard";
    let _guard = ContainerGuard(name.into());
    let client_token = "client-token-must-not-leak-0123456789";
    let host_token = "host-token-must-not-leak-0123456789";
    let args = sandbox_args(
        &env,
        ws.to_str().unwrap(),
        "sbx-hard",
        &[
            "--sandbox-mount",
            &mount,
            "--openwork-token",
            client_token,
            "--openwork-host-token",
            host_token,
        ],
    );
    let mut c = cmd(&env, &args);
    c.env("OPENWORK_SANDBOX_MOUNT_ALLOWLIST", &allowlist);
    let mut run = Running::spawn(c);
    run.wait_for("OpenWork orchestrator running", LONG);

    // Every hardening setting, as the engine reports it.
    let backend = docker();
    let inspect = rt()
        .block_on(backend.client().inspect_container(name, None))
        .unwrap();
    let hc = inspect.host_config.clone().unwrap();
    let uid = unsafe { libc::getuid() };
    let gid = unsafe { libc::getgid() };
    assert_eq!(
        inspect.config.as_ref().unwrap().user.as_deref(),
        Some(format!("{uid}:{gid}").as_str())
    );
    assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
    assert!(
        hc.security_opt
            .unwrap()
            .contains(&"no-new-privileges".to_string())
    );
    assert_eq!(hc.readonly_rootfs, Some(true));
    assert_eq!(hc.privileged, Some(false));
    assert_eq!(hc.pids_limit, Some(512));
    assert!(hc.memory.unwrap() > 0);
    assert!(hc.nano_cpus.unwrap() > 0);
    assert!(hc.tmpfs.unwrap().contains_key("/tmp"));
    for bindings in hc.port_bindings.unwrap().values().flatten() {
        for b in bindings {
            assert_eq!(b.host_ip.as_deref(), Some("127.0.0.1"));
        }
    }
    let labels: HashMap<String, String> = inspect.config.unwrap().labels.unwrap();
    assert_eq!(labels["org.openwork.run-id"], "sbx-hard");
    let mounts: Vec<String> = inspect
        .mounts
        .unwrap()
        .into_iter()
        .filter_map(|m| m.destination)
        .collect();
    assert!(
        !mounts.iter().any(|m| m.contains("docker.sock")),
        "{mounts:?}"
    );
    // PID 1 is our init, opencode runs under it.
    let (_, pid1) = exec(name, "cat /proc/1/cmdline | tr '\\0' ' '");
    assert!(pid1.contains("__init"), "{pid1}");

    // No control secret anywhere the agent can look.
    let (_, env_dump) = exec(
        name,
        "for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do cat $f 2>/dev/null | tr '\\0' '\\n'; done; \
         grep -r -s -l -e client-token-must-not -e host-token-must-not /persist /workspace /tmp /etc /home /root 2>/dev/null; true",
    );
    assert!(
        !env_dump.contains(client_token),
        "client token visible in the sandbox"
    );
    assert!(
        !env_dump.contains(host_token),
        "host token visible in the sandbox"
    );
    assert!(!env_dump.contains("OPENWORK_TOKEN="), "{env_dump}");
    let (code, _) = exec(
        name,
        "test -e /var/run/docker.sock || test -e /run/docker.sock",
    );
    assert_ne!(code, 0, "the engine socket is visible in the sandbox");

    // The read-only extra mount cannot be written; the workspace can, with the host's owner.
    let (code, out) = exec(
        name,
        "cat /workspace/extra/set1/readme.txt && touch /workspace/extra/set1/x",
    );
    assert!(out.contains("data"), "{out}");
    assert_ne!(code, 0, "wrote into a read-only extra mount: {out}");
    let (code, out) = exec(name, "echo hi > /workspace/agent-file && touch /etc/evil");
    assert_ne!(code, 0, "wrote into the read-only root filesystem: {out}");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(ws.join("agent-file")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));

    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(LONG), Some(0), "{}", run.output());
}

#[test]
fn orphan_of_a_killed_run_is_removed_by_the_next_run() {
    let _serial = serial();
    let env = TestEnv::new();
    let ws = env.workspace();
    let orphan = "openwork-sbx-orphan";
    let _g1 = ContainerGuard(orphan.into());
    let _g2 = ContainerGuard("openwork-sbx-next".into());
    let args = sandbox_args(
        &env,
        ws.to_str().unwrap(),
        "sbx-orphan",
        &["--no-opencode-router"],
    );
    let mut run = Running::spawn(cmd(&env, &args));
    run.wait_for("OpenWork orchestrator running", LONG);
    // Orchestrator and watchdog die together: only the next run's sweep can clean up.
    common::kill_watchdog(run.pid());
    run.signal(libc::SIGKILL);
    run.wait_exit(LONG);
    let exists = common::container_exists;
    assert!(
        exists(orphan),
        "the killed run's container should still exist before cleanup"
    );
    let args = sandbox_args(
        &env,
        ws.to_str().unwrap(),
        "sbx-next",
        &["--check", "--no-opencode-router"],
    );
    let out = cmd(&env, &args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("left behind by a killed run"), "{stdout}");
    assert!(!exists(orphan));
}

#[test]
fn auto_with_no_reachable_engine_is_a_clear_error_not_a_host_run() {
    let _serial = serial();
    let env = TestEnv::new();
    let ws = env.workspace();
    let mut c = env.openwork(&[
        "serve",
        "--workspace",
        ws.to_str().unwrap(),
        "--sandbox",
        "auto",
        "--check",
    ]);
    c.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("--sandbox none"), "{stderr}");
    assert!(stderr.contains("/nonexistent/docker.sock"), "{stderr}");
    assert!(
        !stdout.contains("Process spawned"),
        "something started: {stdout}"
    );
}

#[test]
fn missing_image_names_the_build_command() {
    let _serial = serial();
    let env = TestEnv::new();
    let ws = env.workspace();
    let args = sandbox_args(
        &env,
        ws.to_str().unwrap(),
        "sbx-noimage",
        &[
            "--sandbox-image",
            "openwork-sandbox:does-not-exist",
            "--check",
        ],
    );
    let out = cmd(&env, &args).output().unwrap();
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("openwork-sandbox:does-not-exist"), "{text}");
    assert!(text.contains("images/build.sh"), "{text}");
}

#[test]
fn detached_sandbox_keeps_running_and_says_how_to_stop_it() {
    let _serial = serial();
    let env = TestEnv::new();
    let ws = env.workspace();
    let name = "openwork-sbx-detach";
    let _guard = ContainerGuard(name.into());
    let args = sandbox_args(&env, ws.to_str().unwrap(), "sbx-detach", &["--detach"]);
    let out = cmd(&env, &args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("(container {name})")), "{stdout}");
    assert!(
        stdout.contains("Stop: openwork stop sbx-detach"),
        "{stdout}"
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.path("data/runs/sbx-detach/state.json")).unwrap(),
    )
    .unwrap();
    let backend = docker();
    let inspect = rt()
        .block_on(backend.client().inspect_container(name, None))
        .unwrap();
    assert_eq!(inspect.state.unwrap().running, Some(true));
    assert_eq!(
        inspect.config.unwrap().labels.unwrap()["org.openwork.detached"],
        "true"
    );
    // A later run does not treat a detached sandbox as an orphan.
    let removed = rt()
        .block_on(openwork_backends::SandboxBackend::remove_orphans(&backend))
        .unwrap();
    assert!(!removed.contains(&name.to_string()), "{removed:?}");
    let pids: Vec<u32> = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["pid"].as_u64().map(|p| p as u32))
        .collect();
    assert_eq!(common::stop_groups(&pids), Vec::<u32>::new());
}

/// Serves a directory on 127.0.0.1 with Python's http.server; killed on drop.
struct StaticServer {
    child: std::process::Child,
    port: u16,
}

impl StaticServer {
    fn start(dir: &std::path::Path) -> StaticServer {
        let port = common::free_port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Bounded wait until it accepts connections.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        StaticServer { child, port }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_hex(path: &std::path::Path) -> (String, u64) {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    (
        hex::encode(sha2::Sha256::digest(&bytes)),
        bytes.len() as u64,
    )
}

#[test]
fn sandbox_can_use_linux_binaries_downloaded_from_the_manifest() {
    // The path a Mac host takes (its own binaries are not Linux ones), forced on Linux with
    // --sandbox-sidecars downloaded: opencode and the openwork executable come from a manifest.
    let _serial = serial();
    let env = TestEnv::new();
    let ws = env.workspace();
    let assets = env.path("assets");
    std::fs::create_dir_all(&assets).unwrap();
    let oc = assets.join("opencode-linux-x64");
    if std::fs::hard_link(common::opencode_bin(), &oc).is_err() {
        std::fs::copy(common::opencode_bin(), &oc).unwrap();
    }
    let ow = assets.join("openwork-linux-x64");
    std::fs::copy(common::openwork_bin(), &ow).unwrap();
    let (oc_sha, oc_size) = sha256_hex(&oc);
    let (ow_sha, ow_size) = sha256_hex(&ow);
    let manifest = serde_json::json!({
        "version": "0.1.0",
        "entries": {
            "opencode": { "version": "1.18.34", "targets": { "linux-x64": { "asset": "opencode-linux-x64", "sha256": oc_sha, "size": oc_size } } },
            "openwork-server": { "version": "0.1.0", "targets": { "linux-x64": { "asset": "openwork-linux-x64", "sha256": ow_sha, "size": ow_size } } }
        }
    });
    std::fs::write(
        assets.join("openwork-orchestrator-sidecars.json"),
        manifest.to_string(),
    )
    .unwrap();
    let server = StaticServer::start(&assets);
    let name = "openwork-sbx-dl";
    let _guard = ContainerGuard(name.into());
    let base = format!("http://127.0.0.1:{}", server.port);
    let sidecar_dir = env.path("sidecars");
    let args: Vec<String> = [
        "serve",
        "--workspace",
        ws.to_str().unwrap(),
        "--sandbox",
        "docker",
        "--sandbox-sidecars",
        "downloaded",
        "--run-id",
        "sbx-dl",
        "--sidecar-base-url",
        &base,
        "--sidecar-dir",
        sidecar_dir.to_str().unwrap(),
        "--no-opencode-router",
        "--check",
        "--verbose",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = cmd(&env, &args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("Sandbox uses downloaded Linux binaries"),
        "{stdout}"
    );
    assert!(stdout.contains("Checks: ok"), "{stdout}");
    assert!(
        sidecar_dir
            .join("openwork-server/0.1.0/linux-x64/openwork-server")
            .is_file(),
        "openwork was not cached from the manifest"
    );
}

#[test]
fn sigkill_of_the_orchestrator_removes_its_sandbox_through_the_watchdog() {
    let _serial = serial();
    let env = TestEnv::new();
    let ws = env.workspace();
    let name = "openwork-sbx-wd";
    let _guard = ContainerGuard(name.into());
    let args = sandbox_args(
        &env,
        ws.to_str().unwrap(),
        "sbx-wd",
        &["--no-opencode-router"],
    );
    let mut run = Running::spawn(cmd(&env, &args));
    run.wait_for("OpenWork orchestrator running", LONG);
    let pids = common::descendants(run.pid());
    run.signal(libc::SIGKILL);
    run.wait_exit(LONG);
    let exists = || common::container_exists(name);
    // Bounded wait for the watchdog's removal (no speed is asserted).
    let deadline = std::time::Instant::now() + LONG;
    while exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!exists(), "the killed run's container outlived it");
    assert_eq!(
        common::wait_all_dead(&pids, Duration::from_secs(15)),
        Vec::<u32>::new()
    );
}
