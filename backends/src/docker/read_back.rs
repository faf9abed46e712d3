//! Reads back a running container's isolation for the report: `inspect` for what the engine
//! applied, and an `exec` of [`probe_command`] as the container's own user for what a process
//! the agent starts actually gets (effective capabilities, no-new-privileges, seccomp, visible
//! engine sockets).
//!
//! Threat addressed: a report that repeats the request instead of the result. Nothing here
//! changes the container; the probe is a read-only shell one-liner.

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;

use crate::BackendError;
use crate::isolation::{IsolationFacts, MountFact, PortFact, parse_probe, probe_command};

/// Inspect plus self-probe of `container`.
pub async fn isolation_facts(
    docker: &Docker,
    container: &str,
) -> Result<IsolationFacts, BackendError> {
    let inspect = docker
        .inspect_container(container, None)
        .await
        .map_err(|e| BackendError::Engine {
            call: "inspect container",
            message: e.to_string(),
        })?;
    let hc = inspect.host_config.clone().unwrap_or_default();
    let config = inspect.config.clone().unwrap_or_default();
    let mounts = inspect
        .mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| MountFact {
            source: m.source.unwrap_or_default(),
            destination: m.destination.unwrap_or_default(),
            read_only: !m.rw.unwrap_or(true),
        })
        .collect();
    let mut ports = Vec::new();
    for (container_port, bindings) in hc.port_bindings.clone().unwrap_or_default() {
        for b in bindings.unwrap_or_default() {
            ports.push(PortFact {
                host_ip: b.host_ip.unwrap_or_default(),
                host_port: b.host_port.unwrap_or_default(),
                container_port: container_port.clone(),
            });
        }
    }
    let networks = inspect
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    let probe = run_probe(docker, container, config.user.clone())
        .await
        .and_then(|text| parse_probe(&text));
    Ok(IsolationFacts {
        container: container.to_string(),
        user: config.user.unwrap_or_default(),
        cap_add: hc.cap_add.clone().unwrap_or_default(),
        cap_drop: hc.cap_drop.clone().unwrap_or_default(),
        security_opt: hc.security_opt.clone().unwrap_or_default(),
        read_only_root: hc.readonly_rootfs.unwrap_or(false),
        pids_limit: hc.pids_limit,
        memory: hc.memory,
        nano_cpus: hc.nano_cpus,
        mounts,
        ports,
        networks,
        probe,
    })
}

async fn run_probe(
    docker: &Docker,
    container: &str,
    user: Option<String>,
) -> Result<String, String> {
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(probe_command()),
                user,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("exec create: {e}"))?;
    let started = docker
        .start_exec(&exec.id, None)
        .await
        .map_err(|e| format!("exec start: {e}"))?;
    let StartExecResults::Attached { mut output, .. } = started else {
        return Err("the probe ran detached".into());
    };
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = output.next().await {
            match chunk {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::StdErr { message }) => {
                    text.push_str(&String::from_utf8_lossy(&message));
                }
                Ok(_) => {}
                Err(e) => return Err(format!("exec output: {e}")),
            }
        }
        Ok(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .map_err(|_| "the probe did not finish within 10 s".to_string())??;
    Ok(text)
}
