//! opencode from npm, with the REAL `npm` client against a registry stand-in on 127.0.0.1
//! (`npm_config_registry`): success, cache hit with the registry down, integrity mismatch,
//! npm missing from PATH, registry failure, unsafe tarball entries, tamper → refetch, and the
//! auto order ending in npm. Skipped (with a note) when `npm` is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/sidecars.rs"]
mod support;

use std::ffi::OsString;
use std::time::Duration;

use camino::Utf8PathBuf;
use openwork::sidecars::*;
use support::*;

const PKG: &str = "opencode-linux-x64";

struct Rec(Recorder);

impl Progress for Rec {
    fn fetch_started(&self, s: &FetchStart) {
        self.0.lines.lock().unwrap().push(sidecars_progress_line(s));
    }
    fn fetch_finished(&self, d: &FetchDone) {
        self.0
            .lines
            .lock()
            .unwrap()
            .push(format!("done {} {}", d.name, d.bytes));
    }
}

fn sidecars_progress_line(s: &FetchStart) -> String {
    format!("start {} {} {} {}", s.name, s.source, s.from, s.target)
}

fn have_npm() -> bool {
    let found = std::process::Command::new("npm")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        eprintln!("npm not installed: skipping");
    }
    found
}

fn tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
    (t, p)
}

/// A registry stand-in serving `PKG@1.18.34` as `tarball`, advertising `published` as its
/// integrity (npm itself checks that one).
fn publish(server: &Server, tarball: &[u8]) {
    let tgz_path = format!("/{PKG}/-/{PKG}-1.18.34.tgz");
    let packument = serde_json::json!({
        "name": PKG,
        "dist-tags": {"latest": "1.18.34"},
        "versions": {"1.18.34": {
            "name": PKG, "version": "1.18.34",
            "dist": {"tarball": server.url(&tgz_path), "integrity": sha512_integrity(tarball)}
        }}
    });
    server.serve(&format!("/{PKG}"), 200, packument.to_string());
    server.serve(&tgz_path, 200, tarball.to_vec());
}

/// Settings pinning `pin_integrity` and pointing npm at `registry`.
fn settings(dir: &Utf8PathBuf, registry: &str, pin_integrity: &str) -> ResolveSettings {
    let mut s = ResolveSettings::new(
        dir.join("sidecars"),
        "http://127.0.0.1:9/rel",
        Target::LINUX_X64,
    );
    s.current_exe = Some(dir.join("bin/openwork"));
    s.manifest_timeout = Duration::from_secs(5);
    s.npm_timeout = Duration::from_secs(120);
    s.npm_pins = PinTable::from_pins([NpmPin {
        target: Target::LINUX_X64,
        package: PKG.to_string(),
        version: OPENCODE_VERSION.to_string(),
        integrity: pin_integrity.to_string(),
    }]);
    s.npm_env = vec![
        (
            OsString::from("npm_config_registry"),
            OsString::from(registry),
        ),
        (
            OsString::from("npm_config_cache"),
            OsString::from(dir.join("npm-cache").as_str()),
        ),
        (
            OsString::from("npm_config_update_notifier"),
            OsString::from("false"),
        ),
        (OsString::from("npm_config_fund"), OsString::from("false")),
        (OsString::from("npm_config_audit"), OsString::from("false")),
    ];
    s
}

fn npm_req() -> SidecarRequest {
    SidecarRequest::new(SidecarName::Opencode, SourcePolicy::Npm)
}

#[tokio::test]
async fn npm_success_then_cache_hit_with_the_registry_down() {
    if !have_npm() {
        return;
    }
    let (_t, dir) = tempdir();
    let server = Server::start().await;
    let tarball = npm_package(PKG);
    publish(&server, &tarball);
    let rec = Recorder::default();
    let s = settings(&dir, &server.url("/"), &sha512_integrity(&tarball));
    let r = Resolver::new(s.clone(), Box::new(Rec(rec.clone())));
    let got = r.resolve(&npm_req()).await;
    let got = got.unwrap_or_else(|e| panic!("{e}\nregistry requests:\n{}", server.log()));
    assert_eq!(got.source, Source::Npm);
    assert_eq!(got.version.as_deref(), Some("1.18.34"));
    assert!(
        got.path.ends_with("opencode/1.18.34/linux-x64/opencode"),
        "{}",
        got.path
    );
    let out = std::process::Command::new(&got.path).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.18.34");
    assert_eq!(
        files_under(dir.join("sidecars").as_std_path()),
        vec![
            "opencode/1.18.34/linux-x64/opencode",
            "opencode/1.18.34/linux-x64/opencode.stamp.json"
        ]
    );
    let lines = rec.lines();
    assert_eq!(
        lines,
        vec![
            format!("start opencode npm {PKG}@1.18.34 linux-x64"),
            format!("done opencode {}", tarball.len())
        ]
    );

    server.stop().await;
    let got = Resolver::new(s, Box::new(NullProgress))
        .resolve(&npm_req())
        .await
        .unwrap();
    assert_eq!(got.source, Source::Cache);
}

