//! Layout tests: known states rendered with ratatui's test backend and compared with the text
//! snapshots in `src/tui/snapshots/` (`UPDATE_SNAPSHOTS=1 cargo test --lib tui::` rewrites them;
//! review the diff).

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::state::{Approval, Model};
use super::view::{ConnectInfo, RunInfo, render};
use crate::logs::Stream;
use crate::supervisor::{Instance, ServiceEvent};

fn run_info() -> RunInfo {
    RunInfo {
        workspace: "/home/me/project".into(),
        run_id: "run-1234".into(),
        sandbox: "none".into(),
        container: None,
        version: "0.1.0",
        color: false,
        expected: vec![
            ("opencode", false),
            ("openwork-server", false),
            ("opencode-router", true),
        ],
    }
}

fn connect() -> ConnectInfo {
    ConnectInfo {
        openwork_url: "http://127.0.0.1:8787".into(),
        connect_url: "http://127.0.0.1:8787".into(),
        opencode_url: "http://127.0.0.1:41863".into(),
        attach_raw: "OPENCODE_SERVER_USERNAME=u OPENCODE_SERVER_PASSWORD=SECRETPASS opencode attach http://127.0.0.1:41863 --dir /home/me/project".into(),
        attach_masked: "opencode attach http://127.0.0.1:41863 --dir /home/me/project (with opencode's credentials: v shows, c copies)".into(),
        tokens: vec![
            ("collaborator", "SECRET-COLLAB".into()),
            ("owner", "SECRET-OWNER".into()),
            ("host", "SECRET-HOST".into()),
        ],
        ports: vec![
            ("opencode", 41863),
            ("openwork-server", 8787),
            ("opencode-router", 40001),
        ],
    }
}

fn healthy_model() -> Model {
    let mut m = Model::new();
    let same = |s: &str| s.to_string();
    for (i, name) in ["opencode", "openwork-server", "opencode-router"]
        .into_iter()
        .enumerate()
    {
        for ev in [
            ServiceEvent::Spawned {
                service: name,
                instance: Instance::Process {
                    pid: 1000 + i as u32,
                },
            },
            ServiceEvent::Healthy {
                service: name,
                url: "http://x".into(),
                latency: Duration::from_millis(3 + i as u64),
            },
        ] {
            m.services.apply(&ev);
            m.apply(&ev, &same);
        }
    }
    m.apply(
        &ServiceEvent::Log {
            service: "opencode",
            stream: Stream::Stdout,
            pid: Some(1000),
            line: "opencode server listening on http://127.0.0.1:41863".into(),
        },
        &same,
    );
    m.apply(
        &ServiceEvent::Log {
            service: "openwork-server",
            stream: Stream::Stderr,
            pid: Some(1001),
            line: "level=WARN message=\"slow request\"".into(),
        },
        &same,
    );
    m
}

fn draw(model: &Model, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|f| {
            render(
                f,
                model,
                &run_info(),
                Some(&connect()),
                Duration::from_secs(185),
            )
        })
        .unwrap();
    let buffer = terminal.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..height {
        let mut line = String::new();
        for x in 0..width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn check(name: &str, text: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/tui/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}; run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert!(
        want == text,
        "snapshot {name} differs (UPDATE_SNAPSHOTS=1 rewrites it)\n--- want\n{want}\n--- got\n{text}"
    );
}

#[test]
fn all_healthy() {
    let text = draw(&healthy_model(), 100, 30);
    assert!(!text.contains("SECRET"), "secrets are masked by default");
    check("all_healthy_100x30", &text);
}

#[test]
fn one_restarting() {
    let mut m = healthy_model();
    let same = |s: &str| s.to_string();
    for ev in [
        ServiceEvent::Exited {
            service: "opencode",
            status: crate::supervisor::process::ExitInfo {
                code: Some(1),
                signal: None,
            },
            pid: Some(1000),
            expected: false,
        },
        ServiceEvent::Restarting {
            service: "opencode",
            attempt: 2,
            max: 5,
            delay: Duration::from_millis(500),
        },
    ] {
        m.services.apply(&ev);
        m.apply(&ev, &same);
    }
    check("one_restarting_100x30", &draw(&m, 100, 30));
}

#[test]
fn pending_approval() {
    let mut m = healthy_model();
    m.set_approvals(vec![Approval {
        id: "ap-1".into(),
        action: "workspace.files.session.write".into(),
        summary: "Write 1 file".into(),
        paths: vec!["/home/me/project/notes/todo.md".into()],
        who: "remote collaborator".into(),
    }]);
    let text = draw(&m, 100, 30);
    assert!(text.contains("notes/todo.md"), "{text}");
    check("pending_approval_100x30", &text);
}

#[test]
fn smallest_terminal() {
    let mut m = healthy_model();
    m.set_approvals(vec![Approval {
        id: "ap-1".into(),
        action: "workspace.files.session.write".into(),
        summary: "Write 1 file".into(),
        paths: vec!["/home/me/project/a.txt".into()],
        who: "remote collaborator".into(),
    }]);
    let text = draw(&m, 80, 24);
    // Every panel still has its title at 80×24.
    for title in ["Services", "Connect", "Approvals", "Logs", "q quit"] {
        assert!(text.contains(title), "{title} missing at 80x24:\n{text}");
    }
    check("approval_80x24", &text);
}

#[test]
fn revealed_secrets_and_help() {
    let mut m = healthy_model();
    m.reveal = true;
    let text = draw(&m, 100, 30);
    assert!(text.contains("SECRET-HOST"), "{text}");
    m.modal = Some(super::state::Modal::Help);
    let text = draw(&m, 80, 24);
    assert!(text.contains("restart the selected service"), "{text}");
}
