//! Every way a mount spec or an allowlist file can be refused, as one matchable enum.
//!
//! Threat: a refusal that hides its cause gets "fixed" by the user in the widest possible way
//! (the reference printed "file missing" for a file with a typo, so people allow-listed `~`).
//! Each variant carries the data a caller needs (spec, real path, root, pattern) and its
//! `Display` names the bad value and the fix, so the narrowest fix is the obvious one.
//!
//! Left open: messages are English only, and the first problem found stops validation
//! (fail-fast, like the reference), so a user with three bad specs sees them one at a time.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::file::EXAMPLE_ALLOWLIST;

/// Why a spec, an allowlist file or a mount was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `--sandbox-mount` value that starts with `[` is not a valid JSON array.
    #[error(
        "Invalid --sandbox-mount list {raw:?}: bad JSON array at line {line} column {column}: \
         {message}. Use a JSON array of strings such as [\"~/data:data:ro\"], or separate specs \
         with ',' or ';'."
    )]
    SpecListJson {
        raw: String,
        line: usize,
        column: usize,
        message: String,
    },

    /// An item of a JSON-array `--sandbox-mount` list is not a string.
    #[error(
        "Invalid --sandbox-mount list {raw:?}: item {index} is not a string. \
         Each item must be a \"hostPath:subpath[:ro|rw]\" string."
    )]
    SpecListItem { raw: String, index: usize },

    /// An empty string inside a JSON-array list.
    #[error("Empty --sandbox-mount entry in {raw:?}. Remove it or write hostPath:subpath[:ro|rw].")]
    EmptySpec { raw: String },

    /// No `:` between host path and subpath, or it is the first or last character.
    #[error("Invalid --sandbox-mount value: {spec}. Use hostPath:subpath[:ro|rw].")]
    InvalidSpec { spec: String },

    /// The part before the first `:` is blank.
    #[error(
        "Invalid --sandbox-mount value: {spec}. Host path is empty. Use hostPath:subpath[:ro|rw]."
    )]
    EmptyHostPath { spec: String },

    /// The part after the first `:` is blank.
    #[error(
        "Invalid --sandbox-mount value: {spec}. Container subpath is empty. \
         Use hostPath:subpath[:ro|rw]."
    )]
    EmptySubpath { spec: String },

    /// The container subpath breaks the subpath rules.
    #[error(
        "Invalid sandbox container subpath: \"{subpath}\" (--sandbox-mount {spec}): {problem}. \
         Use a relative path without \"/\" prefix or \"..\", whose segments use only letters, \
         digits, '.', '_' and '-'."
    )]
    InvalidSubpath {
        spec: String,
        subpath: String,
        problem: SubpathProblem,
    },

    /// Two specs mount at the same container path.
    #[error(
        "Duplicate sandbox container subpath \"{subpath}\": --sandbox-mount {first} and {second} \
         both mount at /workspace/extra/{subpath}. Give each mount its own subpath."
    )]
    DuplicateSubpath {
        subpath: String,
        first: String,
        second: String,
    },

    /// One spec's container path lies inside another's.
    #[error(
        "Nested sandbox container subpaths: \"{inner}\" (--sandbox-mount {inner_spec}) lies inside \
         \"{outer}\" (--sandbox-mount {outer_spec}). Give the mounts subpaths that do not contain \
         each other."
    )]
    NestedSubpath {
        outer: String,
        outer_spec: String,
        inner: String,
        inner_spec: String,
    },

    /// The host path (after `~` expansion and resolution against the cwd) does not exist, or is a
    /// symlink whose target does not exist.
    #[error(
        "Sandbox mount host path does not exist: {raw} (expanded: {}) (--sandbox-mount {spec}). \
         Create it or fix the path; a symlink must point to an existing file or folder.",
        .expanded.display()
    )]
    HostPathMissing {
        spec: String,
        raw: String,
        expanded: PathBuf,
    },

    /// The host path exists but cannot be resolved (permission denied, a loop, a NUL byte).
    #[error(
        "Sandbox mount host path cannot be resolved: {} (--sandbox-mount {spec}): {source}",
        .expanded.display()
    )]
    HostPathUnresolvable {
        spec: String,
        expanded: PathBuf,
        source: io::Error,
    },

    /// The real host path has characters that engine mount options could misread.
    #[error(
        "Sandbox mount rejected: the real path {} {problem} (--sandbox-mount {spec}). \
         Rename the folder or mount it through a path without such characters.",
        .real.display()
    )]
    UnsafeHostPath {
        spec: String,
        real: PathBuf,
        problem: HostPathProblem,
    },

    /// The host path is a socket, device, FIFO or other non-file, non-directory.
    #[error(
        "Sandbox mount rejected: {} is a {kind} (--sandbox-mount {spec}). Sockets, device files \
         and FIFOs are never mounted into a sandbox; mount a regular file or a folder.",
        .real.display()
    )]
    SpecialFile {
        spec: String,
        real: PathBuf,
        kind: SpecialKind,
    },

    /// The real path is inside, or contains, a path that is never mounted (engine sockets and
    /// state, kernel interfaces, credential stores, openwork's own config and state).
    #[error("{}", protected_message(.spec, .real, .protected, *.protection, *.overlap))]
    Protected {
        spec: String,
        real: PathBuf,
        protected: PathBuf,
        protection: Protection,
        overlap: Overlap,
    },

    /// A component of the real path matches a blocked pattern.
    #[error(
        "Sandbox mount rejected (blocked pattern \"{pattern}\"): {} (component \"{}\", \
         --sandbox-mount {spec}). {}",
        .real.display(), crate::patterns::matching_component(.real, .pattern), blocked_fix(.origin)
    )]
    Blocked {
        spec: String,
        real: PathBuf,
        /// The pattern that matched a component of `real`.
        pattern: String,
        origin: PatternOrigin,
    },

    /// The real path lies under no allowed root.
    #[error(
        "Sandbox mount rejected: {} is not under any allowed root. Allowed: {}{} \
         (--sandbox-mount {spec}). To allow it, add its folder to {allowlist} under allowedRoots.",
        .real.display(), list(.allowed), skipped(.missing)
    )]
    NotUnderRoot {
        spec: String,
        real: PathBuf,
        allowlist: String,
        /// Roots as written after `~` expansion (not realpath'd), in file order.
        allowed: Box<[PathBuf]>,
        /// Roots of the file that do not exist (or cannot be resolved) and were skipped.
        missing: Box<[PathBuf]>,
    },

    /// The spec said `:rw` but the root that holds the path is read-only.
    #[error(
        "Sandbox mount rejected: --sandbox-mount {spec} asks for read-write, but {} is under the \
         read-only root {} in {allowlist}. Drop \":rw\" (or use \":ro\") to mount it read-only, or \
         set \"allowReadWrite\": true for that root in {allowlist}.",
        .real.display(), .root.display()
    )]
    ReadWriteNotAllowed {
        spec: String,
        real: PathBuf,
        root: PathBuf,
        allowlist: String,
    },

    /// Extra mounts were asked for but there is no allowlist file.
    #[error(
        "Additional sandbox mounts are blocked (--sandbox-mount {spec}). Create {} to enable.\n\n\
         Example:\n{EXAMPLE_ALLOWLIST}",
        .path.display()
    )]
    AllowlistMissing { path: PathBuf, spec: String },

    /// The allowlist file exists but cannot be read.
    #[error("Cannot read the sandbox mount allowlist {}: {source}", .path.display())]
    AllowlistRead { path: PathBuf, source: io::Error },

    /// The allowlist file is not valid JSON.
    #[error(
        "{source_name}:{line}:{column}: the sandbox mount allowlist is not valid JSON: {message}. \
         Fix the file; see the example in the openwork-allowlist README."
    )]
    AllowlistSyntax {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },

    /// The allowlist file is JSON but not of the allowlist's shape.
    #[error("{source_name}: {at}: {problem}. Expected a file like:\n{EXAMPLE_ALLOWLIST}")]
    AllowlistSchema {
        source_name: String,
        /// Where in the file, e.g. `allowedRoots[1].path` or `(top level)`.
        at: String,
        problem: SchemaProblem,
    },

    /// The home or working directory handed to [`crate::HostEnv`] is not absolute.
    #[error("The {what} directory must be an absolute path, got {}", .path.display())]
    RelativeContext { what: &'static str, path: PathBuf },
}

