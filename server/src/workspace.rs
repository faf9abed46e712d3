//! The workspace model: a directory on disk plus how to reach its OpenCode
//! instance, its id, and how it is shown to clients (reference §A6).
//!
//! Threat handled here: the OpenCode Basic-auth credentials are part of a
//! workspace, and the original returned them to every client token, viewers
//! included (weakness W1). [`Workspace::to_json`] shows them only when the
//! caller says the actor may see them (collaborator or above).

use camino::{Utf8Component, Utf8Path, Utf8PathBuf};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::Secret;

/// Whether the workspace lives on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceType {
    /// A directory on this machine; its OpenCode directory defaults to its path.
    Local,
    /// A remote workspace; it has an OpenCode directory only if one is given.
    Remote,
}

impl WorkspaceType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Remote => "remote",
        }
    }
}

/// One workspace as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// `ws_` + first 12 hex chars of SHA-256 of the absolute path.
    pub id: String,
    /// Display name; defaults to the last path component.
    pub name: String,
    /// Absolute, lexically normalised path.
    pub path: Utf8PathBuf,
    /// Local or remote.
    pub workspace_type: WorkspaceType,
    /// OpenCode base URL, if attached.
    pub base_url: Option<String>,
    /// Explicit OpenCode directory, if given.
    pub directory: Option<String>,
    /// OpenCode Basic-auth user name.
    pub opencode_username: Option<Secret>,
    /// OpenCode Basic-auth password.
    pub opencode_password: Option<Secret>,
}

/// Makes `raw` absolute against `base` and removes `.`/`..` components and
/// trailing separators lexically, like Node's `path.resolve` (symlinks are not
/// followed, so the id matches what the original computes).
pub fn resolve_path(raw: &Utf8Path, base: &Utf8Path) -> Utf8PathBuf {
    let joined = if raw.is_absolute() {
        raw.to_path_buf()
    } else {
        base.join(raw)
    };
    let mut out = Utf8PathBuf::new();
    for component in joined.components() {
        match component {
            Utf8Component::Prefix(p) => out.push(p.as_str()),
            Utf8Component::RootDir => out.push("/"),
            Utf8Component::CurDir => {}
            Utf8Component::ParentDir => {
                out.pop();
            }
            Utf8Component::Normal(part) => out.push(part),
        }
    }
    if out.as_str().is_empty() {
        out.push("/");
    }
    out
}

/// `ws_` + the first 12 hex characters of SHA-256 of `path` (reference §A6).
pub fn workspace_id(path: &Utf8Path) -> String {
    let digest = Sha256::digest(path.as_str().as_bytes());
    let hex = hex::encode(digest);
    format!("ws_{}", &hex[..12])
}

impl Workspace {
    /// A local workspace at an absolute, normalised path, without OpenCode attachment.
    pub fn local(path: Utf8PathBuf) -> Self {
        let name = path.file_name().unwrap_or(path.as_str()).to_owned();
        Self {
            id: workspace_id(&path),
            name,
            path,
            workspace_type: WorkspaceType::Local,
            base_url: None,
            directory: None,
            opencode_username: None,
            opencode_password: None,
        }
    }

    /// The directory OpenCode should use: the explicit one, else the path for
    /// a local workspace, else none.
    pub fn opencode_directory(&self) -> Option<String> {
        match (&self.directory, self.workspace_type) {
            (Some(dir), _) => Some(dir.clone()),
            (None, WorkspaceType::Local) => Some(self.path.to_string()),
            (None, WorkspaceType::Remote) => None,
        }
    }

    /// The serialised workspace. `reveal_credentials` controls whether the
    /// OpenCode user name and password are included (owner scope only).
    pub fn to_json(&self, reveal_credentials: bool) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        out.insert("name".into(), json!(self.name));
        out.insert("path".into(), json!(self.path));
        out.insert("workspaceType".into(), json!(self.workspace_type.as_str()));
        let directory = self.opencode_directory();
        if let Some(url) = &self.base_url {
            out.insert("baseUrl".into(), json!(url));
        }
        if let Some(dir) = &directory {
            out.insert("directory".into(), json!(dir));
        }
        let has_opencode = self.base_url.is_some()
            || self.directory.is_some()
            || self.opencode_username.is_some()
            || self.opencode_password.is_some();
        if has_opencode {
            let mut oc = Map::new();
            if let Some(url) = &self.base_url {
                oc.insert("baseUrl".into(), json!(url));
            }
            if let Some(dir) = &directory {
                oc.insert("directory".into(), json!(dir));
            }
            if reveal_credentials {
                if let Some(user) = &self.opencode_username {
                    oc.insert("username".into(), json!(user.expose()));
                }
                if let Some(pass) = &self.opencode_password {
                    oc.insert("password".into(), json!(pass.expose()));
                }
            }
            out.insert("opencode".into(), Value::Object(oc));
        }
        Value::Object(out)
    }
}

