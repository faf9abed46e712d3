//! The pinned opencode version and the npm package that carries it for each target.
//!
//! Threat: a registry, mirror or proxy serving a different tarball than the one published.
//! Each pin carries the tarball's SHA-512 integrity string exactly as the npm registry publishes
//! it (`dist.integrity`); the tarball `npm pack` fetched is checked against it by openwork itself,
//! so the user's npm configuration chooses where bytes come from but never what they are.
//!
//! Only targets whose package exists at [`OPENCODE_VERSION`] are listed. Checked with
//! `npm view <pkg>@1.18.34 dist.integrity`: `opencode-linux-x64` exists; `opencode-linux-arm64`,
//! `opencode-linux-x64-musl`, `opencode-linux-arm64-musl`, `opencode-darwin-arm64` and
//! `opencode-darwin-x64` answered "404 No match found for version 1.18.34", so those targets
//! have no npm source and need the manifest, a bundled binary or `--opencode-bin`.

use super::target::Target;

/// The one opencode version this build of openwork runs and fetches.
pub const OPENCODE_VERSION: &str = "1.18.34";

/// The published pins: (target, package, `dist.integrity` of `<package>@OPENCODE_VERSION`).
const NPM_PINS: &[(Target, &str, &str)] = &[(
    Target::LINUX_X64,
    "opencode-linux-x64",
    "sha512-RTAMjCve4euxP2QKLuvRmdoW5J5DQK1DiZqt+7slfixyjAEi79QC2Df2oYKogibaAI4IEU8uzenoJeEl3k+UEw==",
)];

/// One npm package version that carries opencode for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpmPin {
    /// The target this package runs on.
    pub target: Target,
    /// Package name, e.g. `opencode-linux-x64`.
    pub package: String,
    /// Package version, normally [`OPENCODE_VERSION`].
    pub version: String,
    /// `sha512-<base64>` of the tarball, as in the registry's `dist.integrity`.
    pub integrity: String,
}

impl NpmPin {
    /// `<package>@<version>`, the spec handed to `npm pack`.
    pub fn spec(&self) -> String {
        format!("{}@{}", self.package, self.version)
    }
}

/// The pins the resolver uses. [`PinTable::pinned`] is the built-in table; tests build their own
/// so a local registry stand-in can serve a tarball they made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinTable {
    /// At most one pin per target.
    pins: Vec<NpmPin>,
}

impl PinTable {
    /// The table compiled into this build.
    pub fn pinned() -> Self {
        let pins = NPM_PINS
            .iter()
            .map(|(target, package, integrity)| NpmPin {
                target: *target,
                package: (*package).to_string(),
                version: OPENCODE_VERSION.to_string(),
                integrity: (*integrity).to_string(),
            })
            .collect();
        PinTable { pins }
    }

    /// A table of the given pins (a later pin for the same target replaces an earlier one).
    pub fn from_pins(pins: impl IntoIterator<Item = NpmPin>) -> Self {
        let mut table = PinTable { pins: Vec::new() };
        for pin in pins {
            table.pins.retain(|p| p.target != pin.target);
            table.pins.push(pin);
        }
        table
    }

    /// The pin for `target`, if a package is published for it.
    pub fn for_target(&self, target: Target) -> Option<&NpmPin> {
        self.pins.iter().find(|p| p.target == target)
    }
}

impl Default for PinTable {
    fn default() -> Self {
        Self::pinned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn linux_x64_is_pinned_to_the_published_integrity() {
        let table = PinTable::pinned();
        let pin = table.for_target(Target::LINUX_X64).unwrap();
        assert_eq!(pin.spec(), "opencode-linux-x64@1.18.34");
        assert!(pin.integrity.starts_with("sha512-RTAMjCve"));
    }

    #[test]
    fn unpublished_targets_have_no_pin() {
        let table = PinTable::pinned();
        assert!(table.for_target(Target::DARWIN_ARM64).is_none());
        assert!(table.for_target(Target::LINUX_X64_MUSL).is_none());
    }

    #[test]
    fn every_pin_is_a_sha512_integrity_of_64_bytes() {
        use base64::Engine as _;
        for (_, _, integrity) in NPM_PINS {
            let b64 = integrity.strip_prefix("sha512-").unwrap();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            assert_eq!(raw.len(), 64);
        }
    }
}
