//! TEMPORARY stand-in for sidecar resolution (replaced by the real module on the `sidecars`
//! branch): explicit binaries, bundled roles and PATH only.
#![allow(dead_code)]

use camino::Utf8PathBuf;

pub const OPENCODE_VERSION: &str = "1.18.34";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidecarName {
    Opencode,
    OpenworkServer,
    OpencodeRouter,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePolicy {
    Auto,
    Bundled,
    Downloaded,
    External,
    Npm,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Bundled,
    Cache,
    Downloaded,
    Npm,
    External,
}
impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Bundled => "bundled",
            Source::Cache => "cache",
            Source::Downloaded => "downloaded",
            Source::Npm => "npm",
            Source::External => "external",
        })
    }
}
#[derive(Debug, Clone)]
pub struct Target(pub String);
impl Target {
    pub fn host() -> Target {
        Target("linux-x64".into())
    }
}
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
#[derive(Debug, Clone)]
pub struct Attempt {
    pub source: Source,
    pub outcome: String,
}
pub struct ResolveSettings {
    pub sidecar_dir: Utf8PathBuf,
    pub base_url: String,
    pub manifest_url: String,
    pub target: Target,
    pub allow_external: bool,
    pub verify: bool,
    pub manifest_timeout: std::time::Duration,
    pub path_env: Option<std::ffi::OsString>,
}
pub struct SidecarRequest {
    pub name: SidecarName,
    pub policy: SourcePolicy,
    pub explicit_bin: Option<Utf8PathBuf>,
}
#[derive(Debug, Clone)]
pub struct ResolvedSidecar {
    pub name: SidecarName,
    pub path: Utf8PathBuf,
    pub source: Source,
    pub version: Option<String>,
    pub args_prefix: Vec<String>,
    pub attempts: Vec<Attempt>,
}
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {name:?}: {why}")]
pub struct ResolveError {
    name: SidecarName,
    why: String,
}
pub trait Progress: Send + Sync {
    fn line(&self, text: &str);
}
pub struct Resolver {
    settings: ResolveSettings,
}
impl Resolver {
    pub fn new(settings: ResolveSettings, _progress: Box<dyn Progress>) -> Self {
        Resolver { settings }
    }
    pub async fn resolve(&self, req: &SidecarRequest) -> Result<ResolvedSidecar, ResolveError> {
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| Utf8PathBuf::from_path_buf(p).ok());
        let mk = |path: Utf8PathBuf, source, prefix: Vec<String>| ResolvedSidecar {
            name: req.name,
            path,
            source,
            version: None,
            args_prefix: prefix,
            attempts: vec![],
        };
        if let Some(p) = &req.explicit_bin {
            return Ok(mk(p.clone(), Source::External, vec![]));
        }
        match req.name {
            SidecarName::OpenworkServer => exe
                .map(|e| mk(e, Source::Bundled, vec!["server".into()]))
                .ok_or(ResolveError {
                    name: req.name,
                    why: "no exe".into(),
                }),
            SidecarName::OpencodeRouter => exe
                .map(|e| mk(e, Source::Bundled, vec!["router".into()]))
                .ok_or(ResolveError {
                    name: req.name,
                    why: "no exe".into(),
                }),
            SidecarName::Opencode => {
                let cached = self
                    .settings
                    .sidecar_dir
                    .join("opencode")
                    .join(OPENCODE_VERSION)
                    .join(self.settings.target.to_string())
                    .join("opencode");
                if cached.exists() {
                    return Ok(mk(cached, Source::Cache, vec![]));
                }
                Err(ResolveError {
                    name: req.name,
                    why: "stub".into(),
                })
            }
        }
    }
}
