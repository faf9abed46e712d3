//! Configuration: the `opencode-router.json` file and the environment, resolved once into
//! [`Settings`].
//!
//! Threats handled here: the file holds bot tokens, so it is written atomically (temp file +
//! rename) with mode 0600 and never echoed with its secrets; openwork-server edits the same file,
//! so a write changes only the keys it means to and keeps every key it does not know. Defaults
//! are the safe ones: permission prompts are asked in the chat (`ask`), new bots are private.
//! Left open: two writers racing on the file (last rename wins; both re-read before writing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

/// Errors reading or writing the configuration.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON ({source}); fix or remove it")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} must hold a JSON object at the top level")]
    NotObject { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name}={value} is not valid: {expected}")]
    BadEnv {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("config key {key:?} cannot be set: {reason}")]
    BadKey { key: String, reason: &'static str },
    #[error("no home directory: set OPENCODE_ROUTER_DATA_DIR")]
    NoHome,
}

/// What the router does with an opencode permission prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PermissionMode {
    /// Ask the chat's bound person (yes/no), rejecting on timeout. The default.
    #[default]
    Ask,
    /// Answer every prompt "once" (explicit opt-in: anyone who can talk to the bot runs tools).
    Allow,
    /// Reject every prompt.
    Deny,
}

impl PermissionMode {
    pub fn parse(s: &str) -> Option<PermissionMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ask" | "interactive" => Some(PermissionMode::Ask),
            "allow" => Some(PermissionMode::Allow),
            "deny" | "reject" => Some(PermissionMode::Deny),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PermissionMode::Ask => "ask",
            PermissionMode::Allow => "allow",
            PermissionMode::Deny => "deny",
        }
    }
}

/// Who may talk to a Telegram bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Only chats bound to it (by `/pair <code>` or `bindings set`). The default.
    #[default]
    Private,
    /// Anyone who finds the bot (explicit opt-in).
    Public,
}

/// One Telegram bot of the config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TelegramBot {
    pub id: String,
    pub token: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    #[serde(default)]
    pub access: Access,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing_code_hash: Option<String>,
}

/// One Slack app of the config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SlackApp {
    pub id: String,
    pub bot_token: String,
    pub app_token: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
}

fn yes() -> bool {
    true
}

/// Normalises an identity id: `[A-Za-z0-9_.-]` kept, others become `-`, trimmed of `-`, at most
/// 48 characters, `default` when empty.
pub fn normalize_id(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = mapped.trim_matches('-').chars().take(48).collect();
    if trimmed.is_empty() {
        "default".into()
    } else {
        trimmed
    }
}

/// The config file as JSON: typed reads, and writes that keep unknown keys.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub root: Map<String, Value>,
}

