//! The sandbox's egress gate against the REAL Docker engine, with the real opencode inside the
//! locally built image. "The internet" is the testkit's stand-in model in its own container (the
//! `standin-model` binary bind-mounted read-only into the same image) on a network this test
//! creates, later also joined to the run's egress network under the name `standin`. Nothing here
//! contacts any address but 127.0.0.1 and the containers and networks the test created.
//!
//! Serial, like `sandbox_docker.rs`: every run sweeps orphans at start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ContainerGuard, Running, TestEnv};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(180);
const IMAGE: &str = "openwork-sandbox:bookworm-1";

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn docker(args: &[&str]) -> (i32, String) {
    let out = Command::new("docker").args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), common::all_output(&out))
}

fn user() -> String {
    format!("{}:{}", unsafe { libc::getuid() }, unsafe {
        libc::getgid()
    })
}

/// `docker exec --user <host uid:gid> <container> sh -c <script>`: as the agent's user.
fn exec_as_agent(container: &str, script: &str) -> (i32, String) {
    docker(&["exec", "--user", &user(), container, "sh", "-c", script])
}

/// The static `standin-model` of the testkit (built once if missing).
fn standin_bin() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // This test's own executable sits in <target>/debug/deps: the stand-in is built beside it.
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("standin-model");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "openwork-testkit", "--bin", "standin-model"])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(st.success());
    }
    bin
}

/// The stand-in's container and the test's network; removed on drop.
struct Internet {
    container: String,
    network: String,
}

impl Internet {
    fn start(tag: &str) -> Internet {
        let container = format!("owtest-standin-{tag}");
        let network = format!("owtest-net-{tag}");
        let it = Internet {
            container: container.clone(),
            network: network.clone(),
        };
        drop(Internet::cleanup(&container, &network));
        assert_eq!(docker(&["network", "create", &network]).0, 0);
        let mount = format!("{}:/standin:ro", standin_bin().display());
        let (code, out) = docker(&[
            "run",
            "-d",
            "--name",
            &container,
            "--network",
            &network,
            "--user",
            &user(),
            "-v",
            &mount,
            "--entrypoint",
            "/standin",
            IMAGE,
            "--listen",
            "0.0.0.0:8080",
        ]);
        assert_eq!(code, 0, "{out}");
        it
    }

    fn cleanup(container: &str, network: &str) -> (i32, String) {
        docker(&["rm", "-f", container]);
        docker(&["network", "rm", network])
    }

    /// Joins the run's egress network as `standin`; returns the stand-in's address there.
    fn join(&self, network: &str) -> String {
        let (code, out) = docker(&[
            "network",
            "connect",
            "--alias",
            "standin",
            network,
            &self.container,
        ]);
        assert_eq!(code, 0, "{out}");
        let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
        let (_, ip) = docker(&["inspect", "-f", &format, &self.container]);
        ip.trim().to_string()
    }

    /// The stand-in's request log (read inside its container, on its loopback).
    fn requests(&self) -> Vec<Value> {
        let (_, out) = docker(&[
            "exec",
            &self.container,
            "curl",
            "-s",
            "http://127.0.0.1:8080/__standin/requests",
        ]);
        serde_json::from_str(&out).unwrap_or_default()
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        Internet::cleanup(&self.container, &self.network);
    }
}

