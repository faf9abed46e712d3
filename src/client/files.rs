//! `openwork files …`: remote file sessions on a workspace through openwork-server (reference
//! §D3): session create/renew/close, catalog, events, read, write, mkdir, delete, rename.
//! Authenticated with a client token (`Authorization: Bearer`).

use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::approvals::encode;
use super::{ClientError, base_url, http, print_json, send, table, text};

#[derive(Debug, Clone, Args)]
pub struct FilesArgs {
    #[command(subcommand)]
    pub action: FilesAction,
    /// openwork-server URL.
    #[arg(long, global = true, env = "OPENWORK_URL", value_name = "URL")]
    pub openwork_url: Option<String>,
    /// Client token (collaborator or owner for writes).
    #[arg(
        long,
        global = true,
        env = "OPENWORK_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        visible_alias = "openwork-token"
    )]
    pub token: Option<String>,
    /// Print the server's JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The session id: `--session-id` or the positional.
#[derive(Debug, Clone, Args)]
pub struct Sid {
    /// File session id.
    #[arg(value_name = "SESSION_ID")]
    pub session: Option<String>,
    #[arg(long = "session-id", value_name = "ID")]
    pub session_id: Option<String>,
}

impl Sid {
    fn get(&self) -> Result<String, ClientError> {
        self.session_id
            .clone()
            .or_else(|| self.session.clone())
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                ClientError::Usage("session-id is required (positional or --session-id)".into())
            })
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum FilesAction {
    /// Create, renew or close a file session.
    Session {
        #[command(subcommand)]
        action: SessionAction,
    },
    /// List files of the workspace (one page).
    Catalog {
        #[command(flatten)]
        sid: Sid,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        after: Option<String>,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: Option<u32>,
        /// Leave directories out.
        #[arg(long)]
        no_include_dirs: bool,
    },
    /// Changes since a cursor.
    Events {
        #[command(flatten)]
        sid: Sid,
        #[arg(long)]
        since: Option<u64>,
    },
    /// Read files.
    Read {
        #[command(flatten)]
        sid: Sid,
        /// One path (or use --path / --paths).
        #[arg(value_name = "PATH")]
        positional: Option<String>,
        #[arg(long)]
        path: Option<String>,
        /// Several paths: comma/semicolon list or JSON array.
        #[arg(long)]
        paths: Option<String>,
    },
    /// Write one file.
    Write {
        #[command(flatten)]
        sid: Sid,
        #[arg(value_name = "PATH")]
        positional: Option<String>,
        #[arg(long)]
        path: Option<String>,
        /// UTF-8 text content.
        #[arg(long, group = "content_src")]
        content: Option<String>,
        /// Base64 content.
        #[arg(long, group = "content_src")]
        content_base64: Option<String>,
        /// Content from a local file.
        #[arg(long, group = "content_src")]
        file: Option<std::path::PathBuf>,
        /// Only write if the file still has this revision.
        #[arg(long, value_name = "REVISION")]
        if_match: Option<String>,
        /// Overwrite regardless of the revision.
        #[arg(long)]
        force: bool,
    },
    /// Create a directory.
    Mkdir {
        #[command(flatten)]
        sid: Sid,
        #[arg(value_name = "PATH")]
        positional: Option<String>,
        #[arg(long)]
        path: Option<String>,
    },
    /// Delete a file or directory.
    Delete {
        #[command(flatten)]
        sid: Sid,
        #[arg(value_name = "PATH")]
        positional: Option<String>,
        #[arg(long)]
        path: Option<String>,
        #[arg(long)]
        recursive: bool,
    },
    /// Rename a file or directory.
    Rename {
        #[command(flatten)]
        sid: Sid,
        #[arg(value_name = "FROM")]
        from_pos: Option<String>,
        #[arg(value_name = "TO")]
        to_pos: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum SessionAction {
    /// Open a session on a workspace.
    Create {
        /// Workspace id (or --workspace-id).
        #[arg(value_name = "WORKSPACE_ID")]
        workspace: Option<String>,
        #[arg(long)]
        workspace_id: Option<String>,
        #[arg(long)]
        ttl_seconds: Option<u64>,
        /// Writable session (default).
        #[arg(long, overrides_with = "no_write")]
        write: bool,
        /// Read-only session.
        #[arg(long)]
        no_write: bool,
    },
    /// Extend a session.
    Renew {
        #[command(flatten)]
        sid: Sid,
        #[arg(long)]
        ttl_seconds: Option<u64>,
    },
    /// Close a session.
    #[command(alias = "delete")]
    Close {
        #[command(flatten)]
        sid: Sid,
    },
}

fn required(
    first: &Option<String>,
    second: &Option<String>,
    what: &str,
) -> Result<String, ClientError> {
    first
        .clone()
        .or_else(|| second.clone())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ClientError::Usage(format!("{what} is required")))
}

/// Turns a response into the human summary and whether every item succeeded.
type Summary = fn(&Value) -> (String, bool);

/// Splits `--paths`: a JSON array or a `,`/`;` list.
pub fn split_paths(raw: &str) -> Result<Vec<String>, ClientError> {
    let t = raw.trim();
    let items: Vec<String> = if t.starts_with('[') {
        serde_json::from_str(t).map_err(|e| {
            ClientError::Usage(format!("--paths {raw}: not a JSON array of strings ({e})"))
        })?
    } else {
        t.split([',', ';']).map(str::to_string).collect()
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

/// Runs the command.
pub async fn run(args: &FilesArgs) -> Result<(), ClientError> {
    let given = args
        .openwork_url
        .clone()
        .or_else(|| std::env::var("OPENWORK_SERVER_URL").ok());
    let url = base_url(given.as_deref(), "the openwork-server URL")?;
    let token = args
        .token
        .clone()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            ClientError::Usage(
                "a client token is required (pass --token TOKEN or set OPENWORK_TOKEN)".into(),
            )
        })?;
    let client = http();
    let auth = format!("Bearer {token}");
    let post = |path: String, body: Value| {
        client
            .post(format!("{url}{path}"))
            .header("Authorization", &auth)
            .json(&body)
    };
    let (body, summary): (Value, Summary) = match &args.action {
        FilesAction::Session { action } => match action {
            SessionAction::Create {
                workspace,
                workspace_id,
                ttl_seconds,
                write: _,
                no_write,
            } => {
                let ws = required(
                    workspace_id,
                    workspace,
                    "workspace-id (positional or --workspace-id)",
                )?;
                let mut body = json!({ "write": !no_write });
                if let Some(t) = ttl_seconds {
                    body["ttlSeconds"] = json!(t);
                }
                let r = send(
                    &url,
                    post(format!("/workspace/{}/files/sessions", encode(&ws)), body),
                )
                .await?;
                (r, session_summary)
            }
            SessionAction::Renew { sid, ttl_seconds } => {
                let mut body = json!({});
                if let Some(t) = ttl_seconds {
                    body["ttlSeconds"] = json!(t);
                }
                let r = send(
                    &url,
                    post(
                        format!("/files/sessions/{}/renew", encode(&sid.get()?)),
                        body,
                    ),
                )
                .await?;
                (r, session_summary)
            }
            SessionAction::Close { sid } => {
                let r = send(
                    &url,
                    client
                        .delete(format!("{url}/files/sessions/{}", encode(&sid.get()?)))
                        .header("Authorization", &auth),
                )
                .await?;
                (r, |_| ("Session closed.".to_string(), true))
            }
        },
        FilesAction::Catalog {
            sid,
            prefix,
            after,
            limit,
            no_include_dirs,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(p) = prefix {
                query.push(("prefix", p.clone()));
            }
            if let Some(a) = after {
                query.push(("after", a.clone()));
            }
            if let Some(l) = limit {
                query.push(("limit", l.to_string()));
            }
            if *no_include_dirs {
                query.push(("includeDirs", "false".into()));
            }
            let r = send(
                &url,
                client
                    .get(format!(
                        "{url}/files/sessions/{}/catalog/snapshot",
                        encode(&sid.get()?)
                    ))
                    .query(&query)
                    .header("Authorization", &auth),
            )
            .await?;
            (r, catalog_summary)
        }
        FilesAction::Events { sid, since } => {
            let mut req = client
                .get(format!(
                    "{url}/files/sessions/{}/catalog/events",
                    encode(&sid.get()?)
                ))
                .header("Authorization", &auth);
            if let Some(s) = since {
                req = req.query(&[("since", s.to_string())]);
            }
            (send(&url, req).await?, events_summary)
        }
        FilesAction::Read {
            sid,
            positional,
            path,
            paths,
        } => {
            let list = match (paths, path, positional) {
                (Some(p), _, _) => split_paths(p)?,
                (None, Some(p), _) | (None, None, Some(p)) => vec![p.clone()],
                (None, None, None) => {
                    return Err(ClientError::Usage(
                        "path or paths is required for files read".into(),
                    ));
                }
            };
            let r = send(
                &url,
                post(
                    format!("/files/sessions/{}/read-batch", encode(&sid.get()?)),
                    json!({ "paths": list }),
                ),
            )
            .await?;
            (r, read_summary)
        }
        FilesAction::Write {
            sid,
            positional,
            path,
            content,
            content_base64,
            file,
            if_match,
            force,
        } => {
            let p = required(
                path,
                positional,
                "path (positional or --path) for files write",
            )?;
            let b64 = match (content_base64, content, file) {
                (Some(b), _, _) => {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .map_err(|e| {
                            ClientError::Usage(format!("--content-base64 is not valid base64: {e}"))
                        })?;
                    b.trim().to_string()
                }
                (None, Some(t), _) => {
                    base64::engine::general_purpose::STANDARD.encode(t.as_bytes())
                }
                (None, None, Some(f)) => {
                    let bytes = std::fs::read(f).map_err(|source| ClientError::File {
                        path: f.display().to_string(),
                        source,
                    })?;
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                }
                (None, None, None) => {
                    return Err(ClientError::Usage(
                        "provide one of --content, --content-base64, or --file".into(),
                    ));
                }
            };
            let mut w = json!({ "path": p, "contentBase64": b64 });
            if let Some(rev) = if_match {
                w["ifMatchRevision"] = json!(rev);
            }
            if *force {
                w["force"] = json!(true);
            }
            let r = send(
                &url,
                post(
                    format!("/files/sessions/{}/write-batch", encode(&sid.get()?)),
                    json!({ "writes": [w] }),
                ),
            )
            .await?;
            (r, items_summary)
        }
        FilesAction::Mkdir {
            sid,
            positional,
            path,
        } => {
            let p = required(path, positional, "path for files mkdir")?;
            let op = json!({ "type": "mkdir", "path": p });
            (ops(&url, &post, &sid.get()?, op).await?, items_summary)
        }
        FilesAction::Delete {
            sid,
            positional,
            path,
            recursive,
        } => {
            let p = required(path, positional, "path for files delete")?;
            let mut op = json!({ "type": "delete", "path": p });
            if *recursive {
                op["recursive"] = json!(true);
            }
            (ops(&url, &post, &sid.get()?, op).await?, items_summary)
        }
        FilesAction::Rename {
            sid,
            from_pos,
            to_pos,
            from,
            to,
        } => {
            let f = required(from, from_pos, "from (and to) for files rename")?;
            let t = required(to, to_pos, "to for files rename")?;
            let op = json!({ "type": "rename", "from": f, "to": t });
            (ops(&url, &post, &sid.get()?, op).await?, items_summary)
        }
    };
    if args.json {
        print_json(&body);
        return if batch_failed(&body) {
            Err(ClientError::Partial("some items failed".into()))
        } else {
            Ok(())
        };
    }
    let (text, ok) = summary(&body);
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    if ok {
        Ok(())
    } else {
        Err(ClientError::Partial("some items failed (see above)".into()))
    }
}

async fn ops<F>(url: &str, post: &F, sid: &str, op: Value) -> Result<Value, ClientError>
where
    F: Fn(String, Value) -> reqwest::RequestBuilder,
{
    send(
        url,
        post(
            format!("/files/sessions/{}/ops", encode(sid)),
            json!({ "operations": [op] }),
        ),
    )
    .await
}

fn batch_failed(body: &Value) -> bool {
    body["items"]
        .as_array()
        .is_some_and(|items| items.iter().any(|i| i["ok"] == Value::Bool(false)))
}

fn session_summary(body: &Value) -> (String, bool) {
    let s = &body["session"];
    (
        format!(
            "Session {} on workspace {} ({}), expires at {}",
            text(&s["id"]),
            text(&s["workspaceId"]),
            if s["canWrite"] == Value::Bool(true) {
                "read-write"
            } else {
                "read-only"
            },
            text(&s["expiresAt"])
        ),
        true,
    )
}

fn catalog_summary(body: &Value) -> (String, bool) {
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                text(&i["path"]),
                text(&i["kind"]),
                text(&i["size"]),
                text(&i["revision"]),
            ]
        })
        .collect();
    let mut s = table(&["PATH", "KIND", "SIZE", "REVISION"], &rows);
    s.push_str(&format!(
        "{} of {} entries",
        items.len(),
        text(&body["total"])
    ));
    if body["truncated"] == Value::Bool(true) {
        s.push_str(&format!(" (more: --after {})", text(&body["nextAfter"])));
    }
    s.push_str(&format!("; cursor {}\n", text(&body["cursor"])));
    (s, true)
}

