//! The workspace-poisoning guard: what the sandboxed agent may not change in the workspace's
//! git metadata, as extra read-only mounts over the workspace bind mount.
//!
//! Threat addressed: an escape through the workspace itself. The person later runs `git status`
//! or `git commit` on the host in the same directory; git then executes what `.git/hooks/*`
//! and `.git/config` name (a hook, `core.fsmonitor`, `core.hooksPath`, a filter or diff driver,
//! `core.sshCommand`, …). So inside the sandbox:
//! - `.git/config` and `.git/hooks/` (and, when present, `config.worktree`, `modules/` and
//!   `worktrees/`, which hold configs and hooks of their own) are read-only;
//! - `.git` itself is a mount point (bound onto itself), so the agent cannot rename or delete it
//!   and put a repository of its own in its place;
//! - a `.git` *file* (a `gitdir:` pointer) is read-only;
//! - a workspace with no repository gets an empty one before the container starts (created with
//!   the host's own git, no template hooks), so a repository the agent uses is guarded too; it is
//!   removed again at the end when nothing was committed. A workspace inside another repository
//!   gets a read-only empty `.git` directory instead, so the agent cannot plant a nested
//!   repository that the host's git would then prefer.
//!
//! Symlinks: a bind mount follows a symlink on the host, so a `.git`, `.git/config` or
//! `.git/hooks` that is a symbolic link (planted by an earlier run, say) would mount an arbitrary
//! host path into the sandbox. That is refused with an error naming the link.
//!
//! Deliberately left open (and said in the README): everything else the person may later run
//! from the workspace — a `Makefile`, `package.json` scripts, `.envrc`, editor settings — and
//! `.gitattributes` in the work tree (harmless alone: a filter needs a driver in a config).

use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};

/// Paths under `.git` that can name a command, read-only in the sandbox when they exist.
const GUARDED_OPTIONAL: &[&str] = &["config.worktree", "modules", "worktrees"];

/// One read-only (or anchoring) mount of the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardMount {
    /// Host path (never a symlink).
    pub host: Utf8PathBuf,
    /// Path relative to the workspace root (`.git`, `.git/config`, …).
    pub relative: String,
    pub read_only: bool,
}

/// What the guard found and did on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitLayout {
    /// `.git` is a repository directory.
    Repository,
    /// `.git` is a file pointing elsewhere (a linked worktree or submodule).
    GitFile,
    /// There was no repository; an empty one was created with the host's git.
    Created,
    /// No repository, and the workspace lies inside another one (or git is not installed): an
    /// empty `.git` directory holds the place, read-only.
    Placeholder,
}

/// The guard of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitGuard {
    pub workspace: Utf8PathBuf,
    pub layout: GitLayout,
    /// Mounts to add, parents before children.
    pub mounts: Vec<GuardMount>,
}

/// Why the guard cannot be set up; each names the path and the way out.
#[derive(Debug, thiserror::Error)]
pub enum GitGuardError {
    #[error(
        "{path} is a symbolic link (to {target}); a sandbox mount would follow it out of the workspace. Replace it with the real file or directory, or run with --sandbox-allow-git-config"
    )]
    Symlink { path: Utf8PathBuf, target: String },
    #[error("cannot inspect {path}: {source}")]
    Inspect {
        path: Utf8PathBuf,
        source: std::io::Error,
    },
    #[error("cannot prepare the git guard at {path}: {message}")]
    Prepare { path: Utf8PathBuf, message: String },
}

