//! The dashboard's model: a pure value updated from the supervisor's [`ServiceEvent`]s, the
//! service table, the pending approvals and the person's actions. No I/O: the view draws it, the
//! app loop feeds it, the tests drive it directly.
//!
//! Threat addressed: unbounded memory. Hours of child output must not grow the orchestrator
//! (whose whole budget is about 15 MB): the log ring keeps at most [`LOG_MAX_LINES`] lines and
//! [`LOG_MAX_BYTES`] bytes, each line cut to [`LINE_MAX_BYTES`]. Every line stored here was
//! redacted by the caller with the run's redactor; the model never sees a raw secret from a log.

use std::collections::VecDeque;
use std::time::Duration;

use crate::logs::Level;
use crate::supervisor::{Instance, ServiceEvent, ServiceState, ServiceTable};

/// Most lines the log ring keeps.
pub const LOG_MAX_LINES: usize = 5_000;
/// Most bytes of text the log ring keeps.
pub const LOG_MAX_BYTES: usize = 2 * 1024 * 1024;
/// Longest line kept; the rest is cut and marked with `…`.
pub const LINE_MAX_BYTES: usize = 400;
/// How long a toast stays.
pub const TOAST_FOR: Duration = Duration::from_millis(2500);

/// One line of the unified log as the dashboard keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub service: &'static str,
    pub level: Level,
    pub text: String,
}

/// A bounded ring of log lines (by count and by bytes).
#[derive(Debug, Default)]
pub struct LogRing {
    lines: VecDeque<LogLine>,
    bytes: usize,
    /// Lines pushed in total (also the ones since dropped), to keep a scroll position stable.
    pushed: u64,
}

impl LogRing {
    /// Adds a line (cut to [`LINE_MAX_BYTES`]), dropping the oldest beyond the bounds.
    pub fn push(&mut self, service: &'static str, level: Level, text: &str) {
        let text = truncate(text.trim_end_matches(['\r', '\n']), LINE_MAX_BYTES);
        self.bytes += text.len();
        self.lines.push_back(LogLine {
            service,
            level,
            text,
        });
        self.pushed += 1;
        while self.lines.len() > LOG_MAX_LINES || self.bytes > LOG_MAX_BYTES {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.text.len(),
                None => break,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Bytes of text held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Lines pushed since the start (monotonic).
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &LogLine> {
        self.lines.iter()
    }
}

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Which services the log view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceFilter {
    #[default]
    All,
    Only(&'static str),
}

/// The lowest level the log view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LevelFilter {
    #[default]
    All,
    AtLeast(Level),
}

impl LevelFilter {
    fn admits(self, level: Level) -> bool {
        match self {
            LevelFilter::All => true,
            LevelFilter::AtLeast(min) => level >= min,
        }
    }

    fn next(self) -> LevelFilter {
        match self {
            LevelFilter::All => LevelFilter::AtLeast(Level::Info),
            LevelFilter::AtLeast(Level::Debug | Level::Info) => LevelFilter::AtLeast(Level::Warn),
            LevelFilter::AtLeast(Level::Warn) => LevelFilter::AtLeast(Level::Error),
            LevelFilter::AtLeast(Level::Error) => LevelFilter::All,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            LevelFilter::All => "all",
            LevelFilter::AtLeast(Level::Debug) => "debug+",
            LevelFilter::AtLeast(Level::Info) => "info+",
            LevelFilter::AtLeast(Level::Warn) => "warn+",
            LevelFilter::AtLeast(Level::Error) => "error",
        }
    }
}

/// A pending approval as the dashboard shows it (from `GET /approvals`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: String,
    pub action: String,
    pub summary: String,
    pub paths: Vec<String>,
    /// Who asked, e.g. `remote collaborator` or `host`.
    pub who: String,
}

/// Which panel the arrow keys move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Focus {
    #[default]
    Services,
    Approvals,
    Logs,
}

/// A modal over the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modal {
    Help,
    /// Quit needs a yes: `reason` says what would be interrupted.
    ConfirmQuit {
        reason: String,
    },
    /// Typing a search; Enter applies, Esc cancels.
    Search {
        draft: String,
    },
}

