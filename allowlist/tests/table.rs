//! The contract as a table: specs and allowlists on a real temporary host tree, each with the
//! mounts it yields or the exact error text.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: fail loudly

mod common;

use std::io;
use std::path::{Path, PathBuf};

use common::Tree;
use openwork_allowlist::{
    Allowlist, Error, FileKind, Fs, HostEnv, Overlap, PatternOrigin, Protection, SpecialKind,
    ValidatedMount, parse_specs, validate, validate_with_file,
};

/// What a case expects: mounts as (container subpath, real path under the temp dir, read-only,
/// root under the temp dir), or an error's exact text (`{T}` is the temp dir).
enum Expect {
    Mounts(&'static [(&'static str, &'static str, bool, &'static str)]),
    Error(&'static str),
}

struct Case {
    name: &'static str,
    /// `None`: the standard allowlist of [`Tree::allowlist`]; `Some`: this JSON (`{T}` replaced).
    allowlist: Option<&'static str>,
    specs: &'static [&'static str],
    /// Working directory under the temp dir.
    cwd: &'static str,
    expect: Expect,
}

const fn case(name: &'static str, specs: &'static [&'static str], expect: Expect) -> Case {
    Case {
        name,
        allowlist: None,
        specs,
        cwd: "",
        expect,
    }
}

const ROOT_SLASH: &str = r#"{"allowedRoots":[{"path":"/","allowReadWrite":true}]}"#;

const NOT_UNDER_ROOT_OUTSIDE: &str = "Sandbox mount rejected: {T}/outside is not under any allowed \
root. Allowed: {T}/home/projects, {T}/home/docs. Skipped (missing or unresolvable): {T}/home/nope \
(--sandbox-mount SPEC). To allow it, add its folder to allow.json under allowedRoots.";

fn cases() -> Vec<Case> {
    use Expect::{Error as E, Mounts as M};
    vec![
        // --- access: ro/rw combinations -------------------------------------------------------
        case(
            "rw root, no suffix: rw",
            &["~/projects/app:app"],
            M(&[("app", "home/projects/app", false, "home/projects")]),
        ),
        case(
            "rw root, :ro: ro",
            &["~/projects/app:app:ro"],
            M(&[("app", "home/projects/app", true, "home/projects")]),
        ),
        case(
            "rw root, :rw: rw",
            &["~/projects/app:app:rw"],
            M(&[("app", "home/projects/app", false, "home/projects")]),
        ),
        case(
            "ro root, no suffix: ro",
            &["~/docs:d"],
            M(&[("d", "home/docs", true, "home/docs")]),
        ),
        case(
            "ro root, :ro: ro",
            &["~/docs/reports:d:ro"],
            M(&[("d", "home/docs/reports", true, "home/docs")]),
        ),
        case(
            "ro root, :rw: error naming both",
            &["~/docs:d:rw"],
            E(
                "Sandbox mount rejected: --sandbox-mount ~/docs:d:rw asks for read-write, but \
             {T}/home/docs is under the read-only root {T}/home/docs in allow.json. Drop \":rw\" \
             (or use \":ro\") to mount it read-only, or set \"allowReadWrite\": true for that root \
             in allow.json.",
            ),
        ),
        Case {
            name: "deepest root decides: ro inside rw",
            allowlist: Some(
                r#"{"allowedRoots":[{"path":"~/projects","allowReadWrite":true},
                {"path":"~/projects/app"}]}"#,
            ),
            specs: &["~/projects/app/src:s", "~/projects/my.environment:m"],
            cwd: "",
            expect: M(&[
                ("s", "home/projects/app/src", true, "home/projects/app"),
                ("m", "home/projects/my.environment", false, "home/projects"),
            ]),
        },
        Case {
            name: "same root twice: read-only wins",
            allowlist: Some(
                r#"{"allowedRoots":[{"path":"~/docs","allowReadWrite":true},
                {"path":"{T}/home/docs/../docs"}]}"#,
            ),
            specs: &["~/docs:d"],
            cwd: "",
            expect: M(&[("d", "home/docs", true, "home/docs")]),
        },
        // --- plain paths ------------------------------------------------------------------------
        case(
            "the root itself",
            &["~/projects:p"],
            M(&[("p", "home/projects", false, "home/projects")]),
        ),
        case(
            "a single file",
            &["~/projects/app/main.rs:m/main.rs:ro"],
            M(&[(
                "m/main.rs",
                "home/projects/app/main.rs",
                true,
                "home/projects",
            )]),
        ),
        Case {
            name: "relative host path against the cwd",
            allowlist: None,
            specs: &["app:app"],
            cwd: "home/projects",
            expect: M(&[("app", "home/projects/app", false, "home/projects")]),
        },
        case(
            "absolute path outside every root",
            &["{T}/outside:o"],
            E(NOT_UNDER_ROOT_OUTSIDE),
        ),
        case(
            "missing path",
            &["~/projects/missing:m"],
            E(
                "Sandbox mount host path does not exist: ~/projects/missing (expanded: \
             {T}/home/projects/missing) (--sandbox-mount ~/projects/missing:m). Create it or fix \
             the path; a symlink must point to an existing file or folder.",
            ),
        ),
        case(
            "dangling symlink",
            &["~/projects/dangling:d"],
            E(
                "Sandbox mount host path does not exist: ~/projects/dangling (expanded: \
             {T}/home/projects/dangling) (--sandbox-mount ~/projects/dangling:d). Create it or fix \
             the path; a symlink must point to an existing file or folder.",
            ),
        ),
        // --- symlinks -----------------------------------------------------------------------------
        case(
            "dir symlink inside the root",
            &["~/projects/link-in:l"],
            M(&[("l", "home/projects/app", false, "home/projects")]),
        ),
        case(
            "file symlink inside the root",
            &["~/projects/file-link-in:f"],
            M(&[("f", "home/projects/app/main.rs", false, "home/projects")]),
        ),
        case(
            "dir symlink out of the root",
            &["~/projects/link-out:o"],
            E(NOT_UNDER_ROOT_OUTSIDE),
        ),
        case(
            "file symlink out of the root",
            &["~/projects/file-link-out:o"],
            E(
                "Sandbox mount rejected: {T}/outside/secret.txt is not under any allowed root. \
             Allowed: {T}/home/projects, {T}/home/docs. Skipped (missing or unresolvable): {T}/home/nope \
             (--sandbox-mount ~/projects/file-link-out:o). To allow it, add its folder to \
             allow.json under allowedRoots.",
            ),
        ),
        case(
            "symlink into a read-only root: the real root decides",
            &["~/projects/link-docs:d"],
            M(&[("d", "home/docs", true, "home/docs")]),
        ),
        case(
            "symlink into a read-only root with :rw",
            &["~/projects/link-docs:d:rw"],
            E(
                "Sandbox mount rejected: --sandbox-mount ~/projects/link-docs:d:rw asks for \
             read-write, but {T}/home/docs is under the read-only root {T}/home/docs in \
             allow.json. Drop \":rw\" (or use \":ro\") to mount it read-only, or set \
             \"allowReadWrite\": true for that root in allow.json.",
            ),
        ),
        case(
            "symlink to a credential store",
            &["~/projects/link-ssh:k"],
            E(
                "Sandbox mount rejected: {T}/home/.ssh is inside {T}/home/.ssh (credential store) \
             (--sandbox-mount ~/projects/link-ssh:k). It is never mounted into a sandbox.",
            ),
        ),
        // --- `..` ---------------------------------------------------------------------------------
        case(
            "`..` in the host path leaving the root",
            &["~/projects/app/../../../outside:o"],
            E(NOT_UNDER_ROOT_OUTSIDE),
        ),
        case(
            "`..` in the host path staying inside",
            &["~/projects/app/src/..:a"],
            M(&[("a", "home/projects/app", false, "home/projects")]),
        ),
        case(
            "`..` after a symlink follows the link first",
            &["~/projects/link-out/../home/docs:d"],
            M(&[("d", "home/docs", true, "home/docs")]),
        ),
        case(
            "`..` in the subpath",
            &["~/projects/app:../x"],
            E(
                "Invalid sandbox container subpath: \"../x\" (--sandbox-mount ~/projects/app:../x): it \
             contains \"..\". Use a relative path without \"/\" prefix or \"..\", whose segments \
             use only letters, digits, '.', '_' and '-'.",
            ),
        ),
        case(
            "absolute subpath",
            &["~/projects/app:/etc"],
            E(
                "Invalid sandbox container subpath: \"/etc\" (--sandbox-mount ~/projects/app:/etc): it \
             starts with \"/\". Use a relative path without \"/\" prefix or \"..\", whose segments \
             use only letters, digits, '.', '_' and '-'.",
            ),
        ),
        // --- blocked patterns ---------------------------------------------------------------------
        case(
            "blocked component",
            &["~/projects/.env:e"],
            E(
                "Sandbox mount rejected (blocked pattern \".env\"): {T}/home/projects/.env (component \
             \".env\", --sandbox-mount ~/projects/.env:e). Built-in patterns cannot be removed; \
             mount a path that does not go through such a file or folder.",
            ),
        ),
        case(
            "substring of a blocked name is fine",
            &["~/projects/my.environment:m"],
            M(&[("m", "home/projects/my.environment", false, "home/projects")]),
        ),
        case(
            "blocked glob",
            &["~/projects/certs/server.pem:c"],
            E(
                "Sandbox mount rejected (blocked pattern \"*.pem\"): {T}/home/projects/certs/server.pem \
             (component \"server.pem\", --sandbox-mount ~/projects/certs/server.pem:c). Built-in \
             patterns cannot be removed; mount a path that does not go through such a file or \
             folder.",
            ),
        ),
        case(
            "the file's own pattern",
            &["~/projects/secret-stuff:s"],
            E(
                "Sandbox mount rejected (blocked pattern \"secret-*\"): {T}/home/projects/secret-stuff \
             (component \"secret-stuff\", --sandbox-mount ~/projects/secret-stuff:s). Mount a path \
             that does not go through it, or remove the pattern from blockedPatterns in \
             allow.json.",
            ),
        ),
        case(
            "an engine socket's name",
            &["~/projects/run/docker.sock:d"],
            E("Sandbox mount rejected (blocked pattern \"docker.sock\"): \
             {T}/home/projects/run/docker.sock (component \"docker.sock\", --sandbox-mount \
             ~/projects/run/docker.sock:d). Built-in patterns cannot be removed; mount a path that \
             does not go through such a file or folder."),
        ),
        // --- special files and protected paths ----------------------------------------------------
        case(
            "unix socket",
            &["~/projects/sock:s"],
            E(
                "Sandbox mount rejected: {T}/home/projects/sock is a unix socket (--sandbox-mount \
             ~/projects/sock:s). Sockets, device files and FIFOs are never mounted into a sandbox; \
             mount a regular file or a folder.",
            ),
        ),
        case(
            "FIFO",
            &["~/projects/fifo:f"],
            E(
                "Sandbox mount rejected: {T}/home/projects/fifo is a FIFO (named pipe) (--sandbox-mount \
             ~/projects/fifo:f). Sockets, device files and FIFOs are never mounted into a sandbox; \
             mount a regular file or a folder.",
            ),
        ),
        Case {
            name: "/dev/null under an allowed /dev",
            allowlist: Some(r#"{"allowedRoots":[{"path":"/dev","allowReadWrite":true}]}"#),
            specs: &["/dev/null:null"],
            cwd: "",
            expect: E(
                "Sandbox mount rejected: /dev/null is a character device (--sandbox-mount \
                /dev/null:null). Sockets, device files and FIFOs are never mounted into a sandbox; \
                mount a regular file or a folder.",
            ),
        },
        Case {
            name: "/var/run under an allowed / (the reference mounted it rw)",
            allowlist: Some(ROOT_SLASH),
            specs: &["/var/run:run"],
            cwd: "",
            expect: E(
                "Sandbox mount rejected: /run is inside /run (container engine runtime: its \
                socket gives whoever can reach it root on the host) (--sandbox-mount /var/run:run). \
                It is never mounted into a sandbox.",
            ),
        },
        Case {
            name: "a symlink to /run",
            allowlist: Some(ROOT_SLASH),
            specs: &["~/projects/link-run:r"],
            cwd: "",
            expect: E(
                "Sandbox mount rejected: /run is inside /run (container engine runtime: its \
                socket gives whoever can reach it root on the host) (--sandbox-mount \
                ~/projects/link-run:r). It is never mounted into a sandbox.",
            ),
        },
        Case {
            name: "/ itself",
            allowlist: Some(ROOT_SLASH),
            specs: &["/:all:ro"],
            cwd: "",
            expect: E(
                "Sandbox mount rejected: / contains /proc (host kernel interface) \
                (--sandbox-mount /:all:ro). Mount a subfolder that does not contain it.",
            ),
        },
        Case {
            name: "the home folder holds engine and credential stores",
            allowlist: Some(r#"{"allowedRoots":[{"path":"~"}]}"#),
            specs: &["~:home"],
            cwd: "",
            expect: E(
                "Sandbox mount rejected: {T}/home contains {T}/home/.docker (container \
                engine runtime: its socket gives whoever can reach it root on the host) \
                (--sandbox-mount ~:home). Mount a subfolder that does not contain it.",
            ),
        },
        // --- targets ------------------------------------------------------------------------------
        case(
            "duplicate subpaths",
            &["~/projects/app:x", "~/docs:x/"],
            E(
                "Duplicate sandbox container subpath \"x\": --sandbox-mount ~/projects/app:x and \
             ~/docs:x/ both mount at /workspace/extra/x. Give each mount its own subpath.",
            ),
        ),
        case(
            "nested subpaths",
            &["~/projects/app:data", "~/docs:data/docs"],
            E(
                "Nested sandbox container subpaths: \"data/docs\" (--sandbox-mount ~/docs:data/docs) \
             lies inside \"data\" (--sandbox-mount ~/projects/app:data). Give the mounts subpaths \
             that do not contain each other.",
            ),
        ),
        case(
            "several good mounts",
            &[
                "~/projects/app:app",
                "~/docs:docs",
                "~/projects/link-in:app2",
            ],
            M(&[
                ("app", "home/projects/app", false, "home/projects"),
                ("docs", "home/docs", true, "home/docs"),
                ("app2", "home/projects/app", false, "home/projects"),
            ]),
        ),
    ]
}

