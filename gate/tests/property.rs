//! Property tests of the matcher and the address check (the fuzz check of the policy).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: fail loudly

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use openwork_gate::{Entry, HostPattern, Policy, PolicyFile, Verdict};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
}

/// A domain of 2-5 labels whose last label starts with a letter (so never an IP literal).
fn domain() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 1..4), "[a-z][a-z0-9]{1,6}")
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
}

fn policy_allowing(entries: &[String], private: &[String]) -> Policy {
    let json = serde_json::json!({"defaults": false, "allow": entries, "privateAllow": private});
    Policy::build(
        &PolicyFile::from_json(&json.to_string(), "prop").unwrap(),
        &Default::default(),
    )
}

proptest! {
    /// Any text: the parser never panics, and what it accepts is never a bare `*`, prints in
    /// canonical form and parses back to itself.
    #[test]
    fn parse_is_total_and_round_trips(text in "\\PC{0,40}") {
        if let Ok(entry) = Entry::parse(&text) {
            let printed = entry.to_string();
            prop_assert!(!printed.starts_with("*:"));
            prop_assert_eq!(Entry::parse(&printed).unwrap(), entry);
        }
    }

    /// `*.suffix` matches exactly one extra label, on its port only.
    #[test]
    fn wildcard_matches_one_label(suffix in domain(), l1 in label(), l2 in label(), port in 1u16..) {
        let entry = Entry::parse(&format!("*.{suffix}:{port}")).unwrap();
        let one = format!("{l1}.{suffix}");
        let two = format!("{l1}.{l2}.{suffix}");
        let glued = format!("{l1}{suffix}");
        let other_port = if port == u16::MAX { 1 } else { port + 1 };
        prop_assert!(entry.matches(&one, port));
        prop_assert!(!entry.matches(&suffix, port));
        prop_assert!(!entry.matches(&two, port));
        prop_assert!(!entry.matches(&glued, port));
        prop_assert!(!entry.matches(&one, other_port));
    }

    /// An exact entry matches its host (any case, trailing dot) and nothing that merely
    /// contains it.
    #[test]
    fn exact_matches_only_itself(host in domain(), other in label(), upper in any::<bool>()) {
        let entry = Entry::parse(&host).unwrap();
        prop_assert!(matches!(entry.host, HostPattern::Exact(_)));
        let written = if upper { host.to_ascii_uppercase() } else { host.clone() };
        let policy = policy_allowing(std::slice::from_ref(&host), &[]);
        let public = [IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34))];
        let dotted = format!("{written}.");
        let below = format!("{other}.{host}");
        let above = format!("{host}.{other}");
        prop_assert_eq!(policy.decide(&dotted, 443, &public).verdict, Verdict::Allow);
        prop_assert_eq!(policy.decide(&below, 443, &public).verdict, Verdict::Deny);
        prop_assert_eq!(policy.decide(&above, 443, &public).verdict, Verdict::Deny);
    }

    /// Whatever the policy allows by name, an always-refused address among the resolved ones
    /// refuses the destination.
    #[test]
    fn refused_addresses_win(host in domain(), b in any::<u8>(), c in any::<u8>(), d in any::<u8>(), pick in 0usize..5) {
        let bad = [
            IpAddr::V4(Ipv4Addr::new(127, b, c, d)),
            IpAddr::V4(Ipv4Addr::new(169, 254, c, d)),
            IpAddr::V4(Ipv4Addr::new(0, b, c, d)),
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, u16::from(c), u16::from(d))),
            IpAddr::V4(Ipv4Addr::new(224 | (b & 0x0f), b, c, d)),
        ][pick];
        let policy = policy_allowing(std::slice::from_ref(&host), &["10.0.0.0/8".to_owned()]);
        let addrs = [IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)), bad];
        prop_assert_eq!(policy.decide(&host, 443, &addrs).verdict, Verdict::Deny);
    }

    /// A private address passes only when privateAllow holds it.
    #[test]
    fn private_needs_private_allow(host in domain(), b in any::<u8>(), c in any::<u8>(), d in any::<u8>(), listed in any::<bool>()) {
        let ip = IpAddr::V4(Ipv4Addr::new(10, b, c, d));
        let private = if listed { vec![ip.to_string()] } else { Vec::new() };
        let policy = policy_allowing(std::slice::from_ref(&host), &private);
        let allowed = policy.decide(&host, 443, &[ip]).allowed();
        prop_assert_eq!(allowed, listed);
    }
}
