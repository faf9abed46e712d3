//! Property test (the crate's fuzz check): random specs made of path pieces — `.`, `..`,
//! secrets' names, symlinks pointing in and out of the roots, a socket, a FIFO, a link loop —
//! against random allowlists on a real temporary tree. Whatever is accepted must be inside an
//! allowed root by real path, free of blocked components and special files, and no more
//! writable than its root and spec allow.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: fail loudly

mod common;

use std::path::{Component, Path, PathBuf};

use common::Tree;
use openwork_allowlist::{
    Allowlist, DEFAULT_BLOCKED_PATTERNS, MountSpec, RequestedAccess, component_matches,
    parse_specs, validate,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Where a host path starts: existing folders (through links too), relative ones, `/`.
const BASES: &[&str] = &[
    "~",
    "~/projects",
    "~/projects/app",
    "~/projects/app/up",
    "~/projects/link-in",
    "~/projects/link-out",
    "~/projects/link-docs",
    "~/docs",
    "{T}",
    "{T}/outside",
    "app",
    ".",
    "..",
];
/// Subpath segments; the first four are well-formed.
const SUB_PIECES: &[&str] = &["a", "b", "c.d", "e-f", ".", "..", ""];
/// Candidate roots: (path with `{T}`, allowReadWrite).
const ROOTS: &[(&str, bool)] = &[
    ("~/projects", true),
    ("~/projects", false),
    ("~/docs", true),
    ("~/docs", false),
    ("~/projects/app", false),
    ("~/projects/link-in", true),
    ("{T}/outside/inner", true),
    ("~", false),
    ("/", true),
    ("~/missing", true),
];

/// Hosts used as they are (no walk below them).
const FIXED_HOSTS: &[&str] = &[
    "/",
    "/var/run",
    "/dev/null",
    "{T}/home/projects/../../outside",
];

/// One spec: (base, walk choices, subpath pieces, suffix). Bases past `BASES` are fixed hosts.
type SpecInput = (usize, Vec<u32>, Vec<usize>, usize);

#[derive(Debug, Clone)]
struct Input {
    roots: Vec<usize>,
    patterns: Vec<&'static str>,
    specs: Vec<SpecInput>,
}

fn input() -> impl Strategy<Value = Input> {
    let spec = (
        0..BASES.len() + FIXED_HOSTS.len(),
        prop::collection::vec(any::<u32>(), 0..5),
        // Mostly well-formed subpaths, sometimes anything.
        prop_oneof![
            8 => prop::collection::vec(0..4usize, 0..3),
            1 => prop::collection::vec(0..SUB_PIECES.len(), 1..4),
        ],
        0..3usize,
    );
    (
        prop::collection::vec(0..ROOTS.len(), 1..4),
        prop::collection::vec(
            prop::sample::select(vec!["secret-*", "*.txt", "inner"]),
            0..2,
        ),
        prop::collection::vec(spec, 1..3),
    )
        .prop_map(|(roots, patterns, specs)| Input {
            roots,
            patterns,
            specs,
        })
}

/// A host path: a base, then a random walk through what really is there (`.`, `..` and the
/// entries of the folder reached so far, links followed), so most paths exist and the links,
/// secrets, socket and FIFO of the tree are all reached.
fn host_path(tree: &Tree, base: usize, choices: &[u32]) -> String {
    if let Some(fixed) = base.checked_sub(BASES.len()) {
        return tree.sub(FIXED_HOSTS[fixed]);
    }
    let mut host = tree.sub(BASES[base]);
    let env = tree.host("home/projects");
    let mut current = std::fs::canonicalize(env.expand(&host)).ok();
    for &choice in choices {
        let Some(dir) = current.as_ref().filter(|d| d.is_dir()) else {
            break;
        };
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.splice(0..0, [".".to_owned(), "..".to_owned()]);
        let name = &names[choice as usize % names.len()];
        if !host.ends_with('/') {
            host.push('/');
        }
        host.push_str(name);
        current = std::fs::canonicalize(dir.join(name)).ok();
    }
    host
}

fn spec_text(tree: &Tree, index: usize, (base, choices, sub, suffix): &SpecInput) -> String {
    let host = host_path(tree, *base, choices);
    // A well-formed subpath gets a per-spec first segment, so specs rarely collide.
    let mut segments: Vec<String> = sub.iter().map(|&s| SUB_PIECES[s].to_owned()).collect();
    if sub.iter().all(|&s| s < 4) {
        segments.insert(0, format!("m{index}"));
    }
    format!(
        "{host}:{}{}",
        segments.join("/"),
        ["", ":ro", ":rw"][*suffix]
    )
}

fn allowlist_json(tree: &Tree, input: &Input) -> String {
    let roots: Vec<String> = input
        .roots
        .iter()
        .map(|&r| {
            let (path, rw) = ROOTS[r];
            format!(r#"{{"path":"{}","allowReadWrite":{rw}}}"#, tree.sub(path))
        })
        .collect();
    let patterns: Vec<String> = input.patterns.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        r#"{{"allowedRoots":[{}],"blockedPatterns":[{}]}}"#,
        roots.join(","),
        patterns.join(",")
    )
}

fn names(path: &Path) -> Vec<&[u8]> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_encoded_bytes()),
            _ => None,
        })
        .collect()
}

