//! The isolation report: each control of the sandbox judged `enforced`, `degraded` (with why)
//! or `missing`, from what the engine and a self-probe inside the container say is in force
//! (see `openwork_backends::isolation`), not from what was asked for. It is logged at start,
//! put in `--json` (`sandbox.isolation`), the detach summary and state, and `--sandbox-strict`
//! refuses to run unless every control is enforced, naming each one and its fix.
//!
//! Threat addressed: a person who runs an agent they do not trust believing a control is in
//! force when it is not (uid 0 on a root host, an engine without seccomp, credentials readable
//! inside, unrestricted egress).

use openwork_backends::git_guard::{GitGuard, GitLayout};
use openwork_backends::isolation::{IsolationFacts, ProbeFacts};
use serde_json::{Value, json};

use crate::plan::{SandboxSettings, UserChoice};

/// How one control stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Enforced,
    /// In force only partly, or by a weaker means; `why` says which.
    Degraded {
        why: String,
        fix: String,
    },
    Missing {
        why: String,
        fix: String,
    },
}

impl Status {
    fn word(&self) -> &'static str {
        match self {
            Status::Enforced => "enforced",
            Status::Degraded { .. } => "degraded",
            Status::Missing { .. } => "missing",
        }
    }
}

/// One control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub name: &'static str,
    /// What is in force (e.g. `uid 1000`, `CapEff 0`).
    pub detail: String,
    pub status: Status,
}

/// Every control, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub container: String,
    pub controls: Vec<Control>,
}

/// What the run itself knows about its egress and credentials (the engine cannot say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Egress {
    /// Through the gate, with this policy.
    Gate,
    /// `--sandbox-network open`.
    Open,
    /// No fence at all (no gate in this backend).
    NotEnforced,
}

/// Provider credentials of the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// The gate puts them in; the agent holds placeholders.
    Injected(Vec<String>),
    /// Copied into `/persist`, readable by the agent.
    Copied(Vec<String>),
    None,
}

/// What the run asked for and knows, beside the facts.
pub struct Expected<'a> {
    pub settings: &'a SandboxSettings,
    pub git_guard: Option<&'a GitGuard>,
    pub egress: Egress,
    pub credentials: Credentials,
}

fn degraded(why: impl Into<String>, fix: impl Into<String>) -> Status {
    Status::Degraded {
        why: why.into(),
        fix: fix.into(),
    }
}

fn missing(why: impl Into<String>, fix: impl Into<String>) -> Status {
    Status::Missing {
        why: why.into(),
        fix: fix.into(),
    }
}

