//! Sandbox mode in the orchestrator: picks the backend (`--sandbox auto|docker|container`),
//! resolves the Linux binaries for the container's target (once), builds the run's
//! [`SandboxSpec`] from the plan (pure: [`sandbox_spec`]) and hands it to the backend, which
//! prepares the host side and returns the plan opencode's sandboxed service launches.
//!
//! `auto` never falls back to an unsandboxed run: when no engine is usable it is an error that
//! names the options (the original silently ran on the host). The agent's environment holds
//! opencode's own credentials and the person's passed-through settings, never an OpenWork token.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use camino::Utf8PathBuf;
use serde_json::{Value, json};

use openwork_backends::apple::AppleContainerBackend;
use openwork_backends::docker::{DockerBackend, EngineProbe};
use openwork_backends::elf::Arch;
use openwork_backends::{OrphanSweep, SandboxBackend, SandboxSpec};

use crate::cli::{SandboxArg, SourceArg};
use crate::egress::EgressReport;
use crate::logs::{LogSink, ORCHESTRATOR};
use crate::plan::egress::{Egress, GatePlan};
use crate::plan::{LayoutSource, RunMode, RunPlan, SandboxSettings};
use crate::services::{Ports, SidecarSet, sandbox_opencode_spec};
use crate::sidecars::{
    LiveProgress, ResolveSettings, ResolvedSidecar, Resolver, SidecarName, SidecarRequest,
    SourcePolicy, Target,
};
use crate::supervisor::ServiceSpec;
use openwork_backends::build::GateSpec;

/// How to build the default image (shown when it is missing).
pub const IMAGE_BUILD_HINT: &str =
    "images/build.sh (in the openwork repository; needs debootstrap and a Docker engine)";

fn apple_silicon_mac() -> bool {
    cfg!(all(target_os = "macos", target_arch = "aarch64"))
}

/// The `container` program to use, if this host can use one: `OPENWORK_CONTAINER_BIN` when set
/// (on Linux CI that is the test double `tests/support/fake-container`), else `container` on PATH
/// on Apple silicon.
fn container_program(sb: &SandboxSettings) -> Option<PathBuf> {
    match &sb.container_bin {
        Some(p) => Some(p.clone()),
        None if apple_silicon_mac() => Some(PathBuf::from("container")),
        None => None,
    }
}

/// Picks and connects the backend for the run's `--sandbox`.
pub async fn select_backend(sb: &SandboxSettings) -> anyhow::Result<Arc<dyn SandboxBackend>> {
    match sb.kind {
        SandboxArg::Docker => Ok(Arc::new(
            DockerBackend::connect(IMAGE_BUILD_HINT)
                .await
                .context("--sandbox docker")?,
        )),
        SandboxArg::Container => match container_program(sb) {
            Some(program) => Ok(Arc::new(
                AppleContainerBackend::connect(program, IMAGE_BUILD_HINT)
                    .await
                    .context("--sandbox container")?,
            )),
            None => Err(container_unavailable()),
        },
        SandboxArg::Auto => {
            // Apple silicon: Apple's container first (one VM per sandbox), then Docker.
            let apple = match container_program(sb).filter(|_| apple_silicon_mac()) {
                Some(program) => {
                    match AppleContainerBackend::connect(program, IMAGE_BUILD_HINT).await {
                        Ok(b) => return Ok(Arc::new(b)),
                        Err(e) => e.to_string(),
                    }
                }
                None => "only available on macOS with Apple silicon".to_string(),
            };
            let (probe, _) = openwork_backends::docker::probe().await;
            if let EngineProbe::Reachable { .. } = probe {
                return Ok(Arc::new(DockerBackend::connect(IMAGE_BUILD_HINT).await?));
            }
            Err(anyhow!(
                "--sandbox auto found no usable container engine.\n  Docker: {probe}\n  Apple container: {apple}\nInstall and start one of them, choose one with --sandbox docker|container, or run without a sandbox with --sandbox none."
            ))
        }
        SandboxArg::None => Err(anyhow!("no sandbox requested")),
    }
}

fn container_unavailable() -> anyhow::Error {
    anyhow!(
        "--sandbox container needs Apple's `container` CLI, which runs only on macOS with Apple silicon; use --sandbox docker or --sandbox none"
    )
}

