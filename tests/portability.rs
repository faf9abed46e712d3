//! The README's build-and-start command (`scripts/openwork`) on hosts this machine is not: a
//! stand-in `rustc` reports another host triple and a stand-in `cargo` records how it was asked
//! to build (test doubles of the toolchain, for the one thing that differs per host), so the
//! test shows the command builds for the host's own triple and runs what it built.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn run_for_host(host: &str) -> (String, String) {
    let t = tempfile::tempdir().unwrap();
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let repo = t.path().join("repo");
    std::fs::create_dir_all(repo.join("scripts")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/openwork"),
        repo.join("scripts/openwork"),
    )
    .unwrap();
    let record = t.path().join("cargo-args");
    script(
        &bin.join("rustc"),
        &format!("echo 'rustc 1.95.0'; echo 'host: {host}'"),
    );
    // The stand-in cargo "builds" the binary where a real build of that target would put it.
    script(
        &bin.join("cargo"),
        &format!(
            "echo \"$CARGO_BUILD_TARGET $*\" > {rec}\nmkdir -p {repo}/target/$CARGO_BUILD_TARGET/release\nprintf '#!/bin/sh\\necho ran \"$@\"\\n' > {repo}/target/$CARGO_BUILD_TARGET/release/openwork\nchmod +x {repo}/target/$CARGO_BUILD_TARGET/release/openwork",
            rec = record.display(),
            repo = repo.display()
        ),
    );
    let out = Command::new(repo.join("scripts/openwork"))
        .args(["start", "--workspace", "/w"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(&record).unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_start_command_builds_for_the_host_it_runs_on() {
    for host in [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "aarch64-apple-darwin",
    ] {
        let (cargo, ran) = run_for_host(host);
        assert!(
            cargo.starts_with(&format!("{host} build --release")),
            "{cargo}"
        );
        assert_eq!(ran.trim(), "ran start --workspace /w", "{host}");
    }
}

#[test]
fn static_linking_is_set_for_every_linux_target_and_no_other() {
    let config =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".cargo/config.toml"))
            .unwrap();
    for linux in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        let section =
            format!("[target.{linux}]\nrustflags = [\"-C\", \"target-feature=+crt-static\"]");
        assert!(
            config.contains(&section),
            "{linux} is not static:\n{config}"
        );
    }
    assert!(
        !config.contains("apple"),
        "macOS must build natively:\n{config}"
    );
}
