//! Pure builders of a [`SandboxPlan`]: from the run's [`SandboxSpec`] and what
//! [`crate::prepare`] staged on the host, the containers (agent, and the planned egress gate) and
//! networks a backend creates. Nothing here touches the host or an engine, so every container is
//! pinned by unit tests; the Docker create body ([`crate::docker::spec`]) and the Apple `container`
//! argv ([`crate::apple::argv`]) are in turn built from these plans.
//!
//! Threat addressed: a container that gets more than its role needs. The agent sees only the
//! workspace, its persist dir, the read-only binaries and validated extra mounts, and publishes
//! one port on 127.0.0.1; the gate sees only the read-only `openwork` executable and carries none
//! of the agent's environment. Both are built with the same user, limits and labels, so hardening
//! and orphan handling cannot differ between them by accident.
//!
//! Left open: a spec without a gate ([`sandbox_plan`]) leaves the agent on the engine's default
//! network with unrestricted outbound access (`--sandbox-network open`, Apple `container`).

use camino::Utf8PathBuf;

use crate::plan::{
    Bind, ContainerPlan, NetworkAttachment, NetworkPlan, PublishedPort, Role, SandboxPlan,
    SandboxSpec, container_name, label, labels, layout, suffixed_name,
};

/// How the `openwork` executable reaches a container (read-only either way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenworkMount {
    /// The file itself at `/opt/openwork/openwork` (engines that bind-mount files: Docker).
    File(Utf8PathBuf),
    /// A host directory holding only the executable, at `/opt/openwork` (Apple container).
    Dir(Utf8PathBuf),
}

/// The host paths [`crate::prepare`] made ready to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// A directory holding nothing of the host but the opencode binary (→ `/opt/opencode`).
    pub opencode_dir: Utf8PathBuf,
    /// The binary's file name in that directory.
    pub opencode_file: String,
    pub openwork: OpenworkMount,
    /// The workspace's git guard: read-only mounts over `/workspace/.git/…`.
    pub git_guard: Option<crate::git_guard::GitGuard>,
    /// The tools directory (the `git` shim), first on the agent's PATH when present.
    pub tools_dir: Option<Utf8PathBuf>,
}

/// The egress gate of a run: `openwork gate <args>` on the agent's internal network
/// and an outbound one, publishing the run's host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateSpec {
    /// Arguments after `openwork gate`.
    pub args: Vec<String>,
    /// The gate's own environment (e.g. provider keys it injects); never the agent's.
    pub env: Vec<(String, String)>,
    /// Port the gate listens on inside its container (published on 127.0.0.1:`host_port`).
    pub listen_port: u16,
    /// The gate's control API port inside its container, published on
    /// 127.0.0.1:`control_host_port` (the host drives the gate through it).
    pub control_port: u16,
    pub control_host_port: u16,
    pub limits: crate::plan::Limits,
}

/// Network alias of the agent on the internal network.
pub const AGENT_ALIAS: &str = "opencode";
/// Network alias of the gate on the internal network.
pub const GATE_ALIAS: &str = "gate";

/// HOME, XDG dirs and temp dirs of the agent, all under `/persist`.
pub fn layout_env() -> Vec<(String, String)> {
    let p = layout::PERSIST;
    vec![
        ("HOME".into(), p.into()),
        ("XDG_CONFIG_HOME".into(), format!("{p}/.config")),
        ("XDG_DATA_HOME".into(), format!("{p}/.local/share")),
        ("XDG_CACHE_HOME".into(), format!("{p}/.cache")),
        ("XDG_STATE_HOME".into(), format!("{p}/.local/state")),
        // opencode (Bun) unpacks a shared library into its temp dir and loads it: keep that
        // off the noexec-able /tmp tmpfs.
        ("TMPDIR".into(), format!("{p}/.tmp")),
        ("BUN_TMPDIR".into(), format!("{p}/.tmp")),
    ]
}