/// The sidecar target of the containers.
fn container_target(arch: Arch) -> Target {
    match arch {
        Arch::X86_64 => Target::LINUX_X64,
        Arch::Aarch64 => Target::LINUX_ARM64,
    }
}

/// A resolver for the containers' target.
fn container_resolver(plan: &RunPlan, sb: &SandboxSettings, sink: &LogSink) -> Resolver {
    let sp = &plan.sidecars;
    let mut settings = ResolveSettings::new(
        sp.dir.clone(),
        sp.base_url.clone(),
        container_target(sb.arch),
    );
    settings.manifest_url = sp.manifest_url.clone();
    settings.allow_external = sp.allow_external;
    settings.verify = sp.verify;
    Resolver::new(settings, Box::new(LiveProgress::new(sink.verbose())))
}

/// Whether opencode must be resolved for the containers' target rather than the host's (then
/// the host's opencode is never resolved: one resolution per target).
pub fn opencode_for_container(plan: &RunPlan) -> Option<&SandboxSettings> {
    plan.sandbox
        .as_ref()
        .filter(|sb| sb.layout == LayoutSource::Downloaded)
}

/// The Linux opencode of a sandbox whose binaries are downloaded: an explicit binary as given
/// (its ELF header is checked when the sandbox is prepared), else downloaded (bundled means
/// "next to this executable", which is not a Linux binary here), falling back to npm.
pub async fn resolve_opencode(
    plan: &RunPlan,
    sb: &SandboxSettings,
    sink: &LogSink,
) -> anyhow::Result<ResolvedSidecar> {
    let resolver = container_resolver(plan, sb, sink);
    let target = container_target(sb.arch);
    let sp = &plan.sidecars;
    let policy = match sp.opencode_source {
        SourceArg::Npm => SourcePolicy::Npm,
        SourceArg::External => SourcePolicy::External,
        _ => SourcePolicy::Downloaded,
    };
    let mut request = SidecarRequest::new(SidecarName::Opencode, policy);
    request.explicit_bin = sp.opencode_bin.clone();
    match resolver.resolve(&request).await {
        Ok(r) => Ok(r),
        Err(first) if policy == SourcePolicy::Downloaded && request.explicit_bin.is_none() => {
            resolver
                .resolve(&SidecarRequest::new(
                    SidecarName::Opencode,
                    SourcePolicy::Npm,
                ))
                .await
                .map_err(|second| {
                    anyhow!("Linux opencode for the sandbox ({target}): {first}\n{second}")
                })
        }
        Err(e) => Err(anyhow!("Linux opencode for the sandbox ({target}): {e}")),
    }
}

/// The Linux `openwork` executable mounted into the container: this one on a Linux host, else
/// the manifest's download for the containers' target.
async fn openwork_exe(
    plan: &RunPlan,
    sb: &SandboxSettings,
    sink: &LogSink,
) -> anyhow::Result<Utf8PathBuf> {
    if sb.layout == LayoutSource::Host {
        let exe = std::env::current_exe().context("locating this executable")?;
        return Utf8PathBuf::from_path_buf(exe)
            .map_err(|p| anyhow!("this executable's path is not UTF-8: {}", p.display()));
    }
    let target = container_target(sb.arch);
    let openwork = container_resolver(plan, sb, sink)
        .resolve(&SidecarRequest::new(
            SidecarName::OpenworkServer,
            SourcePolicy::Downloaded,
        ))
        .await
        .map_err(|e| anyhow!("Linux openwork executable for the sandbox ({target}): {e}"))?;
    Ok(openwork.path)
}

