//! [`Gate`]: the state every listener shares — the live policy, one-off allows, provider
//! credentials, the resolver and the audit channel.
//!
//! Threat: a policy update that races a connection and lets it through half-checked, or that
//! loses the run's approvals. The effective policy is one immutable `Arc<Policy>` rebuilt from
//! its parts (the host's policy, this run's one-off allows, the providers with credentials) and
//! swapped whole; a decision reads one snapshot. Replacing the host's policy keeps the one-off
//! allows of the run.
//!
//! Left open: a tunnel opened under the old policy stays open after a narrower policy is
//! swapped in (decisions are per connection, not per byte).

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::broadcast;

use crate::audit::{AuditRecord, CAPACITY};
use crate::inject::Credential;
use crate::policy::entry::{Entry, normalize_host};
use crate::policy::error::EntryError;
use crate::policy::profile::entry_for_url;
use crate::policy::{Origin, Policy};

/// How the gate turns names into addresses.
#[derive(Debug, Clone, Default)]
pub enum Resolver {
    /// The system resolver (`getaddrinfo` through tokio): production.
    #[default]
    System,
    /// A fixed table, for tests: a name not in it does not resolve. IP literals always resolve
    /// to themselves.
    Static(BTreeMap<String, Vec<IpAddr>>),
}

impl Resolver {
    /// Every address of `host` (an IP literal is its own address).
    pub async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<IpAddr>> {
        let host = normalize_host(host);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let addrs: Vec<IpAddr> = match self {
            Self::System => tokio::net::lookup_host((host.as_str(), port))
                .await?
                .map(|a: SocketAddr| a.ip())
                .collect(),
            Self::Static(table) => table.get(&host).cloned().unwrap_or_default(),
        };
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} does not resolve"),
            ));
        }
        Ok(addrs)
    }
}

/// The parts the effective policy is built from.
#[derive(Debug)]
struct Parts {
    /// The host's policy (file + profile + flags), replaced by `PUT /policy`.
    base: Policy,
    /// Allowed for this run (approvals, `POST /allow`).
    once: Vec<Entry>,
    /// Provider id → credential (`PUT /credentials`).
    credentials: Arc<BTreeMap<String, Credential>>,
}

/// The state shared by the gate's listeners.
#[derive(Debug)]
pub struct Gate {
    parts: Mutex<Parts>,
    effective: RwLock<Arc<Policy>>,
    credentials: RwLock<Arc<BTreeMap<String, Credential>>>,
    loopback_for_tests: bool,
    resolver: Resolver,
    audit: broadcast::Sender<AuditRecord>,
}

impl Gate {
    /// A gate with `policy`. `loopback_for_tests` comes only from
    /// `GateConfig::unsafe_allow_loopback_for_tests` (see [`Policy::unsafe_allow_loopback_for_tests`]).
    pub fn new(policy: Policy, resolver: Resolver, loopback_for_tests: bool) -> Arc<Self> {
        let (audit, _) = broadcast::channel(CAPACITY);
        let gate = Self {
            parts: Mutex::new(Parts {
                base: policy.clone(),
                once: Vec::new(),
                credentials: Arc::default(),
            }),
            effective: RwLock::new(Arc::new(policy)),
            credentials: RwLock::default(),
            loopback_for_tests,
            resolver,
            audit,
        };
        gate.update(|_| {});
        Arc::new(gate)
    }

    /// The effective policy now (one snapshot for one decision).
    pub fn policy(&self) -> Arc<Policy> {
        self.effective
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the host's policy; this run's one-off allows and credentials stay.
    pub fn replace_policy(&self, policy: Policy) {
        self.update(|parts| parts.base = policy);
    }

    /// Allows `host:port` for the rest of the run; returns the entry added.
    pub fn allow_once(&self, host: &str, port: u16) -> Result<Entry, EntryError> {
        let entry = Entry::exact(&normalize_host(host), port)?;
        let added = entry.clone();
        self.update(|parts| {
            if !parts.once.contains(&entry) {
                parts.once.push(entry);
            }
        });
        Ok(added)
    }

    /// Replaces the provider credentials (the whole set).
    pub fn set_credentials(&self, credentials: BTreeMap<String, Credential>) {
        let credentials = Arc::new(credentials);
        *self
            .credentials
            .write()
            .unwrap_or_else(PoisonError::into_inner) = credentials.clone();
        self.update(|parts| parts.credentials = credentials);
    }

    /// The credential of one provider.
    pub fn credential(&self, provider: &str) -> Option<Credential> {
        self.credentials
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .cloned()
    }

    /// The ids of the providers with credentials.
    pub fn providers(&self) -> Vec<String> {
        self.credentials
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// The resolver.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// A new subscriber to the audit records.
    pub fn subscribe_audit(&self) -> broadcast::Receiver<AuditRecord> {
        self.audit.subscribe()
    }

    /// Sends a record to every subscriber (dropped when there is none) and logs denials.
    pub fn emit(&self, record: AuditRecord) {
        if record.decision == crate::Verdict::Deny {
            tracing::warn!(
                host = %record.host,
                port = record.port,
                rule = record.rule.as_deref().unwrap_or("(none: always refused)"),
                reason = %record.reason,
                "egress denied"
            );
        }
        let _ = self.audit.send(record);
    }

    /// Rebuilds the effective policy after changing the parts.
    fn update(&self, change: impl FnOnce(&mut Parts)) {
        let mut parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut parts);
        let mut policy = parts.base.clone();
        for entry in &parts.once {
            policy.add(entry.clone(), Origin::Once);
        }
        for (id, credential) in parts.credentials.iter() {
            if let Ok(entry) = entry_for_url(credential.base_url.as_str()) {
                policy.add(entry, Origin::Credential(id.clone()));
            }
        }
        if self.loopback_for_tests {
            policy.unsafe_allow_loopback_for_tests();
        }
        *self
            .effective
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
    }
}
