//! The `SandboxBackend` trait and its implementations (issue: sandbox mode).
