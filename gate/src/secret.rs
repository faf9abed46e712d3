//! [`Secret`]: a provider key or the control token, never printed.
//!
//! Threat: a key leaking through `{:?}` in a log line, an error or a panic message. `Debug` and
//! `Display` print `[REDACTED]`; the value is reached only through [`Secret::expose`], which is
//! called where the key goes into a request header or a constant-time comparison.
//!
//! Left open: the key sits in process memory unencrypted and is not zeroed on drop.

use std::fmt;

/// A string that prints as `[REDACTED]`.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time equality with `other` (the length is not hidden).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("sk-ant-real");
        assert_eq!(format!("{s:?} {s}"), "[REDACTED] [REDACTED]");
        assert!(s.ct_eq(b"sk-ant-real"));
        assert!(!s.ct_eq(b"sk-ant-rea"));
    }
}
