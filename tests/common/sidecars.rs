//! Shared helpers of the sidecar tests: a tiny HTTP server on 127.0.0.1 that serves fixed
//! bodies by path and logs every request, tarball builders, and a recording progress sink.
//! Included by the `sidecars_*` test files with `#[path]`; on its own it has no tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{StatusCode, Uri};

/// A served body.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A test HTTP server. Stops (and closes its port) when dropped or stopped.
pub struct Server {
    pub addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    log: Arc<Mutex<Vec<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, l) = (routes.clone(), log.clone());
        let app = axum::Router::new().fallback(move |uri: Uri| {
            let (r, l) = (r.clone(), l.clone());
            async move {
                let path = uri.path().to_string();
                let reply = r.lock().unwrap().get(&path).cloned();
                let status = reply.as_ref().map(|x| x.status).unwrap_or(404);
                l.lock().unwrap().push(format!("GET {path} -> {status}"));
                match reply {
                    Some(x) => (StatusCode::from_u16(x.status).unwrap(), Bytes::from(x.body)),
                    None => (
                        StatusCode::NOT_FOUND,
                        Bytes::from_static(b"{\"error\":\"Not found\"}"),
                    ),
                }
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server {
            addr,
            routes,
            log,
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn serve(&self, path: &str, status: u16, body: impl Into<Vec<u8>>) {
        self.routes.lock().unwrap().insert(
            path.to_string(),
            Reply {
                status,
                body: body.into(),
            },
        );
    }

    /// The request log, for assertion messages.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn requests(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub async fn stop(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A port nothing listens on.
pub async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// One tar entry: path (written raw, so `..` works), kind, data, link target.
pub struct Entry<'a> {
    pub path: &'a str,
    pub kind: tar::EntryType,
    pub data: &'a [u8],
    pub link: Option<&'a str>,
}

impl<'a> Entry<'a> {
    pub fn file(path: &'a str, data: &'a [u8]) -> Self {
        Entry {
            path,
            kind: tar::EntryType::Regular,
            data,
            link: None,
        }
    }
}

/// A gzip-compressed tarball of the entries.
pub fn tar_gz(entries: &[Entry<'_>]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_ustar();
        let name = &mut h.as_old_mut().name;
        name[..e.path.len()].copy_from_slice(e.path.as_bytes());
        h.set_entry_type(e.kind);
        h.set_size(e.data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(1_700_000_000);
        if let Some(l) = e.link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    let gz = b.into_inner().unwrap();
    gz.finish().unwrap()
}

pub const SCRIPT: &[u8] = b"#!/bin/sh\necho 1.18.34\n";

/// An npm package tarball holding `package/package.json` and `package/bin/opencode`.
pub fn npm_package(name: &str) -> Vec<u8> {
    let pkg = format!("{{\"name\":\"{name}\",\"version\":\"1.18.34\",\"os\":[\"linux\"]}}");
    tar_gz(&[
        Entry::file("package/package.json", pkg.as_bytes()),
        Entry::file("package/bin/opencode", SCRIPT),
    ])
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

pub fn sha512_integrity(data: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest;
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(data))
    )
}

/// Every regular file under `dir`, relative, sorted.
pub fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A progress sink that records lines.
#[derive(Clone, Default)]
pub struct Recorder {
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Writes a file and makes it executable.
pub fn write_exe(path: &std::path::Path, data: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
