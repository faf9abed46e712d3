//! Manifest downloads against a real HTTP server on 127.0.0.1: success, cache hit with the
//! server stopped, checksum mismatch, unreachable server, tar.gz archive asset, and cheap
//! re-verification of cached files (metadata change → re-hash; tampering → refetch).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/sidecars.rs"]
mod support;

use std::time::Duration;

use camino::Utf8PathBuf;
use openwork::sidecars::*;
use support::*;

struct Rec(Recorder);

impl Progress for Rec {
    fn fetch_started(&self, s: &FetchStart) {
        self.0
            .lines
            .lock()
            .unwrap()
            .push(format!("start {} {} {}", s.name, s.version, s.from));
    }
    fn fetch_finished(&self, d: &FetchDone) {
        self.0
            .lines
            .lock()
            .unwrap()
            .push(format!("done {} {}", d.name, d.bytes));
    }
    fn attempt(&self, name: SidecarName, a: &Attempt) {
        self.0
            .lines
            .lock()
            .unwrap()
            .push(format!("attempt {name} {a}"));
    }
}

const SERVER_BYTES: &[u8] = b"#!/bin/sh\necho openwork-server 0.11.99\n";

fn settings(dir: &Utf8PathBuf, base: &str) -> ResolveSettings {
    let mut s = ResolveSettings::new(dir.join("sidecars"), base, Target::LINUX_X64);
    s.current_exe = Some(dir.join("bin/openwork"));
    s.path_env = Some(dir.join("no-path").into_string().into());
    s.manifest_timeout = Duration::from_secs(10);
    s
}

fn tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
    (t, p)
}

/// Serves a manifest with an openwork-server binary asset and an opencode tar.gz asset.
fn publish(server: &Server, server_sha: &str) {
    let archive = tar_gz(&[
        Entry::file("opencode-linux-x64/README", b"readme"),
        Entry::file("opencode-linux-x64/bin/opencode", SCRIPT),
    ]);
    let manifest = serde_json::json!({
        "version": "0.1.0",
        "entries": {
            "openwork-server": {"version": "0.11.99", "targets": {
                "linux-x64": {"asset": "openwork-server-linux-x64", "sha256": server_sha, "size": SERVER_BYTES.len()}}},
            "opencode": {"version": "1.18.34", "targets": {
                "linux-x64": {"asset": "opencode-linux-x64.tar.gz", "sha256": sha256_hex(&archive)}}}
        }
    });
    server.serve(
        "/rel/openwork-orchestrator-sidecars.json",
        200,
        manifest.to_string(),
    );
    server.serve("/rel/openwork-server-linux-x64", 200, SERVER_BYTES);
    server.serve("/rel/opencode-linux-x64.tar.gz", 200, archive);
}

fn downloaded(name: SidecarName) -> SidecarRequest {
    SidecarRequest::new(name, SourcePolicy::Downloaded)
}

#[tokio::test]
async fn download_then_cache_hit_with_the_server_stopped() {
    let (_t, dir) = tempdir();
    let server = Server::start().await;
    publish(&server, &sha256_hex(SERVER_BYTES));
    let rec = Recorder::default();
    let r = Resolver::new(
        settings(&dir, &server.url("/rel/")),
        Box::new(Rec(rec.clone())),
    );

    let got = r.resolve(&downloaded(SidecarName::OpenworkServer)).await;
    let got = got.unwrap_or_else(|e| panic!("{e}\nrequests:\n{}", server.log()));
    assert_eq!(got.source, Source::Downloaded);
    assert_eq!(got.version.as_deref(), Some("0.11.99"));
    assert!(
        got.path
            .ends_with("openwork-server/0.11.99/linux-x64/openwork-server"),
        "{}",
        got.path
    );
    assert_eq!(std::fs::read(&got.path).unwrap(), SERVER_BYTES);
    let stamp = format!("{}.stamp.json", got.path);
    assert!(std::path::Path::new(&stamp).is_file());
    assert_eq!(
        files_under(dir.join("sidecars").as_std_path()),
        vec![
            "openwork-server/0.11.99/linux-x64/openwork-server",
            "openwork-server/0.11.99/linux-x64/openwork-server.stamp.json"
        ]
    );
    let lines = rec.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("start openwork-server 0.11.99 http://")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("done openwork-server {}", SERVER_BYTES.len())),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("attempt openwork-server cache: nothing cached")),
        "{lines:?}"
    );
    // Second resolution in the same run: the manifest is not fetched again.
    let before = server.requests();
    let again = r
        .resolve(&downloaded(SidecarName::OpenworkServer))
        .await
        .unwrap();
    assert_eq!(again.source, Source::Cache);
    assert_eq!(server.requests(), before, "{}", server.log());

    server.stop().await;
    let r = Resolver::new(
        settings(&dir, "http://127.0.0.1:9/rel"),
        Box::new(NullProgress),
    );
    let got = r
        .resolve(&downloaded(SidecarName::OpenworkServer))
        .await
        .unwrap();
    assert_eq!(got.source, Source::Cache);
    assert_eq!(got.version.as_deref(), Some("0.11.99"));
}

