//! `openwork approvals list|reply`: the host answers the agent's pending write approvals.
//! Authenticated with the host token (`X-OpenWork-Host-Token`).

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{ClientError, base_url, http, print_json, send, table, text};

#[derive(Debug, Clone, Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    pub action: ApprovalsAction,
    /// openwork-server URL.
    #[arg(long, global = true, env = "OPENWORK_URL", value_name = "URL")]
    pub openwork_url: Option<String>,
    /// Host/admin token.
    #[arg(
        long,
        global = true,
        env = "OPENWORK_HOST_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub host_token: Option<String>,
    /// Print the server's JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ApprovalsAction {
    /// List pending approvals.
    List,
    /// Allow or deny one pending approval.
    #[command(group = clap::ArgGroup::new("answer").required(true).args(["allow", "deny"]))]
    Reply {
        /// The approval id (from `approvals list`).
        id: String,
        /// Let the write happen.
        #[arg(long)]
        allow: bool,
        /// Refuse the write.
        #[arg(long)]
        deny: bool,
    },
}

fn server_url(args: &ApprovalsArgs) -> Result<String, ClientError> {
    let given = args
        .openwork_url
        .clone()
        .or_else(|| std::env::var("OPENWORK_SERVER_URL").ok());
    base_url(given.as_deref(), "the openwork-server URL")
}

/// Runs the command; the summary or JSON goes to stdout.
pub async fn run(args: &ApprovalsArgs) -> Result<(), ClientError> {
    let url = server_url(args)?;
    let token = args
        .host_token
        .clone()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            ClientError::Usage(
                "a host token is required (pass --host-token TOKEN or set OPENWORK_HOST_TOKEN)"
                    .into(),
            )
        })?;
    let client = http();
    match &args.action {
        ApprovalsAction::List => {
            let body = send(
                &url,
                client
                    .get(format!("{url}/approvals"))
                    .header("X-OpenWork-Host-Token", &token),
            )
            .await?;
            if args.json {
                print_json(&body);
            } else {
                print!("{}", list_summary(&body));
            }
        }
        ApprovalsAction::Reply { id, allow, deny: _ } => {
            let reply = if *allow { "allow" } else { "deny" };
            let body = send(
                &url,
                client
                    .post(format!("{url}/approvals/{}", encode(id)))
                    .header("X-OpenWork-Host-Token", &token)
                    .json(&json!({ "reply": reply })),
            )
            .await?;
            if args.json {
                print_json(&body);
            } else {
                let allowed = body["allowed"].as_bool().unwrap_or(*allow);
                println!(
                    "Approval {id}: {}",
                    if allowed { "allowed" } else { "denied" }
                );
            }
        }
    }
    Ok(())
}

/// Percent-encodes a path segment.
pub fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn list_summary(body: &Value) -> String {
    let items = body["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return "No pending approvals.\n".into();
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|a| {
            let paths = a["paths"]
                .as_array()
                .map(|p| p.iter().map(text).collect::<Vec<_>>().join(","))
                .unwrap_or_else(|| "-".into());
            vec![
                text(&a["id"]),
                text(&a["action"]),
                paths,
                text(&a["summary"]),
            ]
        })
        .collect();
    table(&["ID", "ACTION", "PATHS", "SUMMARY"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_items_or_says_none() {
        assert_eq!(
            list_summary(&json!({"items": []})),
            "No pending approvals.\n"
        );
        let s = list_summary(
            &json!({"items": [{"id": "ap_1", "action": "write", "paths": ["a.txt"], "summary": "write a.txt"}]}),
        );
        assert!(s.contains("ap_1") && s.contains("a.txt"), "{s}");
        assert_eq!(encode("ap/1 x"), "ap%2F1%20x");
    }
}
