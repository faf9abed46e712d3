//! The egress policy (pure): which `host:port` the agent may reach, and the one function that
//! decides, [`Policy::decide`].
//!
//! Threat: the agent (or a prompt injected into it) sending the workspace or credentials to a
//! host of its choosing, or reaching the host machine, the engine's network, a cloud metadata
//! service or the LAN through the gate. Default deny: only entries allow, by exact name or
//! one-label wildcard and one port; and every resolved address is checked after DNS (loopback,
//! link-local, metadata, multicast, reserved are always refused; private ranges only when
//! `privateAllow` names them), so an allowed name that resolves to a refused address is refused.
//!
//! Left open: the policy sees only the destination named in CONNECT or the request line; it
//! cannot see inside TLS, so an allowed host is allowed for any path and any account (data can
//! leave through an allowed API under the agent's own account). Domain fronting through an
//! allowed CDN host is not detected.

pub mod addr;
pub mod entry;
pub mod error;
pub mod file;
pub mod profile;

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use addr::{AddrClass, classify, refused_name};
use entry::{Entry, HostPort, normalize_host};
use file::{Mode, PolicyFile};

/// Where a rule came from (shown by `openwork policy show` and in audit records).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "id")]
pub enum Origin {
    /// The built-in opencode profile.
    Builtin,
    /// A provider declared in opencode's config with a `baseURL` (its id).
    Provider(String),
    /// The policy file.
    File,
    /// `--sandbox-allow` for this run.
    Cli,
    /// Allowed at run time (an approval, `POST /allow`) for this run.
    Once,
    /// A provider whose key the gate injects (its id).
    Credential(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin => f.write_str("builtin"),
            Self::Provider(id) => write!(f, "provider {id}"),
            Self::File => f.write_str("file"),
            Self::Cli => f.write_str("--sandbox-allow"),
            Self::Once => f.write_str("allowed for this run"),
            Self::Credential(id) => write!(f, "credential {id}"),
        }
    }
}

/// One allow rule: an entry and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What it allows.
    pub entry: Entry,
    /// Why it is there.
    pub origin: Origin,
}

/// The effective policy: mode, rules in order, private allow list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    mode: Mode,
    rules: Vec<Rule>,
    private_allow: Vec<IpNet>,
    /// Test-only: loopback addresses pass the address check (see
    /// [`Policy::unsafe_allow_loopback_for_tests`]). Never set from a file, flag or env.
    loopback_for_tests: bool,
}

/// Allow, deny, or allow-and-record (mode `audit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// A rule allows it.
    Allow,
    /// Refused.
    Deny,
    /// No rule allows it, but mode is `audit`: let through, recorded as such.
    Audit,
}

/// Why the verdict is what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A rule matched.
    Matched,
    /// No rule names this host and port.
    NoRule,
    /// The name always means this machine or a metadata service.
    RefusedName,
    /// A resolved address is in an always-refused class.
    RefusedAddress { ip: IpAddr, class: AddrClass },
    /// A resolved address is private and not in `privateAllow`.
    PrivateAddress { ip: IpAddr },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Matched => f.write_str("allowed by a rule"),
            Self::NoRule => f.write_str("no rule allows it"),
            Self::RefusedName => {
                f.write_str("the name means this machine or a metadata service (always refused)")
            }
            Self::RefusedAddress { ip, class } => {
                write!(f, "it resolves to {ip}, a {class} address (always refused)")
            }
            Self::PrivateAddress { ip } => write!(
                f,
                "it resolves to {ip}, a private address not in privateAllow"
            ),
        }
    }
}

/// The answer for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow, deny or audit.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// For an allow: the rule that matched (`api.openai.com:443 (builtin)`). For a deny or
    /// audit: what would allow it (`example.com:443`, or `privateAllow 10.0.0.5`); `None` when
    /// nothing can (always-refused).
    pub rule: Option<String>,
}

impl Decision {
    /// Whether the connection may be made.
    pub fn allowed(&self) -> bool {
        self.verdict != Verdict::Deny
    }
}

/// What `--sandbox-allow` and opencode's config add to the file.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// `--sandbox-allow` entries.
    pub cli: Vec<Entry>,
    /// Providers declared with a `baseURL`: (id, entry).
    pub providers: Vec<(String, Entry)>,
}

impl Policy {
    /// The policy used without a file: enforce, the built-in profile.
    pub fn builtin() -> Self {
        Self::build(&PolicyFile::default(), &Extras::default())
    }

    /// Merges, in this order: the built-in profile (unless `defaults: false`), the providers
    /// with a `baseURL`, the file's entries, the `--sandbox-allow` entries. Duplicates keep
    /// their first origin.
    pub fn build(file: &PolicyFile, extras: &Extras) -> Self {
        let mut policy = Self {
            mode: file.mode,
            rules: Vec::new(),
            private_allow: file.private_allow.clone(),
            loopback_for_tests: false,
        };
        if file.defaults {
            for entry in profile::builtin_entries() {
                policy.add(entry, Origin::Builtin);
            }
        }
        for (id, entry) in &extras.providers {
            policy.add(entry.clone(), Origin::Provider(id.clone()));
        }
        for entry in &file.allow {
            policy.add(entry.clone(), Origin::File);
        }
        for entry in &extras.cli {
            policy.add(entry.clone(), Origin::Cli);
        }
        policy
    }

