//! The host side of a sandbox, prepared once per run before anything is launched: the binaries
//! are checked to be Linux executables of the container's architecture, the persist dir is laid
//! out (and opencode's provider credentials copied into it), the binaries are staged so that
//! their mounts expose nothing else of the host, and the [`SandboxPlan`] is built from the spec
//! by [`crate::build`].
//!
//! Threats addressed: a mount that shows more of the host than the plan says (an explicit
//! `--opencode-bin /usr/bin/opencode` must not expose all of `/usr/bin`: the binary is staged
//! alone first), a persist dir the agent booby-trapped with links (see [`crate::persist`]), and an
//! engine that mounts directories only (Apple `container`: every source is checked to be a
//! directory before anything starts, and the `openwork` executable is staged alone in
//! `<persist dir>.openwork-bin/`, outside the agent-writable `/persist`).
//!
//! Left open: the staged copies are hard links where possible, so they share the inode of the
//! host file (mounted read-only, so the agent cannot write through them).

use camino::{Utf8Path, Utf8PathBuf};

use crate::build::{OpenworkMount, Staged, gated_plan, sandbox_plan};
use crate::elf::check_linux_executable;
use crate::git_guard::{self, GitGuard};
use crate::plan::{GitGuardMode, SandboxPlan, SandboxSpec};
use crate::{BackendError, persist};

/// What an engine can bind-mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKinds {
    /// Files and directories (Docker).
    FilesAndDirectories,
    /// Directories only (Apple `container`).
    DirectoriesOnly,
}

/// What [`prepare`] did, besides building the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPrepared {
    pub plan: SandboxPlan,
    /// Credential files copied into the persist dir.
    pub credentials_copied: Vec<String>,
    /// The git guard set up in the workspace.
    pub git_guard: Option<GitGuard>,
}

/// Checks the binaries, prepares the persist dir, stages what is mounted and builds the plan.
pub fn prepare(spec: &SandboxSpec, kinds: MountKinds) -> Result<HostPrepared, BackendError> {
    for (binary, path) in [("opencode", &spec.opencode), ("openwork", &spec.openwork)] {
        check_linux_executable(path, spec.arch)
            .map_err(|reason| BackendError::NotLinuxExecutable { binary, reason })?;
    }
    let prepared = persist::prepare(
        &spec.persist_dir,
        spec.copy_auth_from.as_deref(),
        spec.gate.is_some(),
    )?;
    give_persist_dir_to_the_agent(spec)?;
    let (opencode_dir, opencode_file) = isolate_opencode(&spec.opencode, &spec.persist_dir)?;
    let openwork = match kinds {
        MountKinds::FilesAndDirectories => OpenworkMount::File(spec.openwork.clone()),
        MountKinds::DirectoriesOnly => {
            OpenworkMount::Dir(stage_openwork(&spec.openwork, &spec.persist_dir)?)
        }
    };
    let git_guard = match &spec.git_guard {
        GitGuardMode::Off => None,
        GitGuardMode::On { host_git } => {
            let mut guard = git_guard::prepare(&spec.workspace, host_git.as_deref())?;
            if kinds == MountKinds::DirectoriesOnly {
                // File mounts are impossible here: `.git/config` stays writable (reported).
                guard.mounts.retain(|m| m.host.is_dir());
            }
            Some(guard)
        }
    };
    let tools_dir = match &git_guard {
        Some(_) => Some(stage_tools(&spec.persist_dir)?),
        None => None,
    };
    let staged = Staged {
        opencode_dir,
        opencode_file,
        openwork,
        git_guard: git_guard.clone(),
        tools_dir,
    };
    let plan = match &spec.gate {
        Some(gate) => gated_plan(spec, &staged, gate),
        None => sandbox_plan(spec, &staged),
    };
    if kinds == MountKinds::DirectoriesOnly {
        check_directories(&plan)?;
    }
    Ok(HostPrepared {
        plan,
        credentials_copied: prepared.copied,
        git_guard,
    })
}

