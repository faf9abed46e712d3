//! The unified log stream: the orchestrator's own events and every service's output lines, in
//! one place, one line per record.
//!
//! Threat addressed: secrets leaking into logs. Every line — ours and the children's, pretty or
//! JSON, even child lines that already are JSON records — passes the [`Redactor`], which removes
//! the run's known secret *values* (not only values behind known key names: the original leaked
//! the opencode user name that way) plus the usual `Bearer …`/`token=…` shapes.
//!
//! Pretty: `[component] LEVEL message key=value…` (level omitted for INFO, colour optional).
//! JSON: one OpenTelemetry-shaped object per line (`timeUnixNano`, `severityText`,
//! `severityNumber`, `body`, `attributes` with `run.id` and `service.component`, `resource`
//! with `service.name`).

use std::io::Write;
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use regex::Regex;
use serde_json::{Map, Value, json};

use crate::cli::LogFormat;

/// Component name of the orchestrator's own events.
pub const ORCHESTRATOR: &str = "openwork-orchestrator";

/// Severity of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn text(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
    fn number(self) -> u8 {
        match self {
            Level::Debug => 5,
            Level::Info => 9,
            Level::Warn => 13,
            Level::Error => 17,
        }
    }
    fn color(self) -> &'static str {
        match self {
            Level::Debug => "\x1b[90m",
            Level::Info => "",
            Level::Warn => "\x1b[33m",
            Level::Error => "\x1b[31m",
        }
    }
}

/// Which pipe a child line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Removes secrets from text: known values first, then well-known shapes.
pub struct Redactor {
    values: Vec<String>,
    patterns: Vec<Regex>,
}

const REDACTED: &str = "[REDACTED]";

impl Redactor {
    /// A redactor that knows these secret values (values shorter than 6 characters are ignored:
    /// they would redact ordinary words).
    pub fn new(values: Vec<String>) -> Redactor {
        let mut values: Vec<String> = values.into_iter().filter(|v| v.len() >= 6).collect();
        // Longest first, so a secret that contains another is removed whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let sources = [
            r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+",
            r"\b((?:OPENWORK|OPENCODE|DEN)_[A-Z0-9_]*(?:TOKEN|PASSWORD|USERNAME|AUTHORIZATION)[A-Z0-9_]*)=\S+",
            r#"(?i)\b(token|hostToken|ownerToken|collaboratorToken|controlToken|password|authorization|opencodePassword|opencodeUsername|botToken|appToken)("?\s*[:=]\s*"?)[^\s",}&]+"#,
            r"(--(?:token|host-token|openwork-token|openwork-host-token|opencode-password|opencode-username)[= ])\S+",
            r"([?&]auth_token=)[^&\s]+",
        ];
        let patterns = sources.iter().filter_map(|s| Regex::new(s).ok()).collect();
        Redactor { values, patterns }
    }

    /// `text` with every secret replaced by `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        if let [bearer, env, key, flag, query] = self.patterns.as_slice() {
            out = bearer.replace_all(&out, "$1 [REDACTED]").into_owned();
            out = env.replace_all(&out, "$1=[REDACTED]").into_owned();
            out = key.replace_all(&out, "$1$2[REDACTED]").into_owned();
            out = flag.replace_all(&out, "$1[REDACTED]").into_owned();
            out = query.replace_all(&out, "$1[REDACTED]").into_owned();
        }
        out
    }

    fn redact_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.redact_value(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| {
                        let sensitive = is_sensitive_key(k);
                        let val = if sensitive && !x.is_null() {
                            Value::String(REDACTED.into())
                        } else {
                            self.redact_value(x)
                        };
                        (k.clone(), val)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

fn is_sensitive_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["token", "password", "username", "authorization", "secret"]
        .iter()
        .any(|s| k.contains(s))
}

/// Where records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    /// With `--json`, stdout carries exactly one JSON document; logs go here.
    Stderr,
    /// Nothing is printed (the dashboard owns the screen and takes the events itself).
    Silent,
}