/// Our init as PID 1, then `opencode serve` on all interfaces of the container.
pub fn agent_command(spec: &SandboxSpec, staged: &Staged) -> Vec<String> {
    let mut command = vec![
        layout::OPENWORK_EXE.to_string(),
        "__init".into(),
        "--".into(),
        format!("{}/{}", layout::OPENCODE_DIR, staged.opencode_file),
        "serve".into(),
        "--hostname".into(),
        "0.0.0.0".into(),
        "--port".into(),
        layout::OPENCODE_PORT.to_string(),
    ];
    command.extend(spec.opencode_args.iter().cloned());
    command
}

fn openwork_bind(staged: &Staged) -> Bind {
    match &staged.openwork {
        OpenworkMount::File(f) => bind(f, layout::OPENWORK_EXE, true),
        OpenworkMount::Dir(d) => bind(d, layout::OPENWORK_DIR, true),
    }
}

fn bind(source: &Utf8PathBuf, target: &str, read_only: bool) -> Bind {
    Bind {
        source: source.clone(),
        target: target.to_string(),
        read_only,
    }
}

fn role_labels(spec: &SandboxSpec, role: &str) -> std::collections::BTreeMap<String, String> {
    let mut l = labels(
        &spec.run_id,
        &spec.workspace_id,
        spec.owner.pid,
        &spec.owner.boot_id,
        spec.detach,
    );
    l.insert(label::ROLE.to_string(), role.to_string());
    l
}

fn loopback(host_port: u16, container_port: u16) -> PublishedPort {
    PublishedPort {
        host_ip: "127.0.0.1".into(),
        host_port,
        container_port,
    }
}

/// The agent's container on the engine's default network, opencode published on
/// 127.0.0.1:`host_port`.
pub fn agent_container(spec: &SandboxSpec, staged: &Staged) -> ContainerPlan {
    let mut mounts = vec![bind(&spec.workspace, layout::WORKSPACE, false)];
    // The guard's mounts lie inside the workspace's: parents first.
    for g in staged.git_guard.iter().flat_map(|g| &g.mounts) {
        let target = format!("{}/{}", layout::WORKSPACE, g.relative);
        mounts.push(bind(&g.host, &target, g.read_only));
    }
    mounts.extend([
        bind(&spec.persist_dir, layout::PERSIST, false),
        bind(&staged.opencode_dir, layout::OPENCODE_DIR, true),
        openwork_bind(staged),
    ]);
    for extra in &spec.extra_mounts {
        mounts.push(bind(&extra.host, &extra.container, extra.read_only));
    }
    let mut env = layout_env();
    if let Some(tools) = &staged.tools_dir {
        mounts.push(bind(tools, layout::TOOLS_DIR, true));
        env.push(("PATH".into(), layout::TOOLS_PATH.into()));
    }
    env.extend(spec.agent_env.iter().cloned());
    ContainerPlan {
        role: Role::Agent,
        name: container_name(&spec.run_id),
        image: spec.image.clone(),
        user: spec.user.clone(),
        command: agent_command(spec, staged),
        env,
        workdir: layout::WORKSPACE.into(),
        mounts,
        ports: vec![loopback(spec.host_port, layout::OPENCODE_PORT)],
        networks: vec![],
        labels: role_labels(spec, Role::Agent.as_str()),
        limits: spec.limits,
    }
}

/// The plan of a run without a gate: the agent alone.
pub fn sandbox_plan(spec: &SandboxSpec, staged: &Staged) -> SandboxPlan {
    let agent = agent_container(spec, staged);
    SandboxPlan {
        run_id: spec.run_id.clone(),
        workspace_id: spec.workspace_id.clone(),
        name: agent.name.clone(),
        detach: spec.detach,
        agent,
        gate: None,
        networks: vec![],
    }
}

/// The run's two networks: `<name>-internal` (no route out; the agent and the gate) and
/// `<name>-egress` (the gate's way out).
pub fn gate_networks(spec: &SandboxSpec) -> [NetworkPlan; 2] {
    [
        NetworkPlan {
            name: suffixed_name(&spec.run_id, "internal"),
            internal: true,
            labels: role_labels(spec, "internal"),
        },
        NetworkPlan {
            name: suffixed_name(&spec.run_id, "egress"),
            internal: false,
            labels: role_labels(spec, "egress"),
        },
    ]
}

