//! `git` inside a sandbox whose workspace repository is guarded (see
//! `openwork_backends::git_guard`): the sandbox puts this executable first on the agent's PATH
//! under the name `git`. Every command goes to the image's real git unchanged, except one:
//! `git init` in a repository whose `.git/config` is read-only. The real git would rewrite that
//! config (it always sets `core.repositoryformatversion`) and fail; here the repository already
//! exists with the host's config, so re-initialising it is a no-op, reported as git reports it.
//!
//! Threat addressed: none by itself (the guard is the read-only mounts); this only keeps the
//! agent's ordinary `git init` from failing. It never changes what git would do to files.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What `git <args>` asks for, as far as the shim cares.
#[derive(Debug, PartialEq, Eq)]
enum Invocation {
    /// `git init` of a work tree at this directory (relative to the working directory).
    Init {
        dir: PathBuf,
        quiet: bool,
    },
    Other,
}

fn classify(args: &[OsString]) -> Invocation {
    let mut cwd = PathBuf::from(".");
    let mut i = 0;
    // Global options before the command.
    while i < args.len() {
        let a = args[i].as_bytes();
        match a {
            b"-C" => {
                if let Some(d) = args.get(i + 1) {
                    cwd = cwd.join(d);
                }
                i += 2;
            }
            b"-c" => i += 2,
            _ if a.starts_with(b"--git-dir") || a.starts_with(b"--work-tree") => {
                return Invocation::Other;
            }
            _ if a.starts_with(b"-") => i += 1,
            _ => break,
        }
    }
    if args.get(i).map(|a| a.as_bytes()) != Some(b"init") {
        return Invocation::Other;
    }
    let mut quiet = false;
    let mut dir = None;
    let mut rest = args[i + 1..].iter();
    while let Some(a) = rest.next() {
        let b = a.as_bytes();
        match b {
            b"-q" | b"--quiet" => quiet = true,
            b"--bare" => return Invocation::Other,
            _ if b.starts_with(b"--separate-git-dir") => return Invocation::Other,
            b"-b" | b"--initial-branch" | b"--template" | b"--object-format" | b"--shared" => {
                rest.next();
            }
            _ if b.starts_with(b"-") => {}
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    Invocation::Init {
        dir: match dir {
            Some(d) => cwd.join(d),
            None => cwd,
        },
        quiet,
    }
}

/// Whether `dir` holds a repository whose config is on a read-only mount (the guard's).
fn guarded_repository(dir: &Path) -> bool {
    let git = dir.join(".git");
    git.join("HEAD").is_file()
        && matches!(
            nix::unistd::access(&git.join("config"), nix::unistd::AccessFlags::W_OK),
            Err(nix::errno::Errno::EROFS)
        )
}

/// The real `git`: the first on PATH that is not this executable.
fn real_git(path: &OsStr, me: Option<&Path>) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|d| d.join("git"))
        .filter(|p| p.is_file())
        .find(|p| match (me, std::fs::canonicalize(p)) {
            (Some(me), Ok(real)) => real != me,
            _ => true,
        })
}

/// Runs `git` with `args` (argv without argv[0]).
pub fn run(args: Vec<OsString>) -> ExitCode {
    if let Invocation::Init { dir, quiet } = classify(&args)
        && guarded_repository(&dir)
    {
        let shown = std::fs::canonicalize(&dir).unwrap_or(dir);
        if !quiet {
            println!(
                "Reinitialized existing Git repository in {}/",
                shown.join(".git").display()
            );
        }
        eprintln!(
            "openwork: this repository's config and hooks are the host's and read-only in the sandbox; there is nothing to reinitialize"
        );
        return ExitCode::SUCCESS;
    }
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok());
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(git) = real_git(&path, me.as_deref()) else {
        eprintln!("git: not found on PATH");
        return ExitCode::from(127);
    };
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(&git)
        .arg0("git")
        .args(&args)
        .exec();
    eprintln!("git: cannot run {}: {err}", git.display());
    ExitCode::from(126)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_a_work_tree_init_is_recognised() {
        assert_eq!(
            classify(&args(&["init"])),
            Invocation::Init {
                dir: ".".into(),
                quiet: false
            }
        );
        assert_eq!(
            classify(&args(&["-C", "/workspace", "init", "-q", "-b", "main"])),
            Invocation::Init {
                dir: "/workspace".into(),
                quiet: true
            }
        );
        assert_eq!(
            classify(&args(&["init", "sub"])),
            Invocation::Init {
                dir: "./sub".into(),
                quiet: false
            }
        );
        for other in [
            &["status"][..],
            &["init", "--bare", "x"],
            &["--git-dir=/x", "init"],
            &["-c", "init.defaultBranch=x", "commit"],
        ] {
            assert_eq!(classify(&args(other)), Invocation::Other, "{other:?}");
        }
    }

    #[test]
    fn a_writable_repository_is_not_guarded() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join(".git")).unwrap();
        std::fs::write(t.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(t.path().join(".git/config"), "").unwrap();
        assert!(!guarded_repository(t.path()));
    }

    #[test]
    fn the_real_git_is_not_this_executable() {
        let t = tempfile::tempdir().unwrap();
        let shim = t.path().join("shim");
        let real = t.path().join("real");
        for d in [&shim, &real] {
            std::fs::create_dir(d).unwrap();
        }
        let me = std::env::current_exe().unwrap();
        std::os::unix::fs::symlink(&me, shim.join("git")).unwrap();
        std::fs::write(real.join("git"), "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([&shim, &real]).unwrap();
        let me = std::fs::canonicalize(me).unwrap();
        assert_eq!(real_git(&path, Some(&me)), Some(real.join("git")));
    }
}
