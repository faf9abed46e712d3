//! Mount-spec grammar and allowlist validation for sandbox extra mounts (issue: sandbox mode).
