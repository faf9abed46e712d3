//! JSONC (JSON with comments and trailing commas) through the `jsonc-parser` crate: reading
//! `opencode.json[c]` into a value and merging top-level keys into the file's text without
//! losing its comments, key order or formatting (reference §A12 workspace config).
//!
//! Threat: a config edit that silently rewrites what a person wrote (comments dropped, keys
//! reordered) or that writes a file the agent then fails to read. Edits go through the
//! parser's concrete syntax tree, touching only the properties patched; a file that does not
//! parse is refused with its line and column instead of being overwritten.

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstRootNode};
use serde_json::{Map, Value};

/// Why a JSONC text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} is not valid JSONC at line {line}, column {column}: {reason}")]
pub struct JsoncError {
    /// The file's workspace-relative name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What the parser expected.
    pub reason: String,
}

/// Comments and trailing commas, nothing looser (no single quotes, missing commas, hex…): what
/// opencode itself accepts, so a file we write is a file it reads.
fn options() -> ParseOptions {
    ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

fn error(file: &str, err: &jsonc_parser::errors::ParseError) -> JsoncError {
    JsoncError {
        file: file.to_owned(),
        line: err.line_display(),
        column: err.column_display(),
        reason: err.kind().to_string(),
    }
}

/// Parses `text` (named `file` in errors); an empty text is `{}`.
pub fn parse(file: &str, text: &str) -> Result<Value, JsoncError> {
    let value: Option<Value> =
        jsonc_parser::parse_to_serde_value(text, &options()).map_err(|e| error(file, &e))?;
    Ok(value.unwrap_or_else(|| Value::Object(Map::new())))
}

/// Merges `patch`'s top-level keys into the object of `text`: a key present is replaced in
/// place, a new key is appended, a `null` removes the key. Everything else of the text
/// (comments, order, indentation) is kept. A root that is not an object is refused.
pub fn merge_top_level(
    file: &str,
    text: &str,
    patch: &Map<String, Value>,
) -> Result<String, JsoncError> {
    let root = CstRootNode::parse(text, &options()).map_err(|e| error(file, &e))?;
    let object = match root.value() {
        None => root.object_value_or_set(),
        Some(_) => root.object_value().ok_or_else(|| JsoncError {
            file: file.to_owned(),
            line: 1,
            column: 1,
            reason: "the top level is not an object".to_owned(),
        })?,
    };
    for (key, value) in patch {
        match (object.get(key), value) {
            (Some(prop), Value::Null) => prop.remove(),
            (None, Value::Null) => {}
            (Some(prop), value) => prop.set_value(input(value)),
            (None, value) => {
                object.append(key, input(value));
            }
        }
    }
    let mut out = root.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Sets (`Some`) or removes (`None`) the value at `path` (object keys from the top), creating
/// missing objects on the way; the rest of the text is kept as written.
pub fn set_in(
    file: &str,
    text: &str,
    path: &[&str],
    value: Option<&Value>,
) -> Result<String, JsoncError> {
    let not_object = |at: &str| JsoncError {
        file: file.to_owned(),
        line: 1,
        column: 1,
        reason: format!("{at} is not an object"),
    };
    let root = CstRootNode::parse(text, &options()).map_err(|e| error(file, &e))?;
    let mut object = match root.value() {
        None => root.object_value_or_set(),
        Some(_) => root
            .object_value()
            .ok_or_else(|| not_object("the top level"))?,
    };
    let Some((last, parents)) = path.split_last() else {
        return Ok(text.to_owned());
    };
    for key in parents {
        object = match object.get(key) {
            Some(prop) => prop.object_value().ok_or_else(|| not_object(key))?,
            None if value.is_none() => return Ok(root.to_string()),
            None => object.object_value_or_set(key),
        };
    }
    match (object.get(last), value) {
        (Some(prop), None) => prop.remove(),
        (None, None) => {}
        (Some(prop), Some(v)) => prop.set_value(input(v)),
        (None, Some(v)) => {
            object.append(last, input(v));
        }
    }
    let mut out = root.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// A `serde_json` value as the parser's input value.
fn input(value: &Value) -> CstInputValue {
    match value {
        Value::Null => CstInputValue::Null,
        Value::Bool(b) => CstInputValue::Bool(*b),
        Value::Number(n) => CstInputValue::Number(n.to_string()),
        Value::String(s) => CstInputValue::String(s.clone()),
        Value::Array(items) => CstInputValue::Array(items.iter().map(input).collect()),
        Value::Object(map) => {
            CstInputValue::Object(map.iter().map(|(k, v)| (k.clone(), input(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_keeps_comments_order_and_formatting() {
        let text = "{\n  // the model we pay for\n  \"model\": \"a/b\",\n  /* keep */ \"theme\": \"dark\",\n  \"plugin\": [\"x\"], // trailing\n}\n";
        let patch = json!({"theme": "light", "share": "manual", "plugin": null});
        let out = merge_top_level("opencode.jsonc", text, patch.as_object().unwrap()).unwrap();
        assert!(out.contains("// the model we pay for"), "{out}");
        assert!(out.contains("/* keep */"), "{out}");
        assert!(!out.contains("plugin"), "{out}");
        let model = out.find("\"model\"").unwrap();
        let theme = out.find("\"theme\": \"light\"").unwrap();
        let share = out.find("\"share\"").unwrap();
        assert!(model < theme && theme < share, "{out}");
        let v = parse("opencode.jsonc", &out).unwrap();
        assert_eq!(
            v,
            json!({"model": "a/b", "theme": "light", "share": "manual"})
        );
    }

    #[test]
    fn set_in_edits_nested_keys_only() {
        let text = "{\n  // servers\n  \"mcp\": {\n    \"a\": {\"type\": \"remote\", \"url\": \"u\"}, // first\n  },\n}\n";
        let out = set_in(
            "o.jsonc",
            text,
            &["mcp", "b"],
            Some(&json!({"type": "local"})),
        )
        .unwrap();
        assert!(
            out.contains("// servers") && out.contains("// first"),
            "{out}"
        );
        let out = set_in("o.jsonc", &out, &["mcp", "a"], None).unwrap();
        assert_eq!(
            parse("o", &out).unwrap(),
            json!({"mcp": {"b": {"type": "local"}}})
        );
        let out = set_in("o.json", "", &["mcp", "x"], Some(&json!(1))).unwrap();
        assert_eq!(parse("o", &out).unwrap(), json!({"mcp": {"x": 1}}));
    }

    #[test]
    fn empty_text_becomes_an_object_and_errors_have_positions() {
        let out = merge_top_level(
            "opencode.json",
            "",
            json!({"a": {"b": [1, true]}}).as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(
            parse("opencode.json", &out).unwrap(),
            json!({"a": {"b": [1, true]}})
        );
        let err = parse("opencode.json", "{\n  \"a\": 1,\n  \"b\" 2\n}").unwrap_err();
        assert_eq!((err.line, err.file.as_str()), (3, "opencode.json"));
        assert!(merge_top_level("x.json", "[1]", &Map::new()).is_err());
        assert!(merge_top_level("x.json", "{\"a\": }", &Map::new()).is_err());
        assert_eq!(parse("x", " ").unwrap(), json!({}));
    }
}
