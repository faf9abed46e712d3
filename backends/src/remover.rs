//! How to force-remove a sandbox from a process that knows nothing else about the run: the
//! orchestrator's watchdog uses it when the orchestrator dies without cleaning up (SIGKILL), so a
//! sandbox does not outlive its run until the next run finds it as an orphan.
//!
//! A [`Remover`] is plain data with a one-line JSON form, sent to the watchdog over its pipe.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

/// One sandbox to remove, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remover {
    /// `DELETE /containers/<name>?force=true` through the Docker API (`DOCKER_HOST` honoured).
    DockerApi { name: String },
    /// A gated Docker sandbox: its containers (agent, gate), then its networks, through the API.
    DockerSandbox {
        containers: Vec<String>,
        networks: Vec<String>,
    },
    /// A command line, e.g. Apple's `container delete --force <name>`.
    Command { program: PathBuf, args: Vec<String> },
}

impl Remover {
    /// The one-line JSON form.
    pub fn to_line(&self) -> String {
        match self {
            Remover::DockerApi { name } => json!({ "docker": name }).to_string(),
            Remover::DockerSandbox {
                containers,
                networks,
            } => json!({ "dockerContainers": containers, "dockerNetworks": networks }).to_string(),
            Remover::Command { program, args } => {
                json!({ "program": program.to_string_lossy(), "args": args }).to_string()
            }
        }
    }

    /// Parses [`Remover::to_line`]'s output.
    pub fn from_line(line: &str) -> Option<Remover> {
        let v: Value = serde_json::from_str(line).ok()?;
        if let Some(name) = v["docker"].as_str() {
            return Some(Remover::DockerApi {
                name: name.to_string(),
            });
        }
        let strings = |key: &str| -> Option<Vec<String>> {
            v[key]
                .as_array()?
                .iter()
                .map(|a| a.as_str().map(str::to_string))
                .collect()
        };
        if let (Some(containers), Some(networks)) =
            (strings("dockerContainers"), strings("dockerNetworks"))
        {
            return Some(Remover::DockerSandbox {
                containers,
                networks,
            });
        }
        let program = v["program"].as_str()?;
        let args = v["args"]
            .as_array()?
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        Some(Remover::Command {
            program: PathBuf::from(program),
            args,
        })
    }

    /// Removes the sandbox (bounded; failures are ignored: this is the last line of defence,
    /// the next run's orphan sweep is the one after it).
    pub async fn run(&self) {
        match self {
            Remover::DockerApi { name } => {
                let Ok(docker) = bollard::Docker::connect_with_defaults() else {
                    return;
                };
                let work = async {
                    let docker = docker.negotiate_version().await.ok()?;
                    let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .build();
                    docker.remove_container(name, Some(opts)).await.ok()
                };
                let _ = tokio::time::timeout(Duration::from_secs(20), work).await;
            }
            Remover::DockerSandbox {
                containers,
                networks,
            } => {
                let Ok(docker) = bollard::Docker::connect_with_defaults() else {
                    return;
                };
                let work = async {
                    let docker = docker.negotiate_version().await.ok()?;
                    let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .build();
                    for name in containers {
                        let _ = docker.remove_container(name, Some(opts.clone())).await;
                    }
                    for name in networks {
                        let _ = docker.remove_network(name).await;
                    }
                    Some(())
                };
                let _ = tokio::time::timeout(Duration::from_secs(20), work).await;
            }
            Remover::Command { program, args } => {
                let run = tokio::process::Command::new(program)
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .status();
                let _ = tokio::time::timeout(Duration::from_secs(30), run).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        for r in [
            Remover::DockerApi {
                name: "openwork-x".into(),
            },
            Remover::DockerSandbox {
                containers: vec!["openwork-x".into(), "openwork-x-gate".into()],
                networks: vec!["openwork-x-internal".into(), "openwork-x-egress".into()],
            },
            Remover::Command {
                program: "/opt/bin/container cli".into(),
                args: vec!["delete".into(), "--force".into(), "n".into()],
            },
        ] {
            assert_eq!(Remover::from_line(&r.to_line()), Some(r));
        }
        assert_eq!(Remover::from_line("nonsense"), None);
    }
}
