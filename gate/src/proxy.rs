//! The way out: an HTTP/1.1 forward proxy (CONNECT tunnels and absolute-form `http://`
//! requests) that connects only where the policy allows.
//!
//! Threat: the agent reaching a host the policy does not allow, including through DNS tricks.
//! The gate resolves the name itself, checks every resolved address with [`Policy::decide`]
//! at connect time and connects to one of exactly those addresses, so there is no second
//! lookup an attacker's DNS could answer differently (no rebinding between check and connect).
//! A name no rule allows is refused before any DNS lookup. A refusal is a `403` naming the
//! destination and how to allow it, and an audit record.
//!
//! Left open: inside a CONNECT tunnel the bytes are opaque (no TLS or SNI inspection), so an
//! allowed `host:port` carries whatever protocol the agent speaks to it. Proxy clients are not
//! authenticated: the only client that can reach this listener is the agent's container on
//! the internal network.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::audit::{AuditRecord, Kind, millis};
use crate::policy::{Decision, Policy};
use crate::state::Gate;

type Body = BoxBody<Bytes, hyper::Error>;

/// Copy buffer per direction of a tunnel (tokio's default of 8 KiB costs throughput).
pub(crate) const BUF: usize = 64 * 1024;

/// Accepts proxy clients on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, gate: Arc<Gate>) -> io::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: keep the listener, back off a little.
                tracing::warn!(error = %e, "proxy accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let gate = gate.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, gate.clone()));
            let conn = http1::Builder::new()
                .preserve_header_case(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "proxy client connection ended");
            }
        });
    }
}

async fn handle(req: Request<Incoming>, gate: Arc<Gate>) -> Result<Response<Body>, Infallible> {
    let kind = if req.method() == Method::CONNECT {
        Kind::Connect
    } else {
        Kind::Http
    };
    let default_port = 80;
    let Some(authority) = req.uri().authority().cloned() else {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "openwork gate: this is a forward proxy; send CONNECT host:port or an absolute \
             http:// URL\n"
                .to_owned(),
        ));
    };
    if kind == Kind::Http && req.uri().scheme_str() != Some("http") {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "openwork gate: only http:// URLs are forwarded; use CONNECT for https\n".to_owned(),
        ));
    }
    let host = authority.host().to_owned();
    let port = match (kind, authority.port_u16()) {
        (_, Some(port)) => port,
        (Kind::Http, None) => default_port,
        _ => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "openwork gate: CONNECT needs host:port\n".to_owned(),
            ));
        }
    };
    let start = Instant::now();
    let connected = match open(&gate, kind, &host, port).await {
        Ok(connected) => connected,
        Err(response) => return Ok(*response),
    };
    match kind {
        Kind::Connect => Ok(tunnel(req, gate, connected, start)),
        _ => Ok(forward(req, gate, connected, start).await),
    }
}

/// An allowed, connected destination and the record to finish.
struct Connected {
    stream: TcpStream,
    record: AuditRecord,
}

/// Resolves, decides, connects; or the response to send (403, 502) after emitting its record.
async fn open(
    gate: &Gate,
    kind: Kind,
    host: &str,
    port: u16,
) -> Result<Connected, Box<Response<Body>>> {
    // The name first: a name no rule allows is refused without a DNS lookup (a lookup of an
    // attacker's name is itself a way to send data out).
    let policy = gate.policy();
    let by_name = policy.decide(host, port, &[]);
    if !by_name.allowed() {
        let body = denial_text(host, port, &by_name);
        gate.emit(record_for(kind, host, port, &by_name));
        return Err(Box::new(text(StatusCode::FORBIDDEN, body)));
    }
    let addrs = match gate.resolver().resolve(host, port).await {
        Ok(addrs) => addrs,
        Err(e) => {
            // Not a policy refusal (no approval could help): the name's verdict, with the error.
            let mut record = record_for(kind, host, port, &by_name);
            record.error = Some(format!("does not resolve: {e}"));
            gate.emit(record);
            return Err(Box::new(text(
                StatusCode::BAD_GATEWAY,
                format!("openwork gate: {host} does not resolve: {e}\n"),
            )));
        }
    };
    let decision = policy.decide(host, port, &addrs);
    let mut record = record_for(kind, host, port, &decision);
    if !decision.allowed() {
        record.ip = first_refused(&policy, &addrs).map(|ip| ip.to_string());
        let body = denial_text(host, port, &decision);
        gate.emit(record);
        return Err(Box::new(text(StatusCode::FORBIDDEN, body)));
    }
    let mut last = None;
    for ip in &addrs {
        match TcpStream::connect(SocketAddr::new(*ip, port)).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                record.ip = Some(ip.to_string());
                return Ok(Connected { stream, record });
            }
            Err(e) => last = Some(e),
        }
    }
    let error = last.map_or_else(|| "no address".to_owned(), |e| e.to_string());
    record.error = Some(format!("connect failed: {error}"));
    gate.emit(record);
    Err(Box::new(text(
        StatusCode::BAD_GATEWAY,
        format!("openwork gate: cannot connect to {host}:{port}: {error}\n"),
    )))
}

/// The audit record of a decision (bytes and duration filled in later).
pub(crate) fn record_for(kind: Kind, host: &str, port: u16, decision: &Decision) -> AuditRecord {
    let mut record = AuditRecord::new(kind, host, port, decision.verdict);
    record.rule = decision.rule.clone();
    record.reason = decision.reason.to_string();
    record
}

