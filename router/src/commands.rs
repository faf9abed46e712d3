//! Slash commands a chat can send (`/help`, `/reset`, `/dir`, `/model`, `/pair`); they are
//! answered by the bridge and never reach the agent.
//!
//! Threats handled here: `/dir` moving a chat outside the workspace (confined like every other
//! directory), `/pair` brute force (failures limited per chat, see the store), and a pairing
//! code reused by a second chat after the first paired (a code binds any chat that knows it:
//! rotate it with `telegram add --private` to stop further pairings).

use std::sync::Arc;

use crate::pipeline::{App, HELP, confine};
use crate::store::ChatKey;

/// `/name arg` → (`name`, `arg`); `None` for ordinary text. Unknown commands are ordinary text.
pub fn parse(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix('/')?;
    let (name, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let name = name.split('@').next().unwrap_or(name);
    let known = ["help", "start", "reset", "dir", "model", "pair"];
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| (*k, arg.trim()))
}

/// `/pair <code>` for a chat that is not bound yet.
pub fn pair(
    app: &App,
    key: &ChatKey,
    code: &str,
    hash: Option<&str>,
    identity_dir: Option<&str>,
) -> String {
    let Some(hash) = hash else {
        return "🔒 This bot has no pairing code. Ask its owner to bind this chat.".into();
    };
    if code.is_empty() {
        return "Send /pair <code> with the code the bot's owner gave you.".into();
    }
    match app.store.pairing_allowed(key) {
        Ok(true) => {}
        Ok(false) => return "⛔ Too many wrong codes. Try again in an hour.".into(),
        Err(_) => return "⚠️ The bridge cannot read its state. Try again later.".into(),
    }
    if !crate::pairing::verify(code, hash) {
        let _ = app.store.pairing_failure(key);
        return "❌ Invalid pairing code.".into();
    }
    let root = &app.settings.root;
    let dir = identity_dir
        .and_then(|d| confine(root, d).ok())
        .unwrap_or_else(|| root.clone());
    match app.store.set_binding(key, &dir.display().to_string()) {
        Ok(()) => "✅ Pairing successful. Send a message to talk to the agent.".into(),
        Err(_) => "⚠️ The bridge cannot save the pairing. Try again later.".into(),
    }
}

/// Runs a command for a chat that may talk to the agent; `None` lets the text through.
pub async fn run(
    app: &Arc<App>,
    key: &ChatKey,
    name: &str,
    arg: &str,
    bound: Option<&str>,
) -> Option<String> {
    let answer = match name {
        "help" | "start" => HELP.to_string(),
        "pair" => "✅ This chat is already paired.".into(),
        "reset" => {
            let _ = app.store.set_model(key, None);
            match app.store.clear_session(key) {
                Ok(()) => "🧹 Session reset. Your next message starts a fresh conversation.".into(),
                Err(_) => "⚠️ The bridge cannot reset the session. Try again later.".into(),
            }
        }
        "dir" if arg.is_empty() => {
            let current = bound
                .map(str::to_string)
                .or_else(|| app.store.session(key).ok().flatten().map(|s| s.directory))
                .unwrap_or_else(|| app.settings.root.display().to_string());
            format!("📁 {current}")
        }
        "dir" => match confine(&app.settings.root, arg) {
            Ok(dir) => {
                let dir = dir.display().to_string();
                match app.store.set_binding(key, &dir) {
                    Ok(()) => {
                        let _ = app.store.clear_session(key);
                        format!(
                            "📁 This chat now works in {dir}. A new session starts with your next message."
                        )
                    }
                    Err(_) => "⚠️ The bridge cannot save the directory. Try again later.".into(),
                }
            }
            Err(e) => format!("⚠️ {e}."),
        },
        "model" if arg.is_empty() => {
            let chosen = app.store.model(key).ok().flatten();
            match (chosen, &app.settings.model) {
                (Some(m), _) => format!("🤖 {m} (chosen for this chat)"),
                (None, Some(m)) => format!("🤖 {m} (the bridge's default)"),
                (None, None) => "🤖 opencode's default model".into(),
            }
        }
        "model" if arg.eq_ignore_ascii_case("default") => match app.store.set_model(key, None) {
            Ok(()) => "🤖 Back to the default model.".into(),
            Err(_) => "⚠️ The bridge cannot save the model. Try again later.".into(),
        },
        "model" => {
            let valid = arg.split_once('/').is_some_and(|(p, m)| {
                !p.is_empty() && !m.is_empty() && !arg.contains(char::is_whitespace)
            });
            if !valid {
                "Usage: /model provider/model (or /model default)".into()
            } else {
                match app.store.set_model(key, Some(arg)) {
                    Ok(()) => format!("🤖 This chat now uses {arg}."),
                    Err(_) => "⚠️ The bridge cannot save the model. Try again later.".into(),
                }
            }
        }
        _ => return None,
    };
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_commands_only() {
        assert_eq!(parse("/dir  sub/x "), Some(("dir", "sub/x")));
        assert_eq!(parse("/HELP"), Some(("help", "")));
        assert_eq!(parse("/pair@bot ABC"), Some(("pair", "ABC")));
        assert_eq!(parse("/usr/bin is a dir"), None);
        assert_eq!(parse("hello"), None);
    }
}