/// The shared writer of the unified stream. Cheap to share behind an `Arc`.
pub struct LogSink {
    format: LogFormat,
    color: bool,
    verbose: bool,
    run_id: String,
    host_name: String,
    output: Output,
    redactor: RwLock<Redactor>,
    lock: Mutex<()>,
    /// Also receives the orchestrator's own records, redacted (the dashboard's log panel).
    tap: RwLock<Option<Tap>>,
}

/// A receiver of the orchestrator's own records: level and redacted text (message and
/// attributes, no component tag).
pub type Tap = Box<dyn Fn(Level, String) + Send + Sync>;

impl LogSink {
    pub fn new(
        format: LogFormat,
        color: bool,
        verbose: bool,
        run_id: String,
        output: Output,
        secrets: Vec<String>,
    ) -> LogSink {
        let host_name = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        LogSink {
            format,
            color: color && format == LogFormat::Pretty,
            verbose,
            run_id,
            host_name,
            output,
            redactor: RwLock::new(Redactor::new(secrets)),
            lock: Mutex::new(()),
            tap: RwLock::new(None),
        }
    }

    /// Adds a secret learned during the run (e.g. the owner token).
    pub fn add_secret(&self, value: &str) {
        if let Ok(mut r) = self.redactor.write() {
            let mut values = std::mem::take(&mut r.values);
            values.push(value.to_string());
            *r = Redactor::new(values);
        }
    }

