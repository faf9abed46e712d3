//! Paths that are never mounted, whatever the allowlist says, nor any folder containing them.
//!
//! Threat: host takeover through a container engine socket (a bind-mounted `docker.sock` is
//! root on the host; the reference mounted `/var/run/docker.sock` read-write under an
//! allowed root `/var/run`), the host kernel's interfaces (`/proc`, `/sys`, `/dev`), credential
//! stores in home, and openwork's own config and state (an agent that can write the allowlist
//! widens its own next sandbox).
//!
//! A mount is refused when its real path is one of these paths, lies inside one, or is an
//! ancestor of one — so `/`, `/var`, `/run`, `/var/run` and the home folder itself are refused.
//! Both the path as listed and its real form are compared (with `/var/run` → `/run` on Linux and
//! `/var` → `/private/var` on macOS), and the listed paths need not exist.
//!
//! Left open: sockets elsewhere inside a mounted folder (say, a dev server's socket in a
//! project) are not searched for: the folder's contents are not scanned. Sockets named
//! `docker.sock`, `containerd.sock` or `podman.sock` are blocked by name
//! ([`crate::DEFAULT_BLOCKED_PATTERNS`]) and any socket mounted directly is refused by type,
//! but an engine socket at an unusual name inside an allow-listed folder is not detected.

use std::path::{Path, PathBuf};

use crate::error::{Overlap, Protection};
use crate::fs::{Fs, HostEnv};

/// Known container engine sockets (`~` is the home folder). Each lies inside one of
/// [`PROTECTED_TREES`]; a test keeps it so.
pub const ENGINE_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
    "/run/user/*/docker.sock",
    "/run/user/*/podman/podman.sock",
    "~/.docker/run/docker.sock",
    "~/.docker/desktop/docker.sock",
    "~/Library/Containers/com.docker.docker/Data/docker.raw.sock",
    "~/.colima/default/docker.sock",
    "~/.rd/docker.sock",
    "~/.orbstack/run/docker.sock",
];

/// Paths never mounted, nor anything inside them, nor any folder containing them.
pub const PROTECTED_TREES: &[(&str, Protection)] = &[
    ("/proc", Protection::KernelInterface),
    ("/sys", Protection::KernelInterface),
    ("/dev", Protection::KernelInterface),
    ("/run", Protection::EngineRuntime),
    ("/var/run", Protection::EngineRuntime),
    ("/var/lib/docker", Protection::EngineRuntime),
    ("/var/lib/containerd", Protection::EngineRuntime),
    ("/var/lib/containers", Protection::EngineRuntime),
    ("~/.docker", Protection::EngineRuntime),
    (
        "~/Library/Containers/com.docker.docker",
        Protection::EngineRuntime,
    ),
    ("~/.colima", Protection::EngineRuntime),
    ("~/.rd", Protection::EngineRuntime),
    ("~/.orbstack", Protection::EngineRuntime),
    ("~/.local/share/containers", Protection::EngineRuntime),
    ("~/.ssh", Protection::CredentialStore),
    ("~/.gnupg", Protection::CredentialStore),
    ("~/.aws", Protection::CredentialStore),
    ("~/.azure", Protection::CredentialStore),
    ("~/.kube", Protection::CredentialStore),
    ("~/.config/gcloud", Protection::CredentialStore),
    ("~/.netrc", Protection::CredentialStore),
    ("~/.git-credentials", Protection::CredentialStore),
    ("~/.config/openwork", Protection::Openwork),
    ("~/.openwork", Protection::Openwork),
];

/// One protected path, in the form it is compared.
#[derive(Debug, Clone)]
pub(crate) struct ProtectedPath {
    /// The path as listed (after `~` expansion), shown in errors.
    pub(crate) shown: PathBuf,
    /// A form to compare against: the listed path or its real form.
    pub(crate) compare: PathBuf,
    /// Why it is protected.
    pub(crate) protection: Protection,
}

/// Every protected path for this host: the built-in trees, `extra` (e.g. the allowlist file
/// itself, with [`Protection::Openwork`]) and the caller's paths. Each is listed both as
/// written and in its real form.
pub(crate) fn protected_paths<F: Fs>(
    host: &HostEnv<F>,
    extra: &[(PathBuf, Protection)],
) -> Vec<ProtectedPath> {
    let builtin = PROTECTED_TREES
        .iter()
        .map(|(raw, protection)| (host.expand(raw), *protection));
    let callers = host
        .extra_protected()
        .iter()
        .map(|p| (p.clone(), Protection::Caller));
    let mut out = Vec::new();
    for (shown, protection) in builtin.chain(extra.iter().cloned()).chain(callers) {
        let literal = crate::fs::normalize_lexically(&shown);
        let real = host.canonicalize_lenient(&literal);
        out.push(ProtectedPath {
            shown: shown.clone(),
            compare: literal.clone(),
            protection,
        });
        if real != literal {
            out.push(ProtectedPath {
                shown,
                compare: real,
                protection,
            });
        }
    }
    out
}

/// The first protected path that `real` overlaps, and how.
pub(crate) fn overlap<'a>(
    real: &Path,
    protected: &'a [ProtectedPath],
) -> Option<(&'a ProtectedPath, Overlap)> {
    protected.iter().find_map(|p| {
        if real.starts_with(&p.compare) {
            Some((p, Overlap::Inside))
        } else if p.compare.starts_with(real) {
            Some((p, Overlap::Contains))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_socket_lies_in_a_protected_tree() {
        let host = HostEnv::new("/home/me", "/").unwrap();
        for socket in ENGINE_SOCKETS {
            let path = socket.replace('*', "1000");
            let path = host.expand(&path);
            let covered = PROTECTED_TREES.iter().any(|(tree, protection)| {
                *protection == Protection::EngineRuntime && path.starts_with(host.expand(tree))
            });
            assert!(covered, "{socket} is in no protected engine tree");
        }
    }

    #[test]
    fn ancestors_and_descendants_overlap() {
        let host = HostEnv::new("/home/me", "/").unwrap();
        let list = protected_paths(&host, &[]);
        let over = |p: &str| overlap(Path::new(p), &list).map(|(pp, o)| (pp.shown.clone(), o));
        assert_eq!(over("/"), Some((PathBuf::from("/proc"), Overlap::Contains)));
        assert_eq!(
            over("/run/user/1000"),
            Some((PathBuf::from("/run"), Overlap::Inside))
        );
        assert!(matches!(over("/var"), Some((_, Overlap::Contains))));
        assert!(matches!(over("/home/me"), Some((_, Overlap::Contains))));
        assert!(matches!(over("/home"), Some((_, Overlap::Contains))));
        assert!(matches!(
            over("/home/me/.config"),
            Some((_, Overlap::Contains))
        ));
        assert_eq!(
            over("/home/me/.docker/run"),
            Some((PathBuf::from("/home/me/.docker"), Overlap::Inside))
        );
        assert_eq!(over("/home/me/projects"), None);
        assert_eq!(over("/home/me/.config/nvim"), None);
        assert_eq!(over("/srv/data"), None);
    }

    #[test]
    fn caller_paths_are_protected() {
        let host = HostEnv::new("/home/me", "/work").unwrap().protect("state");
        let list = protected_paths(&host, &[]);
        let (p, o) = overlap(Path::new("/work"), &list).unwrap();
        assert_eq!(
            (p.shown.as_path(), p.protection, o),
            (
                Path::new("/work/state"),
                Protection::Caller,
                Overlap::Contains
            )
        );
    }
}
