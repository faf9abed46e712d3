//! `openwork doctor [--json]`: checks, in order, everything `start` needs on this machine and
//! names the fix for each problem: container engines (Docker, Podman, Apple `container`), the
//! sandbox image, opencode, npm for the first run, the data dir, the default port, a `noexec`
//! temp dir and the clock. Exits 1 when something blocks `start` in the sandbox mode asked about
//! (`--sandbox`, default that of `start`).
//!
//! Threat addressed: a person (or a CI job) learning about a broken machine one failed command
//! at a time, or worse, not at all (an engine that answers for root but not for them). Each probe
//! is read-only and bounded in time; see [`probes`].

pub mod probes;

use std::path::PathBuf;
use std::time::SystemTime;

use camino::Utf8PathBuf;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use probes::{
    AppleProbe, ClockProbe, DataDirProbe, ImageProbe, NpmProbe, OpencodeProbe, PortProbe, Status,
    TempDirProbe,
};

/// The sandbox mode to check for (the values of `start --sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorSandbox {
    None,
    Auto,
    Docker,
    Container,
}

impl DoctorSandbox {
    fn as_str(self) -> &'static str {
        match self {
            DoctorSandbox::None => "none",
            DoctorSandbox::Auto => "auto",
            DoctorSandbox::Docker => "docker",
            DoctorSandbox::Container => "container",
        }
    }
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// One JSON document on stdout (shape in the README).
    #[arg(long)]
    pub json: bool,
    /// The sandbox mode to check for.
    #[arg(
        long,
        env = "OPENWORK_SANDBOX",
        value_enum,
        ignore_case = true,
        default_value = "none"
    )]
    pub sandbox: DoctorSandbox,
    /// Data dir `start` would use (default ~/.openwork).
    #[arg(long, env = "OPENWORK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<Utf8PathBuf>,
    /// Sidecar cache dir (default <data-dir>/sidecars).
    #[arg(long, env = "OPENWORK_SIDECAR_DIR", value_name = "DIR")]
    pub sidecar_dir: Option<Utf8PathBuf>,
    /// An explicit opencode binary `start` would be given.
    #[arg(long, env = "OPENWORK_OPENCODE_BIN", value_name = "PATH")]
    pub opencode_bin: Option<Utf8PathBuf>,
    /// Sandbox image `start` would use.
    #[arg(long, env = "OPENWORK_SANDBOX_IMAGE", value_name = "IMAGE")]
    pub sandbox_image: Option<String>,
    /// An explicit openwork port `start` would be given (default 8787, which falls back).
    #[arg(long, env = "OPENWORK_PORT", value_name = "PORT")]
    pub openwork_port: Option<u16>,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Stable key of the check (`docker`, `podman`, `apple-container`, `image`, `opencode`,
    /// `npm`, `data-dir`, `port`, `temp-dir`, `clock`).
    pub check: &'static str,
    pub status: Status,
    /// The probe's own words: what was found and, for a problem, the fix.
    pub message: String,
}

/// Every finding, in the order checked.
#[derive(Debug, Clone)]
pub struct Report {
    pub sandbox: DoctorSandbox,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn blocking(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.status == Status::Blocking)
    }

    pub fn json(&self) -> Value {
        json!({
            "sandbox": self.sandbox.as_str(),
            "ok": self.blocking().next().is_none(),
            "blocking": self.blocking().count(),
            "checks": self.findings.iter().map(|f| json!({
                "check": f.check,
                "status": f.status.as_str(),
                "message": f.message,
            })).collect::<Vec<_>>(),
        })
    }

    pub fn human(&self) -> String {
        let mut s = format!(
            "openwork doctor (for --sandbox {})\n",
            self.sandbox.as_str()
        );
        for f in &self.findings {
            s.push_str(&format!("  {:<9} {}\n", f.status.as_str(), f.message));
        }
        let n = self.blocking().count();
        if n == 0 {
            s.push_str(&format!(
                "Nothing blocks `openwork start --sandbox {}`.\n",
                self.sandbox.as_str()
            ));
        } else {
            s.push_str(&format!(
                "{n} problem{} block{} `openwork start --sandbox {}`; each line marked blocking names its fix.\n",
                if n == 1 { "" } else { "s" },
                if n == 1 { "s" } else { "" },
                self.sandbox.as_str()
            ));
        }
        s
    }
}

/// Whether this is macOS on Apple silicon (where Apple's `container` runs).
fn apple_silicon() -> bool {
    cfg!(all(target_os = "macos", target_arch = "aarch64"))
}

