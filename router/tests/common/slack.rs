//! A stand-in Slack on 127.0.0.1: the Web API methods the router calls (`auth.test`,
//! `apps.connections.open`, `chat.postMessage`) and the Socket Mode WebSocket (a `hello` on
//! connect, `events_api` envelopes pushed by the test, acks recorded, `disconnect` on demand).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{any, post};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

pub const BOT_TOKEN: &str = "xoxb-test";
pub const APP_TOKEN: &str = "xapp-test";

#[derive(Debug, Clone)]
pub struct Posted {
    pub channel: String,
    pub thread_ts: Option<String>,
    pub text: String,
}

pub struct SlackState {
    addr: Mutex<Option<SocketAddr>>,
    pub posted: Mutex<Vec<Posted>>,
    pub acks: Mutex<Vec<String>>,
    pub opens: AtomicUsize,
    pub connects: AtomicUsize,
    outgoing: broadcast::Sender<String>,
    next: AtomicUsize,
    changed: Notify,
}

pub struct Slack {
    pub addr: SocketAddr,
    pub state: Arc<SlackState>,
}

impl Slack {
    pub async fn start() -> Slack {
        let (outgoing, _) = broadcast::channel(64);
        let state = Arc::new(SlackState {
            addr: Mutex::new(None),
            posted: Mutex::new(Vec::new()),
            acks: Mutex::new(Vec::new()),
            opens: AtomicUsize::new(0),
            connects: AtomicUsize::new(0),
            outgoing,
            next: AtomicUsize::new(0),
            changed: Notify::new(),
        });
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/socket", any(socket))
            .with_state(state.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        *state.addr.lock().unwrap() = Some(addr);
        tokio::spawn(async move { axum::serve(l, app).await });
        Slack { addr, state }
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// A user DMs the bot in `channel` (a `D…` id); returns the envelope id.
    pub fn push_dm(&self, channel: &str, text: &str) -> String {
        let n = self.state.next.fetch_add(1, Ordering::SeqCst);
        let envelope = format!("env-{n}");
        let msg = json!({
            "type": "events_api", "envelope_id": envelope, "accepts_response_payload": false,
            "payload": {"type": "event_callback", "event_id": format!("Ev{n}"), "event": {
                "type": "message", "channel_type": "im", "channel": channel, "user": "U1",
                "text": text, "ts": format!("{n}.0001")}}
        });
        let _ = self.state.outgoing.send(msg.to_string());
        envelope
    }

    /// A user mentions the bot in channel `channel`; returns the message ts.
    pub fn push_mention(&self, channel: &str, text: &str) -> String {
        let n = self.state.next.fetch_add(1, Ordering::SeqCst);
        let ts = format!("{n}.0002");
        let msg = json!({
            "type": "events_api", "envelope_id": format!("env-{n}"),
            "payload": {"type": "event_callback", "event_id": format!("Ev{n}"), "event": {
                "type": "app_mention", "channel": channel, "user": "U1",
                "text": format!("<@UBOT> {text}"), "ts": ts}}
        });
        let _ = self.state.outgoing.send(msg.to_string());
        ts
    }

    /// Asks every connected socket to reconnect, as Slack does before it rotates a connection.
    pub fn disconnect(&self) {
        let _ = self
            .state
            .outgoing
            .send(json!({"type": "disconnect", "reason": "refresh_requested"}).to_string());
    }

    pub async fn wait_for(&self, limit: Duration, pred: impl Fn(&Posted) -> bool) -> Posted {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.state.changed.notified();
            if let Some(p) = self
                .state
                .posted
                .lock()
                .unwrap()
                .iter()
                .find(|p| pred(p))
                .cloned()
            {
                return p;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no matching Slack post; posted: {:?}",
                self.state.posted.lock().unwrap()
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }

    pub async fn wait_connects(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.state.connects.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "socket connects never reached {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn api(
    State(state): State<Arc<SlackState>>,
    axum::extract::Path(method): axum::extract::Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let need = if method == "apps.connections.open" {
        APP_TOKEN
    } else {
        BOT_TOKEN
    };
    if auth != format!("Bearer {need}") {
        return Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    }
    match method.as_str() {
        "auth.test" => {
            Json(json!({"ok": true, "user_id": "UBOT", "team_id": "T1"})).into_response()
        }
        "apps.connections.open" => {
            state.opens.fetch_add(1, Ordering::SeqCst);
            let addr = state.addr.lock().unwrap().unwrap();
            Json(json!({"ok": true, "url": format!("ws://{addr}/socket")})).into_response()
        }
        "chat.postMessage" => {
            state.posted.lock().unwrap().push(Posted {
                channel: v["channel"].as_str().unwrap_or("").into(),
                thread_ts: v["thread_ts"].as_str().map(str::to_string),
                text: v["text"].as_str().unwrap_or("").into(),
            });
            state.changed.notify_waiters();
            Json(json!({"ok": true, "ts": "9.9"})).into_response()
        }
        _ => Json(json!({"ok": false, "error": "unknown_method"})).into_response(),
    }
}

async fn socket(State(state): State<Arc<SlackState>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |s| session(state, s))
}

async fn session(state: Arc<SlackState>, mut ws: WebSocket) {
    state.connects.fetch_add(1, Ordering::SeqCst);
    let mut rx = state.outgoing.subscribe();
    let hello = json!({"type": "hello", "num_connections": 1}).to_string();
    if ws.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Ok(text) = out else { return };
                let is_disconnect = text.contains("\"disconnect\"");
                if ws.send(Message::Text(text.into())).await.is_err() { return; }
                if is_disconnect {
                    let _ = ws.send(Message::Close(None)).await;
                    return;
                }
            }
            inc = ws.recv() => {
                match inc {
                    Some(Ok(Message::Text(t))) => {
                        if let Ok(v) = serde_json::from_str::<Value>(&t)
                            && let Some(e) = v["envelope_id"].as_str() {
                            state.acks.lock().unwrap().push(e.to_string());
                            state.changed.notify_waiters();
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                }
            }
        }
    }
}
