//! Pure builders: the [`ServiceSpec`] of opencode, openwork-server and opencode-router, from the
//! plan, the resolved binaries and the chosen ports. No side effects, so the exact command lines
//! and environments are unit-tested.
//!
//! Secret separation: each service gets only the credentials it needs. opencode never sees the
//! OpenWork client or host token (they are removed even when the orchestrator inherited them);
//! the router gets opencode's credentials but no OpenWork token; tokens never go on argv.

use crate::plan::RunPlan;
use crate::sidecars::ResolvedSidecar;
use crate::supervisor::health::HealthCheck;
use crate::supervisor::process::ProcessSpec;
use crate::supervisor::{Launch, ServiceSpec};

/// The three binaries of a run.
#[derive(Debug, Clone)]
pub struct SidecarSet {
    pub opencode: ResolvedSidecar,
    pub server: ResolvedSidecar,
    pub router: Option<ResolvedSidecar>,
}

/// Ports chosen for the run (all on loopback, except openwork-server with remote access).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub opencode: u16,
    pub openwork: u16,
    pub router_health: u16,
}

/// Names of secrets the orchestrator may have inherited and must not pass to services that do
/// not need them.
const OPENWORK_SECRETS: [&str; 4] = [
    "OPENWORK_TOKEN",
    "OPENWORK_HOST_TOKEN",
    "OPENWORK_OPENCODE_USERNAME",
    "OPENWORK_OPENCODE_PASSWORD",
];

pub fn opencode_url(ports: &Ports) -> String {
    format!("http://127.0.0.1:{}", ports.opencode)
}

/// URL the orchestrator itself uses to reach openwork-server (always loopback).
pub fn openwork_local_url(ports: &Ports) -> String {
    format!("http://127.0.0.1:{}", ports.openwork)
}

fn common_env(plan: &RunPlan, service: &str) -> Vec<(String, String)> {
    let mut otel: Vec<String> = plan
        .otel_resource_attributes
        .split(',')
        .filter(|kv| {
            let key = kv.split('=').next().unwrap_or("").trim();
            !kv.trim().is_empty() && key != "service.name" && key != "service.instance.id"
        })
        .map(str::to_string)
        .collect();
    otel.push(format!("service.name={service}"));
    otel.push(format!(
        "service.instance.id={}",
        plan.run_id.replace(',', ";")
    ));
    vec![
        ("OPENWORK".into(), "1".into()),
        ("OPENWORK_RUN_ID".into(), plan.run_id.clone()),
        (
            "OPENWORK_LOG_FORMAT".into(),
            plan.log_format.as_str().into(),
        ),
        ("OTEL_RESOURCE_ATTRIBUTES".into(), otel.join(",")),
    ]
}

fn program_args(bin: &ResolvedSidecar, args: Vec<String>) -> (camino::Utf8PathBuf, Vec<String>) {
    let mut all = bin.args_prefix.clone();
    all.extend(args);
    (bin.path.clone(), all)
}

/// `opencode serve --hostname 127.0.0.1 --port P [--log-level L] --cors O…`, cwd = workspace.
pub fn opencode_spec(plan: &RunPlan, set: &SidecarSet, ports: &Ports) -> ServiceSpec {
    let mut args = vec![
        "serve".to_string(),
        "--hostname".into(),
        "127.0.0.1".into(),
        "--port".into(),
        ports.opencode.to_string(),
    ];
    if let Some(level) = plan.opencode_log_level {
        args.push("--log-level".into());
        args.push(format!("{level:?}").to_uppercase());
    }
    for origin in &plan.cors {
        args.push("--cors".into());
        args.push(origin.clone());
    }
    let (program, args) = program_args(&set.opencode, args);
    let c = &plan.credentials;
    let mut env = common_env(plan, "opencode");
    env.extend([
        ("OPENCODE_CLIENT".into(), "openwork-orchestrator".into()),
        (
            "OPENCODE_SERVER_USERNAME".into(),
            c.opencode_username.clone(),
        ),
        (
            "OPENCODE_SERVER_PASSWORD".into(),
            c.opencode_password.clone(),
        ),
        (
            "OPENCODE_CONFIG_DIR".into(),
            plan.opencode_config_dir().to_string(),
        ),
    ]);
    ServiceSpec {
        name: "opencode",
        launch: Launch::Process(ProcessSpec {
            program,
            args,
            env,
            env_remove: OPENWORK_SECRETS.iter().map(|s| s.to_string()).collect(),
            cwd: plan.workspace.clone(),
        }),
        health: HealthCheck::Opencode {
            base_url: opencode_url(ports),
            username: c.opencode_username.clone(),
            password: c.opencode_password.clone(),
        },
        ready_line: true,
        required: true,
    }
}

