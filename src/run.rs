//! One run of `openwork start`/`serve` in host mode: plan → sidecars → supervisor → output.
//!
//! Signal handlers are installed before the first process is spawned, so a SIGINT/SIGTERM at any
//! point stops whatever was started (the original orphaned its children before "ready").

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};

use crate::check::{CheckTarget, run_checks};
use crate::cli::SourceArg;
use crate::logs::{LogSink, ORCHESTRATOR, Output};
use crate::output::{Ready, service_records, write_run_state};
use crate::plan::{DEFAULT_OPENWORK_PORT, RunMode, RunPlan};
use crate::ports::{check_free, free_port, requested_or_free};
use crate::runs::record::{RunKind, RunRecord, SandboxRecord};
use crate::services::{
    Ports, SidecarSet, opencode_spec, openwork_local_url, router_spec, server_spec,
};
use crate::sidecars::{
    LiveProgress, ResolveSettings, ResolvedSidecar, Resolver, SidecarName, SidecarRequest,
    SourcePolicy, Target,
};
use crate::supervisor::log_stream::LogStream;
use crate::supervisor::{RestartPolicy, Supervisor, SupervisorOptions};

/// How the run ended, as a process exit code.
pub type ExitCode = i32;

/// Runs the plan to completion and returns the exit code.
pub async fn run(plan: RunPlan) -> anyhow::Result<ExitCode> {
    // The dashboard takes the terminal first: if it cannot, nothing was started yet.
    let terminal = match plan.tui_requested {
        true => Some(crate::tui::TerminalGuard::take()?),
        false => None,
    };
    let output = match (plan.json, terminal.is_some()) {
        (_, true) => Output::Silent,
        (true, false) => Output::Stderr,
        (false, false) => Output::Stdout,
    };
    let sink = Arc::new(LogSink::new(
        plan.log_format,
        plan.color,
        plan.verbose,
        plan.run_id.clone(),
        output,
        plan.credentials.secret_values(),
    ));
    sink.info(
        ORCHESTRATOR,
        "Run starting",
        json!({ "workspace": plan.workspace, "runId": plan.run_id, "logFormat": plan.log_format.as_str() }),
    );

    let guards = GitGuards::default();
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;

    let detach_dir = (plan.mode == RunMode::Detach).then(|| plan.run_dir());
    let watchdog = match detach_dir {
        Some(_) => None,
        None => Some(Arc::new(
            crate::watchdog::Watchdog::spawn().context("starting the watchdog process")?,
        )),
    };
    let mut supervisor = Supervisor::new(
        vec![Arc::new(LogStream(sink.clone()))],
        SupervisorOptions {
            health_timeout: plan.health_timeout,
            restart: RestartPolicy {
                max_restarts: plan.max_restarts,
                ..RestartPolicy::default()
            },
            grace: Duration::from_secs(5),
            detach_dir: detach_dir.clone(),
            // The dashboard can detach: its services write to files it reads back.
            output_dir: plan.tui_requested.then(|| plan.run_dir()),
            watchdog,
        },
    );
    let mut dash = crate::tui::launch::DashboardTask::start(terminal, &plan, &supervisor, &sink);
    let result = run_supervised(
        &plan,
        &sink,
        &mut supervisor,
        &mut dash,
        Signals {
            int: &mut sigint,
            term: &mut sigterm,
            hup: &mut sighup,
        },
        &guards,
    )
    .await;
    // Whatever happened, the terminal is back before anything more is printed.
    dash.finish().await;
    result
}

/// The run's signal streams.
struct Signals<'a> {
    int: &'a mut tokio::signal::unix::Signal,
    term: &'a mut tokio::signal::unix::Signal,
    hup: &'a mut tokio::signal::unix::Signal,
}

