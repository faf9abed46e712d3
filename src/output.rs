//! What a person (or a script) sees once the services are ready: the pairing block, the `--json`
//! document, the `--detach` summary and the detached run's state file.
//!
//! Secrets: the pretty block and the detach summary never print a token or password (they say
//! which were issued); `--json` is the one explicit way to get raw credentials on stdout, and it
//! prints exactly one JSON document there (logs go to stderr). A detached run writes its
//! credentials to a 0600 file and prints the file's path.

use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Value, json};

use crate::plan::RunPlan;
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

    /// `opencode attach` command line, credentials shown or redacted.
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
            shell_quote(self.plan.workspace.as_str())
        )
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
        s.push_str(
            "Use `--json` only when you explicitly need raw credentials in command output.\n",
        );
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
        s.push_str(&format!("Attach: {}\n", self.attach_command(false)));
        s.push_str(&format!(
            "Logs: {}\n",
            credentials_file.parent().map(|d| d.as_str()).unwrap_or(".")
        ));
        let groups: Vec<String> = instances
            .iter()
            .filter_map(|(_, i)| match i {
                Instance::Process { pid } => Some(format!("-{pid}")),
                Instance::Container { .. } => None,
            })
            .collect();
        let mut stop = vec![format!("kill -TERM -- {}", groups.join(" "))];
        stop.extend(instances.iter().filter_map(|(_, i)| match i {
            Instance::Container { stop_command, .. } => Some(stop_command.clone()),
            Instance::Process { .. } => None,
        }));
        s.push_str(&format!("Stop: {}\n", stop.join(" && ")));
        s
    }
}

/// Writes the detached run's files: `state.json` (pids, ports, URLs) and `credentials.json`
/// (0600). Returns the credentials file path.
pub fn write_detached_state(
    ready: &Ready<'_>,
    instances: &[(&str, Instance)],
    dir: &Utf8Path,
) -> std::io::Result<Utf8PathBuf> {
    let services: Vec<Value> = instances
        .iter()
        .map(|(n, i)| match i {
            Instance::Process { pid } => json!({ "name": n, "pid": pid, "processGroup": pid, "log": dir.join(format!("{n}.log")) }),
            Instance::Container { id, stop_command } => json!({ "name": n, "container": id, "stop": stop_command }),
        })
        .collect();
    let state = json!({
        "runId": ready.plan.run_id,
        "workspace": ready.plan.workspace,
        "openworkUrl": ready.openwork_connect_url(),
        "opencodeUrl": ready.opencode_url(),
        "services": services,
    });
    write_private(&dir.join("state.json"), &state)?;
    let creds_path = dir.join("credentials.json");
    let doc = ready.json();
    write_private(&creds_path, &doc)?;
    Ok(creds_path)
}

/// Atomically writes `value` as pretty JSON to `path` with mode 0600.
fn write_private(path: &Utf8Path, value: &Value) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Utf8Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    serde_json::to_writer_pretty(&mut tmp, value)?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
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