/// A root orchestrator running the agent as another user (the workspace's owner, or
/// `--sandbox-user`) hands it the persist dir, its HOME: otherwise opencode cannot write there.
fn give_persist_dir_to_the_agent(spec: &SandboxSpec) -> Result<(), BackendError> {
    let Some((uid, gid)) = spec
        .user
        .split_once(':')
        .and_then(|(u, g)| Some((u.parse::<u32>().ok()?, g.parse::<u32>().ok()?)))
    else {
        return Ok(());
    };
    if !nix::unistd::geteuid().is_root() || uid == nix::unistd::geteuid().as_raw() {
        return Ok(());
    }
    persist::chown_tree(&spec.persist_dir, uid, gid).map_err(|e| BackendError::Prepare {
        path: spec.persist_dir.clone(),
        reason: e.into(),
    })
}

/// opencode is mounted through its directory: when that directory holds anything besides the
/// binary and its stamp, the binary is staged alone in `<persist dir>.opencode-bin/` first.
/// Returns the directory to mount and the binary's name in it.
pub fn isolate_opencode(
    bin: &Utf8Path,
    persist_dir: &Utf8Path,
) -> Result<(Utf8PathBuf, String), BackendError> {
    let name = bin.file_name().unwrap_or("opencode");
    let stamp = format!("{name}.stamp.json");
    let dir = bin.parent().unwrap_or(Utf8Path::new("/"));
    let entries = std::fs::read_dir(dir).map_err(|e| BackendError::Prepare {
        path: dir.to_path_buf(),
        reason: e.into(),
    })?;
    let alone = entries
        .flatten()
        .all(|e| e.file_name() == name || e.file_name().to_str() == Some(stamp.as_str()));
    if alone {
        return Ok((dir.to_path_buf(), name.to_string()));
    }
    let staged = persist::stage_alone(bin, persist_dir, "opencode-bin", "opencode")?;
    Ok((staged, "opencode".to_string()))
}

