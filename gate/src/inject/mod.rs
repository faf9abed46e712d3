//! Credential injection: the agent's provider SDK talks plain HTTP to
//! `http://gate:PORT/p/<provider>/…`; the gate strips whatever key the agent sent, puts in the
//! real one (Anthropic: `x-api-key`; OpenAI and OpenAI-compatible: `Authorization: Bearer`)
//! and makes the TLS connection to the provider itself, streaming both bodies (SSE streams).
//!
//! Threat: the real key being read, copied or exfiltrated by the agent. The key reaches the
//! gate from the host over the control API (`PUT /credentials`), lives in a [`Secret`] that
//! prints `[REDACTED]`, and never travels towards the agent: responses are passed through as
//! the provider sent them. The upstream is still subject to the policy: its host is allowed
//! implicitly (origin `credential <id>`), but every resolved address goes through
//! [`crate::Policy::check_addr`] inside the HTTP client's resolver, so a base URL that resolves
//! to loopback or metadata is refused like any other destination. Redirects are not followed
//! (a `3xx` goes back to the agent, which would then need the proxy and the policy).
//!
//! Left open: a provider that echoes request headers in a response body would show the key to
//! the agent (none known). The agent can use the key through the gate for anything the
//! provider's API allows. Upstream connections are pooled: a pooled connection is reused
//! without a new address check (its addresses were checked when it was opened).

pub mod discover;
mod placeholder;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

pub use discover::{Discovered, HostCredential, KeySource, discover};
pub use placeholder::{is_placeholder, opencode_config_fragment, placeholder_key, route_prefix};

use crate::audit::{AuditRecord, Kind, millis};
use crate::policy::entry::normalize_host;
use crate::proxy::{denial_text, record_for, strip_hop_by_hop};
use crate::secret::Secret;
use crate::state::Gate;

/// How the provider expects its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyHeader {
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `Authorization: Bearer <key>` (OpenAI and OpenAI-compatible).
    Bearer,
}

impl KeyHeader {
    /// Anthropic's style for `anthropic`, bearer for everything else.
    pub fn for_provider(id: &str) -> Self {
        if id == "anthropic" {
            Self::XApiKey
        } else {
            Self::Bearer
        }
    }
}

/// One provider's real endpoint and key.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The real base URL (`https://api.anthropic.com/v1`); the agent's path after
    /// `/p/<id>` is appended to it.
    pub base_url: reqwest::Url,
    /// The real key.
    pub key: Secret,
    /// Where the key goes.
    pub header: KeyHeader,
}

/// A `PUT /credentials` item as the host sends it.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialSpec {
    /// The real base URL.
    pub base_url: String,
    /// The real key.
    pub key: Secret,
    /// `x-api-key` or `bearer`; by default from the provider id.
    pub header: Option<KeyHeader>,
}

/// Why a credential set is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The base URL is not an absolute http(s) URL.
    #[error(
        "provider {provider}: baseUrl {url:?} is not an http(s) URL; write e.g. \"https://api.anthropic.com/v1\""
    )]
    BadUrl { provider: String, url: String },
    /// An empty key.
    #[error("provider {provider}: the key is empty")]
    EmptyKey { provider: String },
    /// A provider id that cannot be a path segment.
    #[error("provider id {provider:?} must be letters, digits, '-', '_' or '.'")]
    BadId { provider: String },
}

/// Checks a `PUT /credentials` body.
pub fn credentials_from_specs(
    specs: BTreeMap<String, CredentialSpec>,
) -> Result<BTreeMap<String, Credential>, CredentialError> {
    let mut out = BTreeMap::new();
    for (id, spec) in specs {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(CredentialError::BadId { provider: id });
        }
        let url = reqwest::Url::parse(&spec.base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        let Some(base_url) = url else {
            return Err(CredentialError::BadUrl {
                provider: id,
                url: spec.base_url,
            });
        };
        if spec.key.is_empty() {
            return Err(CredentialError::EmptyKey { provider: id });
        }
        let header = spec.header.unwrap_or_else(|| KeyHeader::for_provider(&id));
        out.insert(
            id,
            Credential {
                base_url,
                key: spec.key,
                header,
            },
        );
    }
    Ok(out)
}

/// The HTTP client for upstream requests: rustls, no proxy from the environment, no redirects,
/// and a resolver that refuses addresses the policy refuses.
pub fn client(gate: Arc<Gate>) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .dns_resolver(Arc::new(PolicyResolver { gate }))
        .build()
}

