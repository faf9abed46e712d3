//! Runs the server exactly as the `openwork` binary does, for manual testing:
//! `cargo run -p openwork-server --example openwork-server -- --port 0 --workspace .`

fn main() -> std::process::ExitCode {
    openwork_server::main_from_args(std::env::args_os().collect())
}
