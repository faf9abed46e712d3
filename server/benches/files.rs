//! File-session throughput over real HTTP on 127.0.0.1 next to the filesystem floor, and the
//! catalog snapshot of a 100 000-file tree next to a bare directory walk.
//!
//! Run with `cargo bench -p openwork-server --bench files`. It prints one table and asserts
//! nothing about time. What is measured:
//! - read-batch / write-batch of 64 files of 4 KiB and of 1 MiB, end to end as a client pays
//!   it (JSON + base64 built and parsed on the client side, one session, auto approval). A
//!   write-batch request body is capped at 64 MiB, so 64 × 1 MiB (≈ 89 MB of base64) goes as
//!   two requests of 32; a read-batch of 64 × 1 MiB fits the 64 MiB response budget in one.
//! - the floor: the same files with `std::fs::read` / `std::fs::write`, and `write` +
//!   `sync_all` (the server writes temp + fsync + rename + directory fsync, so this is the
//!   fairer floor for writes);
//! - catalog: the first snapshot page of a fresh session (it walks, stats and sorts the whole
//!   tree), and all pages at the largest page size, next to a recursive `read_dir` walk.
//!
//! Each figure is the median of several runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use openwork_server::logging::Logger;
use openwork_server::workspace::Workspace;
use openwork_server::{ApprovalMode, Config, LogFormat, Server};
use serde_json::{Value, json};

const CLIENT: &str = "bench-client";
const FILES: usize = 64;
const TREE_FILES: usize = 100_000;
const TREE_DIRS: usize = 100;

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Prints where a ratio lands against its goal (a printed number, never a failure).
fn goal(name: &str, got: Duration, floor: Duration, max: f64) {
    let ratio = got.as_secs_f64() / floor.as_secs_f64();
    let verdict = if ratio <= max { "met" } else { "not met" };
    println!("  goal {name}: {ratio:.2}x (goal <= {max}x): {verdict}");
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

struct Bench {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

impl Bench {
    fn post(&self, path: &str, body: String) -> Value {
        self.rt.block_on(async {
            let r = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(CLIENT)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json().await.unwrap()
        })
    }

    fn get(&self, path: &str) -> Value {
        self.rt.block_on(async {
            let r = self
                .http
                .get(format!("{}{path}", self.base))
                .bearer_auth(CLIENT)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json().await.unwrap()
        })
    }

    fn session(&self, ws: &Workspace) -> String {
        let body = self.post(
            &format!("/workspace/{}/files/sessions", ws.id),
            json!({"write": true}).to_string(),
        );
        body["session"]["id"].as_str().unwrap().to_owned()
    }
}

fn utf8(path: &Path) -> camino::Utf8PathBuf {
    camino::Utf8PathBuf::from_path_buf(path.canonicalize().unwrap()).unwrap()
}

fn walk(dir: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            count += walk(&entry.path());
        } else {
            count += 1;
        }
    }
    count
}

