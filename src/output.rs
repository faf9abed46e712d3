//! What a person (or a script) sees once the services are ready: the pairing block, the `--json`
//! document, the `--detach` summary and the detached run's state file.
//!
//! Secrets: the pretty block and the detach summary never print a token or password (they say
//! which were issued); `--json` is the one explicit way to get raw credentials on stdout, and it
//! prints exactly one JSON document there (logs go to stderr). Every run writes its credentials
//! to a 0600 file beside its record and prints the file's path when detached; the ready block and
//! the detach summary name the `openwork ps|logs|attach|stop` commands instead of a raw `kill`
//! line or an attach command line.

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Value, json};

use crate::plan::{RunMode, RunPlan};
use crate::runs::record::{RunKind, RunRecord, SandboxRecord, ServiceRecord};
use crate::services::{Ports, SidecarSet, opencode_url};
use crate::supervisor::Instance;

/// Everything known once the run is ready.
pub struct Ready<'a> {
    pub plan: &'a RunPlan,
    pub ports: Ports,
    pub sidecars: &'a SidecarSet,
    pub router_running: bool,
    pub owner_token: String,
    pub workspace_id: Option<String>,
    pub openwork_version: Option<String>,
    pub opencode_version: Option<String>,
    /// The sandbox's isolation as read back (sandboxed runs).
    pub isolation: Option<&'a crate::isolation::Report>,
    /// The sandbox's egress (sandbox runs only).
    pub egress: Option<crate::egress::EgressReport>,
}

