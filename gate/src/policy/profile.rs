//! The built-in opencode profile: what opencode needs to work at all, allowed by default.
//!
//! Threat: a default so narrow that users switch the gate off, or so wide that it lets the
//! agent reach arbitrary hosts. The profile holds only the model catalogue opencode fetches at
//! start and the APIs of the providers opencode ships with; everything else is an explicit
//! entry, a `--sandbox-allow` or an approval.
//!
//! Left open: a provider API host is a general-purpose endpoint (data can be sent to it under
//! any account). The npm registry (opencode's background plugin install) is deliberately not in
//! the profile: it serves arbitrary code; add `registry.npmjs.org` if you want that install.

use serde_json::Value;

use crate::policy::entry::Entry;

/// Hosts opencode 1.18 fetches by itself: the models.dev catalogue (`GET
/// https://models.opencode.ai/api.json` at start and hourly) and its origin.
pub const CATALOGUE_HOSTS: &[&str] = &["models.opencode.ai", "models.dev"];

/// Well-known providers: opencode's provider id and its API host (HTTPS).
pub const KNOWN_PROVIDERS: &[(&str, &str)] = &[
    ("anthropic", "api.anthropic.com"),
    ("openai", "api.openai.com"),
    ("openrouter", "openrouter.ai"),
    ("google", "generativelanguage.googleapis.com"),
    ("mistral", "api.mistral.ai"),
    ("groq", "api.groq.com"),
    ("deepseek", "api.deepseek.com"),
    ("xai", "api.x.ai"),
    ("opencode", "opencode.ai"),
];

/// The profile's entries: the catalogue hosts, then every known provider's API host.
pub fn builtin_entries() -> Vec<Entry> {
    CATALOGUE_HOSTS
        .iter()
        .copied()
        .chain(KNOWN_PROVIDERS.iter().map(|(_, host)| *host))
        .filter_map(|host| Entry::parse(host).ok())
        .collect()
}

/// The API host of a well-known provider id.
pub fn known_provider_host(id: &str) -> Option<&'static str> {
    KNOWN_PROVIDERS
        .iter()
        .find(|(known, _)| *known == id)
        .map(|(_, host)| *host)
}

/// One provider declared in opencode's config with `options.baseURL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredProvider {
    /// The provider id (the key under `provider`).
    pub id: String,
    /// The `options.baseURL` as written.
    pub base_url: String,
    /// The entry for its host and port, or why it is refused.
    pub entry: Result<Entry, crate::EntryError>,
}

/// The providers of an opencode config (`{"provider": {"<id>": {"options": {"baseURL": …}}}}`)
/// that declare a `baseURL`, each with the entry that allows it.
pub fn configured_providers(opencode_config: &Value) -> Vec<ConfiguredProvider> {
    let Some(providers) = opencode_config.get("provider").and_then(Value::as_object) else {
        return Vec::new();
    };
    providers
        .iter()
        .filter_map(|(id, provider)| {
            let base_url = provider.get("options")?.get("baseURL")?.as_str()?;
            Some(ConfiguredProvider {
                id: id.clone(),
                base_url: base_url.to_owned(),
                entry: entry_for_url(base_url),
            })
        })
        .collect()
}

/// The entry that allows a URL's host and port (scheme default ports: 443, or 80 for http).
pub fn entry_for_url(url: &str) -> Result<Entry, crate::EntryError> {
    let not_url = || crate::EntryError::NotHostPort {
        entry: url.to_owned(),
        suggestion: "https://api.example.com/v1".to_owned(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| not_url())?;
    let host = parsed.host_str().ok_or_else(not_url)?;
    let port = parsed.port_or_known_default().ok_or_else(not_url)?;
    Entry::exact(host, port)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn builtin_profile_parses_completely() {
        assert_eq!(
            builtin_entries().len(),
            CATALOGUE_HOSTS.len() + KNOWN_PROVIDERS.len()
        );
        assert_eq!(known_provider_host("anthropic"), Some("api.anthropic.com"));
    }

    #[test]
    fn providers_with_base_url() {
        let config = serde_json::json!({"provider": {
            "lan": {"npm": "@ai-sdk/openai-compatible", "options": {"baseURL": "http://192.168.1.20:11434/v1"}},
            "corp": {"options": {"baseURL": "https://llm.corp.example/v1"}},
            "local": {"options": {"baseURL": "http://localhost:8080/v1"}},
            "anthropic": {"options": {}}
        }});
        let found = configured_providers(&config);
        assert_eq!(found.len(), 3);
        let by_id = |id: &str| found.iter().find(|p| p.id == id).unwrap();
        assert_eq!(
            by_id("lan").entry.as_ref().unwrap().to_string(),
            "192.168.1.20:11434"
        );
        assert_eq!(
            by_id("corp").entry.as_ref().unwrap().to_string(),
            "llm.corp.example:443"
        );
        assert!(by_id("local").entry.is_err());
    }
}
