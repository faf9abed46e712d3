//! The stand-in's HTTP contract (testkit/README.md), in process and as the `standin-model`
//! binary. Everything listens on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use openwork_testkit::{Options, Script, StandIn, Step};
use serde_json::{Value, json};

/// A bound for waits, never an expectation.
const LIMIT: Duration = Duration::from_secs(30);

fn chat_body(stream: bool) -> Value {
    json!({
        "model": "some-model",
        "stream": stream,
        "messages": [{"role": "user", "content": "go"}],
        "tools": [{"type": "function", "function": {"name": "write", "parameters": {}}}],
    })
}

/// The `data:` payloads of an SSE body.
fn sse_data(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "events end with a blank line");
    body.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"))
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_streamed_reply_is_sse_chunks_ending_in_done() {
    let standin = StandIn::start(Options::default()).await.unwrap();
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/chat/completions", standin.base_url()))
        .bearer_auth("sk-seen")
        .json(&chat_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let data = sse_data(&response.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c["model"] == "some-model"));
    let mut arguments = String::new();
    for chunk in &chunks {
        if let Some(piece) = chunk.pointer("/choices/0/delta/tool_calls/0/function/arguments") {
            arguments.push_str(piece.as_str().unwrap());
        }
    }
    let arguments: Value = serde_json::from_str(&arguments).unwrap();
    assert_eq!(arguments["filePath"], "standin.txt");
    let finish = chunks
        .iter()
        .find_map(|c| c.pointer("/choices/0/finish_reason")?.as_str())
        .unwrap();
    assert_eq!(finish, "tool_calls");
    assert!(
        chunks.last().unwrap()["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );

    let recorded = standin.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].authorization(), Some("Bearer sk-seen"));
    assert_eq!(recorded[0].body, chat_body(true));
    assert_eq!(recorded[0].step, Some(0));
}

