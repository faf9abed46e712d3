//! Validation: from parsed specs and an allowlist to mounts that are safe to hand to an engine.
//!
//! Threat: an untrusted agent's container getting more of the host than the user allowed —
//! through a symlink that leads out of an allowed root, `..` in a host path, a secret's name on
//! the path, an engine socket, a device, or read-write access the root does not grant.
//!
//! Each spec goes through, in order (the first failure refuses it, and the whole list):
//! 1. targets: no duplicate or nested container subpaths;
//! 2. resolve: `~` and the working dir expanded, then the real path (symlinks followed,
//!    `.`/`..` gone); a missing path is an error naming it;
//! 3. spelling: the real path must be UTF-8 without `:`, `,` or control characters;
//! 4. type: only regular files and folders (no socket, device, FIFO);
//! 5. protected paths: not inside, equal to or an ancestor of an engine runtime, kernel
//!    interface, credential store or openwork's own config/state (see `protected.rs`);
//! 6. blocked patterns: no component of the real path matches one (see `patterns.rs`);
//! 7. allowed roots: the real path is a root's real path or lies below it (by components);
//!    the deepest matching root decides read-write;
//! 8. access: `:ro` is read-only; no suffix is read-write only if the root allows it; `:rw`
//!    under a read-only root is an error, never a silent downgrade or grant.
//!
//! Left open: what happens between this check and the mount (see `fs.rs`), and the contents of
//! mounted folders (see `patterns.rs` and `protected.rs`).

use std::path::{Path, PathBuf};

use crate::error::{Error, HostPathProblem, PatternOrigin, Protection, SpecialKind};
use crate::file::Allowlist;
use crate::fs::{FileKind, Fs, HostEnv};
use crate::patterns;
use crate::protected;
use crate::spec::{MountSpec, RequestedAccess, check_targets};

/// A mount that passed every check. Mount `host_real_path` (never the spec's path) at
/// `container_path`, read-only when `read_only`, through a structured mount API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedMount {
    /// The real host path: absolute, symlinks resolved, checked.
    pub host_real_path: PathBuf,
    /// `/workspace/extra/<subpath>`.
    pub container_path: String,
    /// Whether the mount must be read-only.
    pub read_only: bool,
    /// The real path of the allowed root that admitted it.
    pub root: PathBuf,
    /// Whether the host path is a folder (Apple `container` mounts folders only).
    pub is_dir: bool,
}

/// An allowed root, resolved for this host.
struct ResolvedRoot {
    /// The path as written, `~` expanded.
    shown: PathBuf,
    /// The real path.
    real: PathBuf,
    /// `allowReadWrite`.
    rw: bool,
}

/// Validates every spec against `allowlist` on `host`; fails on the first refused spec.
pub fn validate<F: Fs>(
    specs: &[MountSpec],
    allowlist: &Allowlist,
    host: &HostEnv<F>,
) -> Result<Vec<ValidatedMount>, Error> {
    check_targets(specs)?;
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let mut shown_roots = Vec::new();
    let mut missing = Vec::new();
    let mut roots = Vec::new();
    for root in allowlist.roots() {
        let shown = host.expand(root.path());
        match host.fs().canonicalize(&shown) {
            Ok(real) => {
                shown_roots.push(shown.clone());
                roots.push(ResolvedRoot {
                    shown,
                    real,
                    rw: root.allow_read_write(),
                });
            }
            Err(_) => missing.push(shown),
        }
    }
    let file_protection: Vec<(PathBuf, Protection)> = allowlist
        .file()
        .map(|f| (host.cwd().join(f), Protection::Openwork))
        .into_iter()
        .collect();
    let protected = protected::protected_paths(host, &file_protection);
    let blocked = patterns::effective(allowlist.blocked_patterns());

    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let spec_text = spec.spec().to_owned();
        let real = resolve(spec, host)?;
        check_spelling(&real).map_err(|problem| Error::UnsafeHostPath {
            spec: spec_text.clone(),
            real: real.clone(),
            problem,
        })?;
        let kind = host
            .fs()
            .kind(&real)
            .map_err(|source| Error::HostPathUnresolvable {
                spec: spec_text.clone(),
                expanded: real.clone(),
                source,
            })?;
        let is_dir = match kind {
            FileKind::Dir => true,
            FileKind::File => false,
            other => {
                return Err(Error::SpecialFile {
                    spec: spec_text,
                    real,
                    kind: special(other),
                });
            }
        };
        if let Some((p, overlap)) = protected::overlap(&real, &protected) {
            return Err(Error::Protected {
                spec: spec_text,
                real,
                protected: p.shown.clone(),
                protection: p.protection,
                overlap,
            });
        }
        if let Some(pattern) = patterns::first_blocked(&real, &blocked) {
            return Err(Error::Blocked {
                spec: spec_text,
                real,
                pattern: pattern.text.clone(),
                origin: if pattern.builtin {
                    PatternOrigin::BuiltIn
                } else {
                    PatternOrigin::File {
                        allowlist: allowlist.source_name().to_owned(),
                    }
                },
            });
        }
        let Some(root) = deepest_root(&real, &roots) else {
            return Err(Error::NotUnderRoot {
                spec: spec_text,
                real,
                allowlist: allowlist.source_name().to_owned(),
                allowed: shown_roots.into_boxed_slice(),
                missing: missing.into_boxed_slice(),
            });
        };
        let read_only = match spec.access() {
            RequestedAccess::ReadOnly => true,
            RequestedAccess::Default => !root.rw,
            RequestedAccess::ReadWrite if root.rw => false,
            RequestedAccess::ReadWrite => {
                return Err(Error::ReadWriteNotAllowed {
                    spec: spec_text,
                    real,
                    root: root.shown.clone(),
                    allowlist: allowlist.source_name().to_owned(),
                });
            }
        };
        out.push(ValidatedMount {
            host_real_path: real,
            container_path: spec.subpath().container_path(),
            read_only,
            root: root.real.clone(),
            is_dir,
        });
    }
    Ok(out)
}