impl ConfigFile {
    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                });
            }
        };
        let root = if text.trim().is_empty() {
            let mut m = Map::new();
            m.insert("version".into(), Value::from(1));
            m
        } else {
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(ConfigError::NotObject { path: path.into() }),
                Err(source) => {
                    return Err(ConfigError::Parse {
                        path: path.into(),
                        source,
                    });
                }
            }
        };
        Ok(ConfigFile {
            path: path.into(),
            root,
        })
    }

    /// Writes atomically with mode 0600.
    pub fn save(&self) -> Result<(), ConfigError> {
        let err = |source| ConfigError::Write {
            path: self.path.clone(),
            source,
        };
        let text = serde_json::to_string_pretty(&Value::Object(self.root.clone()))
            .map_err(|e| err(std::io::Error::other(e)))?;
        write_private(&self.path, text.as_bytes()).map_err(err)
    }

    fn str_key(&self, key: &str) -> Option<String> {
        self.root
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    }

    fn bool_key(&self, key: &str) -> Option<bool> {
        self.root.get(key).and_then(Value::as_bool)
    }

    fn channel(&self, name: &str) -> Option<&Map<String, Value>> {
        self.root
            .get("channels")
            .and_then(|c| c.get(name))
            .and_then(Value::as_object)
    }

    fn channel_mut(&mut self, name: &str) -> &mut Map<String, Value> {
        let channels = self
            .root
            .entry("channels")
            .or_insert_with(|| Value::Object(Map::new()));
        if !channels.is_object() {
            *channels = Value::Object(Map::new());
        }
        let Value::Object(channels) = channels else {
            unreachable!("made an object above")
        };
        let ch = channels
            .entry(name)
            .or_insert_with(|| Value::Object(Map::new()));
        if !ch.is_object() {
            *ch = Value::Object(Map::new());
        }
        let Value::Object(ch) = ch else {
            unreachable!("made an object above")
        };
        ch
    }

    /// Whether a channel is enabled (`channels.<name>.enabled`, default true).
    pub fn channel_enabled(&self, name: &str) -> bool {
        self.channel(name)
            .and_then(|c| c.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// The Telegram bots, with the legacy single `token` read as `default`.
    pub fn telegram_bots(&self) -> Vec<TelegramBot> {
        let Some(ch) = self.channel("telegram") else {
            return Vec::new();
        };
        let mut bots: Vec<TelegramBot> = ch
            .get("bots")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|b| serde_json::from_value::<TelegramBot>(b.clone()).ok())
                    .map(|mut b| {
                        b.id = normalize_id(&b.id);
                        b
                    })
                    .collect()
            })
            .unwrap_or_default();
        if bots.is_empty()
            && let Some(token) = ch.get("token").and_then(Value::as_str)
            && !token.is_empty()
        {
            bots.push(TelegramBot {
                id: "default".into(),
                token: token.into(),
                enabled: true,
                directory: None,
                access: Access::Private,
                pairing_code_hash: None,
            });
        }
        bots
    }

    /// The Slack apps, with the legacy `botToken`/`appToken` read as `default`.
    pub fn slack_apps(&self) -> Vec<SlackApp> {
        let Some(ch) = self.channel("slack") else {
            return Vec::new();
        };
        let mut apps: Vec<SlackApp> = ch
            .get("apps")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|b| serde_json::from_value::<SlackApp>(b.clone()).ok())
                    .map(|mut b| {
                        b.id = normalize_id(&b.id);
                        b
                    })
                    .collect()
            })
            .unwrap_or_default();
        if apps.is_empty()
            && let (Some(bot), Some(app)) = (
                ch.get("botToken").and_then(Value::as_str),
                ch.get("appToken").and_then(Value::as_str),
            )
        {
            apps.push(SlackApp {
                id: "default".into(),
                bot_token: bot.into(),
                app_token: app.into(),
                enabled: true,
                directory: None,
            });
        }
        apps
    }

    /// Adds or replaces a Telegram bot, keeping unknown keys of an existing entry.
    pub fn upsert_telegram(&mut self, bot: &TelegramBot) {
        let value = serde_json::to_value(bot).unwrap_or(Value::Null);
        upsert_list(self.channel_mut("telegram"), "bots", &bot.id, value);
    }

    /// Adds or replaces a Slack app, keeping unknown keys of an existing entry.
    pub fn upsert_slack(&mut self, app: &SlackApp) {
        let value = serde_json::to_value(app).unwrap_or(Value::Null);
        upsert_list(self.channel_mut("slack"), "apps", &app.id, value);
    }

    /// Removes an identity; true when one was there.
    pub fn remove_identity(&mut self, channel: &str, id: &str) -> bool {
        let list = if channel == "telegram" {
            "bots"
        } else {
            "apps"
        };
        let ch = self.channel_mut(channel);
        let Some(Value::Array(items)) = ch.get_mut(list) else {
            return false;
        };
        let before = items.len();
        items.retain(|b| b.get("id").and_then(Value::as_str).map(normalize_id) != Some(id.into()));
        before != items.len()
    }

    /// `config get`: the value at a dot path (secrets included: the caller is the file's owner).
    pub fn get(&self, dot: Option<&str>) -> Value {
        let mut cur = Value::Object(self.root.clone());
        for part in dot.unwrap_or("").split('.').filter(|p| !p.is_empty()) {
            cur = match cur {
                Value::Object(mut m) => m.remove(part).unwrap_or(Value::Null),
                Value::Array(a) => part
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.into_iter().nth(i))
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            };
        }
        cur
    }

    /// `config set`: sets the value at a dot path, creating objects on the way.
    pub fn set(&mut self, dot: &str, value: Value) -> Result<(), ConfigError> {
        let parts: Vec<&str> = dot.split('.').filter(|p| !p.is_empty()).collect();
        let Some((last, path)) = parts.split_last() else {
            return Err(ConfigError::BadKey {
                key: dot.into(),
                reason: "empty key",
            });
        };
        let mut cur = &mut self.root;
        for p in path {
            let next = cur
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(m) = next else {
                return Err(ConfigError::BadKey {
                    key: dot.into(),
                    reason: "a parent of the key is not an object",
                });
            };
            cur = m;
        }
        cur.insert(last.to_string(), value);
        Ok(())
    }
}