/// The run's sandbox, as the backends take it. Pure: everything comes from the plan, the
/// resolved Linux binaries and the chosen ports.
pub fn sandbox_spec(
    plan: &RunPlan,
    sb: &SandboxSettings,
    opencode: &camino::Utf8Path,
    openwork: &camino::Utf8Path,
    ports: &Ports,
    gate: Option<(&GatePlan, u16)>,
) -> SandboxSpec {
    let mut opencode_args = Vec::new();
    if let Some(level) = plan.opencode_log_level {
        opencode_args.push("--log-level".into());
        opencode_args.push(format!("{level:?}").to_uppercase());
    }
    for origin in &plan.cors {
        opencode_args.push("--cors".into());
        opencode_args.push(origin.clone());
    }
    let c = &plan.credentials;
    let mut agent_env: Vec<(String, String)> = vec![
        ("OPENCODE_CLIENT".into(), "openwork-orchestrator".into()),
        (
            "OPENCODE_SERVER_USERNAME".into(),
            c.opencode_username.clone(),
        ),
        (
            "OPENCODE_SERVER_PASSWORD".into(),
            c.opencode_password.clone(),
        ),
        ("OPENWORK".into(), "1".into()),
        ("OPENWORK_RUN_ID".into(), plan.run_id.clone()),
        ("OPENWORK_SANDBOX_ENABLED".into(), "1".into()),
    ];
    agent_env.extend(sb.agent_env.iter().cloned());
    let gate = gate.map(|(g, control_host_port)| {
        agent_env = gated_agent_env(std::mem::take(&mut agent_env), g);
        gate_spec(g, control_host_port)
    });
    SandboxSpec {
        run_id: plan.run_id.clone(),
        workspace_id: crate::plan::workspace_id(&plan.workspace),
        image: sb.image.clone(),
        workspace: plan.workspace.clone(),
        persist_dir: sb.persist_dir.clone(),
        opencode: opencode.to_path_buf(),
        openwork: openwork.to_path_buf(),
        arch: sb.arch,
        extra_mounts: sb.mounts.clone(),
        user: sb.user.spec(),
        limits: sb.limits,
        host_port: ports.opencode,
        opencode_args,
        agent_env,
        copy_auth_from: sb.copy_auth_from.clone(),
        owner: sb.owner.clone(),
        detach: plan.mode == RunMode::Detach,
        gate,
        git_guard: sb.git_guard.clone(),
    }
}

/// Ports of the gate inside its container.
const GATE_PROXY: u16 = 3128;
const GATE_INJECT: u16 = 3129;
const GATE_CONTROL: u16 = 3130;

/// The agent's environment behind the gate: the proxy for everything (`HTTP(S)_PROXY`, both
/// spellings, which Bun's fetch honours), nothing proxied inside the run's network, and
/// opencode's providers pointed at the gate's injection listener with placeholder keys, merged
/// over the person's own `OPENCODE_CONFIG_CONTENT` (the fragment wins for those providers).
pub fn gated_agent_env(mut env: Vec<(String, String)>, gate: &GatePlan) -> Vec<(String, String)> {
    use openwork_backends::build::{AGENT_ALIAS, GATE_ALIAS};
    let proxy = format!("http://{GATE_ALIAS}:{GATE_PROXY}");
    // `gate` too: the providers' base URL is the gate's injection listener, reached directly.
    let no_proxy = format!("localhost,127.0.0.1,{AGENT_ALIAS},{GATE_ALIAS}");
    let mut config = env
        .iter()
        .find(|(k, _)| k == "OPENCODE_CONFIG_CONTENT")
        .and_then(|(_, v)| serde_json::from_str::<serde_json::Value>(v).ok())
        .unwrap_or_else(|| json!({}));
    crate::plan::egress::merge_json(
        &mut config,
        openwork_gate::opencode_config_fragment(
            &format!("http://{GATE_ALIAS}:{GATE_INJECT}"),
            gate.keys.providers(),
        ),
    );
    const SET: [&str; 7] = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "OPENCODE_CONFIG_CONTENT",
    ];
    env.retain(|(k, _)| !SET.contains(&k.as_str()));
    for k in &SET[..4] {
        env.push((k.to_string(), proxy.clone()));
    }
    for k in &SET[4..6] {
        env.push((k.to_string(), no_proxy.clone()));
    }
    env.push(("OPENCODE_CONFIG_CONTENT".into(), config.to_string()));
    env
}

