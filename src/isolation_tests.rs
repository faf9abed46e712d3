use super::*;
use openwork_backends::isolation::{MountFact, PortFact};

fn settings(uid: u32, choice: UserChoice) -> SandboxSettings {
    SandboxSettings {
        kind: crate::cli::SandboxArg::Docker,
        image: "img".into(),
        persist_dir: "/p".into(),
        mounts: vec![],
        limits: openwork_backends::Limits::default(),
        copy_auth_from: None,
        container_bin: None,
        layout: crate::plan::LayoutSource::Host,
        arch: openwork_backends::elf::Arch::X86_64,
        user: crate::plan::SandboxUser {
            uid,
            gid: uid,
            choice,
        },
        git_guard: openwork_backends::GitGuardMode::Off,
        strict: false,
        owner: openwork_backends::Owner {
            pid: 1,
            boot_id: "b".into(),
        },
        agent_env: vec![],
        egress: crate::plan::egress::Egress::Open,
    }
}

fn facts(uid: u32) -> IsolationFacts {
    let l = openwork_backends::Limits::default();
    IsolationFacts {
        container: "c".into(),
        user: format!("{uid}:{uid}"),
        cap_add: vec![],
        cap_drop: vec!["ALL".into()],
        security_opt: vec!["no-new-privileges".into()],
        read_only_root: true,
        pids_limit: Some(l.pids),
        memory: Some(l.memory_bytes),
        nano_cpus: Some(l.nano_cpus),
        mounts: vec![
            MountFact {
                source: "/ws".into(),
                destination: "/workspace".into(),
                read_only: false,
            },
            MountFact {
                source: "/ws/.git/config".into(),
                destination: "/workspace/.git/config".into(),
                read_only: true,
            },
        ],
        ports: vec![PortFact {
            host_ip: "127.0.0.1".into(),
            host_port: "4096".into(),
            container_port: "4096/tcp".into(),
        }],
        networks: vec!["bridge".into()],
        probe: Ok(ProbeFacts {
            uid,
            gid: uid,
            cap_eff: 0,
            cap_bnd: 0,
            no_new_privs: true,
            seccomp: 2,
            engine_sockets: vec![],
        }),
    }
}

fn guard() -> GitGuard {
    GitGuard {
        workspace: "/ws".into(),
        layout: GitLayout::Repository,
        mounts: vec![openwork_backends::git_guard::GuardMount {
            host: "/ws/.git/config".into(),
            relative: ".git/config".into(),
            read_only: true,
        }],
    }
}

fn status_of<'a>(r: &'a Report, name: &str) -> &'a Status {
    &r.controls.iter().find(|c| c.name == name).unwrap().status
}

#[test]
fn a_hardened_gated_run_is_all_enforced() {
    let sb = settings(1000, UserChoice::HostUser);
    let g = guard();
    let r = judge(
        &Ok(facts(1000)),
        &Expected {
            settings: &sb,
            git_guard: Some(&g),
            egress: Egress::Gate,
            credentials: Credentials::None,
        },
    );
    assert_eq!(r.controls.len(), 14);
    assert!(
        r.strict_refusal().is_none(),
        "{:?}",
        r.weak().collect::<Vec<_>>()
    );
    assert_eq!(r.json()["enforced"], true);
    assert!(r.summary().starts_with("all 14 controls enforced"));
}

#[test]
fn weak_controls_are_named_with_their_fix() {
    let sb = settings(0, UserChoice::Root);
    let mut f = facts(0);
    f.memory = Some(0);
    f.ports[0].host_ip = "0.0.0.0".into();
    if let Ok(p) = &mut f.probe {
        p.seccomp = 0;
        p.engine_sockets = vec!["/var/run/docker.sock".into()];
    }
    let r = judge(
        &Ok(f),
        &Expected {
            settings: &sb,
            git_guard: None,
            egress: Egress::Open,
            credentials: Credentials::Copied(vec!["auth.json".into()]),
        },
    );
    for (name, word) in [
        ("user", "degraded"),
        ("seccomp", "missing"),
        ("memory-limit", "missing"),
        ("engine-socket", "missing"),
        ("ports", "missing"),
        ("egress", "degraded"),
        ("credentials", "degraded"),
        ("git-guard", "degraded"),
    ] {
        assert_eq!(status_of(&r, name).word(), word, "{name}");
    }
    let refusal = r.strict_refusal().unwrap();
    assert!(refusal.contains("user degraded"), "{refusal}");
    assert!(refusal.contains("--sandbox-user"), "{refusal}");
    assert!(refusal.contains("drop --sandbox-network open"), "{refusal}");
}

#[test]
fn an_engine_that_cannot_say_is_degraded_not_enforced() {
    let sb = settings(1000, UserChoice::HostUser);
    let r = judge(
        &Err("NotSupported".into()),
        &Expected {
            settings: &sb,
            git_guard: None,
            egress: Egress::NotEnforced,
            credentials: Credentials::None,
        },
    );
    assert_eq!(r.controls.len(), 14);
    assert_eq!(status_of(&r, "seccomp").word(), "degraded");
    assert_eq!(status_of(&r, "egress").word(), "missing");
}