/// opencode as a sandboxed service.
pub fn sandbox_opencode_spec(
    plan: &RunPlan,
    backend: std::sync::Arc<dyn openwork_backends::SandboxBackend>,
    sandbox_plan: openwork_backends::SandboxPlan,
    ports: &Ports,
) -> ServiceSpec {
    let c = &plan.credentials;
    ServiceSpec {
        name: "opencode",
        launch: Launch::Sandbox {
            backend,
            plan: Box::new(sandbox_plan),
        },
        health: HealthCheck::Opencode {
            base_url: opencode_url(ports),
            username: c.opencode_username.clone(),
            password: c.opencode_password.clone(),
        },
        ready_line: true,
        required: true,
    }
}

/// openwork-server with the original's flags; tokens and opencode credentials only in env.
pub fn server_spec(plan: &RunPlan, set: &SidecarSet, ports: &Ports) -> ServiceSpec {
    let mut args = vec![
        "--host".to_string(),
        plan.openwork_bind_host.clone(),
        "--port".into(),
        ports.openwork.to_string(),
        "--workspace".into(),
        plan.workspace.to_string(),
        "--approval".into(),
        plan.approval.as_str().into(),
        "--approval-timeout".into(),
        plan.approval_timeout_ms.to_string(),
    ];
    if plan.read_only {
        args.push("--read-only".into());
    }
    args.extend([
        "--cors".into(),
        plan.cors.join(","),
        "--opencode-base-url".into(),
        opencode_url(ports),
        "--opencode-directory".into(),
        plan.opencode_directory(),
        "--log-format".into(),
        plan.log_format.as_str().into(),
    ]);
    let (program, args) = program_args(&set.server, args);
    let c = &plan.credentials;
    let mut env = common_env(plan, "openwork-server");
    env.extend([
        ("OPENWORK_TOKEN".into(), c.client_token.clone()),
        ("OPENWORK_HOST_TOKEN".into(), c.host_token.clone()),
        // Tokens issued during this run (the owner token) live and die with the run: a shared
        // store would keep every past run's owner token valid forever.
        (
            "OPENWORK_TOKEN_STORE".into(),
            plan.run_dir().join("tokens.json").to_string(),
        ),
        ("OPENWORK_OPENCODE_BASE_URL".into(), opencode_url(ports)),
        (
            "OPENWORK_OPENCODE_DIRECTORY".into(),
            plan.workspace.to_string(),
        ),
        (
            "OPENWORK_OPENCODE_USERNAME".into(),
            c.opencode_username.clone(),
        ),
        (
            "OPENWORK_OPENCODE_PASSWORD".into(),
            c.opencode_password.clone(),
        ),
    ]);
    if set.router.is_some() {
        env.push((
            "OPENCODE_ROUTER_HEALTH_PORT".into(),
            ports.router_health.to_string(),
        ));
        // openwork-server's router routes call the router's control API with this token.
        env.push((
            "OPENCODE_ROUTER_TOKEN".into(),
            plan.credentials.router_token.clone(),
        ));
    }
    ServiceSpec {
        name: "openwork-server",
        launch: Launch::Process(ProcessSpec {
            program,
            args,
            env,
            env_remove: vec![
                "OPENCODE_SERVER_USERNAME".into(),
                "OPENCODE_SERVER_PASSWORD".into(),
            ],
            cwd: plan.workspace.clone(),
        }),
        health: HealthCheck::Http {
            url: format!("{}/health", openwork_local_url(ports)),
        },
        ready_line: false,
        required: true,
    }
}

