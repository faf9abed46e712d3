//! `openwork attach [RUN] [--opencode-bin PATH]`: runs the real `opencode attach <url> --dir
//! <dir>` against a run's opencode, in this terminal.
//!
//! The run's opencode credentials come from its `credentials.json` (0600) and reach opencode
//! through the environment only (`OPENCODE_SERVER_USERNAME` / `OPENCODE_SERVER_PASSWORD`). This
//! process then becomes opencode (`exec`): stdin/stdout/stderr are the terminal's, signals reach
//! opencode directly, and its exit code is the command's.
//!
//! Threat addressed: credentials on argv (readable by every user through `ps`/`/proc/*/cmdline`)
//! or printed. Neither happens: the password is in the child's environment, which only the same
//! user (and root) can read, and no message of this command includes it.

use camino::Utf8PathBuf;
use clap::Args;

use super::record::STATE_FILE;
use super::{DataDirArgs, RunsError, list, resolve};

#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// The run: its id, a unique prefix of it, or its workspace path (optional with one run).
    #[arg(value_name = "RUN")]
    pub run: Option<String>,
    /// The opencode to run (default: `opencode` on PATH).
    #[arg(long, value_name = "PATH")]
    pub opencode_bin: Option<Utf8PathBuf>,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// What to run: program, argv (no secret in it) and the environment with the credentials.
#[derive(Clone)]
pub struct AttachCommand {
    pub program: std::path::PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for AttachCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(k, _)| *k).collect();
        f.debug_struct("AttachCommand")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &env)
            .finish()
    }
}

/// Builds the `opencode attach` command for a run (pure: no process is started).
pub fn attach_command(
    program: std::path::PathBuf,
    opencode_url: &str,
    directory: &str,
    username: String,
    password: String,
) -> AttachCommand {
    AttachCommand {
        program,
        args: vec![
            "attach".into(),
            opencode_url.into(),
            "--dir".into(),
            directory.into(),
        ],
        env: vec![
            ("OPENCODE_SERVER_USERNAME", username),
            ("OPENCODE_SERVER_PASSWORD", password),
        ],
    }
}

/// Resolves the run and replaces this process with `opencode attach`. Returns only on failure.
pub async fn run(args: &AttachArgs) -> Result<u8, RunsError> {
    use std::os::unix::process::CommandExt;
    let runs_dir = args.data.runs_dir()?;
    let listing = list(&runs_dir)?;
    let entry = resolve(&listing.entries, args.run.as_deref(), &runs_dir)?;
    let record = entry.record.clone().map_err(|why| RunsError::Io {
        path: entry.dir.join(STATE_FILE),
        message: why,
    })?;
    if super::liveness(&record).await == super::Liveness::Stale {
        return Err(RunsError::NotRunning {
            run: record.run_id.clone(),
        });
    }
    let creds = super::record::read_credentials(&entry.dir)?;
    let field = |k: &str| creds["opencode"][k].as_str().map(str::to_string);
    let (Some(username), Some(password)) = (field("username"), field("password")) else {
        return Err(RunsError::Io {
            path: entry.dir.join(super::record::CREDENTIALS_FILE),
            message: "has no opencode username/password; the run cannot be attached to".into(),
        });
    };
    let program = match &args.opencode_bin {
        Some(p) => p.clone().into_std_path_buf(),
        None => which::which("opencode").map_err(|e| RunsError::OpencodeMissing {
            reason: e.to_string(),
        })?,
    };
    let cmd = attach_command(
        program,
        &record.opencode_url,
        &record.opencode_directory,
        username,
        password,
    );
    let mut command = std::process::Command::new(&cmd.program);
    command.args(&cmd.args);
    for (k, v) in &cmd.env {
        command.env(k, v);
    }
    // Only returns when exec failed.
    let err = command.exec();
    Err(RunsError::Exec {
        program: cmd.program.display().to_string(),
        message: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_in_the_environment_never_on_argv_or_in_debug_output() {
        let cmd = attach_command(
            "/bin/opencode".into(),
            "http://127.0.0.1:4096",
            "/ws",
            "user-secret".into(),
            "pass-secret".into(),
        );
        assert_eq!(
            cmd.args,
            ["attach", "http://127.0.0.1:4096", "--dir", "/ws"]
        );
        assert!(cmd.args.iter().all(|a| !a.contains("secret")));
        assert!(
            cmd.env
                .contains(&("OPENCODE_SERVER_PASSWORD", "pass-secret".to_string()))
        );
        let shown = format!("{cmd:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
