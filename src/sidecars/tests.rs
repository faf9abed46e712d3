//! Unit tests of the policy order, the pre-checks and the error texts (no network, no npm).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn utf8_tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
    (t, p)
}

/// Settings that can reach nothing: manifest on a closed port, empty PATH, fake exe dir.
fn offline(dir: &Utf8Path) -> ResolveSettings {
    let mut s = ResolveSettings::new(
        dir.join("sidecars"),
        "http://127.0.0.1:9/rel/",
        Target::LINUX_X64,
    );
    s.path_env = Some(OsString::from(dir.join("empty-path").as_str()));
    s.current_exe = Some(dir.join("bin").join("openwork"));
    s.manifest_timeout = Duration::from_secs(2);
    s.connect_timeout = Duration::from_secs(2);
    s
}

#[test]
fn policy_order() {
    use Step::*;
    let oc = SidecarName::Opencode;
    let srv = SidecarName::OpenworkServer;
    assert_eq!(
        plan(oc, SourcePolicy::Auto, false),
        vec![Bundled, Cache, Manifest, Npm]
    );
    assert_eq!(
        plan(oc, SourcePolicy::Auto, true),
        vec![Bundled, Cache, Manifest, Npm, External]
    );
    assert_eq!(
        plan(srv, SourcePolicy::Auto, false),
        vec![Bundled, Cache, Manifest]
    );
    assert_eq!(
        plan(srv, SourcePolicy::Downloaded, true),
        vec![Cache, Manifest]
    );
    assert_eq!(plan(oc, SourcePolicy::Npm, false), vec![Cache, Npm]);
    assert_eq!(plan(oc, SourcePolicy::Bundled, true), vec![Bundled]);
    assert_eq!(plan(oc, SourcePolicy::External, true), vec![External]);
}

#[test]
fn source_values_parse_with_clear_errors() {
    assert_eq!(" NPM ".parse::<SourcePolicy>().unwrap(), SourcePolicy::Npm);
    assert_eq!(
        SourcePolicy::parse_for(SidecarName::OpenworkServer, "Downloaded").unwrap(),
        SourcePolicy::Downloaded
    );
    let e = "github".parse::<SourcePolicy>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "Invalid opencode-source value: github. Use auto|bundled|downloaded|external|npm."
    );
    let e = SourcePolicy::parse_for(SidecarName::OpenworkServer, "npm").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Invalid sidecar-source value: npm. Use auto|bundled|downloaded|external."
    );
}

#[test]
fn displays_are_lower_case() {
    assert_eq!(Source::Cache.to_string(), "cache");
    assert_eq!(Source::Npm.to_string(), "npm");
    assert_eq!(SourcePolicy::Downloaded.to_string(), "downloaded");
    assert_eq!(SidecarName::OpencodeRouter.to_string(), "opencode-router");
}

#[tokio::test]
async fn bundled_server_is_this_executable_with_a_role() {
    let (_t, dir) = utf8_tempdir();
    let r = Resolver::new(offline(&dir), Box::new(NullProgress));
    let got = r
        .resolve(&SidecarRequest::new(
            SidecarName::OpenworkServer,
            SourcePolicy::Auto,
        ))
        .await
        .unwrap();
    assert_eq!(got.source, Source::Bundled);
    assert_eq!(got.path, dir.join("bin/openwork"));
    assert_eq!(got.args_prefix, vec!["server".to_string()]);
    let got = r
        .resolve(&SidecarRequest::new(
            SidecarName::OpencodeRouter,
            SourcePolicy::Bundled,
        ))
        .await
        .unwrap();
    assert_eq!(got.args_prefix, vec!["router".to_string()]);
}

