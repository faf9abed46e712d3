//! Losing opencode or a chat service is retried and shown in `/health`, never fatal; identities
//! added through the control API start live.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::telegram::{TOKEN, Telegram};
use common::{Router, router_env};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_and_a_dead_opencode_show_in_health_and_the_chat() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("opencode-router.json"),
        json!({"channels": {"telegram": {"bots": [{"id": "tg", "token": "1:wrong", "access": "public"}]}}}).to_string(),
    )
    .unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tg = Telegram::start().await;
    let mut env = router_env(&data, &root, &format!("http://{dead}"));
    env.insert("OPENCODE_ROUTER_TELEGRAM_API".into(), tg.base_url());
    let router = Router::start(env).await;

    // Telegram refuses the token: the identity is in error, retried, and the router keeps serving.
    let v = router.wait_state("telegram", "tg", "error", WAIT).await;
    let tg_state = &v["identities"]["telegram"][0];
    assert!(tg_state["error"].as_str().unwrap().contains("401"), "{v}");
    assert!(
        !tg_state.to_string().contains("1:wrong"),
        "token leaked into health: {v}"
    );
    assert_eq!(v["ok"], false);
    assert_eq!(v["opencode"]["healthy"], false);

    // The right token through the control API: the bot starts without a restart.
    let r = reqwest::Client::new()
        .post(router.url("/identities/telegram"))
        .bearer_auth(&router.token)
        .json(&json!({"id": "tg", "token": TOKEN, "access": "public"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    router.wait_state("telegram", "tg", "running", WAIT).await;

    // opencode is down: the person hears so, and the router carries on.
    tg.push_text(9, "anyone there?");
    tg.wait_for(9, WAIT, |t| t.contains("unreachable")).await;
    let v: Value = reqwest::get(router.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["channels"]["telegram"], true);
    assert_eq!(v["opencode"]["events"], false);
    router.stop().await;
}
