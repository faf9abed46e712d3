//! Address classes: which resolved IP addresses the gate never connects to, and which only
//! when the policy's `privateAllow` names them.
//!
//! Threat: a destination whose *name* is allowed but whose *address* is the gate's own host,
//! the container engine's network, a cloud metadata service or a LAN machine (DNS pointing a
//! public name at 127.0.0.1 or 169.254.169.254 is a classic SSRF trick). Every resolved address
//! is classified here, after DNS, at connect time; the proxy connects only to an address this
//! module let through, so a second lookup cannot rebind the name.
//!
//! Left open: the classification is by address only. A public address that forwards to an
//! internal service (an open proxy on the internet) is not detected, and IPv4-mapped IPv6
//! addresses (`::ffff:a.b.c.d`) are classified as the IPv4 address they carry.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// Why an address is special. `Display` is the short name used in messages and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrClass {
    /// An ordinary public address.
    Public,
    /// `0.0.0.0/8`, `::` (this host).
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// Cloud metadata services: `169.254.169.254`, `169.254.170.2`, `100.100.100.200`,
    /// `fd00:ec2::254`.
    Metadata,
    /// `224.0.0.0/4`, `ff00::/8`, `255.255.255.255`.
    Multicast,
    /// `240.0.0.0/4` (reserved), `192.0.0.0/24`, documentation ranges, benchmarking `198.18/15`.
    Reserved,
    /// `10/8`, `172.16/12`, `192.168/16`, `100.64/10` (CGNAT), `fc00::/7`: only with
    /// `privateAllow`.
    Private,
}

impl AddrClass {
    /// Whether no policy can allow this class.
    pub fn always_refused(self) -> bool {
        !matches!(self, Self::Public | Self::Private)
    }
}

impl fmt::Display for AddrClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Public => "public",
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::LinkLocal => "link-local",
            Self::Metadata => "cloud metadata",
            Self::Multicast => "multicast/broadcast",
            Self::Reserved => "reserved",
            Self::Private => "private",
        })
    }
}

/// Always-refused ranges, in the order the README lists them, with their class.
pub const REFUSED_RANGES: &[(&str, AddrClass)] = &[
    ("0.0.0.0/8", AddrClass::Unspecified),
    ("::/128", AddrClass::Unspecified),
    ("127.0.0.0/8", AddrClass::Loopback),
    ("::1/128", AddrClass::Loopback),
    ("169.254.169.254/32", AddrClass::Metadata),
    ("169.254.170.2/32", AddrClass::Metadata),
    ("100.100.100.200/32", AddrClass::Metadata),
    ("fd00:ec2::254/128", AddrClass::Metadata),
    ("169.254.0.0/16", AddrClass::LinkLocal),
    ("fe80::/10", AddrClass::LinkLocal),
    ("224.0.0.0/4", AddrClass::Multicast),
    ("255.255.255.255/32", AddrClass::Multicast),
    ("ff00::/8", AddrClass::Multicast),
    ("240.0.0.0/4", AddrClass::Reserved),
    ("192.0.0.0/24", AddrClass::Reserved),
    ("192.0.2.0/24", AddrClass::Reserved),
    ("198.18.0.0/15", AddrClass::Reserved),
    ("198.51.100.0/24", AddrClass::Reserved),
    ("203.0.113.0/24", AddrClass::Reserved),
    ("2001:db8::/32", AddrClass::Reserved),
];

/// Private ranges: reachable only when `privateAllow` names the address or a CIDR holding it.
pub const PRIVATE_RANGES: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

/// The canonical form: an IPv4-mapped or IPv4-compatible IPv6 address becomes the IPv4 one.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The class of one address (after [`canonical`]).
pub fn classify(ip: IpAddr) -> AddrClass {
    let ip = canonical(ip);
    for (range, class) in REFUSED_RANGES {
        if parse_net(range).is_some_and(|net| net.contains(&ip)) {
            return *class;
        }
    }
    if PRIVATE_RANGES
        .iter()
        .filter_map(|r| parse_net(r))
        .any(|net| net.contains(&ip))
    {
        return AddrClass::Private;
    }
    AddrClass::Public
}

/// Whether `net` lies wholly inside one private range.
pub fn inside_private(net: &IpNet) -> bool {
    PRIVATE_RANGES
        .iter()
        .filter_map(|r| parse_net(r))
        .any(|range| range.contains(net))
}

fn parse_net(text: &str) -> Option<IpNet> {
    text.parse().ok()
}

/// Names that always point at the machine itself or a metadata service.
pub const REFUSED_NAMES: &[&str] = &[
    "localhost",
    "*.localhost",
    "localhost.localdomain",
    "ip6-localhost",
    "ip6-loopback",
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Whether a lower-case host name is one of [`REFUSED_NAMES`] (or under `.localhost`).
pub fn refused_name(host: &str) -> bool {
    REFUSED_NAMES
        .iter()
        .any(|name| match name.strip_prefix('*') {
            Some(suffix) => host.ends_with(suffix),
            None => host == *name,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn class(s: &str) -> AddrClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_refused_class() {
        assert_eq!(class("127.0.0.1"), AddrClass::Loopback);
        assert_eq!(class("127.255.1.2"), AddrClass::Loopback);
        assert_eq!(class("::1"), AddrClass::Loopback);
        assert_eq!(class("::ffff:127.0.0.1"), AddrClass::Loopback);
        assert_eq!(class("169.254.1.1"), AddrClass::LinkLocal);
        assert_eq!(class("fe80::1"), AddrClass::LinkLocal);
        assert_eq!(class("169.254.169.254"), AddrClass::Metadata);
        assert_eq!(class("100.100.100.200"), AddrClass::Metadata);
        assert_eq!(class("fd00:ec2::254"), AddrClass::Metadata);
        assert_eq!(class("0.0.0.0"), AddrClass::Unspecified);
        assert_eq!(class("::"), AddrClass::Unspecified);
        assert_eq!(class("224.0.0.1"), AddrClass::Multicast);
        assert_eq!(class("ff02::1"), AddrClass::Multicast);
        assert_eq!(class("255.255.255.255"), AddrClass::Multicast);
        assert_eq!(class("240.0.0.1"), AddrClass::Reserved);
        for refused in [
            "127.0.0.1",
            "::1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
        ] {
            assert!(class(refused).always_refused(), "{refused}");
        }
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "fd12::1",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(class(ip), AddrClass::Private, "{ip}");
        }
        for ip in ["172.32.0.1", "8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert_eq!(class(ip), AddrClass::Public, "{ip}");
        }
        assert!(inside_private(&"10.1.0.0/16".parse().unwrap()));
        assert!(!inside_private(&"10.0.0.0/7".parse().unwrap()));
        assert!(!inside_private(&"0.0.0.0/0".parse().unwrap()));
    }

    #[test]
    fn names() {
        assert!(refused_name("localhost"));
        assert!(refused_name("app.localhost"));
        assert!(refused_name("metadata.google.internal"));
        assert!(!refused_name("localhost.example.com"));
    }

    #[test]
    fn every_table_entry_parses() {
        for (range, _) in REFUSED_RANGES {
            assert!(parse_net(range).is_some(), "{range}");
        }
        for range in PRIVATE_RANGES {
            assert!(parse_net(range).is_some(), "{range}");
        }
    }
}
