//! The allowlist file: which host folders may be mounted, read-write or not, and extra blocked
//! patterns.
//!
//! Threat: a malformed or mistyped file that silently means something else. The reference
//! treated a syntax error, a wrong shape and a missing file alike ("create the file"), ignored
//! unknown keys (so `"allowReadwrite": true` was quietly read-only, and `"blockedPattern"` was
//! quietly no patterns), and crashed on a root without `path`. Here the JSON syntax error is
//! shown with line and column, and every key and type is checked, with the entry named
//! (`allowedRoots[1].path`). Roots must be absolute or `~`-based: a relative root would depend
//! on the directory openwork happens to start in.
//!
//! Left open: the file's own permissions and owner are not checked (anyone who can write it
//! decides what is mounted; keep it in your home, mode 0600 or 0644). Duplicate keys inside one
//! JSON object are not detected (the last one wins). Roots are not resolved here: `~` needs the
//! home folder and resolution needs the filesystem, so both happen in [`crate::validate`].

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, SchemaProblem};
use crate::patterns::check_pattern;

/// The environment variable that holds `--sandbox-mount` specs (read by the CLI, not here).
pub const SPECS_ENV: &str = "OPENWORK_SANDBOX_MOUNT";
/// The environment variable that overrides the allowlist path (read by the CLI, not here).
pub const ALLOWLIST_ENV: &str = "OPENWORK_SANDBOX_MOUNT_ALLOWLIST";

/// The example shown when the file is missing or malformed, and in the README.
pub const EXAMPLE_ALLOWLIST: &str = r#"{
  "allowedRoots": [
    { "path": "~/projects", "allowReadWrite": true, "description": "Development projects" },
    { "path": "~/Documents", "allowReadWrite": false, "description": "Documents (read-only)" }
  ],
  "blockedPatterns": ["*password*", "*secret*", "*token*"]
}"#;

const TOP_KEYS: &[&str] = &["$schema", "allowedRoots", "blockedPatterns"];
const ROOT_KEYS: &[&str] = &["path", "allowReadWrite", "description"];

/// `~/.config/openwork/sandbox-mount-allowlist.json` under `home`.
pub fn default_allowlist_path(home: &Path) -> PathBuf {
    home.join(".config/openwork/sandbox-mount-allowlist.json")
}

/// The allowlist path: `override_path` (the value of [`ALLOWLIST_ENV`]) resolved against `cwd`
/// when given and non-empty, else [`default_allowlist_path`].
pub fn allowlist_path(override_path: Option<&Path>, home: &Path, cwd: &Path) -> PathBuf {
    match override_path {
        Some(p) if !p.as_os_str().is_empty() => cwd.join(p),
        _ => default_allowlist_path(home),
    }
}

/// One allowed root as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedRoot {
    /// Absolute, `~` or `~/…`; resolved to a real path at validation.
    path: String,
    /// Whether mounts under this root may be read-write (`allowReadWrite: true`).
    allow_read_write: bool,
    /// Free text for humans.
    description: Option<String>,
}

impl AllowedRoot {
    /// The path as written.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether mounts under this root may be read-write.
    pub fn allow_read_write(&self) -> bool {
        self.allow_read_write
    }

    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

/// A parsed, schema-checked allowlist file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    /// How to name the file in messages (its path, or what the caller passed).
    source_name: String,
    /// The file it came from, if any; protected from being mounted.
    file: Option<PathBuf>,
    /// Allowed roots in file order.
    roots: Vec<AllowedRoot>,
    /// The file's own blocked patterns (added to the built-in ones).
    blocked_patterns: Vec<String>,
}

impl Allowlist {
    /// Reads and checks the file. A missing file is `Ok(None)`: no extra mount is allowed, and
    /// [`crate::refuse_without_allowlist`] says how to create one.
    pub fn load(path: &Path) -> Result<Option<Self>, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::AllowlistRead {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut allowlist = Self::from_json(&text, &path.display().to_string())?;
        allowlist.file = Some(path.to_owned());
        Ok(Some(allowlist))
    }

