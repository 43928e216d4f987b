//! What a log record is, and where records go: the caller's `logger` (a [`LogSink`] the binding
//! provides) or JSON lines on stderr.

use std::io::Write as _;

use serde::Serialize;

/// One structured record, as `logger` callbacks and stderr receive it. Fields that do not apply
/// are `None` and left out.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    /// Severity: `error`, `warn`, `info`, `debug` or `trace`.
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
    pub code: Option<String>,
    /// The error message with its cause (failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where records go. Must not block: returns `false` when it dropped the record (a full queue).
pub trait LogSink: Send + Sync {
    /// Takes one record.
    fn write(&self, record: LogRecord) -> bool;
}

/// JSON lines on stderr (when no `logger` is given).
pub struct StderrSink;

impl LogSink for StderrSink {
    fn write(&self, record: LogRecord) -> bool {
        if let Ok(mut line) = serde_json::to_vec(&record) {
            line.push(b'\n');
            // A closed stderr must not break publishing.
            let _ = std::io::stderr().lock().write_all(&line);
        }
        true
    }
}

/// `Display`s ids joined by `,`, for the `event_ids` field (built only when the record is).
pub struct Joined<'a, I>(pub &'a [I]);

impl<I: AsRef<str>> std::fmt::Display for Joined<'_, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(s.as_ref())?;
        }
        Ok(())
    }
}
