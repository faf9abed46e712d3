//! Telegram end to end: the router in-process, a stand-in Bot API, and the real opencode with a
//! stand-in model. Skipped (with a note) when OPENWORK_TEST_OPENCODE_BIN is not set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::telegram::{TOKEN, Telegram};
use common::{Opencode, Router, model::Model, opencode_bin, router_env};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn write_config(data: &std::path::Path, bot: serde_json::Value) {
    std::fs::create_dir_all(data).unwrap();
    let cfg = json!({"version": 1, "unknownKey": {"kept": true}, "channels": {"telegram": {"bots": [bot]}}});
    std::fs::write(data.join("opencode-router.json"), cfg.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_round_trip_pairing_commands_send_429_and_restart() {
    let Some(bin) = opencode_bin() else {
        eprintln!("skipped: OPENWORK_TEST_OPENCODE_BIN is not set");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let data = tmp.path().join("data");
    let model = Model::start().await;
    let oc = Opencode::start(&bin, &root, &model.base_url()).await;
    let tg = Telegram::start().await;
    write_config(
        &data,
        json!({"id": "tg", "token": TOKEN, "access": "private",
               "pairingCodeHash": opencode_router::pairing::hash_code("ABCDE-FGHJK")}),
    );
    let mut env = router_env(&data, &root, &oc.url);
    env.insert("OPENCODE_ROUTER_TELEGRAM_API".into(), tg.base_url());

    // Two 429s on polling before anything is delivered.
    tg.limit_get_updates(2);
    let router = Router::start(env.clone()).await;
    router.wait_state("telegram", "tg", "running", WAIT).await;

    // Private bot: nothing but /pair until the chat is bound.
    tg.push_text(42, "hello");
    tg.wait_for(42, WAIT, |t| t.contains("This bot is private"))
        .await;
    tg.push_text(42, "/pair WRONG-CODE");
    tg.wait_for(42, WAIT, |t| t.contains("Invalid pairing code"))
        .await;
    tg.push_text(42, "/pair abcde fghjk");
    tg.wait_for(42, WAIT, |t| t.contains("Pairing successful"))
        .await;

    // A round trip through the real opencode; the first reply meets a 429 on sendMessage.
    tg.limit_send(1);
    tg.push_text(42, "hi there");
    tg.wait_for(42, WAIT, |t| t == "pong 1: hi there").await;
    tg.push_text(42, "second");
    tg.wait_for(42, WAIT, |t| t == "pong 2: second").await;
    assert!(
        tg.state.typing.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "no typing indicator"
    );

    // /dir moves the chat (and starts a new session); it cannot leave the workspace.
    tg.push_text(42, "/dir sub");
    tg.wait_for(42, WAIT, |t| t.contains("now works in")).await;
    tg.push_text(42, "third");
    tg.wait_for(42, WAIT, |t| t == "pong 1: third").await;
    tg.push_text(42, "/dir ../..");
    tg.wait_for(42, WAIT, |t| t.contains("outside the workspace"))
        .await;
    tg.push_text(42, "/dir");
    tg.wait_for(42, WAIT, |t| t.starts_with("📁") && t.ends_with("/ws/sub"))
        .await;

    // /reset starts over.
    tg.push_text(42, "/reset");
    tg.wait_for(42, WAIT, |t| t.contains("Session reset")).await;
    tg.push_text(42, "fourth");
    tg.wait_for(42, WAIT, |t| t == "pong 1: fourth").await;

    // Outbound send: bound chats only.
    let http = reqwest::Client::new();
    let r = http
        .post(router.url("/send"))
        .bearer_auth(&router.token)
        .json(&json!({"channel": "telegram", "peerId": "42", "text": "from the host"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["sent"], 1, "{body}");
    tg.wait_for(42, WAIT, |t| t == "from the host").await;
    let r = http
        .post(router.url("/send"))
        .bearer_auth(&router.token)
        .json(&json!({"channel": "telegram", "peerId": "77", "text": "spam"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Files: inside the workspace and under the cap only.
    std::fs::write(root.join("sub/report.txt"), "data").unwrap();
    let r = http
        .post(router.url("/send"))
        .bearer_auth(&router.token)
        .json(&json!({"channel": "telegram", "peerId": "42",
                      "parts": [{"type": "file", "filePath": "sub/report.txt"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(tg.state.documents.lock().unwrap().len(), 1);
    let r = http
        .post(router.url("/send"))
        .bearer_auth(&router.token)
        .json(&json!({"channel": "telegram", "peerId": "42",
                      "parts": [{"type": "file", "filePath": "/etc/passwd"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Restart mid-conversation: a message sent while the router is down is answered once, in
    // the same session (its history has two user messages).
    router.stop().await;
    tg.push_text(42, "after restart");
    let router = Router::start(env.clone()).await;
    tg.wait_for(42, WAIT, |t| t == "pong 2: after restart")
        .await;
    tg.push_text(42, "last");
    tg.wait_for(42, WAIT, |t| t == "pong 3: last").await;
    for reply in [
        "pong 1: hi there",
        "pong 2: second",
        "pong 1: third",
        "pong 1: fourth",
        "pong 2: after restart",
    ] {
        assert_eq!(
            tg.count(42, reply),
            1,
            "{reply:?} answered more than once: {:?}",
            tg.sent_to(42)
        );
    }
    assert_eq!(tg.count(42, "Pairing successful"), 1);

    // 429s were honoured: no call came back before retry_after.
    assert_eq!(
        tg.state.limited.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    assert_eq!(tg.state.early.load(std::sync::atomic::Ordering::SeqCst), 0);

    // The config file kept the key it does not know.
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("opencode-router.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["unknownKey"]["kept"], true);
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_prompts_are_asked_in_the_chat() {
    let Some(bin) = opencode_bin() else {
        eprintln!("skipped: OPENWORK_TEST_OPENCODE_BIN is not set");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    let data = tmp.path().join("data");
    let model = Model::start().await;
    let oc = Opencode::start(&bin, &root, &model.base_url()).await;
    let tg = Telegram::start().await;
    write_config(
        &data,
        json!({"id": "tg", "token": TOKEN, "access": "public"}),
    );
    let mut env = router_env(&data, &root, &oc.url);
    env.insert("OPENCODE_ROUTER_TELEGRAM_API".into(), tg.base_url());
    env.insert("PERMISSION_TIMEOUT_MS".into(), "1500".into());
    let router = Router::start(env).await;
    router.wait_state("telegram", "tg", "running", WAIT).await;

    // Answered yes: the tool runs.
    tg.push_text(7, "RUN_TOOL touch ran-yes.txt");
    tg.wait_for(7, WAIT, |t| t.contains("asks permission for bash"))
        .await;
    assert!(
        !root.join("ran-yes.txt").exists(),
        "the tool ran before the answer"
    );
    tg.push_text(7, "yes");
    tg.wait_for(7, WAIT, |t| t.contains("Allowed once")).await;
    tg.wait_for(7, WAIT, |t| t.starts_with("tool said")).await;
    assert!(root.join("ran-yes.txt").exists());

    // No answer: rejected at the timeout, the tool never runs.
    tg.push_text(7, "RUN_TOOL touch ran-no.txt");
    tg.wait_for(7, WAIT, |t| t.contains("touch ran-no.txt"))
        .await;
    tg.wait_for(7, WAIT, |t| t.contains("No answer in time"))
        .await;
    // The turn ends (with whatever opencode says after a rejection) before we look.
    tg.push_text(7, "still there?");
    tg.wait_for(7, WAIT, |t| t.contains("still there?")).await;
    assert!(!root.join("ran-no.txt").exists(), "a rejected tool ran");
    router.stop().await;
}
