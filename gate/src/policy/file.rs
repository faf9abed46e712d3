//! The policy file's schema: parse JSON text into a [`PolicyFile`], listing every problem.
//!
//! Threat: a typo that silently changes meaning (`"privateallow"` ignored, `"mode": "Audit"`
//! read as enforce, a URL whose path was dropped). Unknown keys and wrong types are errors, JSON
//! syntax errors carry serde_json's line and column, and every refused entry is listed with its
//! index, so `openwork policy check` explains all of them at once.
//!
//! Left open: duplicate keys in one object are not detected (serde_json keeps the last), and
//! the file's owner and mode are not checked.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::policy::addr::{classify, inside_private};
use crate::policy::entry::Entry;
use crate::policy::error::{PolicyError, PrivateAllowError, Problem, SchemaProblem};

/// The environment variable that overrides the policy path (read by the CLI, not here).
pub const POLICY_ENV: &str = "OPENWORK_SANDBOX_POLICY";

/// `~/.config/openwork/sandbox-policy.json` under `home`.
pub fn default_policy_path(home: &Path) -> PathBuf {
    home.join(".config/openwork/sandbox-policy.json")
}

/// The policy path: `--sandbox-policy` / [`POLICY_ENV`] resolved against `cwd` when given and
/// non-empty, else [`default_policy_path`].
pub fn policy_path(override_path: Option<&Path>, home: &Path, cwd: &Path) -> PathBuf {
    match override_path {
        Some(p) if !p.as_os_str().is_empty() => cwd.join(p),
        _ => default_policy_path(home),
    }
}

/// The keys of the file, as the README's table lists them.
pub const POLICY_KEYS: &[&str] = &["$schema", "mode", "defaults", "allow", "privateAllow"];
const KEYS_TEXT: &str = "\"$schema\", \"mode\", \"defaults\", \"allow\", \"privateAllow\"";

/// An example file, shown in the README verbatim.
pub const EXAMPLE_POLICY: &str = r#"{
  "mode": "enforce",
  "allow": ["api.github.com", "*.githubusercontent.com", "pypi.org", "files.pythonhosted.org"],
  "privateAllow": ["192.168.1.20"]
}"#;

/// What to do with a destination no rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse it (403) and report it, so the host can offer "allow for this run".
    #[default]
    Enforce,
    /// Let it through and record that it would have been refused. Always-refused addresses
    /// (loopback, metadata…) and unlisted private addresses stay refused.
    Audit,
}

/// A parsed, checked policy file (before merging with the built-in profile and flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    /// `mode`, default `enforce`.
    pub mode: Mode,
    /// `defaults`, default `true`: include the built-in opencode profile.
    pub defaults: bool,
    /// `allow` entries in file order.
    pub allow: Vec<Entry>,
    /// `privateAllow` addresses and CIDRs (an address is a /32 or /128).
    pub private_allow: Vec<IpNet>,
}

impl Default for PolicyFile {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            defaults: true,
            allow: Vec::new(),
            private_allow: Vec::new(),
        }
    }
}

impl PolicyFile {
    /// Reads and checks the file. A missing file is `Ok(None)` (the default policy applies).
    pub fn load(path: &Path) -> Result<Option<Self>, PolicyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_json(&text, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(PolicyError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Parses and checks JSON text; `source_name` names it in messages. Every problem is
    /// reported, not only the first.
    pub fn from_json(text: &str, source_name: &str) -> Result<Self, PolicyError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PolicyError::Syntax {
            source_name: source_name.to_owned(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        })?;
        let mut problems = Vec::new();
        let mut add = |at: &str, problem: SchemaProblem| {
            problems.push(Problem {
                at: at.to_owned(),
                problem,
            })
        };
        let mut file = Self::default();
        let Value::Object(top) = &value else {
            add(
                "(top level)",
                SchemaProblem::NotObject {
                    found: type_name(&value),
                },
            );
            return Err(invalid(source_name, problems));
        };
        check_keys(top, &mut add);
        match top.get("mode") {
            None => {}
            Some(Value::String(m)) if m == "enforce" => file.mode = Mode::Enforce,
            Some(Value::String(m)) if m == "audit" => file.mode = Mode::Audit,
            Some(Value::String(m)) => add("mode", SchemaProblem::BadMode { value: m.clone() }),
            Some(other) => add("mode", wrong_type("a string", other)),
        }
        match top.get("defaults") {
            None => {}
            Some(Value::Bool(b)) => file.defaults = *b,
            Some(other) => add("defaults", wrong_type("true or false", other)),
        }
        for (at, item) in strings(top, "allow", &mut add) {
            match item.and_then(|text| Entry::parse(&text).map_err(Into::into)) {
                Ok(entry) => file.allow.push(entry),
                Err(problem) => add(&at, problem),
            }
        }
        for (at, item) in strings(top, "privateAllow", &mut add) {
            match item.and_then(|text| parse_private(&text).map_err(Into::into)) {
                Ok(net) => file.private_allow.push(net),
                Err(problem) => add(&at, problem),
            }
        }
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(invalid(source_name, problems))
        }
    }
}

