//! Every way a policy file, an entry or a `privateAllow` item can be refused.
//!
//! Threat: a refusal that hides its cause gets "fixed" in the widest way (allow everything).
//! Each variant carries the bad value and its `Display` names the narrowest fix.
//!
//! Left open: messages are English only.

use std::net::IpAddr;

use crate::policy::addr::AddrClass;

/// Why one `allow` entry (or a `--sandbox-allow` value) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// An empty string.
    #[error("empty entry: write host[:port], e.g. \"api.example.com\" or \"api.example.com:8443\"")]
    Empty,
    /// `*` (or `*:port`): everything.
    #[error(
        "{entry:?} would allow every host; there is no allow-all. List the hosts the agent \
         needs, or use a label wildcard such as \"*.example.com\" (or mode \"audit\" to only record)"
    )]
    BareStar { entry: String },
    /// A wildcard that is not one whole leftmost label over at least two labels.
    #[error(
        "{entry:?}: a wildcard must be the whole leftmost label over a domain of at least two \
         labels, e.g. \"*.example.com\" (not \"a*.example.com\", \"api.*.com\" or \"*.com\")"
    )]
    BadWildcard { entry: String },
    /// A URL instead of host[:port].
    #[error("{entry:?}: write host[:port] without a scheme or path, e.g. {suggestion:?}")]
    NotHostPort { entry: String, suggestion: String },
    /// A host name with characters or labels DNS does not allow.
    #[error(
        "{entry:?}: {host:?} is not a valid host name (labels of 1-63 letters, digits or '-', \
         253 characters at most)"
    )]
    BadHost { entry: String, host: String },
    /// A port that is not 1-65535.
    #[error("{entry:?}: port {port:?} is not a number from 1 to 65535")]
    BadPort { entry: String, port: String },
    /// A name that always means this machine or a metadata service.
    #[error(
        "{entry:?}: {host} names this machine or a cloud metadata service, which the gate \
         never reaches; remove the entry (a model server on the LAN is allowed by its own name \
         or address plus \"privateAllow\")"
    )]
    RefusedName { entry: String, host: String },
    /// An IP literal in an always-refused class.
    #[error("{entry:?}: {ip} is a {class} address, which the gate never reaches; remove the entry")]
    RefusedAddress {
        entry: String,
        ip: IpAddr,
        class: AddrClass,
    },
}

/// Why one `privateAllow` item is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrivateAllowError {
    /// Neither an IP address nor a CIDR.
    #[error(
        "{value:?} is not an IP address or CIDR; write e.g. \"192.168.1.20\" or \"10.1.0.0/16\""
    )]
    Syntax { value: String },
    /// Public, or wider than a private range.
    #[error(
        "{value:?} is not inside one private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, \
         100.64.0.0/10, fc00::/7); public hosts need only an \"allow\" entry"
    )]
    NotPrivate { value: String },
    /// Loopback, link-local, metadata…: no policy reaches those.
    #[error("{value:?} is a {class} address, which the gate never reaches; remove it")]
    AlwaysRefused { value: String, class: AddrClass },
}

/// What is wrong with a value at one place of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaProblem {
    /// The top level is not an object.
    #[error("expected a JSON object, found {found}")]
    NotObject { found: &'static str },
    /// A key the schema does not know (often a typo).
    #[error("unknown key {key:?}; the keys are {allowed}")]
    UnknownKey { key: String, allowed: &'static str },
    /// A value of the wrong JSON type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    /// `mode` is not `enforce` or `audit`.
    #[error("mode {value:?} is not \"enforce\" or \"audit\"")]
    BadMode { value: String },
    /// A refused `allow` entry.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// A refused `privateAllow` item.
    #[error(transparent)]
    PrivateAllow(#[from] PrivateAllowError),
}

/// One problem at one place (`allow[2]`, `mode`, `(top level)`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {problem}")]
pub struct Problem {
    /// Where in the file, e.g. `allow[2]`.
    pub at: String,
    /// What is wrong there.
    pub problem: SchemaProblem,
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file cannot be read.
    #[error(
        "{path}: cannot read the sandbox policy: {source}. Fix its permissions or pass another file with --sandbox-policy."
    )]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not JSON: serde_json's position and message.
    #[error(
        "{source_name}:{line}:{column}: the sandbox policy is not valid JSON: {message}. \
         Fix the syntax there (the file is plain JSON: no comments, no trailing commas)."
    )]
    Syntax {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// JSON, but one or more keys or entries are refused; every one is listed.
    #[error("{source_name}: the sandbox policy has {} problem(s):{}", problems.len(), list(problems))]
    Invalid {
        source_name: String,
        problems: Vec<Problem>,
    },
    /// A `--sandbox-allow` value (or `POST /allow` body) is refused.
    #[error("--sandbox-allow {0}")]
    Allow(#[from] EntryError),
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}
