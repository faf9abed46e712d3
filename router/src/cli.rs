//! The `opencode-router` command line: `serve`, `health`, `status`, `config`, `telegram`,
//! `slack`, `bindings`, `send`, each with `--json`.
//!
//! Threats handled here: bot tokens printed to a terminal or log (lists show a masked token;
//! `config get` is the only way to read one, on purpose), and a pairing code stored in clear
//! (it is printed once at `telegram add` and only its hash is kept).

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::config::{Access, ConfigFile, Paths, ProcessEnv, Settings, SlackApp, TelegramBot};
use crate::store::ChatKey;

#[derive(Debug, Parser)]
#[command(
    name = "opencode-router",
    version,
    about = "Chat bridge between messaging apps (Telegram, Slack) and opencode"
)]
pub struct Cli {
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run headless until SIGINT/SIGTERM.
    #[command(alias = "start")]
    Serve {
        /// Workspace root (sets OPENCODE_DIRECTORY).
        path: Option<String>,
        /// opencode URL (sets OPENCODE_URL).
        #[arg(long, env = "OPENCODE_URL")]
        opencode_url: Option<String>,
    },
    /// Check opencode's health once; exit 0 when healthy.
    Health {
        #[arg(long, env = "OPENCODE_URL")]
        opencode_url: Option<String>,
    },
    /// Show the resolved configuration.
    Status,
    /// Read or write opencode-router.json.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Telegram bots.
    Telegram {
        #[command(subcommand)]
        action: TelegramAction,
    },
    /// Slack apps.
    Slack {
        #[command(subcommand)]
        action: SlackAction,
    },
    /// Which chat works in which directory.
    Bindings {
        #[command(subcommand)]
        action: BindingsAction,
    },
    /// Send a message (or a file) to a bound chat.
    Send {
        #[arg(long)]
        channel: String,
        #[arg(long)]
        identity: Option<String>,
        #[arg(long)]
        to: String,
        #[arg(long)]
        message: Option<String>,
        #[arg(long, alias = "image", alias = "audio")]
        file: Option<String>,
        #[arg(long)]
        caption: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    Get { key: Option<String> },
    Set { key: String, value: String },
}

#[derive(Debug, Subcommand)]
pub enum TelegramAction {
    List,
    /// Add a bot; private (pairing code) unless --public.
    Add {
        token: String,
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        disabled: bool,
        /// Anyone who finds the bot may use it.
        #[arg(long)]
        public: bool,
        /// Directory (inside the workspace) paired chats work in.
        #[arg(long)]
        dir: Option<String>,
    },
    Remove {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SlackAction {
    List,
    Add {
        bot_token: String,
        app_token: String,
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        disabled: bool,
        #[arg(long)]
        dir: Option<String>,
    },
    Remove {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BindingsAction {
    List {
        #[arg(long)]
        channel: Option<String>,
        #[arg(long)]
        identity: Option<String>,
    },
    Set {
        #[arg(long)]
        channel: String,
        #[arg(long)]
        identity: String,
        #[arg(long)]
        peer: String,
        #[arg(long)]
        dir: String,
    },
    Clear {
        #[arg(long)]
        channel: String,
        #[arg(long)]
        identity: String,
        #[arg(long)]
        peer: String,
    },
}

fn mask(token: &str) -> String {
    let tail: String = token
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

fn print(json_out: bool, v: &Value, text: &str) {
    if json_out {
        println!("{v}");
    } else {
        println!("{text}");
    }
}

type CliResult = Result<u8, crate::RouterError>;

fn settings(
    opencode_url: Option<String>,
    path: Option<String>,
) -> Result<(Settings, ConfigFile), crate::RouterError> {
    let paths = Paths::resolve(&ProcessEnv)?;
    let file = ConfigFile::load(&paths.config)?;
    let s = Settings::resolve(&ProcessEnv, &file, paths, opencode_url, path)?;
    Ok((s, file))
}

/// Runs every command but `serve` (which `lib.rs` runs itself).
pub async fn run(json_out: bool, command: Command) -> CliResult {
    match command {
        Command::Serve { .. } => Ok(2),
        Command::Health { opencode_url } => {
            let (s, file) = settings(opencode_url, None)?;
            let oc = crate::opencode::Opencode::new(
                &s.opencode_url,
                s.username.as_deref(),
                s.password.as_deref(),
            );
            let h = oc.health().await;
            let (tg, sl) = crate::config::identities(&ProcessEnv, &file);
            let ids = |v: Vec<(String, bool)>| -> Vec<Value> {
                v.into_iter()
                    .map(|(id, enabled)| json!({"id": id, "enabled": enabled}))
                    .collect()
            };
            let v = json!({
                "healthy": h.healthy, "opencodeUrl": s.opencode_url, "version": h.version,
                "identities": {
                    "telegram": ids(tg.into_iter().map(|b| (b.id, b.enabled)).collect()),
                    "slack": ids(sl.into_iter().map(|a| (a.id, a.enabled)).collect()),
                }
            });
            let word = if h.healthy { "healthy" } else { "unreachable" };
            print(
                json_out,
                &v,
                &format!("opencode {}: {word}", s.opencode_url),
            );
            Ok(if h.healthy { 0 } else { 1 })
        }
        Command::Status => {
            let (s, file) = settings(None, None)?;
            let (tg, sl) = crate::config::identities(&ProcessEnv, &file);
            let v = json!({
                "config": s.paths.config, "db": s.paths.db, "healthPort": s.health_port,
                "permissionMode": s.permission_mode.as_str(), "groupsEnabled": s.groups_enabled,
                "telegram": tg.iter().map(|b| json!({"id": b.id, "enabled": b.enabled, "access": b.access})).collect::<Vec<_>>(),
                "slack": sl.iter().map(|a| json!({"id": a.id, "enabled": a.enabled})).collect::<Vec<_>>(),
                "opencode": { "url": s.opencode_url, "directory": s.root },
            });
            print(
                json_out,
                &v,
                &serde_json::to_string_pretty(&v).unwrap_or_default(),
            );
            Ok(0)
        }
        Command::Config { action } => {
            let paths = Paths::resolve(&ProcessEnv)?;
            let mut file = ConfigFile::load(&paths.config)?;
            match action {
                ConfigAction::Get { key } => {
                    let v = file.get(key.as_deref());
                    println!(
                        "{}",
                        if json_out {
                            v.to_string()
                        } else {
                            serde_json::to_string_pretty(&v).unwrap_or_default()
                        }
                    );
                }
                ConfigAction::Set { key, value } => {
                    let v = serde_json::from_str(&value).unwrap_or(Value::String(value));
                    file.set(&key, v)?;
                    file.save()?;
                    print(
                        json_out,
                        &json!({"ok": true, "key": key}),
                        &format!("set {key}"),
                    );
                }
            }
            Ok(0)
        }
        Command::Telegram { action } => telegram(json_out, action),
        Command::Slack { action } => slack(json_out, action),
        Command::Bindings { action } => bindings(json_out, action),
        Command::Send {
            channel,
            identity,
            to,
            message,
            file,
            caption,
        } => {
            let (s, cfg) = settings(None, None)?;
            let store = crate::store::Store::open(&s.paths.db)?;
            let (telegram, slack) = crate::config::identities(&ProcessEnv, &cfg);
            let app = crate::pipeline::App::new(s, store, crate::pipeline::Identities::default());
            for b in telegram.iter().filter(|b| b.enabled) {
                let api = crate::telegram::TelegramApi::new(&app.settings.telegram_api, &b.token);
                app.chats.set_sender(
                    &("telegram".into(), b.id.clone()),
                    Some(crate::chat::Sender::Telegram(api)),
                );
            }
            for a in slack.iter().filter(|a| a.enabled) {
                let api = crate::slack::SlackApi::new(
                    &app.settings.slack_api,
                    &a.bot_token,
                    &a.app_token,
                );
                app.chats.set_sender(
                    &("slack".into(), a.id.clone()),
                    Some(crate::chat::Sender::Slack(api)),
                );
            }
            let mut parts = Vec::new();
            if let Some(f) = file {
                parts.push(crate::outbound::OutPart::File {
                    file_path: f,
                    caption,
                });
            }
            let req = crate::outbound::SendRequest {
                channel,
                identity_id: identity,
                directory: None,
                peer_id: Some(to),
                auto_bind: false,
                text: message,
                parts,
            };
            let report = crate::outbound::send(&app, req).await?;
            let v = serde_json::to_value(&report).unwrap_or(Value::Null);
            print(
                json_out,
                &v,
                &format!("sent to {} of {} chats", report.sent, report.attempted),
            );
            Ok(if report.ok { 0 } else { 1 })
        }
    }
}

fn load() -> Result<ConfigFile, crate::RouterError> {
    let paths = Paths::resolve(&ProcessEnv)?;
    Ok(ConfigFile::load(&paths.config)?)
}

fn telegram(json_out: bool, action: TelegramAction) -> CliResult {
    let mut file = load()?;
    match action {
        TelegramAction::List => {
            let items: Vec<Value> = file
                .telegram_bots()
                .iter()
                .map(|b| {
                    json!({
                "id": b.id, "enabled": b.enabled, "access": b.access, "token": mask(&b.token),
                "directory": b.directory })
                })
                .collect();
            let text = items
                .iter()
                .map(|i| {
                    format!(
                        "{} {} {} {}",
                        i["id"].as_str().unwrap_or(""),
                        i["token"].as_str().unwrap_or(""),
                        i["access"].as_str().unwrap_or(""),
                        if i["enabled"] == true {
                            "enabled"
                        } else {
                            "disabled"
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(json_out, &json!({"items": items}), &text);
        }
        TelegramAction::Add {
            token,
            id,
            disabled,
            public,
            dir,
        } => {
            let id = crate::config::normalize_id(id.as_deref().unwrap_or("default"));
            let code = (!public).then(crate::pairing::new_code);
            let bot = TelegramBot {
                id: id.clone(),
                token,
                enabled: !disabled,
                directory: dir,
                access: if public {
                    Access::Public
                } else {
                    Access::Private
                },
                pairing_code_hash: code.as_deref().map(crate::pairing::hash_code),
            };
            file.upsert_telegram(&bot);
            file.save()?;
            let text = match &code {
                Some(c) => format!(
                    "added telegram bot {id} (private). Pairing code, shown once: {c}\nIn the chat, send: /pair {c}"
                ),
                None => format!("added telegram bot {id} (public: anyone who finds it can use it)"),
            };
            print(
                json_out,
                &json!({"ok": true, "id": id, "pairingCode": code}),
                &text,
            );
        }
        TelegramAction::Remove { id } => {
            let removed = file.remove_identity("telegram", &crate::config::normalize_id(&id));
            file.save()?;
            print(
                json_out,
                &json!({"ok": true, "deleted": removed}),
                if removed { "removed" } else { "no such bot" },
            );
        }
    }
    Ok(0)
}

fn slack(json_out: bool, action: SlackAction) -> CliResult {
    let mut file = load()?;
    match action {
        SlackAction::List => {
            let items: Vec<Value> = file.slack_apps().iter().map(|a| json!({
                "id": a.id, "enabled": a.enabled, "botToken": mask(&a.bot_token), "directory": a.directory })).collect();
            let text = items
                .iter()
                .map(|i| {
                    format!(
                        "{} {}",
                        i["id"].as_str().unwrap_or(""),
                        i["botToken"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(json_out, &json!({"items": items}), &text);
        }
        SlackAction::Add {
            bot_token,
            app_token,
            id,
            disabled,
            dir,
        } => {
            let id = crate::config::normalize_id(id.as_deref().unwrap_or("default"));
            file.upsert_slack(&SlackApp {
                id: id.clone(),
                bot_token,
                app_token,
                enabled: !disabled,
                directory: dir,
            });
            file.save()?;
            print(
                json_out,
                &json!({"ok": true, "id": id}),
                &format!("added slack app {id}"),
            );
        }
        SlackAction::Remove { id } => {
            let removed = file.remove_identity("slack", &crate::config::normalize_id(&id));
            file.save()?;
            print(
                json_out,
                &json!({"ok": true, "deleted": removed}),
                if removed { "removed" } else { "no such app" },
            );
        }
    }
    Ok(0)
}

fn bindings(json_out: bool, action: BindingsAction) -> CliResult {
    let (s, _) = settings(None, None)?;
    let store = crate::store::Store::open(&s.paths.db)?;
    match action {
        BindingsAction::List { channel, identity } => {
            let items = store.bindings(channel.as_deref(), identity.as_deref())?;
            let text = items
                .iter()
                .map(|b| {
                    format!(
                        "{}/{} {} -> {}",
                        b.channel, b.identity_id, b.peer_id, b.directory
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(json_out, &json!({"items": items}), &text);
        }
        BindingsAction::Set {
            channel,
            identity,
            peer,
            dir,
        } => {
            let dir =
                crate::pipeline::confine(&s.root, &dir).map_err(crate::RouterError::Directory)?;
            store.set_binding(
                &ChatKey::new(&channel, &identity, &peer),
                &dir.display().to_string(),
            )?;
            print(
                json_out,
                &json!({"ok": true, "directory": dir}),
                &format!("bound {channel}/{identity} {peer} -> {}", dir.display()),
            );
        }
        BindingsAction::Clear {
            channel,
            identity,
            peer,
        } => {
            let removed = store.clear_binding(&ChatKey::new(&channel, &identity, &peer))?;
            print(
                json_out,
                &json!({"ok": true, "cleared": removed}),
                if removed {
                    "cleared"
                } else {
                    "no such binding"
                },
            );
        }
    }
    Ok(0)
}
