//! Sandbox mode in the orchestrator: picks the backend (`--sandbox auto|docker|container`),
//! removes orphans of killed runs, checks the binaries that enter the container, prepares the
//! persist dir, and turns the run plan into opencode's sandboxed service.
//!
//! `auto` never falls back to an unsandboxed run: when no engine is usable it is an error that
//! names the options (the original silently ran on the host).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use camino::Utf8PathBuf;
use serde_json::json;

use openwork_backends::apple::AppleContainerBackend;
use openwork_backends::docker::{DockerBackend, EngineProbe};
use openwork_backends::elf::{Arch, check_linux_executable};
use openwork_backends::{SandboxBackend, persist};

use crate::cli::{SandboxArg, SandboxSidecarsArg, SourceArg};
use crate::logs::{LogSink, ORCHESTRATOR};
use crate::plan::{RunPlan, SandboxSettings};
use crate::services::{Ports, SidecarSet, sandbox_opencode_spec, sandbox_plan};
use crate::sidecars::{
    LiveProgress, ResolveSettings, Resolver, SidecarName, SidecarRequest, SourcePolicy, Target,
};
use crate::supervisor::ServiceSpec;

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

/// Where the container's Linux binaries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutSource {
    /// This host's opencode and this executable (a Linux host of the container's architecture).
    Host,
    /// Downloads for `linux-<arch>`: opencode from the manifest or npm, openwork (the
    /// multi-call binary, published as the manifest's `openwork-server` entry) from the manifest.
    Downloaded,
}

/// Pure choice of [`LayoutSource`] (`--sandbox-sidecars`).
pub fn layout_source(
    flag: SandboxSidecarsArg,
    host_is_linux: bool,
) -> Result<LayoutSource, String> {
    match (flag, host_is_linux) {
        (SandboxSidecarsArg::Host, false) => Err(
            "--sandbox-sidecars host needs a Linux host; use --sandbox-sidecars downloaded (the default here)".into(),
        ),
        (SandboxSidecarsArg::Host, true) | (SandboxSidecarsArg::Auto, true) => Ok(LayoutSource::Host),
        (SandboxSidecarsArg::Downloaded, _) | (SandboxSidecarsArg::Auto, false) => {
            Ok(LayoutSource::Downloaded)
        }
    }
}

/// The Linux opencode and openwork executables mounted into the container.
async fn linux_binaries(
    plan: &RunPlan,
    sb: &SandboxSettings,
    sidecars: &SidecarSet,
    arch: Arch,
    sink: &LogSink,
) -> anyhow::Result<(Utf8PathBuf, Utf8PathBuf)> {
    let source = layout_source(sb.sidecars, cfg!(target_os = "linux")).map_err(|e| anyhow!(e))?;
    if source == LayoutSource::Host {
        let exe = std::env::current_exe().context("locating this executable")?;
        let exe = Utf8PathBuf::from_path_buf(exe)
            .map_err(|p| anyhow!("this executable's path is not UTF-8: {}", p.display()))?;
        return Ok((sidecars.opencode.path.clone(), exe));
    }
    let target = match arch {
        Arch::X86_64 => Target::LINUX_X64,
        Arch::Aarch64 => Target::LINUX_ARM64,
    };
    let sp = &plan.sidecars;
    let mut settings = ResolveSettings::new(sp.dir.clone(), sp.base_url.clone(), target);
    settings.manifest_url = sp.manifest_url.clone();
    settings.allow_external = sp.allow_external;
    settings.verify = sp.verify;
    let resolver = Resolver::new(settings, Box::new(LiveProgress::new(sink.verbose())));
    // An explicit opencode binary is used as given (its ELF header is checked by the caller).
    let opencode = if let Some(bin) = &sp.opencode_bin {
        bin.clone()
    } else {
        let policy = match sp.opencode_source {
            SourceArg::Npm => SourcePolicy::Npm,
            SourceArg::External => SourcePolicy::External,
            // Bundled means "next to this executable", which is not a Linux binary here.
            _ => SourcePolicy::Downloaded,
        };
        match resolver
            .resolve(&SidecarRequest::new(SidecarName::Opencode, policy))
            .await
        {
            Ok(r) => r.path,
            Err(first) if policy == SourcePolicy::Downloaded => {
                resolver
                    .resolve(&SidecarRequest::new(
                        SidecarName::Opencode,
                        SourcePolicy::Npm,
                    ))
                    .await
                    .map_err(|second| {
                        anyhow!("Linux opencode for the sandbox ({target}): {first}\n{second}")
                    })?
                    .path
            }
            Err(e) => return Err(anyhow!("Linux opencode for the sandbox ({target}): {e}")),
        }
    };
    let openwork = resolver
        .resolve(&SidecarRequest::new(
            SidecarName::OpenworkServer,
            SourcePolicy::Downloaded,
        ))
        .await
        .map_err(|e| anyhow!("Linux openwork executable for the sandbox ({target}): {e}"))?;
    sink.info(
        ORCHESTRATOR,
        "Sandbox uses downloaded Linux binaries",
        json!({ "target": target.to_string(), "opencode": opencode, "openwork": openwork.path }),
    );
    Ok((opencode, openwork.path))
}

