//! Blocked patterns: names of secrets that are never mounted, matched per path component.
//!
//! Threat: a mount that exposes credentials to an untrusted agent (`~/.ssh`, `.env`,
//! `id_rsa`, a cloud CLI's credentials file) because the user allow-listed a wide root. Every
//! component of the *real* path is matched against the built-in list (which a file cannot
//! shrink) and the allowlist file's own patterns.
//!
//! A pattern matches one whole component, ASCII case-insensitively (macOS volumes are
//! case-insensitive, so `.SSH` is `.ssh` there); `*` matches any run of characters and `?` one
//! character. `.env` blocks a component named `.env`, not `my.environment` (the reference's
//! substring match did). Names the reference caught through substrings are kept with explicit
//! globs (`.env.*`, `id_rsa*`, `credentials.*`).
//!
//! Left open: only the mount's own path is checked, not the folder's contents. A folder mounted
//! from an allowed root may hold a nested `.env` or key file; scanning trees of any size would
//! be slow and still racy. Allow-list narrow roots.

use std::path::Path;

use crate::error::SchemaProblem;

/// The built-in blocked patterns; the allowlist file can add to them, never remove them.
pub const DEFAULT_BLOCKED_PATTERNS: &[&str] = &[
    // The reference's list, as whole components.
    ".ssh",
    ".gnupg",
    ".gpg",
    ".aws",
    ".azure",
    ".gcloud",
    ".kube",
    ".docker",
    "credentials",
    ".env",
    ".netrc",
    ".npmrc",
    ".pypirc",
    "id_rsa",
    "id_ed25519",
    "private_key",
    ".secret",
    // What the reference's substring match also caught, as globs.
    "credentials.*",
    ".env.*",
    "id_rsa*",
    "id_ed25519*",
    "private_key*",
    ".secret*",
    // Other private keys and credential files.
    "id_ecdsa*",
    "id_dsa*",
    "*.pem",
    "*.key",
    ".git-credentials",
    ".pgpass",
    // Container engine sockets, wherever they live.
    "docker.sock",
    "containerd.sock",
    "podman.sock",
];

/// One blocked pattern and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// The pattern as written.
    pub(crate) text: String,
    /// Built-in (else from the allowlist file).
    pub(crate) builtin: bool,
}

/// The pattern that matches the leftmost matching component of `path` (the first such pattern
/// in list order).
pub(crate) fn first_blocked<'a>(path: &Path, patterns: &'a [Pattern]) -> Option<&'a Pattern> {
    for component in path.components() {
        let std::path::Component::Normal(name) = component else {
            continue;
        };
        let bytes = name.as_encoded_bytes();
        if let Some(pattern) = patterns.iter().find(|p| component_matches(&p.text, bytes)) {
            return Some(pattern);
        }
    }
    None
}

/// The first component of `path` that `pattern` matches (for messages), or `""`.
pub(crate) fn matching_component(path: &Path, pattern: &str) -> String {
    path.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(name) => Some(name),
            _ => None,
        })
        .find(|name| component_matches(pattern, name.as_encoded_bytes()))
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The built-in patterns followed by the file's.
pub(crate) fn effective(file_patterns: &[String]) -> Vec<Pattern> {
    let builtin = DEFAULT_BLOCKED_PATTERNS.iter().map(|p| Pattern {
        text: (*p).to_owned(),
        builtin: true,
    });
    let file = file_patterns.iter().map(|p| Pattern {
        text: p.clone(),
        builtin: false,
    });
    builtin.chain(file).collect()
}

/// Checks a pattern from the allowlist file.
pub(crate) fn check_pattern(pattern: &str) -> Result<(), SchemaProblem> {
    if pattern.is_empty() {
        return Err(SchemaProblem::EmptyPattern);
    }
    if pattern.contains('\0') {
        return Err(SchemaProblem::Nul);
    }
    if pattern.contains('/') {
        return Err(SchemaProblem::PatternHasSlash {
            pattern: pattern.to_owned(),
        });
    }
    if pattern == "." || pattern == ".." {
        return Err(SchemaProblem::PatternDots {
            pattern: pattern.to_owned(),
        });
    }
    Ok(())
}

/// Whether `pattern` matches the whole component `name`: `*` is any run of bytes, `?` one byte,
/// everything else itself, ASCII case-insensitively.
pub fn component_matches(pattern: &str, name: &[u8]) -> bool {
    let pattern = pattern.as_bytes();
    let (mut p, mut n) = (0usize, 0usize);
    // Where the last `*` was, and the name position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&name[n]) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn m(pattern: &str, name: &str) -> bool {
        component_matches(pattern, name.as_bytes())
    }

    #[test]
    fn whole_component_match_not_substring() {
        assert!(m(".env", ".env"));
        assert!(!m(".env", "my.environment"));
        assert!(!m(".env", ".envrc"));
        assert!(m(".env.*", ".env.local"));
        assert!(!m("credentials.*", "credentials-service"));
        assert!(m("credentials", "Credentials"));
        assert!(m(".SSH", ".ssh"));
    }

    #[test]
    fn globs() {
        assert!(m("*.pem", "server.pem"));
        assert!(m("*.pem", ".pem"));
        assert!(!m("*.pem", "server.pem.txt"));
        assert!(m("id_rsa*", "id_rsa.pub"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*a*b*", "xxaYYbzz"));
        assert!(!m("*a*b*", "xxbYYazz"));
        assert!(m("*", ""));
        assert!(!m("a", ""));
        assert!(m("**x", "x"));
    }

    #[test]
    fn first_blocked_reports_pattern_and_component() {
        let patterns = effective(&["secret-stuff".to_owned()]);
        let path = PathBuf::from("/home/me/projects/secret-stuff/x");
        let p = first_blocked(&path, &patterns).unwrap();
        assert_eq!((p.text.as_str(), p.builtin), ("secret-stuff", false));
        assert_eq!(matching_component(&path, &p.text), "secret-stuff");
        let path = PathBuf::from("/home/me/.ssh/config");
        let p = first_blocked(&path, &patterns).unwrap();
        assert_eq!((p.text.as_str(), p.builtin), (".ssh", true));
        assert!(first_blocked(Path::new("/home/me/my.environment"), &patterns).is_none());
    }

    #[test]
    fn file_patterns_are_checked() {
        assert_eq!(check_pattern(""), Err(SchemaProblem::EmptyPattern));
        assert!(matches!(
            check_pattern("a/b"),
            Err(SchemaProblem::PatternHasSlash { .. })
        ));
        assert!(matches!(
            check_pattern(".."),
            Err(SchemaProblem::PatternDots { .. })
        ));
        assert_eq!(check_pattern("a\0"), Err(SchemaProblem::Nul));
        assert_eq!(check_pattern("*.pem"), Ok(()));
    }

    #[test]
    fn builtin_patterns_are_valid() {
        for p in DEFAULT_BLOCKED_PATTERNS {
            assert_eq!(check_pattern(p), Ok(()), "{p}");
        }
    }
}