fn upsert_list(ch: &mut Map<String, Value>, list: &str, id: &str, value: Value) {
    let items = ch.entry(list).or_insert_with(|| Value::Array(Vec::new()));
    if !items.is_array() {
        *items = Value::Array(Vec::new());
    }
    let Value::Array(items) = items else {
        unreachable!("made an array above")
    };
    let existing = items
        .iter_mut()
        .find(|b| b.get("id").and_then(Value::as_str).map(normalize_id) == Some(id.into()));
    match (existing, value) {
        (Some(Value::Object(old)), Value::Object(new)) => {
            // Keys the typed entry dropped (unset options) go; unknown keys stay.
            for k in ["directory", "pairingCodeHash"] {
                if !new.contains_key(k) {
                    old.remove(k);
                }
            }
            old.extend(new);
        }
        (Some(slot), v) => *slot = v,
        (None, v) => items.push(v),
    }
}

/// Writes `bytes` to `path` atomically (temp file in the same dir, fsync, rename), mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Creates `dir` (and its parents) if missing; a directory made here is 0700, so neither its file
/// names nor a loose umask expose the router's state to other users.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Where the router keeps its files.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub db: PathBuf,
}

/// A read-only view of the process environment, so resolution is testable.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

/// The real environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).filter(|v| !v.is_empty()).cloned()
    }
}

impl Env for BTreeMap<&str, &str> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).map(|v| v.to_string())
    }
}

impl Paths {
    pub fn resolve(env: &dyn Env) -> Result<Paths, ConfigError> {
        let data_dir = match env.get("OPENCODE_ROUTER_DATA_DIR") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(env.get("HOME").ok_or(ConfigError::NoHome)?)
                .join(".openwork/opencode-router"),
        };
        Ok(Paths {
            config: env
                .get("OPENCODE_ROUTER_CONFIG_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("opencode-router.json")),
            db: env
                .get("OPENCODE_ROUTER_DB_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("opencode-router.db")),
            data_dir,
        })
    }
}

/// Everything a running router needs, resolved once from flags, env and the file.
#[derive(Debug, Clone)]
pub struct Settings {
    pub paths: Paths,
    pub opencode_url: String,
    /// The workspace root: every routed directory stays inside it.
    pub root: PathBuf,
    pub username: Option<String>,
    pub password: Option<String>,
    /// 0 = any free port.
    pub health_port: u16,
    /// `provider/model` used when the chat has not chosen one.
    pub model: Option<String>,
    pub max_media_bytes: u64,
    pub groups_enabled: bool,
    pub tool_updates: bool,
    pub tool_output_limit: usize,
    pub permission_mode: PermissionMode,
    pub permission_timeout: Duration,
    /// Base URL of the Telegram Bot API (tests point it at a stand-in).
    pub telegram_api: String,
    /// Base URL of the Slack Web API (`…/api`).
    pub slack_api: String,
    /// Long-poll timeout of `getUpdates`, seconds.
    pub telegram_poll_timeout: u64,
}

fn parse_env<T: std::str::FromStr>(
    env: &dyn Env,
    name: &'static str,
    expected: &'static str,
) -> Result<Option<T>, ConfigError> {
    match env.get(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|_| ConfigError::BadEnv {
                name,
                value: v,
                expected,
            }),
    }
}