/// Starts the services and runs the plan's mode to its end.
async fn run_supervised(
    plan: &RunPlan,
    sink: &Arc<LogSink>,
    supervisor: &mut Supervisor,
    dash: &mut crate::tui::launch::DashboardTask,
    signals: Signals<'_>,
    guards: &GitGuards,
) -> anyhow::Result<ExitCode> {
    let Signals {
        int: sigint,
        term: sigterm,
        hup: sighup,
    } = signals;
    let started = tokio::select! {
        r = start_all(plan, sink, supervisor, guards) => r,
        _ = sigint.recv() => Err(Interrupted(130).into()),
        _ = sigterm.recv() => Err(Interrupted(143).into()),
        _ = sighup.recv() => Err(Interrupted(129).into()),
        _ = dash.quit() => Err(Interrupted(0).into()),
    };
    let Started {
        mut sidecars,
        ports,
        router_running,
        verified,
        version_check,
        sandbox,
        isolation,
        egress: _egress,
        egress_report,
    } = match started {
        Ok(v) => v,
        Err(e) => {
            dash.finish().await;
            stop_and_clean(plan, supervisor, guards).await;
            if let Some(Interrupted(code)) = e.downcast_ref::<Interrupted>() {
                sink.warn(ORCHESTRATOR, "Interrupted before ready", Value::Null);
                return Ok(*code);
            }
            return Err(e);
        }
    };
    sink.add_secret(&verified.owner_token);
    if let Some(check) = version_check {
        sidecars.opencode.version = check.await.ok().flatten();
    }
    let ready = Ready {
        plan,
        ports,
        sidecars: &sidecars,
        router_running,
        owner_token: verified.owner_token.clone(),
        workspace_id: verified.workspace_id.clone(),
        openwork_version: verified.openwork_version.clone(),
        opencode_version: sidecars.opencode.version.clone(),
        isolation: isolation.as_ref(),
        egress: egress_report,
    };
    // Every service is healthy here, so the table has each one's running instance. The record
    // is written before the ready output, which names the commands that read it.
    let instances = supervisor.events().table().borrow().instances();
    let dir = plan.run_dir();
    if plan.mode == RunMode::Detach {
        let record = ready.record(RunKind::Detached, sandbox, &instances);
        let creds = write_run_state(&ready, &record, &dir)
            .with_context(|| format!("writing the detached run's state to {dir}"))?;
        print_ready(plan, sink, &ready);
        let summary = ready.detach_summary(&instances, &creds);
        if plan.json {
            eprint!("{summary}");
        } else {
            print!("{summary}");
        }
        supervisor.release();
        return Ok(0);
    }
    // A foreground run records itself too (for `openwork ps|attach|stop`), keeps the record
    // current as services restart, and removes it with the run directory at the end.
    let record = ready.record(RunKind::Foreground, sandbox.clone(), &instances);
    let recorder = match write_run_state(&ready, &record, &dir) {
        Ok(_) => Some(keep_record_current(
            supervisor,
            dir.clone(),
            record,
            sink.clone(),
        )),
        Err(e) => {
            sink.warn(
                ORCHESTRATOR,
                "Could not record the run (openwork ps/stop/attach will not see it)",
                json!({ "dir": dir, "error": e.to_string() }),
            );
            None
        }
    };
    if dash.active() {
        dash.ready(&ready, &verified.owner_token, &ports);
        sink.info(ORCHESTRATOR, "Ready", Value::Null);
    } else {
        print_ready(plan, sink, &ready);
    }

    let code = match plan.mode {
        RunMode::Detach => 0,
        RunMode::Check { events } => {
            let target = CheckTarget {
                openwork_url: openwork_local_url(&ports),
                client_token: plan.credentials.client_token.clone(),
                host_token: plan.credentials.host_token.clone(),
                opencode_url: ready.opencode_url(),
                opencode_username: plan.credentials.opencode_username.clone(),
                opencode_password: plan.credentials.opencode_password.clone(),
                workspace: plan.opencode_directory(),
            };
            let result = tokio::select! {
                r = run_checks(&target, events) => r.map_err(anyhow::Error::from),
                e = supervisor.wait_fatal() => Err(anyhow!(e)),
                _ = sigint.recv() => Err(anyhow!("interrupted during checks")),
                _ = sigterm.recv() => Err(anyhow!("terminated during checks")),
            };
            match result {
                Ok(passed) => {
                    sink.info(ORCHESTRATOR, "Checks ok", json!({ "checks": passed }));
                    if !plan.json && plan.log_format == crate::cli::LogFormat::Pretty {
                        println!("Checks: ok");
                    }
                    0
                }
                Err(e) => {
                    sink.error(
                        ORCHESTRATOR,
                        "Checks failed",
                        json!({ "error": e.to_string() }),
                    );
                    eprintln!("openwork: {e:#}");
                    1
                }
            }
        }
        RunMode::Foreground => {
            tokio::select! {
                e = supervisor.wait_fatal() => {
                    sink.error(ORCHESTRATOR, "Run failed", json!({ "error": e.to_string() }));
                    dash.finish().await;
                    eprintln!("openwork: {e}");
                    1
                }
                _ = sigint.recv() => 0,
                _ = sigterm.recv() => 0,
                _ = sighup.recv(), if dash.active() => 0,
                outcome = dash.quit() => match outcome {
                    crate::tui::Outcome::Detach => {
                        // The dashboard is gone and the terminal restored: the run becomes a
                        // detached one (its record says so), then the summary is printed.
                        if let Some(task) = recorder {
                            task.abort();
                            let _ = task.await;
                        }
                        let instances = supervisor.events().table().borrow().instances();
                        let record = ready.record(RunKind::Detached, sandbox, &instances);
                        let creds = write_run_state(&ready, &record, &dir)
                            .with_context(|| format!("writing the detached run's state to {dir}"))?;
                        supervisor.release();
                        print!("{}", ready.detach_summary(&instances, &creds));
                        return Ok(0);
                    }
                    _ => {
                        eprintln!("openwork: stopping the services…");
                        0
                    }
                }
            }
        }
    };
    if let Some(task) = recorder {
        // Stopped before the directory goes: it must not write a record of a finished run.
        task.abort();
        let _ = task.await;
    }
    dash.finish().await;
    stop_and_clean(plan, supervisor, guards).await;
    Ok(code)
}