/// `<persist dir>.openwork-tools/` holding only `git` → the container's openwork executable
/// (outside the agent-writable persist dir; mounted read-only).
pub fn stage_tools(persist_dir: &Utf8Path) -> Result<Utf8PathBuf, BackendError> {
    let base = persist_dir.file_name().unwrap_or("persist");
    let dir = persist_dir
        .parent()
        .unwrap_or(Utf8Path::new("/"))
        .join(format!("{base}.openwork-tools"));
    let fail = |path: &Utf8Path, e: std::io::Error| BackendError::Prepare {
        path: path.to_path_buf(),
        reason: e.into(),
    };
    std::fs::create_dir_all(&dir).map_err(|e| fail(&dir, e))?;
    let link = dir.join("git");
    match std::fs::read_link(&link) {
        Ok(t) if t == std::path::Path::new(crate::plan::layout::OPENWORK_EXE) => return Ok(dir),
        Ok(_) => std::fs::remove_file(&link).map_err(|e| fail(&link, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => std::fs::remove_file(&link).map_err(|e| fail(&link, e))?,
    }
    std::os::unix::fs::symlink(crate::plan::layout::OPENWORK_EXE, &link)
        .map_err(|e| fail(&link, e))?;
    Ok(dir)
}

/// Stages `exe` as the only entry of `<persist dir>.openwork-bin/` and returns that directory.
pub fn stage_openwork(exe: &Utf8Path, persist_dir: &Utf8Path) -> Result<Utf8PathBuf, BackendError> {
    persist::stage_alone(exe, persist_dir, "openwork-bin", "openwork")
}

/// Every mount source of every container must be a directory (Apple container mounts
/// directories only).
pub fn check_directories(plan: &SandboxPlan) -> Result<(), BackendError> {
    let containers = std::iter::once(&plan.agent).chain(plan.gate.as_ref());
    for bind in containers.flat_map(|c| &c.mounts) {
        if !bind.source.is_dir() {
            return Err(BackendError::MountNotDirectory {
                path: bind.source.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures;
    use crate::plan::ExtraMount;

    fn utf8(p: &std::path::Path) -> Utf8PathBuf {
        Utf8PathBuf::from_path_buf(p.to_path_buf()).unwrap()
    }

    /// A spec whose binaries are this (Linux) test executable.
    fn spec(root: &Utf8Path) -> SandboxSpec {
        let exe = utf8(&std::env::current_exe().unwrap());
        let bin_dir = root.join("bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::copy(&exe, bin_dir.join("opencode")).unwrap();
        std::fs::create_dir_all(root.join("ws")).unwrap();
        let mut s = fixtures::spec();
        s.arch = crate::elf::Arch::host().unwrap();
        s.workspace = root.join("ws");
        s.persist_dir = root.join("persist");
        s.opencode = bin_dir.join("opencode");
        s.openwork = exe;
        s.extra_mounts.clear();
        s
    }

    #[test]
    fn docker_mounts_the_binaries_where_they_are_when_nothing_else_is_beside_them() {
        let t = tempfile::tempdir().unwrap();
        let root = utf8(t.path());
        let s = spec(&root);
        let p = prepare(&s, MountKinds::FilesAndDirectories).unwrap();
        let m = &p.plan.agent.mounts;
        assert_eq!(m[2].source, root.join("bin"));
        assert_eq!(m[3].source, s.openwork);
        assert!(root.join("persist/.tmp").is_dir());
    }

    #[test]
    fn apple_gets_directories_and_a_file_mount_is_refused_naming_the_path() {
        let t = tempfile::tempdir().unwrap();
        let root = utf8(t.path());
        let mut s = spec(&root);
        let p = prepare(&s, MountKinds::DirectoriesOnly).unwrap();
        assert_eq!(
            p.plan.agent.mounts[3].source,
            root.join("persist.openwork-bin")
        );
        std::fs::write(root.join("notes.txt"), "x").unwrap();
        s.extra_mounts.push(ExtraMount {
            host: root.join("notes.txt"),
            container: "/workspace/extra/notes".into(),
            read_only: true,
        });
        let e = prepare(&s, MountKinds::DirectoriesOnly)
            .unwrap_err()
            .to_string();
        assert!(e.contains(root.join("notes.txt").as_str()), "{e}");
        assert!(e.contains("directories only"), "{e}");
    }

    #[test]
    fn a_script_is_refused_before_anything_is_written() {
        let t = tempfile::tempdir().unwrap();
        let root = utf8(t.path());
        let mut s = spec(&root);
        std::fs::write(root.join("bin/opencode"), "#!/bin/sh\n").unwrap();
        s.persist_dir = root.join("never");
        let e = prepare(&s, MountKinds::FilesAndDirectories).unwrap_err();
        assert!(
            matches!(
                e,
                BackendError::NotLinuxExecutable {
                    binary: "opencode",
                    ..
                }
            ),
            "{e}"
        );
        assert!(!root.join("never").exists());
    }

    #[test]
    fn opencode_is_mounted_alone() {
        let t = tempfile::tempdir().unwrap();
        let root = utf8(t.path());
        let bin_dir = root.join("bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::write(bin_dir.join("opencode"), "x").unwrap();
        std::fs::write(bin_dir.join("opencode.stamp.json"), "{}").unwrap();
        let persist = root.join("persist");
        // Only the binary and its stamp: mounted where it is.
        assert_eq!(
            isolate_opencode(&bin_dir.join("opencode"), &persist).unwrap(),
            (bin_dir.clone(), "opencode".to_string())
        );
        // Anything else beside it: staged alone next to the persist dir.
        std::fs::write(bin_dir.join("secret.txt"), "s").unwrap();
        let (staged, _) = isolate_opencode(&bin_dir.join("opencode"), &persist).unwrap();
        assert_ne!(staged, bin_dir);
        let names: Vec<_> = std::fs::read_dir(&staged)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("opencode")]);
    }

    #[test]
    fn the_openwork_dir_holds_only_the_executable_and_sits_outside_persist() {
        let t = tempfile::tempdir().unwrap();
        let root = utf8(t.path());
        let exe = root.join("exe");
        let persist = root.join("persist");
        std::fs::write(&exe, "binary").unwrap();
        let dir = stage_openwork(&exe, &persist).unwrap();
        assert_eq!(dir, root.join("persist.openwork-bin"));
        assert!(!dir.starts_with(&persist));
        std::fs::write(dir.join("planted"), "x").unwrap();
        // Staged again (an earlier hard link of the same inode is there): one entry remains.
        let dir = stage_openwork(&exe, &persist).unwrap();
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["openwork"]);
        assert_eq!(std::fs::read(dir.join("openwork")).unwrap(), b"binary");
    }
}
