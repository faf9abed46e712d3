//! `openwork policy show|check`: the sandbox's egress policy as the gate would apply it, and a
//! check of a policy file that lists every problem with its place and fix.
//!
//! Threat addressed: a person who believes a destination is allowed (or refused) when it is not.
//! `show` builds the policy exactly as a run does (the file, `--sandbox-allow`, the providers of
//! opencode's config in the current directory, the built-in profile) through the same functions.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use openwork_gate::{Extras, PolicyFile};

use crate::plan::egress::{host_opencode_config, load_policy, parse_allow, provider_entries};

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the effective egress policy of a sandbox run started here.
    Show {
        /// The policy file (default ~/.config/openwork/sandbox-policy.json).
        #[arg(long, env = "OPENWORK_SANDBOX_POLICY", value_name = "FILE")]
        sandbox_policy: Option<PathBuf>,
        /// Entries added for one run, as `--sandbox-allow` takes them.
        #[arg(
            long,
            env = "OPENWORK_SANDBOX_ALLOW",
            value_name = "HOST[:PORT]",
            value_delimiter = ','
        )]
        sandbox_allow: Vec<String>,
        /// The policy as the gate's `PUT /policy` body, with the file's path.
        #[arg(long)]
        json: bool,
    },
    /// Check a policy file; exit 1 listing every problem.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

/// Runs `openwork policy …`.
pub fn run(args: &PolicyArgs) -> ExitCode {
    match &args.command {
        PolicyCommand::Show {
            sandbox_policy,
            sandbox_allow,
            json,
        } => show(sandbox_policy.as_deref(), sandbox_allow, *json),
        PolicyCommand::Check { file } => check(file),
    }
}

fn show(file: Option<&std::path::Path>, allow: &[String], json: bool) -> ExitCode {
    let cli = match parse_allow(allow) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("openwork: {e}");
            return ExitCode::from(2);
        }
    };
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cwd = std::env::current_dir().unwrap_or_default();
    let path = openwork_gate::policy_path(file, &home, &cwd);
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|x| !x.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    let env = |k: &str| std::env::var(k).ok();
    let config = host_opencode_config(&config_home, &cwd, &env);
    let extras = Extras {
        cli,
        providers: provider_entries(config.as_ref()),
    };
    let policy = match load_policy(&path, &extras) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("openwork: {e}");
            return ExitCode::from(1);
        }
    };
    let exists = path.exists();
    if json {
        let doc = serde_json::json!({
            "policyFile": path,
            "policyFileExists": exists,
            "policy": policy.to_file_json(),
        });
        println!("{doc:#}");
    } else {
        let note = if exists {
            ""
        } else {
            " (absent: the default policy applies)"
        };
        println!("policy file: {}{note}", path.display());
        print!("{}", policy.show());
    }
    ExitCode::SUCCESS
}

fn check(file: &std::path::Path) -> ExitCode {
    match PolicyFile::load(file) {
        Ok(Some(f)) => {
            let policy = openwork_gate::Policy::build(&f, &Extras::default());
            println!(
                "{}: ok ({} rules with the built-in profile as configured)",
                file.display(),
                policy.rules().len()
            );
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!(
                "{}: no such file. Create it (schema: gate/README.md, \"Policy file\")",
                file.display()
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
