//! The README is the crate's contract: keep its lists in step with the code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: fail loudly

use openwork_allowlist::{
    DEFAULT_BLOCKED_PATTERNS, ENGINE_SOCKETS, EXAMPLE_ALLOWLIST, PROTECTED_TREES,
};

const README: &str = include_str!("../README.md");

/// Every `backticked` word of the README.
fn code_words() -> Vec<&'static str> {
    let mut words = Vec::new();
    for (i, chunk) in README.split('`').enumerate() {
        if i % 2 == 1 {
            words.extend(chunk.split_whitespace());
        }
    }
    words
}

#[test]
fn readme_lists_every_blocked_pattern() {
    let words = code_words();
    for pattern in DEFAULT_BLOCKED_PATTERNS {
        assert!(
            words.contains(pattern),
            "README misses the blocked pattern {pattern}"
        );
    }
}

#[test]
fn readme_lists_every_protected_path_and_engine_socket() {
    let words: Vec<String> = code_words()
        .iter()
        .map(|w| w.trim_end_matches(',').to_owned())
        .collect();
    for (path, _) in PROTECTED_TREES {
        assert!(
            words.iter().any(|w| w == path),
            "README misses the protected path {path}"
        );
    }
    for socket in ENGINE_SOCKETS {
        assert!(
            words.iter().any(|w| w == socket),
            "README misses the engine socket {socket}"
        );
    }
}

#[test]
fn readme_shows_the_example_verbatim() {
    assert!(README.contains(&format!("```json\n{EXAMPLE_ALLOWLIST}\n```")));
}
