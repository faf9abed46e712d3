//! openwork-server: the remote-control HTTP API of an openwork workspace.

/// Placeholder until the server slice lands (branch `server-slice`).
pub fn main_from_args(_args: Vec<std::ffi::OsString>) -> std::process::ExitCode {
    eprintln!("openwork-server: not built yet");
    std::process::ExitCode::from(1)
}