    /// Parses and checks JSON text; `source_name` names it in messages.
    pub fn from_json(text: &str, source_name: &str) -> Result<Self, Error> {
        let value: Value = serde_json::from_str(text).map_err(|e| Error::AllowlistSyntax {
            source_name: source_name.to_owned(),
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        })?;
        let schema = |at: &str, problem: SchemaProblem| Error::AllowlistSchema {
            source_name: source_name.to_owned(),
            at: at.to_owned(),
            problem,
        };
        let top = as_object(&value).map_err(|p| schema("(top level)", p))?;
        check_keys(top, TOP_KEYS).map_err(|p| schema("(top level)", p))?;

        let roots_value = top.get("allowedRoots").ok_or_else(|| {
            schema(
                "(top level)",
                SchemaProblem::MissingKey {
                    key: "allowedRoots",
                },
            )
        })?;
        let roots_array = as_array(roots_value).map_err(|p| schema("allowedRoots", p))?;
        let mut roots = Vec::with_capacity(roots_array.len());
        for (i, entry) in roots_array.iter().enumerate() {
            let at = format!("allowedRoots[{i}]");
            roots.push(parse_root(entry).map_err(|(key, p)| schema(&format!("{at}{key}"), p))?);
        }

        let mut blocked_patterns = Vec::new();
        if let Some(patterns) = top.get("blockedPatterns") {
            let patterns = as_array(patterns).map_err(|p| schema("blockedPatterns", p))?;
            for (i, pattern) in patterns.iter().enumerate() {
                let at = format!("blockedPatterns[{i}]");
                let Value::String(pattern) = pattern else {
                    return Err(schema(&at, wrong_type("a string", pattern)));
                };
                check_pattern(pattern).map_err(|p| schema(&at, p))?;
                blocked_patterns.push(pattern.clone());
            }
        }
        Ok(Self {
            source_name: source_name.to_owned(),
            file: None,
            roots,
            blocked_patterns,
        })
    }

    /// How the file is named in messages.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The file it was loaded from, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Allowed roots in file order.
    pub fn roots(&self) -> &[AllowedRoot] {
        &self.roots
    }

    /// The file's own blocked patterns (the built-in ones always apply too).
    pub fn blocked_patterns(&self) -> &[String] {
        &self.blocked_patterns
    }
}

/// Parses one `allowedRoots` entry; the error carries the key suffix (`.path`) and the problem.
fn parse_root(entry: &Value) -> Result<AllowedRoot, (String, SchemaProblem)> {
    let object = as_object(entry).map_err(|p| (String::new(), p))?;
    check_keys(object, ROOT_KEYS).map_err(|p| (String::new(), p))?;
    let path = match object.get("path") {
        None => return Err((String::new(), SchemaProblem::MissingKey { key: "path" })),
        Some(Value::String(path)) => path.trim().to_owned(),
        Some(other) => return Err((".path".to_owned(), wrong_type("a string", other))),
    };
    check_root_path(&path).map_err(|p| (".path".to_owned(), p))?;
    let allow_read_write = match object.get("allowReadWrite") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err((
                ".allowReadWrite".to_owned(),
                wrong_type("true or false", other),
            ));
        }
    };
    let description = match object.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.clone()),
        Some(other) => return Err((".description".to_owned(), wrong_type("a string", other))),
    };
    Ok(AllowedRoot {
        path,
        allow_read_write,
        description,
    })
}

fn check_root_path(path: &str) -> Result<(), SchemaProblem> {
    if path.is_empty() {
        return Err(SchemaProblem::EmptyPath);
    }
    if path.contains('\0') {
        return Err(SchemaProblem::Nul);
    }
    if path == "~" || path.starts_with("~/") || Path::new(path).is_absolute() {
        Ok(())
    } else {
        Err(SchemaProblem::RelativeRoot {
            path: path.to_owned(),
        })
    }
}

fn as_object(value: &Value) -> Result<&Map<String, Value>, SchemaProblem> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(wrong_type("an object", other)),
    }
}

fn as_array(value: &Value) -> Result<&Vec<Value>, SchemaProblem> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(wrong_type("an array", other)),
    }
}

fn check_keys(
    object: &Map<String, Value>,
    allowed: &'static [&'static str],
) -> Result<(), SchemaProblem> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(SchemaProblem::UnknownKey {
            key: key.clone(),
            allowed,
        }),
        None => Ok(()),
    }
}

fn wrong_type(expected: &'static str, found: &Value) -> SchemaProblem {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    SchemaProblem::WrongType { expected, found }
}

