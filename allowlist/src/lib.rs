//! Mount-spec grammar and allowlist validation for the sandbox's extra mounts.
//!
//! `--sandbox-mount host:sub[:ro|rw]` asks openwork to bind a host path into the untrusted
//! agent's container at `/workspace/extra/<sub>`. This crate decides whether it may: it parses
//! the specs ([`parse_specs`]), reads the user's allowlist file ([`Allowlist::load`]) and
//! checks every spec's *real* host path against allowed roots, blocked patterns and paths
//! that are never mounted ([`validate`]). It depends on no other openwork crate, does no I/O
//! beyond resolving paths through [`Fs`] and reading the allowlist file, and reads no
//! environment variables: the caller passes the home folder, working directory and paths.
//!
//! The contract (grammar, file schema, rules, example) is in this crate's `README.md`.
//!
//! ```
//! use openwork_allowlist::{parse_specs, Allowlist, Error};
//!
//! let specs = parse_specs(&["~/projects/app:app, ~/Documents/specs:specs:ro".to_owned()])?;
//! assert_eq!(specs[1].subpath().container_path(), "/workspace/extra/specs");
//!
//! let allowlist = Allowlist::from_json(
//!     r#"{"allowedRoots":[{"path":"~/projects","allowReadWrite":true}]}"#,
//!     "allowlist.json",
//! )?;
//! assert!(allowlist.roots()[0].allow_read_write());
//!
//! // Then, on the real host:
//! // let host = HostEnv::new(home, cwd)?;
//! // let mounts = validate(&specs, &allowlist, &host)?;
//! # Ok::<(), Error>(())
//! ```

mod error;
mod file;
mod fs;
mod patterns;
mod protected;
mod spec;
mod validate;

pub use error::{
    Error, HostPathProblem, Overlap, PatternOrigin, Protection, SchemaProblem, SpecialKind,
    SubpathProblem,
};
pub use file::{
    ALLOWLIST_ENV, AllowedRoot, Allowlist, EXAMPLE_ALLOWLIST, SPECS_ENV, allowlist_path,
    default_allowlist_path,
};
pub use fs::{FileKind, Fs, HostEnv, RealFs};
pub use patterns::{DEFAULT_BLOCKED_PATTERNS, component_matches};
pub use protected::{ENGINE_SOCKETS, PROTECTED_TREES};
pub use spec::{CONTAINER_BASE, MountSpec, RequestedAccess, Subpath, parse_specs};
pub use validate::{ValidatedMount, refuse_without_allowlist, validate, validate_with_file};

#[cfg(test)]
mod tests {
    /// Keeps `Result<_, Error>` small enough to pass around (clippy's `result_large_err`).
    #[test]
    fn error_stays_small() {
        assert!(
            size_of::<crate::Error>() <= 120,
            "{}",
            size_of::<crate::Error>()
        );
    }
}
