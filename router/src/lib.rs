//! opencode-router: the chat bridge between messaging platforms and opencode.
