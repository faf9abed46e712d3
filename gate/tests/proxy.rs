//! The proxy end to end on 127.0.0.1: CONNECT and absolute-form requests, allowed and denied,
//! live policy swap, one-off allows, audit records with byte counts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: fail loudly

mod common;

use common::*;
use openwork_gate::{Kind, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn connect_allowed_tunnels_and_is_audited_with_bytes() {
    let port = echo_server().await;
    let gate = gate(Some(&allow_upstream(port)), true).await;
    let mut audit = gate.gate.subscribe_audit();
    let (status, _, mut s) = connect(gate.proxy.unwrap(), &format!("{UPSTREAM}:{port}")).await;
    assert_eq!(status, 200);
    s.write_all(b"hello through the gate").await.unwrap();
    let mut back = [0u8; 22];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello through the gate");
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    drop(s);

    let record = next_record(&mut audit).await;
    assert_eq!(record.kind, Kind::Connect);
    assert_eq!(record.decision, Verdict::Allow);
    assert_eq!(record.host, UPSTREAM);
    assert_eq!(record.port, port);
    assert_eq!(record.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(record.rule, Some(format!("{UPSTREAM}:{port} (file)")));
    assert_eq!((record.bytes_up, record.bytes_down), (22, 22));
}

#[tokio::test]
async fn connect_denied_is_403_naming_destination_and_fix() {
    let port = echo_server().await;
    let gate = gate(Some(r#"{"defaults":false}"#), true).await;
    let mut audit = gate.gate.subscribe_audit();
    let target = format!("{UPSTREAM}:{port}");
    let (status, head, mut s) = connect(gate.proxy.unwrap(), &target).await;
    assert_eq!(status, 403);
    let body = body_after(&head, &mut s).await;
    assert!(body.contains(&format!("{target} is not allowed")), "{body}");
    assert!(
        body.contains(&format!("--sandbox-allow {target}")),
        "{body}"
    );

    let record = next_record(&mut audit).await;
    assert_eq!(record.decision, Verdict::Deny);
    assert_eq!(record.rule.as_deref(), Some(target.as_str()));
    assert_eq!((record.bytes_up, record.bytes_down), (0, 0));
    let line: serde_json::Value = serde_json::from_str(&record.to_json_line()).unwrap();
    assert_eq!(line["decision"], "deny");
    assert_eq!(line["rule"], target);
}

#[tokio::test]
async fn a_listed_name_resolving_to_loopback_is_refused() {
    // No loopback relaxation: this is the production address check.
    let port = echo_server().await;
    let gate = gate(Some(&allow_upstream(port)), false).await;
    let (status, head, mut s) = connect(gate.proxy.unwrap(), &format!("{UPSTREAM}:{port}")).await;
    assert_eq!(status, 403);
    let body = body_after(&head, &mut s).await;
    assert!(body.contains("127.0.0.1, a loopback address"), "{body}");
    assert!(body.contains("nothing can allow it"), "{body}");

    // The literal and the name `localhost` (never even resolved) are refused too.
    for target in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let (status, _, _) = connect(gate.proxy.unwrap(), &target).await;
        assert_eq!(status, 403, "{target}");
    }
}

#[tokio::test]
async fn live_policy_swap_and_one_off_allow() {
    let port = echo_server().await;
    let gate = gate(Some(r#"{"defaults":false}"#), true).await;
    let proxy = gate.proxy.unwrap();
    let target = format!("{UPSTREAM}:{port}");
    let control = format!("http://{}", gate.control);
    let http = client();
    assert_eq!(connect(proxy, &target).await.0, 403);

    // PUT /policy: the next connection is allowed, without a restart.
    let r = http
        .put(format!("{control}/policy"))
        .header("authorization", bearer())
        .body(allow_upstream(port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(connect(proxy, &target).await.0, 200);

    // An invalid policy is refused and the last valid one stays.
    let r = http
        .put(format!("{control}/policy"))
        .header("authorization", bearer())
        .body(r#"{"allow":["*"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let error = r.text().await.unwrap();
    assert!(error.contains("allow[0]"), "{error}");
    assert_eq!(connect(proxy, &target).await.0, 200);

    // Narrow it again, then a one-off allow; a later policy swap keeps the one-off allow.
    let put_empty = || {
        http.put(format!("{control}/policy"))
            .header("authorization", bearer())
            .body(r#"{"defaults":false}"#)
            .send()
    };
    assert_eq!(put_empty().await.unwrap().status(), 200);
    assert_eq!(connect(proxy, &target).await.0, 403);
    let r = http
        .post(format!("{control}/allow"))
        .header("authorization", bearer())
        .json(&serde_json::json!({"host": UPSTREAM, "port": port}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(connect(proxy, &target).await.0, 200);
    assert_eq!(put_empty().await.unwrap().status(), 200);
    assert_eq!(connect(proxy, &target).await.0, 200);

    // A one-off allow cannot name what the policy never allows.
    let r = http
        .post(format!("{control}/allow"))
        .header("authorization", bearer())
        .json(&serde_json::json!({"host": "localhost", "port": port}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn absolute_form_http_is_forwarded_and_counted() {
    let (port, seen) = recording_server().await;
    let gate = gate(Some(&allow_upstream(port)), true).await;
    let mut audit = gate.gate.subscribe_audit();
    let via_proxy = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{}", gate.proxy.unwrap())).unwrap())
        .build()
        .unwrap();
    let r = via_proxy
        .post(format!("http://{UPSTREAM}:{port}/v1/thing?x=1"))
        .header("proxy-authorization", "Basic should-not-pass")
        .body("0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{\"ok\":true,\"received\":10}");
    drop(via_proxy);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].0, "/v1/thing?x=1");
        assert_eq!(seen[0].1["host"], format!("{UPSTREAM}:{port}"));
        assert!(!seen[0].1.contains_key("proxy-authorization"));
    }
    let record = next_record(&mut audit).await;
    assert_eq!(record.kind, Kind::Http);
    assert_eq!(record.decision, Verdict::Allow);
    assert!(record.bytes_up > 10, "{record:?}");
    assert!(record.bytes_down > 25, "{record:?}");

    // A host the policy does not name: 403 from the proxy, nothing reaches the upstream.
    let via_proxy = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{}", gate.proxy.unwrap())).unwrap())
        .build()
        .unwrap();
    let r = via_proxy
        .get(format!(
            "http://{UPSTREAM}:{}/",
            port.wrapping_add(1).max(1)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn forward_copies_both_ways() {
    let port = echo_server().await;
    let any = "127.0.0.1:0".parse().unwrap();
    let config = openwork_gate::GateConfig {
        proxy: None,
        inject: None,
        control: any,
        forwards: vec![openwork_gate::Forward {
            listen: any,
            target: format!("127.0.0.1:{port}"),
        }],
        token: openwork_gate::Secret::new(TOKEN),
        policy_json: None,
        resolver: openwork_gate::Resolver::System,
        unsafe_allow_loopback_for_tests: false,
    };
    let gate = openwork_gate::start(config).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(gate.forwards[0])
        .await
        .unwrap();
    s.write_all(b"the way in").await.unwrap();
    let mut back = [0u8; 10];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"the way in");
}

#[tokio::test]
async fn audit_mode_lets_unlisted_through_and_records_it() {
    let port = echo_server().await;
    let gate = gate(Some(r#"{"mode":"audit","defaults":false}"#), true).await;
    let mut audit = gate.gate.subscribe_audit();
    let target = format!("{UPSTREAM}:{port}");
    let (status, _, s) = connect(gate.proxy.unwrap(), &target).await;
    assert_eq!(status, 200);
    drop(s);
    let record = next_record(&mut audit).await;
    assert_eq!(record.decision, Verdict::Audit);
    assert_eq!(record.rule.as_deref(), Some(target.as_str()));
}

#[tokio::test]
async fn an_allowed_name_that_does_not_resolve_is_a_502_not_a_denial() {
    let gate = gate(
        Some(r#"{"defaults":false,"allow":["nowhere.test:443"]}"#),
        true,
    )
    .await;
    let mut audit = gate.gate.subscribe_audit();
    let (status, _, _) = connect(gate.proxy.unwrap(), "nowhere.test:443").await;
    assert_eq!(status, 502);
    let record = next_record(&mut audit).await;
    assert_eq!(record.decision, Verdict::Allow);
    assert!(record.error.unwrap().contains("does not resolve"));
}
