//! The opencode config that points opencode at a stand-in model.
//!
//! It declares one provider, `standin`, through the OpenAI-compatible AI SDK provider that is
//! bundled in the opencode binary (`"npm": "@ai-sdk/openai-compatible"`: nothing is fetched),
//! makes its model the default (`"model"`) and the small model (`"small_model"`, which opencode
//! uses for session titles, so those calls stay on the stand-in too), and allows `edit` (the
//! permission that `write`, `edit` and `apply_patch` ask for) so a scripted write never stops at
//! a permission prompt.
//!
//! Use it as `OPENCODE_CONFIG_CONTENT` (nothing is written into the workspace; this layer wins
//! over the global and project files) or write it as an `opencode.json`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::server::DEFAULT_MODEL;

/// The provider id the config declares (models are `standin/<model>`).
pub const PROVIDER_ID: &str = "standin";

/// An opencode config for a stand-in model.
#[derive(Clone, Debug, PartialEq)]
pub struct OpencodeConfig {
    /// The provider's `baseURL`, e.g. `http://127.0.0.1:PORT/v1` (opencode appends
    /// `/chat/completions`).
    pub base_url: String,
    /// Sent by opencode as `Authorization: Bearer <api_key>`.
    pub api_key: String,
    /// The model id (without the provider prefix).
    pub model: String,
    /// Extra permission rules merged over `{"edit": "allow"}`, e.g. `{"bash": "allow"}`.
    pub permission: serde_json::Map<String, Value>,
}

impl OpencodeConfig {
    /// A config for the stand-in at `base_url` with this API key and the default model.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> OpencodeConfig {
        OpencodeConfig {
            base_url: base_url.into(),
            api_key: api_key.into(),
            model: DEFAULT_MODEL.to_string(),
            permission: serde_json::Map::new(),
        }
    }

    /// The same config with another model id.
    pub fn with_model(mut self, model: &str) -> OpencodeConfig {
        self.model = model.to_string();
        self
    }

    /// The same config with one more permission rule (`"allow"`, `"ask"`, `"deny"`, or an
    /// object of pattern → action).
    pub fn with_permission(mut self, permission: &str, rule: Value) -> OpencodeConfig {
        self.permission.insert(permission.to_string(), rule);
        self
    }

    /// `standin/<model>`: how opencode names the model.
    pub fn model_ref(&self) -> String {
        format!("{PROVIDER_ID}/{}", self.model)
    }

    /// The config as JSON.
    pub fn to_json(&self) -> Value {
        let mut permission = serde_json::Map::new();
        permission.insert("edit".into(), json!("allow"));
        permission.extend(self.permission.clone());
        json!({
            "$schema": "https://opencode.ai/config.json",
            "provider": {
                PROVIDER_ID: {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Stand-in model (openwork-testkit)",
                    "options": { "baseURL": self.base_url, "apiKey": self.api_key },
                    "models": {
                        self.model.clone(): {
                            "name": self.model,
                            "tool_call": true,
                            "limit": { "context": 128000, "output": 4096 },
                        },
                    },
                },
            },
            "model": self.model_ref(),
            "small_model": self.model_ref(),
            "permission": permission,
            "autoupdate": false,
            "share": "disabled",
        })
    }

    /// The value for `OPENCODE_CONFIG_CONTENT`.
    pub fn to_content(&self) -> String {
        self.to_json().to_string()
    }

    /// Writes `dir/opencode.json` (with `$schema`, so opencode does not rewrite it); returns
    /// its path.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join("opencode.json");
        let text = serde_json::to_string_pretty(&self.to_json()).map_err(std::io::Error::other)?;
        std::fs::write(&path, text + "\n")?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_declares_the_provider_model_and_permission() {
        let config = OpencodeConfig::new("http://127.0.0.1:9/v1", "sk-x")
            .with_permission("bash", json!("allow"));
        let json = config.to_json();
        let provider = &json["provider"]["standin"];
        assert_eq!(provider["npm"], "@ai-sdk/openai-compatible");
        assert_eq!(provider["options"]["baseURL"], "http://127.0.0.1:9/v1");
        assert_eq!(provider["options"]["apiKey"], "sk-x");
        assert!(provider["models"][DEFAULT_MODEL].is_object());
        assert_eq!(json["model"], "standin/standin-model");
        assert_eq!(json["small_model"], "standin/standin-model");
        assert_eq!(
            json["permission"],
            json!({"edit": "allow", "bash": "allow"})
        );
        let parsed: Value = serde_json::from_str(&config.to_content()).unwrap();
        assert_eq!(parsed, json);
    }

    #[test]
    fn write_to_puts_an_opencode_json_in_the_directory() {
        let dir = std::env::temp_dir().join(format!("testkit-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = OpencodeConfig::new("http://127.0.0.1:9/v1", "k").with_model("m2");
        let path = config.write_to(&dir).unwrap();
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written, config.to_json());
        assert_eq!(written["model"], "standin/m2");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
