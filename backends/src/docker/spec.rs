//! Pure builder of the Docker containers and networks: [`create_body`] turns a [`ContainerPlan`]
//! (the agent's, or the planned gate's) into the engine's create request, [`network_body`] does
//! the same for a [`NetworkPlan`], and [`hardening_checks`] lists what must be true when the
//! created container is inspected. Nothing here talks to the engine, so all are unit-tested.
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
//! | NetworkMode | engine default; a gated run: the run's internal network | no other network than planned |
//! | Networks | the agent: only `<name>-internal` (`internal: true`); the gate: internal + egress | the agent has no route out but the gate |

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountType, NetworkCreateRequest,
    NetworkingConfig, PortBinding,
};

use crate::plan::{ContainerPlan, NetworkPlan};

fn bind(source: &str, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.to_string()),
        source: Some(source.to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    }
}

/// The mounts of a container, in order.
pub fn mounts(plan: &ContainerPlan) -> Vec<Mount> {
    plan.mounts
        .iter()
        .map(|m| bind(m.source.as_str(), &m.target, m.read_only))
        .collect()
}

fn port_key(port: u16) -> String {
    format!("{port}/tcp")
}

/// The create request for `plan`. A container joins its first network at create (engines older
/// than API 1.44 take one endpoint there); [`later_networks`] are connected before it starts.
pub fn create_body(plan: &ContainerPlan) -> ContainerCreateBody {
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &plan.ports {
        port_bindings
            .entry(port_key(p.container_port))
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: Some(p.host_port.to_string()),
            });
    }
    let first_network = plan.networks.first();
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
        network_mode: first_network.map(|n| n.network.clone()),
        ..Default::default()
    };
    let networking_config = first_network.map(|n| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            n.network.clone(),
            EndpointSettings {
                aliases: Some(n.aliases.clone()),
                ..Default::default()
            },
        )])),
    });
    ContainerCreateBody {
        image: Some(plan.image.clone()),
        user: Some(plan.user.clone()),
        cmd: Some(plan.command.clone()),
        // The image's entrypoint must not wrap our init.
        entrypoint: Some(vec![]),
        env: Some(plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: Some(plan.workdir.clone()),
        exposed_ports: Some(
            plan.ports
                .iter()
                .map(|p| port_key(p.container_port))
                .collect(),
        ),
        labels: Some(plan.labels.clone().into_iter().collect()),
        stop_signal: Some("SIGTERM".to_string()),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

/// Networks `plan` joins after create (all but the first), with their endpoint settings.
pub fn later_networks(plan: &ContainerPlan) -> Vec<(String, EndpointSettings)> {
    plan.networks
        .iter()
        .skip(1)
        .map(|n| {
            (
                n.network.clone(),
                EndpointSettings {
                    aliases: Some(n.aliases.clone()),
                    ..Default::default()
                },
            )
        })
        .collect()
}

/// The create request of a network (labelled like the containers, so the same sweep finds it).
pub fn network_body(plan: &NetworkPlan) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: plan.name.clone(),
        driver: Some("bridge".to_string()),
        internal: Some(plan.internal),
        attachable: Some(false),
        labels: Some(plan.labels.clone().into_iter().collect()),
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
pub fn hardening_checks(plan: &ContainerPlan) -> Vec<Check> {
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
        c("HostConfig.PortBindings", {
            // Sorted: the engine keeps bindings in a map, in no particular order.
            let mut bound: Vec<String> = plan
                .ports
                .iter()
                .map(|p| format!("{}:{}", p.host_ip, p.host_port))
                .collect();
            bound.sort_unstable();
            bound.join(",")
        }),
        c("HostConfig.Mounts", format!("{} binds", mounts(plan).len())),
        c(
            "HostConfig.Mounts.read_only",
            read_only_targets(plan).join(","),
        ),
        c(
            "HostConfig.NetworkMode",
            plan.networks
                .first()
                .map(|n| n.network.clone())
                .unwrap_or_else(|| "default".into()),
        ),
        c("NetworkSettings.Networks", planned_networks(plan)),
    ]
}

/// The networks `plan` must be attached to, sorted and comma-joined (`default`: the engine's).
pub fn planned_networks(plan: &ContainerPlan) -> String {
    let mut names: Vec<&str> = plan.networks.iter().map(|n| n.network.as_str()).collect();
    if names.is_empty() {
        return "default".into();
    }
    names.sort_unstable();
    names.join(",")
}

/// Targets that must be mounted read-only.
pub fn read_only_targets(plan: &ContainerPlan) -> Vec<String> {
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
        "HostConfig.PortBindings" => {
            let mut bound: Vec<String> = hc
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
                .collect();
            bound.sort_unstable();
            bound.join(",")
        }
        // The engine reports `default` (API 1.41) or `bridge` for its default network.
        "HostConfig.NetworkMode" => match hc.network_mode.as_deref() {
            None | Some("") | Some("default") | Some("bridge") => "default".into(),
            Some(other) => other.to_string(),
        },
        "NetworkSettings.Networks" => {
            let mut names: Vec<String> = inspect
                .network_settings
                .as_ref()
                .and_then(|n| n.networks.as_ref())
                .map(|n| n.keys().cloned().collect())
                .unwrap_or_default();
            names.sort_unstable();
            match names.as_slice() {
                [] => "default".into(),
                [only] if only == "bridge" => "default".into(),
                _ => names.join(","),
            }
        }
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
    use crate::build::fixtures;
    use crate::plan::layout::{OPENCODE_DIR, OPENWORK_EXE};

    fn agent() -> ContainerPlan {
        fixtures::docker_plan().agent
    }

    #[test]
    fn body_is_hardened() {
        let b = create_body(&agent());
        let hc = b.host_config.clone().unwrap();
        assert_eq!(b.user.as_deref(), Some("1000:1000"));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.pids_limit, Some(512));
        assert_eq!(hc.network_mode, None);
        assert!(b.networking_config.is_none());
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
        let s = fixtures::staged(crate::build::OpenworkMount::File("/ow".into()));
        let gated = crate::build::gated_plan(&fixtures::spec(), &s, &fixtures::gate());
        for p in [agent(), gated.agent, gated.gate.unwrap()] {
            let b = create_body(&p);
            // The engine lists every network the container was attached to (create + connect).
            let networks = p
                .networks
                .iter()
                .map(|n| (n.network.clone(), Default::default()))
                .collect();
            let inspect = bollard::models::ContainerInspectResponse {
                network_settings: Some(bollard::models::NetworkSettings {
                    networks: Some(networks),
                    ..Default::default()
                }),
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
                    "{} of {}",
                    check.setting,
                    p.name
                );
            }
        }
        assert_eq!(
            read_only_targets(&agent()),
            [OPENCODE_DIR, OPENWORK_EXE, "/workspace/extra/sets"]
        );
    }

    #[test]
    fn the_gate_joins_its_networks_and_they_are_labelled() {
        let s = fixtures::staged(crate::build::OpenworkMount::File("/ow".into()));
        let p = crate::build::gated_plan(&fixtures::spec(), &s, &fixtures::gate());
        let gate = p.gate.clone().unwrap();
        let b = create_body(&gate);
        let hc = b.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("openwork-r1-internal"));
        let eps = b.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(
            eps["openwork-r1-internal"].aliases,
            Some(vec!["gate".to_string()])
        );
        let later: Vec<String> = later_networks(&gate).into_iter().map(|n| n.0).collect();
        assert_eq!(later, ["openwork-r1-egress"]);
        assert!(hc.port_bindings.unwrap().contains_key("8080/tcp"));
        // The agent publishes nothing when gated.
        let a = create_body(&p.agent).host_config.unwrap();
        assert!(a.port_bindings.unwrap().is_empty());
        let n = network_body(&p.networks[0]);
        assert_eq!(n.internal, Some(true));
        assert_eq!(n.labels.unwrap()["org.openwork.managed"], "true");
    }
}