#[tokio::test]
async fn checksum_mismatch_names_both_digests_and_caches_nothing() {
    let (_t, dir) = tempdir();
    let server = Server::start().await;
    let wrong = sha256_hex(b"something else");
    publish(&server, &wrong);
    let r = Resolver::new(settings(&dir, &server.url("/rel")), Box::new(NullProgress));
    let err = r
        .resolve(&downloaded(SidecarName::OpenworkServer))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("checksum mismatch for http://"), "{text}");
    assert!(text.contains(&format!("expected sha256 {wrong}")), "{text}");
    assert!(
        text.contains(&format!("got {}", sha256_hex(SERVER_BYTES))),
        "{text}"
    );
    assert!(text.contains("nothing was cached"), "{text}");
    assert_eq!(
        files_under(dir.join("sidecars").as_std_path()),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn size_mismatch_is_refused() {
    let (_t, dir) = tempdir();
    let server = Server::start().await;
    let manifest = serde_json::json!({"entries": {"openwork-server": {"version": "1", "targets": {
        "linux-x64": {"asset": "s", "sha256": sha256_hex(SERVER_BYTES), "size": 3}}}}});
    server.serve(
        "/openwork-orchestrator-sidecars.json",
        200,
        manifest.to_string(),
    );
    server.serve("/s", 200, SERVER_BYTES);
    let r = Resolver::new(settings(&dir, &server.url("")), Box::new(NullProgress));
    let text = r
        .resolve(&downloaded(SidecarName::OpenworkServer))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("size mismatch") && text.contains("says 3 bytes"),
        "{text}"
    );
    assert_eq!(
        files_under(dir.join("sidecars").as_std_path()),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn unreachable_manifest_is_a_clear_error() {
    let (_t, dir) = tempdir();
    let port = closed_port().await;
    let base = format!("http://127.0.0.1:{port}/rel");
    let r = Resolver::new(settings(&dir, &base), Box::new(NullProgress));
    let text = r
        .resolve(&downloaded(SidecarName::OpenworkServer))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("Could not resolve openwork-server (--sidecar-source downloaded): tried cache, manifest."),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "could not fetch the sidecar manifest {base}/openwork-orchestrator-sidecars.json"
        )),
        "{text}"
    );
    assert!(
        text.contains("--openwork-server-bin PATH --allow-external"),
        "{text}"
    );
}

#[tokio::test]
async fn http_error_is_named() {
    let (_t, dir) = tempdir();
    let server = Server::start().await;
    let r = Resolver::new(settings(&dir, &server.url("/gone")), Box::new(NullProgress));
    let text = r
        .resolve(&downloaded(SidecarName::OpenworkServer))
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("answered HTTP 404"), "{text}");
}