/// `opencode-router serve <ws> --opencode-url <url>` with its health port in env.
pub fn router_spec(plan: &RunPlan, router: &ResolvedSidecar, ports: &Ports) -> ServiceSpec {
    let args = vec![
        "serve".to_string(),
        plan.workspace.to_string(),
        "--opencode-url".into(),
        opencode_url(ports),
    ];
    let (program, args) = program_args(router, args);
    let c = &plan.credentials;
    let mut env = common_env(plan, "opencode-router");
    env.extend([
        ("OPENCODE_URL".into(), opencode_url(ports)),
        ("OPENCODE_DIRECTORY".into(), plan.opencode_directory()),
        (
            "OPENCODE_ROUTER_HEALTH_PORT".into(),
            ports.router_health.to_string(),
        ),
        (
            "OPENCODE_SERVER_USERNAME".into(),
            c.opencode_username.clone(),
        ),
        (
            "OPENCODE_SERVER_PASSWORD".into(),
            c.opencode_password.clone(),
        ),
        (
            "OPENCODE_ROUTER_DATA_DIR".into(),
            plan.data_dir.join("opencode-router").to_string(),
        ),
        // The control API's bearer token (in the environment only, never on argv).
        ("OPENCODE_ROUTER_TOKEN".into(), c.router_token.clone()),
    ]);
    ServiceSpec {
        name: "opencode-router",
        launch: Launch::Process(ProcessSpec {
            program,
            args,
            env,
            env_remove: OPENWORK_SECRETS.iter().map(|s| s.to_string()).collect(),
            cwd: plan.workspace.clone(),
        }),
        health: HealthCheck::Http {
            url: format!("http://127.0.0.1:{}/health", ports.router_health),
        },
        ready_line: false,
        required: plan.router_required,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::sidecars::{SidecarName, Source};
    use clap::Parser;

    fn plan(dir: &std::path::Path, extra: &[&str]) -> RunPlan {
        let ws = dir.to_str().unwrap();
        let mut argv = vec!["openwork", "serve", "--workspace", ws, "--data-dir", ws];
        argv.extend_from_slice(extra);
        let Some(Command::Serve(a)) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        RunPlan::from_args(&a, false).unwrap()
    }

    fn bin(name: SidecarName, path: &str, prefix: &[&str]) -> ResolvedSidecar {
        ResolvedSidecar {
            name,
            path: path.into(),
            source: Source::Bundled,
            version: None,
            args_prefix: prefix.iter().map(|s| s.to_string()).collect(),
            attempts: vec![],
        }
    }

    fn set() -> SidecarSet {
        SidecarSet {
            opencode: bin(SidecarName::Opencode, "/c/opencode", &[]),
            server: bin(SidecarName::OpenworkServer, "/c/openwork", &["server"]),
            router: Some(bin(SidecarName::OpencodeRouter, "/c/openwork", &["router"])),
        }
    }

    fn process_of(spec: &ServiceSpec) -> &ProcessSpec {
        match &spec.launch {
            Launch::Process(p) => p,
            Launch::Sandbox { .. } => panic!("not a process"),
        }
    }

    const PORTS: Ports = Ports {
        opencode: 4100,
        openwork: 8787,
        router_health: 4200,
    };

    fn env<'a>(spec: &'a ServiceSpec, key: &str) -> Option<&'a str> {
        let Launch::Process(process) = &spec.launch else {
            panic!("not a process")
        };
        process
            .env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn opencode_command_line_and_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(
            dir.path(),
            &["--cors", "https://a.example,https://b.example"],
        );
        let spec = opencode_spec(&p, &set(), &PORTS);
        assert_eq!(
            process_of(&spec).args,
            [
                "serve",
                "--hostname",
                "127.0.0.1",
                "--port",
                "4100",
                "--cors",
                "https://a.example",
                "--cors",
                "https://b.example"
            ]
        );
        assert_eq!(env(&spec, "OPENCODE_SERVER_PASSWORD").unwrap().len(), 512);
        assert!(env(&spec, "OPENWORK_TOKEN").is_none());
        assert!(
            process_of(&spec)
                .env_remove
                .contains(&"OPENWORK_HOST_TOKEN".to_string())
        );
        assert_eq!(process_of(&spec).cwd, p.workspace);
    }

    #[test]
    fn server_gets_tokens_in_env_not_argv() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(dir.path(), &["--approval", "auto", "--read-only"]);
        let spec = server_spec(&p, &set(), &PORTS);
        assert_eq!(process_of(&spec).args[0], "server");
        let joined = process_of(&spec).args.join(" ");
        assert!(joined.contains("--approval auto --approval-timeout 30000 --read-only --cors *"));
        assert!(!joined.contains(&p.credentials.client_token));
        assert!(!joined.contains(&p.credentials.host_token));
        assert_eq!(
            env(&spec, "OPENWORK_TOKEN"),
            Some(p.credentials.client_token.as_str())
        );
        assert_eq!(env(&spec, "OPENCODE_ROUTER_HEALTH_PORT"), Some("4200"));
    }

    #[test]
    fn otel_attributes_come_from_the_plan_with_the_service_name_ours() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = plan(dir.path(), &[]);
        p.otel_resource_attributes = "service.name=theirs,team=a".into();
        let spec = server_spec(&p, &set(), &PORTS);
        let otel = env(&spec, "OTEL_RESOURCE_ATTRIBUTES").unwrap();
        assert!(
            otel.starts_with("team=a,service.name=openwork-server,service.instance.id="),
            "{otel}"
        );
    }

    #[test]
    fn router_has_no_openwork_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(dir.path(), &["--opencode-router-required"]);
        let s = set();
        let spec = router_spec(&p, s.router.as_ref().unwrap(), &PORTS);
        assert!(spec.required);
        assert_eq!(&process_of(&spec).args[..2], ["router", "serve"]);
        assert!(env(&spec, "OPENWORK_TOKEN").is_none());
        assert!(env(&spec, "OPENWORK_HOST_TOKEN").is_none());
        assert_eq!(env(&spec, "OPENCODE_ROUTER_HEALTH_PORT"), Some("4200"));
    }
}
