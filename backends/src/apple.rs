//! Apple's `container` CLI backend (macOS on Apple silicon): the same [`SandboxPlan`] as Docker,
//! carried out with `container run` / `container stop` subprocesses.
//!
//! The argv is built by a pure function ([`run_args`]) and pinned by unit tests. Apple
//! `container` runs one VM per container and bind-mounts directories only, so every mount of the
//! plan must be a directory: the openwork executable is mounted through its directory.
//!
//! Not yet carried out end to end in this build: the subprocess handling lands with the Linux
//! test stand-in for the `container` CLI (see the sandbox issue).

use crate::plan::{CONTAINER_OPENCODE_PORT, SandboxPlan};

/// `container run …` arguments (without the program name) for `plan`.
pub fn run_args(plan: &SandboxPlan) -> Vec<String> {
    let mut a: Vec<String> = vec!["run".into(), "--name".into(), plan.name.clone()];
    if plan.detach {
        a.push("--detach".into());
    } else {
        a.push("--rm".into());
    }
    a.push("--publish".into());
    a.push(format!(
        "127.0.0.1:{}:{CONTAINER_OPENCODE_PORT}",
        plan.host_port
    ));
    a.push("--user".into());
    a.push(plan.user.clone());
    a.push("--cpus".into());
    a.push(format!(
        "{}",
        (plan.limits.nano_cpus / 1_000_000_000).max(1)
    ));
    a.push("--memory".into());
    a.push(format!("{}M", plan.limits.memory_bytes / (1024 * 1024)));
    a.push("--read-only".into());
    let mut mount = |src: &str, dst: &str, ro: bool| {
        a.push("--mount".into());
        let mut m = format!("type=bind,source={src},target={dst}");
        if ro {
            m.push_str(",readonly");
        }
        a.push(m);
    };
    mount(plan.workspace.as_str(), "/workspace", false);
    mount(plan.persist_dir.as_str(), "/persist", false);
    mount(
        plan.opencode_dir.as_str(),
        crate::docker::spec::OPENCODE_DIR,
        true,
    );
    if let Some(dir) = plan.openwork_exe.parent() {
        mount(dir.as_str(), "/opt/openwork", true);
    }
    for extra in &plan.extra_mounts {
        mount(extra.host.as_str(), &extra.container, extra.read_only);
    }
    for (k, v) in &plan.labels {
        a.push("--label".into());
        a.push(format!("{k}={v}"));
    }
    for (k, v) in &plan.env {
        a.push("--env".into());
        a.push(format!("{k}={v}"));
    }
    a.push("--workdir".into());
    a.push("/workspace".into());
    a.push("--entrypoint".into());
    a.push(plan.command.first().cloned().unwrap_or_default());
    a.push(plan.image.clone());
    a.extend(plan.command.iter().skip(1).cloned());
    a
}

/// `container stop …` arguments for `plan`.
pub fn stop_args(plan: &SandboxPlan) -> Vec<String> {
    vec!["stop".into(), plan.name.clone()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Limits, labels};

    #[test]
    fn run_args_are_pinned() {
        let plan = SandboxPlan {
            run_id: "r".into(),
            workspace_id: "ws_1".into(),
            name: "openwork-r".into(),
            image: "img:1".into(),
            workspace: "/Users/me/ws".into(),
            persist_dir: "/Users/me/.openwork/sandbox/ws_1".into(),
            opencode_dir: "/c/opencode".into(),
            openwork_exe: "/c/openwork/openwork".into(),
            extra_mounts: vec![],
            user: "501:20".into(),
            limits: Limits::default(),
            host_port: 40000,
            env: vec![("HOME".into(), "/persist".into())],
            command: vec![
                "/opt/openwork/openwork".into(),
                "__init".into(),
                "--".into(),
                "x".into(),
            ],
            labels: labels("r", "ws_1", 7, "b", false),
            detach: false,
        };
        let a = run_args(&plan).join(" ");
        assert!(a.starts_with("run --name openwork-r --rm --publish 127.0.0.1:40000:4096 --user 501:20 --cpus 2 --memory 4096M --read-only"), "{a}");
        assert!(
            a.contains("--mount type=bind,source=/c/openwork,target=/opt/openwork,readonly"),
            "{a}"
        );
        assert!(a.contains("--env HOME=/persist"), "{a}");
        assert!(
            a.ends_with("--entrypoint /opt/openwork/openwork img:1 __init -- x"),
            "{a}"
        );
        assert_eq!(stop_args(&plan), ["stop", "openwork-r"]);
    }
}
