//! The egress gate of openwork's sandbox (`openwork gate`).
//!
//! The agent's container sits alone on an internal network; this gate is its only way out and
//! the host's only way in. It runs four listeners: an HTTP proxy with a `host:port` policy
//! ([`proxy`]), a credential-injecting reverse proxy for model providers ([`inject`]), a
//! bearer-token control API for the host ([`control`]) and plain TCP forwards to opencode
//! ([`forward`]). The policy itself is pure ([`policy`]).
//!
//! The contract (policy schema, control API, flags) is in this crate's `README.md`.

pub mod policy;

pub use policy::entry::{DEFAULT_PORT, Entry, HostPattern};
pub use policy::error::{EntryError, PolicyError, PrivateAllowError, Problem, SchemaProblem};
pub use policy::file::{EXAMPLE_POLICY, Mode, POLICY_ENV, POLICY_KEYS, PolicyFile};
pub use policy::{Decision, Extras, Origin, Policy, Reason, Rule, Verdict};