    /// Redacts `text` with the run's redactor.
    pub fn redact(&self, text: &str) -> String {
        match self.redactor.read() {
            Ok(r) => r.redact(text),
            Err(_) => REDACTED.to_string(),
        }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// An event of `component` with attributes (a JSON object or `Value::Null`).
    pub fn event(&self, level: Level, component: &str, message: &str, attrs: Value) {
        if level == Level::Debug && !self.verbose {
            return;
        }
        if component == ORCHESTRATOR
            && let Ok(tap) = self.tap.read()
            && let Some(tap) = tap.as_ref()
        {
            tap(level, self.redact(&with_attrs(message, &attrs)));
        }
        let line = match self.format {
            LogFormat::Pretty => self.pretty_line(level, component, message, &attrs),
            LogFormat::Json => self.json_line(level, component, message, attrs),
        };
        self.write_line(&line);
    }

    /// Sends the orchestrator's own records to `tap` from now on (redacted like the stream).
    pub fn set_tap(&self, tap: Tap) {
        if let Ok(mut slot) = self.tap.write() {
            *slot = Some(tap);
        }
    }

    pub fn info(&self, component: &str, message: &str, attrs: Value) {
        self.event(Level::Info, component, message, attrs);
    }
    pub fn warn(&self, component: &str, message: &str, attrs: Value) {
        self.event(Level::Warn, component, message, attrs);
    }
    pub fn error(&self, component: &str, message: &str, attrs: Value) {
        self.event(Level::Error, component, message, attrs);
    }
    pub fn debug(&self, component: &str, message: &str, attrs: Value) {
        self.event(Level::Debug, component, message, attrs);
    }

    /// One output line of a child process.
    pub fn child_line(&self, component: &str, stream: Stream, pid: Option<u32>, line: &str) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return;
        }
        if self.format == LogFormat::Json
            && let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(line)
            && obj.get("timeUnixNano").is_some_and(Value::is_string)
            && obj.get("severityText").is_some_and(Value::is_string)
        {
            // Already one of our records (openwork-server's own JSON log): pass it through,
            // redacted like everything else.
            let redacted = match self.redactor.read() {
                Ok(r) => r.redact_value(&Value::Object(obj)),
                Err(_) => return,
            };
            self.write_line(&redacted.to_string());
            return;
        }
        let level = child_level(line);
        let attrs = json!({ "stream": stream.as_str(), "pid": pid });
        match self.format {
            LogFormat::Pretty => {
                let text = self.redact(line);
                let tag = self.tag(component);
                let lvl = self.level_tag(level);
                self.write_line(&format!("{tag} {lvl}{text}"));
            }
            LogFormat::Json => {
                let line = self.json_line(level, component, line, attrs);
                self.write_line(&line);
            }
        }
    }

    fn tag(&self, component: &str) -> String {
        if !self.color {
            return format!("[{component}]");
        }
        let c = match component {
            "opencode" => "\x1b[36m",
            "openwork-server" => "\x1b[32m",
            "opencode-router" => "\x1b[35m",
            _ => "\x1b[90m",
        };
        format!("{c}[{component}]\x1b[0m")
    }

    fn level_tag(&self, level: Level) -> String {
        if level == Level::Info {
            return String::new();
        }
        if self.color {
            format!("{}{}\x1b[0m ", level.color(), level.text())
        } else {
            format!("{} ", level.text())
        }
    }

    fn pretty_line(&self, level: Level, component: &str, message: &str, attrs: &Value) -> String {
        let text = format!(
            "{} {}{}",
            self.tag(component),
            self.level_tag(level),
            with_attrs(message, attrs)
        );
        self.redact(&text)
    }

    fn json_line(&self, level: Level, component: &str, message: &str, attrs: Value) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut attributes = Map::new();
        attributes.insert("run.id".into(), Value::String(self.run_id.clone()));
        attributes.insert("process.pid".into(), json!(std::process::id()));
        attributes.insert("service.component".into(), Value::String(component.into()));
        if let Value::Object(map) = attrs {
            for (k, v) in map {
                if !v.is_null() {
                    attributes.insert(k, v);
                }
            }
        }
        let mut resource = Map::new();
        resource.insert("service.name".into(), json!(ORCHESTRATOR));
        resource.insert("service.instance.id".into(), json!(self.run_id));
        resource.insert("service.version".into(), json!(env!("CARGO_PKG_VERSION")));
        if !self.host_name.is_empty() {
            resource.insert("host.name".into(), json!(self.host_name));
        }
        let record = json!({
            "timeUnixNano": now.to_string(),
            "severityText": level.text(),
            "severityNumber": level.number(),
            "body": message,
            "attributes": Value::Object(attributes),
            "resource": Value::Object(resource),
        });
        match self.redactor.read() {
            Ok(r) => r.redact_value(&record).to_string(),
            Err(_) => String::new(),
        }
    }

    fn write_line(&self, line: &str) {
        let _guard = self.lock.lock();
        match self.output {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            Output::Stderr => {
                let mut out = std::io::stderr().lock();
                let _ = writeln!(out, "{line}");
            }
            Output::Silent => {}
        }
    }
}

