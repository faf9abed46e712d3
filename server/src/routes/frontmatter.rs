//! The small frontmatter of skill and command files (`---\nkey: value\n---\nbody`): read the
//! flat `key: value` lines and write them back with every value quoted.
//!
//! Threat: a value (a description, an agent name) that injects extra frontmatter keys or ends
//! the block early. Written values are JSON-quoted strings on one line (valid YAML), so a
//! newline or `---` in a value stays inside its quotes.

use std::collections::BTreeMap;

/// Splits `text` into its frontmatter keys and the body after it.
pub(crate) fn parse(text: &str) -> (BTreeMap<String, String>, &str) {
    let mut keys = BTreeMap::new();
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (keys, text);
    };
    let mut offset = text.len() - rest.len();
    for line in rest.split_inclusive('\n') {
        offset += line.len();
        let trimmed = line.trim_end();
        if trimmed == "---" {
            let body = &text[offset..];
            return (keys, body.strip_prefix('\n').unwrap_or(body));
        }
        if let Some((key, value)) = trimmed.split_once(':') {
            keys.insert(key.trim().to_owned(), unquote(value.trim()));
        }
    }
    // No closing line: not frontmatter after all.
    (BTreeMap::new(), text)
}

fn unquote(value: &str) -> String {
    if value.starts_with('"') {
        serde_json::from_str::<String>(value).unwrap_or_else(|_| value.trim_matches('"').to_owned())
    } else if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        value[1..value.len() - 1].replace("''", "'")
    } else {
        value.to_owned()
    }
}

/// `---` + one quoted `key: "value"` line per pair + `---` + a blank line + `body`.
pub(crate) fn render(pairs: &[(&str, &str)], body: &str) -> String {
    let mut out = String::from("---\n");
    for (key, value) in pairs {
        let quoted = serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned());
        out.push_str(&format!("{key}: {quoted}\n"));
    }
    out.push_str("---\n\n");
    out.push_str(body);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_injection() {
        let text = render(
            &[("name", "x"), ("description", "a\n---\nevil: 1")],
            "Body\n",
        );
        let (keys, body) = parse(&text);
        assert_eq!(keys["description"], "a\n---\nevil: 1");
        assert!(!keys.contains_key("evil"));
        assert_eq!(body, "Body\n");
        let (keys, body) = parse("---\ndescription: plain words\nagent: 'b''s'\n---\nT");
        assert_eq!(
            (keys["description"].as_str(), keys["agent"].as_str(), body),
            ("plain words", "b's", "T")
        );
        assert_eq!(parse("no frontmatter").1, "no frontmatter");
    }
}
