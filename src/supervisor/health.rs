//! Health probes of services.
//!
//! Threat addressed: a start-up that hangs forever. opencode accepts connections ~0.2 s before it
//! can answer them and never answers those early requests (reference: opencode-serve §1.3), so
//! every probe here runs on a fresh connection with its own short timeout, and the caller's
//! overall budget is enforced around the whole loop.

use std::time::Duration;

use base64::Engine;
use thiserror::Error;

/// What "healthy" means for one service.
#[derive(Clone)]
pub enum HealthCheck {
    /// opencode: `GET <base>/global/health` with basic auth, answering `{"healthy":true}`.
    Opencode {
        base_url: String,
        username: String,
        password: String,
    },
    /// Any 2xx answer from `GET <url>`.
    Http { url: String },
}

impl std::fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

impl HealthCheck {
    /// The URL probed (no credentials in it).
    pub fn url(&self) -> String {
        match self {
            HealthCheck::Opencode { base_url, .. } => format!("{base_url}/global/health"),
            HealthCheck::Http { url } => url.clone(),
        }
    }
}

/// Why one probe failed.
#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("unexpected answer: {0}")]
    Body(String),
}

/// A client for probes: no connection reuse (a hung socket must not be reused), no proxy
/// (probes target loopback), a short timeout per request.
pub fn probe_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// `Authorization` header value for HTTP basic auth.
pub fn basic_auth(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Runs one probe.
pub async fn probe(client: &reqwest::Client, check: &HealthCheck) -> Result<(), ProbeError> {
    let req = match check {
        HealthCheck::Opencode {
            username, password, ..
        } => client
            .get(check.url())
            .header("Authorization", basic_auth(username, password)),
        HealthCheck::Http { url } => client.get(url),
    };
    let resp = req.send().await.map_err(classify)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ProbeError::Status(status.as_u16()));
    }
    if let HealthCheck::Opencode { .. } = check {
        let body: serde_json::Value = resp.json().await.map_err(classify)?;
        if body.get("healthy") != Some(&serde_json::Value::Bool(true)) {
            return Err(ProbeError::Body(body.to_string()));
        }
    }
    Ok(())
}

fn classify(e: reqwest::Error) -> ProbeError {
    if e.is_timeout() {
        ProbeError::Timeout(Duration::from_secs(2))
    } else if e.is_decode() || e.is_body() {
        ProbeError::Body(e.to_string())
    } else {
        ProbeError::Connect(root_cause(&e))
    }
}

/// The innermost cause of an error, which names the real problem (e.g. "Connection refused").
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hung_endpoint_times_out_instead_of_hanging() {
        // Accept connections and never answer, like opencode in its start-up window.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let client = probe_client(Duration::from_millis(300));
        let check = HealthCheck::Http {
            url: format!("http://{addr}/health"),
        };
        let err = probe(&client, &check).await.unwrap_err();
        assert!(matches!(err, ProbeError::Timeout(_)), "{err}");
    }

    #[tokio::test]
    async fn refused_connection_is_named() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = probe_client(Duration::from_millis(500));
        let check = HealthCheck::Http {
            url: format!("http://127.0.0.1:{port}/health"),
        };
        let err = probe(&client, &check).await.unwrap_err();
        assert!(matches!(err, ProbeError::Connect(_)), "{err}");
    }

    #[test]
    fn basic_auth_encodes() {
        assert_eq!(basic_auth("a", "b"), "Basic YTpi");
    }
}
