//! A stand-in OpenAI-compatible model on 127.0.0.1 (`/v1/chat/completions`, streaming SSE in
//! the chunk shapes the AI SDK's openai-compatible provider reads). Replace with the shared
//! `testkit` crate once it lands.
//!
//! Script: a request with `tools` whose last user text contains `RUN_TOOL <cmd>` (and no tool
//! result yet) gets a `bash` tool call running `<cmd>`; after a tool result it answers
//! `tool said: <result>`; otherwise it answers `pong <n>: <text>`, where n counts the user
//! messages in the request (so a test can see that a session kept its history).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Default)]
pub struct ModelState {
    pub requests: AtomicUsize,
}

pub struct Model {
    pub addr: SocketAddr,
    pub state: Arc<ModelState>,
}

impl Model {
    pub async fn start() -> Model {
        let state = Arc::new(ModelState::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route(
                "/v1/models",
                get(|| async {
                    axum::Json(
                        json!({"object":"list","data":[{"id":"test-model","object":"model"}]}),
                    )
                }),
            )
            .with_state(state.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        Model { addr, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// What the model says to a request.
enum Answer {
    Text(String),
    Tool(String),
}

fn decide(body: &Value) -> Answer {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let users: Vec<String> = messages
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| text_of(&m["content"]))
        .collect();
    let last_user = users.last().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    if last["role"] == "tool" {
        return Answer::Text(format!("tool said: {}", text_of(&last["content"]).trim()));
    }
    let has_tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    if has_tools && let Some(i) = last_user.find("RUN_TOOL ") {
        return Answer::Tool(last_user[i + 9..].trim().to_string());
    }
    Answer::Text(format!("pong {}: {}", users.len(), last_user.trim()))
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let mut c = json!({
        "id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 0,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    if finish.is_some() {
        c["usage"] = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
    }
    format!("data: {c}\n\n")
}

async fn completions(State(state): State<Arc<ModelState>>, body: axum::Json<Value>) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let answer = decide(&body);
    if body["stream"] != Value::Bool(true) {
        let message = match &answer {
            Answer::Text(t) => json!({"role": "assistant", "content": t}),
            Answer::Tool(cmd) => json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "bash", "arguments": json!({"command": cmd, "description": "run it"}).to_string()}}]}),
        };
        let finish = if matches!(answer, Answer::Tool(_)) {
            "tool_calls"
        } else {
            "stop"
        };
        return axum::Json(json!({
            "id": "chatcmpl-standin", "object": "chat.completion", "created": 0, "model": "test-model",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }))
        .into_response();
    }
    let mut out = String::new();
    match answer {
        Answer::Text(t) => {
            out.push_str(&chunk(json!({"role": "assistant", "content": ""}), None));
            out.push_str(&chunk(json!({"content": t}), None));
            out.push_str(&chunk(json!({}), Some("stop")));
        }
        Answer::Tool(cmd) => {
            out.push_str(&chunk(
                json!({"role": "assistant", "content": null, "tool_calls": [{
                "index": 0, "id": "call_1", "type": "function",
                "function": {"name": "bash", "arguments": ""}}]}),
                None,
            ));
            out.push_str(&chunk(
                json!({"tool_calls": [{"index": 0, "function": {
                "arguments": json!({"command": cmd, "description": "run it"}).to_string()}}]}),
                None,
            ));
            out.push_str(&chunk(json!({}), Some("tool_calls")));
        }
    }
    out.push_str("data: [DONE]\n\n");
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        out,
    )
        .into_response()
}