/// serde_json's message without its trailing " at line L column C" (shown separately).
pub(crate) fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_err(text: &str) -> (String, SchemaProblem) {
        match Allowlist::from_json(text, "allow.json") {
            Err(Error::AllowlistSchema { at, problem, .. }) => (at, problem),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn the_example_parses() {
        let a = Allowlist::from_json(EXAMPLE_ALLOWLIST, "example").unwrap();
        assert_eq!(a.roots().len(), 2);
        assert_eq!(
            (a.roots()[0].path(), a.roots()[0].allow_read_write()),
            ("~/projects", true)
        );
        assert_eq!(a.roots()[1].description(), Some("Documents (read-only)"));
        assert_eq!(a.blocked_patterns(), ["*password*", "*secret*", "*token*"]);
    }

    #[test]
    fn minimal_file() {
        let a = Allowlist::from_json(r#"{"allowedRoots":[{"path":"/srv"}]}"#, "x").unwrap();
        assert!(!a.roots()[0].allow_read_write());
        assert!(a.blocked_patterns().is_empty());
        assert!(
            Allowlist::from_json(r#"{"allowedRoots":[]}"#, "x")
                .unwrap()
                .roots()
                .is_empty()
        );
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = Allowlist::from_json("{\n  \"allowedRoots\": [,]\n}", "allow.json").unwrap_err();
        assert!(
            matches!(
                e,
                Error::AllowlistSyntax {
                    line: 2,
                    column: 20,
                    ..
                }
            ),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with(
                "allow.json:2:20: the sandbox mount allowlist is not valid JSON: expected value."
            ),
            "{text}"
        );
    }

    #[test]
    fn schema_errors_name_the_entry() {
        assert_eq!(
            schema_err("[]"),
            (
                "(top level)".into(),
                SchemaProblem::WrongType {
                    expected: "an object",
                    found: "an array"
                }
            )
        );
        assert_eq!(
            schema_err("{}"),
            (
                "(top level)".into(),
                SchemaProblem::MissingKey {
                    key: "allowedRoots"
                }
            )
        );
        let (at, p) = schema_err(r#"{"allowedRoots":[],"blockedPattern":[]}"#);
        assert_eq!(at, "(top level)");
        assert!(matches!(p, SchemaProblem::UnknownKey { ref key, .. } if key == "blockedPattern"));
        assert_eq!(schema_err(r#"{"allowedRoots":{}}"#).0, "allowedRoots");
        assert_eq!(
            schema_err(r#"{"allowedRoots":[{"path":"/a"},{}]}"#),
            (
                "allowedRoots[1]".into(),
                SchemaProblem::MissingKey { key: "path" }
            )
        );
        let (at, p) = schema_err(r#"{"allowedRoots":[{"path":"/a","allowReadwrite":true}]}"#);
        assert_eq!(at, "allowedRoots[0]");
        assert!(matches!(p, SchemaProblem::UnknownKey { ref key, .. } if key == "allowReadwrite"));
        assert_eq!(
            schema_err(r#"{"allowedRoots":[{"path":"/a","allowReadWrite":"true"}]}"#),
            (
                "allowedRoots[0].allowReadWrite".into(),
                SchemaProblem::WrongType {
                    expected: "true or false",
                    found: "a string"
                }
            )
        );
        assert_eq!(
            schema_err(r#"{"allowedRoots":[{"path":3}]}"#).0,
            "allowedRoots[0].path"
        );
        assert_eq!(
            schema_err(r#"{"allowedRoots":[{"path":"projects"}]}"#),
            (
                "allowedRoots[0].path".into(),
                SchemaProblem::RelativeRoot {
                    path: "projects".into()
                }
            )
        );
        assert_eq!(
            schema_err(r#"{"allowedRoots":[{"path":"~me/x"}]}"#).1,
            SchemaProblem::RelativeRoot {
                path: "~me/x".into()
            }
        );
        assert_eq!(
            schema_err(r#"{"allowedRoots":[{"path":" "}]}"#).1,
            SchemaProblem::EmptyPath
        );
        assert_eq!(
            schema_err(r#"{"allowedRoots":[],"blockedPatterns":["a",""]}"#),
            ("blockedPatterns[1]".into(), SchemaProblem::EmptyPattern)
        );
        assert_eq!(
            schema_err(r#"{"allowedRoots":[],"blockedPatterns":[1]}"#).0,
            "blockedPatterns[0]"
        );
        assert_eq!(
            schema_err(r#"{"allowedRoots":[],"blockedPatterns":"x"}"#).0,
            "blockedPatterns"
        );
    }

    #[test]
    fn schema_error_text() {
        let e = Allowlist::from_json(r#"{"allowedRoots":[{"path":"projects"}]}"#, "/h/allow.json")
            .unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("/h/allow.json: allowedRoots[0].path: the root \"projects\" is relative; write an absolute path or one starting with \"~/\". Expected a file like:\n{"), "{text}");
    }

    #[test]
    fn load_missing_is_none_and_unreadable_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Allowlist::load(&dir.path().join("nope.json")).unwrap(),
            None
        );
        assert!(matches!(
            Allowlist::load(dir.path()),
            Err(Error::AllowlistRead { .. })
        ));
        let file = dir.path().join("a.json");
        std::fs::write(&file, r#"{"allowedRoots":[]}"#).unwrap();
        let a = Allowlist::load(&file).unwrap().unwrap();
        assert_eq!(a.file(), Some(file.as_path()));
        assert_eq!(a.source_name(), file.display().to_string());
    }

    #[test]
    fn paths() {
        let home = Path::new("/home/me");
        let cwd = Path::new("/work");
        let default = PathBuf::from("/home/me/.config/openwork/sandbox-mount-allowlist.json");
        assert_eq!(default_allowlist_path(home), default);
        assert_eq!(allowlist_path(None, home, cwd), default);
        assert_eq!(allowlist_path(Some(Path::new("")), home, cwd), default);
        assert_eq!(
            allowlist_path(Some(Path::new("a.json")), home, cwd),
            PathBuf::from("/work/a.json")
        );
        assert_eq!(
            allowlist_path(Some(Path::new("/x/a.json")), home, cwd),
            PathBuf::from("/x/a.json")
        );
    }
}
