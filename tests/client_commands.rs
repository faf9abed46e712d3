//! The client commands (`status`, `approvals`, `files`) against a real run: `openwork serve
//! --detach` with the real opencode, then each command in human and `--json` modes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;

use common::TestEnv;

/// A detached run and its credentials; its services are stopped on drop.
struct Detached {
    env: TestEnv,
    creds: serde_json::Value,
    pids: Vec<u32>,
}

impl Detached {
    fn start() -> Detached {
        let env = TestEnv::new();
        let out = env
            .serve_real(&[
                "--detach",
                "--run-id",
                "clients",
                "--approval",
                "auto",
                "--no-opencode-router",
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = env.path("data/runs/clients");
        let creds: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("credentials.json")).unwrap())
                .unwrap();
        let pids = common::detached_pids(&dir);
        Detached { env, creds, pids }
    }

    fn openwork_url(&self) -> String {
        self.creds["openwork"]["baseUrl"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.env.openwork(args).output().unwrap()
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        common::stop_groups(&self.pids);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn status_and_approvals_against_a_real_run() {
    let d = Detached::start();
    let ow = d.openwork_url();
    let oc = d.creds["opencode"]["baseUrl"].as_str().unwrap().to_string();
    let user = d.creds["opencode"]["username"]
        .as_str()
        .unwrap()
        .to_string();
    let pass = d.creds["opencode"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    let host = d.creds["openwork"]["hostToken"]
        .as_str()
        .unwrap()
        .to_string();

    let o = d.run(&[
        "status",
        "--openwork-url",
        &ow,
        "--opencode-url",
        &oc,
        "--opencode-username",
        &user,
        "--opencode-password",
        &pass,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("OpenWork server: ok"), "{}", stdout(&o));
    assert!(stdout(&o).contains("OpenCode server: ok"), "{}", stdout(&o));
    let o = d.run(&["status", "--openwork-url", &ow, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["openwork"]["ok"], true);
    // Wrong opencode credentials: opencode answers 401 → down, non-zero exit.
    let o = d.run(&[
        "status",
        "--opencode-url",
        &oc,
        "--opencode-username",
        "x",
        "--opencode-password",
        "y",
        "--timeout",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("HTTP 401"), "{}", stdout(&o));

    let o = d.run(&[
        "approvals",
        "list",
        "--openwork-url",
        &ow,
        "--host-token",
        &host,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("No pending approvals."),
        "{}",
        stdout(&o)
    );
    let o = d.run(&[
        "approvals",
        "list",
        "--openwork-url",
        &ow,
        "--host-token",
        &host,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["items"].as_array().unwrap().is_empty());
    // Unknown approval: the server's status and message.
    let o = d.run(&[
        "approvals",
        "reply",
        "ap_nope",
        "--allow",
        "--openwork-url",
        &ow,
        "--host-token",
        &host,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("HTTP 404"), "{}", stderr(&o));
    // Wrong host token.
    let o = d.run(&[
        "approvals",
        "list",
        "--openwork-url",
        &ow,
        "--host-token",
        "wrong",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("HTTP 401"), "{v}");
    // Usage errors name what is missing.
    let o = d.run(&[
        "approvals",
        "reply",
        "ap_1",
        "--openwork-url",
        &ow,
        "--host-token",
        &host,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--allow") && stderr(&o).contains("--deny"),
        "{}",
        stderr(&o)
    );
    let o = d.run(&["approvals", "list", "--host-token", &host]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--openwork-url"), "{}", stderr(&o));
}

#[test]
fn files_commands_against_a_real_run() {
    let d = Detached::start();
    let ow = d.openwork_url();
    let token = d.creds["openwork"]["token"].as_str().unwrap().to_string();
    let ws_id = d.creds["workspaceId"].as_str().unwrap().to_string();
    let base = |extra: &[&str]| -> Output {
        let mut args: Vec<&str> = vec!["files"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--openwork-url", &ow, "--token", &token]);
        d.run(&args)
    };

    // Session (JSON), then human output for the rest.
    let o = base(&["session", "create", "--workspace-id", &ws_id, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let sid = v["session"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["session"]["canWrite"], true);

    let o = base(&[
        "write",
        &sid,
        "--path",
        "notes/todo.md",
        "--content",
        "hello from openwork",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("notes/todo.md: ok (revision"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        std::fs::read_to_string(d.env.workspace().join("notes/todo.md")).unwrap(),
        "hello from openwork"
    );

    let o = base(&["read", &sid, "--paths", "notes/todo.md"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("hello from openwork"), "{}", stdout(&o));
    let o = base(&["read", &sid, "notes/todo.md", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let revision = v["items"][0]["revision"].as_str().unwrap().to_string();

    // A stale revision is a conflict: reported, non-zero exit, file unchanged.
    let o = base(&[
        "write",
        &sid,
        "--path",
        "notes/todo.md",
        "--content",
        "x",
        "--if-match",
        "1:1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("conflict"), "{}", stdout(&o));
    let o = base(&[
        "write",
        &sid,
        "notes/todo.md",
        "--content",
        "v2",
        "--if-match",
        &revision,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    let o = base(&["catalog", &sid, "--limit", "50"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("notes/todo.md"), "{}", stdout(&o));
    let o = base(&["events", &sid, "--since", "0", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(!v["items"].as_array().unwrap().is_empty(), "{v}");

    let o = base(&["mkdir", &sid, "docs"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = base(&[
        "rename",
        &sid,
        "--from",
        "notes/todo.md",
        "--to",
        "docs/todo.md",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(d.env.workspace().join("docs/todo.md").exists());
    let o = base(&["delete", &sid, "notes", "--recursive"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(!d.env.workspace().join("notes").exists());

    // Escapes are refused by the server and reported.
    let o = base(&["read", &sid, "../../etc/passwd"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));

    // Bad input names what is missing.
    let o = base(&["write", &sid, "--path", "a.txt"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--content"), "{}", stderr(&o));
    let o = base(&["write", &sid, "--path", "a.txt", "--content-base64", "%%%"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("base64"), "{}", stderr(&o));

    let o = base(&["session", "close", &sid]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = base(&["catalog", &sid, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["error"].as_str().unwrap().starts_with("HTTP 4"), "{v}");
}