/// What is wrong with a container subpath.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubpathProblem {
    /// Starts with `/`.
    Absolute,
    /// Contains `..` anywhere (even inside a segment, as the reference does).
    DotDot,
    /// Has a `.` segment.
    DotSegment,
    /// Contains `\`.
    Backslash,
    /// Contains a NUL byte.
    Nul,
    /// Has no non-empty segment (e.g. `///`).
    NoSegment,
    /// Has a character outside `[A-Za-z0-9._-]` (and `/` between segments).
    BadChar(char),
    /// A segment longer than 255 bytes.
    SegmentTooLong(usize),
}

impl fmt::Display for SubpathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absolute => f.write_str("it starts with \"/\""),
            Self::DotDot => f.write_str("it contains \"..\""),
            Self::DotSegment => f.write_str("it has a \".\" segment"),
            Self::Backslash => f.write_str("it contains a backslash"),
            Self::Nul => f.write_str("it contains a NUL byte"),
            Self::NoSegment => f.write_str("it has no path segment"),
            Self::BadChar(c) => write!(f, "it contains the character {c:?}"),
            Self::SegmentTooLong(n) => write!(f, "a segment is {n} bytes long (at most 255)"),
        }
    }
}

/// What is wrong with a real host path's spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostPathProblem {
    /// Not valid UTF-8 (engine APIs take UTF-8 strings).
    NotUtf8,
    /// Contains `:` or `,` (mount option separators) or a control character.
    Char(char),
}

impl fmt::Display for HostPathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUtf8 => f.write_str("is not valid UTF-8"),
            Self::Char(c) => write!(f, "contains the character {c:?}"),
        }
    }
}

