//! Structured log records: one per published event or batch, one per failure. Records go to a
//! sink (JSON lines on stderr by default, or the caller's `logger` callback, wired in `lib.rs`),
//! filtered by level before anything is built, so a level that is off costs one comparison.

use std::io::Write;
use std::sync::Arc;

use serde::Serialize;

use crate::envelope::{iso_timestamp_ms, now_ms};

/// Severity, ordered from `Off` (nothing) to `Trace` (everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing is logged.
    Off,
    /// Failures.
    Error,
    /// Degradations (circuit opened, retries).
    Warn,
    /// Every publish.
    Info,
    /// Connection lifecycle.
    Debug,
    /// Everything.
    Trace,
}

impl Level {
    /// Parses `off|error|warn|info|debug|trace` (case-insensitive).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "off" | "none" | "silent" => Level::Off,
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            "trace" => Level::Trace,
            _ => return None,
        })
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

/// One structured record. Fields that do not apply are `None` and left out.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    /// Severity.
    pub level: &'static str,
    /// ISO time of the record.
    pub time: String,
    /// What happened.
    pub msg: String,
    /// The event id (single publish).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The event type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The correlation id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The stream entry id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    /// Number of events (batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The event ids (batch), in input order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_ids: Option<Vec<String>>,
    /// The error code (failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// The error message with its cause (failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl LogRecord {
    /// A record at `level` saying `msg`, stamped now.
    pub fn new(level: Level, msg: impl Into<String>) -> Self {
        LogRecord {
            level: level.as_str(),
            time: iso_timestamp_ms(now_ms()),
            msg: msg.into(),
            ..Default::default()
        }
    }
}

/// Where records go. Implementations must not block the publisher for long.
pub trait LogSink: Send + Sync {
    /// Takes one record.
    fn write(&self, record: LogRecord);
}

/// JSON lines on stderr.
pub struct StderrSink;

impl LogSink for StderrSink {
    fn write(&self, record: LogRecord) {
        if let Ok(mut line) = serde_json::to_vec(&record) {
            line.push(b'\n');
            // A closed stderr must not break publishing.
            let _ = std::io::stderr().lock().write_all(&line);
        }
    }
}

/// A level filter in front of a sink.
#[derive(Clone)]
pub struct Logger {
    level: Level,
    sink: Arc<dyn LogSink>,
}

impl Logger {
    /// A logger that passes records at `level` or more severe to `sink`.
    pub fn new(level: Level, sink: Arc<dyn LogSink>) -> Self {
        Logger { level, sink }
    }

    /// Whether records at `level` are wanted; check before building one.
    #[inline]
    pub fn enabled(&self, level: Level) -> bool {
        level != Level::Off && level <= self.level
    }

    /// Sends `record` if its level is enabled.
    pub fn log(&self, level: Level, record: impl FnOnce() -> LogRecord) {
        if self.enabled(level) {
            self.sink.write(record());
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Collects records, for tests.
    #[derive(Default)]
    pub struct Collect(pub Mutex<Vec<LogRecord>>);
    impl LogSink for Collect {
        fn write(&self, record: LogRecord) {
            self.0.lock().unwrap().push(record);
        }
    }

    #[test]
    fn filter_by_level() {
        let sink = Arc::new(Collect::default());
        let log = Logger::new(Level::Warn, sink.clone());
        log.log(Level::Info, || panic!("must not be built"));
        log.log(Level::Error, || LogRecord::new(Level::Error, "boom"));
        assert_eq!(sink.0.lock().unwrap().len(), 1);
        let off = Logger::new(Level::Off, sink.clone());
        assert!(!off.enabled(Level::Error));
    }

    #[test]
    fn record_json_has_camel_case_fields() {
        let mut r = LogRecord::new(Level::Info, "event published");
        r.event_id = Some("e1".into());
        r.event_type = Some("a.b".into());
        r.stream_id = Some("1-0".into());
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["eventId"], "e1");
        assert_eq!(v["type"], "a.b");
        assert_eq!(v["streamId"], "1-0");
        assert_eq!(v["level"], "info");
        assert!(v.get("count").is_none());
    }

    #[test]
    fn parse_levels() {
        assert_eq!(Level::parse("INFO"), Some(Level::Info));
        assert_eq!(Level::parse("off"), Some(Level::Off));
        assert_eq!(Level::parse("loud"), None);
    }
}