impl Ready<'_> {
    pub fn openwork_base_url(&self) -> String {
        let host = if self.plan.openwork_bind_host == "0.0.0.0" {
            "127.0.0.1"
        } else {
            self.plan.openwork_bind_host.as_str()
        };
        format!("http://{host}:{}", self.ports.openwork)
    }

    /// URL remote clients use: the LAN address with remote access, else loopback.
    pub fn openwork_connect_url(&self) -> String {
        if !self.plan.remote_access {
            return self.openwork_base_url();
        }
        let host = self
            .plan
            .connect_host
            .clone()
            .or_else(lan_ipv4)
            .unwrap_or_else(|| "127.0.0.1".into());
        format!("http://{host}:{}", self.ports.openwork)
    }

    pub fn opencode_url(&self) -> String {
        opencode_url(&self.ports)
    }

    /// The `--json` document (shape of the original's, plus the router).
    pub fn json(&self) -> Value {
        let p = self.plan;
        let c = &p.credentials;
        let bin = |b: &crate::sidecars::ResolvedSidecar| {
            json!({
                "name": b.name.as_str(),
                "path": b.path,
                "source": b.source.to_string(),
                "actualVersion": b.version,
                "attempts": b.attempts.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            })
        };
        json!({
            "runId": p.run_id,
            "workspace": p.workspace,
            "workspaceId": self.workspace_id,
            "approval": { "mode": p.approval.as_str(), "timeoutMs": p.approval_timeout_ms, "readOnly": p.read_only },
            "opencode": {
                "baseUrl": self.opencode_url(),
                "connectUrl": self.opencode_url(),
                "username": c.opencode_username,
                "password": c.opencode_password,
                "bindHost": "127.0.0.1",
                "port": self.ports.opencode,
                "hotReload": { "enabled": false },
                "version": self.opencode_version,
            },
            "openwork": {
                "baseUrl": self.openwork_base_url(),
                "connectUrl": self.openwork_connect_url(),
                "host": p.openwork_bind_host,
                "port": self.ports.openwork,
                "collaboratorToken": c.client_token,
                "ownerToken": self.owner_token,
                "token": c.client_token,
                "hostToken": c.host_token,
                "version": self.openwork_version,
            },
            "sandbox": p.sandbox.as_ref().map(|sb| json!({
                "kind": format!("{:?}", sb.kind).to_lowercase(),
                "image": sb.image,
                "user": { "uid": sb.user.uid, "gid": sb.user.gid, "rule": sb.user.choice.as_str() },
                "strict": sb.strict,
                "egress": self.egress.as_ref().map(|e| e.json()),
                "isolation": self.isolation.map(|r| r.json()),
            })),
            "opencodeRouter": {
                "enabled": p.router_enabled,
                "running": self.router_running,
                "healthPort": p.router_enabled.then_some(self.ports.router_health),
            },
            "diagnostics": {
                "cliVersion": env!("CARGO_PKG_VERSION"),
                "sidecar": {
                    "dir": p.sidecars.dir,
                    "baseUrl": p.sidecars.base_url,
                    "manifestUrl": p.sidecars.manifest_url,
                    "target": crate::sidecars::Target::host().map(|t| t.to_string()),
                    "source": format!("{:?}", p.sidecars.sidecar_source).to_lowercase(),
                    "opencodeSource": format!("{:?}", p.sidecars.opencode_source).to_lowercase(),
                    "allowExternal": p.sidecars.allow_external,
                },
                "binaries": {
                    "opencode": bin(&self.sidecars.opencode),
                    "openworkServer": bin(&self.sidecars.server),
                    "opencodeRouter": self.sidecars.router.as_ref().map(bin),
                }
            }
        })
    }

    /// The pretty pairing block (no secrets).
    pub fn pretty_block(&self) -> String {
        let p = self.plan;
        let mut s = String::new();
        s.push_str("OpenWork orchestrator running\n");
        s.push_str(&format!("Run ID: {}\n", p.run_id));
        s.push_str(&format!("Workspace: {}\n", p.workspace));
        s.push_str(&format!("OpenCode: {}\n", self.opencode_url()));
        s.push_str(&format!("OpenCode connect URL: {}\n", self.opencode_url()));
        s.push_str("OpenCode auth: managed credentials configured (withheld from stdout)\n");
        if let Some(e) = &self.egress {
            s.push_str(&e.line());
        }
        s.push_str(&format!("OpenWork server: {}\n", self.openwork_base_url()));
        s.push_str(&format!(
            "OpenWork connect URL: {}\n",
            self.openwork_connect_url()
        ));
        s.push_str("OpenWork collaborator token: issued (withheld from stdout)\n");
        s.push_str("  Routine remote access for shared workers.\n");
        s.push_str("OpenWork owner token: issued (withheld from stdout)\n");
        s.push_str("  Use this when the remote client must answer permission prompts.\n");
        s.push_str("OpenWork host admin token: issued (withheld from stdout)\n");
        s.push_str("  Internal host/admin token for approvals CLI and host-only APIs.\n");
        if p.router_enabled {
            let state = if self.router_running {
                format!("http://127.0.0.1:{} (health)", self.ports.router_health)
            } else {
                "not running (optional; see the log)".into()
            };
            s.push_str(&format!("OpenCode router: {state}\n"));
        }
        if let Some(r) = self.isolation {
            s.push_str(&format!("Sandbox isolation: {}\n", r.summary()));
        }
        if p.mode == RunMode::Foreground {
            s.push_str(&self.control_lines(false));
        }
        s.push_str(
            "Use `--json` only when you explicitly need raw credentials in command output.\n",
        );
        s
    }

    /// `opencode attach` command line, credentials shown or masked (the dashboard shows the
    /// masked one until asked; `openwork attach <run>` needs neither).
    pub fn attach_command(&self, reveal: bool) -> String {
        let c = &self.plan.credentials;
        let (u, p) = if reveal {
            (c.opencode_username.as_str(), c.opencode_password.as_str())
        } else {
            ("[REDACTED]", "[REDACTED]")
        };
        format!(
            "OPENCODE_SERVER_USERNAME={u} OPENCODE_SERVER_PASSWORD={p} opencode attach {} --dir {}",
            self.opencode_url(),
            shell_quote(&self.plan.opencode_directory())
        )
    }

    /// How a person controls this run from another terminal (no secrets: `attach` reads them
    /// from the run's credentials file).
    pub fn control_lines(&self, detached: bool) -> String {
        let id = shell_quote(&self.plan.run_id);
        let mut s = String::from("Runs: openwork ps\n");
        if detached {
            s.push_str(&format!("Logs: openwork logs {id} (-f to follow)\n"));
        }
        s.push_str(&format!("Attach: openwork attach {id}\n"));
        s.push_str(&format!("Stop: openwork stop {id}\n"));
        s
    }

    /// Detach summary; `credentials_file` holds the raw secrets (0600).
    pub fn detach_summary(
        &self,
        instances: &[(&str, Instance)],
        credentials_file: &Utf8Path,
    ) -> String {
        let mut s = String::from("Detached. Services still running:\n");
        for (name, instance) in instances {
            match instance {
                Instance::Process { pid } => s.push_str(&format!("- {name} (pid {pid})\n")),
                Instance::Container { id, .. } => {
                    s.push_str(&format!("- {name} (container {id})\n"))
                }
            }
        }
        s.push_str(&format!("OpenWork URL: {}\n", self.openwork_connect_url()));
        s.push_str(&format!("OpenCode URL: {}\n", self.opencode_url()));
        s.push_str(&format!(
            "Credentials (tokens, opencode password): {credentials_file} (mode 0600)\n"
        ));
        if let Some(r) = self.isolation {
            s.push_str(&format!("Sandbox isolation: {}\n", r.summary()));
        }
        s.push_str(&self.control_lines(true));
        s
    }

    /// The run's record (`state.json`): where it runs, as whom, and its services' instances.
    pub fn record(
        &self,
        kind: RunKind,
        sandbox: Option<SandboxRecord>,
        instances: &[(&str, Instance)],
    ) -> RunRecord {
        let dir = self.plan.run_dir();
        RunRecord {
            schema: crate::runs::record::SCHEMA,
            run_id: self.plan.run_id.clone(),
            owner_uid: nix::unistd::getuid().as_raw(),
            kind,
            orchestrator_pid: (kind == RunKind::Foreground).then(std::process::id),
            boot_id: openwork_backends::boot_id(),
            workspace: self.plan.workspace.clone(),
            opencode_directory: self.plan.opencode_directory(),
            started_at_unix_ms: crate::runs::record::now_unix_ms(),
            openwork_url: self.openwork_base_url(),
            openwork_connect_url: self.openwork_connect_url(),
            opencode_url: self.opencode_url(),
            sandbox: sandbox.map(|mut sb| {
                sb.isolation = self.isolation.map(|r| r.json());
                sb
            }),
            services: service_records(instances, &dir, kind == RunKind::Detached),
        }
    }
}