fn gated_cmd(env: &TestEnv, run_id: &str, policy: &std::path::Path, extra: &[&str]) -> Command {
    let oc = common::opencode_bin();
    let ws = env.workspace();
    let mut args = vec![
        "serve",
        "--workspace",
        ws.to_str().unwrap(),
        "--sandbox",
        "docker",
        "--run-id",
        run_id,
        "--allow-external",
        "--opencode-bin",
        oc.to_str().unwrap(),
        "--sandbox-policy",
        policy.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    env.openwork(&args)
}

/// The `--json` ready document among the lines seen (stdout lines from `{` to `}`).
fn ready_doc(run: &mut Running) -> Value {
    run.wait_for("\"runId\"", LONG);
    run.wait_for("}", Duration::from_secs(5));
    loop {
        let stdout: Vec<&String> = run
            .seen
            .iter()
            .filter(|l| !l.starts_with("stderr: "))
            .collect();
        let start = stdout.iter().rposition(|l| l.as_str() == "{");
        let end = stdout.iter().rposition(|l| l.as_str() == "}");
        if let (Some(s), Some(e)) = (start, end)
            && e > s
        {
            let text: Vec<&str> = stdout[s..=e].iter().map(|l| l.as_str()).collect();
            return serde_json::from_str(&text.join("\n")).unwrap();
        }
        run.wait_for("}", Duration::from_secs(5));
    }
}

/// Polls `f` until it is true (bounded); returns how long it took.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// `curl` through the agent's proxy (`$HTTP_PROXY` of its environment, also for names
/// `NO_PROXY` lists), the HTTP status or `000`.
fn via_proxy(agent: &str, url: &str) -> String {
    let (_, out) = exec_as_agent(
        agent,
        &format!(
            "curl -s -m 8 -x \"$HTTP_PROXY\" --noproxy '' -o /dev/null -w '%{{http_code}}' {url}"
        ),
    );
    out.trim().to_string()
}

async fn opencode_prompt(doc: &Value, text: &str) -> Value {
    let base = doc["opencode"]["baseUrl"].as_str().unwrap().to_string();
    let user = doc["opencode"]["username"].as_str().unwrap().to_string();
    let pass = doc["opencode"]["password"].as_str().unwrap().to_string();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let session: Value = http
        .post(format!("{base}/session"))
        .basic_auth(&user, Some(&pass))
        .json(&json!({"title": "gate"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = session["id"].as_str().unwrap();
    http.post(format!("{base}/session/{id}/message"))
        .basic_auth(&user, Some(&pass))
        .json(&json!({"parts": [{"type": "text", "text": text}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn write_policy(path: &std::path::Path, policy: &Value) {
    // Written to a temp name and renamed, like an editor saves.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, policy.to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn gated_run_fences_the_agent_injects_the_key_and_reloads_the_policy() {
    let _serial = serial();
    let env = TestEnv::new();
    let internet = Internet::start("e2e");
    let run_id = "gate-e2e";
    let agent = "openwork-gate-e2e";
    let _guard = ContainerGuard(agent.into());
    let real_key = format!("sk-real-{}", std::process::id());

    // The workspace declares the provider with the key as `{env:VAR}`; the value is only in
    // openwork's environment on the host.
    let config =
        openwork_testkit::OpencodeConfig::new("http://standin:8080/v1", "{env:STANDIN_API_KEY}");
    std::fs::write(
        env.workspace().join("opencode.json"),
        config.to_json().to_string(),
    )
    .unwrap();
    let policy = env.path("policy.json");
    write_policy(
        &policy,
        &json!({"defaults": false, "allow": ["standin:8080"]}),
    );

    let mut cmd = gated_cmd(&env, run_id, &policy, &["--json"]);
    cmd.env("STANDIN_API_KEY", &real_key);
    let mut run = Running::spawn(cmd);
    let doc = ready_doc(&mut run);
    let egress = &doc["sandbox"]["egress"];
    assert_eq!(egress["mode"], "gate", "{doc}");
    assert_eq!(egress["injectedProviders"], json!(["standin"]));
    let audit_file = PathBuf::from(egress["auditFile"].as_str().unwrap());

    // The agent is alone on the internal network; the gate on internal + egress.
    let (_, nets) = docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        agent,
    ]);
    assert_eq!(nets.trim(), "openwork-gate-e2e-internal");
    let (_, internal) = docker(&[
        "network",
        "inspect",
        "-f",
        "{{.Internal}}",
        "openwork-gate-e2e-internal",
    ]);
    assert_eq!(internal.trim(), "true");

    let ip = internet.join("openwork-gate-e2e-egress");
    assert!(!ip.is_empty());

    // No route out but the gate: a direct connection (no proxy) to the stand-in fails.
    let (code, out) = exec_as_agent(
        agent,
        &format!("curl --noproxy '*' -s -m 4 http://{ip}:8080/v1/models"),
    );
    assert_ne!(code, 0, "direct connection succeeded: {out}");
    // Through the proxy: unlisted refused; loopback and metadata refused; a listed name whose
    // address is private refused while privateAllow does not name it.
    assert_eq!(via_proxy(agent, "http://unlisted.example:8080/"), "403");
    assert_eq!(via_proxy(agent, "http://127.0.0.1:4096/"), "403");
    assert_eq!(via_proxy(agent, "http://169.254.169.254/latest"), "403");
    assert_eq!(via_proxy(agent, "http://standin:8080/v1/models"), "403");

    // Live policy: name the address; in force without restarting anything.
    write_policy(
        &policy,
        &json!({"defaults": false, "allow": ["standin:8080"], "privateAllow": [ip]}),
    );
    let took = eventually(Duration::from_secs(20), || {
        via_proxy(agent, "http://standin:8080/v1/models") == "200"
    });
    assert!(took.is_some(), "the edited policy never applied");
    eprintln!("policy edit in force after {took:?} (incl. curl round trips)");
    // The listed name works, its address literal (not listed) does not.
    assert_eq!(
        via_proxy(agent, &format!("http://{ip}:8080/v1/models")),
        "403"
    );

    // opencode's runtime (Bun) honours HTTP_PROXY for http:// and HTTPS_PROXY for https://.
    let (_, out) = exec_as_agent(
        agent,
        "BUN_BE_BUN=1 /opt/opencode/opencode -e 'const r = await fetch(\"http://standin:8080/v1/models\"); console.log(\"status\", r.status)'",
    );
    assert!(out.contains("status 200"), "{out}");
    let (_, out) = exec_as_agent(
        agent,
        "BUN_BE_BUN=1 /opt/opencode/opencode -e 'try { const r = await fetch(\"https://bun-https.example/\"); console.log(\"status\", r.status) } catch (e) { console.log(\"refused\", String(e)) }'",
    );
    // The gate answers the CONNECT with 403: Bun reports it as the response or as an error;
    // either way the audit below shows the CONNECT, so Bun used HTTPS_PROXY.
    assert!(
        out.contains("status 403") || out.contains("refused"),
        "{out}"
    );

    // A real opencode turn: the stand-in sees the REAL key, put in by the gate.
    let reply = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(opencode_prompt(&doc, "write the file"));
    assert!(reply.to_string().contains("done"), "{reply}");
    let chats: Vec<Value> = internet
        .requests()
        .into_iter()
        .filter(|r| r["path"] == "/v1/chat/completions")
        .collect();
    assert!(!chats.is_empty());
    for r in &chats {
        assert_eq!(
            r["headers"]["authorization"],
            format!("Bearer {real_key}"),
            "{r}"
        );
    }
    assert!(env.workspace().join("standin.txt").exists());

    // The key is nowhere the agent can read, nor in its container's description.
    let (_, inspect) = docker(&["inspect", agent]);
    assert!(!inspect.contains(&real_key));
    let (_, inside) = exec_as_agent(
        agent,
        "cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n'; grep -rs . /persist /workspace /tmp 2>/dev/null | head -c 2000000",
    );
    assert!(
        inside.contains("openwork-placeholder"),
        "placeholder expected"
    );
    assert!(
        !inside.contains(&real_key),
        "the real key is readable inside"
    );
    assert!(!run.output().contains(&real_key), "the key reached the log");

    // A bad edit: logged with its place, the last valid policy stays.
    std::fs::write(&policy, "{\n  \"allow\": [\"standin:8080\",]\n}").unwrap();
    run.wait_for(
        "the last valid policy stays in force",
        Duration::from_secs(20),
    );
    assert!(run.output().contains(&format!("{}:2:", policy.display())));
    assert_eq!(via_proxy(agent, "http://standin:8080/v1/models"), "200");

    // Audit: host side, 0600, denials with the rule that would allow them, also in the log.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&audit_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let audit = std::fs::read_to_string(&audit_file).unwrap();
    let records: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records.iter().any(|r| r["decision"] == "deny"
        && r["host"] == "unlisted.example"
        && r["rule"] == "unlisted.example:8080"));
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "inject" && r["decision"] == "allow")
    );
    assert!(records.iter().any(|r| r["kind"] == "connect"
        && r["host"] == "bun-https.example"
        && r["decision"] == "deny"));
    assert!(run.output().contains("Egress denied"));
    assert!(!audit.contains(&real_key));

    // Stop: gate, agent and networks go (the test's stand-in leaves the run's network first:
    // the engine does not remove a network a container is still attached to).
    docker(&[
        "network",
        "disconnect",
        "openwork-gate-e2e-egress",
        &internet.container,
    ]);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(Duration::from_secs(60)), Some(0));
    drop(internet);
    for name in [agent, "openwork-gate-e2e-gate"] {
        assert!(!common::container_exists(name), "{name} left behind");
    }
    for net in ["openwork-gate-e2e-internal", "openwork-gate-e2e-egress"] {
        assert_ne!(
            docker(&["network", "inspect", net]).0,
            0,
            "{net} left behind"
        );
    }
}

#[test]
fn sigkill_of_the_orchestrator_removes_gate_agent_and_networks() {
    let _serial = serial();
    let env = TestEnv::new();
    let agent = "openwork-gate-kill";
    let _guard = ContainerGuard(agent.into());
    let policy = env.path("policy.json");
    let mut run = Running::spawn(gated_cmd(&env, "gate-kill", &policy, &[]));
    run.wait_for("Egress: gate", LONG);
    assert!(common::container_exists("openwork-gate-kill-gate"));
    run.signal(libc::SIGKILL);
    let gone = eventually(Duration::from_secs(60), || {
        !common::container_exists(agent)
            && !common::container_exists("openwork-gate-kill-gate")
            && docker(&["network", "inspect", "openwork-gate-kill-internal"]).0 != 0
            && docker(&["network", "inspect", "openwork-gate-kill-egress"]).0 != 0
    });
    assert!(gone.is_some(), "the watchdog left the sandbox behind");
}

#[test]
fn orphaned_gate_agent_and_networks_are_removed_by_the_next_run() {
    let _serial = serial();
    let env = TestEnv::new();
    let _guard = ContainerGuard("openwork-gate-orphan".into());
    let _next = ContainerGuard("openwork-gate-next".into());
    let policy = env.path("policy.json");
    let mut run = Running::spawn(gated_cmd(&env, "gate-orphan", &policy, &[]));
    run.wait_for("Egress: gate", LONG);
    // The watchdog dies first, then the orchestrator: nothing cleans up.
    common::kill_watchdog(run.pid());
    run.signal(libc::SIGKILL);
    run.wait_exit(Duration::from_secs(20));
    assert!(common::container_exists("openwork-gate-orphan-gate"));
    assert_eq!(
        docker(&["network", "inspect", "openwork-gate-orphan-internal"]).0,
        0
    );
    let out = gated_cmd(&env, "gate-next", &policy, &["--check"])
        .output()
        .unwrap();
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for name in [
        "openwork-gate-orphan",
        "openwork-gate-orphan-gate",
        "openwork-gate-orphan-internal",
        "openwork-gate-orphan-egress",
    ] {
        assert!(text.contains(name), "{name} not reported: {text}");
    }
    assert!(!common::container_exists("openwork-gate-orphan-gate"));
    assert_ne!(
        docker(&["network", "inspect", "openwork-gate-orphan-egress"]).0,
        0
    );
}

#[test]
fn open_network_runs_without_a_gate_and_says_so_loudly() {
    let _serial = serial();
    let env = TestEnv::new();
    let _guard = ContainerGuard("openwork-gate-open".into());
    let policy = env.path("policy.json");
    let mut run = Running::spawn(gated_cmd(
        &env,
        "gate-open",
        &policy,
        &["--sandbox-network", "open"],
    ));
    run.wait_for("Egress: UNRESTRICTED (--sandbox-network open)", LONG);
    assert!(run.output().contains("SANDBOX EGRESS IS UNRESTRICTED"));
    assert!(!common::container_exists("openwork-gate-open-gate"));
    let (_, nets) = docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "openwork-gate-open",
    ]);
    assert_eq!(nets.trim(), "bridge");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(Duration::from_secs(60)), Some(0));
}