/// Rewrites the foreground run's `state.json` whenever a service's instance changes (a restart
/// gives it a new process group or container), so `openwork stop` signals what actually runs.
fn keep_record_current(
    supervisor: &Supervisor,
    dir: camino::Utf8PathBuf,
    mut record: RunRecord,
    sink: Arc<LogSink>,
) -> tokio::task::JoinHandle<()> {
    let mut table = supervisor.events().table();
    tokio::spawn(async move {
        while table.changed().await.is_ok() {
            let instances = table.borrow_and_update().instances();
            let services = service_records(&instances, &dir, false);
            if services == record.services {
                continue;
            }
            record.services = services;
            if let Err(e) = crate::runs::record::write(&dir, &record) {
                sink.warn(
                    ORCHESTRATOR,
                    "Could not update the run's record",
                    json!({ "error": e.to_string() }),
                );
            }
        }
    })
}

/// Stops every service, then removes the run's directory (its token store: tokens issued during
/// a run must not outlive it). Detached runs never come here: they keep theirs.
async fn stop_and_clean(plan: &RunPlan, supervisor: &mut Supervisor, guards: &GitGuards) {
    supervisor.shutdown().await;
    // A repository created for the run's git guard goes again when nothing was committed.
    for guard in guards
        .lock()
        .map(|mut g| std::mem::take(&mut *g))
        .unwrap_or_default()
    {
        let _ = guard.cleanup();
    }
    let dir = plan.run_dir();
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Git guards set up by the run, cleaned up when it stops (also after a failed start).
type GitGuards = std::sync::Mutex<Vec<openwork_backends::git_guard::GitGuard>>;

/// A signal arrived before the run was ready; carries the exit code (130/143).
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted(i32);

/// What `start_all` brings up: everything the ready output and the run's mode need.
struct Started {
    sidecars: SidecarSet,
    ports: Ports,
    /// Whether the optional router came up.
    router_running: bool,
    verified: Verified,
    /// An external opencode's `--version`, still being read.
    version_check: Option<VersionCheck>,
    /// The sandbox engine, for the run's record.
    sandbox: Option<SandboxRecord>,
    /// What the sandbox's isolation read back as.
    isolation: Option<crate::isolation::Report>,
    /// The host side of the egress gate (kept for the whole run).
    egress: Option<crate::egress::Egress>,
    egress_report: Option<crate::egress::EgressReport>,
}

struct Verified {
    owner_token: String,
    workspace_id: Option<String>,
    openwork_version: Option<String>,
}

async fn start_all(
    plan: &RunPlan,
    sink: &Arc<LogSink>,
    supervisor: &mut Supervisor,
    guards: &GitGuards,
) -> anyhow::Result<Started> {
    // A sandbox run checks its engine first: no download before we know it can run.
    let backend = match &plan.sandbox {
        Some(sb) => Some(crate::sandbox::select_backend(sb).await?),
        None => None,
    };
    let (sidecars, version_check) = resolve_sidecars(plan, sink).await?;
    let ports = choose_ports(plan, sink)?;
    std::fs::create_dir_all(plan.opencode_config_dir())
        .with_context(|| format!("creating {}", plan.opencode_config_dir()))?;
    create_private_dir(&plan.run_dir())?;

    let sandbox = backend.as_ref().map(|b| SandboxRecord {
        backend: b.name().to_string(),
        // Apple's CLI is recorded so `openwork stop` drives the same program; Docker goes
        // through its API.
        program: match b.remover("") {
            openwork_backends::remover::Remover::Command { program, .. } => Some(program),
            _ => None,
        },
        isolation: None,
    });
    let sandboxed = match (&plan.sandbox, backend) {
        (Some(sb), Some(backend)) => Some((
            sb,
            crate::sandbox::opencode_service(plan, sb, backend, &sidecars, &ports, sink).await?,
        )),
        _ => None,
    };
    let (isolation, egress, egress_report) = match sandboxed {
        Some((sb, service)) => {
            if let (Some(g), Ok(mut list)) = (service.git_guard.clone(), guards.lock()) {
                list.push(g);
            }
            supervisor.start(service.spec.clone()).await?;
            // opencode's health went through the gate's forward, so the gate is up: it must
            // hold the keys and the policy before the run says it is ready.
            if let Some(e) = &service.egress {
                e.configured(Duration::from_secs(30)).await?;
            }
            let report = crate::sandbox::isolation_report(&service, sb, sink).await?;
            (Some(report), service.egress, Some(service.report))
        }
        None => {
            supervisor
                .start(opencode_spec(plan, &sidecars, &ports))
                .await?;
            (None, None, None)
        }
    };
    supervisor
        .start(server_spec(plan, &sidecars, &ports))
        .await?;
    let verified = verify_server(plan, &ports).await?;
    let router_running = match &sidecars.router {
        Some(router) => supervisor.start(router_spec(plan, router, &ports)).await?,
        None => false,
    };
    Ok(Started {
        sidecars,
        ports,
        router_running,
        verified,
        version_check,
        sandbox,
        isolation,
        egress,
        egress_report,
    })
}

fn create_private_dir(dir: &camino::Utf8Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {dir}"))
}

fn choose_ports(plan: &RunPlan, sink: &LogSink) -> anyhow::Result<Ports> {
    let opencode = requested_or_free("opencode-port", "127.0.0.1", plan.opencode_port)?;
    let host = plan.openwork_bind_host.as_str();
    let openwork = match plan.openwork_port {
        Some(p) => requested_or_free("openwork-port", host, Some(p))?,
        None => match check_free(host, DEFAULT_OPENWORK_PORT) {
            Ok(()) if DEFAULT_OPENWORK_PORT != opencode => DEFAULT_OPENWORK_PORT,
            _ => {
                let port = free_port(host)?;
                sink.info(
                    ORCHESTRATOR,
                    "Default openwork port 8787 is busy; using a free port",
                    json!({ "port": port }),
                );
                port
            }
        },
    };
    let mut router_health = free_port("127.0.0.1")?;
    while router_health == opencode || router_health == openwork {
        router_health = free_port("127.0.0.1")?;
    }
    Ok(Ports {
        opencode,
        openwork,
        router_health,
    })
}

fn policy(arg: SourceArg) -> SourcePolicy {
    match arg {
        SourceArg::Auto => SourcePolicy::Auto,
        SourceArg::Bundled => SourcePolicy::Bundled,
        SourceArg::Downloaded => SourcePolicy::Downloaded,
        SourceArg::External => SourcePolicy::External,
        SourceArg::Npm => SourcePolicy::Npm,
    }
}

/// The `--version` check of an external opencode, running while the services start.
type VersionCheck = tokio::task::JoinHandle<Option<String>>;

async fn resolve_sidecars(
    plan: &RunPlan,
    sink: &Arc<LogSink>,
) -> anyhow::Result<(SidecarSet, Option<VersionCheck>)> {
    let sp = &plan.sidecars;
    let target = Target::host().ok_or_else(|| {
        anyhow!(
            "this platform ({} {}) has no sidecar target; pass --opencode-bin PATH --allow-external",
            std::env::consts::OS,
            std::env::consts::ARCH
        )
    })?;
    if sink.verbose() {
        for (k, v) in [
            ("cli version", env!("CARGO_PKG_VERSION").to_string()),
            ("sandbox", "none".into()),
            ("sidecar target", target.to_string()),
            ("sidecar dir", sp.dir.to_string()),
            ("sidecar base URL", sp.base_url.clone()),
            ("sidecar manifest", sp.manifest_url.clone()),
            ("allow external", sp.allow_external.to_string()),
        ] {
            sink.debug(ORCHESTRATOR, &format!("{k}: {v}"), Value::Null);
        }
    }
    let mut settings = ResolveSettings::new(sp.dir.clone(), sp.base_url.clone(), target);
    settings.manifest_url = sp.manifest_url.clone();
    settings.allow_external = sp.allow_external;
    settings.verify = sp.verify;
    // The dashboard owns the terminal: a fetch's progress lines would draw over it.
    let progress: Box<dyn crate::sidecars::Progress> = match plan.tui_requested {
        true => Box::new(crate::sidecars::NullProgress),
        false => Box::new(LiveProgress::new(sink.verbose())),
    };
    let resolver = Resolver::new(settings, progress);
    let resolve = |name: SidecarName, policy: SourcePolicy, bin: Option<camino::Utf8PathBuf>| {
        let resolver = &resolver;
        async move {
            let mut request = SidecarRequest::new(name, policy);
            request.explicit_bin = bin;
            let r = resolver.resolve(&request).await?;
            Ok::<ResolvedSidecar, anyhow::Error>(r)
        }
    };
    // A sandbox whose binaries are downloaded runs a Linux opencode: resolved for the
    // container's target only, never also for the host's.
    let opencode = match crate::sandbox::opencode_for_container(plan) {
        Some(sb) => crate::sandbox::resolve_opencode(plan, sb, sink).await?,
        None => {
            resolve(
                SidecarName::Opencode,
                policy(sp.opencode_source),
                sp.opencode_bin.clone(),
            )
            .await?
        }
    };
    // An external opencode's version is read in the background: it costs a process start,
    // which would otherwise delay every start-up.
    let version_check = opencode.version.is_none().then(|| {
        let path = opencode.path.clone();
        let sink = sink.clone();
        tokio::spawn(async move { check_opencode_version(&path, &sink).await })
    });
    let server = resolve(
        SidecarName::OpenworkServer,
        policy(sp.sidecar_source),
        sp.server_bin.clone(),
    )
    .await?;
    let router = if plan.router_enabled {
        Some(
            resolve(
                SidecarName::OpencodeRouter,
                policy(sp.sidecar_source),
                sp.router_bin.clone(),
            )
            .await?,
        )
    } else {
        None
    };
    for (label, r) in [
        ("opencode", Some(&opencode)),
        ("openwork-server", Some(&server)),
        ("opencode-router", router.as_ref()),
    ] {
        let Some(r) = r else { continue };
        sink.debug(
            ORCHESTRATOR,
            &format!(
                "{label} bin: {} ({}) version {}",
                r.path,
                r.source,
                r.version.as_deref().unwrap_or("unknown")
            ),
            Value::Null,
        );
    }
    Ok((
        SidecarSet {
            opencode,
            server,
            router,
        },
        version_check,
    ))
}

/// Reads `<bin> --version` of an opencode whose version is not known from its source (an
/// external binary). A different or unreadable version is a warning, not a failure: the person
/// chose this binary explicitly.
async fn check_opencode_version(bin: &camino::Utf8Path, sink: &LogSink) -> Option<String> {
    let pinned = crate::sidecars::OPENCODE_VERSION;
    let run = tokio::process::Command::new(bin.as_std_path())
        .arg("--version")
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let version = match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Ok(out)) => parse_version(&String::from_utf8_lossy(&out.stdout)),
        Ok(Err(e)) => {
            sink.warn(
                ORCHESTRATOR,
                "Cannot run opencode --version",
                json!({ "bin": bin, "error": e.to_string() }),
            );
            return None;
        }
        Err(_) => None,
    };
    match &version {
        Some(v) if v == pinned => {}
        Some(v) => sink.warn(
            ORCHESTRATOR,
            &format!(
                "opencode version mismatch (expected {pinned}, got {v}); proceeding with {bin}"
            ),
            Value::Null,
        ),
        None => sink.warn(
            ORCHESTRATOR,
            &format!(
                "Unable to determine the opencode version of {bin} (expected {pinned}); proceeding"
            ),
            Value::Null,
        ),
    }
    version
}