/// Resolves with the gate's resolver and lets through only addresses the live policy allows
/// (all of them, or the name fails).
struct PolicyResolver {
    gate: Arc<Gate>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let gate = self.gate.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = gate.resolver().resolve(&host, 0).await?;
            let policy = gate.policy();
            for ip in &addrs {
                if let Err(reason) = policy.check_addr(*ip) {
                    return Err(format!("{host}: {reason}").into());
                }
            }
            let addrs: Addrs = Box::new(
                addrs
                    .into_iter()
                    .map(|ip| std::net::SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

/// State of the injection listener.
#[derive(Clone)]
pub struct InjectState {
    /// The shared gate.
    pub gate: Arc<Gate>,
    /// The upstream client (see [`client`]).
    pub client: reqwest::Client,
}

/// The injection listener's router: every path goes to [`handle`].
pub fn router(state: InjectState) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

/// Headers that carry a key from the agent; all are removed before the real key goes in.
const KEY_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key", "x-goog-api-key"];

async fn handle(State(state): State<InjectState>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/p/") else {
        return plain(
            StatusCode::NOT_FOUND,
            "openwork gate: provider routes are /p/<provider-id>/…\n".to_owned(),
        );
    };
    let (provider, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(credential) = state.gate.credential(provider) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!(
                "openwork gate: no credential for provider {provider:?}; the host sends them \
                 with PUT /credentials\n"
            ),
        );
    };
    let mut url = credential.base_url.clone();
    let joined = format!("{}/{tail}", url.path().trim_end_matches('/'));
    url.set_path(&joined);
    url.set_query(req.uri().query());
    let host = normalize_host(url.host_str().unwrap_or_default());
    let port = url.port_or_known_default().unwrap_or(443);
    let start = Instant::now();

    let decision = state.gate.policy().decide(&host, port, &[]);
    let mut record = record_for(Kind::Inject, &host, port, &decision);
    record.provider = Some(provider.to_owned());
    if !decision.allowed() {
        let body = denial_text(&host, port, &decision);
        state.gate.emit(record);
        return plain(StatusCode::FORBIDDEN, body);
    }

    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    for name in KEY_HEADERS {
        headers.remove(*name);
    }
    if let Err(e) = put_key(&mut headers, &credential) {
        record.error = Some(e.to_owned());
        state.gate.emit(record);
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("openwork gate: {e}\n"),
        );
    }

    let counters = Arc::new(Counters::default());
    let up = counters.clone();
    let upload = body.into_data_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            up.up.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        chunk
    });
    let sent = state
        .client
        .request(parts.method, url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(upload))
        .send()
        .await;
    let upstream = match sent {
        Ok(upstream) => upstream,
        Err(e) => {
            let refused = refused_by_resolver(&e);
            record.error = Some(error_chain(&e));
            record.bytes_up = counters.up.load(Ordering::Relaxed);
            record.duration_ms = millis(start.elapsed());
            if let Some(reason) = &refused {
                record.decision = crate::Verdict::Deny;
                record.rule = None;
                record.reason = reason.clone();
            }
            state.gate.emit(record);
            let status = if refused.is_some() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::BAD_GATEWAY
            };
            return plain(
                status,
                format!(
                    "openwork gate: {provider} upstream {host}:{port} failed: {}\n",
                    error_chain(&e)
                ),
            );
        }
    };
    record.ip = upstream.remote_addr().map(|a| a.ip().to_string());
    let status = upstream.status();
    let mut response_headers = upstream.headers().clone();
    strip_hop_by_hop(&mut response_headers);
    let guard = Finish {
        gate: state.gate.clone(),
        record: Some(record),
        counters: counters.clone(),
        start,
    };
    let download = upstream.bytes_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            guard
                .counters
                .down
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        chunk
    });
    let mut response = Response::new(Body::from_stream(download));
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

fn put_key(headers: &mut HeaderMap, credential: &Credential) -> Result<(), &'static str> {
    let (name, value) = match credential.header {
        KeyHeader::XApiKey => (
            HeaderName::from_static("x-api-key"),
            credential.key.expose().to_owned(),
        ),
        KeyHeader::Bearer => (
            header::AUTHORIZATION,
            format!("Bearer {}", credential.key.expose()),
        ),
    };
    let mut value =
        HeaderValue::from_str(&value).map_err(|_| "the key is not a valid header value")?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

/// The resolver's refusal, if that is why the request failed.
fn refused_by_resolver(e: &reqwest::Error) -> Option<String> {
    let chain = error_chain(e);
    ["always refused", "not in privateAllow"]
        .iter()
        .any(|m| chain.contains(m))
        .then_some(chain)
}

/// The error and its sources, one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

#[derive(Debug, Default)]
struct Counters {
    up: AtomicU64,
    down: AtomicU64,
}

/// Emits the injected request's record when the response stream ends or is dropped.
struct Finish {
    gate: Arc<Gate>,
    record: Option<AuditRecord>,
    counters: Arc<Counters>,
    start: Instant,
}

impl Drop for Finish {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.bytes_up = self.counters.up.load(Ordering::Relaxed);
            record.bytes_down = self.counters.down.load(Ordering::Relaxed);
            record.duration_ms = millis(self.start.elapsed());
            self.gate.emit(record);
        }
    }
}
