//! Progress reporting for sidecar resolution, kept behind a trait so the caller owns output.
//!
//! A first run downloads opencode (~185 MB); without a word the start-up looks hung. The resolver
//! reports one line when a fetch starts and one when it ends, plus every resolution attempt for
//! `--verbose`. [`StderrProgress`] is the plain implementation; the TUI or a JSON log can supply
//! its own, and tests record events with one.

use std::io::Write as _;
use std::time::Duration;

use camino::Utf8PathBuf;

use super::target::Target;
use super::{Attempt, SidecarName, Source};

/// A fetch that is about to start.
#[derive(Debug, Clone)]
pub struct FetchStart {
    /// The sidecar being fetched.
    pub name: SidecarName,
    /// [`Source::Npm`] or [`Source::Downloaded`].
    pub source: Source,
    /// The npm package spec or the URL.
    pub from: String,
    /// The sidecar version.
    pub version: String,
    /// The target it is fetched for.
    pub target: Target,
    /// Where it will be cached.
    pub cache_path: Utf8PathBuf,
}

/// A fetch that finished and is installed in the cache.
#[derive(Debug, Clone)]
pub struct FetchDone {
    /// The sidecar fetched.
    pub name: SidecarName,
    /// Bytes transferred (the archive or tarball size, or the binary's).
    pub bytes: u64,
    /// How long the fetch, verification and install took.
    pub elapsed: Duration,
}

/// Receives resolution events. All methods have empty defaults.
pub trait Progress: Send + Sync {
    /// A fetch is starting (one line: what, which version, which target, one-time).
    fn fetch_started(&self, _start: &FetchStart) {}
    /// A fetch finished (one line: size and time).
    fn fetch_finished(&self, _done: &FetchDone) {}
    /// One resolution step finished, successfully or not (for `--verbose`).
    fn attempt(&self, _name: SidecarName, _attempt: &Attempt) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullProgress;

impl Progress for NullProgress {}

/// Writes fetch lines to stderr, and attempts too when `verbose`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StderrProgress {
    /// Also print every resolution attempt.
    pub verbose: bool,
}

impl Progress for StderrProgress {
    fn fetch_started(&self, s: &FetchStart) {
        let line = fetch_started_line(s);
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    fn fetch_finished(&self, d: &FetchDone) {
        let line = fetch_finished_line(d);
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    fn attempt(&self, name: SidecarName, attempt: &Attempt) {
        if self.verbose {
            let _ = writeln!(std::io::stderr(), "{name}: {attempt}");
        }
    }
}

/// [`StderrProgress`] plus a live indicator (spinner and elapsed seconds) while a fetch runs,
/// when stderr is a terminal. The indicator stops when the fetch ends or the reporter is dropped
/// (a failed fetch).
#[derive(Debug, Default)]
pub struct LiveProgress {
    /// The plain lines.
    pub inner: StderrProgress,
    spinner: std::sync::Mutex<Option<Spinner>>,
}

#[derive(Debug)]
struct Spinner {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl LiveProgress {
    /// A reporter; the indicator is shown only when stderr is a terminal.
    pub fn new(verbose: bool) -> Self {
        LiveProgress {
            inner: StderrProgress { verbose },
            spinner: std::sync::Mutex::new(None),
        }
    }

    fn stop_spinner(&self) {
        let taken = self.spinner.lock().ok().and_then(|mut g| g.take());
        if let Some(sp) = taken {
            sp.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = sp.thread.join();
            // Clear the indicator's line.
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

impl Drop for LiveProgress {
    fn drop(&mut self) {
        self.stop_spinner();
    }
}

impl Progress for LiveProgress {
    fn fetch_started(&self, s: &FetchStart) {
        self.inner.fetch_started(s);
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let what = format!("{} {}", s.name, s.version);
        let thread = std::thread::spawn(move || {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            let start = std::time::Instant::now();
            let mut i = 0usize;
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = write!(
                    std::io::stderr(),
                    "\r{} fetching {what}… {}s",
                    FRAMES[i % FRAMES.len()],
                    start.elapsed().as_secs()
                );
                i += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        if let Ok(mut g) = self.spinner.lock() {
            *g = Some(Spinner { stop, thread });
        }
    }

    fn fetch_finished(&self, d: &FetchDone) {
        self.stop_spinner();
        self.inner.fetch_finished(d);
    }

    fn attempt(&self, name: SidecarName, attempt: &Attempt) {
        self.inner.attempt(name, attempt);
    }
}

/// The line printed when a fetch starts.
pub fn fetch_started_line(s: &FetchStart) -> String {
    format!(
        "Fetching {} {} for {} from {} ({}). This is a one-time download; later runs use the cache at {}.",
        s.name, s.version, s.target, s.source, s.from, s.cache_path
    )
}

/// The line printed when a fetch ends.
pub fn fetch_finished_line(d: &FetchDone) -> String {
    format!(
        "Fetched {} ({}) in {:.1} s.",
        d.name,
        human_bytes(d.bytes),
        d.elapsed.as_secs_f64()
    )
}

/// `123.4 MB`-style sizes (decimal units, like npm and curl).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(185_200_000), "185.2 MB");
    }

    #[test]
    fn start_line_says_one_time() {
        let line = fetch_started_line(&FetchStart {
            name: SidecarName::Opencode,
            source: Source::Npm,
            from: "opencode-linux-x64@1.18.34".into(),
            version: "1.18.34".into(),
            target: Target::LINUX_X64,
            cache_path: "/c/opencode".into(),
        });
        assert!(line.contains("opencode-linux-x64@1.18.34"), "{line}");
        assert!(line.contains("linux-x64"), "{line}");
        assert!(line.contains("one-time"), "{line}");
    }
}
