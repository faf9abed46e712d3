//! Keys → actions. Pure: the app loop carries the actions out, the tests read the table.
//!
//! Threat addressed: a stray key that stops the run. Quit is `q` or Ctrl-C and asks for a `y`
//! when something would be lost (the model decides); while a modal is open only its own keys
//! act, so typing a search cannot quit, restart or allow anything.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::state::Modal;

/// What a key asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    /// Quit confirmed in the dialog.
    ConfirmQuit,
    Detach,
    RestartSelected,
    AllowSelected,
    DenySelected,
    ToggleFollow,
    CycleServiceFilter,
    CycleLevelFilter,
    StartSearch,
    SearchInput(char),
    SearchBackspace,
    SearchApply,
    ToggleReveal,
    CopyAttach,
    Help,
    /// Close the modal (help, search, quit dialog).
    Close,
    FocusNext,
    Up,
    Down,
    PageUp,
    PageDown,
    ToggleFullLogs,
}

/// The bindings, for the footer and the help view: (keys, what they do).
pub const BINDINGS: &[(&str, &str)] = &[
    ("q", "quit (stops the services)"),
    ("d", "detach (services keep running)"),
    ("tab", "focus services / approvals / logs"),
    ("↑↓ j k", "select; scroll the logs"),
    ("r", "restart the selected service"),
    ("a / x", "allow / deny the selected approval"),
    ("f", "follow the log on/off"),
    ("s", "filter logs by service"),
    ("e", "filter logs by level"),
    ("/", "search the logs"),
    ("l", "logs full screen"),
    ("v", "reveal / mask secrets"),
    ("c", "copy the attach command"),
    ("?", "this help"),
];

/// The action of `key` with `modal` open (or none).
pub fn action(key: KeyEvent, modal: Option<&Modal>) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
    match modal {
        Some(Modal::Search { .. }) => {
            return match key.code {
                KeyCode::Enter => Some(Action::SearchApply),
                KeyCode::Esc => Some(Action::Close),
                KeyCode::Backspace => Some(Action::SearchBackspace),
                _ if ctrl_c => Some(Action::Close),
                KeyCode::Char(c) => Some(Action::SearchInput(c)),
                _ => None,
            };
        }
        Some(Modal::ConfirmQuit { .. }) => {
            return match key.code {
                KeyCode::Char('y' | 'Y') => Some(Action::ConfirmQuit),
                KeyCode::Char('n' | 'N') | KeyCode::Esc => Some(Action::Close),
                _ => None,
            };
        }
        Some(Modal::Help) => {
            return match key.code {
                KeyCode::Char('q') => Some(Action::Quit),
                _ if ctrl_c => Some(Action::Quit),
                _ => Some(Action::Close),
            };
        }
        None => {}
    }
    if ctrl_c {
        return Some(Action::Quit);
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('d') => Action::Detach,
        KeyCode::Char('r') => Action::RestartSelected,
        KeyCode::Char('a') => Action::AllowSelected,
        KeyCode::Char('x') => Action::DenySelected,
        KeyCode::Char('f') => Action::ToggleFollow,
        KeyCode::Char('s') => Action::CycleServiceFilter,
        KeyCode::Char('e') => Action::CycleLevelFilter,
        KeyCode::Char('/') => Action::StartSearch,
        KeyCode::Char('v') => Action::ToggleReveal,
        KeyCode::Char('c') => Action::CopyAttach,
        KeyCode::Char('?' | 'h') => Action::Help,
        KeyCode::Char('l') => Action::ToggleFullLogs,
        KeyCode::Tab => Action::FocusNext,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Esc => Action::Close,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn keys_map_to_actions() {
        assert_eq!(action(key(KeyCode::Char('q')), None), Some(Action::Quit));
        assert_eq!(
            action(
                KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
                None
            ),
            Some(Action::Quit)
        );
        assert_eq!(
            action(key(KeyCode::Char('c')), None),
            Some(Action::CopyAttach)
        );
        assert_eq!(
            action(key(KeyCode::Char('a')), None),
            Some(Action::AllowSelected)
        );
        assert_eq!(action(key(KeyCode::Char('Z')), None), None);
    }

    #[test]
    fn a_modal_takes_its_own_keys_only() {
        let search = Modal::Search {
            draft: String::new(),
        };
        assert_eq!(
            action(key(KeyCode::Char('q')), Some(&search)),
            Some(Action::SearchInput('q'))
        );
        let confirm = Modal::ConfirmQuit { reason: "r".into() };
        assert_eq!(action(key(KeyCode::Char('q')), Some(&confirm)), None);
        assert_eq!(
            action(key(KeyCode::Char('y')), Some(&confirm)),
            Some(Action::ConfirmQuit)
        );
        assert_eq!(
            action(key(KeyCode::Char('x')), Some(&Modal::Help)),
            Some(Action::Close)
        );
    }
}