/// Everything the dashboard shows.
#[derive(Debug, Default)]
pub struct Model {
    pub services: ServiceTable,
    pub logs: LogRing,
    pub approvals: Vec<Approval>,
    /// Whether the approvals could be read (`None` before the first answer).
    pub approvals_error: Option<String>,
    pub focus: Focus,
    pub selected_service: usize,
    pub selected_approval: usize,
    pub service_filter: ServiceFilter,
    pub level_filter: LevelFilter,
    /// Case-insensitive text the log view must contain (empty: no search).
    pub search: String,
    /// Follow the newest line; off when the person scrolls up.
    pub follow: bool,
    /// Lines scrolled up from the newest matching line (when not following).
    pub scroll: usize,
    /// Show secrets in the connect panel.
    pub reveal: bool,
    pub modal: Option<Modal>,
    /// A short message and when it was shown (in ticks of the app's clock).
    pub toast: Option<(String, std::time::Instant)>,
    /// Log events the dashboard skipped because it fell behind a flood.
    pub skipped: u64,
    /// The log view shows the logs full screen.
    pub logs_full: bool,
}

impl Model {
    pub fn new() -> Model {
        Model {
            follow: true,
            ..Model::default()
        }
    }

    /// Applies one supervisor event. `redact` is the run's redactor (the log stream's).
    pub fn apply(&mut self, event: &ServiceEvent, redact: &dyn Fn(&str) -> String) {
        match event {
            ServiceEvent::Log { service, line, .. } => {
                let line = line.trim_end_matches(['\r', '\n']);
                if line.trim().is_empty() {
                    return;
                }
                let level = crate::logs::child_level(line);
                self.logs.push(service, level, &redact(line));
            }
            other => {
                if let Some((service, level, text)) = lifecycle_line(other) {
                    self.logs.push(service, level, &redact(&text));
                }
            }
        }
    }

    /// One of the orchestrator's own records (already redacted by the sink).
    pub fn orchestrator(&mut self, level: Level, text: &str) {
        self.logs.push(crate::logs::ORCHESTRATOR, level, text);
    }

    /// Notes that `n` events were skipped (the dashboard fell behind a flood).
    pub fn lagged(&mut self, n: u64) {
        self.skipped += n;
        self.logs.push(
            crate::logs::ORCHESTRATOR,
            Level::Warn,
            &format!("dashboard skipped {n} log events (flood); the log stream has them all"),
        );
    }

    /// The log lines the view shows (filters and search applied), oldest first.
    pub fn visible_logs(&self) -> Vec<&LogLine> {
        let needle = self.search.to_lowercase();
        self.logs
            .iter()
            .filter(|l| match self.service_filter {
                ServiceFilter::All => true,
                ServiceFilter::Only(s) => l.service == s,
            })
            .filter(|l| self.level_filter.admits(l.level))
            .filter(|l| needle.is_empty() || l.text.to_lowercase().contains(&needle))
            .collect()
    }

    pub fn cycle_service_filter(&mut self) {
        let names: Vec<&'static str> = std::iter::once(crate::logs::ORCHESTRATOR)
            .chain(self.services.services.iter().map(|s| s.name))
            .collect();
        self.service_filter = match self.service_filter {
            ServiceFilter::All => names
                .first()
                .map_or(ServiceFilter::All, |n| ServiceFilter::Only(n)),
            ServiceFilter::Only(cur) => match names.iter().position(|n| *n == cur) {
                Some(i) if i + 1 < names.len() => ServiceFilter::Only(names[i + 1]),
                _ => ServiceFilter::All,
            },
        };
    }

    pub fn cycle_level_filter(&mut self) {
        self.level_filter = self.level_filter.next();
    }

    /// Scrolls the log view up (`up` > 0) or down; scrolling up stops following.
    pub fn scroll_logs(&mut self, delta: isize) {
        let max = self.visible_logs().len().saturating_sub(1);
        if delta > 0 {
            self.follow = false;
            self.scroll = (self.scroll + delta.unsigned_abs()).min(max);
        } else {
            self.scroll = self.scroll.saturating_sub(delta.unsigned_abs());
            if self.scroll == 0 {
                self.follow = true;
            }
        }
    }

    pub fn toggle_follow(&mut self) {
        self.follow = !self.follow;
        if self.follow {
            self.scroll = 0;
        }
    }

    /// Moves the selection of the focused panel.
    pub fn move_selection(&mut self, down: bool) {
        let (sel, len) = match self.focus {
            Focus::Services => (&mut self.selected_service, self.services.services.len()),
            Focus::Approvals => (&mut self.selected_approval, self.approvals.len()),
            Focus::Logs => {
                self.scroll_logs(if down { -1 } else { 1 });
                return;
            }
        };
        if len == 0 {
            *sel = 0;
        } else if down {
            *sel = (*sel + 1).min(len - 1);
        } else {
            *sel = sel.saturating_sub(1);
        }
    }

