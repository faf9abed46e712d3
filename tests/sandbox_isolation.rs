//! The isolation report and the workspace-poisoning guard against the REAL Docker engine with
//! the real opencode inside: the report read back from a detached run (`--json`, state, detach
//! summary), the sandbox user rule on a root host, `--sandbox-strict` refusing, and the agent
//! (as the container's user, through `docker exec`) trying to plant what the host's git would
//! later run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{ContainerGuard, TestEnv};
use serde_json::Value;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn sandbox(env: &TestEnv, run_id: &str, extra: &[&str]) -> Command {
    let oc = common::opencode_bin();
    let ws = env.workspace();
    let mut args = vec![
        "serve",
        "--workspace",
        ws.to_str().unwrap(),
        "--sandbox",
        "docker",
        "--run-id",
        run_id,
        "--allow-external",
        "--opencode-bin",
        oc.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut cmd = env.openwork(&args);
    cmd.env("DOCKER_HOST", "unix:///var/run/docker.sock");
    cmd
}

fn exec(container: &str, script: &str) -> (i32, String) {
    let out = Command::new("docker")
        .args(["exec", "-w", "/workspace", container, "sh", "-c", script])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), common::all_output(&out))
}

fn control<'a>(isolation: &'a Value, name: &str) -> &'a Value {
    isolation["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["control"] == name)
        .unwrap_or_else(|| panic!("no control {name}: {isolation:#}"))
}

fn chown(path: &std::path::Path, uid: u32) {
    let st = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}"), path.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn report_user_rule_and_git_guard_hold_against_the_agent() {
    if !nix::unistd::getuid().is_root() {
        eprintln!("skipped: the root-host rule needs root");
        return;
    }
    let _serial = serial();
    let env = TestEnv::new();
    let ws = env.workspace();
    std::fs::write(ws.join("README"), "hello\n").unwrap();
    // A root host, a workspace owned by a person: the agent runs as that person.
    chown(&ws, 1000);
    let name = "openwork-sbx-iso";
    let _guard = ContainerGuard(name.into());
    let out = sandbox(&env, "sbx-iso", &["--detach", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", common::all_output(&out));
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let iso = &doc["sandbox"]["isolation"];
    assert_eq!(doc["sandbox"]["user"]["rule"], "workspace-owner", "{doc:#}");
    assert_eq!(control(iso, "user")["status"], "enforced", "{iso:#}");
    assert_eq!(control(iso, "user")["detail"], "uid 1000 gid 1000");
    for c in [
        "capabilities",
        "no-new-privileges",
        "seccomp",
        "read-only-root",
        "pids-limit",
        "memory-limit",
        "cpu-limit",
        "engine-socket",
        "mounts",
        "ports",
        "git-guard",
        "credentials",
        // Docker runs behind the egress gate by default.
        "egress",
    ] {
        assert_eq!(control(iso, c)["status"], "enforced", "{c}: {iso:#}");
    }
    // The report is in the run's state too, and the summary says it.
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(env.path("data/runs/sbx-iso/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["sandbox"]["isolation"], *iso);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Sandbox isolation:"),
        "{}",
        common::all_output(&out)
    );

    // The workspace had no repository: one was made for the run, and the agent uses it — from
    // `git init` on, as an agent would.
    let (code, text) = exec(name, "git init && git init -q .");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("Reinitialized existing Git repository in /workspace/.git/"),
        "{text}"
    );
    let (code, text) = exec(
        name,
        "git add README && git -c user.name=agent -c user.email=a@example.invalid commit -qm first && git branch side && git checkout -q side && echo OK",
    );
    assert_eq!(code, 0, "{text}");
    // ...but cannot plant anything the host's git would run.
    for (attack, script) in [
        (
            "hook",
            "printf '#!/bin/sh\\ntouch /workspace/PWNED-hook\\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit",
        ),
        (
            "fsmonitor",
            "git config core.fsmonitor 'touch /workspace/PWNED-fsmonitor; false'",
        ),
        (
            "hooksPath",
            "git config core.hooksPath /workspace/evil-hooks",
        ),
        (
            "filter",
            "git config filter.evil.clean 'touch /workspace/PWNED-filter; cat'",
        ),
        (
            "replace-config",
            "cp .git/config /tmp/c && echo '[core]\\n\\tfsmonitor = touch /workspace/PWNED-x' >> /tmp/c && mv /tmp/c .git/config",
        ),
        (
            "move-.git",
            "mv .git .git-old && git init -q . && git config core.fsmonitor 'touch /workspace/PWNED-moved'",
        ),
        ("remove-hooks", "rm -rf .git/hooks && mkdir .git/hooks"),
    ] {
        let (code, text) = exec(name, script);
        assert_ne!(code, 0, "{attack} succeeded inside the sandbox: {text}");
    }
    std::fs::write(ws.join(".gitattributes"), "* filter=evil\n").unwrap();
    // On the host, the person (uid 1000, the workspace's owner) runs git: nothing the agent
    // wrote runs.
    for args in [
        vec!["status"],
        vec!["add", "-A"],
        vec![
            "-c",
            "user.name=me",
            "-c",
            "user.email=me@example.invalid",
            "commit",
            "-qm",
            "host",
        ],
    ] {
        let out = Command::new("setpriv")
            .args([
                "--reuid=1000",
                "--regid=1000",
                "--clear-groups",
                "--",
                "git",
                "-C",
            ])
            .arg(&ws)
            .args(&args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", "/nonexistent")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            common::all_output(&out)
        );
    }
    let planted: Vec<_> = std::fs::read_dir(&ws)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("PWNED"))
        .map(|e| e.file_name())
        .collect();
    assert!(
        planted.is_empty(),
        "the host ran what the agent planted: {planted:?}"
    );

    let out = env.openwork(&["stop", "sbx-iso"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::all_output(&out));
    assert!(!common::container_exists(name));
}

#[test]
fn strict_refuses_uid_0_and_names_the_fix() {
    if !nix::unistd::getuid().is_root() {
        eprintln!("skipped: needs a root host");
        return;
    }
    let _serial = serial();
    let env = TestEnv::new();
    // A root host and a root-owned workspace: the agent would be root in the container.
    let name = "openwork-sbx-strict";
    let _guard = ContainerGuard(name.into());
    let out = sandbox(&env, "sbx-strict", &["--sandbox-strict"])
        .output()
        .unwrap();
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("--sandbox-strict: refusing to run"), "{text}");
    assert!(text.contains("user degraded"), "{text}");
    assert!(text.contains("--sandbox-user UID:GID"), "{text}");
    assert!(
        !common::container_exists(name),
        "the refused sandbox was left running"
    );
    // The repository made for the run was unused, so it is gone again.
    assert!(!env.workspace().join(".git").exists());
}

#[test]
fn a_bad_sandbox_user_is_a_usage_error() {
    let env = TestEnv::new();
    let out = sandbox(&env, "sbx-baduser", &["--sandbox-user", "root"])
        .output()
        .unwrap();
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("--sandbox-user root"), "{text}");
    assert!(text.contains("UID:GID"), "{text}");
}
