//! `openwork status`: is openwork-server healthy, is opencode healthy. Unlike the original (which
//! always exited 0) the exit code is non-zero when a checked service is down.

use std::time::Duration;

use clap::Args;
use serde_json::{Map, Value, json};

use super::{ClientError, print_json};
use crate::supervisor::health::{HealthCheck, probe, probe_client};

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// openwork-server URL.
    #[arg(long, env = "OPENWORK_URL", value_name = "URL")]
    pub openwork_url: Option<String>,
    /// opencode URL.
    #[arg(long, env = "OPENCODE_URL", value_name = "URL")]
    pub opencode_url: Option<String>,
    /// opencode basic-auth user name.
    #[arg(long, env = "OPENCODE_SERVER_USERNAME", hide_env_values = true)]
    pub opencode_username: Option<String>,
    /// opencode basic-auth password.
    #[arg(long, env = "OPENCODE_SERVER_PASSWORD", hide_env_values = true)]
    pub opencode_password: Option<String>,
    /// How long to keep trying each service, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

async fn poll(check: &HealthCheck, budget: Duration) -> Result<(), String> {
    let client = probe_client(Duration::from_secs(2));
    let deadline = tokio::time::Instant::now() + budget;
    loop {
        match probe(&client, check).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e.to_string()),
            Err(_) => tokio::time::sleep(Duration::from_millis(400)).await,
        }
    }
}

/// Checks each given service; `Err(Partial)` when one is down (after printing).
pub async fn run(args: &StatusArgs) -> Result<(), ClientError> {
    let budget = Duration::from_secs(args.timeout);
    let mut doc = Map::new();
    let mut lines = Vec::new();
    let mut down = Vec::new();
    if args.openwork_url.is_none() && args.opencode_url.is_none() {
        return Err(ClientError::Usage(
            "nothing to check: pass --openwork-url URL and/or --opencode-url URL (or OPENWORK_URL / OPENCODE_URL)".into(),
        ));
    }
    if let Some(url) = &args.openwork_url {
        let url = super::base_url(Some(url), "the openwork-server URL")?;
        let check = HealthCheck::Http {
            url: format!("{url}/health"),
        };
        let r = poll(&check, budget).await;
        lines.push(line("OpenWork server", &url, &r));
        if r.is_err() {
            down.push("openwork-server");
        }
        doc.insert("openwork".into(), entry(&url, &r));
    }
    if let Some(url) = &args.opencode_url {
        let url = url.trim().trim_end_matches('/').to_string();
        let check = match (&args.opencode_username, &args.opencode_password) {
            (Some(u), Some(p)) => HealthCheck::Opencode {
                base_url: url.clone(),
                username: u.clone(),
                password: p.clone(),
            },
            _ => HealthCheck::Http {
                url: format!("{url}/global/health"),
            },
        };
        let r = poll(&check, budget).await;
        lines.push(line("OpenCode server", &url, &r));
        if r.is_err() {
            down.push("opencode");
        }
        doc.insert("opencode".into(), entry(&url, &r));
    }
    if args.json {
        print_json(&Value::Object(doc));
    } else {
        for l in lines {
            println!("{l}");
        }
    }
    if down.is_empty() {
        Ok(())
    } else {
        Err(ClientError::Partial(format!(
            "not healthy: {}",
            down.join(", ")
        )))
    }
}

fn line(label: &str, url: &str, r: &Result<(), String>) -> String {
    match r {
        Ok(()) => format!("{label}: ok ({url})"),
        Err(e) => format!("{label}: error ({url})\n  {e}"),
    }
}

fn entry(url: &str, r: &Result<(), String>) -> Value {
    match r {
        Ok(()) => json!({ "ok": true, "url": url }),
        Err(e) => json!({ "ok": false, "url": url, "error": e }),
    }
}