/// Judges the facts read back from the container.
pub fn judge(facts: &Result<IsolationFacts, String>, expected: &Expected<'_>) -> Report {
    let mut controls = Vec::new();
    let mut push = |name, detail: String, status| {
        controls.push(Control {
            name,
            detail,
            status,
        })
    };
    let sb = expected.settings;
    let (container, facts) = match facts {
        Ok(f) => (f.container.clone(), Some(f)),
        Err(e) => {
            let why = format!("not read back: {e}");
            for name in ENGINE_CONTROLS {
                push(
                    name,
                    String::new(),
                    degraded(
                        why.clone(),
                        "use --sandbox docker, which reads every control back",
                    ),
                );
            }
            (String::new(), None)
        }
    };
    if let Some(f) = facts {
        let probe = f.probe.as_ref();
        // User.
        let (detail, status) = match probe {
            Ok(p) if p.uid != 0 => (format!("uid {} gid {}", p.uid, p.gid), Status::Enforced),
            Ok(p) => (
                format!("uid 0 gid {}", p.gid),
                degraded(
                    match sb.user.choice {
                        UserChoice::Root if sb.user.uid == 0 => {
                            "root in the container: the host runs openwork as root and the workspace is owned by root"
                        }
                        _ => "root in the container",
                    },
                    "run openwork as a non-root user, chown the workspace to one, or pass --sandbox-user UID:GID",
                ),
            ),
            Err(e) => (
                f.user.clone(),
                degraded(
                    format!("self-probe failed: {e}"),
                    "check that the image has /bin/sh",
                ),
            ),
        };
        push("user", detail, status);
        // Capabilities.
        let (detail, status) = match probe {
            Ok(ProbeFacts { cap_eff: 0, .. }) => ("CapEff 0 (none)".to_string(), Status::Enforced),
            Ok(p) => (
                format!("CapEff {:016x}", p.cap_eff),
                missing(
                    "the agent's processes hold capabilities",
                    "the engine must honour cap-drop ALL",
                ),
            ),
            Err(e) if f.cap_drop.iter().any(|c| c == "ALL") && f.cap_add.is_empty() => (
                "cap-drop ALL (inspect)".into(),
                degraded(
                    format!("not seen from inside: {e}"),
                    "check that the image has /bin/sh",
                ),
            ),
            Err(_) => (
                format!("cap-drop {:?} cap-add {:?}", f.cap_drop, f.cap_add),
                missing(
                    "capabilities are not dropped",
                    "the engine must honour cap-drop ALL",
                ),
            ),
        };
        push("capabilities", detail, status);
        let (detail, status) = match probe {
            Ok(p) if p.no_new_privs => ("NoNewPrivs 1".to_string(), Status::Enforced),
            Ok(_) => (
                "NoNewPrivs 0".into(),
                missing(
                    "setuid binaries can raise privileges",
                    "the engine must honour no-new-privileges",
                ),
            ),
            Err(e) => (
                "?".into(),
                degraded(
                    format!("not seen from inside: {e}"),
                    "check that the image has /bin/sh",
                ),
            ),
        };
        push("no-new-privileges", detail, status);
        let (detail, status) = match probe {
            Ok(p) if p.seccomp == 2 => ("Seccomp 2 (filter)".to_string(), Status::Enforced),
            Ok(p) => (
                format!("Seccomp {}", p.seccomp),
                missing(
                    "no seccomp filter: every system call is allowed",
                    "use an engine with its default seccomp profile (do not run it with seccomp=unconfined)",
                ),
            ),
            Err(e) => (
                "?".into(),
                degraded(
                    format!("not seen from inside: {e}"),
                    "check that the image has /bin/sh",
                ),
            ),
        };
        push("seccomp", detail, status);
        push(
            "read-only-root",
            format!("ReadonlyRootfs {}", f.read_only_root),
            if f.read_only_root {
                Status::Enforced
            } else {
                missing(
                    "the image's filesystem is writable",
                    "the engine must honour --read-only",
                )
            },
        );
        let limit = |name, got: Option<i64>, wanted: i64| {
            let detail = format!("{} (wanted {wanted})", got.unwrap_or(0));
            let status = match got {
                Some(v) if v > 0 && v == wanted => Status::Enforced,
                Some(v) if v > 0 => degraded(
                    format!("{name} is {v}, not {wanted}"),
                    "check the engine's limits",
                ),
                _ => missing(
                    format!("no {name}"),
                    "use an engine with cgroup limits (rootless engines need cgroups v2)",
                ),
            };
            (detail, status)
        };
        let (d, s) = limit("pids limit", f.pids_limit, sb.limits.pids);
        push("pids-limit", d, s);
        let (d, s) = limit("memory limit", f.memory, sb.limits.memory_bytes);
        push("memory-limit", d, s);
        let (d, s) = limit("cpu limit", f.nano_cpus, sb.limits.nano_cpus);
        push("cpu-limit", d, s);
        let (detail, status) = match probe {
            Ok(p) if p.engine_sockets.is_empty() => ("none visible".to_string(), Status::Enforced),
            Ok(p) => (
                p.engine_sockets.join(", "),
                missing(
                    "an engine socket is reachable: the agent could start containers on the host",
                    "remove the socket's mount",
                ),
            ),
            Err(_) if !f.mounts.iter().any(|m| m.source.ends_with(".sock")) => {
                ("no socket mounted (inspect)".into(), Status::Enforced)
            }
            Err(_) => (
                "a .sock is mounted".into(),
                missing(
                    "an engine socket may be mounted",
                    "remove the socket's mount",
                ),
            ),
        };
        push("engine-socket", detail, status);
        let writable: Vec<&str> = f
            .mounts
            .iter()
            .filter(|m| !m.read_only)
            .map(|m| m.destination.as_str())
            .collect();
        let allowed_rw = |d: &str| {
            d == "/workspace"
                || d == "/persist"
                || d == "/workspace/.git"
                || sb.mounts.iter().any(|m| !m.read_only && m.container == d)
        };
        let unexpected: Vec<&str> = writable
            .iter()
            .copied()
            .filter(|d| !allowed_rw(d))
            .collect();
        push(
            "mounts",
            format!("writable: {}", writable.join(", ")),
            if unexpected.is_empty() {
                Status::Enforced
            } else {
                missing(
                    format!("writable beyond the plan: {}", unexpected.join(", ")),
                    "report this: the engine did not apply a read-only mount",
                )
            },
        );
        let open: Vec<String> = f
            .ports
            .iter()
            .filter(|p| p.host_ip != "127.0.0.1" && p.host_ip != "::1")
            .map(|p| {
                format!(
                    "{}:{}",
                    if p.host_ip.is_empty() {
                        "0.0.0.0"
                    } else {
                        &p.host_ip
                    },
                    p.host_port
                )
            })
            .collect();
        push(
            "ports",
            f.ports
                .iter()
                .map(|p| format!("{}:{}", p.host_ip, p.host_port))
                .collect::<Vec<_>>()
                .join(", "),
            if open.is_empty() {
                Status::Enforced
            } else {
                missing(
                    format!("published beyond loopback: {}", open.join(", ")),
                    "publish on 127.0.0.1 only",
                )
            },
        );
    }
    let (detail, status) = match &expected.egress {
        Egress::Gate => ("gate".to_string(), Status::Enforced),
        Egress::Open => (
            "open".into(),
            degraded(
                "--sandbox-network open: the agent can reach any host",
                "drop --sandbox-network open",
            ),
        ),
        Egress::NotEnforced => (
            "not enforced".into(),
            missing(
                "the agent's container can open connections to any host it can route to",
                "use --sandbox docker with the egress gate (--sandbox-network enforce)",
            ),
        ),
    };
    push("egress", detail, status);
    let (detail, status) = match &expected.credentials {
        Credentials::Injected(p) => (
            format!("injected by the gate: {}", p.join(", ")),
            Status::Enforced,
        ),
        Credentials::None => ("none in the sandbox".into(), Status::Enforced),
        Credentials::Copied(files) => (
            format!("copied: {}", files.join(", ")),
            degraded(
                "provider keys are copied into /persist, where the agent can read them",
                "let the gate inject them (--sandbox-network enforce) or pass --no-sandbox-auth-copy",
            ),
        ),
    };
    push("credentials", detail, status);
    let (detail, status) = match expected.git_guard {
        None => (
            "off".to_string(),
            degraded(
                "--sandbox-allow-git-config: the agent can plant hooks and git config that run on the host",
                "drop --sandbox-allow-git-config",
            ),
        ),
        Some(g) => {
            let ro: Vec<&str> = g
                .mounts
                .iter()
                .filter(|m| m.read_only)
                .map(|m| m.relative.as_str())
                .collect();
            let layout = match g.layout {
                GitLayout::Repository => "repository",
                GitLayout::GitFile => "gitdir file",
                GitLayout::Created => "repository created for the run",
                GitLayout::Placeholder => "placeholder",
            };
            let config_guarded = matches!(g.layout, GitLayout::GitFile | GitLayout::Placeholder)
                || ro.contains(&".git/config");
            (
                format!("{layout}; read-only: {}", ro.join(", ")),
                if config_guarded {
                    Status::Enforced
                } else {
                    degraded(
                        ".git/config stays writable (this engine mounts directories only)",
                        "use --sandbox docker",
                    )
                },
            )
        }
    };
    push("git-guard", detail, status);
    Report {
        container,
        controls,
    }
}