/// The gate's container: proxy, injection, control and the forward to opencode; its token and
/// initial policy in its own environment.
fn gate_spec(gate: &GatePlan, control_host_port: u16) -> GateSpec {
    let port = openwork_backends::layout::OPENCODE_PORT;
    GateSpec {
        args: vec![
            "--proxy".into(),
            format!("0.0.0.0:{GATE_PROXY}"),
            "--inject".into(),
            format!("0.0.0.0:{GATE_INJECT}"),
            "--control".into(),
            format!("0.0.0.0:{GATE_CONTROL}"),
            "--forward".into(),
            format!(
                "0.0.0.0:{port}={}:{port}",
                openwork_backends::build::AGENT_ALIAS
            ),
        ],
        env: vec![
            (openwork_gate::TOKEN_ENV.into(), gate.token.clone()),
            (
                openwork_gate::POLICY_JSON_ENV.into(),
                gate.policy.to_file_json().to_string(),
            ),
        ],
        listen_port: port,
        control_port: GATE_CONTROL,
        control_host_port,
        limits: openwork_backends::Limits {
            memory_bytes: 256 * 1024 * 1024,
            nano_cpus: 500_000_000,
            pids: 128,
            tmp_bytes: 16 * 1024 * 1024,
        },
    }
}

/// opencode's sandboxed service and, behind a gate, the host side of that gate; with what the
/// run reads back (isolation) and cleans up later (the git guard).
pub struct SandboxService {
    pub spec: ServiceSpec,
    pub egress: Option<crate::egress::Egress>,
    pub report: EgressReport,
    pub backend: Arc<dyn SandboxBackend>,
    /// The agent's container.
    pub container: String,
    pub git_guard: Option<openwork_backends::git_guard::GitGuard>,
    pub credentials_copied: Vec<String>,
}

/// Has the backend prepare the sandbox (orphan sweep, binary checks, persist dir, staging) and
/// returns opencode's sandboxed service.
pub async fn opencode_service(
    plan: &RunPlan,
    sb: &SandboxSettings,
    backend: Arc<dyn SandboxBackend>,
    sidecars: &SidecarSet,
    ports: &Ports,
    sink: &Arc<LogSink>,
) -> anyhow::Result<SandboxService> {
    let openwork = openwork_exe(plan, sb, sink).await?;
    if sb.layout == LayoutSource::Downloaded {
        sink.info(
            ORCHESTRATOR,
            "Sandbox uses downloaded Linux binaries",
            json!({
                "target": container_target(sb.arch).to_string(),
                "opencode": sidecars.opencode.path,
                "openwork": openwork,
            }),
        );
    }
    let gate = match &sb.egress {
        Egress::Gate(g) if backend.name() != "docker" => {
            if g.explicit {
                return Err(crate::plan::egress::EgressError::AppleEnforce.into());
            }
            None
        }
        Egress::Gate(g) => Some(g.as_ref()),
        Egress::Open | Egress::NotEnforced => None,
    };
    let control_port = match gate {
        Some(_) => {
            crate::ports::free_port("127.0.0.1").context("choosing the gate's control port")?
        }
        None => 0,
    };
    let spec = sandbox_spec(
        plan,
        sb,
        &sidecars.opencode.path,
        &openwork,
        ports,
        gate.map(|g| (g, control_port)),
    );
    let report = egress_report(plan, sb, gate);
    match report.mode {
        "gate" => sink.info(
            ORCHESTRATOR,
            "Sandbox egress goes through the gate",
            json!({ "policy": report.policy_file, "audit": report.audit_file, "injectedProviders": report.injected_providers }),
        ),
        "open" => sink.warn(
            ORCHESTRATOR,
            "SANDBOX EGRESS IS UNRESTRICTED (--sandbox-network open): the agent can reach any address",
            Value::Null,
        ),
        _ => sink.warn(
            ORCHESTRATOR,
            "SANDBOX EGRESS IS NOT ENFORCED: Apple container has no egress fence yet; the agent can reach any address",
            Value::Null,
        ),
    }
    if let Some(g) = gate {
        sink.add_secret(&g.token);
        for c in &g.keys.credentials {
            sink.add_secret(c.key.expose());
        }
        for (provider, why) in &g.keys.skipped {
            sink.warn(
                ORCHESTRATOR,
                "A provider login of the host is not injected by the gate",
                json!({ "provider": provider, "why": why }),
            );
        }
    }
    let prepared = backend.prepare(&spec).await?;
    match &prepared.orphans {
        OrphanSweep::Removed(removed) if !removed.is_empty() => sink.warn(
            ORCHESTRATOR,
            "Removed sandbox containers and networks left behind by a killed run",
            json!({ "containers": removed }),
        ),
        OrphanSweep::Removed(_) => {}
        OrphanSweep::Failed(e) => sink.warn(
            ORCHESTRATOR,
            "Could not look for orphaned sandbox containers",
            json!({ "error": e.to_string() }),
        ),
    }
    sink.info(
        ORCHESTRATOR,
        "Sandbox persist dir ready",
        json!({ "path": sb.persist_dir, "credentialsCopied": prepared.credentials_copied }),
    );
    if let Some(g) = &prepared.git_guard {
        let guarded: Vec<&str> = g.mounts.iter().map(|m| m.relative.as_str()).collect();
        sink.info(
            ORCHESTRATOR,
            "Workspace git metadata guarded",
            json!({ "layout": format!("{:?}", g.layout), "mounts": guarded }),
        );
    }
    let splan = prepared.plan;
    sink.info(
        ORCHESTRATOR,
        "Starting sandbox",
        json!({ "backend": backend.name(), "container": splan.name, "image": splan.agent.image }),
    );
    let egress = gate.map(|g| {
        crate::egress::Egress::start(
            g,
            control_port,
            plan.run_dir().join(crate::egress::AUDIT_FILE),
            sink.clone(),
        )
    });
    let container = splan.agent.name.clone();
    Ok(SandboxService {
        spec: sandbox_opencode_spec(plan, backend.clone(), splan, ports),
        egress,
        report,
        backend,
        container,
        git_guard: prepared.git_guard,
        credentials_copied: prepared.credentials_copied,
    })
}

