//! The stand-in model's HTTP server: an OpenAI-compatible chat-completions endpoint answering
//! from a [`Script`], a request log, and test knobs.
//!
//! It exists so tests drive *real* opencode turns without a real model and without the
//! internet. It defends against nothing: it binds where it is told (127.0.0.1 in tests; its own
//! container's 0.0.0.0 when it plays "the internet" for a sandbox), accepts any credential and
//! records it in clear, so it must never be exposed beyond a test.
//!
//! Routes (the contract is in `testkit/README.md`):
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /v1/chat/completions` | the scripted reply, streamed (SSE) or not |
//! | `GET /v1/models` | the one model |
//! | `GET/DELETE /__standin/requests` | the request log / empty it |
//! | `GET/PUT /__standin/script` | the script |
//! | `GET/PUT /__standin/knobs` | chunk delay and hold; `held` = replies now waiting |
//! | `GET /__standin/big?bytes=N` | N bytes, streamed |
//! | anything else | 404 (405 for a wrong method), OpenAI-style JSON error |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::chunks::{self, Meta, Usage};
use crate::record::{Log, RecordedRequest, lock};
use crate::script::{Script, Step};

/// The chat-completions path (the provider's `baseURL` is `http://ADDR/v1`).
pub const CHAT_PATH: &str = "/v1/chat/completions";
/// The model list path.
pub const MODELS_PATH: &str = "/v1/models";
/// The model the stand-in lists (requests may name any model; it is echoed back).
pub const DEFAULT_MODEL: &str = "standin-model";
/// Request bodies larger than this are refused (413).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// The block `/__standin/big` repeats.
static BIG_BLOCK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// How a stand-in starts.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// The replies.
    pub script: Script,
    /// The model `GET /v1/models` lists.
    pub model: String,
    /// The initial knobs (changeable while running).
    pub knobs: Knobs,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            script: Script::default(),
            model: DEFAULT_MODEL.to_string(),
            knobs: Knobs::default(),
        }
    }
}

/// Test knobs, changeable while the stand-in runs (in-process or `PUT /__standin/knobs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knobs {
    /// Pause before each chunk after the first (read per chunk, so lowering it speeds up a
    /// reply already streaming): a slow turn.
    pub chunk_delay_ms: u64,
    /// While on, every reply stops after its first chunk (streamed) or before answering (not
    /// streamed) until hold is turned off: a turn that is certainly still running, without
    /// guessing a duration. `held` in `GET /__standin/knobs` counts the replies waiting.
    pub hold: bool,
}

/// A partial update of [`Knobs`] (`PUT /__standin/knobs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnobsPatch {
    chunk_delay_ms: Option<u64>,
    hold: Option<bool>,
}

/// State shared by the handlers and the [`StandIn`] handle.
pub(crate) struct Shared {
    script: std::sync::Mutex<Script>,
    knobs: watch::Sender<Knobs>,
    /// How many replies are waiting for hold to end.
    held: watch::Sender<usize>,
    /// Set when the stand-in stops: streams end, held replies give up.
    closing: watch::Sender<bool>,
    log: Log,
    next_id: AtomicU64,
    model: String,
}

impl Shared {
    fn new(options: &Options) -> Shared {
        Shared {
            script: std::sync::Mutex::new(options.script.clone()),
            knobs: watch::Sender::new(options.knobs),
            held: watch::Sender::new(0),
            closing: watch::Sender::new(false),
            log: Log::default(),
            next_id: AtomicU64::new(1),
            model: options.model.clone(),
        }
    }

    fn knobs_json(&self) -> Value {
        let knobs = *self.knobs.borrow();
        json!({ "chunk_delay_ms": knobs.chunk_delay_ms, "hold": knobs.hold, "held": *self.held.borrow() })
    }
}

/// The position of the current request in the log (set by the recording middleware).
#[derive(Clone, Copy)]
struct Seq(usize);

/// The stand-in's routes over `shared`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(CHAT_PATH, post(chat))
        .route(MODELS_PATH, get(models))
        .route(
            "/__standin/requests",
            get(list_requests).delete(clear_requests),
        )
        .route("/__standin/script", get(get_script).put(put_script))
        .route("/__standin/knobs", get(get_knobs).put(put_knobs))
        .route("/__standin/big", get(big))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

/// Records every request outside `/__standin/` before it is handled.
async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/__standin/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(err) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("cannot read the request body (limit {MAX_BODY} bytes): {err}"),
                "invalid_request_error",
                "body_unreadable",
            );
        }
    };
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let seq = shared.log.push(RecordedRequest {
        seq: 0,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: header_map(&parts.headers),
        body,
        step: None,
    });
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(Seq(seq));
    next.run(request).await
}

fn header_map(headers: &HeaderMap) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::<String, String>::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out.entry(name.as_str().to_string())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

fn error(status: StatusCode, message: &str, kind: &str, code: &str) -> Response {
    (status, Json(chunks::error_body(message, kind, code))).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("the stand-in model has no route {method} {}", uri.path()),
        "invalid_request_error",
        "not_found",
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("{method} is not allowed on {}", uri.path()),
        "invalid_request_error",
        "method_not_allowed",
    )
}

