//! Platform targets a sidecar binary can be built for (`linux-x64`, `darwin-arm64`, ...).
//!
//! The target names the cache directory (`<sidecar-dir>/<name>/<version>/<target>/`), the key of a
//! manifest entry, and the pinned npm package of opencode. The host's target is fixed at compile
//! time from `cfg` values, so a musl build of openwork asks for the musl build of opencode; a
//! sandbox run asks for a Linux target by parsing its name.

use std::fmt;
use std::str::FromStr;

/// One platform a sidecar can run on. Parse with [`str::parse`]; [`Target::host`] is this build's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Which of the known platforms; private so every value is a valid name.
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    LinuxX64,
    LinuxArm64,
    LinuxX64Musl,
    LinuxArm64Musl,
    DarwinArm64,
    DarwinX64,
}

/// Every known target, in the order errors list them.
const ALL: [(Kind, &str); 6] = [
    (Kind::LinuxX64, "linux-x64"),
    (Kind::LinuxArm64, "linux-arm64"),
    (Kind::LinuxX64Musl, "linux-x64-musl"),
    (Kind::LinuxArm64Musl, "linux-arm64-musl"),
    (Kind::DarwinArm64, "darwin-arm64"),
    (Kind::DarwinX64, "darwin-x64"),
];

impl Target {
    pub const LINUX_X64: Target = Target {
        kind: Kind::LinuxX64,
    };
    pub const LINUX_ARM64: Target = Target {
        kind: Kind::LinuxArm64,
    };
    pub const LINUX_X64_MUSL: Target = Target {
        kind: Kind::LinuxX64Musl,
    };
    pub const LINUX_ARM64_MUSL: Target = Target {
        kind: Kind::LinuxArm64Musl,
    };
    pub const DARWIN_ARM64: Target = Target {
        kind: Kind::DarwinArm64,
    };
    pub const DARWIN_X64: Target = Target {
        kind: Kind::DarwinX64,
    };

    /// The target this executable was compiled for, or `None` on a platform openwork has no
    /// sidecars for (then only bundled and external sources can work).
    pub fn host() -> Option<Target> {
        let kind = if cfg!(all(
            target_os = "linux",
            target_arch = "x86_64",
            target_env = "musl"
        )) {
            Kind::LinuxX64Musl
        } else if cfg!(all(
            target_os = "linux",
            target_arch = "aarch64",
            target_env = "musl"
        )) {
            Kind::LinuxArm64Musl
        } else if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            Kind::LinuxX64
        } else if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
            Kind::LinuxArm64
        } else if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
            Kind::DarwinArm64
        } else if cfg!(all(target_os = "macos", target_arch = "x86_64")) {
            Kind::DarwinX64
        } else {
            return None;
        };
        Some(Target { kind })
    }

    /// The target's name as used in manifests, cache paths and npm package names.
    pub fn as_str(self) -> &'static str {
        ALL.iter()
            .find(|(k, _)| *k == self.kind)
            .map(|(_, name)| *name)
            .unwrap_or("unknown")
    }

    /// All known target names, for error messages.
    pub fn known_names() -> impl Iterator<Item = &'static str> {
        ALL.iter().map(|(_, name)| *name)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A target name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unknown sidecar target: {value}. Use one of: {}.", Target::known_names().collect::<Vec<_>>().join(", "))]
pub struct TargetParseError {
    /// The value as given.
    pub value: String,
}

impl FromStr for Target {
    type Err = TargetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        ALL.iter()
            .find(|(_, name)| *name == wanted)
            .map(|(kind, _)| Target { kind: *kind })
            .ok_or_else(|| TargetParseError {
                value: s.to_string(),
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for name in Target::known_names() {
            let t: Target = name.parse().unwrap();
            assert_eq!(t.to_string(), name);
        }
    }

    #[test]
    fn parse_trims_and_lowercases() {
        assert_eq!(" Linux-X64 ".parse::<Target>().unwrap(), Target::LINUX_X64);
        assert_eq!(
            "darwin-arm64".parse::<Target>().unwrap(),
            Target::DARWIN_ARM64
        );
    }

    #[test]
    fn unknown_target_names_the_value_and_the_choices() {
        let err = "windows-x64".parse::<Target>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("windows-x64"), "{text}");
        assert!(text.contains("linux-x64-musl"), "{text}");
        assert!(text.contains("darwin-x64"), "{text}");
    }

    #[test]
    fn host_is_detected_at_compile_time() {
        let host = Target::host();
        if cfg!(all(
            target_os = "linux",
            target_arch = "x86_64",
            target_env = "gnu"
        )) {
            assert_eq!(host, Some(Target::LINUX_X64));
        }
        if cfg!(target_env = "musl") {
            assert!(host.unwrap().as_str().ends_with("-musl"));
        }
    }
}
