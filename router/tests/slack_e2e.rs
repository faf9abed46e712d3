//! Slack end to end: Socket Mode against a stand-in (WebSocket + Web API) and the real opencode
//! with a stand-in model. Skipped (with a note) when OPENWORK_TEST_OPENCODE_BIN is not set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::slack::{APP_TOKEN, BOT_TOKEN, Slack};
use common::{Opencode, Router, model::Model, opencode_bin, router_env};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_and_mention_round_trips_and_reconnect() {
    let Some(bin) = opencode_bin() else {
        eprintln!("skipped: OPENWORK_TEST_OPENCODE_BIN is not set");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("opencode-router.json"),
        json!({"version": 1, "channels": {"slack": {"apps": [
            {"id": "sl", "botToken": BOT_TOKEN, "appToken": APP_TOKEN}]}}})
        .to_string(),
    )
    .unwrap();
    let model = Model::start().await;
    let oc = Opencode::start(&bin, &root, &model.base_url()).await;
    let slack = Slack::start().await;
    let mut env = router_env(&data, &root, &oc.url);
    env.insert("OPENCODE_ROUTER_SLACK_API".into(), slack.api_url());
    let router = Router::start(env).await;
    router.wait_state("slack", "sl", "running", WAIT).await;

    // A DM round trip.
    let env1 = slack.push_dm("D1", "hello slack");
    let p = slack
        .wait_for(WAIT, |p| p.text == "pong 1: hello slack")
        .await;
    assert_eq!((p.channel.as_str(), p.thread_ts.as_deref()), ("D1", None));

    // A mention is answered in its thread.
    let ts = slack.push_mention("C9", "in a channel");
    let p = slack
        .wait_for(WAIT, |p| p.text == "pong 1: in a channel")
        .await;
    assert_eq!(p.channel, "C9");
    assert_eq!(p.thread_ts.as_deref(), Some(ts.as_str()));

    // Slack asks for a reconnect: the router opens a new connection and keeps working.
    slack.disconnect();
    slack.wait_connects(2, WAIT).await;
    router.wait_state("slack", "sl", "running", WAIT).await;
    slack.push_dm("D1", "after reconnect");
    slack
        .wait_for(WAIT, |p| p.text == "pong 2: after reconnect")
        .await;
    assert!(slack.state.opens.load(Ordering::SeqCst) >= 2);
    // Every envelope was acknowledged.
    assert!(slack.state.acks.lock().unwrap().contains(&env1));
    assert!(slack.state.acks.lock().unwrap().len() >= 3);
    router.stop().await;
}
