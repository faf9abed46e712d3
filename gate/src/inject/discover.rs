//! Host side: which provider keys the host holds, so the gate can inject them and the agent gets
//! placeholders instead.
//!
//! Threat: a key the host holds reaching the agent because nobody noticed it (copied
//! `auth.json`, an inherited `OPENAI_API_KEY`). This finds every key in opencode's `auth.json`
//! (entries of `"type": "api"`), in a provider key variable of openwork's environment, and in
//! the `options.apiKey` of a provider declared with `options.baseURL` in opencode's config
//! (literal or `{env:VAR}`), and pairs each with the provider's real base URL. The result goes
//! to the gate (`PUT /credentials`) and its ids to [`super::opencode_config_fragment`].
//!
//! Left open: OAuth entries of `auth.json` (subscription logins with refresh tokens) are not
//! injected: they are reported in [`Discovered::skipped`] so the caller can say so (the agent
//! then has no key for that provider). Pure: the caller reads the files and passes `env`.

use serde_json::{Value, json};

use crate::inject::KeyHeader;
use crate::secret::Secret;

/// Well-known providers: id, real base URL, key variable.
pub const PROVIDER_DEFAULTS: &[(&str, &str, &str)] = &[
    (
        "anthropic",
        "https://api.anthropic.com/v1",
        "ANTHROPIC_API_KEY",
    ),
    ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    (
        "openrouter",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
    ),
    ("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    ("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    (
        "deepseek",
        "https://api.deepseek.com/v1",
        "DEEPSEEK_API_KEY",
    ),
    ("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
];

/// Where a key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// opencode's `auth.json`.
    AuthJson,
    /// A variable of openwork's environment (its name).
    Env(String),
    /// `provider.<id>.options.apiKey` in opencode's config.
    Config,
}

/// One provider key the host holds.
#[derive(Debug, Clone)]
pub struct HostCredential {
    /// opencode's provider id.
    pub provider: String,
    /// The real base URL.
    pub base_url: String,
    /// The real key.
    pub key: Secret,
    /// Where the key goes.
    pub header: KeyHeader,
    /// Where it was found.
    pub source: KeySource,
}

/// What [`discover`] found.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    /// Keys to inject, one per provider.
    pub credentials: Vec<HostCredential>,
    /// Providers with a credential that cannot be injected, and why.
    pub skipped: Vec<(String, &'static str)>,
}

impl Discovered {
    /// The body of the gate's `PUT /credentials` (it holds the keys: send it, never log it).
    pub fn put_body(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .credentials
            .iter()
            .map(|c| {
                let header = match c.header {
                    KeyHeader::XApiKey => "x-api-key",
                    KeyHeader::Bearer => "bearer",
                };
                (
                    c.provider.clone(),
                    json!({"baseUrl": c.base_url, "key": c.key.expose(), "header": header}),
                )
            })
            .collect();
        Value::Object(map)
    }

    /// The provider ids, for [`super::opencode_config_fragment`].
    pub fn providers(&self) -> impl Iterator<Item = &str> {
        self.credentials.iter().map(|c| c.provider.as_str())
    }
}

/// Finds the keys the host holds. Order of precedence per provider: `auth.json`, then the
/// config's `options.apiKey`, then the environment variable. A provider declared with
/// `options.baseURL` uses that URL; a well-known one its default.
pub fn discover(
    auth_json: Option<&Value>,
    opencode_config: Option<&Value>,
    env: impl Fn(&str) -> Option<String>,
) -> Discovered {
    let mut found = Discovered::default();
    let configured = opencode_config
        .and_then(|c| c.get("provider"))
        .and_then(Value::as_object);
    let option = |id: &str, key: &str| -> Option<String> {
        configured?
            .get(id)?
            .get("options")?
            .get(key)?
            .as_str()
            .map(str::to_owned)
    };
    let mut ids: Vec<String> = PROVIDER_DEFAULTS
        .iter()
        .map(|(id, _, _)| (*id).to_owned())
        .collect();
    for source in [auth_json.and_then(Value::as_object), configured]
        .into_iter()
        .flatten()
    {
        for id in source.keys() {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
    }
    for id in ids {
        let auth = auth_json.and_then(|a| a.get(&id));
        let from_auth = match auth.and_then(|a| a.get("type")).and_then(Value::as_str) {
            Some("api") => auth
                .and_then(|a| a.get("key"))
                .and_then(Value::as_str)
                .map(|k| (k.to_owned(), KeySource::AuthJson)),
            Some(_) => {
                found
                    .skipped
                    .push((id.clone(), "an OAuth login in auth.json cannot be injected"));
                None
            }
            None => None,
        };
        let default = PROVIDER_DEFAULTS.iter().find(|(d, _, _)| *d == id);
        let Some(base_url) =
            option(&id, "baseURL").or(default.map(|(_, url, _)| (*url).to_owned()))
        else {
            if from_auth.is_some() {
                found.skipped.push((
                    id.clone(),
                    "no base URL known: declare provider.<id>.options.baseURL in opencode's config",
                ));
            }
            continue;
        };
        let from_config = option(&id, "apiKey").and_then(|k| match k.strip_prefix("{env:") {
            Some(rest) => {
                let var = rest.trim_end_matches('}');
                env(var).map(|v| (v, KeySource::Env(var.to_owned())))
            }
            None => Some((k, KeySource::Config)),
        });
        let from_env = default
            .and_then(|(_, _, var)| env(var).map(|v| (v, KeySource::Env((*var).to_owned()))));
        let Some((key, source)) = from_auth
            .or(from_config)
            .or(from_env)
            .filter(|(k, _)| !k.is_empty())
        else {
            continue;
        };
        found.credentials.push(HostCredential {
            header: KeyHeader::for_provider(&id),
            provider: id,
            base_url,
            key: Secret::new(key),
            source,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_auth_json_env_and_configured_providers() {
        let auth = json!({
            "anthropic": {"type": "api", "key": "sk-ant-from-auth"},
            "google": {"type": "api", "key": "g"},
            "github-copilot": {"type": "oauth", "refresh": "r", "access": "a", "expires": 0}
        });
        let config = json!({"provider": {
            "lan": {"npm": "@ai-sdk/openai-compatible", "options": {"baseURL": "http://192.168.1.20:11434/v1", "apiKey": "{env:LAN_KEY}"}},
            "corp": {"options": {"baseURL": "https://llm.corp.example/v1", "apiKey": "literal-key"}},
            "nokey": {"options": {"baseURL": "https://x.example/v1"}}
        }});
        let env = |name: &str| match name {
            "OPENAI_API_KEY" => Some("sk-from-env".to_owned()),
            "ANTHROPIC_API_KEY" => Some("sk-ant-env-loses".to_owned()),
            "LAN_KEY" => Some("lan-secret".to_owned()),
            _ => None,
        };
        let found = discover(Some(&auth), Some(&config), env);
        let by = |id: &str| found.credentials.iter().find(|c| c.provider == id).unwrap();
        assert_eq!(by("anthropic").key.expose(), "sk-ant-from-auth");
        assert_eq!(by("anthropic").header, KeyHeader::XApiKey);
        assert_eq!(by("anthropic").base_url, "https://api.anthropic.com/v1");
        assert_eq!(by("openai").source, KeySource::Env("OPENAI_API_KEY".into()));
        assert_eq!(by("openai").header, KeyHeader::Bearer);
        assert_eq!(by("lan").base_url, "http://192.168.1.20:11434/v1");
        assert_eq!(by("lan").key.expose(), "lan-secret");
        assert_eq!(by("corp").source, KeySource::Config);
        assert!(found.credentials.iter().all(|c| c.provider != "nokey"));
        let skipped: Vec<&str> = found.skipped.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(skipped, ["github-copilot", "google"]);
        let body = found.put_body();
        assert_eq!(body["anthropic"]["header"], "x-api-key");
        assert!(!format!("{found:?}").contains("sk-ant-from-auth"));
        let ids: Vec<&str> = found.providers().collect();
        assert_eq!(ids.len(), 4);
    }
}