/// Runs every probe.
pub async fn diagnose(args: &DoctorArgs) -> Report {
    let mode = args.sandbox;
    let mut findings = Vec::new();
    let mut push = |check, status, message: String| {
        findings.push(Finding {
            check,
            status,
            message,
        })
    };

    // Engines.
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let docker =
        probes::probe_engine("Docker", probes::docker_sockets(docker_host.as_deref())).await;
    let xdg = std::env::var("XDG_RUNTIME_DIR").ok();
    let uid = nix::unistd::getuid().as_raw();
    let podman = probes::probe_engine("Podman", probes::podman_sockets(xdg.as_deref(), uid)).await;
    let apple = probes::probe_apple(apple_silicon());
    let apple_ok = matches!(apple, AppleProbe::Found { .. });
    let docker_ok = docker.reachable().is_some();
    let docker_status = match (mode, docker_ok) {
        (_, true) => Status::Ok,
        (DoctorSandbox::Docker, false) => Status::Blocking,
        (DoctorSandbox::Auto, false) if !apple_ok => Status::Blocking,
        _ => Status::Skipped,
    };
    push("docker", docker_status, docker.to_string());
    let podman_status = if podman.reachable().is_some() {
        Status::Ok
    } else {
        Status::Skipped
    };
    push("podman", podman_status, podman.to_string());
    let apple_status = match (mode, &apple) {
        (_, AppleProbe::Found { .. }) => Status::Ok,
        (DoctorSandbox::Container, _) => Status::Blocking,
        _ => Status::Skipped,
    };
    push("apple-container", apple_status, apple.to_string());

    // The sandbox image, in the engine a Docker sandbox would use.
    let image = args
        .sandbox_image
        .clone()
        .unwrap_or_else(|| crate::plan::DEFAULT_SANDBOX_IMAGE.to_string());
    let socket = docker.reachable().map(|(p, _)| p.to_path_buf());
    let image_probe =
        probes::probe_image(socket.as_deref(), &image, crate::sandbox::IMAGE_BUILD_HINT).await;
    let uses_docker =
        matches!(mode, DoctorSandbox::Docker) || (mode == DoctorSandbox::Auto && !apple_ok);
    let image_status = match (&image_probe, uses_docker) {
        (ImageProbe::Present { .. }, _) => Status::Ok,
        (ImageProbe::Missing { .. } | ImageProbe::Unreadable { .. }, true) => Status::Blocking,
        _ => Status::Skipped,
    };
    push("image", image_status, image_probe.to_string());

    // opencode and npm.
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => match std::env::var("HOME") {
            Ok(h) if !h.is_empty() => Utf8PathBuf::from(h).join(".openwork"),
            _ => Utf8PathBuf::from(".openwork"),
        },
    };
    let sidecar_dir = args
        .sidecar_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("sidecars"));
    let opencode = probes::probe_opencode(&sidecar_dir, args.opencode_bin.as_deref());
    let npm = probes::probe_npm();
    let npm_found = matches!(npm, NpmProbe::Found { .. });
    let needs_fetch = matches!(
        opencode,
        OpencodeProbe::NotCached { .. } | OpencodeProbe::Corrupt { .. }
    );
    let opencode_status = match &opencode {
        OpencodeProbe::Verified { .. } | OpencodeProbe::Explicit { .. } => Status::Ok,
        OpencodeProbe::NotCached { .. } if npm_found => Status::Ok,
        OpencodeProbe::Corrupt { .. } if npm_found => Status::Warn,
        _ => Status::Blocking,
    };
    push("opencode", opencode_status, opencode.to_string());
    let npm_status = match (npm_found, needs_fetch) {
        (true, _) => Status::Ok,
        (false, true) => Status::Blocking,
        (false, false) => Status::Skipped,
    };
    push("npm", npm_status, npm.to_string());

    // Data dir, port, temp dir, clock.
    let dd = probes::probe_data_dir(&data_dir);
    let dd_status = match dd {
        DataDirProbe::Writable { .. } => Status::Ok,
        DataDirProbe::NotWritable { .. } => Status::Blocking,
    };
    push("data-dir", dd_status, dd.to_string());
    let port = probes::probe_port(
        "127.0.0.1",
        args.openwork_port
            .unwrap_or(crate::plan::DEFAULT_OPENWORK_PORT),
        args.openwork_port.is_some(),
    );
    let port_status = match port {
        PortProbe::Free { .. } => Status::Ok,
        PortProbe::Busy { explicit: true, .. } => Status::Blocking,
        PortProbe::Busy {
            explicit: false, ..
        } => Status::Warn,
    };
    push("port", port_status, port.to_string());
    let tmp: PathBuf = std::env::temp_dir();
    let temp = probes::probe_temp_dir(&tmp);
    let temp_status = match temp {
        TempDirProbe::Exec { .. } => Status::Ok,
        _ => Status::Warn,
    };
    push("temp-dir", temp_status, temp.to_string());
    let clock = probes::probe_clock(SystemTime::now());
    let clock_status = match (&clock, needs_fetch) {
        (ClockProbe::Sane, _) => Status::Ok,
        // The first run's npm fetch goes over TLS.
        (ClockProbe::Behind { .. }, true) => Status::Blocking,
        (ClockProbe::Behind { .. }, false) => Status::Warn,
    };
    push("clock", clock_status, clock.to_string());

    Report {
        sandbox: mode,
        findings,
    }
}

/// `openwork doctor`: prints the report; exit 1 when something blocks `start`.
pub async fn run(args: &DoctorArgs) -> i32 {
    let report = diagnose(args).await;
    if args.json {
        match serde_json::to_string_pretty(&report.json()) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("openwork: cannot print JSON: {e}");
                return 1;
            }
        }
    } else {
        print!("{}", report.human());
    }
    if report.blocking().next().is_some() {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_what_blocks() {
        let r = Report {
            sandbox: DoctorSandbox::Docker,
            findings: vec![
                Finding {
                    check: "docker",
                    status: Status::Blocking,
                    message: "no socket".into(),
                },
                Finding {
                    check: "port",
                    status: Status::Warn,
                    message: "busy".into(),
                },
            ],
        };
        let j = r.json();
        assert_eq!(j["ok"], false);
        assert_eq!(j["blocking"], 1);
        assert_eq!(j["checks"][0]["check"], "docker");
        assert_eq!(j["checks"][1]["status"], "warn");
        let text = r.human();
        assert!(text.contains("blocking  no socket"), "{text}");
        assert!(text.contains("1 problem blocks"), "{text}");
    }
}
