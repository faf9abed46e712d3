//! Pure builders of the `container` command lines, and the parser of `container list --format
//! json`. Nothing here runs a process, so every argv is pinned by unit tests.
//!
//! Subcommands and flags are those of Apple's command reference
//! (`apple/container`, `docs/command-reference.md`, present in releases 1.0.0 through 1.2.2):
//! `run` (`--name --detach --rm --publish --user --cpus --memory --read-only --cap-drop --tmpfs
//! --ulimit --mount --label --env --workdir --entrypoint`), `stop --time`, `delete --force`,
//! `logs --follow`, `inspect`, `list --all --format json`, `image inspect`. The CLI has no `wait`
//! subcommand.
//!
//! Hardening compared with Docker: the VM around each container is the isolation boundary. Apple's
//! CLI offers no `no-new-privileges` and no pids cgroup limit; the process cap is an `nproc`
//! ulimit, which in a VM that runs only the agent's uid counts the container's processes.

use crate::plan::ContainerPlan;

/// `container run …` (without the program name) for the container `plan`. Its mounts must all be
/// directories (see [`crate::prepare`], which stages the `openwork` executable in one).
///
/// Without `detach` the run is attached (`--rm`, output on the CLI's pipes, exit status of the
/// container = exit status of the CLI); detached runs use `--detach` and keep the container.
pub fn run_args(plan: &ContainerPlan, detach: bool) -> Vec<String> {
    let mut a: Vec<String> = vec!["run".into(), "--name".into(), plan.name.clone()];
    if detach {
        a.push("--detach".into());
    } else {
        a.push("--rm".into());
    }
    let flag = |a: &mut Vec<String>, k: &str, v: String| {
        a.push(k.into());
        a.push(v);
    };
    for p in &plan.ports {
        flag(
            &mut a,
            "--publish",
            format!("{}:{}:{}", p.host_ip, p.host_port, p.container_port),
        );
    }
    flag(&mut a, "--user", plan.user.clone());
    // Apple's --cpus takes whole CPUs.
    let cpus = (plan.limits.nano_cpus + 999_999_999) / 1_000_000_000;
    flag(&mut a, "--cpus", cpus.max(1).to_string());
    flag(
        &mut a,
        "--memory",
        format!("{}M", (plan.limits.memory_bytes / (1024 * 1024)).max(1)),
    );
    a.push("--read-only".into());
    flag(&mut a, "--cap-drop", "ALL".into());
    flag(&mut a, "--tmpfs", "/tmp".into());
    flag(&mut a, "--ulimit", format!("nproc={}", plan.limits.pids));
    for m in mounts(plan) {
        flag(&mut a, "--mount", m.to_arg());
    }
    for (k, v) in &plan.labels {
        flag(&mut a, "--label", format!("{k}={v}"));
    }
    for (k, v) in &plan.env {
        flag(&mut a, "--env", format!("{k}={v}"));
    }
    flag(&mut a, "--workdir", plan.workdir.clone());
    flag(
        &mut a,
        "--entrypoint",
        plan.command.first().cloned().unwrap_or_default(),
    );
    a.push(plan.image.clone());
    a.extend(plan.command.iter().skip(1).cloned());
    a
}

/// One bind mount of the plan (every source must be a directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

impl BindMount {
    /// `type=bind,source=…,target=…[,readonly]`
    pub fn to_arg(&self) -> String {
        let mut m = format!("type=bind,source={},target={}", self.source, self.target);
        if self.read_only {
            m.push_str(",readonly");
        }
        m
    }
}

