//! What is actually in force in a running sandbox, read back from the engine and from inside:
//! [`IsolationFacts`] are raw facts (the engine's `inspect` plus a self-probe that runs as the
//! agent's user inside the container and reads its own `/proc/self/status`); the binary judges
//! them into a report.
//!
//! Threat addressed: trusting what was asked for instead of what took effect. An engine may drop
//! a setting it does not know (old API versions), a runtime may not apply a limit (rootless on
//! cgroups v1), and only a process inside sees its effective capabilities and seccomp mode.

/// One mount as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountFact {
    pub source: String,
    pub destination: String,
    pub read_only: bool,
}

/// One published port as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFact {
    pub host_ip: String,
    pub host_port: String,
    pub container_port: String,
}

/// What a process started as the agent's user sees of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFacts {
    pub uid: u32,
    pub gid: u32,
    /// Effective capability set (`CapEff`).
    pub cap_eff: u64,
    /// Bounding set (`CapBnd`).
    pub cap_bnd: u64,
    pub no_new_privs: bool,
    /// 0 disabled, 1 strict, 2 filter.
    pub seccomp: u8,
    /// Engine sockets found inside the container.
    pub engine_sockets: Vec<String>,
}

/// Everything read back from one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationFacts {
    pub container: String,
    pub user: String,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub read_only_root: bool,
    pub pids_limit: Option<i64>,
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub mounts: Vec<MountFact>,
    pub ports: Vec<PortFact>,
    pub networks: Vec<String>,
    /// The self-probe, or why it could not run.
    pub probe: Result<ProbeFacts, String>,
}

/// Engine sockets the probe looks for inside the container.
pub const ENGINE_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
    "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
];

/// The probe's shell command: its own status, then each engine socket it can see.
pub fn probe_command() -> Vec<String> {
    let mut script = String::from("cat /proc/self/status;");
    for s in ENGINE_SOCKETS {
        script.push_str(&format!(" [ -e {s} ] && echo \"ENGINE_SOCKET {s}\";"));
    }
    script.push_str(" true");
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// Parses the probe's output.
pub fn parse_probe(output: &str) -> Result<ProbeFacts, String> {
    let field = |name: &str| {
        output
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .ok_or_else(|| format!("the probe's output has no {name}"))
    };
    let first_number = |s: String| -> Result<u32, String> {
        s.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("unreadable id {s:?}"))
    };
    let hex = |s: String| u64::from_str_radix(s.trim(), 16).map_err(|e| format!("{s:?}: {e}"));
    Ok(ProbeFacts {
        uid: first_number(field("Uid:")?)?,
        gid: first_number(field("Gid:")?)?,
        cap_eff: hex(field("CapEff:")?)?,
        cap_bnd: hex(field("CapBnd:")?)?,
        no_new_privs: field("NoNewPrivs:")? == "1",
        seccomp: field("Seccomp:")?
            .parse()
            .map_err(|e| format!("Seccomp: {e}"))?,
        engine_sockets: output
            .lines()
            .filter_map(|l| l.strip_prefix("ENGINE_SOCKET ").map(str::to_string))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_reads_its_own_status() {
        let out = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\nCapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t1\nSeccomp:\t2\nENGINE_SOCKET /var/run/docker.sock\n";
        let p = parse_probe(out).unwrap();
        assert_eq!((p.uid, p.gid), (1000, 100));
        assert_eq!(p.cap_eff, 0);
        assert_eq!(p.cap_bnd, 0xa80425fb);
        assert!(p.no_new_privs);
        assert_eq!(p.seccomp, 2);
        assert_eq!(p.engine_sockets, vec!["/var/run/docker.sock".to_string()]);
        assert!(parse_probe("garbage").unwrap_err().contains("Uid:"));
    }

    #[test]
    fn the_probe_command_looks_for_every_socket() {
        let c = probe_command().join(" ");
        for s in ENGINE_SOCKETS {
            assert!(c.contains(s));
        }
    }
}