/// Without an allowlist file no extra mount is allowed: `Ok(empty)` when there are no specs,
/// else an error that says where to create the file, with an example.
pub fn refuse_without_allowlist(
    specs: &[MountSpec],
    allowlist_path: &Path,
) -> Result<Vec<ValidatedMount>, Error> {
    match specs.first() {
        None => Ok(Vec::new()),
        Some(spec) => Err(Error::AllowlistMissing {
            path: allowlist_path.to_owned(),
            spec: spec.spec().to_owned(),
        }),
    }
}

/// Loads the allowlist at `allowlist_path` (only when there are specs) and validates.
pub fn validate_with_file<F: Fs>(
    specs: &[MountSpec],
    allowlist_path: &Path,
    host: &HostEnv<F>,
) -> Result<Vec<ValidatedMount>, Error> {
    check_targets(specs)?;
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    match Allowlist::load(allowlist_path)? {
        Some(allowlist) => validate(specs, &allowlist, host),
        None => refuse_without_allowlist(specs, allowlist_path),
    }
}

/// The real path of a spec's host path, or an error naming it.
fn resolve<F: Fs>(spec: &MountSpec, host: &HostEnv<F>) -> Result<PathBuf, Error> {
    let expanded = host.expand(spec.host());
    match host.fs().canonicalize(&expanded) {
        Ok(real) if real.is_absolute() => Ok(real),
        Ok(real) => Err(Error::HostPathUnresolvable {
            spec: spec.spec().to_owned(),
            expanded,
            source: std::io::Error::other(format!(
                "resolved to the relative path {}",
                real.display()
            )),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::HostPathMissing {
            spec: spec.spec().to_owned(),
            raw: spec.host().to_owned(),
            expanded,
        }),
        Err(source) => Err(Error::HostPathUnresolvable {
            spec: spec.spec().to_owned(),
            expanded,
            source,
        }),
    }
}

/// Refuses real paths an engine's mount option syntax could misread.
fn check_spelling(real: &Path) -> Result<(), HostPathProblem> {
    let text = real.to_str().ok_or(HostPathProblem::NotUtf8)?;
    match text
        .chars()
        .find(|c| matches!(c, ':' | ',') || c.is_control())
    {
        Some(c) => Err(HostPathProblem::Char(c)),
        None => Ok(()),
    }
}

fn special(kind: FileKind) -> SpecialKind {
    match kind {
        FileKind::Socket => SpecialKind::Socket,
        FileKind::CharDevice => SpecialKind::CharDevice,
        FileKind::BlockDevice => SpecialKind::BlockDevice,
        FileKind::Fifo => SpecialKind::Fifo,
        FileKind::Symlink => SpecialKind::Symlink,
        FileKind::Dir | FileKind::File | FileKind::Other => SpecialKind::Unknown,
    }
}

/// The deepest root whose real path is `real` or an ancestor of it (by components). When two
/// roots resolve to the same folder, a read-only one wins.
fn deepest_root<'a>(real: &Path, roots: &'a [ResolvedRoot]) -> Option<&'a ResolvedRoot> {
    let mut best: Option<&ResolvedRoot> = None;
    for root in roots.iter().filter(|r| real.starts_with(&r.real)) {
        best = match best {
            None => Some(root),
            Some(b) => {
                let (depth, best_depth) =
                    (root.real.components().count(), b.real.components().count());
                if depth > best_depth || (depth == best_depth && b.rw && !root.rw) {
                    Some(root)
                } else {
                    Some(b)
                }
            }
        };
    }
    best
}