/// opencode is mounted through its directory: when that directory holds anything besides the
/// binary and its stamp (an explicit `--opencode-bin /usr/bin/opencode`), the binary is staged
/// alone first so nothing else of the host becomes visible in the sandbox.
fn isolate_opencode(
    bin: &camino::Utf8Path,
    persist_dir: &camino::Utf8Path,
) -> anyhow::Result<Utf8PathBuf> {
    let name = bin.file_name().unwrap_or("opencode");
    let stamp = format!("{name}.stamp.json");
    let dir = bin.parent().unwrap_or(camino::Utf8Path::new("/"));
    let alone = std::fs::read_dir(dir)
        .with_context(|| format!("reading {dir}"))?
        .flatten()
        .all(|e| e.file_name() == name || e.file_name().to_str() == Some(stamp.as_str()));
    if alone {
        return Ok(bin.to_path_buf());
    }
    let staged = persist::stage_alone(bin, persist_dir, "opencode-bin", "opencode")?;
    Ok(staged.join("opencode"))
}

/// Prepares everything the container needs and returns opencode's sandboxed service.
pub async fn opencode_service(
    plan: &RunPlan,
    sb: &SandboxSettings,
    backend: Arc<dyn SandboxBackend>,
    sidecars: &SidecarSet,
    ports: &Ports,
    sink: &LogSink,
) -> anyhow::Result<ServiceSpec> {
    match backend.remove_orphans().await {
        Ok(removed) if !removed.is_empty() => sink.warn(
            ORCHESTRATOR,
            "Removed sandbox containers left behind by a killed run",
            json!({ "containers": removed }),
        ),
        Ok(_) => {}
        Err(e) => sink.warn(
            ORCHESTRATOR,
            "Could not look for orphaned sandbox containers",
            json!({ "error": e.to_string() }),
        ),
    }
    let arch =
        Arch::host().ok_or_else(|| anyhow!("sandbox mode needs an x86_64 or aarch64 host"))?;
    let (opencode_bin, exe) = linux_binaries(plan, sb, sidecars, arch, sink).await?;
    check_linux_executable(&opencode_bin, arch)
        .context("the opencode binary cannot run in the Linux sandbox")?;
    check_linux_executable(&exe, arch)
        .context("the openwork executable cannot run in the sandbox")?;

    let host_data = if sb.copy_auth {
        let home = std::env::var("HOME").unwrap_or_default();
        let xdg = std::env::var("XDG_DATA_HOME").ok();
        Some(persist::host_opencode_data_dir(
            xdg.as_deref(),
            camino::Utf8Path::new(&home),
        ))
    } else {
        None
    };
    let prepared = persist::prepare(&sb.persist_dir, host_data.as_deref())?;
    sink.info(
        ORCHESTRATOR,
        "Sandbox persist dir ready",
        json!({ "path": sb.persist_dir, "credentialsCopied": prepared.copied }),
    );
    let user = format!(
        "{}:{}",
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw()
    );
    let opencode_bin = isolate_opencode(&opencode_bin, &sb.persist_dir)?;
    let splan = sandbox_plan(plan, sb, &opencode_bin, &exe, ports, user);
    sink.info(
        ORCHESTRATOR,
        "Starting sandbox",
        json!({ "backend": backend.name(), "container": splan.name, "image": splan.image }),
    );
    Ok(sandbox_opencode_spec(plan, backend, splan, ports))
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn layout_follows_the_host() {
        use SandboxSidecarsArg::*;
        assert_eq!(layout_source(Auto, true), Ok(LayoutSource::Host));
        assert_eq!(layout_source(Auto, false), Ok(LayoutSource::Downloaded));
        assert_eq!(
            layout_source(Downloaded, true),
            Ok(LayoutSource::Downloaded)
        );
        assert!(
            layout_source(Host, false)
                .unwrap_err()
                .contains("Linux host")
        );
    }

    #[test]
    fn opencode_is_mounted_alone() {
        let t = tempfile::tempdir().unwrap();
        let root = camino::Utf8Path::from_path(t.path()).unwrap();
        let bin_dir = root.join("bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::write(bin_dir.join("opencode"), "x").unwrap();
        std::fs::write(bin_dir.join("opencode.stamp.json"), "{}").unwrap();
        let persist = root.join("persist");
        // Only the binary and its stamp: mounted where it is.
        assert_eq!(
            isolate_opencode(&bin_dir.join("opencode"), &persist).unwrap(),
            bin_dir.join("opencode")
        );
        // Anything else beside it: staged alone next to the persist dir.
        std::fs::write(bin_dir.join("secret.txt"), "s").unwrap();
        let staged = isolate_opencode(&bin_dir.join("opencode"), &persist).unwrap();
        assert_ne!(staged, bin_dir.join("opencode"));
        let names: Vec<_> = std::fs::read_dir(staged.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("opencode")]);
    }
}