#[tokio::test]
async fn bundled_opencode_is_the_file_next_to_the_executable() {
    use std::os::unix::fs::PermissionsExt;
    let (_t, dir) = utf8_tempdir();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let oc = dir.join("bin/opencode");
    std::fs::write(&oc, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&oc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = Resolver::new(offline(&dir), Box::new(NullProgress));
    let got = r
        .resolve(&SidecarRequest::new(
            SidecarName::Opencode,
            SourcePolicy::Auto,
        ))
        .await
        .unwrap();
    assert_eq!((got.source, got.path), (Source::Bundled, oc));
    assert!(got.args_prefix.is_empty());
}

#[tokio::test]
async fn auto_failure_lists_every_attempt_and_the_fixes() {
    let (_t, dir) = utf8_tempdir();
    let r = Resolver::new(offline(&dir), Box::new(NullProgress));
    let err = r
        .resolve(&SidecarRequest::new(
            SidecarName::Opencode,
            SourcePolicy::Auto,
        ))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("Could not resolve opencode (--opencode-source auto): tried bundled, cache, manifest, npm."),
        "{text}"
    );
    assert!(
        text.contains("1. bundled: no bundled opencode at"),
        "{text}"
    );
    assert!(text.contains("2. cache: not cached at"), "{text}");
    assert!(text.contains("3. manifest: could not fetch the sidecar manifest http://127.0.0.1:9/rel/openwork-orchestrator-sidecars.json"), "{text}");
    assert!(text.contains("4. npm: npm was not found on PATH"), "{text}");
    assert!(text.contains("install Node.js and npm"), "{text}");
    assert!(
        text.contains("--opencode-bin PATH --allow-external"),
        "{text}"
    );
    assert!(text.contains("--sidecar-manifest URL"), "{text}");
    match err {
        ResolveError::AllFailed { attempts, .. } => assert_eq!(attempts.len(), 4),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn manifest_is_fetched_at_most_once() {
    let (_t, dir) = utf8_tempdir();
    let r = Resolver::new(offline(&dir), Box::new(NullProgress));
    let a = r.manifest().await.unwrap_err();
    let b = r.manifest().await.unwrap_err();
    assert_eq!(a.to_string(), b.to_string());
    assert!(r.manifest.initialized());
}

#[tokio::test]
async fn explicit_bin_checks() {
    let (_t, dir) = utf8_tempdir();
    let mut s = offline(&dir);
    let mut req = SidecarRequest::new(SidecarName::Opencode, SourcePolicy::Auto);
    req.explicit_bin = Some(dir.join("nope/opencode"));
    let e = Resolver::new(s.clone(), Box::new(NullProgress))
        .resolve(&req)
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("--opencode-bin"), "{e}");
    assert!(e.to_string().contains("requires --allow-external"), "{e}");

    s.allow_external = true;
    let r = Resolver::new(s, Box::new(NullProgress));
    let e = r.resolve(&req).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "--opencode-bin not found: {}. Check the path, or drop --opencode-bin to use the bundled or downloaded opencode",
            dir.join("nope/opencode")
        )
    );

    req.policy = SourcePolicy::Npm;
    let e = r.resolve(&req).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "--opencode-bin requires --opencode-source external or auto (got npm)"
    );

    let exe = dir.join("my-opencode");
    std::fs::write(&exe, "x").unwrap();
    req.policy = SourcePolicy::External;
    req.explicit_bin = Some(exe.clone());
    let got = r.resolve(&req).await.unwrap();
    assert_eq!((got.source, got.path), (Source::External, exe));
}

#[tokio::test]
async fn external_needs_allow_external() {
    let (_t, dir) = utf8_tempdir();
    let r = Resolver::new(offline(&dir), Box::new(NullProgress));
    let e = r
        .resolve(&SidecarRequest::new(
            SidecarName::OpenworkServer,
            SourcePolicy::External,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "External openwork-server requires --allow-external (or choose another --sidecar-source)"
    );
    let e = r
        .resolve(&SidecarRequest::new(
            SidecarName::OpenworkServer,
            SourcePolicy::Npm,
        ))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("Invalid sidecar-source value: npm"),
        "{e}"
    );
}

#[tokio::test]
async fn no_pin_for_target_is_named() {
    let (_t, dir) = utf8_tempdir();
    let mut s = offline(&dir);
    s.target = Target::DARWIN_ARM64;
    let r = Resolver::new(s, Box::new(NullProgress));
    let e = r
        .resolve(&SidecarRequest::new(
            SidecarName::Opencode,
            SourcePolicy::Npm,
        ))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("no pinned npm package of opencode 1.18.34 for target darwin-arm64"),
        "{text}"
    );
}

#[tokio::test]
async fn auto_with_allow_external_uses_path_last_and_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let (_t, dir) = utf8_tempdir();
    let mut s = offline(&dir);
    s.allow_external = true;
    let path_dir = dir.join("empty-path");
    std::fs::create_dir_all(&path_dir).unwrap();
    let oc = path_dir.join("opencode");
    std::fs::write(&oc, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&oc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = Resolver::new(s, Box::new(NullProgress));
    let got = r
        .resolve(&SidecarRequest::new(
            SidecarName::Opencode,
            SourcePolicy::Auto,
        ))
        .await
        .unwrap();
    assert_eq!((got.source, got.path), (Source::External, oc));
    let steps: Vec<Step> = got.attempts.iter().map(|a| a.step).collect();
    assert_eq!(steps, plan(SidecarName::Opencode, SourcePolicy::Auto, true));
    assert!(got.attempts[..4].iter().all(|a| a.result.is_err()));
}
