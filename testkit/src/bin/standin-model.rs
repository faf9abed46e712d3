//! `standin-model`: the scripted OpenAI-compatible model as its own process, e.g. in a container
//! playing "the internet" for a sandbox. Prints `standin-model listening on ADDR` once it accepts
//! connections; stops on SIGTERM or SIGINT (it handles both, since as a container's PID 1 it gets
//! no default action for them).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use std::process::ExitCode;

use openwork_testkit::{DEFAULT_MODEL, Knobs, Options, Script, StandIn, StandInError};

/// A scripted OpenAI-compatible chat-completions server for tests (see testkit/README.md).
#[derive(Debug, Parser)]
#[command(name = "standin-model", version)]
struct Cli {
    /// Address to listen on (port 0: a free port, printed in the ready line).
    #[arg(long, env = "STANDIN_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A JSON script file (default: write standin.txt, then say "done").
    #[arg(long, env = "STANDIN_SCRIPT_FILE", conflicts_with = "script_json")]
    script: Option<PathBuf>,
    /// The script as inline JSON.
    #[arg(long, env = "STANDIN_SCRIPT")]
    script_json: Option<String>,
    /// The model id GET /v1/models lists.
    #[arg(long, env = "STANDIN_MODEL", default_value = DEFAULT_MODEL)]
    model: String,
    /// Pause before each streamed chunk after the first, in milliseconds (a slow turn).
    #[arg(long, env = "STANDIN_CHUNK_DELAY_MS", default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Start with hold on: replies wait after their first chunk until PUT /__standin/knobs
    /// {"hold": false}.
    #[arg(long, env = "STANDIN_HOLD")]
    hold: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("standin-model: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Errors of a run (each already names what to fix).
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    StandIn(#[from] StandInError),
    #[error("cannot write the ready line or install signal handlers: {0}")]
    Io(#[from] std::io::Error),
}

async fn run(cli: Cli) -> Result<(), RunError> {
    let script = match (&cli.script, &cli.script_json) {
        (Some(path), _) => Script::from_file(path)?,
        (None, Some(json)) => Script::parse(json, "--script-json / STANDIN_SCRIPT")?,
        (None, None) => Script::default(),
    };
    let standin = StandIn::start(Options {
        listen: cli.listen,
        script,
        model: cli.model,
        knobs: Knobs {
            chunk_delay_ms: cli.chunk_delay_ms,
            hold: cli.hold,
        },
    })
    .await?;
    println!("standin-model listening on {}", standin.addr());
    use std::io::Write;
    std::io::stdout().flush()?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(standin);
    Ok(())
}