#[test]
fn bad_egress_input_is_a_usage_error_naming_the_fix() {
    let env = TestEnv::new();
    let policy = env.path("policy.json");
    let run = |extra: &[&str]| {
        let out = gated_cmd(&env, "gate-bad", &policy, extra)
            .output()
            .unwrap();
        (out.status.code(), common::all_output(&out))
    };
    let (code, out) = run(&["--sandbox-network", "sideways"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("enforce") && out.contains("open"), "{out}");

    let (code, out) = run(&["--sandbox-allow", "*"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--sandbox-allow *"), "{out}");

    let (code, out) = run(&["--sandbox-allow", "127.0.0.1:8080"]);
    assert_eq!(code, Some(2), "{out}");

    std::fs::write(&policy, "{\n  \"allow\": [\"a.example\"\n}").unwrap();
    let (code, out) = run(&[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains(&format!("{}:3:", policy.display())), "{out}");

    std::fs::write(
        &policy,
        json!({"allow": ["*", "https://api.example.com/v1"], "color": "blue", "privateAllow": ["8.8.8.8"]})
            .to_string(),
    )
    .unwrap();
    let (code, out) = run(&[]);
    assert_eq!(code, Some(2), "{out}");
    for needle in [
        "allow[0]",
        "allow[1]",
        "color",
        "privateAllow[0]",
        "api.example.com",
    ] {
        assert!(out.contains(needle), "{needle} missing: {out}");
    }
    std::fs::remove_file(&policy).unwrap();

    let (code, out) = run(&["--sandbox-network", "open", "--sandbox-allow", "pypi.org"]);
    assert_eq!(code, Some(2), "{out}");

    // `openwork policy check` lists every problem; `show` prints the effective policy.
    std::fs::write(
        &policy,
        json!({"allow": ["*", "localhost:8080"], "mode": "block"}).to_string(),
    )
    .unwrap();
    let out = env
        .openwork(&["policy", "check", policy.to_str().unwrap()])
        .output()
        .unwrap();
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for needle in ["allow[0]", "allow[1]", "mode", "3 problem"] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }
    std::fs::write(
        &policy,
        json!({"defaults": false, "allow": ["api.github.com"]}).to_string(),
    )
    .unwrap();
    let out = env
        .openwork(&["policy", "check", policy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::all_output(&out));
    let out = env
        .openwork(&[
            "policy",
            "show",
            "--sandbox-policy",
            policy.to_str().unwrap(),
            "--sandbox-allow",
            "pypi.org",
        ])
        .output()
        .unwrap();
    let text = common::all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("api.github.com") && text.contains("pypi.org"),
        "{text}"
    );
    assert!(
        !text.contains("api.anthropic.com"),
        "defaults: false: {text}"
    );
}
