//! Port selection. An explicitly requested port that is busy is an error (the original silently
//! replaced it with a random one); the default openwork port 8787 falls back to a free port with
//! a log line saying so.

use std::net::TcpListener;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PortError {
    #[error(
        "--{flag} {port} is not available on {host}: {source}. Choose another port or stop what uses it."
    )]
    Busy {
        flag: &'static str,
        port: u16,
        host: String,
        source: std::io::Error,
    },
    #[error("cannot find a free port on {host}: {source}")]
    NoFreePort {
        host: String,
        source: std::io::Error,
    },
}

/// Whether `host:port` can be bound right now.
pub fn check_free(host: &str, port: u16) -> std::io::Result<()> {
    TcpListener::bind((host, port)).map(drop)
}

/// A port the OS considers free on `host`.
pub fn free_port(host: &str) -> Result<u16, PortError> {
    TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| PortError::NoFreePort {
            host: host.to_string(),
            source,
        })
}

/// The requested port if free (error otherwise), or a free one when none was requested.
pub fn requested_or_free(
    flag: &'static str,
    host: &str,
    requested: Option<u16>,
) -> Result<u16, PortError> {
    match requested {
        Some(port) => check_free(host, port)
            .map(|()| port)
            .map_err(|source| PortError::Busy {
                flag,
                port,
                host: host.to_string(),
                source,
            }),
        None => free_port(host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_requested_port_is_an_error() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let err = requested_or_free("opencode-port", "127.0.0.1", Some(port)).unwrap_err();
        assert!(
            err.to_string().contains(&format!("--opencode-port {port}")),
            "{err}"
        );
        drop(l);
        assert_eq!(
            requested_or_free("opencode-port", "127.0.0.1", Some(port)).unwrap(),
            port
        );
        assert_ne!(requested_or_free("x", "127.0.0.1", None).unwrap(), 0);
    }
}