#[tokio::test]
async fn opencode_from_a_tar_gz_asset() {
    let (_t, dir) = tempdir();
    let server = Server::start().await;
    publish(&server, &sha256_hex(SERVER_BYTES));
    let r = Resolver::new(settings(&dir, &server.url("/rel")), Box::new(NullProgress));
    let got = r.resolve(&downloaded(SidecarName::Opencode)).await;
    let got = got.unwrap_or_else(|e| panic!("{e}\nrequests:\n{}", server.log()));
    assert_eq!(got.source, Source::Downloaded);
    assert!(
        got.path.ends_with("opencode/1.18.34/linux-x64/opencode"),
        "{}",
        got.path
    );
    let out = std::process::Command::new(&got.path).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.18.34");
    // Only the binary and its stamp remain; the archive temp file is gone.
    assert_eq!(
        files_under(dir.join("sidecars").as_std_path()),
        vec![
            "opencode/1.18.34/linux-x64/opencode",
            "opencode/1.18.34/linux-x64/opencode.stamp.json"
        ]
    );
}

#[tokio::test]
async fn changed_metadata_rehashes_and_tampering_refetches() {
    let (_t, dir) = tempdir();
    let server = Server::start().await;
    publish(&server, &sha256_hex(SERVER_BYTES));
    let s = settings(&dir, &server.url("/rel"));
    let got = Resolver::new(s.clone(), Box::new(NullProgress))
        .resolve(&downloaded(SidecarName::OpenworkServer))
        .await
        .unwrap();
    let stamp_path = format!("{}.stamp.json", got.path);
    let stamp = |p: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let first = stamp(&stamp_path);

    // Same bytes, new mtime: re-hashed, accepted, stamp refreshed.
    let f = std::fs::File::options()
        .write(true)
        .open(&got.path)
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1000))
        .unwrap();
    drop(f);
    let again = Resolver::new(s.clone(), Box::new(NullProgress))
        .resolve(&downloaded(SidecarName::OpenworkServer))
        .await
        .unwrap();
    assert_eq!(again.source, Source::Cache);
    let second = stamp(&stamp_path);
    assert_eq!(second["sha256"], first["sha256"]);
    assert_eq!(
        second["mtime_ns"],
        serde_json::json!(1000i64 * 1_000_000_000)
    );

    // Different bytes of the same size: refused, removed, downloaded again.
    let mut tampered = SERVER_BYTES.to_vec();
    tampered[0] = b'X';
    std::fs::write(&got.path, &tampered).unwrap();
    let refetched = Resolver::new(s, Box::new(NullProgress))
        .resolve(&downloaded(SidecarName::OpenworkServer))
        .await
        .unwrap();
    assert_eq!(refetched.source, Source::Downloaded);
    let cache_attempt = refetched.attempts[0].to_string();
    assert!(cache_attempt.contains("was modified"), "{cache_attempt}");
    assert_eq!(std::fs::read(&refetched.path).unwrap(), SERVER_BYTES);
}

#[tokio::test]
async fn verify_sidecars_catches_tampering_that_kept_the_metadata() {
    let (_t, dir) = tempdir();
    let server = Server::start().await;
    publish(&server, &sha256_hex(SERVER_BYTES));
    let mut s = settings(&dir, &server.url("/rel"));
    let got = Resolver::new(s.clone(), Box::new(NullProgress))
        .resolve(&downloaded(SidecarName::OpenworkServer))
        .await
        .unwrap();
    // Same size, same inode, mtime restored: the cheap check cannot see it...
    let mtime = std::fs::metadata(&got.path).unwrap().modified().unwrap();
    let mut tampered = SERVER_BYTES.to_vec();
    tampered[0] = b'X';
    let mut f = std::fs::File::options()
        .write(true)
        .open(&got.path)
        .unwrap();
    std::io::Write::write_all(&mut f, &tampered).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let cheap = Resolver::new(s.clone(), Box::new(NullProgress))
        .resolve(&downloaded(SidecarName::OpenworkServer))
        .await
        .unwrap();
    assert_eq!(cheap.source, Source::Cache);
    // ...--verify-sidecars re-hashes, refuses it and downloads again.
    s.verify = true;
    let verified = Resolver::new(s, Box::new(NullProgress))
        .resolve(&downloaded(SidecarName::OpenworkServer))
        .await
        .unwrap();
    assert_eq!(verified.source, Source::Downloaded);
    assert!(
        verified.attempts[0].to_string().contains("was modified"),
        "{}",
        verified.attempts[0]
    );
    assert_eq!(std::fs::read(&verified.path).unwrap(), SERVER_BYTES);
}