fn events_summary(body: &Value) -> (String, bool) {
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let mut s = String::new();
    for e in &items {
        let to = if e["toPath"].is_null() {
            String::new()
        } else {
            format!(" -> {}", text(&e["toPath"]))
        };
        s.push_str(&format!(
            "{} {} {}{to}\n",
            text(&e["seq"]),
            text(&e["type"]),
            text(&e["path"])
        ));
    }
    s.push_str(&format!(
        "{} events; cursor {}\n",
        items.len(),
        text(&body["cursor"])
    ));
    (s, true)
}

fn read_summary(body: &Value) -> (String, bool) {
    let mut s = String::new();
    let mut ok = true;
    for i in body["items"].as_array().cloned().unwrap_or_default() {
        if i["ok"] == Value::Bool(false) {
            ok = false;
            s.push_str(&format!(
                "== {}: error {}: {}\n",
                text(&i["path"]),
                text(&i["code"]),
                text(&i["message"])
            ));
            continue;
        }
        let bytes = i["contentBase64"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_default();
        s.push_str(&format!(
            "== {} (revision {}, {} bytes)\n",
            text(&i["path"]),
            text(&i["revision"]),
            bytes.len()
        ));
        match String::from_utf8(bytes) {
            Ok(t) => {
                s.push_str(&t);
                if !t.ends_with('\n') {
                    s.push('\n');
                }
            }
            Err(_) => s.push_str("(binary content; use --json for base64)\n"),
        }
    }
    (s, ok)
}

fn items_summary(body: &Value) -> (String, bool) {
    let mut s = String::new();
    let mut ok = true;
    for i in body["items"].as_array().cloned().unwrap_or_default() {
        let what = if i["path"].is_null() {
            text(&i["from"])
        } else {
            text(&i["path"])
        };
        if i["ok"] == Value::Bool(false) {
            ok = false;
            s.push_str(&format!(
                "{what}: {} {}\n",
                text(&i["code"]),
                text(&i["message"])
            ));
        } else if !i["revision"].is_null() {
            s.push_str(&format!("{what}: ok (revision {})\n", text(&i["revision"])));
        } else {
            s.push_str(&format!("{what}: ok\n"));
        }
    }
    (s, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_like_the_original() {
        assert_eq!(split_paths("a, b;c").unwrap(), ["a", "b", "c"]);
        assert_eq!(split_paths(r#"["x y","z"]"#).unwrap(), ["x y", "z"]);
        assert!(split_paths("[1]").is_err());
    }

    #[test]
    fn summaries_flag_failed_items() {
        let (s, ok) = items_summary(
            &json!({"items": [{"ok": false, "path": "a", "code": "conflict", "message": "changed"}]}),
        );
        assert!(!ok);
        assert!(s.contains("a: conflict changed"), "{s}");
        let (s, ok) = read_summary(
            &json!({"items": [{"ok": true, "path": "r.md", "revision": "1:2", "contentBase64": "aGk="}]}),
        );
        assert!(ok);
        assert!(s.contains("hi"), "{s}");
    }
}