    /// Adds a rule unless the same entry is already there.
    pub fn add(&mut self, entry: Entry, origin: Origin) {
        if !self.rules.iter().any(|r| r.entry == entry) {
            self.rules.push(Rule { entry, origin });
        }
    }

    /// Test-only: let loopback addresses (127/8, ::1) pass the address check, so tests can
    /// stand in for the internet with servers on 127.0.0.1. The rule check still applies.
    /// Nothing in the CLI, the policy file, the environment or the control API sets this; the
    /// gate sets it only from `GateConfig::unsafe_allow_loopback_for_tests`.
    #[doc(hidden)]
    pub fn unsafe_allow_loopback_for_tests(&mut self) {
        self.loopback_for_tests = true;
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The rules in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The private allow list.
    pub fn private_allow(&self) -> &[IpNet] {
        &self.private_allow
    }

    /// Checks one resolved address: `Err` with the reason when it must not be connected to.
    pub fn check_addr(&self, ip: IpAddr) -> Result<(), Reason> {
        let ip = addr::canonical(ip);
        match classify(ip) {
            AddrClass::Public => Ok(()),
            AddrClass::Loopback if self.loopback_for_tests => Ok(()),
            AddrClass::Private if self.private_allow.iter().any(|n| n.contains(&ip)) => Ok(()),
            AddrClass::Private => Err(Reason::PrivateAddress { ip }),
            class => Err(Reason::RefusedAddress { ip, class }),
        }
    }

    /// Decides a request for `host:port` whose name resolved to `addrs`. Every address must
    /// pass [`Policy::check_addr`] (one refused address refuses the destination: a name with
    /// one good and one internal record is not trusted). With `addrs` empty only the name is
    /// checked (the caller checks addresses later, e.g. in a resolver).
    pub fn decide(&self, host: &str, port: u16, addrs: &[IpAddr]) -> Decision {
        let host = normalize_host(host);
        let deny = |reason, rule| Decision {
            verdict: Verdict::Deny,
            reason,
            rule,
        };
        if refused_name(&host) {
            return deny(Reason::RefusedName, None);
        }
        let literal = host.parse::<IpAddr>().ok();
        for ip in literal.iter().chain(addrs) {
            if let Err(reason) = self.check_addr(*ip) {
                let rule = match &reason {
                    Reason::PrivateAddress { ip } => Some(format!("privateAllow {ip}")),
                    _ => None,
                };
                return deny(reason, rule);
            }
        }
        if let Some(rule) = self.rules.iter().find(|r| r.entry.matches(&host, port)) {
            return Decision {
                verdict: Verdict::Allow,
                reason: Reason::Matched,
                rule: Some(format!("{} ({})", rule.entry, rule.origin)),
            };
        }
        let would = HostPort { host: &host, port }.to_string();
        match self.mode {
            Mode::Enforce => deny(Reason::NoRule, Some(would)),
            Mode::Audit => Decision {
                verdict: Verdict::Audit,
                reason: Reason::NoRule,
                rule: Some(would),
            },
        }
    }

    /// The effective policy as a policy file (`defaults: false`, every rule in `allow`): what
    /// the host sends to the gate's `PUT /policy`.
    pub fn to_file_json(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": self.mode,
            "defaults": false,
            "allow": self.rules.iter().map(|r| r.entry.to_string()).collect::<Vec<_>>(),
            "privateAllow": self.private_allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }

    /// A readable listing for `openwork policy show`: mode, each rule with its origin, the
    /// private allow list and the always-refused classes.
    pub fn show(&self) -> String {
        let mut out = format!("mode: {}\n", serde_json::json!(self.mode));
        out.push_str("allow (default deny):\n");
        for rule in &self.rules {
            out.push_str(&format!(
                "  {:<45} {}\n",
                rule.entry.to_string(),
                rule.origin
            ));
        }
        out.push_str("privateAllow:");
        if self.private_allow.is_empty() {
            out.push_str(" (none: private ranges are refused)");
        }
        for net in &self.private_allow {
            out.push_str(&format!(" {net}"));
        }
        out.push_str("\nalways refused: ");
        let ranges: Vec<&str> = addr::REFUSED_RANGES.iter().map(|(r, _)| *r).collect();
        out.push_str(&ranges.join(" "));
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(json: &str) -> Policy {
        Policy::build(
            &PolicyFile::from_json(json, "test").unwrap(),
            &Extras::default(),
        )
    }

    #[test]
    fn default_deny_and_builtin_allow() {
        let p = Policy::builtin();
        let d = p.decide("api.anthropic.com", 443, &[ip("160.79.104.10")]);
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.rule.as_deref(), Some("api.anthropic.com:443 (builtin)"));
        let d = p.decide("evil.example", 443, &[ip("93.184.216.34")]);
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.reason, Reason::NoRule);
        assert_eq!(d.rule.as_deref(), Some("evil.example:443"));
        assert_eq!(
            p.decide("api.anthropic.com", 80, &[]).verdict,
            Verdict::Deny
        );
    }