/// The gate's container: `openwork gate …` as the same user with the same hardening as the
/// agent, seeing only the read-only executable, on both networks, publishing the host port.
pub fn gate_container(
    spec: &SandboxSpec,
    staged: &Staged,
    gate: &GateSpec,
    networks: &[NetworkPlan; 2],
) -> ContainerPlan {
    let [internal, egress] = networks;
    let mut command = vec![layout::OPENWORK_EXE.to_string(), "gate".into()];
    command.extend(gate.args.iter().cloned());
    ContainerPlan {
        role: Role::Gate,
        name: suffixed_name(&spec.run_id, "gate"),
        image: spec.image.clone(),
        user: spec.user.clone(),
        command,
        env: gate.env.clone(),
        workdir: "/".into(),
        mounts: vec![openwork_bind(staged)],
        ports: vec![
            loopback(spec.host_port, gate.listen_port),
            loopback(gate.control_host_port, gate.control_port),
        ],
        networks: vec![
            NetworkAttachment {
                network: internal.name.clone(),
                aliases: vec![GATE_ALIAS.into()],
            },
            NetworkAttachment {
                network: egress.name.clone(),
                aliases: vec![],
            },
        ],
        labels: role_labels(spec, Role::Gate.as_str()),
        limits: gate.limits,
    }
}

/// The plan of a gated run: the agent alone on the internal network (nothing published), the
/// gate on both networks publishing the host port.
pub fn gated_plan(spec: &SandboxSpec, staged: &Staged, gate: &GateSpec) -> SandboxPlan {
    let networks = gate_networks(spec);
    let mut agent = agent_container(spec, staged);
    agent.ports.clear();
    agent.networks = vec![NetworkAttachment {
        network: networks[0].name.clone(),
        aliases: vec![AGENT_ALIAS.into()],
    }];
    let gate = gate_container(spec, staged, gate, &networks);
    SandboxPlan {
        run_id: spec.run_id.clone(),
        workspace_id: spec.workspace_id.clone(),
        name: agent.name.clone(),
        detach: spec.detach,
        agent,
        gate: Some(gate),
        networks: networks.to_vec(),
    }
}

