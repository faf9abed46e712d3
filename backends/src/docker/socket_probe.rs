//! Probing an engine at an explicit unix socket (Docker's or Podman's Docker-compatible API),
//! for `openwork doctor`: which socket answers, with which version, or why not.
//!
//! Read-only: it asks `GET /version` and nothing else, with a short timeout, so a hung engine
//! cannot hang the check.

use std::path::Path;
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};

/// What a socket answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketProbe {
    /// The engine answered `GET /version`.
    Reachable {
        /// Engine version (e.g. `20.10.24`, or Podman's `4.3.1`).
        version: String,
        /// API version it speaks.
        api: String,
        /// Product name the engine reports (`Docker Engine - Community`, `Podman Engine`, …).
        product: String,
    },
    /// No socket file at the path.
    Missing,
    /// The socket exists but this user may not connect to it.
    PermissionDenied,
    /// The socket exists but nothing answers, or the answer was not an engine's.
    Unreachable { reason: String },
}

/// Probes the engine listening on the unix socket `path`, waiting at most `timeout`.
pub async fn probe_socket(path: &Path, timeout: Duration) -> SocketProbe {
    if !path.exists() {
        return SocketProbe::Missing;
    }
    // A plain connect first: bollard folds permission errors into its own text.
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return SocketProbe::PermissionDenied;
        }
        Err(e) => {
            return SocketProbe::Unreachable {
                reason: e.to_string(),
            };
        }
    }
    let Some(p) = path.to_str() else {
        return SocketProbe::Unreachable {
            reason: "the socket path is not UTF-8".into(),
        };
    };
    let docker = match Docker::connect_with_unix(p, timeout.as_secs().max(1), API_DEFAULT_VERSION) {
        Ok(d) => d,
        Err(e) => {
            return SocketProbe::Unreachable {
                reason: e.to_string(),
            };
        }
    };
    match tokio::time::timeout(timeout, docker.version()).await {
        Ok(Ok(v)) => {
            let product = v
                .components
                .as_ref()
                .and_then(|c| c.first())
                .map(|c| c.name.clone())
                .or(v.platform.map(|p| p.name))
                .unwrap_or_default();
            SocketProbe::Reachable {
                version: v.version.unwrap_or_default(),
                api: v.api_version.unwrap_or_default(),
                product,
            }
        }
        Ok(Err(e)) => SocketProbe::Unreachable {
            reason: e.to_string(),
        },
        Err(_) => SocketProbe::Unreachable {
            reason: format!("no answer within {}s", timeout.as_secs()),
        },
    }
}

/// Whether an image is in the engine at a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageLookup {
    /// Present, with its (short) id.
    Present {
        id: String,
    },
    Missing,
    Failed {
        reason: String,
    },
}

/// Looks `image` up in the engine at the unix socket `path` (`GET /images/{name}/json`).
pub async fn lookup_image(path: &Path, image: &str, timeout: Duration) -> ImageLookup {
    let Some(p) = path.to_str() else {
        return ImageLookup::Failed {
            reason: "the socket path is not UTF-8".into(),
        };
    };
    let docker = match Docker::connect_with_unix(p, timeout.as_secs().max(1), API_DEFAULT_VERSION) {
        Ok(d) => d,
        Err(e) => {
            return ImageLookup::Failed {
                reason: e.to_string(),
            };
        }
    };
    match tokio::time::timeout(timeout, docker.inspect_image(image)).await {
        Ok(Ok(i)) => ImageLookup::Present {
            id: i.id.unwrap_or_default().chars().take(19).collect(),
        },
        Ok(Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        })) => ImageLookup::Missing,
        Ok(Err(e)) => ImageLookup::Failed {
            reason: e.to_string(),
        },
        Err(_) => ImageLookup::Failed {
            reason: format!("no answer within {}s", timeout.as_secs()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_named_missing() {
        let p = probe_socket(
            Path::new("/nonexistent/engine.sock"),
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(p, SocketProbe::Missing);
    }

    #[tokio::test]
    async fn a_socket_nobody_serves_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.sock");
        // Bound, then closed: the file stays, nobody listens.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let p = probe_socket(&path, Duration::from_secs(1)).await;
        assert!(matches!(p, SocketProbe::Unreachable { .. }), "{p:?}");
    }
}