/// Parses one `privateAllow` item: an address or CIDR wholly inside one private range.
pub fn parse_private(text: &str) -> Result<IpNet, PrivateAllowError> {
    let value = text.trim();
    let net = match value.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match value.parse::<std::net::IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => {
                return Err(PrivateAllowError::Syntax {
                    value: value.to_owned(),
                });
            }
        },
    };
    let class = classify(net.network());
    if class.always_refused() {
        return Err(PrivateAllowError::AlwaysRefused {
            value: value.to_owned(),
            class,
        });
    }
    if !inside_private(&net) {
        return Err(PrivateAllowError::NotPrivate {
            value: value.to_owned(),
        });
    }
    Ok(net)
}

fn invalid(source_name: &str, problems: Vec<Problem>) -> PolicyError {
    PolicyError::Invalid {
        source_name: source_name.to_owned(),
        problems,
    }
}

fn check_keys(top: &Map<String, Value>, add: &mut impl FnMut(&str, SchemaProblem)) {
    for key in top.keys() {
        if !POLICY_KEYS.contains(&key.as_str()) {
            add(
                "(top level)",
                SchemaProblem::UnknownKey {
                    key: key.clone(),
                    allowed: KEYS_TEXT,
                },
            );
        }
    }
}

/// The items of array `key` with their place (`allow[2]`): the string, or the type problem.
fn strings(
    top: &Map<String, Value>,
    key: &str,
    add: &mut impl FnMut(&str, SchemaProblem),
) -> Vec<(String, Result<String, SchemaProblem>)> {
    let Some(value) = top.get(key) else {
        return Vec::new();
    };
    let Value::Array(items) = value else {
        add(key, wrong_type("an array of strings", value));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{key}[{i}]");
        match item {
            Value::String(s) => out.push((at, Ok(s.clone()))),
            other => out.push((at, Err(wrong_type("a string", other)))),
        }
    }
    out
}

fn wrong_type(expected: &'static str, found: &Value) -> SchemaProblem {
    SchemaProblem::WrongType {
        expected,
        found: type_name(found),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde_json appends " at line L column C"; the error shows those in `file:L:C:` already.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_example_parses() {
        let file = PolicyFile::from_json(EXAMPLE_POLICY, "example").unwrap();
        assert_eq!(file.allow.len(), 4);
        assert_eq!(file.private_allow.len(), 1);
        assert!(file.defaults);
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = PolicyFile::from_json("{\n  \"allow\": [\"a.com\",]\n}", "p.json").unwrap_err();
        match &err {
            PolicyError::Syntax { line, column, .. } => assert_eq!((*line, *column), (2, 21)),
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(text.starts_with("p.json:2:21: "), "{text}");
        assert!(text.contains("no trailing commas"), "{text}");
    }

    #[test]
    fn every_problem_is_listed() {
        let text = r#"{"mode":"Audit","allow":["*","localhost",7,"ok.example.com"],
            "privateAllow":["8.8.8.8","127.0.0.1","10.0.0.0/7","nope"],"alow":[]}"#;
        let err = PolicyFile::from_json(text, "p.json").unwrap_err();
        let PolicyError::Invalid { problems, .. } = &err else {
            panic!("{err:?}")
        };
        let places: Vec<&str> = problems.iter().map(|p| p.at.as_str()).collect();
        assert_eq!(
            places,
            [
                "(top level)",
                "mode",
                "allow[0]",
                "allow[1]",
                "allow[2]",
                "privateAllow[0]",
                "privateAllow[1]",
                "privateAllow[2]",
                "privateAllow[3]"
            ]
        );
        let text = err.to_string();
        assert!(text.contains("unknown key \"alow\""), "{text}");
        assert!(text.contains("there is no allow-all"), "{text}");
    }

    #[test]
    fn private_allow_items() {
        assert_eq!(parse_private("192.168.1.20").unwrap().prefix_len(), 32);
        assert!(parse_private("10.1.0.0/16").is_ok());
        assert!(parse_private("fd00::/8").is_ok());
        assert!(matches!(
            parse_private("169.254.169.254"),
            Err(PrivateAllowError::AlwaysRefused { .. })
        ));
        assert!(matches!(
            parse_private("0.0.0.0/0"),
            Err(PrivateAllowError::AlwaysRefused { .. })
        ));
        assert!(matches!(
            parse_private("1.1.1.1"),
            Err(PrivateAllowError::NotPrivate { .. })
        ));
    }
}