/// Reads back the running sandbox's isolation, logs it, and under `--sandbox-strict` refuses
/// to go on unless every control is enforced.
pub async fn isolation_report(
    sandbox: &SandboxService,
    sb: &SandboxSettings,
    sink: &LogSink,
) -> anyhow::Result<crate::isolation::Report> {
    use crate::isolation::{Credentials, Egress as IsolationEgress, Expected, Status, judge};
    let facts = sandbox
        .backend
        .isolation_facts(&sandbox.container)
        .await
        .map_err(|e| e.to_string());
    let egress = match sandbox.report.mode {
        "gate" => IsolationEgress::Gate,
        "open" => IsolationEgress::Open,
        _ => IsolationEgress::NotEnforced,
    };
    let credentials = if !sandbox.credentials_copied.is_empty() {
        Credentials::Copied(sandbox.credentials_copied.clone())
    } else if egress == IsolationEgress::Gate && !sandbox.report.injected_providers.is_empty() {
        Credentials::Injected(sandbox.report.injected_providers.clone())
    } else {
        Credentials::None
    };
    let report = judge(
        &facts,
        &Expected {
            settings: sb,
            git_guard: sandbox.git_guard.as_ref(),
            egress,
            credentials,
        },
    );
    sink.info(
        ORCHESTRATOR,
        &format!("Isolation: {}", report.summary()),
        json!({ "container": report.container }),
    );
    for c in report.weak() {
        if let Status::Degraded { why, fix } | Status::Missing { why, fix } = &c.status {
            sink.warn(
                ORCHESTRATOR,
                &format!("Isolation control {} is not enforced: {why}", c.name),
                json!({ "control": c.name, "detail": c.detail, "fix": fix }),
            );
        }
    }
    if sb.strict
        && let Some(refusal) = report.strict_refusal()
    {
        return Err(anyhow!(refusal));
    }
    Ok(report)
}