    pub fn cycle_focus(&mut self) {
        self.focus = match self.focus {
            Focus::Services if !self.approvals.is_empty() => Focus::Approvals,
            Focus::Services | Focus::Approvals => Focus::Logs,
            Focus::Logs => Focus::Services,
        };
    }

    /// Replaces the pending approvals (keeping the selection on the same request if it stays).
    pub fn set_approvals(&mut self, approvals: Vec<Approval>) {
        let selected = self
            .approvals
            .get(self.selected_approval)
            .map(|a| a.id.clone());
        self.approvals = approvals;
        self.approvals_error = None;
        self.selected_approval = selected
            .and_then(|id| self.approvals.iter().position(|a| a.id == id))
            .unwrap_or(0)
            .min(self.approvals.len().saturating_sub(1));
        if self.approvals.is_empty() && self.focus == Focus::Approvals {
            self.focus = Focus::Services;
        }
    }

    pub fn selected_approval(&self) -> Option<&Approval> {
        self.approvals.get(self.selected_approval)
    }

    pub fn selected_service_name(&self) -> Option<&'static str> {
        self.services
            .services
            .get(self.selected_service)
            .map(|s| s.name)
    }

    pub fn toast(&mut self, text: impl Into<String>, now: std::time::Instant) {
        self.toast = Some((text.into(), now));
    }

    /// Drops a toast older than [`TOAST_FOR`]; whether anything changed.
    pub fn expire_toast(&mut self, now: std::time::Instant) -> bool {
        if let Some((_, at)) = &self.toast
            && now.duration_since(*at) >= TOAST_FOR
        {
            self.toast = None;
            return true;
        }
        false
    }

    /// Why quitting needs a confirmation, if it does (an approval waits, or opencode is busy).
    pub fn quit_blocker(&self, opencode_busy: bool) -> Option<String> {
        if !self.approvals.is_empty() {
            let n = self.approvals.len();
            return Some(format!(
                "{n} approval{} pending: the waiting write{} will fail",
                if n == 1 { " is" } else { "s are" },
                if n == 1 { "" } else { "s" }
            ));
        }
        if opencode_busy {
            return Some("opencode is working on a session: it will be interrupted".into());
        }
        if self
            .services
            .services
            .iter()
            .any(|s| matches!(s.state, ServiceState::Restarting { .. }))
        {
            return Some("a service is restarting".into());
        }
        None
    }
}

/// The log line the dashboard shows for a lifecycle event (the log stream's wording).
fn lifecycle_line(event: &ServiceEvent) -> Option<(&'static str, Level, String)> {
    use ServiceEvent::*;
    Some(match event {
        Spawned {
            service,
            instance: Instance::Process { pid },
        } => (*service, Level::Info, format!("Process spawned pid={pid}")),
        Spawned {
            service,
            instance: Instance::Container { id, .. },
        } => (
            *service,
            Level::Info,
            format!("Sandbox started container={id}"),
        ),
        StartFailed { service, error } => {
            (*service, Level::Error, format!("Failed to start: {error}"))
        }
        WaitingForHealth { service, url } => (
            *service,
            Level::Info,
            format!("Waiting for health url={url}"),
        ),
        StillWaiting {
            service,
            last_error,
        } => (
            *service,
            Level::Info,
            format!("Still waiting for health: {last_error}"),
        ),
        Healthy {
            service, latency, ..
        } => (
            *service,
            Level::Info,
            format!("Healthy probe={}", format_latency(*latency)),
        ),
        Unhealthy { service, reason } => (
            *service,
            Level::Error,
            format!("Did not become healthy: {reason}"),
        ),
        Exited {
            service,
            status,
            expected,
            ..
        } => (
            *service,
            if *expected { Level::Info } else { Level::Error },
            if *expected {
                format!("Process exited ({status})")
            } else {
                format!("Process exited unexpectedly ({status})")
            },
        ),
        Restarting {
            service,
            attempt,
            max,
            delay,
        } => (
            *service,
            Level::Warn,
            format!(
                "Restarting after crash ({attempt}/{max}, in {} ms)",
                delay.as_millis()
            ),
        ),
        RestartRequested { service } => (*service, Level::Info, "Restart requested".into()),
        GaveUp {
            service,
            reason,
            required,
        } => (
            *service,
            if *required { Level::Error } else { Level::Warn },
            format!("Gave up: {reason}"),
        ),
        // The log stream writes it as the orchestrator's record, which reaches the dashboard
        // through the sink's tap.
        ShuttingDown { .. } => return None,
        StopTimedOut { service, .. } => (
            *service,
            Level::Warn,
            "Did not stop within the grace period; sending SIGKILL".into(),
        ),
        StopFailed { service, error, .. } => (
            *service,
            Level::Warn,
            format!("Could not stop the sandbox: {error}"),
        ),
        Log { .. } => return None,
    })
}