#[test]
fn table() {
    let tree = Tree::new();
    let mut failures = Vec::new();
    for case in cases() {
        let allowlist = match case.allowlist {
            None => tree.allowlist(),
            Some(json) => Allowlist::from_json(&tree.sub(json), "allow.json").unwrap(),
        };
        let raw: Vec<String> = case.specs.iter().map(|s| tree.sub(s)).collect();
        let host = tree.host(case.cwd);
        let got = parse_specs(&raw).and_then(|specs| validate(&specs, &allowlist, &host));
        match (&case.expect, got) {
            (Expect::Mounts(want), Ok(got)) => {
                let want: Vec<ValidatedMount> = want
                    .iter()
                    .map(|(sub, real, ro, root)| ValidatedMount {
                        host_real_path: tree.path(real),
                        container_path: format!("/workspace/extra/{sub}"),
                        read_only: *ro,
                        root: tree.path(root),
                        is_dir: tree.path(real).is_dir(),
                    })
                    .collect();
                if got != want {
                    failures.push(format!("{}: got {got:#?}\nwant {want:#?}", case.name));
                }
            }
            (Expect::Error(want), Err(e)) => {
                let spec = raw.last().cloned().unwrap_or_default();
                let want = tree.sub(want).replace("SPEC", &spec);
                if e.to_string() != want {
                    failures.push(format!("{}:\n got: {e}\nwant: {want}", case.name));
                }
            }
            (_, got) => failures.push(format!("{}: unexpected {got:?}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn errors_are_matchable() {
    let tree = Tree::new();
    let allowlist = tree.allowlist();
    let host = tree.host("");
    let run = |spec: &str| {
        let specs = parse_specs(&[spec.to_owned()]).unwrap();
        validate(&specs, &allowlist, &host).unwrap_err()
    };
    assert!(matches!(
        run("~/projects/sock:s"),
        Error::SpecialFile {
            kind: SpecialKind::Socket,
            ..
        }
    ));
    assert!(matches!(
        run("~/projects/fifo:s"),
        Error::SpecialFile {
            kind: SpecialKind::Fifo,
            ..
        }
    ));
    assert!(matches!(run("~/projects/.env:s"),
        Error::Blocked { ref pattern, origin: PatternOrigin::BuiltIn, .. } if pattern == ".env"));
    assert!(matches!(
        run("~/projects/secret-stuff:s"),
        Error::Blocked {
            origin: PatternOrigin::File { .. },
            ..
        }
    ));
    assert!(matches!(
        run("~/projects/link-ssh:s"),
        Error::Protected {
            protection: Protection::CredentialStore,
            overlap: Overlap::Inside,
            ..
        }
    ));
    match run("~/projects/link-out:s") {
        Error::NotUnderRoot {
            real,
            allowed,
            missing,
            ..
        } => {
            assert_eq!(real, tree.path("outside"));
            assert_eq!(
                *allowed,
                [tree.path("home/projects"), tree.path("home/docs")]
            );
            assert_eq!(*missing, [tree.path("home/nope")]);
        }
        other => panic!("{other:?}"),
    }
    match run("~/docs:d:rw") {
        Error::ReadWriteNotAllowed { root, real, .. } => {
            assert_eq!(
                (root, real),
                (tree.path("home/docs"), tree.path("home/docs"))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn allowlist_file_handling() {
    let tree = Tree::new();
    let host = tree.host("");
    let specs = parse_specs(&["~/projects/app:app".to_owned()]).unwrap();

    // Missing file: refused, with where to create it and an example.
    let missing = tree.path("none.json");
    let e = validate_with_file(&specs, &missing, &host).unwrap_err();
    let text = e.to_string();
    let head = format!(
        "Additional sandbox mounts are blocked (--sandbox-mount ~/projects/app:app). Create {} to \
         enable.\n\nExample:\n{{\n  \"allowedRoots\": [",
        missing.display()
    );
    assert!(text.starts_with(&head), "{text}");
    assert!(matches!(e, Error::AllowlistMissing { .. }));
    // ... but no specs need no file.
    assert_eq!(validate_with_file(&[], &missing, &host).unwrap(), []);

    // Bad JSON: the parser's line and column.
    let bad = tree.path("bad.json");
    std::fs::write(
        &bad,
        "{\n  \"allowedRoots\": [\n    {\"path\": \"~/projects\",}\n  ]\n}\n",
    )
    .unwrap();
    let e = validate_with_file(&specs, &bad, &host).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3:27: the sandbox mount allowlist is not valid JSON: trailing comma. Fix the file; \
             see the example in the openwork-allowlist README.",
            bad.display()
        )
    );

    // A good file.
    let good = tree.path("good.json");
    std::fs::write(&good, r#"{"allowedRoots":[{"path":"~/projects"}]}"#).unwrap();
    let mounts = validate_with_file(&specs, &good, &host).unwrap();
    assert!(mounts[0].read_only);

    // A mount that would expose the allowlist file itself (an agent could widen its allowlist).
    let inside = tree.path("home/projects/allow.json");
    std::fs::write(
        &inside,
        r#"{"allowedRoots":[{"path":"~/projects","allowReadWrite":true}]}"#,
    )
    .unwrap();
    let specs = parse_specs(&["~/projects:p".to_owned()]).unwrap();
    let e = validate_with_file(&specs, &inside, &host).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Protected {
                protection: Protection::Openwork,
                overlap: Overlap::Contains,
                ..
            }
        ),
        "{e}"
    );
    let specs = parse_specs(&["~/projects/app:a".to_owned()]).unwrap();
    assert!(validate_with_file(&specs, &inside, &host).is_ok());
}

#[test]
fn caller_protected_paths() {
    let tree = Tree::new();
    let host = tree.host("").protect(tree.path("home/projects/app/src"));
    let specs = parse_specs(&["~/projects/app:a".to_owned()]).unwrap();
    let e = validate(&specs, &tree.allowlist(), &host).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Protected {
                protection: Protection::Caller,
                overlap: Overlap::Contains,
                ..
            }
        ),
        "{e}"
    );
}

/// A filesystem where `/home/me/projects/engine` resolves to an engine socket that looks like a
/// regular file, so only the protected-path rule stands between it and the container.
struct FakeFs;

impl Fs for FakeFs {
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        match path.to_str() {
            Some("/home/me/projects/engine") => Ok(PathBuf::from("/run/docker.sock")),
            Some("/home/me/projects/desktop") => Ok(PathBuf::from(
                "/home/me/Library/Containers/com.docker.docker/Data/docker.raw.sock",
            )),
            Some("/var/run") => Ok(PathBuf::from("/run")),
            _ => Ok(path.to_owned()),
        }
    }

    fn kind(&self, _path: &Path) -> io::Result<FileKind> {
        Ok(FileKind::File)
    }
}

#[test]
fn engine_sockets_are_refused_whatever_their_type() {
    let host = HostEnv::with_fs("/home/me", "/", FakeFs).unwrap();
    let allowlist = Allowlist::from_json(ROOT_SLASH, "allow.json").unwrap();
    for spec in [
        "/home/me/projects/engine:e",
        "/home/me/projects/desktop:d",
        "/var/run/docker.sock:d",
    ] {
        let specs = parse_specs(&[spec.to_owned()]).unwrap();
        let e = validate(&specs, &allowlist, &host).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Protected {
                    protection: Protection::EngineRuntime,
                    overlap: Overlap::Inside,
                    ..
                }
            ),
            "{spec}: {e}"
        );
    }
    // Sanity: the same fake fs accepts an ordinary path.
    let specs = parse_specs(&["/home/me/projects/app:a".to_owned()]).unwrap();
    assert!(validate(&specs, &allowlist, &host).is_ok());
}