/// What the run's output says about the sandbox's egress.
fn egress_report(plan: &RunPlan, sb: &SandboxSettings, gate: Option<&GatePlan>) -> EgressReport {
    match gate {
        Some(g) => EgressReport {
            mode: "gate",
            policy_file: Some(g.policy_path.display().to_string()),
            audit_file: Some(plan.run_dir().join(crate::egress::AUDIT_FILE).to_string()),
            injected_providers: g.keys.providers().map(str::to_string).collect(),
        },
        None => EgressReport {
            mode: match sb.egress {
                Egress::Open => "open",
                _ => "not-enforced",
            },
            policy_file: None,
            audit_file: None,
            injected_providers: vec![],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn plan(dir: &std::path::Path, extra: &[&str]) -> RunPlan {
        let ws = dir.to_str().unwrap();
        let mut argv = vec![
            "openwork",
            "serve",
            "--workspace",
            ws,
            "--data-dir",
            ws,
            "--sandbox",
            "docker",
        ];
        argv.extend_from_slice(extra);
        let Some(Command::Serve(a)) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        RunPlan::from_args(&a, false).unwrap()
    }

    const PORTS: Ports = Ports {
        opencode: 4100,
        openwork: 8787,
        router_health: 4200,
    };

    #[test]
    fn the_spec_carries_opencode_settings_and_no_openwork_token() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(
            dir.path(),
            &[
                "--cors",
                "https://a.example",
                "--opencode-log-level",
                "debug",
            ],
        );
        let sb = p.sandbox.as_ref().unwrap();
        let spec = sandbox_spec(
            &p,
            sb,
            "/c/oc/opencode".into(),
            "/c/ow".into(),
            &PORTS,
            None,
        );
        assert_eq!(
            spec.opencode_args,
            ["--log-level", "DEBUG", "--cors", "https://a.example"]
        );
        assert_eq!(spec.host_port, 4100);
        assert_eq!(spec.run_id, p.run_id);
        assert_eq!(spec.user, sb.user.spec());
        assert!(!spec.detach);
        let get = |k: &str| {
            spec.agent_env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("OPENCODE_SERVER_PASSWORD"),
            Some(p.credentials.opencode_password.as_str())
        );
        assert_eq!(get("OPENWORK_SANDBOX_ENABLED"), Some("1"));
        for (_, v) in &spec.agent_env {
            assert_ne!(v, &p.credentials.client_token);
            assert_ne!(v, &p.credentials.host_token);
        }
        assert!(get("OPENWORK_TOKEN").is_none() && get("OPENWORK_HOST_TOKEN").is_none());
    }

    #[test]
    fn behind_the_gate_the_agent_gets_the_proxy_and_placeholders_merged_over_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(dir.path(), &[]);
        let sb = p.sandbox.as_ref().unwrap();
        let crate::plan::egress::Egress::Gate(gate) = &sb.egress else {
            panic!("docker enforces by default")
        };
        let mut gate = gate.as_ref().clone();
        gate.keys = openwork_gate::inject::discover(None, None, |k| {
            (k == "OPENAI_API_KEY").then(|| "sk-real-openai-key".to_string())
        });
        let person = json!({"provider": {"openai": {"models": {"m": {}}}}, "model": "openai/m"});
        let env = gated_agent_env(
            vec![
                ("HTTP_PROXY".into(), "http://elsewhere:1".into()),
                ("OPENCODE_CONFIG_CONTENT".into(), person.to_string()),
            ],
            &gate,
        );
        let get = |k: &str| {
            env.iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("HTTP_PROXY"), ["http://gate:3128"]);
        assert_eq!(get("https_proxy"), ["http://gate:3128"]);
        assert_eq!(get("NO_PROXY"), ["localhost,127.0.0.1,opencode,gate"]);
        let config: Value = serde_json::from_str(&get("OPENCODE_CONFIG_CONTENT")[0]).unwrap();
        assert_eq!(config["model"], "openai/m");
        assert!(config["provider"]["openai"]["models"]["m"].is_object());
        assert_eq!(
            config["provider"]["openai"]["options"]["baseURL"],
            "http://gate:3129/p/openai"
        );
        assert!(!env.iter().any(|(_, v)| v.contains("sk-real-openai-key")));
        let spec = gate_spec(&gate, 45000);
        assert_eq!(
            spec.args.join(" "),
            "--proxy 0.0.0.0:3128 --inject 0.0.0.0:3129 --control 0.0.0.0:3130 --forward 0.0.0.0:4096=opencode:4096"
        );
        assert_eq!(
            spec.env[0],
            ("OPENWORK_GATE_TOKEN".into(), gate.token.clone())
        );
        assert_eq!(spec.control_host_port, 45000);
    }
}
