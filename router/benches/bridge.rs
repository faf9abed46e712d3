//! Bridge benchmark, in one run against the same stand-in model and the real opencode:
//! - latency: a Telegram message in → the reply out through the router, next to the same prompt
//!   sent straight to opencode's HTTP API (`POST /session/:id/message`): the floor;
//! - throughput: messages per second one Telegram identity sustains against the stand-in,
//!   through opencode (many chats at once) and through the bridge alone (`/help`, answered by
//!   the router without opencode).
//!
//! Run: `OPENWORK_TEST_OPENCODE_BIN=/path/to/opencode cargo bench -p opencode-router --bench bridge`
//! (`OPENWORK_BENCH_RUNS` sets the latency samples, default 20).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::telegram::{TOKEN, Telegram};
use common::{Opencode, Router, model::Model, opencode_bin, router_env};
use opencode_router::config::PermissionMode;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn ms_signed(secs: f64) -> String {
    format!("{:+.1} ms", secs * 1000.0)
}

fn main() {
    let Some(bin) = opencode_bin() else {
        eprintln!("skipped: OPENWORK_TEST_OPENCODE_BIN is not set");
        return;
    };
    let runs: usize = std::env::var("OPENWORK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench(&bin, runs));
}

async fn bench(bin: &std::path::Path, runs: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("opencode-router.json"),
        json!({"version": 1, "channels": {"telegram": {"bots": [
            {"id": "tg", "token": TOKEN, "access": "public"}]}}})
        .to_string(),
    )
    .unwrap();
    let model = Model::start().await;
    let oc = Opencode::start(bin, &root, &model.base_url()).await;
    let tg = Telegram::start().await;
    let mut env = router_env(&data, &root, &oc.url);
    env.insert("OPENCODE_ROUTER_TELEGRAM_API".into(), tg.base_url());
    let router = Router::start(env).await;
    router.wait_state("telegram", "tg", "running", WAIT).await;

    // Floor: the same prompts straight to opencode, in a session of its own.
    let client = opencode_router::opencode::Opencode::new(&oc.url, None, Some("test-pw"));
    let dir = std::fs::canonicalize(&root).unwrap().display().to_string();
    let session = client
        .create_session(&dir, "bench", PermissionMode::Ask)
        .await
        .unwrap();
    client
        .prompt(&dir, &session, "warm up", None)
        .await
        .unwrap();
    tg.push_text(1, "warm up");
    tg.wait_for(1, WAIT, |t| t.ends_with("warm up")).await;
    // Interleaved, so both paths see the same warm-up and the same session length.
    let (mut direct, mut bridged) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let t = Instant::now();
        let reply = client
            .prompt(&dir, &session, &format!("direct {i}"), None)
            .await
            .unwrap();
        direct.push(t.elapsed());
        assert!(reply.ends_with(&format!("direct {i}")), "{reply}");

        // Message in at the Telegram stand-in → reply out at the stand-in.
        let text = format!("bridged {i}");
        let t = Instant::now();
        tg.push_text(1, &text);
        tg.wait_for(1, WAIT, |r| r.ends_with(&text)).await;
        bridged.push(t.elapsed());
    }

    // Throughput through opencode: 10 chats × 10 messages in flight at once.
    let (chats, per_chat) = (10i64, 10usize);
    let t = Instant::now();
    for i in 0..per_chat {
        for c in 0..chats {
            tg.push_text(100 + c, &format!("load {c}-{i}"));
        }
    }
    for c in 0..chats {
        let last = format!("load {c}-{}", per_chat - 1);
        tg.wait_for(100 + c, WAIT, |r| r.ends_with(&last)).await;
    }
    let agent_rate = (chats as f64 * per_chat as f64) / t.elapsed().as_secs_f64();

    // Throughput of the bridge alone: /help is answered by the router.
    let n = 300usize;
    let t = Instant::now();
    for i in 0..n {
        tg.push_text(500 + (i as i64 % 10), "/help");
    }
    let deadline = Instant::now() + WAIT;
    while (0..10)
        .map(|c| tg.count(500 + c, "Commands:"))
        .sum::<usize>()
        < n
    {
        assert!(Instant::now() < deadline, "bridge-only load did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let bridge_rate = n as f64 / t.elapsed().as_secs_f64();

    let (d, b) = (median(direct), median(bridged));
    println!(
        "opencode-router bridge benchmark ({runs} samples each, medians; stand-in model, real opencode)"
    );
    println!("  prompt straight to opencode (floor): {}", ms(d));
    println!(
        "  Telegram message in -> reply out:     {}  ({:.2}x the floor, {})",
        ms(b),
        b.as_secs_f64() / d.as_secs_f64(),
        ms_signed(b.as_secs_f64() - d.as_secs_f64())
    );
    println!(
        "  sustained, one identity, through opencode ({chats} chats x {per_chat}): {agent_rate:.1} msg/s"
    );
    println!(
        "  sustained, one identity, bridge only (/help x {n}):            {bridge_rate:.1} msg/s"
    );
    router.stop().await;
}
