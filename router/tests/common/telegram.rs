//! A stand-in Telegram Bot API on 127.0.0.1: `getMe`, `getUpdates` (offset confirms, long
//! polling), `sendMessage`, `sendChatAction`, `sendDocument`, in the real JSON envelope
//! (`{"ok":true,"result":…}` / `{"ok":false,"error_code":429,"parameters":{"retry_after":n}}`).
//!
//! Rate limits: `limit_get_updates(n)` / `limit_send(n)` make the next n calls answer 429 with
//! `retry_after` 1 s; any call that comes back before that deadline is counted in `early`, so a
//! test can check that the router honoured it without measuring time itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Sent {
    pub chat_id: String,
    pub text: String,
}

#[derive(Default)]
pub struct TgState {
    updates: Mutex<Vec<Value>>,
    next_id: Mutex<i64>,
    pub sent: Mutex<Vec<Sent>>,
    pub documents: Mutex<Vec<usize>>,
    pub typing: AtomicUsize,
    pub get_updates_calls: AtomicUsize,
    limit_updates: AtomicU32,
    limit_send: AtomicU32,
    /// The retry_after deadline of the last 429, per method (Telegram limits sends and polling
    /// separately).
    not_before_updates: Mutex<Option<Instant>>,
    not_before_send: Mutex<Option<Instant>>,
    /// Calls that ignored a 429's retry_after.
    pub early: AtomicUsize,
    pub limited: AtomicUsize,
    new_update: Notify,
    new_sent: Notify,
}

pub struct Telegram {
    pub addr: SocketAddr,
    pub state: Arc<TgState>,
}

pub const TOKEN: &str = "123456:TEST-token";

impl Telegram {
    pub async fn start() -> Telegram {
        let state = Arc::new(TgState::default());
        *state.next_id.lock().unwrap() = 100;
        let app = Router::new()
            .route("/{bot}/{method}", post(call))
            .with_state(state.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        Telegram { addr, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A user writes `text` in the private chat `chat_id`; returns the update id.
    pub fn push_text(&self, chat_id: i64, text: &str) -> i64 {
        let id = {
            let mut n = self.state.next_id.lock().unwrap();
            *n += 1;
            *n
        };
        self.state.updates.lock().unwrap().push(json!({
            "update_id": id,
            "message": {"message_id": id, "date": 0, "text": text,
                        "chat": {"id": chat_id, "type": "private"},
                        "from": {"id": chat_id, "is_bot": false, "first_name": "T"}}
        }));
        self.state.new_update.notify_waiters();
        id
    }

    pub fn limit_get_updates(&self, n: u32) {
        self.state.limit_updates.store(n, Ordering::SeqCst);
    }

    pub fn limit_send(&self, n: u32) {
        self.state.limit_send.store(n, Ordering::SeqCst);
    }

    pub fn sent_to(&self, chat_id: i64) -> Vec<String> {
        let id = chat_id.to_string();
        self.state
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.chat_id == id)
            .map(|s| s.text.clone())
            .collect()
    }

    /// Waits until a message to `chat_id` satisfies `pred`; returns it. Panics after `limit`.
    pub async fn wait_for(
        &self,
        chat_id: i64,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.state.new_sent.notified();
            if let Some(t) = self.sent_to(chat_id).into_iter().find(|t| pred(t)) {
                return t;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no matching message to {chat_id}; sent: {:?}",
                self.sent_to(chat_id)
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }

    /// Messages to `chat_id` whose text contains `needle`.
    pub fn count(&self, chat_id: i64, needle: &str) -> usize {
        self.sent_to(chat_id)
            .iter()
            .filter(|t| t.contains(needle))
            .count()
    }
}

fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

fn limited(
    state: &TgState,
    counter: &AtomicU32,
    not_before: &Mutex<Option<Instant>>,
) -> Option<Response> {
    let now = Instant::now();
    let mut nb = not_before.lock().unwrap();
    if let Some(t) = *nb
        && now < t
    {
        state.early.fetch_add(1, Ordering::SeqCst);
    }
    if counter.load(Ordering::SeqCst) > 0 {
        counter.fetch_sub(1, Ordering::SeqCst);
        state.limited.fetch_add(1, Ordering::SeqCst);
        *nb = Some(now + Duration::from_secs(1));
        return Some(
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                Json(json!({
                "ok": false, "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1}})),
            )
                .into_response(),
        );
    }
    None
}

async fn call(
    State(state): State<Arc<TgState>>,
    Path((bot, method)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if bot != format!("bot{TOKEN}") {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        )
            .into_response();
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match method.as_str() {
        "getMe" => {
            ok(json!({"id": 123456, "is_bot": true, "first_name": "Test", "username": "testbot"}))
        }
        "getUpdates" => {
            state.get_updates_calls.fetch_add(1, Ordering::SeqCst);
            if let Some(r) = limited(&state, &state.limit_updates, &state.not_before_updates) {
                return r;
            }
            let offset = v["offset"].as_i64().unwrap_or(0);
            let timeout = v["timeout"].as_u64().unwrap_or(0);
            let deadline = Instant::now() + Duration::from_secs(timeout);
            loop {
                let notified = state.new_update.notified();
                let pending: Vec<Value> = {
                    let mut u = state.updates.lock().unwrap();
                    u.retain(|x| x["update_id"].as_i64().unwrap_or(0) >= offset);
                    u.clone()
                };
                if !pending.is_empty() || Instant::now() >= deadline {
                    return ok(Value::Array(pending));
                }
                let _ = tokio::time::timeout(
                    deadline.saturating_duration_since(Instant::now()),
                    notified,
                )
                .await;
            }
        }
        "sendMessage" => {
            if let Some(r) = limited(&state, &state.limit_send, &state.not_before_send) {
                return r;
            }
            let chat_id = match &v["chat_id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let text = v["text"].as_str().unwrap_or("").to_string();
            assert!(
                text.chars().count() <= 4096,
                "message over Telegram's limit"
            );
            state.sent.lock().unwrap().push(Sent { chat_id, text });
            state.new_sent.notify_waiters();
            ok(json!({"message_id": 1, "date": 0, "chat": {"id": 0, "type": "private"}}))
        }
        "sendChatAction" => {
            state.typing.fetch_add(1, Ordering::SeqCst);
            ok(json!(true))
        }
        "sendDocument" => {
            state.documents.lock().unwrap().push(body.len());
            state.new_sent.notify_waiters();
            ok(json!({"message_id": 2, "date": 0, "chat": {"id": 0, "type": "private"}}))
        }
        _ => (
            axum::http::StatusCode::NOT_FOUND,
            Json(json!({"ok": false, "error_code": 404, "description": "Not Found"})),
        )
            .into_response(),
    }
}