/// The services of a record, from the supervisor's running instances (start order).
pub fn service_records(
    instances: &[(&str, Instance)],
    dir: &Utf8Path,
    detached: bool,
) -> Vec<ServiceRecord> {
    instances
        .iter()
        .map(|(name, instance)| match instance {
            Instance::Process { pid } => ServiceRecord {
                name: name.to_string(),
                pid: Some(*pid),
                process_group: Some(*pid),
                log: detached.then(|| dir.join(format!("{name}.log"))),
                container: None,
                stop: None,
            },
            Instance::Container { id, stop_command } => ServiceRecord {
                name: name.to_string(),
                pid: None,
                process_group: None,
                log: None,
                container: Some(id.clone()),
                stop: Some(stop_command.clone()),
            },
        })
        .collect()
}

/// Writes the run's files into `dir`: `credentials.json` (the `--json` document, 0600) and
/// `state.json` (the record, 0600). Returns the credentials file path.
pub fn write_run_state(
    ready: &Ready<'_>,
    record: &RunRecord,
    dir: &Utf8Path,
) -> std::io::Result<Utf8PathBuf> {
    // Credentials first: a record that `attach` can find always has its credentials.
    let creds = crate::runs::record::write_credentials(dir, &ready.json())?;
    crate::runs::record::write(dir, record)?;
    Ok(creds)
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// First non-loopback IPv4 address of this machine, for the LAN connect URL.
fn lan_ipv4() -> Option<String> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for ifa in addrs {
        if let Some(addr) = ifa.address
            && let Some(sin) = addr.as_sockaddr_in()
        {
            let ip = sin.ip();
            if !ip.is_loopback() && !ip.is_unspecified() {
                return Some(ip.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/home/me/ws"), "/home/me/ws");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