/// A kind of file that is never mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecialKind {
    Socket,
    CharDevice,
    BlockDevice,
    Fifo,
    /// A symlink where the resolved path should have none (the path changed while checking).
    Symlink,
    /// Anything else that is neither a regular file nor a directory.
    Unknown,
}

impl fmt::Display for SpecialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Socket => "unix socket",
            Self::CharDevice => "character device",
            Self::BlockDevice => "block device",
            Self::Fifo => "FIFO (named pipe)",
            Self::Symlink => "symlink that appeared while checking (the path changed)",
            Self::Unknown => "special file",
        })
    }
}

/// Why a protected path is never mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protection {
    /// A container engine's socket or state: access to it is root on the host.
    EngineRuntime,
    /// `/proc`, `/sys`, `/dev`: the host kernel's interfaces.
    KernelInterface,
    /// A credential store in the home folder (`~/.ssh`, `~/.aws`, ...).
    CredentialStore,
    /// openwork's own config (the allowlist itself) or state (tokens).
    Openwork,
    /// A path the caller asked to protect (e.g. the data dir).
    Caller,
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EngineRuntime => {
                "container engine runtime: its socket gives whoever can reach it root on the host"
            }
            Self::KernelInterface => "host kernel interface",
            Self::CredentialStore => "credential store",
            Self::Openwork => {
                "openwork's own config or state: an agent could widen its own allowlist or read tokens"
            }
            Self::Caller => "protected by openwork for this run",
        })
    }
}

/// How a mount overlaps a protected path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// The mount is the protected path or lies inside it.
    Inside,
    /// The mount is an ancestor of the protected path.
    Contains,
}

/// Where a blocked pattern comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternOrigin {
    /// The built-in list, which cannot be removed.
    BuiltIn,
    /// The `blockedPatterns` of this allowlist file (its name as in messages).
    File { allowlist: String },
}

/// What is wrong with the allowlist file's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaProblem {
    /// A value has the wrong JSON type.
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    /// A key the schema does not know (typos would otherwise be ignored silently).
    UnknownKey {
        key: String,
        allowed: &'static [&'static str],
    },
    /// A required key is absent.
    MissingKey { key: &'static str },
    /// A root that is neither absolute nor `~`-based.
    RelativeRoot { path: String },
    /// An empty root path.
    EmptyPath,
    /// A NUL byte in a path or pattern.
    Nul,
    /// An empty blocked pattern.
    EmptyPattern,
    /// A blocked pattern with `/`: patterns match one component.
    PatternHasSlash { pattern: String },
    /// `.` or `..`: never a component of a resolved path.
    PatternDots { pattern: String },
}

impl fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongType { expected, found } => write!(f, "expected {expected}, found {found}"),
            Self::UnknownKey { key, allowed } => {
                write!(f, "unknown key \"{key}\" (allowed: {})", allowed.join(", "))
            }
            Self::MissingKey { key } => write!(f, "the required key \"{key}\" is missing"),
            Self::RelativeRoot { path } => write!(
                f,
                "the root \"{path}\" is relative; write an absolute path or one starting with \"~/\""
            ),
            Self::EmptyPath => f.write_str("the root path is empty"),
            Self::Nul => f.write_str("contains a NUL byte"),
            Self::EmptyPattern => f.write_str("the pattern is empty"),
            Self::PatternHasSlash { pattern } => write!(
                f,
                "the pattern \"{pattern}\" contains \"/\"; a pattern matches one path component, \
                 e.g. \".env\" or \"*.pem\""
            ),
            Self::PatternDots { pattern } => write!(
                f,
                "the pattern \"{pattern}\" can never match a component of a resolved path"
            ),
        }
    }
}

fn protected_message(
    spec: &str,
    real: &Path,
    protected: &Path,
    protection: Protection,
    overlap: Overlap,
) -> String {
    match overlap {
        Overlap::Inside => format!(
            "Sandbox mount rejected: {} is inside {} ({protection}) (--sandbox-mount {spec}). \
             It is never mounted into a sandbox.",
            real.display(),
            protected.display()
        ),
        Overlap::Contains => format!(
            "Sandbox mount rejected: {} contains {} ({protection}) (--sandbox-mount {spec}). \
             Mount a subfolder that does not contain it.",
            real.display(),
            protected.display()
        ),
    }
}

fn blocked_fix(origin: &PatternOrigin) -> String {
    match origin {
        PatternOrigin::BuiltIn => "Built-in patterns cannot be removed; mount a path that does \
                                   not go through such a file or folder."
            .to_owned(),
        PatternOrigin::File { allowlist } => format!(
            "Mount a path that does not go through it, or remove the pattern from \
             blockedPatterns in {allowlist}."
        ),
    }
}

fn list(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "(none)".to_owned();
    }
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

fn skipped(missing: &[PathBuf]) -> String {
    if missing.is_empty() {
        return String::new();
    }
    format!(". Skipped (missing or unresolvable): {}", list(missing))
}
