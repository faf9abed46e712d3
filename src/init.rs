//! `openwork __init -- CMD ARGS…`: a minimal init for PID 1 inside a sandbox container.
//!
//! Threat addressed: zombies and lost signals. As PID 1 a process inherits every orphan in the
//! container and receives the engine's stop signal; opencode is neither written to reap orphans
//! nor to be PID 1. This init starts the command in its own process group, forwards SIGTERM,
//! SIGINT, SIGHUP and SIGQUIT to that group, reaps every child that ends, and exits with the
//! command's status (128 + signal when it was killed).
//!
//! Left open: it does not restart the command; the host-side supervisor decides about restarts.

use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicI32, Ordering};

/// Process group of the command, for the signal handler (0 until started).
static CHILD_GROUP: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pgid = CHILD_GROUP.load(Ordering::SeqCst);
    if pgid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Runs the init role with the arguments after `__init` (an optional leading `--`).
pub fn run_init(args: &[std::ffi::OsString]) -> ExitCode {
    let args: Vec<&std::ffi::OsString> = match args.first() {
        Some(first) if first == "--" => args.iter().skip(1).collect(),
        _ => args.iter().collect(),
    };
    let Some((program, rest)) = args.split_first() else {
        eprintln!("openwork __init: no command given (usage: openwork __init -- CMD ARGS…)");
        return ExitCode::from(2);
    };
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installs a handler that only reads an atomic and calls kill.
        unsafe {
            libc::signal(sig, forward as *const () as libc::sighandler_t);
        }
    }
    use std::os::unix::process::CommandExt;
    let child = match Command::new(program).args(rest).process_group(0).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "openwork __init: cannot start {}: {e}",
                std::path::Path::new(program).display()
            );
            return ExitCode::from(127);
        }
    };
    let child_pid = child.id() as i32;
    CHILD_GROUP.store(child_pid, Ordering::SeqCst);
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: plain waitpid on any child; status is a valid out pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == child_pid {
            break;
        }
        if pid < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            eprintln!("openwork __init: waitpid failed: {err}");
            return ExitCode::from(1);
        }
        // Another (orphaned) child was reaped: keep going.
    }
    // The command is gone; stop whatever it left in its group, then reap what is left.
    // SAFETY: kill on our own child's group.
    unsafe {
        libc::kill(-child_pid, libc::SIGKILL);
    }
    loop {
        let mut s: libc::c_int = 0;
        // SAFETY: as above, non-blocking.
        let pid = unsafe { libc::waitpid(-1, &mut s, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
