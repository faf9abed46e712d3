//! The sandbox's egress, decided at plan time: `--sandbox-network enforce|open`, the policy file
//! (`--sandbox-policy`, parsed here: a bad file is a plan error naming `file:line:column`),
//! `--sandbox-allow` entries, the gate's control token, and the provider keys the host holds
//! (opencode's `auth.json`, opencode's config, openwork's environment), which the gate injects.
//!
//! Threat addressed: a sandbox whose network is more open than the person believes. The gate is
//! on by default with Docker; turning it off is explicit (`open`) and said loudly; Apple
//! `container`, which has no equivalent fence yet, says "not enforced", and asking it to enforce
//! is an error rather than a silent downgrade. The keys found here go to the gate only (through
//! its control API), never into the agent's environment.
//!
//! Left open: opencode config files written as JSONC (with comments) are not read for keys.

use std::path::{Path, PathBuf};

use openwork_gate::inject::discover::{Discovered, discover};
use openwork_gate::{Entry, EntryError, Extras, Policy, PolicyError, PolicyFile};
use serde_json::Value;

use crate::cli::{SandboxArg, SandboxNetworkArg};

/// How the sandbox's outbound network is handled.
#[derive(Debug, Clone)]
pub enum Egress {
    /// Through the egress gate (default with Docker).
    Gate(Box<GatePlan>),
    /// No gate: unrestricted (`--sandbox-network open`).
    Open,
    /// Apple `container` by default: no fence exists there yet.
    NotEnforced,
}

impl Egress {
    /// `gate`, `open` or `not-enforced` (the `--json` document's `sandbox.egress.mode`).
    pub fn mode(&self) -> &'static str {
        match self {
            Egress::Gate(_) => "gate",
            Egress::Open => "open",
            Egress::NotEnforced => "not-enforced",
        }
    }
}

/// Everything the gate of a run needs, read once from the host.
#[derive(Debug, Clone)]
pub struct GatePlan {
    /// Whether `enforce` was asked for explicitly (then Apple `container` is an error).
    pub explicit: bool,
    /// The policy file (it may not exist: the default policy applies then).
    pub policy_path: PathBuf,
    /// Entries that are not in the file: `--sandbox-allow` and configured providers.
    pub extras: Extras,
    /// The effective policy at start.
    pub policy: Policy,
    /// The gate's control token (the gate container's environment only).
    pub token: String,
    /// Provider keys the host holds, injected by the gate.
    pub keys: Discovered,
}

/// Why the egress settings cannot be used. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("--sandbox-allow {value}: {source}")]
    Allow { value: String, source: EntryError },
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error(
        "--sandbox-network enforce is not available with Apple `container`: no egress fence is proven there yet. Use --sandbox docker, or --sandbox-network open to run with unrestricted egress"
    )]
    AppleEnforce,
    #[error("--{flag} needs the egress gate; it has no effect with --sandbox-network open")]
    GateOnly { flag: &'static str },
}

/// Host inputs of [`egress`]: what the plan read from the environment and the file system.
pub struct HostInputs<'a> {
    pub home: &'a Path,
    pub cwd: &'a Path,
    /// `OPENWORK_SANDBOX_POLICY` / `--sandbox-policy`.
    pub policy_override: Option<&'a Path>,
    /// opencode's `auth.json` on the host, parsed (`None`: absent or `--no-sandbox-auth-copy`).
    pub auth_json: Option<Value>,
    /// opencode's config as the host sees it (merged), for provider base URLs and keys.
    pub opencode_config: Option<Value>,
    /// openwork's environment (provider key variables).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Decides the run's egress from the flags and reads the policy file and keys.
pub fn egress(
    kind: SandboxArg,
    network: Option<SandboxNetworkArg>,
    allow: &[String],
    host: &HostInputs<'_>,
) -> Result<Egress, EgressError> {
    let cli = parse_allow(allow)?;
    match (kind, network) {
        (_, Some(SandboxNetworkArg::Open)) => {
            if !cli.is_empty() {
                return Err(EgressError::GateOnly {
                    flag: "sandbox-allow",
                });
            }
            Ok(Egress::Open)
        }
        (SandboxArg::Container, Some(SandboxNetworkArg::Enforce)) => Err(EgressError::AppleEnforce),
        (SandboxArg::Container, None) => Ok(Egress::NotEnforced),
        (_, explicit) => Ok(Egress::Gate(Box::new(gate_plan(
            explicit.is_some(),
            cli,
            host,
        )?))),
    }
}

/// `--sandbox-allow` values as entries; `*` and every other refused entry is an error.
pub fn parse_allow(values: &[String]) -> Result<Vec<Entry>, EgressError> {
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| {
            Entry::parse(v).map_err(|source| EgressError::Allow {
                value: v.to_string(),
                source,
            })
        })
        .collect()
}

/// The providers declared with a `baseURL` in `config`, as policy entries.
pub fn provider_entries(config: Option<&Value>) -> Vec<(String, Entry)> {
    config
        .map(openwork_gate::policy::profile::configured_providers)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.entry.ok().map(|e| (p.id, e)))
        .collect()
}

/// Loads the policy file at `path` (missing: the default) and builds the effective policy.
pub fn load_policy(path: &Path, extras: &Extras) -> Result<Policy, PolicyError> {
    let file = PolicyFile::load(path)?.unwrap_or_default();
    Ok(Policy::build(&file, extras))
}