fn row(label: &str, files: usize, bytes: usize, d: Duration, floor: Option<Duration>) {
    let secs = d.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let (fps, mbps) = (
        files as f64 / secs,
        (files * bytes) as f64 / secs / 1_000_000.0,
    );
    let ratio = floor.map_or(String::new(), |f| {
        format!("{:>8.1}x floor", secs / f.as_secs_f64())
    });
    println!(
        "{label:<34} {:>10.2} ms {fps:>12.0} files/s {mbps:>9.1} MB/s {ratio}",
        secs * 1000.0
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let files_dir = tempfile::tempdir().unwrap();
    let tree_dir = tempfile::tempdir().unwrap();
    let floor_dir = tempfile::tempdir().unwrap();
    let files_ws = Workspace::local(utf8(files_dir.path()));
    let tree_ws = Workspace::local(utf8(tree_dir.path()));

    let mut config = Config::new(CLIENT, "bench-host");
    config.port = 0;
    config.log_requests = false;
    config.approval.mode = ApprovalMode::Auto;
    config.workspaces = vec![files_ws.clone(), tree_ws.clone()];
    let (logger, _lines) = Logger::capture(LogFormat::Pretty, "bench");
    let listener = rt.block_on(openwork_server::bind("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        Server::with_logger(config, logger)
            .serve(listener, std::future::pending())
            .await
            .unwrap();
    });
    let bench = Bench {
        rt,
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let sid = bench.session(&files_ws);

    println!("openwork-server file benchmark (median of runs; 127.0.0.1, debug assertions off)");
    println!();
    for (size, label, runs) in [(4096usize, "4 KiB", 20usize), (1 << 20, "1 MiB", 5)] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let names: Vec<String> = (0..FILES).map(|i| format!("f{size}-{i}.bin")).collect();
        // Requests of at most 32 MiB of file data keep the base64 body under the 64 MiB cap.
        let per_request = FILES.min((32 << 20) / size).max(1);
        let encoded = b64(&data);

        let write_http = time(runs, || {
            for group in names.chunks(per_request) {
                let writes: Vec<Value> = group
                    .iter()
                    .map(|n| json!({"path": n, "contentBase64": encoded, "force": true}))
                    .collect();
                let body = bench.post(
                    &format!("/files/sessions/{sid}/write-batch"),
                    json!({ "writes": writes }).to_string(),
                );
                assert!(
                    body["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|i| i["ok"] == true)
                );
            }
        });
        let read_http = time(runs, || {
            let body = bench.post(
                &format!("/files/sessions/{sid}/read-batch"),
                json!({ "paths": names }).to_string(),
            );
            for item in body["items"].as_array().unwrap() {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(item["contentBase64"].as_str().unwrap())
                    .unwrap();
                assert_eq!(raw.len(), size);
            }
        });
        let floor_paths: Vec<PathBuf> = names.iter().map(|n| floor_dir.path().join(n)).collect();
        let write_floor = time(runs, || {
            for p in &floor_paths {
                std::fs::write(p, &data).unwrap();
            }
        });
        let write_sync_floor = time(runs, || {
            for p in &floor_paths {
                let mut f = std::fs::File::create(p).unwrap();
                std::io::Write::write_all(&mut f, &data).unwrap();
                f.sync_all().unwrap();
            }
        });
        let read_floor = time(runs, || {
            for p in &floor_paths {
                assert_eq!(std::fs::read(p).unwrap().len(), size);
            }
        });
        // The protocol sends base64, so for big files the fair floor includes encoding it.
        let read_b64_floor = time(runs, || {
            for p in &floor_paths {
                let raw = std::fs::read(p).unwrap();
                assert!(b64(&raw).len() >= size);
            }
        });
        println!("64 files x {label}");
        row(
            "  read-batch (HTTP)",
            FILES,
            size,
            read_http,
            Some(read_floor),
        );
        row("  std::fs::read (floor)", FILES, size, read_floor, None);
        row(
            "  write-batch (HTTP)",
            FILES,
            size,
            write_http,
            Some(write_floor),
        );
        row("  std::fs::write (floor)", FILES, size, write_floor, None);
        row(
            "  write-batch vs write+fsync floor",
            FILES,
            size,
            write_http,
            Some(write_sync_floor),
        );
        row(
            "  std::fs write+sync_all",
            FILES,
            size,
            write_sync_floor,
            None,
        );
        row(
            "  std::fs::read + base64 (floor)",
            FILES,
            size,
            read_b64_floor,
            None,
        );
        if size < 1024 * 1024 {
            goal("read-batch vs std::fs::read", read_http, read_floor, 3.0);
        } else {
            goal(
                "read-batch vs read + base64",
                read_http,
                read_b64_floor,
                3.0,
            );
        }
        goal(
            "write-batch vs write + fsync",
            write_http,
            write_sync_floor,
            2.0,
        );
        if per_request < FILES {
            println!(
                "  (write-batch sent as {} requests of {per_request})",
                FILES.div_ceil(per_request)
            );
        }
        println!();
    }

    println!("catalog of a {TREE_FILES}-file tree ({TREE_DIRS} directories)");
    let created = Instant::now();
    for d in 0..TREE_DIRS {
        let dir = tree_dir.path().join(format!("d{d:03}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..TREE_FILES / TREE_DIRS {
            std::fs::write(dir.join(format!("file-{f:05}.txt")), b"x").unwrap();
        }
    }
    println!(
        "  (tree created in {:.1} s)",
        created.elapsed().as_secs_f64()
    );
    let bare = time(5, || assert_eq!(walk(tree_dir.path()), TREE_FILES));
    let mut first_pages = Vec::new();
    let mut all_pages = Vec::new();
    for _ in 0..5 {
        let sid = bench.session(&tree_ws);
        let start = Instant::now();
        let mut page = bench.get(&format!(
            "/files/sessions/{sid}/catalog/snapshot?limit=10000"
        ));
        first_pages.push(start.elapsed());
        let files = |page: &Value| {
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["kind"] == "file")
                .count()
        };
        let mut seen = files(&page);
        while let Some(after) = page["nextAfter"].as_str() {
            page = bench.get(&format!(
                "/files/sessions/{sid}/catalog/snapshot?limit=10000&after={after}"
            ));
            seen += files(&page);
        }
        all_pages.push(start.elapsed());
        // Directories are listed too; count the files.
        assert_eq!(seen, TREE_FILES);
        bench.rt.block_on(async {
            bench
                .http
                .delete(format!("{}/files/sessions/{sid}", bench.base))
                .bearer_auth(CLIENT)
                .send()
                .await
                .unwrap();
        });
    }
    let (first, all) = (median(first_pages), median(all_pages));
    let pages = TREE_FILES.div_ceil(10_000) as u32;
    goal("catalog first page vs walk", first, bare, 1.5);
    println!(
        "  later pages: {:.2} ms each on average ({:.2}x a walk; goal: far below 1x)",
        (all - first).as_secs_f64() * 1000.0 / f64::from(pages.max(2) - 1),
        (all - first).as_secs_f64() / f64::from(pages.max(2) - 1) / bare.as_secs_f64()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("  read_dir recursion (floor)        {:>10.2} ms", ms(bare));
    println!(
        "  snapshot, first page of 10000     {:>10.2} ms {:>8.1}x floor",
        ms(first),
        first.as_secs_f64() / bare.as_secs_f64()
    );
    println!(
        "  snapshot, all pages of 10000      {:>10.2} ms {:>8.1}x floor",
        ms(all),
        all.as_secs_f64() / bare.as_secs_f64()
    );
}
