//! The entry grammar: `host[:port]`, `*.example.com[:port]`, `1.2.3.4[:port]`, `[v6][:port]`.
//!
//! Threat: an entry that allows more than its author meant (`*`, `*.com`, `api.*.com`, a URL
//! whose path was silently dropped, a name that means this machine). Such entries are refused
//! with the reason, never widened or narrowed silently. Matching is on lower-case names without
//! a trailing dot, by whole labels, so `evil-example.com` never matches `*.example.com`.
//!
//! Left open: no port means 443 only (HTTPS), not "any port"; names are compared as ASCII, so
//! internationalised names must be written in their `xn--` form.

use std::fmt;
use std::net::IpAddr;

use crate::policy::addr::{REFUSED_NAMES, classify, refused_name};
use crate::policy::error::EntryError;

/// The port an entry without `:port` allows.
pub const DEFAULT_PORT: u16 = 443;

/// Which hosts an entry names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// One exact name (lower case, no trailing dot).
    Exact(String),
    /// `*.suffix`: exactly one label followed by `.suffix`.
    Wildcard(String),
    /// An IP literal: only a request for that literal matches.
    Ip(IpAddr),
}

/// One parsed entry: a host pattern and one port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Which hosts.
    pub host: HostPattern,
    /// Which port (443 when not written).
    pub port: u16,
}

impl Entry {
    /// Parses `host[:port]`; the error names the entry and the fix.
    pub fn parse(text: &str) -> Result<Self, EntryError> {
        let entry = text.trim();
        let owned = || entry.to_owned();
        if entry.is_empty() {
            return Err(EntryError::Empty);
        }
        if let Some(i) = entry.find("://") {
            let rest = &entry[i + 3..];
            let suggestion = rest
                .split(['/', '?', '#'])
                .next()
                .unwrap_or(rest)
                .to_owned();
            return Err(EntryError::NotHostPort {
                entry: owned(),
                suggestion,
            });
        }
        if entry.contains(['/', '?', '#', '@', ' ']) {
            let suggestion = entry.split(['/', '?', '#']).next().unwrap_or(entry);
            let suggestion = suggestion
                .rsplit('@')
                .next()
                .unwrap_or(suggestion)
                .to_owned();
            return Err(EntryError::NotHostPort {
                entry: owned(),
                suggestion,
            });
        }
        let (host, port) = split_host_port(entry)?;
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(EntryError::BadPort {
                        entry: owned(),
                        port: p.to_owned(),
                    });
                }
            },
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host == "*" {
            return Err(EntryError::BareStar { entry: owned() });
        }
        if refused_name(&host) {
            return Err(EntryError::RefusedName {
                entry: owned(),
                host,
            });
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            let class = classify(ip);
            if class.always_refused() {
                return Err(EntryError::RefusedAddress {
                    entry: owned(),
                    ip,
                    class,
                });
            }
            return Ok(Self {
                host: HostPattern::Ip(ip),
                port,
            });
        }
        let pattern = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.contains('*') || !suffix.contains('.') {
                return Err(EntryError::BadWildcard { entry: owned() });
            }
            check_name(entry, suffix)?;
            HostPattern::Wildcard(suffix.to_owned())
        } else {
            if host.contains('*') {
                return Err(EntryError::BadWildcard { entry: owned() });
            }
            check_name(entry, &host)?;
            HostPattern::Exact(host.clone())
        };
        let widens_to_refused = match &pattern {
            HostPattern::Wildcard(_) => REFUSED_NAMES.iter().any(|name| {
                Self {
                    host: pattern.clone(),
                    port,
                }
                .matches(name, port)
            }),
            _ => false,
        };
        if widens_to_refused {
            return Err(EntryError::RefusedName {
                entry: owned(),
                host,
            });
        }
        Ok(Self {
            host: pattern,
            port,
        })
    }

    /// An exact entry for `host:port` (the one that would allow a denied request).
    pub fn exact(host: &str, port: u16) -> Result<Self, EntryError> {
        Self::parse(&HostPort { host, port }.to_string())
    }

    /// Whether this entry allows a request for `host` (already [`normalize_host`]d) on `port`.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        match &self.host {
            HostPattern::Exact(name) => name == host,
            HostPattern::Wildcard(suffix) => host
                .strip_suffix(suffix.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            HostPattern::Ip(ip) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|h| h == *ip),
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Exact(name) => write!(f, "{name}:{}", self.port),
            HostPattern::Wildcard(suffix) => write!(f, "*.{suffix}:{}", self.port),
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            HostPattern::Ip(ip) => write!(f, "{ip}:{}", self.port),
        }
    }
}

