//! Audit records: one JSON line per egress decision, sent to the host over the control API.
//!
//! Threat: an agent that hides what it reached, or tampers with the record. Records are built
//! by the gate, streamed to the host (`GET /audit`) and written there; nothing is written
//! inside a container the agent can reach. Denials are also logged (`tracing`) with the rule
//! that would allow them.
//!
//! Left open: records emitted while no host is subscribed are dropped (the host subscribes
//! before it starts the agent), and a subscriber that falls more than [`CAPACITY`] records
//! behind gets a `{"lagged":n}` line instead of the records it missed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::policy::Verdict;

/// How many records a slow subscriber may fall behind.
pub const CAPACITY: usize = 4096;

/// Which listener made the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A CONNECT tunnel.
    Connect,
    /// An absolute-form `http://` request through the proxy.
    Http,
    /// A provider request through the injection listener.
    Inject,
}

/// One egress decision (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// When the decision was made, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// Which listener.
    pub kind: Kind,
    /// The destination host as requested.
    pub host: String,
    /// The destination port.
    pub port: u16,
    /// The address connected to (or refused), if any.
    pub ip: Option<String>,
    /// `allow`, `deny` or `audit` (allowed only because mode is audit).
    pub decision: Verdict,
    /// For allow: the matching rule; for deny: the entry that would allow it (`None` when
    /// nothing can).
    pub rule: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// Bytes from the agent to the destination.
    pub bytes_up: u64,
    /// Bytes from the destination to the agent.
    pub bytes_down: u64,
    /// From the decision to the end of the exchange.
    pub duration_ms: u64,
    /// The provider id, for injected requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// A failure after the decision (connect refused, upstream error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AuditRecord {
    /// A record stamped now, with no bytes yet.
    pub fn new(kind: Kind, host: &str, port: u16, decision: Verdict) -> Self {
        Self {
            time: rfc3339(SystemTime::now()),
            kind,
            host: host.to_owned(),
            port,
            ip: None,
            decision,
            rule: None,
            reason: String::new(),
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
            provider: None,
            error: None,
        }
    }

    /// The JSON line (without the newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Milliseconds in a duration, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a system time (UTC, proleptic Gregorian).
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_475_928_071);
        assert_eq!(rfc3339(t), "2026-11-23T23:18:48.071Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn json_line_shape() {
        let mut r = AuditRecord::new(Kind::Connect, "a.example", 443, Verdict::Deny);
        r.rule = Some("a.example:443".into());
        let v: serde_json::Value = serde_json::from_str(&r.to_json_line()).unwrap_or_default();
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["bytesUp"], 0);
        assert_eq!(v["rule"], "a.example:443");
        assert!(v.get("provider").is_none());
    }
}