/// Test fixtures shared by the backends' builder tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::elf::Arch;
    use crate::plan::{ExtraMount, Limits, Owner};

    pub(crate) fn spec() -> SandboxSpec {
        SandboxSpec {
            run_id: "r1".into(),
            workspace_id: "ws_1".into(),
            image: "openwork-sandbox:test".into(),
            workspace: "/home/me/ws".into(),
            persist_dir: "/home/me/.openwork/sandbox/ws_1".into(),
            opencode: "/c/opencode/opencode".into(),
            openwork: "/usr/local/bin/openwork".into(),
            arch: Arch::X86_64,
            extra_mounts: vec![ExtraMount {
                host: "/data/sets".into(),
                container: "/workspace/extra/sets".into(),
                read_only: true,
            }],
            user: "1000:1000".into(),
            limits: Limits::default(),
            host_port: 41000,
            opencode_args: vec!["--log-level".into(), "DEBUG".into()],
            agent_env: vec![("OPENCODE_SERVER_USERNAME".into(), "u".into())],
            copy_auth_from: None,
            owner: Owner {
                pid: 42,
                boot_id: "boot".into(),
            },
            detach: false,
            git_guard: crate::plan::GitGuardMode::Off,
            gate: None,
        }
    }

    pub(crate) fn staged(openwork: OpenworkMount) -> Staged {
        Staged {
            opencode_dir: "/c/opencode".into(),
            opencode_file: "opencode".into(),
            openwork,
            git_guard: None,
            tools_dir: None,
        }
    }

    pub(crate) fn docker_plan() -> SandboxPlan {
        sandbox_plan(
            &spec(),
            &staged(OpenworkMount::File("/usr/local/bin/openwork".into())),
        )
    }

    pub(crate) fn gate() -> GateSpec {
        GateSpec {
            args: vec!["--listen".into(), "0.0.0.0:8080".into()],
            env: vec![("GATE_POLICY".into(), "deny".into())],
            listen_port: 8080,
            control_port: 3130,
            control_host_port: 41001,
            limits: Limits {
                memory_bytes: 256 * 1024 * 1024,
                nano_cpus: 500_000_000,
                pids: 64,
                tmp_bytes: 16 * 1024 * 1024,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    fn targets(c: &ContainerPlan) -> Vec<(&str, bool)> {
        c.mounts
            .iter()
            .map(|m| (m.target.as_str(), m.read_only))
            .collect()
    }

    #[test]
    fn the_agent_sees_only_its_mounts_and_one_loopback_port() {
        let p = docker_plan();
        assert_eq!(p.name, "openwork-r1");
        assert_eq!(p.agent.name, p.name);
        assert!(p.gate.is_none() && p.networks.is_empty());
        assert_eq!(
            targets(&p.agent),
            [
                ("/workspace", false),
                ("/persist", false),
                ("/opt/opencode", true),
                ("/opt/openwork/openwork", true),
                ("/workspace/extra/sets", true),
            ]
        );
        assert_eq!(p.agent.ports, [loopback(41000, 4096)]);
        assert_eq!(
            p.agent.command.join(" "),
            "/opt/openwork/openwork __init -- /opt/opencode/opencode serve --hostname 0.0.0.0 --port 4096 --log-level DEBUG"
        );
        let env: Vec<&str> = p.agent.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(env[0], "HOME");
        assert!(env.contains(&"BUN_TMPDIR"));
        assert!(env.contains(&"OPENCODE_SERVER_USERNAME"));
        assert_eq!(p.agent.labels[label::ROLE], "agent");
        assert_eq!(p.agent.labels[label::OWNER_PID], "42");
        assert_eq!(p.agent.workdir, "/workspace");
    }

    #[test]
    fn a_directory_only_engine_gets_the_openwork_directory() {
        let s = staged(OpenworkMount::Dir("/h/ws_1.openwork-bin".into()));
        let a = agent_container(&spec(), &s);
        assert_eq!(a.mounts[3].target, "/opt/openwork");
        assert_eq!(a.mounts[3].source, "/h/ws_1.openwork-bin");
        // The executable's path inside is the same.
        assert_eq!(a.command[0], "/opt/openwork/openwork");
    }

    #[test]
    fn the_gate_is_hardened_like_the_agent_and_sees_nothing_of_it() {
        let s = staged(OpenworkMount::File("/usr/local/bin/openwork".into()));
        let p = gated_plan(&spec(), &s, &gate());
        let g = p.gate.as_ref().unwrap();
        assert_eq!(g.role, Role::Gate);
        assert_eq!(g.name, "openwork-r1-gate");
        assert_eq!(g.user, p.agent.user);
        assert_eq!(g.image, p.agent.image);
        assert_eq!(
            g.command,
            ["/opt/openwork/openwork", "gate", "--listen", "0.0.0.0:8080"]
        );
        assert_eq!(targets(g), [("/opt/openwork/openwork", true)]);
        assert_eq!(g.env, [("GATE_POLICY".to_string(), "deny".to_string())]);
        assert_eq!(g.limits.pids, 64);
        assert_eq!(g.ports, [loopback(41000, 8080), loopback(41001, 3130)]);
        assert_eq!(g.labels[label::ROLE], "gate");
        assert_eq!(g.labels[label::RUN_ID], "r1");
        // Networks: the agent alone on the internal one, nothing published; the gate on both.
        let [internal, egress] = [&p.networks[0], &p.networks[1]];
        assert_eq!(
            (internal.name.as_str(), internal.internal),
            ("openwork-r1-internal", true)
        );
        assert_eq!(
            (egress.name.as_str(), egress.internal),
            ("openwork-r1-egress", false)
        );
        assert_eq!(internal.labels[label::MANAGED], "true");
        assert_eq!(egress.labels[label::ROLE], "egress");
        assert!(p.agent.ports.is_empty());
        assert_eq!(
            p.agent.networks,
            [NetworkAttachment {
                network: internal.name.clone(),
                aliases: vec![AGENT_ALIAS.into()]
            }]
        );
        let joined: Vec<&str> = g.networks.iter().map(|n| n.network.as_str()).collect();
        assert_eq!(joined, [internal.name.as_str(), egress.name.as_str()]);
    }
}
