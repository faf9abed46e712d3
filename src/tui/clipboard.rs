//! Copying the attach command: OSC 52 (works over SSH and in tmux with `set-clipboard on`), plus
//! the desktop clipboard tools when one is installed (`wl-copy`, `xclip`, `xsel`, `pbcopy`).
//!
//! Threat addressed: the raw attach command (it holds opencode's password) ending up somewhere
//! other than the clipboard. It is handed to the terminal in one escape sequence or to a tool on
//! its stdin, never in an argv (readable in /proc) or a temporary file.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;

/// Where the text went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copied {
    /// A clipboard tool took it (its name); OSC 52 was sent too.
    Tool(&'static str),
    /// Only OSC 52 was sent: the terminal decides whether it reaches a clipboard.
    Osc52Only,
}

/// The OSC 52 sequence that sets the clipboard to `text`.
pub fn osc52(text: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    format!("\x1b]52;c;{b64}\x07")
}

/// Sends `text` to the clipboard: OSC 52 on stdout, then the first tool that accepts it.
pub fn copy(text: &str) -> Copied {
    let mut out = std::io::stdout();
    let _ = out.write_all(osc52(text).as_bytes());
    let _ = out.flush();
    let tools: [(&'static str, &[&str]); 4] = [
        ("wl-copy", &[]),
        ("xclip", &["-selection", "clipboard"]),
        ("xsel", &["--clipboard", "--input"]),
        ("pbcopy", &[]),
    ];
    for (tool, args) in tools {
        if pipe_to(tool, args, text) {
            return Copied::Tool(tool);
        }
    }
    Copied::Osc52Only
}

fn pipe_to(tool: &str, args: &[&str], text: &str) -> bool {
    let Ok(mut child) = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let wrote = child
        .stdin
        .take()
        .is_some_and(|mut s| s.write_all(text.as_bytes()).is_ok());
    wrote && child.wait().is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_carries_base64() {
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
    }
}