/// The body of a 403: the destination, why, and how to allow it.
pub(crate) fn denial_text(host: &str, port: u16, decision: &Decision) -> String {
    let how = match &decision.rule {
        Some(rule) if rule.starts_with("privateAllow") => format!(
            "add \"{}\" to \"privateAllow\" in the sandbox policy",
            rule.trim_start_matches("privateAllow ")
        ),
        Some(rule) => format!(
            "approve \"allow {rule} for this run\" in openwork, run with --sandbox-allow {rule}, \
             or add \"{rule}\" to \"allow\" in the sandbox policy"
        ),
        None => "nothing can allow it".to_owned(),
    };
    format!(
        "openwork gate: {host}:{port} is not allowed: {}. To allow it: {how}.\n",
        decision.reason
    )
}

fn first_refused(policy: &Policy, addrs: &[IpAddr]) -> Option<IpAddr> {
    addrs
        .iter()
        .copied()
        .find(|ip| policy.check_addr(*ip).is_err())
}

/// Answers 200 and splices the upgraded client connection with the destination.
fn tunnel(
    mut req: Request<Incoming>,
    gate: Arc<Gate>,
    connected: Connected,
    start: Instant,
) -> Response<Body> {
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Connected {
            mut stream,
            mut record,
        } = connected;
        match upgrade.await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                match tokio::io::copy_bidirectional_with_sizes(&mut client, &mut stream, BUF, BUF)
                    .await
                {
                    Ok((up, down)) => {
                        record.bytes_up = up;
                        record.bytes_down = down;
                    }
                    Err(e) => record.error = Some(format!("tunnel: {e}")),
                }
            }
            Err(e) => record.error = Some(format!("upgrade: {e}")),
        }
        record.duration_ms = millis(start.elapsed());
        gate.emit(record);
    });
    Response::new(empty())
}

/// Sends one absolute-form request to the destination and streams the answer back.
async fn forward(
    req: Request<Incoming>,
    gate: Arc<Gate>,
    connected: Connected,
    start: Instant,
) -> Response<Body> {
    let Connected { stream, mut record } = connected;
    let counters = Arc::new(Counters::default());
    let io = TokioIo::new(Counted {
        inner: stream,
        counters: counters.clone(),
    });
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(io).await {
        Ok(pair) => pair,
        Err(e) => {
            record.error = Some(format!("handshake: {e}"));
            gate.emit(record);
            return text(StatusCode::BAD_GATEWAY, format!("openwork gate: {e}\n"));
        }
    };
    let finish = {
        let gate = gate.clone();
        let mut record = record.clone();
        let counters = counters.clone();
        async move {
            if let Err(e) = conn.await {
                record.error = Some(format!("upstream: {e}"));
            }
            record.bytes_up = counters.up.load(Ordering::Relaxed);
            record.bytes_down = counters.down.load(Ordering::Relaxed);
            record.duration_ms = millis(start.elapsed());
            gate.emit(record);
        }
    };
    tokio::spawn(finish);
    let (mut parts, body) = req.into_parts();
    // Host from the checked destination only (never the agent's Host header or URL userinfo).
    let host_header = parts.uri.host().and_then(|host| {
        let value = match parts.uri.port_u16() {
            Some(port) if port != 80 => format!("{host}:{port}"),
            _ => host.to_owned(),
        };
        HeaderValue::from_str(&value).ok()
    });
    parts.uri = match parts.uri.path_and_query() {
        Some(pq) => pq.as_str().parse().unwrap_or_default(),
        None => hyper::Uri::from_static("/"),
    };
    strip_hop_by_hop(&mut parts.headers);
    if let Some(host) = host_header {
        parts.headers.insert(header::HOST, host);
    }
    match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("openwork gate: {e}\n")),
    }
}

/// Removes the headers that belong to one hop (RFC 9110 §7.6.1) and the proxy's own.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[derive(Debug, Default)]
struct Counters {
    up: AtomicU64,
    down: AtomicU64,
}

/// A stream that counts bytes written (up) and read (down).
struct Counted<S> {
    inner: S,
    counters: Arc<Counters>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.counters.down.fetch_add(n as u64, Ordering::Relaxed);
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.counters.up.fetch_add(*n as u64, Ordering::Relaxed);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::policy::{Reason, Verdict};

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn denial_texts_say_how_to_allow() {
        let deny = |reason, rule: Option<&str>| Decision {
            verdict: Verdict::Deny,
            reason,
            rule: rule.map(str::to_owned),
        };
        let t = denial_text(
            "a.example",
            443,
            &deny(Reason::NoRule, Some("a.example:443")),
        );
        assert!(t.contains("--sandbox-allow a.example:443"), "{t}");
        let ip = "10.0.0.5".parse().unwrap();
        let t = denial_text(
            "lan",
            80,
            &deny(Reason::PrivateAddress { ip }, Some("privateAllow 10.0.0.5")),
        );
        assert!(t.contains("add \"10.0.0.5\" to \"privateAllow\""), "{t}");
        let t = denial_text("localhost", 80, &deny(Reason::RefusedName, None));
        assert!(t.contains("nothing can allow it"), "{t}");
    }
}