/// `12 ms`, `1.2 s`.
pub fn format_latency(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// `45s`, `3m 05s`, `2h 07m`.
pub fn format_uptime(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s / 60) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Stream;

    fn log(line: &str) -> ServiceEvent {
        ServiceEvent::Log {
            service: "opencode",
            stream: Stream::Stdout,
            pid: Some(1),
            line: line.into(),
        }
    }

    fn same(s: &str) -> String {
        s.to_string()
    }

    #[test]
    fn the_ring_is_bounded_by_lines_and_bytes() {
        let mut m = Model::new();
        for i in 0..(LOG_MAX_LINES * 3) {
            m.apply(&log(&format!("line {i}")), &same);
        }
        assert_eq!(m.logs.len(), LOG_MAX_LINES);
        assert_eq!(m.logs.pushed(), (LOG_MAX_LINES * 3) as u64);
        // Long lines: cut, and the byte bound holds.
        let long = "x".repeat(10_000);
        for _ in 0..LOG_MAX_LINES {
            m.apply(&log(&long), &same);
        }
        assert!(m.logs.bytes() <= LOG_MAX_BYTES);
        assert!(
            m.logs
                .iter()
                .all(|l| l.text.len() <= LINE_MAX_BYTES + '…'.len_utf8())
        );
    }

    #[test]
    fn lines_are_redacted_by_the_given_redactor() {
        let mut m = Model::new();
        m.apply(&log("token s3cret-value here"), &|s: &str| {
            s.replace("s3cret-value", "[REDACTED]")
        });
        let l = m.logs.iter().next().unwrap();
        assert_eq!(l.text, "token [REDACTED] here");
    }

    #[test]
    fn filters_search_and_follow() {
        let mut m = Model::new();
        m.apply(&log("hello world"), &same);
        m.apply(&log("level=WARN something odd"), &same);
        m.apply(
            &ServiceEvent::Spawned {
                service: "openwork-server",
                instance: Instance::Process { pid: 5 },
            },
            &same,
        );
        m.services.apply(&ServiceEvent::Spawned {
            service: "opencode",
            instance: Instance::Process { pid: 1 },
        });
        assert_eq!(m.visible_logs().len(), 3);
        m.cycle_level_filter(); // info+
        m.cycle_level_filter(); // warn+
        assert_eq!(m.visible_logs().len(), 1);
        m.level_filter = LevelFilter::All;
        m.cycle_service_filter(); // orchestrator
        m.cycle_service_filter(); // opencode
        assert_eq!(m.service_filter, ServiceFilter::Only("opencode"));
        assert_eq!(m.visible_logs().len(), 2);
        m.search = "WORLD".into();
        assert_eq!(m.visible_logs().len(), 1);
        m.search.clear();
        m.scroll_logs(1);
        assert!(!m.follow);
        m.scroll_logs(-1);
        assert!(m.follow);
    }

    #[test]
    fn quit_needs_confirmation_when_an_approval_waits_or_opencode_is_busy() {
        let mut m = Model::new();
        assert_eq!(m.quit_blocker(false), None);
        assert!(m.quit_blocker(true).unwrap().contains("opencode"));
        m.set_approvals(vec![Approval {
            id: "a1".into(),
            action: "write".into(),
            summary: "s".into(),
            paths: vec![],
            who: "remote".into(),
        }]);
        assert!(
            m.quit_blocker(false)
                .unwrap()
                .contains("1 approval is pending")
        );
    }

    #[test]
    fn approvals_keep_the_selection_on_the_same_request() {
        let a = |id: &str| Approval {
            id: id.into(),
            action: "w".into(),
            summary: String::new(),
            paths: vec![],
            who: String::new(),
        };
        let mut m = Model::new();
        m.set_approvals(vec![a("1"), a("2"), a("3")]);
        m.focus = Focus::Approvals;
        m.move_selection(true);
        assert_eq!(m.selected_approval().unwrap().id, "2");
        m.set_approvals(vec![a("0"), a("2")]);
        assert_eq!(m.selected_approval().unwrap().id, "2");
        m.set_approvals(vec![]);
        assert_eq!(m.focus, Focus::Services);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_uptime(Duration::from_secs(45)), "45s");
        assert_eq!(format_uptime(Duration::from_secs(185)), "3m 05s");
        assert_eq!(format_uptime(Duration::from_secs(7620)), "2h 07m");
        assert_eq!(format_latency(Duration::from_millis(12)), "12 ms");
    }
}