/// Controls that come from the engine (listed as not read back when it cannot say).
const ENGINE_CONTROLS: [&str; 11] = [
    "user",
    "capabilities",
    "no-new-privileges",
    "seccomp",
    "read-only-root",
    "pids-limit",
    "memory-limit",
    "cpu-limit",
    "engine-socket",
    "mounts",
    "ports",
];

impl Report {
    /// Controls that are not enforced.
    pub fn weak(&self) -> impl Iterator<Item = &Control> {
        self.controls
            .iter()
            .filter(|c| c.status != Status::Enforced)
    }

    /// `sandbox.isolation` of `--json` and the run record.
    pub fn json(&self) -> Value {
        json!({
            "container": self.container,
            "enforced": self.weak().next().is_none(),
            "controls": self.controls.iter().map(|c| {
                let mut o = json!({ "control": c.name, "status": c.status.word(), "detail": c.detail });
                if let Status::Degraded { why, fix } | Status::Missing { why, fix } = &c.status {
                    o["why"] = json!(why);
                    o["fix"] = json!(fix);
                }
                o
            }).collect::<Vec<_>>(),
        })
    }

    /// One line: `14 controls: 12 enforced, 2 degraded (user, egress)`.
    pub fn summary(&self) -> String {
        let enforced = self.controls.len() - self.weak().count();
        let weak: Vec<&str> = self.weak().map(|c| c.name).collect();
        if weak.is_empty() {
            format!("all {} controls enforced", self.controls.len())
        } else {
            format!(
                "{enforced} of {} controls enforced; not enforced: {}",
                self.controls.len(),
                weak.join(", ")
            )
        }
    }

    /// Why `--sandbox-strict` refuses: each weak control with its fix.
    pub fn strict_refusal(&self) -> Option<String> {
        let lines: Vec<String> = self
            .weak()
            .map(|c| match &c.status {
                Status::Degraded { why, fix } | Status::Missing { why, fix } => {
                    format!("  {} {}: {why}. Fix: {fix}", c.name, c.status.word())
                }
                Status::Enforced => String::new(),
            })
            .collect();
        (!lines.is_empty()).then(|| {
            format!(
                "--sandbox-strict: refusing to run, {} control{} not enforced:\n{}",
                lines.len(),
                if lines.len() == 1 { " is" } else { "s are" },
                lines.join("\n")
            )
        })
    }
}

#[cfg(test)]
#[path = "isolation_tests.rs"]
mod tests;
