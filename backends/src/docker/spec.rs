//! Pure builder of the Docker container: [`create_body`] turns a [`SandboxPlan`] into the
//! engine's create request, and [`hardening_checks`] lists what must be true when the created
//! container is inspected. Nothing here talks to the engine, so both are unit-tested.
//!
//! The contract (also in `backends/README.md`, checked against `inspect` by the e2e tests):
//!
//! | setting | value | why |
//! | --- | --- | --- |
//! | User | host `uid:gid` | files the agent creates keep the user's ownership; not root |
//! | CapDrop | `ALL` | no capability is needed to run opencode |
//! | SecurityOpt | `no-new-privileges` | setuid binaries in the image cannot raise privileges |
//! | ReadonlyRootfs | `true` | the agent cannot modify the image; state lives in /persist |
//! | Tmpfs | `/tmp` size-capped, `nosuid,nodev` | scratch space without filling the host |
//! | PidsLimit | 512 (flag) | fork bombs stay inside |
//! | Memory / NanoCpus | 4 GiB / 2 CPUs (flags) | a runaway agent cannot starve the host |
//! | PortBindings | `127.0.0.1:<port>` → 4096 only | opencode is never exposed on other interfaces |
//! | Mounts | workspace rw, persist rw, sidecars ro, extras as validated | nothing else enters; never the engine socket |
//! | Init | our `__init` as PID 1 | zombies are reaped, stop signals reach opencode |
//! | Labels | run id, workspace id, owner pid + boot id | orphans of a killed run are found and removed |
//! | Privileged | `false` | |

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, PortBinding};

use crate::plan::{CONTAINER_OPENCODE_PORT, SandboxPlan};

/// Where the read-only sidecar layout is mounted.
pub const OPENCODE_DIR: &str = "/opt/opencode";
pub const OPENWORK_EXE: &str = "/opt/openwork/openwork";

fn bind(source: &str, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.to_string()),
        source: Some(source.to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    }
}

/// The mounts of a plan, in order.
pub fn mounts(plan: &SandboxPlan) -> Vec<Mount> {
    let mut m = vec![
        bind(plan.workspace.as_str(), "/workspace", false),
        bind(plan.persist_dir.as_str(), "/persist", false),
        bind(plan.opencode_dir.as_str(), OPENCODE_DIR, true),
        bind(plan.openwork_exe.as_str(), OPENWORK_EXE, true),
    ];
    for extra in &plan.extra_mounts {
        m.push(bind(extra.host.as_str(), &extra.container, extra.read_only));
    }
    m
}

fn port_key() -> String {
    format!("{CONTAINER_OPENCODE_PORT}/tcp")
}

