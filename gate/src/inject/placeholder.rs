//! What the agent's container gets instead of a key: a placeholder that passes the provider
//! SDK's format checks, and an opencode config fragment that points each provider at the gate.
//!
//! Threat: the real key reaching the agent (its environment, argv, config, files). The agent
//! holds only these placeholders, which are public constants and worth nothing outside the
//! gate; the gate swaps them for the real key on the way out ([`super`]).
//!
//! Left open: the agent can still *use* the key through the gate (that is the point); it can
//! spend the account's quota and send data to the provider, but it cannot copy the key.

use serde_json::{Map, Value, json};

/// The route prefix of one provider on the injection listener: `/p/<id>`.
pub fn route_prefix(provider: &str) -> String {
    format!("/p/{provider}")
}

/// A placeholder key with the shape the provider's SDK expects: Anthropic keys start
/// `sk-ant-api03-` (108 characters), OpenAI-style keys `sk-`.
pub fn placeholder_key(provider: &str) -> String {
    if provider == "anthropic" {
        let head = "sk-ant-api03-openwork-placeholder-";
        let pad = 106usize.saturating_sub(head.len());
        format!("{head}{}AA", "x".repeat(pad))
    } else {
        let id: String = provider
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("sk-openwork-placeholder-{id}-{}", "x".repeat(24))
    }
}

/// Whether a value is one of the placeholders (used to tell the agent's header apart).
pub fn is_placeholder(value: &str) -> bool {
    value.contains("openwork-placeholder")
}

/// The `OPENCODE_CONFIG_CONTENT` fragment for the agent: for each provider id,
/// `options.baseURL` = `<gate_url>/p/<id>` and `options.apiKey` = its placeholder. opencode
/// merges it over its other config (later wins), so a provider declared elsewhere with `npm`
/// and models keeps those.
pub fn opencode_config_fragment<'a>(
    gate_url: &str,
    providers: impl IntoIterator<Item = &'a str>,
) -> Value {
    let base = gate_url.trim_end_matches('/');
    let mut map = Map::new();
    for id in providers {
        map.insert(
            id.to_owned(),
            json!({"options": {
                "baseURL": format!("{base}{}", route_prefix(id)),
                "apiKey": placeholder_key(id),
            }}),
        );
    }
    json!({ "provider": Value::Object(map) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_look_like_keys() {
        let ant = placeholder_key("anthropic");
        assert!(ant.starts_with("sk-ant-api03-"));
        assert_eq!(ant.len(), 108);
        assert!(ant.ends_with("AA"));
        assert!(placeholder_key("openai").starts_with("sk-"));
        assert!(placeholder_key("my lan").contains("my-lan"));
        assert!(is_placeholder(&ant));
    }

    #[test]
    fn fragment_points_at_the_gate() {
        let v = opencode_config_fragment("http://gate:3129/", ["anthropic", "corp"]);
        assert_eq!(
            v["provider"]["anthropic"]["options"]["baseURL"],
            "http://gate:3129/p/anthropic"
        );
        assert_eq!(
            v["provider"]["corp"]["options"]["apiKey"],
            placeholder_key("corp")
        );
    }
}
