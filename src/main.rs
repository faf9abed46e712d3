//! openwork: one multi-call binary. Invoked as `openwork` it is the orchestrator CLI; as
//! `openwork-server` / `opencode-router` (argv[0]) or `openwork server` / `openwork router` it
//! plays those roles.

fn main() {
    println!("openwork {}", env!("CARGO_PKG_VERSION"));
}
