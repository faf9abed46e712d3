//! Real opencode turns against the stand-in model: the real `opencode serve`
//! (`OPENWORK_TEST_OPENCODE_BIN`, installed by scripts/test.sh) with an isolated home, offline,
//! on 127.0.0.1, configured through `OPENCODE_CONFIG_CONTENT` to use the stand-in as its model.

// Test helpers outside #[test] functions panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use openwork_testkit::opencode::{IsolatedDirs, Opencode, OpencodeClient};
use openwork_testkit::script::{DEFAULT_CONTENT, DEFAULT_FILE, DEFAULT_REPLY, DEFAULT_UNTOOLED};
use openwork_testkit::{Options, Script, StandIn, Step};
use serde_json::{Value, json};

const API_KEY: &str = "sk-standin-e2e-4f1c";

/// A bound for waits on something that happens within a second or two; never an expectation.
const LIMIT: Duration = Duration::from_secs(60);

async fn start(standin: &StandIn, dirs: &IsolatedDirs) -> Opencode {
    Opencode::builder(dirs.workspace(), dirs.home())
        .config(&standin.opencode_config(API_KEY))
        .spawn()
        .await
        .unwrap()
}

/// Polls `check` (bounded by [`LIMIT`]) until it returns something.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_turn_runs_the_scripted_write_and_replies_done() {
    let standin = StandIn::start(Options::default()).await.unwrap();
    let dirs = IsolatedDirs::new().unwrap();
    let opencode = start(&standin, &dirs).await;
    assert!(opencode.url().starts_with("http://127.0.0.1:"));
    let client = opencode.client();

    let session = client.create_session("testkit e2e").await.unwrap();
    let reply = client.prompt(&session, "write the file").await.unwrap();
    let logs = || opencode.logs().join("\n");
    assert_eq!(
        reply.text(),
        DEFAULT_REPLY,
        "reply: {}\nopencode log:\n{}",
        reply.json,
        logs()
    );
    assert_eq!(reply.finish(), Some("stop"));

    // The scripted tool call ran in the workspace.
    let written = std::fs::read_to_string(dirs.workspace().join(DEFAULT_FILE)).unwrap();
    assert_eq!(written, DEFAULT_CONTENT);

    // What arrived at the stand-in: both requests, with the configured key.
    let chats = standin.chat_requests();
    let steps: Vec<Option<usize>> = chats.iter().map(|r| r.step).collect();
    assert_eq!(steps, [Some(0), Some(1)], "{chats:#?}");
    for request in &chats {
        assert_eq!(
            request.authorization(),
            Some(format!("Bearer {API_KEY}").as_str())
        );
        assert_eq!(request.body["stream"], true);
        assert_eq!(request.body["model"], "standin-model");
    }
    // The second request carries the tool's result after the scripted call.
    let messages = chats[1].body["messages"].as_array().unwrap();
    let tail: Vec<&str> = messages
        .iter()
        .rev()
        .take(2)
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(tail, ["tool", "assistant"]);
    assert_eq!(
        messages[messages.len() - 2]["tool_calls"][0]["function"]["name"],
        "write"
    );

    // opencode 1.18's `write` declares the arguments the default script sends.
    let write = chats[0].tool_parameters("write").unwrap();
    assert_eq!(write["type"], "object");
    let mut required: Vec<&str> = write["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["content", "filePath"]);

    // The same is readable over HTTP, for tests in other processes or containers.
    let over_http: Vec<Value> = reqwest::get(format!("{}/__standin/requests", standin.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http.len(), standin.requests().len());
    assert_eq!(
        over_http[0]["headers"]["authorization"],
        format!("Bearer {API_KEY}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untitled_session_gets_its_title_from_an_untooled_request() {
    let standin = StandIn::start(Options {
        script: Script::new(vec![Step::text("hello back")]),
        ..Options::default()
    })
    .await
    .unwrap();
    let dirs = IsolatedDirs::new().unwrap();
    let opencode = start(&standin, &dirs).await;
    let client = opencode.client();

    let session = client.post("/session", &json!({})).await.unwrap();
    let id = session["id"].as_str().unwrap();
    let reply = client.prompt(id, "hello").await.unwrap();
    assert_eq!(reply.text(), "hello back");

    // opencode asks its small model (the stand-in) for a title, offering no tools: that request
    // gets the untooled text and does not advance the script.
    let title = eventually("the generated session title", || {
        let client = client.clone();
        let path = format!("/session/{id}");
        async move {
            let session = client.get(&path).await.ok()?;
            let title = session["title"].as_str()?.to_string();
            (title == DEFAULT_UNTOOLED).then_some(title)
        }
    })
    .await;
    assert_eq!(title, DEFAULT_UNTOOLED);
    let chats = standin.chat_requests();
    let untooled: Vec<_> = chats.iter().filter(|r| r.tool_names().is_empty()).collect();
    assert_eq!(untooled.len(), 1, "{chats:#?}");
    assert_eq!(untooled[0].step, None);
    assert!(chats.iter().any(|r| r.step == Some(0)));
}

async fn busy(client: &OpencodeClient, session: &str) -> bool {
    let status = client.status().await.unwrap();
    status.get(session).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_turn_stays_running_until_released() {
    let standin = StandIn::start(Options::default()).await.unwrap();
    standin.hold();
    let dirs = IsolatedDirs::new().unwrap();
    let opencode = start(&standin, &dirs).await;
    let client = opencode.client();
    let session = client.create_session("held").await.unwrap();

    client
        .prompt_async(&session, "write the file")
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, standin.wait_held(1))
        .await
        .expect("the turn's first model request reaches the stand-in");
    // Held: the turn is certainly running and has not written anything.
    assert!(busy(&client, &session).await);
    assert!(!dirs.workspace().join(DEFAULT_FILE).exists());

    standin.release();
    eventually("the released turn to finish", || {
        let client = client.clone();
        let session = session.clone();
        async move { (!busy(&client, &session).await).then_some(()) }
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(dirs.workspace().join(DEFAULT_FILE)).unwrap(),
        DEFAULT_CONTENT
    );
    assert_eq!(standin.held(), 0);
    let messages = client.messages(&session).await.unwrap();
    let last = messages.as_array().unwrap().last().unwrap();
    let text: String = last["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "text")
        .filter_map(|p| p["text"].as_str())
        .collect();
    assert_eq!(text, DEFAULT_REPLY);
}
