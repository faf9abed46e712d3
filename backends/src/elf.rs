//! Checks that a file is a Linux executable of a given architecture, by its ELF header, before it
//! is mounted into a Linux container (a macOS binary or a shell script would fail there with a
//! confusing error, or not at all until the agent starts).

use std::io::Read;

use camino::Utf8Path;

/// CPU architectures a sandbox may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this binary was built for (containers run the host's architecture).
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    fn machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Aarch64 => 183,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// Why a file is not a usable Linux executable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("{path}: cannot read it ({reason})")]
    Unreadable { path: String, reason: String },
    #[error(
        "{path} is not an ELF executable (a script or a macOS/Windows binary?); the sandbox needs a Linux {arch} binary"
    )]
    NotElf { path: String, arch: &'static str },
    #[error(
        "{path} is a 32-bit or big-endian ELF file; the sandbox needs a 64-bit little-endian Linux {arch} binary"
    )]
    WrongClass { path: String, arch: &'static str },
    #[error("{path} is built for ELF machine {machine}, not {arch}; pass a Linux {arch} binary")]
    WrongArch {
        path: String,
        machine: u16,
        arch: &'static str,
    },
    #[error("{path} is not an executable (ELF type {kind}); pass a Linux {arch} executable")]
    NotExecutable {
        path: String,
        kind: u16,
        arch: &'static str,
    },
}

/// Reads the ELF header of `path` and checks it is a 64-bit little-endian executable for `arch`.
pub fn check_linux_executable(path: &Utf8Path, arch: Arch) -> Result<(), ElfError> {
    let mut header = [0u8; 20];
    let p = path.to_string();
    let mut f = std::fs::File::open(path).map_err(|e| ElfError::Unreadable {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    f.read_exact(&mut header).map_err(|_| ElfError::NotElf {
        path: p.clone(),
        arch: arch.as_str(),
    })?;
    if &header[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf {
            path: p,
            arch: arch.as_str(),
        });
    }
    if header[4] != 2 || header[5] != 1 {
        return Err(ElfError::WrongClass {
            path: p,
            arch: arch.as_str(),
        });
    }
    let kind = u16::from_le_bytes([header[16], header[17]]);
    // ET_EXEC (2) or ET_DYN (3: PIE executables).
    if kind != 2 && kind != 3 {
        return Err(ElfError::NotExecutable {
            path: p,
            kind,
            arch: arch.as_str(),
        });
    }
    let machine = u16::from_le_bytes([header[18], header[19]]);
    if machine != arch.machine() {
        return Err(ElfError::WrongArch {
            path: p,
            machine,
            arch: arch.as_str(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_passes_and_a_script_fails() {
        let exe = std::env::current_exe().unwrap();
        let exe = Utf8Path::from_path(&exe).unwrap();
        let arch = Arch::host().unwrap();
        check_linux_executable(exe, arch).unwrap();
        let other = if arch == Arch::X86_64 {
            Arch::Aarch64
        } else {
            Arch::X86_64
        };
        assert!(matches!(
            check_linux_executable(exe, other),
            Err(ElfError::WrongArch { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        let err = check_linux_executable(Utf8Path::from_path(&script).unwrap(), arch).unwrap_err();
        assert!(err.to_string().contains("not an ELF executable"), "{err}");
    }
}