/// The create request for `plan`.
pub fn create_body(plan: &SandboxPlan) -> ContainerCreateBody {
    let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::from([(
        port_key(),
        Some(vec![PortBinding {
            host_ip: Some("127.0.0.1".to_string()),
            host_port: Some(plan.host_port.to_string()),
        }]),
    )]);
    let host_config = HostConfig {
        mounts: Some(mounts(plan)),
        port_bindings: Some(port_bindings),
        cap_drop: Some(vec!["ALL".to_string()]),
        security_opt: Some(vec!["no-new-privileges".to_string()]),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([(
            "/tmp".to_string(),
            format!("rw,nosuid,nodev,size={}", plan.limits.tmp_bytes),
        )])),
        pids_limit: Some(plan.limits.pids),
        memory: Some(plan.limits.memory_bytes),
        nano_cpus: Some(plan.limits.nano_cpus),
        privileged: Some(false),
        auto_remove: Some(false),
        init: Some(false),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(plan.image.clone()),
        user: Some(plan.user.clone()),
        cmd: Some(plan.command.clone()),
        // The image's entrypoint must not wrap our init.
        entrypoint: Some(vec![]),
        env: Some(plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: Some("/workspace".to_string()),
        exposed_ports: Some(vec![port_key()]),
        labels: Some(plan.labels.clone().into_iter().collect()),
        stop_signal: Some("SIGTERM".to_string()),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// One hardening setting and the value it must have after `create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub setting: &'static str,
    pub wanted: String,
}

/// What `inspect` must show for `plan` (the contract above, as data).
pub fn hardening_checks(plan: &SandboxPlan) -> Vec<Check> {
    let c = |setting, wanted: String| Check { setting, wanted };
    vec![
        c("Config.User", plan.user.clone()),
        c("HostConfig.CapDrop", "ALL".into()),
        c("HostConfig.SecurityOpt", "no-new-privileges".into()),
        c("HostConfig.ReadonlyRootfs", "true".into()),
        c("HostConfig.Privileged", "false".into()),
        c("HostConfig.PidsLimit", plan.limits.pids.to_string()),
        c("HostConfig.Memory", plan.limits.memory_bytes.to_string()),
        c("HostConfig.NanoCpus", plan.limits.nano_cpus.to_string()),
        c("HostConfig.Tmpfs./tmp", "present".into()),
        c(
            "HostConfig.PortBindings",
            format!("127.0.0.1:{}", plan.host_port),
        ),
        c("HostConfig.Mounts", format!("{} binds", mounts(plan).len())),
        c(
            "HostConfig.Mounts.read_only",
            read_only_targets(plan).join(","),
        ),
    ]
}

/// Targets that must be mounted read-only.
pub fn read_only_targets(plan: &SandboxPlan) -> Vec<String> {
    mounts(plan)
        .into_iter()
        .filter(|m| m.read_only == Some(true))
        .filter_map(|m| m.target)
        .collect()
}

/// The value `inspect` shows for `setting` (same names as [`hardening_checks`]).
pub fn observed(inspect: &bollard::models::ContainerInspectResponse, setting: &str) -> String {
    let hc = inspect.host_config.clone().unwrap_or_default();
    match setting {
        "Config.User" => inspect
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default(),
        "HostConfig.CapDrop" => hc.cap_drop.unwrap_or_default().join(","),
        "HostConfig.SecurityOpt" => hc.security_opt.unwrap_or_default().join(","),
        "HostConfig.ReadonlyRootfs" => hc.readonly_rootfs.unwrap_or(false).to_string(),
        "HostConfig.Privileged" => hc.privileged.unwrap_or(false).to_string(),
        "HostConfig.PidsLimit" => hc.pids_limit.unwrap_or(0).to_string(),
        "HostConfig.Memory" => hc.memory.unwrap_or(0).to_string(),
        "HostConfig.NanoCpus" => hc.nano_cpus.unwrap_or(0).to_string(),
        "HostConfig.Tmpfs./tmp" => {
            if hc.tmpfs.unwrap_or_default().contains_key("/tmp") {
                "present".into()
            } else {
                "absent".into()
            }
        }
        "HostConfig.PortBindings" => hc
            .port_bindings
            .unwrap_or_default()
            .values()
            .flatten()
            .flatten()
            .map(|b| {
                format!(
                    "{}:{}",
                    b.host_ip.clone().unwrap_or_default(),
                    b.host_port.clone().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(","),
        "HostConfig.Mounts" => format!("{} binds", hc.mounts.clone().unwrap_or_default().len()),
        "HostConfig.Mounts.read_only" => hc
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.read_only == Some(true))
            .filter_map(|m| m.target)
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ExtraMount, Limits, labels};

    pub(crate) fn plan() -> SandboxPlan {
        SandboxPlan {
            run_id: "r1".into(),
            workspace_id: "ws_1".into(),
            name: "openwork-r1".into(),
            image: "openwork-sandbox:test".into(),
            workspace: "/home/me/ws".into(),
            persist_dir: "/home/me/.openwork/sandbox/ws_1".into(),
            opencode_dir: "/home/me/.openwork/sidecars/opencode/1.18.34/linux-x64".into(),
            openwork_exe: "/usr/local/bin/openwork".into(),
            extra_mounts: vec![ExtraMount {
                host: "/data/sets".into(),
                container: "/workspace/extra/sets".into(),
                read_only: true,
            }],
            user: "1000:1000".into(),
            limits: Limits::default(),
            host_port: 41000,
            env: vec![("HOME".into(), "/persist".into())],
            command: vec![OPENWORK_EXE.into(), "__init".into()],
            labels: labels("r1", "ws_1", 42, "boot", false),
            detach: false,
        }
    }

    #[test]
    fn body_is_hardened() {
        let b = create_body(&plan());
        let hc = b.host_config.clone().unwrap();
        assert_eq!(b.user.as_deref(), Some("1000:1000"));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.pids_limit, Some(512));
        let binding = &hc.port_bindings.unwrap()["4096/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some("41000"));
        let targets: Vec<String> = hc
            .mounts
            .unwrap()
            .into_iter()
            .filter_map(|m| m.target)
            .collect();
        assert_eq!(
            targets,
            [
                "/workspace",
                "/persist",
                OPENCODE_DIR,
                OPENWORK_EXE,
                "/workspace/extra/sets"
            ]
        );
        assert!(
            !b.env
                .unwrap()
                .iter()
                .any(|e| e.starts_with("OPENWORK_TOKEN") || e.starts_with("OPENWORK_HOST_TOKEN"))
        );
        assert_eq!(b.labels.unwrap()["org.openwork.run-id"], "r1");
    }

    #[test]
    fn checks_match_what_the_body_asks_for() {
        // Feed the body back as if the engine applied everything: every check passes.
        let p = plan();
        let b = create_body(&p);
        let inspect = bollard::models::ContainerInspectResponse {
            host_config: b.host_config.clone(),
            config: Some(bollard::models::ContainerConfig {
                user: b.user.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        for check in hardening_checks(&p) {
            assert_eq!(
                observed(&inspect, check.setting),
                check.wanted,
                "{}",
                check.setting
            );
        }
        assert_eq!(
            read_only_targets(&p),
            [OPENCODE_DIR, OPENWORK_EXE, "/workspace/extra/sets"]
        );
    }
}
