//! `openwork doctor` against the real machine: the real Docker engine (started by
//! scripts/test.sh) and its image, then the same engine made unusable the ways people meet it —
//! an engine that is not running (a socket file nobody answers on), a socket this user may not
//! open, a missing image — each named with its fix and a non-zero exit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::TestEnv;
use serde_json::Value;

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

fn doctor(env: &TestEnv, docker_host: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["doctor", "--json"];
    args.extend_from_slice(extra);
    let mut cmd = env.openwork(&args);
    cmd.env("DOCKER_HOST", docker_host);
    let out = cmd.output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}): {}",
            common::all_output(&out)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {doc}"))
}

#[test]
fn a_ready_machine_passes_for_the_docker_sandbox() {
    let env = TestEnv::new();
    let (code, doc) = doctor(
        &env,
        &format!("unix://{DOCKER_SOCKET}"),
        &["--sandbox", "docker"],
    );
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["sandbox"], "docker");
    assert_eq!(check(&doc, "docker")["status"], "ok");
    assert_eq!(check(&doc, "image")["status"], "ok");
    assert_eq!(check(&doc, "data-dir")["status"], "ok");
    // Every documented check is there, in order.
    let names: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "docker",
            "podman",
            "apple-container",
            "image",
            "opencode",
            "npm",
            "data-dir",
            "port",
            "temp-dir",
            "clock"
        ]
    );
}

#[test]
fn a_stopped_engine_blocks_the_docker_sandbox_and_names_the_fix() {
    let env = TestEnv::new();
    // What a client sees of a stopped engine: the socket file is left, nobody answers.
    let sock = env.path("dead-docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let host = format!("unix://{}", sock.display());
    let (code, doc) = doctor(&env, &host, &["--sandbox", "docker"]);
    assert_eq!(code, 1, "{doc:#}");
    let docker = check(&doc, "docker");
    assert_eq!(docker["status"], "blocking");
    let msg = docker["message"].as_str().unwrap();
    assert!(msg.contains("does not answer"), "{msg}");
    assert!(msg.contains("systemctl start docker"), "{msg}");
    // Without a sandbox the same machine can still start.
    let (code, doc) = doctor(&env, &host, &["--sandbox", "none"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(check(&doc, "docker")["status"], "skipped");
}

#[test]
fn a_missing_image_blocks_and_names_the_build_command() {
    let env = TestEnv::new();
    let (code, doc) = doctor(
        &env,
        &format!("unix://{DOCKER_SOCKET}"),
        &[
            "--sandbox",
            "docker",
            "--sandbox-image",
            "openwork-doctor-test:missing",
        ],
    );
    assert_eq!(code, 1, "{doc:#}");
    let image = check(&doc, "image");
    assert_eq!(image["status"], "blocking");
    let msg = image["message"].as_str().unwrap();
    assert!(msg.contains("openwork-doctor-test:missing"), "{msg}");
    assert!(msg.contains("images/build.sh"), "{msg}");
}

#[test]
fn a_socket_this_user_may_not_open_is_named_with_the_group_fix() {
    if !nix::unistd::getuid().is_root() {
        eprintln!("skipped: needs root to run doctor as another user");
        return;
    }
    let env = TestEnv::new();
    // The unprivileged user needs a home and data dir of its own.
    for d in ["home", "data"] {
        let p = env.path(d);
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(
        env.root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        common::openwork_bin(),
        "doctor",
        "--json",
        "--sandbox",
        "docker",
    ]);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .env("OPENWORK_DATA_DIR", env.path("data"))
        .env("DOCKER_HOST", format!("unix://{DOCKER_SOCKET}"));
    let out = cmd.output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", common::all_output(&out)));
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    let docker = check(&doc, "docker");
    assert_eq!(docker["status"], "blocking");
    let msg = docker["message"].as_str().unwrap();
    assert!(
        msg.contains("permission denied on /var/run/docker.sock"),
        "{msg}"
    );
    assert!(msg.contains("`docker` group"), "{msg}");
}

#[test]
fn the_human_report_names_each_check_and_what_blocks() {
    let env = TestEnv::new();
    let mut cmd = env.openwork(&["doctor", "--sandbox", "docker"]);
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("blocking  Docker: no socket at /nonexistent/docker.sock"),
        "{text}"
    );
    assert!(
        text.contains("1 problem blocks `openwork start --sandbox docker`"),
        "{text}"
    );
}
