//! [`GateConfig`]: the gate's listen addresses, forwards, token and initial policy, parsed from
//! `openwork gate` arguments and the gate container's environment.
//!
//! Threat: a gate that starts half-protected — a control API without a token, a token short
//! enough to guess, a policy that failed to parse and silently became "allow all". Each is a
//! refusal to start, with the flag or variable to fix.
//!
//! Left open: the token is read from the environment of the gate's own container (the host sets
//! it; `docker inspect` shows it to whoever can use the engine, who already owns the host).

use std::net::SocketAddr;

use crate::policy::error::PolicyError;
use crate::secret::Secret;
use crate::state::Resolver;

/// The variable that holds the control token.
pub const TOKEN_ENV: &str = "OPENWORK_GATE_TOKEN";
/// The variable that may hold the initial policy (policy-file JSON).
pub const POLICY_JSON_ENV: &str = "OPENWORK_GATE_POLICY";
/// The shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 32;

/// One `--forward LISTEN=TARGET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Where the gate listens.
    pub listen: SocketAddr,
    /// `host:port` to connect to (resolved per connection).
    pub target: String,
}

/// Everything `openwork gate` needs.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// `--proxy ADDR`: the forward proxy (the agent's `HTTP(S)_PROXY`).
    pub proxy: Option<SocketAddr>,
    /// `--inject ADDR`: the credential-injecting listener (the providers' `baseURL`).
    pub inject: Option<SocketAddr>,
    /// `--control ADDR`: the host's control API (required).
    pub control: SocketAddr,
    /// `--forward LISTEN=TARGET`, repeatable: the way in.
    pub forwards: Vec<Forward>,
    /// The control API's bearer token (`OPENWORK_GATE_TOKEN`).
    pub token: Secret,
    /// The initial policy as policy-file JSON (`OPENWORK_GATE_POLICY`); without it the
    /// built-in profile applies until the host sends `PUT /policy`.
    pub policy_json: Option<String>,
    /// How names resolve ([`Resolver::System`] from the CLI).
    pub resolver: Resolver,
    /// Tests only: let loopback upstreams through the address check. The CLI never sets it:
    /// there is no flag or variable for it.
    pub unsafe_allow_loopback_for_tests: bool,
}

/// Why the arguments or environment are refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A flag this command does not know.
    #[error(
        "openwork gate: unknown argument {arg:?}; the flags are --proxy, --inject, --control, --forward"
    )]
    UnknownArg { arg: String },
    /// A flag without its value.
    #[error("openwork gate: {flag} needs a value")]
    MissingValue { flag: &'static str },
    /// Not `ip:port`.
    #[error("openwork gate: {flag} {value:?} is not an address such as 0.0.0.0:3128")]
    BadAddr { flag: &'static str, value: String },
    /// Not `LISTEN=TARGET`.
    #[error(
        "openwork gate: --forward {value:?} must be LISTEN=HOST:PORT, e.g. 0.0.0.0:4096=agent:4096"
    )]
    BadForward { value: String },
    /// No `--control`.
    #[error("openwork gate: --control ADDR is required (the host's control API)")]
    MissingControl,
    /// No token.
    #[error(
        "openwork gate: set {TOKEN_ENV} to the control token (at least {MIN_TOKEN_LEN} characters)"
    )]
    MissingToken,
    /// A token too short to be unguessable.
    #[error(
        "openwork gate: {TOKEN_ENV} is {len} characters; use at least {MIN_TOKEN_LEN} random ones"
    )]
    ShortToken { len: usize },
    /// The initial policy is refused.
    #[error("openwork gate: {POLICY_JSON_ENV}: {0}")]
    Policy(#[from] PolicyError),
}