fn lstat(path: &Utf8Path) -> Result<Option<std::fs::Metadata>, GitGuardError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(GitGuardError::Symlink {
            path: path.to_path_buf(),
            target: std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into()),
        }),
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(GitGuardError::Inspect {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn prepare_err(path: &Utf8Path, message: impl std::fmt::Display) -> GitGuardError {
    GitGuardError::Prepare {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Whether a directory above `workspace` holds a `.git` (the workspace is inside a repository).
fn inside_repository(workspace: &Utf8Path) -> bool {
    workspace
        .ancestors()
        .skip(1)
        .any(|a| std::fs::symlink_metadata(a.join(".git")).is_ok())
}

/// Gives `path` (and what is below it) to the workspace's owner when we run as root for
/// another user, so the person keeps owning their repository.
fn chown_like_workspace(workspace: &Utf8Path, path: &Utf8Path) -> Result<(), GitGuardError> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let meta = std::fs::metadata(workspace).map_err(|e| prepare_err(workspace, e))?;
    if meta.uid() == 0 {
        return Ok(());
    }
    let (uid, gid) = (meta.uid(), meta.gid());
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(|e| prepare_err(&p, e))?;
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            for entry in std::fs::read_dir(&p).map_err(|e| prepare_err(&p, e))? {
                let entry = entry.map_err(|e| prepare_err(&p, e))?;
                if let Ok(child) = Utf8PathBuf::from_path_buf(entry.path()) {
                    stack.push(child);
                }
            }
        }
    }
    Ok(())
}

/// Creates an empty repository in `workspace` with the host's `git` (no template hooks).
fn init_repository(git: &std::path::Path, workspace: &Utf8Path) -> Result<(), GitGuardError> {
    let empty = tempfile::tempdir().map_err(|e| prepare_err(workspace, e))?;
    let out = Command::new(git)
        .arg("init")
        .arg("--quiet")
        .arg(format!("--template={}", empty.path().display()))
        .arg(workspace.as_std_path())
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .map_err(|e| prepare_err(workspace, format!("running {}: {e}", git.display())))?;
    if !out.status.success() {
        return Err(prepare_err(
            workspace,
            format!(
                "git init failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// Inspects (and where needed prepares) the workspace's git metadata and returns the mounts
/// that guard it. `git` is the host's git executable, if it has one.
pub fn prepare(
    workspace: &Utf8Path,
    git: Option<&std::path::Path>,
) -> Result<GitGuard, GitGuardError> {
    let dot_git = workspace.join(".git");
    let layout = match lstat(&dot_git)? {
        Some(m) if m.is_dir() => GitLayout::Repository,
        Some(_) => GitLayout::GitFile,
        None => match git {
            Some(git) if !inside_repository(workspace) => {
                init_repository(git, workspace)?;
                chown_like_workspace(workspace, &dot_git)?;
                GitLayout::Created
            }
            _ => {
                std::fs::create_dir(&dot_git).map_err(|e| prepare_err(&dot_git, e))?;
                chown_like_workspace(workspace, &dot_git)?;
                GitLayout::Placeholder
            }
        },
    };
    let mut mounts = Vec::new();
    let mut add = |relative: &str, read_only: bool| {
        mounts.push(GuardMount {
            host: workspace.join(relative),
            relative: relative.to_string(),
            read_only,
        })
    };
    match layout {
        GitLayout::GitFile | GitLayout::Placeholder => add(".git", true),
        GitLayout::Repository | GitLayout::Created => {
            // `.git` bound onto itself: a mount point cannot be renamed or removed.
            add(".git", false);
            let hooks = dot_git.join("hooks");
            if lstat(&hooks)?.is_none() {
                std::fs::create_dir(&hooks).map_err(|e| prepare_err(&hooks, e))?;
                chown_like_workspace(workspace, &hooks)?;
            }
            let config = dot_git.join("config");
            if lstat(&config)?.is_none() {
                return Err(prepare_err(
                    &config,
                    "the repository has no config file; repair it with `git init` on the host",
                ));
            }
            add(".git/config", true);
            add(".git/hooks", true);
            for name in GUARDED_OPTIONAL {
                if lstat(&dot_git.join(name))?.is_some() {
                    add(&format!(".git/{name}"), true);
                }
            }
        }
    }
    Ok(GitGuard {
        workspace: workspace.to_path_buf(),
        layout,
        mounts,
    })
}

impl GitGuard {
    /// Undoes what [`prepare`] created when it is still unused: the placeholder directory, or
    /// the created repository when nothing was ever committed or staged in it.
    pub fn cleanup(&self) -> std::io::Result<()> {
        let dot_git = self.workspace.join(".git");
        match self.layout {
            GitLayout::Placeholder => match std::fs::remove_dir(&dot_git) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            GitLayout::Created => {
                let meta = std::fs::symlink_metadata(&dot_git)?;
                if !meta.is_dir() {
                    return Ok(());
                }
                let unused = !dot_git.join("index").exists()
                    && !dot_git.join("packed-refs").exists()
                    && std::fs::read_dir(dot_git.join("refs/heads"))
                        .map(|mut d| d.next().is_none())
                        .unwrap_or(false);
                if unused {
                    std::fs::remove_dir_all(&dot_git)?;
                }
                Ok(())
            }
            GitLayout::Repository | GitLayout::GitFile => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> (tempfile::TempDir, Utf8PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(t.path().join("ws")).unwrap();
        std::fs::create_dir(&p).unwrap();
        (t, p)
    }

    fn git() -> Option<std::path::PathBuf> {
        which::which("git").ok()
    }

    fn relatives(g: &GitGuard) -> Vec<(&str, bool)> {
        g.mounts
            .iter()
            .map(|m| (m.relative.as_str(), m.read_only))
            .collect()
    }

    #[test]
    fn an_existing_repository_is_anchored_and_its_config_and_hooks_are_read_only() {
        let Some(git) = git() else { return };
        let (_t, ws) = ws();
        init_repository(&git, &ws).unwrap();
        std::fs::create_dir(ws.join(".git/worktrees")).unwrap();
        let g = prepare(&ws, Some(&git)).unwrap();
        assert_eq!(g.layout, GitLayout::Repository);
        assert_eq!(
            relatives(&g),
            vec![
                (".git", false),
                (".git/config", true),
                (".git/hooks", true),
                (".git/worktrees", true)
            ]
        );
        // The person's repository is never removed.
        g.cleanup().unwrap();
        assert!(ws.join(".git/config").exists());
    }

    #[test]
    fn a_missing_repository_is_created_and_removed_again_when_unused() {
        let Some(git) = git() else { return };
        let (_t, ws) = ws();
        let g = prepare(&ws, Some(&git)).unwrap();
        assert_eq!(g.layout, GitLayout::Created);
        assert!(ws.join(".git/HEAD").exists());
        // No template hooks came with it.
        assert_eq!(std::fs::read_dir(ws.join(".git/hooks")).unwrap().count(), 0);
        g.cleanup().unwrap();
        assert!(!ws.join(".git").exists());
    }

    #[test]
    fn a_used_created_repository_is_kept() {
        let Some(git) = git() else { return };
        let (_t, ws) = ws();
        let g = prepare(&ws, Some(&git)).unwrap();
        std::fs::write(ws.join("a"), "x").unwrap();
        let st = Command::new(&git)
            .args(["-C", ws.as_str(), "add", "a"])
            .status()
            .unwrap();
        assert!(st.success());
        g.cleanup().unwrap();
        assert!(ws.join(".git/index").exists());
    }

    #[test]
    fn inside_another_repository_a_read_only_placeholder_holds_the_place() {
        let Some(git) = git() else { return };
        let (t, ws) = ws();
        init_repository(&git, Utf8Path::from_path(t.path()).unwrap()).unwrap();
        let g = prepare(&ws, Some(&git)).unwrap();
        assert_eq!(g.layout, GitLayout::Placeholder);
        assert_eq!(relatives(&g), vec![(".git", true)]);
        g.cleanup().unwrap();
        assert!(!ws.join(".git").exists());
    }

    #[test]
    fn without_git_on_the_host_a_placeholder_is_used() {
        let (_t, ws) = ws();
        let g = prepare(&ws, None).unwrap();
        assert_eq!(g.layout, GitLayout::Placeholder);
    }

    #[test]
    fn a_git_file_is_read_only() {
        let (_t, ws) = ws();
        std::fs::write(ws.join(".git"), "gitdir: /elsewhere\n").unwrap();
        let g = prepare(&ws, None).unwrap();
        assert_eq!(g.layout, GitLayout::GitFile);
        assert_eq!(relatives(&g), vec![(".git", true)]);
    }

    #[test]
    fn symlinks_are_refused_naming_the_link() {
        let Some(git) = git() else { return };
        let (_t, ws) = ws();
        std::os::unix::fs::symlink("/etc", ws.join(".git")).unwrap();
        let e = prepare(&ws, Some(&git)).unwrap_err();
        assert!(matches!(e, GitGuardError::Symlink { .. }), "{e}");
        assert!(e.to_string().contains("/etc"), "{e}");
        std::fs::remove_file(ws.join(".git")).unwrap();
        init_repository(&git, &ws).unwrap();
        std::fs::remove_dir_all(ws.join(".git/hooks")).ok();
        std::os::unix::fs::symlink("/root", ws.join(".git/hooks")).unwrap();
        let e = prepare(&ws, Some(&git)).unwrap_err();
        assert!(e.to_string().contains(".git/hooks"), "{e}");
    }
}
