//! openwork: one multi-call binary. Invoked as `openwork` it is the orchestrator CLI; as
//! `openwork-server` / `opencode-router` (argv[0]) or `openwork server` / `openwork router` it
//! plays those roles.

// Wired into the CLI by the run-plan work; until then only its tests use it.
#[allow(dead_code, unused_imports)]
mod sidecars;

fn main() {
    println!("openwork {}", env!("CARGO_PKG_VERSION"));
}