/// The OpenCode attachment given by flags or env (reference §A5).
#[derive(Debug, Clone, Default)]
pub struct OpencodeAttachment {
    /// OpenCode base URL.
    pub base_url: Option<String>,
    /// OpenCode directory; applied only when there is exactly one workspace.
    pub directory: Option<String>,
    /// Basic-auth user name.
    pub username: Option<Secret>,
    /// Basic-auth password.
    pub password: Option<Secret>,
}

impl OpencodeAttachment {
    /// Applies the attachment as the original does: if anything is set, every
    /// workspace gets the base URL (unless it has one) and the credentials; the
    /// directory only when there is exactly one workspace.
    pub fn apply(&self, workspaces: &mut [Workspace]) {
        let any = self.base_url.is_some()
            || self.directory.is_some()
            || self.username.is_some()
            || self.password.is_some();
        if !any {
            return;
        }
        let single = workspaces.len() == 1;
        for ws in workspaces.iter_mut() {
            if ws.base_url.is_none() {
                ws.base_url.clone_from(&self.base_url);
            }
            // Credentials given by flag or env replace a workspace's own
            // (from server.json); absent ones leave them alone.
            if self.username.is_some() {
                ws.opencode_username.clone_from(&self.username);
            }
            if self.password.is_some() {
                ws.opencode_password.clone_from(&self.password);
            }
            if single && self.directory.is_some() {
                ws.directory.clone_from(&self.directory);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_sha256_prefix_of_the_path() {
        // sha256("/abs/proj") computed independently with `sha256sum`.
        let id = workspace_id(Utf8Path::new("/abs/proj"));
        let expected = hex::encode(Sha256::digest(b"/abs/proj"));
        assert_eq!(id, format!("ws_{}", &expected[..12]));
        assert_eq!(id.len(), 15);
    }

    #[test]
    fn resolve_normalises_like_node() {
        let base = Utf8Path::new("/home/u");
        assert_eq!(resolve_path(Utf8Path::new("proj/"), base), "/home/u/proj");
        assert_eq!(resolve_path(Utf8Path::new("./a/../b"), base), "/home/u/b");
        assert_eq!(resolve_path(Utf8Path::new("/x/./y/"), base), "/x/y");
        assert_eq!(resolve_path(Utf8Path::new("/.."), base), "/");
    }

    #[test]
    fn viewers_do_not_see_credentials() {
        let mut ws = vec![Workspace::local("/abs/proj".into())];
        OpencodeAttachment {
            base_url: Some("http://127.0.0.1:4096".into()),
            directory: Some("/abs/proj".into()),
            username: Some(Secret::new("u")),
            password: Some(Secret::new("p")),
        }
        .apply(&mut ws);
        let full = ws[0].to_json(true);
        assert_eq!(full["opencode"]["username"], "u");
        assert_eq!(full["opencode"]["password"], "p");
        assert_eq!(full["opencode"]["directory"], "/abs/proj");
        let redacted = ws[0].to_json(false);
        assert!(redacted["opencode"].get("password").is_none());
        assert!(redacted["opencode"].get("username").is_none());
        assert_eq!(redacted["name"], "proj");
    }

    #[test]
    fn opencode_is_omitted_without_attachment() {
        let ws = Workspace::local("/abs/proj".into());
        let json = ws.to_json(true);
        assert!(json.get("opencode").is_none());
        assert_eq!(json["directory"], "/abs/proj");
    }

    #[test]
    fn directory_applies_only_to_a_single_workspace() {
        let mut ws = vec![Workspace::local("/a".into()), Workspace::local("/b".into())];
        OpencodeAttachment {
            directory: Some("/elsewhere".into()),
            ..Default::default()
        }
        .apply(&mut ws);
        assert_eq!(ws[0].directory, None);
    }
}