fn gate_plan(
    explicit: bool,
    cli: Vec<Entry>,
    host: &HostInputs<'_>,
) -> Result<GatePlan, EgressError> {
    let policy_path = openwork_gate::policy_path(host.policy_override, host.home, host.cwd);
    let extras = Extras {
        cli,
        providers: provider_entries(host.opencode_config.as_ref()),
    };
    let policy = load_policy(&policy_path, &extras)?;
    let keys = discover(
        host.auth_json.as_ref(),
        host.opencode_config.as_ref(),
        host.env,
    );
    Ok(GatePlan {
        explicit,
        policy_path,
        extras,
        policy,
        token: crate::secrets::random_hex(32),
        keys,
    })
}

/// Reads a JSON file; absent or unparsable is `None` (opencode's JSONC is not read here).
pub fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Merges `over` into `base`: objects key by key (recursively), anything else replaced.
pub fn merge_json(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_json(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// opencode's config as the host sees it, in opencode's order (later wins): the global
/// `opencode.json`, `OPENCODE_CONFIG`, the workspace's `opencode.json`, `OPENCODE_CONFIG_CONTENT`.
pub fn host_opencode_config(
    config_home: &Path,
    workspace: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Value> {
    let mut parts: Vec<Value> = Vec::new();
    parts.extend(read_json(&config_home.join("opencode/opencode.json")));
    if let Some(p) = env("OPENCODE_CONFIG").filter(|p| !p.is_empty()) {
        parts.extend(read_json(Path::new(&p)));
    }
    parts.extend(read_json(&workspace.join("opencode.json")));
    if let Some(text) = env("OPENCODE_CONFIG_CONTENT") {
        parts.extend(serde_json::from_str::<Value>(&text).ok());
    }
    let mut merged: Option<Value> = None;
    for part in parts {
        match &mut merged {
            Some(m) => merge_json(m, part),
            None => merged = Some(part),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host<'a>(dir: &'a Path, env: &'a dyn Fn(&str) -> Option<String>) -> HostInputs<'a> {
        HostInputs {
            home: dir,
            cwd: dir,
            policy_override: None,
            auth_json: None,
            opencode_config: None,
            env,
        }
    }

    #[test]
    fn docker_enforces_by_default_and_open_is_explicit() {
        let t = tempfile::tempdir().unwrap();
        let env = |_: &str| None;
        let h = host(t.path(), &env);
        let e = egress(SandboxArg::Docker, None, &[], &h).unwrap();
        let Egress::Gate(g) = &e else { panic!("{e:?}") };
        assert!(!g.explicit);
        assert!(g.token.len() >= 32);
        assert_eq!(
            egress(SandboxArg::Auto, None, &[], &h).unwrap().mode(),
            "gate"
        );
        assert_eq!(
            egress(SandboxArg::Docker, Some(SandboxNetworkArg::Open), &[], &h)
                .unwrap()
                .mode(),
            "open"
        );
        assert_eq!(
            egress(SandboxArg::Container, None, &[], &h).unwrap().mode(),
            "not-enforced"
        );
        let err = egress(
            SandboxArg::Container,
            Some(SandboxNetworkArg::Enforce),
            &[],
            &h,
        )
        .unwrap_err();
        assert!(matches!(err, EgressError::AppleEnforce), "{err}");
    }

    #[test]
    fn allow_entries_are_checked_by_the_gate_grammar() {
        let err = parse_allow(&["*".into()]).unwrap_err().to_string();
        assert!(err.starts_with("--sandbox-allow *: "), "{err}");
        let ok = parse_allow(&["pypi.org".into(), " 10.0.0.5:8080 ".into()]).unwrap();
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn a_bad_policy_file_names_its_place() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("p.json");
        std::fs::write(&file, "{\n  \"allow\": [\"a.example\",]\n}").unwrap();
        let env = |_: &str| None;
        let mut h = host(t.path(), &env);
        h.policy_override = Some(&file);
        let err = egress(SandboxArg::Docker, None, &[], &h)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("{}:2:", file.display())), "{err}");
    }

    #[test]
    fn config_parts_merge_in_opencode_order() {
        let t = tempfile::tempdir().unwrap();
        let cfg = t.path().join("cfg");
        std::fs::create_dir_all(cfg.join("opencode")).unwrap();
        std::fs::write(
            cfg.join("opencode/opencode.json"),
            json!({"provider": {"a": {"options": {"baseURL": "https://a.example/v1", "apiKey": "g"}}}})
                .to_string(),
        )
        .unwrap();
        std::fs::write(
            t.path().join("opencode.json"),
            json!({"provider": {"a": {"options": {"apiKey": "{env:A_KEY}"}}}}).to_string(),
        )
        .unwrap();
        let env = |k: &str| (k == "A_KEY").then(|| "real-key-123".to_string());
        let merged = host_opencode_config(&cfg, t.path(), &env).unwrap();
        assert_eq!(
            merged["provider"]["a"]["options"],
            json!({"baseURL": "https://a.example/v1", "apiKey": "{env:A_KEY}"})
        );
        let keys = discover(None, Some(&merged), env);
        assert_eq!(keys.providers().collect::<Vec<_>>(), ["a"]);
        assert_eq!(provider_entries(Some(&merged)).len(), 1);
    }
}
