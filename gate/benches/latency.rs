//! Latency and throughput through the gate vs direct, all on 127.0.0.1.
//!
//! Prints p50/p99 of small requests (direct, through the proxy as absolute-form `http://`,
//! through the injection listener) and the throughput of a 10 MiB streamed response, each with
//! its ratio to direct. No assertions: numbers for humans.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use openwork_gate::{GateConfig, Resolver, Secret};
use tokio::net::TcpListener;

const TOKEN: &str = "bench-token-0123456789abcdef0123456789";
const BIG: usize = 10 * 1024 * 1024;
const ROUNDS: usize = 500;

#[tokio::main]
async fn main() {
    let big = Bytes::from(vec![b'x'; BIG]);
    let app = axum::Router::new()
        .route("/small", axum::routing::get(|| async { "ok" }))
        .route(
            "/big",
            axum::routing::get(move || {
                let big = big.clone();
                async move {
                    let chunks: Vec<Result<Bytes, std::convert::Infallible>> = (0..BIG / 65536)
                        .map(|i| Ok(big.slice(i * 65536..(i + 1) * 65536)))
                        .collect();
                    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
                }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let any = "127.0.0.1:0".parse().unwrap();
    let mut table = BTreeMap::new();
    table.insert(
        "upstream.test".to_owned(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    let gate = openwork_gate::start(GateConfig {
        proxy: Some(any),
        inject: Some(any),
        control: any,
        forwards: Vec::new(),
        token: Secret::new(TOKEN),
        policy_json: Some(format!(
            r#"{{"defaults":false,"allow":["upstream.test:{port}"]}}"#
        )),
        resolver: Resolver::Static(table),
        unsafe_allow_loopback_for_tests: true,
    })
    .await
    .unwrap();
    let mut creds = BTreeMap::new();
    creds.insert(
        "bench".to_owned(),
        serde_json::json!({"baseUrl": format!("http://upstream.test:{port}"), "key": "k"}),
    );
    let r = reqwest::Client::new()
        .put(format!("http://{}/credentials", gate.control))
        .bearer_auth(TOKEN)
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let direct = reqwest::Client::builder().no_proxy().build().unwrap();
    let proxied = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{}", gate.proxy.unwrap())).unwrap())
        .build()
        .unwrap();
    let direct_base = format!("http://127.0.0.1:{port}");
    let proxy_base = format!("http://upstream.test:{port}");
    let inject_base = format!("http://{}/p/bench", gate.inject.unwrap());

    let d = latencies(&direct, &format!("{direct_base}/small")).await;
    let p = latencies(&proxied, &format!("{proxy_base}/small")).await;
    let i = latencies(&direct, &format!("{inject_base}/small")).await;
    println!("small GET, {ROUNDS} sequential requests (p50 / p99):");
    println!("  direct   {:>9.1?} / {:>9.1?}", d.0, d.1);
    row("proxy", p, d);
    row("inject", i, d);

    let direct_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let proxy_addr = gate.proxy.unwrap();
    let target = format!("upstream.test:{port}");
    let d = raw_latencies(direct_addr, None).await;
    let c = raw_latencies(proxy_addr, Some(&target)).await;
    println!("small GET on a new connection each, {ROUNDS} sequential (p50 / p99):");
    println!("  direct   {:>9.1?} / {:>9.1?}", d.0, d.1);
    row("CONNECT", c, d);

    let d = throughput(&direct, &format!("{direct_base}/big")).await;
    let p = throughput(&proxied, &format!("{proxy_base}/big")).await;
    let i = throughput(&direct, &format!("{inject_base}/big")).await;
    println!("10 MiB streamed response (MiB/s, best of 5):");
    println!("  direct   {d:>9.0}");
    println!("  proxy    {p:>9.0}   ratio {:.2}x of direct", p / d);
    println!("  inject   {i:>9.0}   ratio {:.2}x of direct", i / d);
    let d = raw_throughput(direct_addr, None).await;
    let c = raw_throughput(proxy_addr, Some(&target)).await;
    println!("10 MiB over a raw connection (MiB/s, best of 5):");
    println!("  direct   {d:>9.0}");
    println!("  CONNECT  {c:>9.0}   ratio {:.2}x of direct", c / d);
}

/// A new TCP connection (through a CONNECT tunnel when `tunnel` names the target), one
/// `GET path` with `Connection: close`, read to the end; returns the bytes read.
async fn raw_get(addr: std::net::SocketAddr, tunnel: Option<&str>, path: &str) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    if let Some(target) = tunnel {
        s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200"));
    }
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0;
    loop {
        let got = s.read(&mut buf).await.unwrap();
        if got == 0 {
            return n;
        }
        n += got;
    }
}

async fn raw_latencies(addr: std::net::SocketAddr, tunnel: Option<&str>) -> (Duration, Duration) {
    for _ in 0..20 {
        raw_get(addr, tunnel, "/small").await;
    }
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        raw_get(addr, tunnel, "/small").await;
        times.push(start.elapsed());
    }
    times.sort();
    (times[ROUNDS / 2], times[ROUNDS * 99 / 100])
}

async fn raw_throughput(addr: std::net::SocketAddr, tunnel: Option<&str>) -> f64 {
    let mut best = 0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let n = raw_get(addr, tunnel, "/big").await;
        assert!(n > BIG);
        best = best.max(n as f64 / 1_048_576.0 / start.elapsed().as_secs_f64());
    }
    best
}

fn row(name: &str, got: (Duration, Duration), direct: (Duration, Duration)) {
    println!(
        "  {name:<8} {:>9.1?} / {:>9.1?}   ratio {:.2}x / {:.2}x",
        got.0,
        got.1,
        got.0.as_secs_f64() / direct.0.as_secs_f64(),
        got.1.as_secs_f64() / direct.1.as_secs_f64()
    );
}

async fn latencies(client: &reqwest::Client, url: &str) -> (Duration, Duration) {
    for _ in 0..20 {
        client.get(url).send().await.unwrap().bytes().await.unwrap();
    }
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let body = client.get(url).send().await.unwrap().bytes().await.unwrap();
        times.push(start.elapsed());
        assert_eq!(&body[..], b"ok");
    }
    times.sort();
    (times[ROUNDS / 2], times[ROUNDS * 99 / 100])
}

async fn throughput(client: &reqwest::Client, url: &str) -> f64 {
    let mut best = 0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let mut stream = client.get(url).send().await.unwrap().bytes_stream();
        let mut n = 0usize;
        while let Some(chunk) = stream.next().await {
            n += chunk.unwrap().len();
        }
        assert_eq!(n, BIG);
        best = best.max(n as f64 / 1_048_576.0 / start.elapsed().as_secs_f64());
    }
    best
}
