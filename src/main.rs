//! openwork: one multi-call binary. Invoked as `openwork` it is the orchestrator CLI; as
//! `openwork-server` / `opencode-router` (argv[0], e.g. through a symlink) or as
//! `openwork server` / `openwork router` it plays those roles.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use openwork::cli::{Cli, Command};
use openwork::{plan, run, watchdog};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("openwork")
        .to_string();
    match argv0.as_str() {
        "openwork-server" => return openwork_server::main_from_args(args),
        "opencode-router" => return opencode_router::main_from_args(args),
        // Inside a sandbox with a guarded repository (see git_shim.rs).
        "git" => return openwork::git_shim::run(args.into_iter().skip(1).collect()),
        _ => {}
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let (start_args, is_start) = match cli.command {
        Some(Command::Server { args: rest }) => {
            return openwork_server::main_from_args(role_args("openwork-server", rest));
        }
        Some(Command::Router { args: rest }) => {
            return opencode_router::main_from_args(role_args("opencode-router", rest));
        }
        Some(Command::Watchdog) => return watchdog::run_watchdog(),
        Some(Command::Gate { args }) => return openwork_gate::main_from_args(args),
        Some(Command::Init { args }) => return openwork::init::run_init(&args),
        Some(Command::Approvals(a)) => {
            return client_command(
                a.json,
                async move { openwork::client::approvals::run(&a).await },
            );
        }
        Some(Command::Status(a)) => {
            return client_command(
                a.json,
                async move { openwork::client::status::run(&a).await },
            );
        }
        Some(Command::Files(a)) => {
            return client_command(
                a.json,
                async move { openwork::client::files::run(&a).await },
            );
        }
        Some(Command::Doctor(a)) => return doctor_command(&a),
        Some(Command::Policy(a)) => return openwork::policy::run(&a),
        Some(Command::Ps(a)) => {
            return openwork::runs::run_command(async move { openwork::runs::ps::run(&a).await });
        }
        Some(Command::Stop(a)) => {
            return openwork::runs::run_command(async move { openwork::runs::stop::run(&a).await });
        }
        Some(Command::Logs(a)) => {
            return openwork::runs::run_command(async move { openwork::runs::logs::run(&a).await });
        }
        Some(Command::Attach(a)) => {
            return openwork::runs::run_command(
                async move { openwork::runs::attach::run(&a).await },
            );
        }
        Some(Command::Start(a)) => (a, true),
        Some(Command::Serve(a)) => (a, false),
        None => (cli.start, true),
    };
    let plan = match plan::RunPlan::from_args(&start_args, is_start) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("openwork: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("openwork: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run::run(plan)) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("openwork: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs a client command on a small runtime and turns its result into the exit code.
fn client_command<F>(json: bool, fut: F) -> ExitCode
where
    F: std::future::Future<Output = Result<(), openwork::client::ClientError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("openwork: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(openwork::client::ClientError::Partial(msg)) => {
            if !json {
                eprintln!("openwork: {msg}");
            }
            ExitCode::from(1)
        }
        Err(e) => ExitCode::from(openwork::client::report(&e, json)),
    }
}

fn role_args(name: &str, rest: Vec<OsString>) -> Vec<OsString> {
    let mut v = Vec::with_capacity(rest.len() + 1);
    v.push(OsString::from(name));
    v.extend(rest);
    v
}

fn doctor_command(args: &openwork::doctor::DoctorArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("openwork: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(openwork::doctor::run(args));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