/// The mounts of `plan`, in order.
pub fn mounts(plan: &ContainerPlan) -> Vec<BindMount> {
    plan.mounts
        .iter()
        .map(|m| BindMount {
            source: m.source.to_string(),
            target: m.target.clone(),
            read_only: m.read_only,
        })
        .collect()
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// `container stop --time <secs> <name>`: SIGTERM, SIGKILL after `secs`.
pub fn stop_args(name: &str, secs: u64) -> Vec<String> {
    args(&["stop", "--time", &secs.max(1).to_string(), name])
}

/// `container delete --force <name>`: removes the container, stopping it if it runs.
pub fn delete_args(name: &str) -> Vec<String> {
    args(&["delete", "--force", name])
}

/// `container logs --follow <name>` (detached runs only).
pub fn logs_args(name: &str) -> Vec<String> {
    args(&["logs", "--follow", name])
}

/// `container inspect <name>`: a JSON array with the container, or an error if it is gone.
pub fn inspect_args(name: &str) -> Vec<String> {
    args(&["inspect", name])
}

/// `container list --all --format json`.
pub fn list_args() -> Vec<String> {
    args(&["list", "--all", "--format", "json"])
}

/// `container image inspect <image>`: fails when the image is not stored locally.
pub fn image_inspect_args(image: &str) -> Vec<String> {
    args(&["image", "inspect", image])
}

/// One container as `list`/`inspect` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    /// `running`, `stopped`, `stopping` or `unknown`.
    pub state: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Parses the JSON of `list --format json` or `inspect`: an array of containers whose id and
/// labels are under `configuration`, and whose state is `status` (a string in older releases)
/// or `status.state` (1.2 and later).
pub fn parse_list(json: &str) -> Result<Vec<Listed>, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(json)?;
    let items = value.as_array().cloned().unwrap_or_default();
    Ok(items
        .iter()
        .filter_map(|item| {
            let conf = item.get("configuration")?;
            let id = conf
                .get("id")
                .or_else(|| item.get("id"))?
                .as_str()?
                .to_string();
            let status = item.get("status");
            let state = status
                .and_then(|s| s.as_str().or_else(|| s.get("state")?.as_str()))
                .unwrap_or("unknown")
                .to_string();
            let labels = conf
                .get("labels")
                .and_then(|l| l.as_object())
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            Some(Listed { id, state, labels })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{OpenworkMount, Staged, agent_container};
    use crate::plan::{ExtraMount, Owner};

    fn plan(detach: bool) -> ContainerPlan {
        let mut spec = crate::build::fixtures::spec();
        spec.run_id = "r".into();
        spec.workspace = "/Users/me/ws".into();
        spec.persist_dir = "/Users/me/.openwork/sandbox/ws_1".into();
        spec.extra_mounts = vec![ExtraMount {
            host: "/data/sets".into(),
            container: "/workspace/extra/sets".into(),
            read_only: true,
        }];
        spec.user = "501:20".into();
        spec.host_port = 40000;
        spec.opencode_args = vec![];
        spec.agent_env = vec![("OPENCODE_CLIENT".into(), "o".into())];
        spec.owner = Owner {
            pid: 7,
            boot_id: "b".into(),
        };
        spec.detach = detach;
        spec.image = "img:1".into();
        let staged = Staged {
            opencode_dir: "/c/opencode".into(),
            opencode_file: "opencode".into(),
            openwork: OpenworkMount::Dir("/c/ws_1.openwork-bin".into()),
            git_guard: None,
            tools_dir: None,
        };
        let mut c = agent_container(&spec, &staged);
        c.env.retain(|(k, _)| k == "HOME" || k == "OPENCODE_CLIENT");
        c
    }

    #[test]
    fn attached_run_args_are_pinned() {
        let a = run_args(&plan(false), false);
        let expected = "run --name openwork-r --rm \
            --publish 127.0.0.1:40000:4096 --user 501:20 --cpus 2 --memory 4096M \
            --read-only --cap-drop ALL --tmpfs /tmp --ulimit nproc=512 \
            --mount type=bind,source=/Users/me/ws,target=/workspace \
            --mount type=bind,source=/Users/me/.openwork/sandbox/ws_1,target=/persist \
            --mount type=bind,source=/c/opencode,target=/opt/opencode,readonly \
            --mount type=bind,source=/c/ws_1.openwork-bin,target=/opt/openwork,readonly \
            --mount type=bind,source=/data/sets,target=/workspace/extra/sets,readonly \
            --label org.openwork.detached=false \
            --label org.openwork.managed=true \
            --label org.openwork.owner-boot-id=b \
            --label org.openwork.owner-pid=7 \
            --label org.openwork.role=agent \
            --label org.openwork.run-id=r \
            --label org.openwork.workspace-id=ws_1 \
            --env HOME=/persist --env OPENCODE_CLIENT=o --workdir /workspace \
            --entrypoint /opt/openwork/openwork img:1 __init -- \
            /opt/opencode/opencode serve --hostname 0.0.0.0 --port 4096";
        assert_eq!(a.join(" "), expected);
    }

    #[test]
    fn detached_run_keeps_the_container_and_rounds_cpus_up() {
        let mut p = plan(true);
        p.limits.nano_cpus = 1_500_000_000;
        let a = run_args(&p, true).join(" ");
        assert!(
            a.starts_with("run --name openwork-r --detach --publish"),
            "{a}"
        );
        assert!(!a.contains("--rm"), "{a}");
        assert!(a.contains("--cpus 2 "), "{a}");
    }

    #[test]
    fn other_argv_are_pinned() {
        assert_eq!(stop_args("n", 10), ["stop", "--time", "10", "n"]);
        assert_eq!(stop_args("n", 0), ["stop", "--time", "1", "n"]);
        assert_eq!(delete_args("n"), ["delete", "--force", "n"]);
        assert_eq!(logs_args("n"), ["logs", "--follow", "n"]);
        assert_eq!(inspect_args("n"), ["inspect", "n"]);
        assert_eq!(list_args(), ["list", "--all", "--format", "json"]);
        assert_eq!(image_inspect_args("i:1"), ["image", "inspect", "i:1"]);
    }

    #[test]
    fn list_json_of_old_and_new_releases_parses() {
        let new = r#"[{"id":"a","configuration":{"id":"a","labels":{"org.openwork.managed":"true"}},"status":{"state":"running","networks":[]}}]"#;
        let old = r#"[{"configuration":{"id":"b","labels":{}},"status":"stopped","networks":[]}]"#;
        let a = parse_list(new).unwrap();
        assert_eq!(a[0].id, "a");
        assert_eq!(a[0].state, "running");
        assert_eq!(a[0].labels["org.openwork.managed"], "true");
        let b = parse_list(old).unwrap();
        assert_eq!((b[0].id.as_str(), b[0].state.as_str()), ("b", "stopped"));
        assert!(parse_list("not json").is_err());
    }
}