fn env_bool(env: &dyn Env, name: &str) -> Option<bool> {
    env.get(name).map(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

impl Settings {
    /// Resolves flags (already merged with their env by clap), env and the config file.
    pub fn resolve(
        env: &dyn Env,
        file: &ConfigFile,
        paths: Paths,
        opencode_url: Option<String>,
        directory: Option<String>,
    ) -> Result<Settings, ConfigError> {
        let opencode_url = opencode_url
            .or_else(|| env.get("OPENCODE_URL"))
            .or_else(|| file.str_key("opencodeUrl"))
            .unwrap_or_else(|| "http://127.0.0.1:4096".into())
            .trim_end_matches('/')
            .to_string();
        let root = directory
            .or_else(|| env.get("OPENCODE_DIRECTORY"))
            .or_else(|| file.str_key("opencodeDirectory"))
            .map(PathBuf::from)
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("/"));
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        let health_port = match parse_env::<u16>(env, "OPENCODE_ROUTER_HEALTH_PORT", "a port")? {
            Some(p) => p,
            None => parse_env::<u16>(env, "PORT", "a port")?.unwrap_or(0),
        };
        let permission_mode = match env.get("PERMISSION_MODE") {
            Some(v) => PermissionMode::parse(&v).ok_or(ConfigError::BadEnv {
                name: "PERMISSION_MODE",
                value: v,
                expected: "ask, allow or deny",
            })?,
            None => file
                .str_key("permissionMode")
                .and_then(|v| PermissionMode::parse(&v))
                .unwrap_or_default(),
        };
        let timeout_ms = parse_env::<u64>(env, "PERMISSION_TIMEOUT_MS", "milliseconds")?
            .unwrap_or(5 * 60 * 1000);
        Ok(Settings {
            paths,
            opencode_url,
            root,
            username: env.get("OPENCODE_SERVER_USERNAME"),
            password: env.get("OPENCODE_SERVER_PASSWORD"),
            health_port,
            model: env
                .get("OPENCODE_ROUTER_MODEL")
                .or_else(|| file.str_key("model")),
            max_media_bytes: parse_env::<u64>(env, "OPENCODE_ROUTER_MAX_MEDIA_BYTES", "bytes")?
                .unwrap_or(50 * 1024 * 1024),
            groups_enabled: env_bool(env, "GROUPS_ENABLED")
                .or_else(|| file.bool_key("groupsEnabled"))
                .unwrap_or(false),
            tool_updates: env_bool(env, "TOOL_UPDATES_ENABLED")
                .or_else(|| file.bool_key("toolUpdatesEnabled"))
                .unwrap_or(false),
            tool_output_limit: parse_env::<usize>(env, "TOOL_OUTPUT_LIMIT", "characters")?
                .unwrap_or(1200),
            permission_mode,
            permission_timeout: Duration::from_millis(timeout_ms),
            telegram_api: env
                .get("OPENCODE_ROUTER_TELEGRAM_API")
                .unwrap_or_else(|| "https://api.telegram.org".into())
                .trim_end_matches('/')
                .into(),
            slack_api: env
                .get("OPENCODE_ROUTER_SLACK_API")
                .unwrap_or_else(|| "https://slack.com/api".into())
                .trim_end_matches('/')
                .into(),
            telegram_poll_timeout: parse_env::<u64>(
                env,
                "OPENCODE_ROUTER_TELEGRAM_POLL_TIMEOUT",
                "seconds",
            )?
            .unwrap_or(30),
        })
    }
}

/// The identities of a run: the file's, plus the `env` identity from `TELEGRAM_BOT_TOKEN` /
/// `SLACK_BOT_TOKEN`+`SLACK_APP_TOKEN` (reserved: not editable through the API).
pub fn identities(env: &dyn Env, file: &ConfigFile) -> (Vec<TelegramBot>, Vec<SlackApp>) {
    let mut tg = if file.channel_enabled("telegram") {
        file.telegram_bots()
    } else {
        Vec::new()
    };
    if let Some(token) = env.get("TELEGRAM_BOT_TOKEN") {
        tg.retain(|b| b.id != "env");
        tg.push(TelegramBot {
            id: "env".into(),
            token,
            enabled: env_bool(env, "TELEGRAM_ENABLED").unwrap_or(true),
            directory: None,
            access: match env.get("TELEGRAM_ACCESS").as_deref() {
                Some("public") => Access::Public,
                _ => Access::Private,
            },
            pairing_code_hash: env
                .get("TELEGRAM_PAIRING_CODE")
                .map(|c| crate::pairing::hash_code(&c)),
        });
    }
    let mut sl = if file.channel_enabled("slack") {
        file.slack_apps()
    } else {
        Vec::new()
    };
    if let (Some(bot), Some(app)) = (env.get("SLACK_BOT_TOKEN"), env.get("SLACK_APP_TOKEN")) {
        sl.retain(|a| a.id != "env");
        sl.push(SlackApp {
            id: "env".into(),
            bot_token: bot,
            app_token: app,
            enabled: env_bool(env, "SLACK_ENABLED").unwrap_or(true),
            directory: None,
        });
    }
    (tg, sl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_normalised() {
        assert_eq!(normalize_id("ws/abc def"), "ws-abc-def");
        assert_eq!(normalize_id("--"), "default");
        assert_eq!(normalize_id(&"x".repeat(60)).len(), 48);
    }

    #[test]
    fn writes_keep_unknown_keys_and_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opencode-router.json");
        std::fs::write(
            &path,
            r#"{"version":1,"mystery":{"a":1},"channels":{"telegram":{"bots":[{"id":"a","token":"1:x","extra":true}]}}}"#,
        )
        .unwrap();
        let mut f = ConfigFile::load(&path).unwrap();
        let mut bot = f.telegram_bots().remove(0);
        assert_eq!(bot.access, Access::Private);
        bot.enabled = false;
        f.upsert_telegram(&bot);
        f.set("groupsEnabled", Value::Bool(true)).unwrap();
        f.save().unwrap();
        let back: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["mystery"]["a"], 1);
        assert_eq!(back["channels"]["telegram"]["bots"][0]["extra"], true);
        assert_eq!(back["channels"]["telegram"]["bots"][0]["enabled"], false);
        assert_eq!(back["groupsEnabled"], true);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(f.remove_identity("telegram", "a"));
        assert!(f.telegram_bots().is_empty());
    }

    #[test]
    fn legacy_tokens_and_env_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(
            &path,
            r#"{"channels":{"telegram":{"token":"1:a"},"slack":{"botToken":"xoxb","appToken":"xapp"}}}"#,
        )
        .unwrap();
        let f = ConfigFile::load(&path).unwrap();
        let env: BTreeMap<&str, &str> = [("TELEGRAM_BOT_TOKEN", "2:b")].into();
        let (tg, sl) = identities(&env, &f);
        assert_eq!(
            tg.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
            ["default", "env"]
        );
        assert_eq!(sl[0].id, "default");
    }

    #[test]
    fn safe_defaults_and_bad_env() {
        let dir = tempfile::tempdir().unwrap();
        let f = ConfigFile::load(&dir.path().join("none.json")).unwrap();
        let env: BTreeMap<&str, &str> = [("OPENCODE_ROUTER_DATA_DIR", "/d")].into();
        let paths = Paths::resolve(&env).unwrap();
        assert_eq!(paths.db, PathBuf::from("/d/opencode-router.db"));
        let s = Settings::resolve(&env, &f, paths.clone(), None, Some("/".into())).unwrap();
        assert_eq!(s.permission_mode, PermissionMode::Ask);
        assert!(!s.groups_enabled);
        let env: BTreeMap<&str, &str> = [("PERMISSION_MODE", "yolo")].into();
        let err = Settings::resolve(&env, &f, paths, None, None).unwrap_err();
        assert!(err.to_string().contains("PERMISSION_MODE=yolo"));
    }
}