    #[test]
    fn a_listed_name_resolving_to_a_refused_address_is_refused() {
        let p = policy(r#"{"allow":["api.example.com"]}"#);
        for bad in [
            "127.0.0.1",
            "::1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
        ] {
            let d = p.decide("api.example.com", 443, &[ip("93.184.216.34"), ip(bad)]);
            assert_eq!(d.verdict, Verdict::Deny, "{bad}");
            assert!(matches!(d.reason, Reason::RefusedAddress { .. }), "{bad}");
            assert_eq!(d.rule, None);
        }
        let d = p.decide("api.example.com", 443, &[ip("10.0.0.5")]);
        assert_eq!(d.reason, Reason::PrivateAddress { ip: ip("10.0.0.5") });
        assert_eq!(d.rule.as_deref(), Some("privateAllow 10.0.0.5"));
    }

    #[test]
    fn private_allow_names_the_address_or_a_cidr() {
        let p = policy(
            r#"{"allow":["llm.lan:11434","gpu.lan:8000"],"privateAllow":["192.168.1.20","10.9.0.0/16"]}"#,
        );
        assert!(p.decide("llm.lan", 11434, &[ip("192.168.1.20")]).allowed());
        assert!(!p.decide("llm.lan", 11434, &[ip("192.168.1.21")]).allowed());
        assert!(p.decide("gpu.lan", 8000, &[ip("10.9.3.4")]).allowed());
        assert!(!p.decide("gpu.lan", 8000, &[ip("10.8.3.4")]).allowed());
    }

    #[test]
    fn localhost_by_name_is_refused_even_without_addresses() {
        let d = Policy::builtin().decide("LOCALHOST.", 443, &[]);
        assert_eq!(d.reason, Reason::RefusedName);
    }

    #[test]
    fn ip_literal_requests_are_checked_as_addresses() {
        let p = policy(r#"{"allow":["203.0.114.5:80"]}"#);
        assert!(p.decide("203.0.114.5", 80, &[]).allowed());
        assert_eq!(
            p.decide("127.0.0.1", 80, &[]).reason,
            Reason::RefusedAddress {
                ip: ip("127.0.0.1"),
                class: AddrClass::Loopback
            }
        );
    }

    #[test]
    fn audit_mode_lets_unlisted_through_but_not_refused_addresses() {
        let p = policy(r#"{"mode":"audit","defaults":false}"#);
        let d = p.decide("anything.example", 443, &[ip("93.184.216.34")]);
        assert_eq!(d.verdict, Verdict::Audit);
        assert!(d.allowed());
        assert!(
            !p.decide("x.example", 443, &[ip("169.254.169.254")])
                .allowed()
        );
    }

    #[test]
    fn merge_order_and_origins() {
        let file =
            PolicyFile::from_json(r#"{"allow":["a.example.com","api.openai.com"]}"#, "f").unwrap();
        let extras = Extras {
            cli: vec![Entry::parse("b.example.com:8443").unwrap()],
            providers: vec![("corp".into(), Entry::parse("llm.corp.example").unwrap())],
        };
        let p = Policy::build(&file, &extras);
        let origin = |s: &str| {
            p.rules()
                .iter()
                .find(|r| r.entry.to_string() == s)
                .map(|r| r.origin.clone())
        };
        assert_eq!(origin("api.openai.com:443"), Some(Origin::Builtin));
        assert_eq!(origin("a.example.com:443"), Some(Origin::File));
        assert_eq!(origin("b.example.com:8443"), Some(Origin::Cli));
        assert_eq!(
            origin("llm.corp.example:443"),
            Some(Origin::Provider("corp".into()))
        );
        let json = p.to_file_json();
        let back = PolicyFile::from_json(&json.to_string(), "round trip").unwrap();
        assert_eq!(back.allow.len(), p.rules().len());
        assert!(!back.defaults);
        assert!(p.show().contains("b.example.com:8443"));
    }

    #[test]
    fn loopback_for_tests_only_relaxes_loopback() {
        let mut p = policy(r#"{"allow":["upstream.test:8080"]}"#);
        p.unsafe_allow_loopback_for_tests();
        assert!(
            p.decide("upstream.test", 8080, &[ip("127.0.0.1")])
                .allowed()
        );
        assert!(
            !p.decide("upstream.test", 8081, &[ip("127.0.0.1")])
                .allowed()
        );
        assert!(
            !p.decide("upstream.test", 8080, &[ip("169.254.169.254")])
                .allowed()
        );
    }
}