impl GateConfig {
    /// Parses the arguments after `gate` and reads `OPENWORK_GATE_TOKEN` /
    /// `OPENWORK_GATE_POLICY` through `env` (so tests pass a map, and nothing here reads the
    /// process environment).
    pub fn from_args<I, S>(
        args: I,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut proxy = None;
        let mut inject = None;
        let mut control = None;
        let mut forwards = Vec::new();
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let flag: &'static str = match flag.as_str() {
                "--proxy" => "--proxy",
                "--inject" => "--inject",
                "--control" => "--control",
                "--forward" => "--forward",
                _ => return Err(ConfigError::UnknownArg { arg }),
            };
            let value = inline
                .or_else(|| args.next())
                .ok_or(ConfigError::MissingValue { flag })?;
            match flag {
                "--proxy" => proxy = Some(addr(flag, &value)?),
                "--inject" => inject = Some(addr(flag, &value)?),
                "--control" => control = Some(addr(flag, &value)?),
                _ => forwards.push(forward(&value)?),
            }
        }
        let control = control.ok_or(ConfigError::MissingControl)?;
        let token = env(TOKEN_ENV).unwrap_or_default();
        if token.is_empty() {
            return Err(ConfigError::MissingToken);
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(ConfigError::ShortToken { len: token.len() });
        }
        let policy_json = env(POLICY_JSON_ENV).filter(|p| !p.trim().is_empty());
        if let Some(json) = &policy_json {
            crate::PolicyFile::from_json(json, POLICY_JSON_ENV)?;
        }
        Ok(Self {
            proxy,
            inject,
            control,
            forwards,
            token: Secret::new(token),
            policy_json,
            resolver: Resolver::System,
            unsafe_allow_loopback_for_tests: false,
        })
    }
}

fn addr(flag: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::BadAddr {
        flag,
        value: value.to_owned(),
    })
}

fn forward(value: &str) -> Result<Forward, ConfigError> {
    let bad = || ConfigError::BadForward {
        value: value.to_owned(),
    };
    let (listen, target) = value.split_once('=').ok_or_else(bad)?;
    let listen = listen.parse().map_err(|_| bad())?;
    let port_ok = target
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(bad());
    }
    Ok(Forward {
        listen,
        target: target.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn env(token: &'static str) -> impl Fn(&str) -> Option<String> {
        move |name| (name == TOKEN_ENV).then(|| token.to_owned())
    }

    #[test]
    fn parses_the_documented_example() {
        let c = GateConfig::from_args(
            [
                "--proxy",
                "0.0.0.0:3128",
                "--inject=0.0.0.0:3129",
                "--control",
                "0.0.0.0:3130",
                "--forward",
                "0.0.0.0:4096=agent:4096",
            ],
            env(TOKEN),
        )
        .unwrap();
        assert_eq!(c.proxy.unwrap().port(), 3128);
        assert_eq!(c.inject.unwrap().port(), 3129);
        assert_eq!(c.forwards[0].target, "agent:4096");
        assert!(!c.unsafe_allow_loopback_for_tests);
        assert_eq!(format!("{:?}", c.token), "[REDACTED]");
    }

    #[test]
    fn refusals() {
        let parse = |args: &[&str], token| GateConfig::from_args(args.to_vec(), env(token));
        assert!(matches!(
            parse(&["--proxy", "0.0.0.0:1"], TOKEN),
            Err(ConfigError::MissingControl)
        ));
        assert!(matches!(
            parse(&["--control", "0.0.0.0:1"], ""),
            Err(ConfigError::MissingToken)
        ));
        assert!(matches!(
            parse(&["--control", "0.0.0.0:1"], "short"),
            Err(ConfigError::ShortToken { len: 5 })
        ));
        assert!(matches!(
            parse(&["--control", "gate:1"], TOKEN),
            Err(ConfigError::BadAddr { .. })
        ));
        assert!(matches!(
            parse(
                &["--control", "0.0.0.0:1", "--forward", "0.0.0.0:2=agent"],
                TOKEN
            ),
            Err(ConfigError::BadForward { .. })
        ));
        assert!(matches!(
            parse(&["--control"], TOKEN),
            Err(ConfigError::MissingValue { .. })
        ));
        assert!(matches!(
            parse(&["--unsafe-allow-loopback-for-tests"], TOKEN),
            Err(ConfigError::UnknownArg { .. })
        ));
        let bad_policy = GateConfig::from_args(["--control", "0.0.0.0:1"], |name| match name {
            TOKEN_ENV => Some(TOKEN.to_owned()),
            _ => Some("{\"allow\":[\"*\"]}".to_owned()),
        });
        assert!(matches!(bad_policy, Err(ConfigError::Policy(_))));
    }
}