/// `message key=value…` (values under sensitive keys replaced; not yet redacted by value).
fn with_attrs(message: &str, attrs: &Value) -> String {
    let mut text = message.to_string();
    if let Value::Object(map) = attrs {
        for (k, v) in map {
            let v = match v {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let v = if is_sensitive_key(k) {
                REDACTED.to_string()
            } else {
                v
            };
            text.push_str(&format!(" {k}={v}"));
        }
    }
    text
}

/// The level of a child's line, from the level words it carries (logfmt `level=WARN`, a leading
/// `ERROR`), INFO otherwise — stderr is not an error by itself.
pub fn child_level(line: &str) -> Level {
    let upper_prefix: String = line.chars().take(96).collect();
    for (needle, level) in [
        ("level=ERROR", Level::Error),
        ("level=WARN", Level::Warn),
        ("level=DEBUG", Level::Debug),
    ] {
        if upper_prefix.contains(needle) {
            return if level == Level::Debug {
                Level::Info
            } else {
                level
            };
        }
    }
    let head = line.trim_start();
    if head.starts_with("ERROR") || head.starts_with("Error:") {
        Level::Error
    } else if head.starts_with("WARN") || head.starts_with("Warning:") {
        Level::Warn
    } else {
        Level::Info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_known_values_and_shapes() {
        let r = Redactor::new(vec!["s3cr3t-value".into(), "abc".into()]);
        assert_eq!(r.redact("x s3cr3t-value y"), "x [REDACTED] y");
        assert_eq!(r.redact("got Bearer abc.def"), "got Bearer [REDACTED]");
        assert!(
            !r.redact("Authorization: Bearer abc.def")
                .contains("abc.def")
        );
        assert_eq!(
            r.redact("OPENWORK_HOST_TOKEN=xyz rest"),
            "OPENWORK_HOST_TOKEN=[REDACTED] rest"
        );
        assert_eq!(r.redact(r#"{"token":"zzz"}"#), r#"{"token":"[REDACTED]"}"#);
        assert_eq!(r.redact("token=abc123 ok"), "token=[REDACTED] ok");
        assert_eq!(
            r.redact("--host-token qq1 --x"),
            "--host-token [REDACTED] --x"
        );
        assert_eq!(
            r.redact("GET /event?auth_token=Zm9v&x=1"),
            "GET /event?auth_token=[REDACTED]&x=1"
        );
        // Short values would redact ordinary words; they are ignored.
        assert_eq!(r.redact("abc"), "abc");
    }

    #[test]
    fn json_values_under_sensitive_keys_are_redacted() {
        let r = Redactor::new(vec![]);
        let v = r.redact_value(&json!({"opencode": {"username": "u", "url": "http://x"}}));
        assert_eq!(v["opencode"]["username"], "[REDACTED]");
        assert_eq!(v["opencode"]["url"], "http://x");
    }

    #[test]
    fn child_levels_come_from_the_line() {
        assert_eq!(child_level("timestamp=1 level=WARN message=x"), Level::Warn);
        assert_eq!(
            child_level("opencode server listening on http://x"),
            Level::Info
        );
        assert_eq!(child_level("Error: Unexpected error"), Level::Error);
    }

    #[test]
    fn the_tap_gets_the_orchestrators_records_redacted() {
        let sink = LogSink::new(
            LogFormat::Pretty,
            false,
            false,
            "run-1".into(),
            Output::Silent,
            vec!["topsecretvalue".into()],
        );
        let got = std::sync::Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        sink.set_tap(Box::new(move |level, text| {
            g.lock().unwrap().push((level, text))
        }));
        sink.warn(
            ORCHESTRATOR,
            "port busy topsecretvalue",
            json!({"port": 1, "token": "x"}),
        );
        sink.info("opencode", "not the orchestrator", Value::Null);
        let got = got.lock().unwrap();
        assert_eq!(
            *got,
            vec![(
                Level::Warn,
                "port busy [REDACTED] port=1 token=[REDACTED]".to_string()
            )]
        );
    }

    #[test]
    fn json_records_have_otel_names() {
        let sink = LogSink::new(
            LogFormat::Json,
            false,
            false,
            "run-1".into(),
            Output::Silent,
            vec!["topsecretvalue".into()],
        );
        let line = sink.json_line(
            Level::Warn,
            "opencode",
            "hello topsecretvalue",
            json!({"a": 1}),
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["severityText"], "WARN");
        assert_eq!(v["severityNumber"], 13);
        assert_eq!(v["body"], "hello [REDACTED]");
        assert_eq!(v["attributes"]["run.id"], "run-1");
        assert_eq!(v["attributes"]["service.component"], "opencode");
        assert_eq!(v["attributes"]["a"], 1);
        assert_eq!(v["resource"]["service.name"], ORCHESTRATOR);
        assert!(v["timeUnixNano"].as_str().unwrap().parse::<u128>().is_ok());
    }
}
