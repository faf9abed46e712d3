//! The engine side of a gated run: creates the run's networks, creates, connects, verifies and
//! starts each container, and removes all of it again (in reverse: agent, gate, networks).
//!
//! Threat addressed: a gated sandbox that is quietly less fenced than planned, or that leaks.
//! Each container is inspected after its later networks are connected and before it starts:
//! besides the hardening of [`spec::hardening_checks`], the set of networks it is attached to
//! must be exactly the planned one (the agent: only the `internal: true` network), and every
//! network is read back to be internal when planned so. Whatever was created before a failure is
//! removed before the error is returned, so a failed launch leaves nothing behind.
//!
//! Left open: the engine's own isolation does the fencing (an `internal` bridge has no route
//! out); a container runtime that ignores `internal` would be caught by the read-back only.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::NetworkConnectRequest;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};

use super::{engine, spec};
use crate::BackendError;
use crate::plan::{ContainerPlan, NetworkPlan, is_orphan};

fn is_missing(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Force-removes container `name` (absent counts as removed).
pub(crate) async fn remove_container(docker: &Docker, name: &str) {
    let opts = RemoveContainerOptionsBuilder::default().force(true).build();
    let _ = docker.remove_container(name, Some(opts)).await;
}

/// Stops container `name` (SIGTERM, SIGKILL after `grace`) and removes it.
pub(crate) async fn stop_and_remove(
    docker: &Docker,
    name: &str,
    grace: Duration,
) -> Result<(), BackendError> {
    let secs = i32::try_from(grace.as_secs()).unwrap_or(10).max(1);
    let opts = StopContainerOptionsBuilder::default().t(secs).build();
    let _ = docker.stop_container(name, Some(opts)).await;
    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
    match docker.remove_container(name, Some(rm)).await {
        Ok(()) => Ok(()),
        Err(e) if is_missing(&e) => Ok(()),
        Err(e) => Err(engine("remove container")(e)),
    }
}

/// Removes network `name` (absent counts as removed). The engine refuses while a container is
/// attached, so containers go first.
pub(crate) async fn remove_network(docker: &Docker, name: &str) -> Result<(), BackendError> {
    match docker.remove_network(name).await {
        Ok(()) => Ok(()),
        Err(e) if is_missing(&e) => Ok(()),
        Err(e) => Err(engine("remove network")(e)),
    }
}

/// Creates `plan`'s network (a leftover of the same name, i.e. of this run id, is removed
/// first) and checks that the engine kept `internal`.
pub(crate) async fn create_network(
    docker: &Docker,
    plan: &NetworkPlan,
) -> Result<(), BackendError> {
    remove_network(docker, &plan.name).await?;
    docker
        .create_network(spec::network_body(plan))
        .await
        .map_err(engine("create network"))?;
    let got = docker
        .inspect_network(&plan.name, None)
        .await
        .map_err(engine("inspect network"))?
        .internal
        .unwrap_or(false);
    if got != plan.internal {
        return Err(BackendError::HardeningNotApplied {
            setting: "Network.Internal",
            wanted: plan.internal.to_string(),
            got: got.to_string(),
        });
    }
    Ok(())
}

/// Creates `plan`'s container (replacing a leftover of the same name), connects its later
/// networks, verifies hardening and networks, and starts it. On any failure the container is
/// removed and the error returned.
pub(crate) async fn create_and_start(
    docker: &Docker,
    plan: &ContainerPlan,
) -> Result<(), BackendError> {
    remove_container(docker, &plan.name).await;
    let options = CreateContainerOptionsBuilder::default()
        .name(&plan.name)
        .build();
    docker
        .create_container(Some(options), spec::create_body(plan))
        .await
        .map_err(engine("create container"))?;
    let result = async {
        for (network, endpoint) in spec::later_networks(plan) {
            docker
                .connect_network(
                    &network,
                    NetworkConnectRequest {
                        container: plan.name.clone(),
                        endpoint_config: Some(endpoint),
                    },
                )
                .await
                .map_err(engine("connect network"))?;
        }
        verify(docker, plan).await?;
        docker
            .start_container(&plan.name, None)
            .await
            .map_err(engine("start container"))
    }
    .await;
    if result.is_err() {
        remove_container(docker, &plan.name).await;
    }
    result
}

/// Inspects the created container: every hardening setting must have stuck, and it must be
/// attached to exactly its planned networks.
pub(crate) async fn verify(docker: &Docker, plan: &ContainerPlan) -> Result<(), BackendError> {
    let inspect = docker
        .inspect_container(&plan.name, None)
        .await
        .map_err(engine("inspect container"))?;
    for check in spec::hardening_checks(plan) {
        let got = spec::observed(&inspect, check.setting);
        if got != check.wanted {
            return Err(BackendError::HardeningNotApplied {
                setting: check.setting,
                wanted: check.wanted,
                got,
            });
        }
    }
    Ok(())
}

/// Removes the run's containers (in the order given) and then its networks; every step is
/// tried, the first error is returned.
pub(crate) async fn teardown(
    docker: &Docker,
    containers: &[String],
    networks: &[String],
    grace: Duration,
) -> Result<(), BackendError> {
    let mut first = None;
    for name in containers {
        if let Err(e) = stop_and_remove(docker, name, grace).await {
            first.get_or_insert(e);
        }
    }
    for name in networks {
        if let Err(e) = remove_network(docker, name).await {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Removes networks left behind by killed orchestrators (same rule as containers: [`is_orphan`]).
/// Call after the orphaned containers are gone.
pub(crate) async fn remove_orphan_networks(docker: &Docker) -> Result<Vec<String>, BackendError> {
    let filters: HashMap<String, Vec<String>> = HashMap::from([(
        "label".to_string(),
        vec![format!("{}=true", crate::label::MANAGED)],
    )]);
    let opts = ListNetworksOptionsBuilder::default()
        .filters(&filters)
        .build();
    let list = docker
        .list_networks(Some(opts))
        .await
        .map_err(engine("list networks"))?;
    let mut removed = Vec::new();
    for n in list {
        let labels = n.labels.unwrap_or_default();
        if !is_orphan(|k| labels.get(k).cloned()) {
            continue;
        }
        let Some(name) = n.name.filter(|n| !n.is_empty()) else {
            continue;
        };
        if remove_network(docker, &name).await.is_ok() {
            removed.push(name);
        }
    }
    Ok(removed)
}