/// The first `N.N.N[-suffix]` in `text`.
fn parse_version(text: &str) -> Option<String> {
    text.split_whitespace().find_map(|w| {
        let w = w.trim_start_matches('v');
        let core = w.split('-').next()?;
        let parts: Vec<&str> = core.split('.').collect();
        (parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
        .then(|| w.to_string())
    })
}

/// The original's post-start verification: the server lists this workspace with the opencode
/// connection it was given, the host token works, and an owner token can be issued.
async fn verify_server(plan: &RunPlan, ports: &Ports) -> anyhow::Result<Verified> {
    let base = openwork_local_url(ports);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let c = &plan.credentials;
    let health: Value = http
        .get(format!("{base}/health"))
        .send()
        .await?
        .json()
        .await
        .unwrap_or(Value::Null);
    http_json(
        http.get(format!("{base}/approvals"))
            .header("X-OpenWork-Host-Token", &c.host_token),
    )
    .await
    .context("openwork-server GET /approvals with the host token")?;
    let token: Value = http_json(
        http.post(format!("{base}/tokens"))
            .header("X-OpenWork-Host-Token", &c.host_token)
            .json(&json!({ "scope": "owner", "label": "OpenWork owner token" })),
    )
    .await
    .context("openwork-server POST /tokens (owner token)")?;
    let owner_token = token["token"]
        .as_str()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow!("openwork-server did not return an owner token"))?
        .to_string();
    // opencode's credentials are shown to owner-scoped callers only: check them with the owner
    // token just issued.
    let list: Value = http_json(
        http.get(format!("{base}/workspaces"))
            .bearer_auth(&owner_token),
    )
    .await
    .context("openwork-server GET /workspaces with the owner token")?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let ws = items
        .iter()
        .find(|w| w["path"].as_str() == Some(plan.workspace.as_str()))
        .ok_or_else(|| {
            anyhow!(
                "openwork-server does not list the workspace {} (it listed {})",
                plan.workspace,
                items.len()
            )
        })?;
    let oc = &ws["opencode"];
    let expected_url = crate::services::opencode_url(ports);
    if oc["baseUrl"].as_str() != Some(expected_url.as_str()) {
        return Err(anyhow!(
            "openwork-server OpenCode base URL mismatch: expected {expected_url}, got {}",
            oc["baseUrl"]
        ));
    }
    if oc["username"].as_str() != Some(c.opencode_username.as_str())
        || oc["password"].as_str() != Some(c.opencode_password.as_str())
    {
        return Err(anyhow!("openwork-server OpenCode credentials mismatch"));
    }
    Ok(Verified {
        owner_token,
        workspace_id: ws["id"].as_str().map(str::to_string),
        openwork_version: health["version"].as_str().map(str::to_string),
    })
}

async fn http_json(req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let resp = req.send().await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = body["message"].as_str().unwrap_or("");
        return Err(anyhow!("HTTP {} {msg}", status.as_u16()));
    }
    Ok(body)
}

fn print_ready(plan: &RunPlan, sink: &LogSink, ready: &Ready<'_>) {
    if plan.json {
        let doc = ready.json();
        match serde_json::to_string_pretty(&doc) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("openwork: cannot print JSON: {e}"),
        }
        return;
    }
    match plan.log_format {
        crate::cli::LogFormat::Json => {
            let mut doc = ready.json();
            if let Some(obj) = doc.as_object_mut() {
                obj.remove("diagnostics");
            }
            sink.info(ORCHESTRATOR, "Ready", doc);
        }
        crate::cli::LogFormat::Pretty => {
            print!("{}", ready.pretty_block());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_are_parsed() {
        assert_eq!(parse_version("1.18.34\n").as_deref(), Some("1.18.34"));
        assert_eq!(
            parse_version("opencode v1.2.3-beta.1").as_deref(),
            Some("1.2.3-beta.1")
        );
        assert_eq!(parse_version("no version"), None);
    }
}