async fn chat(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let seq = request.extensions().get::<Seq>().map(|s| s.0);
    let Ok(bytes) = axum::body::to_bytes(request.into_body(), MAX_BODY).await else {
        return error(
            StatusCode::BAD_REQUEST,
            "cannot read the request body",
            "invalid_request_error",
            "body_unreadable",
        );
    };
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(body @ Value::Object(_)) => body,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "the request body is not a JSON object",
                "invalid_request_error",
                "invalid_json",
            );
        }
    };
    let (index, step) = {
        let script = lock(&shared.script);
        let choice = script.choose(&body);
        (choice.index(), choice.step())
    };
    if let Some(seq) = seq {
        shared.log.set_step(seq, index);
    }
    let meta = Meta {
        id: format!(
            "chatcmpl-standin-{}",
            shared.next_id.fetch_add(1, Ordering::Relaxed)
        ),
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(&shared.model)
            .to_string(),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let usage = Usage::estimate(bytes.len(), &step);
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        stream_reply(shared, meta, step, usage)
    } else {
        if !wait_while_held(&shared, None).await {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the stand-in is stopping",
                "server_error",
                "stopping",
            );
        }
        Json(chunks::completion(&meta, &step, usage)).into_response()
    }
}

/// A streamed reply: the chunks go through a channel from a task that applies the knobs.
fn stream_reply(shared: Arc<Shared>, meta: Meta, step: Step, usage: Usage) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let events: Vec<String> = chunks::stream_chunks(&meta, &step, usage)
        .iter()
        .map(chunks::sse_event)
        .chain(std::iter::once(chunks::SSE_DONE.to_string()))
        .collect();
    tokio::spawn(async move {
        let mut closing = shared.closing.subscribe();
        for (i, event) in events.into_iter().enumerate() {
            if i > 0 {
                let delay = shared.knobs.borrow().chunk_delay_ms;
                if delay > 0 {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(delay)) => {}
                        () = tx.closed() => return,
                        _ = closing.wait_for(|c| *c) => return,
                    }
                }
            }
            if tx.send(Bytes::from(event)).await.is_err() {
                return;
            }
            if i == 0 && !wait_while_held(&shared, Some(&tx)).await {
                return;
            }
        }
    });
    let body = Body::from_stream(stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(bytes), rx))
    }));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Counts a reply as held while it exists.
struct HeldGuard<'a>(&'a watch::Sender<usize>);

impl<'a> HeldGuard<'a> {
    fn new(held: &'a watch::Sender<usize>) -> HeldGuard<'a> {
        held.send_modify(|n| *n += 1);
        HeldGuard(held)
    }
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Waits while hold is on. False when the reply should be abandoned instead: the client went
/// away (`tx` closed) or the stand-in is stopping.
async fn wait_while_held(shared: &Shared, tx: Option<&mpsc::Sender<Bytes>>) -> bool {
    if !shared.knobs.borrow().hold {
        return true;
    }
    let _held = HeldGuard::new(&shared.held);
    let mut knobs = shared.knobs.subscribe();
    let mut closing = shared.closing.subscribe();
    let client_gone = async {
        match tx {
            Some(tx) => tx.closed().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        released = knobs.wait_for(|k| !k.hold) => released.is_ok(),
        () = client_gone => false,
        _ = closing.wait_for(|c| *c) => false,
    }
}

async fn models(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{ "id": shared.model, "object": "model", "created": 0, "owned_by": "openwork-testkit" }],
    }))
}

async fn list_requests(State(shared): State<Arc<Shared>>) -> Json<Vec<RecordedRequest>> {
    Json(shared.log.snapshot())
}

async fn clear_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.log.clear();
    StatusCode::NO_CONTENT
}

async fn get_script(State(shared): State<Arc<Shared>>) -> Json<Script> {
    Json(lock(&shared.script).clone())
}

async fn put_script(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    match Script::parse(&text, "PUT /__standin/script") {
        Ok(script) => {
            *lock(&shared.script) = script.clone();
            Json(script).into_response()
        }
        Err(err) => error(
            StatusCode::BAD_REQUEST,
            &err.to_string(),
            "invalid_request_error",
            "invalid_script",
        ),
    }
}

async fn get_knobs(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(shared.knobs_json())
}

async fn put_knobs(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch: KnobsPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"chunk_delay_ms\"?: N, \"hold\"?: bool}}: {err}"),
                "invalid_request_error",
                "invalid_knobs",
            );
        }
    };
    shared.knobs.send_modify(|knobs| {
        if let Some(delay) = patch.chunk_delay_ms {
            knobs.chunk_delay_ms = delay;
        }
        if let Some(hold) = patch.hold {
            knobs.hold = hold;
        }
    });
    Json(shared.knobs_json()).into_response()
}

#[derive(Deserialize)]
struct BigQuery {
    bytes: u64,
}

/// `bytes` bytes of `x`, streamed in 64 KiB blocks with a `Content-Length` (throughput tests).
async fn big(query: Result<Query<BigQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let Ok(Query(BigQuery { bytes })) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected /__standin/big?bytes=N",
            "invalid_request_error",
            "invalid_query",
        );
    };
    let block = BIG_BLOCK.len() as u64;
    let blocks = stream::unfold(bytes, move |left| async move {
        if left == 0 {
            return None;
        }
        let n = left.min(block);
        let piece = Bytes::from_static(&BIG_BLOCK[..n as usize]);
        Some((Ok::<_, Infallible>(piece), left - n))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, bytes)
        .body(Body::from_stream(blocks))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

pub use handle::StandIn;

mod handle;