/// Checks one input; returns how many mounts were accepted.
fn check(tree: &Tree, input: &Input) -> Result<usize, TestCaseError> {
    let raw: Vec<String> = (input.specs.iter().enumerate())
        .map(|(i, s)| spec_text(tree, i, s))
        .collect();
    let allowlist = Allowlist::from_json(&allowlist_json(tree, input), "allow.json").unwrap();
    let host = tree.host("home/projects");
    let Ok(specs) = parse_specs(&raw) else {
        return Ok(0); // grammar errors are covered by the grammar property below
    };
    let Ok(mounts) = validate(&specs, &allowlist, &host) else {
        return Ok(0);
    };
    // The allowed roots' real paths, with their rw flag.
    let roots: Vec<(PathBuf, bool)> = input
        .roots
        .iter()
        .filter_map(|&r| {
            let (path, rw) = ROOTS[r];
            let expanded = host.expand(&tree.sub(path));
            std::fs::canonicalize(expanded).ok().map(|p| (p, rw))
        })
        .collect();
    prop_assert_eq!(mounts.len(), specs.len());
    for (mount, spec) in mounts.iter().zip(&specs) {
        let real = &mount.host_real_path;
        // A real, canonical path: what is checked is what gets mounted.
        prop_assert_eq!(&std::fs::canonicalize(real).unwrap(), real);
        // Inside an allowed root, by components, and the reported root is one of them.
        prop_assert!(
            roots.iter().any(|(r, _)| real.starts_with(r)),
            "{real:?} outside {roots:?}"
        );
        prop_assert!(real.starts_with(&mount.root));
        prop_assert!(roots.iter().any(|(r, _)| *r == mount.root));
        // No blocked component (built-in or the file's), no known secret name.
        for name in names(real) {
            for pattern in DEFAULT_BLOCKED_PATTERNS.iter().chain(&input.patterns) {
                prop_assert!(!component_matches(pattern, name), "{real:?} has {pattern}");
            }
            let secret = [
                &b".ssh"[..],
                b".env",
                b"id_rsa",
                b"server.pem",
                b"docker.sock",
            ];
            prop_assert!(!secret.contains(&name), "{real:?}");
        }
        // No socket, FIFO or device; nothing under /run or a credential store.
        let kind = std::fs::symlink_metadata(real).unwrap().file_type();
        prop_assert!(kind.is_dir() || kind.is_file(), "{real:?} is {kind:?}");
        prop_assert_eq!(mount.is_dir, kind.is_dir());
        prop_assert!(!real.starts_with("/run") && !real.starts_with(tree.home.join(".ssh")));
        prop_assert!(
            !tree.home.starts_with(real),
            "{real:?} contains the home folder"
        );
        // Never more writable than the spec and every root at the same real path allow.
        let root_rw = roots
            .iter()
            .filter(|(r, _)| *r == mount.root)
            .all(|(_, rw)| *rw);
        if !mount.read_only {
            prop_assert!(root_rw, "{} rw under a read-only root", spec.spec());
            prop_assert!(spec.access() != RequestedAccess::ReadOnly);
        }
        if spec.access() == RequestedAccess::ReadWrite {
            prop_assert!(!mount.read_only);
        }
        // The deepest matching root decided.
        let depth = mount.root.components().count();
        prop_assert!(
            roots
                .iter()
                .all(|(r, _)| !real.starts_with(r) || r.components().count() <= depth)
        );
        prop_assert!(mount.container_path.starts_with("/workspace/extra/"));
    }
    Ok(mounts.len())
}

#[test]
fn accepted_mounts_stay_inside_roots_and_away_from_secrets() {
    let tree = Tree::new();
    let config = Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let accepted = std::cell::Cell::new(0usize);
    runner
        .run(&input(), |input| {
            accepted.set(accepted.get() + check(&tree, &input)?);
            Ok(())
        })
        .unwrap();
    // Not vacuous: a good share of the random specs get through and were checked above.
    assert!(
        accepted.get() >= 100,
        "only {} mounts accepted",
        accepted.get()
    );
    eprintln!("accepted {} mounts", accepted.get());
}

/// Any text: parsing never panics, and an accepted subpath is normalized and confined.
#[test]
fn grammar_accepts_only_confined_subpaths() {
    let chars = prop::sample::select(vec![
        'a', 'b', '.', '/', ':', ',', ';', '[', ']', '"', ' ', '\\', '\0', '~', '-', 'é', 'r', 'o',
        'w',
    ]);
    let text = prop::collection::vec(chars, 0..24).prop_map(|c| c.into_iter().collect::<String>());
    let strategy = prop_oneof![text, any::<String>()];
    let config = Config {
        cases: 4000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    runner
        .run(&strategy, |raw| {
            let Ok(specs) = parse_specs(std::slice::from_ref(&raw)) else {
                return Ok(());
            };
            let specs: Vec<MountSpec> = specs;
            for spec in &specs {
                let sub = spec.subpath().to_string();
                prop_assert!(!sub.is_empty() && !sub.starts_with('/') && !sub.ends_with('/'));
                prop_assert!(!sub.contains("//") && !sub.contains(".."));
                prop_assert!(sub.split('/').all(|s| s != "."));
                prop_assert!(
                    sub.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
                );
                prop_assert!(!spec.host().is_empty() && !spec.host().contains(':'));
            }
            for (i, a) in specs.iter().enumerate() {
                for b in &specs[i + 1..] {
                    prop_assert!(
                        !a.subpath().contains(b.subpath()) && !b.subpath().contains(a.subpath())
                    );
                    prop_assert_ne!(a.subpath(), b.subpath());
                }
            }
            Ok(())
        })
        .unwrap();
}