#[tokio::test]
async fn a_non_streamed_reply_is_one_completion() {
    let standin = StandIn::start(Options {
        script: Script::new(vec![Step::text("plain")]),
        ..Options::default()
    })
    .await
    .unwrap();
    let body: Value = reqwest::Client::new()
        .post(format!("{}/chat/completions", standin.base_url()))
        .json(&chat_body(false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "plain");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn models_unknown_paths_and_bad_bodies() {
    let standin = StandIn::start(Options::default()).await.unwrap();
    let http = reqwest::Client::new();
    let models: Value = reqwest::get(format!("{}/models", standin.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "standin-model");

    let missing = reqwest::get(format!("{}/v1/embeddings", standin.url()))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let error: Value = missing.json().await.unwrap();
    assert_eq!(error["error"]["code"], "not_found");

    let wrong_method = reqwest::get(format!("{}/chat/completions", standin.base_url()))
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let error: Value = wrong_method.json().await.unwrap();
    assert_eq!(error["error"]["code"], "method_not_allowed");

    let bad = http
        .post(format!("{}/chat/completions", standin.base_url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Recorded anyway (as text), like every request outside /__standin/.
    let recorded = standin.requests();
    assert_eq!(recorded.len(), 4);
    assert_eq!(recorded[3].body, json!("{not json"));
}

#[tokio::test]
async fn the_log_and_the_script_are_readable_and_settable_over_http() {
    let standin = StandIn::start(Options::default()).await.unwrap();
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{}/__standin/script", standin.url()))
        .body(r#"[{"text": "from http"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let body: Value = http
        .post(format!("{}/chat/completions", standin.base_url()))
        .header("x-probe", "1")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "from http");

    let log: Value = reqwest::get(format!("{}/__standin/requests", standin.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 1, "control requests are not recorded: {log:#?}");
    assert_eq!(log[0]["method"], "POST");
    assert_eq!(log[0]["path"], "/v1/chat/completions");
    assert_eq!(log[0]["headers"]["x-probe"], "1");
    assert_eq!(log[0]["step"], 0);

    let cleared = http
        .delete(format!("{}/__standin/requests", standin.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    assert!(standin.requests().is_empty());

    let invalid = http
        .put(format!("{}/__standin/script", standin.url()))
        .body(r#"[{"txet": "typo"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let error: Value = invalid.json().await.unwrap();
    assert!(
        error["error"]["message"].as_str().unwrap().contains("txet"),
        "{error}"
    );
    let script: Value = reqwest::get(format!("{}/__standin/script", standin.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(script["steps"], json!([{"text": "from http"}]));
}

#[tokio::test]
async fn a_held_stream_sends_its_first_chunk_then_waits_for_release() {
    let standin = StandIn::start(Options::default()).await.unwrap();
    let http = reqwest::Client::new();
    let knobs: Value = http
        .put(format!("{}/__standin/knobs", standin.url()))
        .json(&json!({"hold": true, "chunk_delay_ms": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(knobs, json!({"chunk_delay_ms": 1, "hold": true, "held": 0}));

    let mut response = http
        .post(format!("{}/chat/completions", standin.base_url()))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(LIMIT, response.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"role\":\"assistant\""));
    tokio::time::timeout(LIMIT, standin.wait_held(1))
        .await
        .unwrap();
    let knobs: Value = reqwest::get(format!("{}/__standin/knobs", standin.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(knobs["held"], 1);

    standin.release();
    let mut rest = String::new();
    while let Some(bytes) = tokio::time::timeout(LIMIT, response.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        rest.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert!(rest.ends_with("data: [DONE]\n\n"));
    assert_eq!(standin.held(), 0);
}

#[tokio::test]
async fn big_streams_exactly_the_bytes_asked_for() {
    let standin = StandIn::start(Options::default()).await.unwrap();
    let n = 3 * 64 * 1024 + 17;
    let response = reqwest::get(format!("{}/__standin/big?bytes={n}", standin.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(n));
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len() as u64, n);
    assert!(body.iter().all(|b| *b == b'x'));
    let bad = reqwest::get(format!("{}/__standin/big", standin.url()))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[test]
fn the_thread_variant_serves_tests_that_are_not_async() {
    let standin = StandIn::start_in_thread(Options::default()).unwrap();
    let addr = standin.addr();
    assert!(addr.ip().is_loopback());
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("standin-model"));
    drop(standin);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "stopped on drop"
    );
}

/// Kills the binary if a test fails before it exits.
struct Binary(std::process::Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_prints_its_address_serves_its_script_and_stops_on_sigterm() {
    let mut child = Binary(
        Command::new(env!("CARGO_BIN_EXE_standin-model"))
            .args(["--listen", "127.0.0.1:0", "--script-json"])
            .arg(r#"[{"text": "from the binary"}]"#)
            .env_remove("STANDIN_SCRIPT_FILE")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(LIMIT, line).await.unwrap().unwrap();
    let addr = line
        .trim()
        .strip_prefix("standin-model listening on ")
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
    let body: Value = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&chat_body(false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "from the binary");

    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.0.id() as i32, libc::SIGTERM);
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = child.0.wait().unwrap();
        drop(child);
        status
    });
    let status = tokio::time::timeout(LIMIT, status).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn the_binary_names_a_bad_script_and_exits_nonzero() {
    let out = Command::new(env!("CARGO_BIN_EXE_standin-model"))
        .args(["--script-json", r#"[{"tool_call": {"name": "w"}}]"#])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--script-json"), "{stderr}");
    assert!(stderr.contains("arguments"), "{stderr}");
}

/// The README's route table is the contract: every route it lists answers (not 404/405).
#[tokio::test]
async fn every_route_in_the_readme_answers() {
    let readme = include_str!("../README.md");
    let routes: Vec<(String, String)> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .filter_map(|(route, _)| route.split_once(' '))
        .filter(|(method, _)| ["GET", "POST", "PUT", "DELETE"].contains(method))
        .map(|(method, path)| (method.to_string(), path.replace("=N", "=1")))
        .collect();
    assert_eq!(routes.len(), 9, "{routes:?}");
    let standin = StandIn::start(Options::default()).await.unwrap();
    let http = reqwest::Client::new();
    for (method, path) in routes {
        let body = match (method.as_str(), path.as_str()) {
            ("POST", _) => chat_body(false).to_string(),
            ("PUT", "/__standin/script") => r#"[{"text": "x"}]"#.to_string(),
            ("PUT", _) => "{}".to_string(),
            _ => String::new(),
        };
        let response = http
            .request(method.parse().unwrap(), format!("{}{path}", standin.url()))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
    }
}