/// `host:port` as an entry would write it (IPv6 in brackets).
#[derive(Debug, Clone, Copy)]
pub struct HostPort<'a> {
    /// A normalized host.
    pub host: &'a str,
    /// The port.
    pub port: u16,
}

impl fmt::Display for HostPort<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') && !self.host.starts_with('[') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Lower case, without a trailing dot or IPv6 brackets: the form entries are matched against.
pub fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

fn split_host_port(entry: &str) -> Result<(&str, Option<&str>), EntryError> {
    if let Some(rest) = entry.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(EntryError::BadHost {
                entry: entry.to_owned(),
                host: entry.to_owned(),
            });
        };
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(EntryError::BadHost {
                    entry: entry.to_owned(),
                    host: entry.to_owned(),
                }),
            },
        };
    }
    if entry.matches(':').count() > 1 {
        return Ok((entry, None)); // a bare IPv6 literal
    }
    Ok(match entry.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (entry, None),
    })
}

fn check_name(entry: &str, name: &str) -> Result<(), EntryError> {
    let bad = || EntryError::BadHost {
        entry: entry.to_owned(),
        host: name.to_owned(),
    };
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ok(s: &str) -> Entry {
        Entry::parse(s).unwrap()
    }

    #[test]
    fn grammar() {
        assert_eq!(ok("API.Example.com.").to_string(), "api.example.com:443");
        assert_eq!(ok("api.example.com:8443").port, 8443);
        assert_eq!(ok("*.example.com").to_string(), "*.example.com:443");
        assert_eq!(ok("203.0.114.5:80").to_string(), "203.0.114.5:80");
        assert_eq!(ok("[2606:4700::1]:8443").to_string(), "[2606:4700::1]:8443");
        assert_eq!(ok("2606:4700::1").port, 443);
        assert_eq!(ok("192.168.1.20:11434").port, 11434);
    }

    #[test]
    fn refusals() {
        use EntryError as E;
        assert!(matches!(Entry::parse(""), Err(E::Empty)));
        assert!(matches!(Entry::parse("*"), Err(E::BareStar { .. })));
        assert!(matches!(Entry::parse("*:443"), Err(E::BareStar { .. })));
        for bad in ["*.com", "a*.example.com", "api.*.com", "*.*.example.com"] {
            assert!(
                matches!(Entry::parse(bad), Err(E::BadWildcard { .. })),
                "{bad}"
            );
        }
        match Entry::parse("https://api.example.com/v1") {
            Err(E::NotHostPort { suggestion, .. }) => assert_eq!(suggestion, "api.example.com"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Entry::parse("api.example.com:0"),
            Err(E::BadPort { .. })
        ));
        assert!(matches!(
            Entry::parse("api.example.com:http"),
            Err(E::BadPort { .. })
        ));
        assert!(matches!(Entry::parse("a..b"), Err(E::BadHost { .. })));
        assert!(matches!(Entry::parse("-a.com"), Err(E::BadHost { .. })));
        for bad in [
            "localhost",
            "localhost:4096",
            "app.localhost",
            "*.localhost",
            "metadata.google.internal",
            "*.google.internal",
        ] {
            assert!(
                matches!(Entry::parse(bad), Err(E::RefusedName { .. })),
                "{bad}"
            );
        }
        for bad in [
            "127.0.0.1",
            "[::1]:80",
            "169.254.169.254",
            "0.0.0.0:80",
            "fe80::1",
        ] {
            assert!(
                matches!(Entry::parse(bad), Err(E::RefusedAddress { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn matching() {
        let w = ok("*.example.com");
        assert!(w.matches("api.example.com", 443));
        assert!(!w.matches("example.com", 443));
        assert!(!w.matches("a.b.example.com", 443));
        assert!(!w.matches("evil-example.com", 443));
        assert!(!w.matches("api.example.com", 80));
        let e = ok("api.example.com:80");
        assert!(e.matches("api.example.com", 80));
        assert!(!e.matches("api.example.com", 443));
        assert!(ok("[2606:4700::1]").matches("[2606:4700::1]", 443));
        assert!(ok("[2606:4700::1]").matches("2606:4700::1", 443));
    }
}
