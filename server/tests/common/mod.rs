//! Test harness: a real server on 127.0.0.1 with a free port, a captured log,
//! and a shutdown guard that stops it when the test ends (even on failure).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod files;
pub mod gated;
pub mod opencode;

use std::sync::{Arc, Mutex};

use openwork_server::logging::Logger;
use openwork_server::{Approvals, Config, LogFormat, Server};
use serde_json::Value;
use tokio::sync::oneshot;

pub const CLIENT: &str = "client-secret-token";
pub const HOST: &str = "host-secret-token";

pub struct TestServer {
    pub base: String,
    pub port: u16,
    pub http: reqwest::Client,
    pub approvals: Approvals,
    pub logs: Arc<Mutex<Vec<String>>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub fn config() -> Config {
    let mut config = Config::new(CLIENT, HOST);
    config.port = 0;
    config
}

pub async fn start(config: Config) -> TestServer {
    let format = config.log_format;
    start_with_format(config, format).await
}

pub async fn start_with_format(config: Config, format: LogFormat) -> TestServer {
    let (logger, logs) = Logger::capture(format, config.run_id.clone());
    let listener = openwork_server::bind("127.0.0.1", 0).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Server::with_logger(config, logger);
    let approvals = server.approvals();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(listener, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    TestServer {
        base: format!("http://127.0.0.1:{port}"),
        port,
        http: reqwest::Client::new(),
        approvals,
        logs,
        stop: Some(tx),
        task: Some(task),
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path))
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until the engine lists `n` pending approvals (no time limit of
    /// its own; the test harness's timeout catches a hang).
    pub async fn wait_pending(&self, n: usize) -> Vec<Value> {
        loop {
            let body: Value = self
                .get("/approvals")
                .header("X-OpenWork-Host-Token", HOST)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let items = body["items"].as_array().unwrap().clone();
            if items.len() >= n {
                return items;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

pub async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap();
    (status, body)
}
