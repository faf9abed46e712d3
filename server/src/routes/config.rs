//! `GET /workspace/:id/config`: the workspace's opencode config (`opencode.jsonc`, else
//! `opencode.json`, read as JSONC) and its OpenWork config (`.opencode/openwork.json`).
//!
//! Threat addressed: reading outside the workspace through a planted symlink. The files are
//! opened with `O_NOFOLLOW` on the final component and must be regular files; a symlinked
//! `.opencode` directory is refused too.

use std::io::Read;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use camino::Utf8Path;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::SharedState;

/// Largest config file read (a config is small; this bounds memory).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// `GET /workspace/:id/config`.
pub(crate) async fn get_config(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = state.workspace(&id)?;
    let root = ws.path.clone();
    let read = tokio::task::spawn_blocking(move || read_configs(&root))
        .await
        .map_err(|_| ApiError::internal())??;
    Ok(Json(read))
}

fn read_configs(root: &Utf8Path) -> Result<Value, ApiError> {
    let mut opencode = json!({});
    for name in ["opencode.jsonc", "opencode.json"] {
        if let Some(text) = read_regular(&root.join(name))? {
            opencode = parse_jsonc(&text).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_json",
                    format!("{name} is not valid JSON(C)"),
                )
            })?;
            break;
        }
    }
    let dot = root.join(".opencode");
    let openwork = match std::fs::symlink_metadata(&dot) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unsafe_path",
                ".opencode is a symbolic link; refusing to follow it",
            ));
        }
        Ok(m) if m.is_dir() => match read_regular(&dot.join("openwork.json"))? {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_json",
                    format!(".opencode/openwork.json: {e}"),
                )
            })?,
            None => json!({}),
        },
        _ => json!({}),
    };
    Ok(json!({ "opencode": opencode, "openwork": openwork, "updatedAt": Value::Null }))
}

/// The file's text, `None` when it does not exist; a symlink or a non-regular file is refused.
fn read_regular(path: &Utf8Path) -> Result<Option<String>, ApiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unsafe_path",
                format!(
                    "{} is not a readable regular file (symbolic links are refused)",
                    path.file_name().unwrap_or("config")
                ),
            ));
        }
    };
    let meta = file.metadata().map_err(|_| ApiError::internal())?;
    if !meta.is_file() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsafe_path",
            format!(
                "{} is not a regular file",
                path.file_name().unwrap_or("config")
            ),
        ));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES)
        .read_to_string(&mut text)
        .map_err(|_| ApiError::invalid_json())?;
    Ok(Some(text))
}

/// Parses JSON with `//` and `/* */` comments and trailing commas.
pub(crate) fn parse_jsonc(text: &str) -> Option<Value> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = '\0';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    // Trailing commas: a comma followed only by whitespace before } or ].
    let bytes: Vec<char> = out.chars().collect();
    let mut cleaned = String::with_capacity(bytes.len());
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            cleaned.push(c);
            if c == '\\' && i + 1 < bytes.len() {
                cleaned.push(bytes[i + 1]);
                i += 2;
                continue;
            }
            if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            cleaned.push(c);
        } else if c == ',' {
            let next = bytes[i + 1..].iter().find(|ch| !ch.is_whitespace());
            if !matches!(next, Some('}') | Some(']')) {
                cleaned.push(c);
            }
        } else {
            cleaned.push(c);
        }
        i += 1;
    }
    serde_json::from_str(&cleaned).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonc_comments_and_trailing_commas() {
        let v = parse_jsonc("{\n // c\n \"a\": \"x // not a comment\", /* b */ \"b\": [1,2,],\n}")
            .unwrap();
        assert_eq!(v["a"], "x // not a comment");
        assert_eq!(v["b"], json!([1, 2]));
        assert!(parse_jsonc("{").is_none());
    }

    #[test]
    fn symlinked_config_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(dir.path().join("secret.json"), "{\"k\":1}").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("opencode.json")).unwrap();
        let err = read_configs(root).unwrap_err();
        assert_eq!(err.body()["code"], "unsafe_path");
        std::fs::remove_file(dir.path().join("opencode.json")).unwrap();
        std::fs::write(dir.path().join("opencode.jsonc"), "{\"x\": 1, // c\n}").unwrap();
        let v = read_configs(root).unwrap();
        assert_eq!(v["opencode"]["x"], 1);
        assert_eq!(v["openwork"], json!({}));
    }
}
