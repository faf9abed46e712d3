//! The README is the crate's contract: keep its tables in step with the code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: fail loudly

use openwork_gate::policy::addr::{PRIVATE_RANGES, REFUSED_NAMES, REFUSED_RANGES};
use openwork_gate::policy::profile::{CATALOGUE_HOSTS, KNOWN_PROVIDERS};
use openwork_gate::{AuditRecord, EXAMPLE_POLICY, Kind, POLICY_KEYS, Verdict};

const README: &str = include_str!("../README.md");

/// Every `backticked` word of the README, without trailing commas.
fn code_words() -> Vec<String> {
    let mut words = Vec::new();
    for (i, chunk) in README.split('`').enumerate() {
        if i % 2 == 1 {
            words.extend(
                chunk
                    .split_whitespace()
                    .map(|w| w.trim_end_matches(',').to_owned()),
            );
        }
    }
    words
}

fn assert_listed(what: &str, items: impl IntoIterator<Item = impl AsRef<str>>) {
    let words = code_words();
    for item in items {
        let item = item.as_ref();
        assert!(
            words.iter().any(|w| w == item),
            "README misses the {what} {item}"
        );
    }
}

#[test]
fn schema_table_lists_every_key() {
    for key in POLICY_KEYS {
        assert!(
            README.contains(&format!("| `{key}` |")),
            "README's schema table misses {key}"
        );
    }
}

#[test]
fn every_range_name_and_builtin_host_is_listed() {
    assert_listed("refused range", REFUSED_RANGES.iter().map(|(r, _)| *r));
    assert_listed("private range", PRIVATE_RANGES.iter().copied());
    assert_listed("refused name", REFUSED_NAMES.iter().copied());
    assert_listed("catalogue host", CATALOGUE_HOSTS.iter().copied());
    assert_listed("provider host", KNOWN_PROVIDERS.iter().map(|(_, h)| *h));
}

#[test]
fn every_range_is_in_the_row_of_its_class() {
    for (range, class) in REFUSED_RANGES {
        let row = README
            .lines()
            .find(|l| l.starts_with('|') && l.contains(&format!("`{range}`")))
            .unwrap_or_else(|| panic!("no table row for {range}"));
        assert!(row.ends_with(&format!("| {class} |")), "{range}: {row}");
    }
}

#[test]
fn audit_fields_routes_and_flags_are_documented() {
    let mut record = AuditRecord::new(Kind::Inject, "h", 1, Verdict::Allow);
    record.provider = Some("p".into());
    record.error = Some("e".into());
    let line: serde_json::Value = serde_json::from_str(&record.to_json_line()).unwrap();
    assert_listed("audit field", line.as_object().unwrap().keys());
    for route in [
        "GET /health",
        "GET /policy",
        "PUT /policy",
        "POST /allow",
        "PUT /credentials",
        "GET /audit",
    ] {
        assert!(
            README.contains(&format!("| `{route}` |")),
            "README misses {route}"
        );
    }
    for flag in [
        "--proxy",
        "--inject",
        "--control",
        "--forward",
        "OPENWORK_GATE_TOKEN",
        "OPENWORK_GATE_POLICY",
    ] {
        assert!(
            README.contains(&format!("| `{flag}")),
            "README misses {flag}"
        );
    }
}

#[test]
fn readme_shows_the_example_verbatim() {
    assert!(README.contains(&format!("```json\n{EXAMPLE_POLICY}\n```")));
}