#[tokio::test]
async fn integrity_mismatch_is_refused_and_caches_nothing() {
    if !have_npm() {
        return;
    }
    let (_t, dir) = tempdir();
    let server = Server::start().await;
    let tarball = npm_package(PKG);
    publish(&server, &tarball);
    let pinned = sha512_integrity(b"the tarball we pinned");
    let r = Resolver::new(
        settings(&dir, &server.url("/"), &pinned),
        Box::new(NullProgress),
    );
    let text = r.resolve(&npm_req()).await.unwrap_err().to_string();
    assert!(
        text.contains(&format!("integrity mismatch for npm package {PKG}@1.18.34")),
        "{text}\n{}",
        server.log()
    );
    assert!(text.contains(&format!("expected {pinned}")), "{text}");
    assert!(
        text.contains(&format!("got {}", sha512_integrity(&tarball))),
        "{text}"
    );
    assert!(text.contains("nothing was cached"), "{text}");
    assert_eq!(
        files_under(dir.join("sidecars").as_std_path()),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn npm_missing_from_path_is_a_clear_error() {
    let (_t, dir) = tempdir();
    let mut s = settings(&dir, "http://127.0.0.1:9/", "sha512-AAAA");
    s.path_env = Some(OsString::from(dir.join("empty").as_str()));
    let r = Resolver::new(s, Box::new(NullProgress));
    let text = r.resolve(&npm_req()).await.unwrap_err().to_string();
    assert!(text.contains("npm: npm was not found on PATH"), "{text}");
    assert!(text.contains("Install Node.js and npm"), "{text}");
    assert!(
        text.contains("--opencode-bin PATH --allow-external"),
        "{text}"
    );
    assert!(text.contains("--sidecar-manifest URL"), "{text}");
}

#[tokio::test]
async fn registry_failure_carries_npms_message_and_the_package() {
    if !have_npm() {
        return;
    }
    let (_t, dir) = tempdir();
    let server = Server::start().await; // serves nothing: every request is a 404
    let r = Resolver::new(
        settings(&dir, &server.url("/"), "sha512-AAAA"),
        Box::new(NullProgress),
    );
    let text = r.resolve(&npm_req()).await.unwrap_err().to_string();
    assert!(
        text.contains(&format!("npm pack {PKG}@1.18.34 failed")),
        "{text}"
    );
    assert!(text.contains("404"), "{text}");
    assert!(text.contains("npm config get registry"), "{text}");
    assert_eq!(
        files_under(dir.join("sidecars").as_std_path()),
        Vec::<String>::new()
    );
}

async fn refused(entries: &[Entry<'_>], bad_entry: &str) {
    let (_t, dir) = tempdir();
    let server = Server::start().await;
    let tarball = tar_gz(entries);
    publish(&server, &tarball);
    let r = Resolver::new(
        settings(&dir, &server.url("/"), &sha512_integrity(&tarball)),
        Box::new(NullProgress),
    );
    let text = r.resolve(&npm_req()).await.unwrap_err().to_string();
    assert!(text.contains("refused archive"), "{text}\n{}", server.log());
    assert!(text.contains(&format!("entry `{bad_entry}`")), "{text}");
    assert_eq!(
        files_under(dir.join("sidecars").as_std_path()),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn symlink_entry_is_refused() {
    if !have_npm() {
        return;
    }
    let link = Entry {
        path: "package/bin/opencode",
        kind: tar::EntryType::Symlink,
        data: b"",
        link: Some("/etc/passwd"),
    };
    refused(
        &[Entry::file("package/package.json", b"{}"), link],
        "package/bin/opencode",
    )
    .await;
}

#[tokio::test]
async fn parent_dir_entry_is_refused() {
    if !have_npm() {
        return;
    }
    refused(
        &[
            Entry::file("package/../../escape", b"x"),
            Entry::file("package/bin/opencode", SCRIPT),
        ],
        "package/../../escape",
    )
    .await;
}

#[tokio::test]
async fn tampered_cache_is_refetched() {
    if !have_npm() {
        return;
    }
    let (_t, dir) = tempdir();
    let server = Server::start().await;
    let tarball = npm_package(PKG);
    publish(&server, &tarball);
    let s = settings(&dir, &server.url("/"), &sha512_integrity(&tarball));
    let got = Resolver::new(s.clone(), Box::new(NullProgress))
        .resolve(&npm_req())
        .await
        .unwrap();
    std::fs::write(&got.path, b"#!/bin/sh\necho evil\n").unwrap();
    let again = Resolver::new(s, Box::new(NullProgress))
        .resolve(&npm_req())
        .await
        .unwrap();
    assert_eq!(again.source, Source::Npm);
    assert!(
        again.attempts[0].to_string().contains("was modified"),
        "{}",
        again.attempts[0]
    );
    assert_eq!(std::fs::read(&again.path).unwrap(), SCRIPT);
}

#[tokio::test]
async fn auto_falls_through_to_npm_when_the_manifest_is_unreachable() {
    if !have_npm() {
        return;
    }
    let (_t, dir) = tempdir();
    let server = Server::start().await;
    let tarball = npm_package(PKG);
    publish(&server, &tarball);
    let r = Resolver::new(
        settings(&dir, &server.url("/"), &sha512_integrity(&tarball)),
        Box::new(NullProgress),
    );
    let got = r
        .resolve(&SidecarRequest::new(
            SidecarName::Opencode,
            SourcePolicy::Auto,
        ))
        .await
        .unwrap();
    assert_eq!(got.source, Source::Npm);
    let steps: Vec<String> = got.attempts.iter().map(|a| a.step.to_string()).collect();
    assert_eq!(steps, ["bundled", "cache", "manifest", "npm"]);
    assert!(
        got.attempts[2]
            .to_string()
            .contains("could not fetch the sidecar manifest"),
        "{}",
        got.attempts[2]
    );
}
