//! The real opencode (`OPENWORK_TEST_OPENCODE_BIN`) on 127.0.0.1 with a throwaway HOME, Basic
//! auth on, stopped (by its pid) when the guard drops.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Opencode {
    pub url: String,
    pub user: String,
    pub pass: String,
    child: Child,
    _home: tempfile::TempDir,
}

impl Drop for Opencode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bin() -> PathBuf {
    let path = std::env::var_os("OPENWORK_TEST_OPENCODE_BIN")
        .map(PathBuf::from)
        .expect(
            "OPENWORK_TEST_OPENCODE_BIN is not set: export it to the real opencode binary \
         (e.g. ~/.cache/openwork-test/opencode-*/opencode)",
        );
    assert!(
        path.exists(),
        "OPENWORK_TEST_OPENCODE_BIN={} does not exist",
        path.display()
    );
    path
}

impl Opencode {
    pub fn start(workspace: &Path) -> Opencode {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let (user, pass) = ("opencode".to_owned(), "test-pass-123".to_owned());
        let mut child = Command::new(bin())
            .args(["serve", "--hostname", "127.0.0.1", "--port", "0"])
            .current_dir(workspace)
            .env("HOME", h)
            .env("XDG_CONFIG_HOME", h.join(".config"))
            .env("XDG_DATA_HOME", h.join(".local/share"))
            .env("XDG_CACHE_HOME", h.join(".cache"))
            .env("XDG_STATE_HOME", h.join(".local/state"))
            .env("OPENCODE_SERVER_USERNAME", &user)
            .env("OPENCODE_SERVER_PASSWORD", &pass)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut url = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(u) = line.strip_prefix("opencode server listening on ") {
                url = Some(u.trim().to_owned());
                break;
            }
        }
        let url = url.expect("opencode printed no ready line");
        Opencode {
            url,
            user,
            pass,
            child,
            _home: home,
        }
    }

    /// A request to opencode itself (Basic auth, the workspace directory header).
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        dir: &Path,
    ) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .basic_auth(&self.user, Some(&self.pass))
            .header("x-opencode-directory", dir.to_str().unwrap())
    }
}
