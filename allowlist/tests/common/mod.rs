//! A temporary host tree with allowed roots, secrets, symlinks in and out, a socket and a FIFO.
//! The temp dir (and the socket's listener) live as long as the `Tree`, and are removed even
//! when a test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test fixture: fail loudly

use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use openwork_allowlist::{Allowlist, HostEnv};

pub struct Tree {
    _dir: tempfile::TempDir,
    _listener: UnixListener,
    /// The canonical temp dir.
    pub t: PathBuf,
    /// `<t>/home`, the fake home folder.
    pub home: PathBuf,
}

impl Tree {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let t = std::fs::canonicalize(dir.path()).unwrap();
        let home = t.join("home");
        for d in [
            "home/projects/app/src",
            "home/projects/my.environment",
            "home/projects/certs",
            "home/projects/secret-stuff",
            "home/projects/run",
            "home/docs/reports",
            "home/.ssh",
            "outside/inner",
        ] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        for f in [
            "home/projects/app/main.rs",
            "home/projects/.env",
            "home/projects/certs/server.pem",
            "home/projects/run/docker.sock",
            "home/docs/a.txt",
            "home/.ssh/id_rsa",
            "outside/secret.txt",
        ] {
            std::fs::write(t.join(f), "x").unwrap();
        }
        let p = t.join("home/projects");
        symlink(t.join("outside"), p.join("link-out")).unwrap();
        symlink(t.join("outside/secret.txt"), p.join("file-link-out")).unwrap();
        symlink(p.join("app"), p.join("link-in")).unwrap();
        symlink("app/main.rs", p.join("file-link-in")).unwrap();
        symlink(t.join("home/docs"), p.join("link-docs")).unwrap();
        symlink(t.join("home/.ssh"), p.join("link-ssh")).unwrap();
        symlink(t.join("nowhere"), p.join("dangling")).unwrap();
        symlink("/run", p.join("link-run")).unwrap();
        symlink("..", p.join("app/up")).unwrap();
        symlink("loop", p.join("loop")).unwrap();
        let listener = UnixListener::bind(p.join("sock")).unwrap();
        nix::unistd::mkfifo(&p.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        Tree {
            _dir: dir,
            _listener: listener,
            t,
            home,
        }
    }

    /// `text` with `{T}` replaced by the temp dir.
    pub fn sub(&self, text: &str) -> String {
        text.replace("{T}", &self.t.display().to_string())
    }

    /// A host env with the fake home and `cwd` relative to the temp dir.
    pub fn host(&self, cwd: &str) -> HostEnv {
        HostEnv::new(&self.home, self.t.join(cwd)).unwrap()
    }

    /// The standard allowlist: `~/projects` rw, `~/docs` ro, a missing root, a file pattern.
    pub fn allowlist(&self) -> Allowlist {
        Allowlist::from_json(
            r#"{"allowedRoots":[
                {"path":"~/projects","allowReadWrite":true,"description":"dev"},
                {"path":"~/docs"},
                {"path":"~/nope","allowReadWrite":true}
              ],
              "blockedPatterns":["secret-*"]}"#,
            "allow.json",
        )
        .unwrap()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.t.join(rel)
    }

    pub fn is_under(path: &Path, root: &Path) -> bool {
        path.starts_with(root)
    }
}
