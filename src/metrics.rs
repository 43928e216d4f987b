//! The publisher's metrics, always on: atomics updated where things happen, read as a
//! [`Snapshot`] (for `stats()` and OpenTelemetry) or as Prometheus text (for `metrics()`).
//! Names follow the OpenTelemetry messaging semantic conventions where one applies
//! (`messaging.client.sent.messages`, `messaging.client.operation.duration`); the rest are the
//! publisher's own, under `event_publisher.*`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

use crate::errors::Code;

/// The conventions' advisory buckets for `messaging.client.operation.duration` (seconds).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Buckets of a stage's duration (seconds): stages are sub-millisecond when all is well.
pub const STAGE_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Buckets of events per group.
pub const GROUP_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Every code, in the order of the per-code counters.
const CODES: [Code; 10] = [
    Code::InvalidEvent,
    Code::PayloadTooLarge,
    Code::Redis,
    Code::Database,
    Code::Timeout,
    Code::Closed,
    Code::Config,
    Code::CircuitOpen,
    Code::Overloaded,
    Code::EventIdConflict,
];

fn code_index(c: Code) -> usize {
    CODES.iter().position(|x| *x == c).unwrap_or(0)
}

/// The operations timed by `messaging.client.operation.duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `publish`.
    Publish = 0,
    /// `publishBatch`.
    PublishBatch = 1,
}

impl Operation {
    const ALL: [Operation; 2] = [Operation::Publish, Operation::PublishBatch];
    fn as_str(self) -> &'static str {
        match self {
            Operation::Publish => "publish",
            Operation::PublishBatch => "publishBatch",
        }
    }
}

/// The stages of a group write (see `group_write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// INSERT of the PENDING rows.
    InsertRows = 0,
    /// Waiting for the groups reserved before this one to append.
    WaitAppendOrder = 1,
    /// The script call that appends the entries.
    Append = 2,
    /// UPDATE of `stream_id` where an entry did not take its reserved ID.
    UpdateStreamId = 3,
    /// DELETE of the rows of a failed publish.
    Undo = 4,
}

impl Stage {
    const ALL: [Stage; 5] = [
        Stage::InsertRows,
        Stage::WaitAppendOrder,
        Stage::Append,
        Stage::UpdateStreamId,
        Stage::Undo,
    ];
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::InsertRows => "insert_rows",
            Stage::WaitAppendOrder => "wait_append_order",
            Stage::Append => "append",
            Stage::UpdateStreamId => "update_stream_id",
            Stage::Undo => "undo",
        }
    }
}

/// A histogram with fixed buckets: per-bucket counts (not cumulative), count and sum.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in millionths, so it fits an atomic integer.
    sum_micros: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these upper bounds.
    pub(crate) fn with_bounds(bounds: &'static [f64]) -> Self {
        Self::new(bounds)
    }

    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one value.
    #[cfg_attr(feature = "profiling", inline(never))]
    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add((v.max(0.0) * 1e6).round() as u64, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds.to_vec(),
            counts: self.counts.iter().map(|c| c.load(Relaxed)).collect(),
            count: self.count.load(Relaxed),
            sum: self.sum_micros.load(Relaxed) as f64 / 1e6,
        }
    }
}

/// A histogram's values: `counts[i]` counts values ≤ `bounds[i]` (and > the bound before);
/// the last count is above every bound.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds.
    pub bounds: Vec<f64>,
    /// Per-bucket counts, one more than `bounds`.
    pub counts: Vec<u64>,
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
}

/// The live metrics of one publisher.
pub struct Metrics {
    stream: String,
    sent_ok: AtomicU64,
    sent_failed: [AtomicU64; CODES.len()],
    duration: [Histogram; 2],
    group_events: Histogram,
    stages: Vec<Histogram>,
    retries: [AtomicU64; 5],
    undone: AtomicU64,
    not_reserved: AtomicU64,
}

impl Metrics {
    /// Metrics for a publisher writing to `stream`.
    pub fn new(stream: &str) -> Self {
        Metrics {
            stream: stream.to_string(),
            sent_ok: AtomicU64::new(0),
            sent_failed: Default::default(),
            duration: [
                Histogram::new(&DURATION_BUCKETS),
                Histogram::new(&DURATION_BUCKETS),
            ],
            group_events: Histogram::new(&GROUP_BUCKETS),
            stages: Stage::ALL
                .iter()
                .map(|_| Histogram::new(&STAGE_BUCKETS))
                .collect(),
            retries: Default::default(),
            undone: AtomicU64::new(0),
            not_reserved: AtomicU64::new(0),
        }
    }

    /// `n` messages sent, or refused with `code`.
    #[cfg_attr(feature = "profiling", inline(never))]
    pub fn sent(&self, n: usize, code: Option<Code>) {
        match code {
            None => &self.sent_ok,
            Some(c) => &self.sent_failed[code_index(c)],
        }
        .fetch_add(n as u64, Relaxed);
    }

    /// One `publish`/`publishBatch` call that was admitted, and how long it took.
    #[cfg_attr(feature = "profiling", inline(never))]
    pub fn operation(&self, op: Operation, took: Duration) {
        self.duration[op as usize].observe(took.as_secs_f64());
    }

    /// A group of `n` events was written.
    #[cfg_attr(feature = "profiling", inline(never))]
    pub fn group(&self, n: usize) {
        self.group_events.observe(n as f64);
    }

    /// A stage took `took`.
    #[cfg_attr(feature = "profiling", inline(never))]
    pub fn stage(&self, stage: Stage, took: Duration) {
        self.stages[stage as usize].observe(took.as_secs_f64());
    }

    /// A stage was tried again.
    #[cfg_attr(feature = "profiling", inline(never))]
    pub fn retry(&self, stage: Stage) {
        self.retries[stage as usize].fetch_add(1, Relaxed);
    }

    /// `n` events' rows were deleted after a failure.
    #[cfg_attr(feature = "profiling", inline(never))]
    pub fn undone(&self, n: usize) {
        self.undone.fetch_add(n as u64, Relaxed);
    }

    /// `n` entries did not take their reserved ID (their rows got a second statement).
    #[cfg_attr(feature = "profiling", inline(never))]
    pub fn not_reserved(&self, n: usize) {
        self.not_reserved.fetch_add(n as u64, Relaxed);
    }

    /// The values now; the gauges are read by the caller.
    pub fn snapshot(&self, gauges: Gauges) -> Snapshot {
        let mut failed = Vec::new();
        for (c, n) in CODES.iter().zip(&self.sent_failed) {
            let n = n.load(Relaxed);
            if n > 0 {
                failed.push(CodeCount {
                    code: c.as_str(),
                    count: n,
                });
            }
        }
        Snapshot {
            outbox: serde_json::Value::Null,
            outbox_prometheus: String::new(),
            stream: self.stream.clone(),
            sent_messages: self.sent_ok.load(Relaxed),
            failed_messages: failed,
            publish_duration: self.duration[0].snapshot(),
            publish_batch_duration: self.duration[1].snapshot(),
            group_events: self.group_events.snapshot(),
            stages: Stage::ALL
                .iter()
                .map(|s| StageSnapshot {
                    stage: s.as_str(),
                    duration: self.stages[*s as usize].snapshot(),
                    retries: self.retries[*s as usize].load(Relaxed),
                })
                .collect(),
            undone_events: self.undone.load(Relaxed),
            not_reserved_entries: self.not_reserved.load(Relaxed),
            in_flight_events: gauges.in_flight_events,
            in_flight_bytes: gauges.in_flight_bytes,
            circuit_state: gauges.circuit_state,
            dropped_log_records: gauges.dropped_log_records,
        }
    }
}

/// Values read at snapshot time rather than counted here.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Events admitted, not yet settled.
    pub in_flight_events: u64,
    /// Bytes held for them (counted against `maxInFlightBytes`).
    pub in_flight_bytes: u64,
    /// 0 closed, 1 half-open, 2 open.
    pub circuit_state: u8,
    /// Log records a full `logger` queue dropped.
    pub dropped_log_records: u64,
}

/// Messages that failed with one code.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CodeCount {
    /// `ERR_…`.
    pub code: &'static str,
    /// Messages.
    pub count: u64,
}

/// One stage's duration histogram and retries.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageSnapshot {
    /// The stage's name.
    pub stage: &'static str,
    /// Its durations, seconds.
    pub duration: HistogramSnapshot,
    /// How often it was tried again.
    pub retries: u64,
}

/// Every metric of a publisher at one moment (`stats()`, camelCase in JS).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// `messaging.destination.name`.
    pub stream: String,
    /// Messages written (`messaging.client.sent.messages` without `error.type`).
    pub sent_messages: u64,
    /// Messages that failed, by code (`error.type`).
    pub failed_messages: Vec<CodeCount>,
    /// `messaging.client.operation.duration` of `publish`.
    pub publish_duration: HistogramSnapshot,
    /// ... of `publishBatch`.
    pub publish_batch_duration: HistogramSnapshot,
    /// Events per group write.
    pub group_events: HistogramSnapshot,
    /// Per stage: durations and retries.
    pub stages: Vec<StageSnapshot>,
    /// Events whose rows were deleted after a failed write.
    pub undone_events: u64,
    /// Entries that did not take their reserved ID.
    pub not_reserved_entries: u64,
    /// Events admitted, not yet settled.
    pub in_flight_events: u64,
    /// Bytes held for them (counted against `maxInFlightBytes`).
    pub in_flight_bytes: u64,
    /// 0 closed, 1 half-open, 2 open.
    pub circuit_state: u8,
    /// Log records a full `logger` queue dropped.
    pub dropped_log_records: u64,
    /// The transactional outbox's values (`stats().outbox`), filled in by the publisher.
    pub outbox: serde_json::Value,
    /// The outbox's series in the Prometheus text, appended by [`Snapshot::prometheus`].
    #[serde(skip)]
    pub outbox_prometheus: String,
}

/// `messaging.system`: "redis" is not one of the conventions' well-known values; it is ours.
pub const MESSAGING_SYSTEM: &str = "redis";

impl Snapshot {
    /// Prometheus text exposition (format 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(8192);
        let dest = format!(
            "messaging_system=\"{MESSAGING_SYSTEM}\",messaging_destination_name=\"{}\"",
            escape(&self.stream)
        );
        let o = &mut out;
        header(
            o,
            "messaging_client_sent_messages_total",
            "counter",
            "Messages the publisher wrote (error_type set when it failed).",
        );
        let _ = writeln!(
            o,
            "messaging_client_sent_messages_total{{{dest}}} {}",
            self.sent_messages
        );
        for c in &self.failed_messages {
            let _ = writeln!(
                o,
                "messaging_client_sent_messages_total{{{dest},error_type=\"{}\"}} {}",
                c.code, c.count
            );
        }
        header(
            o,
            "messaging_client_operation_duration_seconds",
            "histogram",
            "Duration of publish and publishBatch calls.",
        );
        for (op, h) in Operation::ALL
            .iter()
            .zip([&self.publish_duration, &self.publish_batch_duration])
        {
            let labels = format!("{dest},messaging_operation_name=\"{}\"", op.as_str());
            histogram(o, "messaging_client_operation_duration_seconds", &labels, h);
        }
        header(
            o,
            "event_publisher_group_events",
            "histogram",
            "Events per group write.",
        );
        histogram(o, "event_publisher_group_events", &dest, &self.group_events);
        header(
            o,
            "event_publisher_stage_duration_seconds",
            "histogram",
            "Duration of each stage of a group write.",
        );
        for s in &self.stages {
            let labels = format!("{dest},stage=\"{}\"", s.stage);
            histogram(
                o,
                "event_publisher_stage_duration_seconds",
                &labels,
                &s.duration,
            );
        }
        header(
            o,
            "event_publisher_retries_total",
            "counter",
            "Retries of a stage.",
        );
        for s in &self.stages {
            let _ = writeln!(
                o,
                "event_publisher_retries_total{{{dest},stage=\"{}\"}} {}",
                s.stage, s.retries
            );
        }
        for (name, kind, help, v) in [
            (
                "event_publisher_undone_events_total",
                "counter",
                "Events whose rows were deleted after a failed write.",
                self.undone_events,
            ),
            (
                "event_publisher_not_reserved_entries_total",
                "counter",
                "Entries that did not take their reserved ID.",
                self.not_reserved_entries,
            ),
            (
                "event_publisher_in_flight_events",
                "gauge",
                "Events admitted and not yet settled.",
                self.in_flight_events,
            ),
            (
                "event_publisher_in_flight_bytes",
                "gauge",
                "Bytes held for admitted, unsettled events (counted against maxInFlightBytes).",
                self.in_flight_bytes,
            ),
            (
                "event_publisher_circuit_state",
                "gauge",
                "Circuit breaker: 0 closed, 1 half-open, 2 open.",
                self.circuit_state as u64,
            ),
            (
                "event_publisher_dropped_log_records_total",
                "counter",
                "Log records dropped because the logger's queue was full.",
                self.dropped_log_records,
            ),
        ] {
            header(o, name, kind, help);
            let _ = writeln!(o, "{name}{{{dest}}} {v}");
        }
        out.push_str(&self.outbox_prometheus);
        out
    }
}

pub(crate) fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub(crate) fn histogram(o: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    let mut cumulative = 0;
    for (b, c) in h.bounds.iter().zip(&h.counts) {
        cumulative += c;
        let _ = writeln!(o, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
    }
    let _ = writeln!(o, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(o, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(o, "{name}_count{{{labels}}} {}", h.count);
}

/// A label value as the text format wants it.
pub(crate) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_upper_inclusive_and_text_is_cumulative() {
        let m = Metrics::new("s\"1");
        m.operation(Operation::Publish, Duration::from_millis(5));
        m.operation(Operation::Publish, Duration::from_millis(6));
        m.operation(Operation::Publish, Duration::from_secs(20));
        m.sent(3, None);
        m.sent(2, Some(Code::Redis));
        let s = m.snapshot(Gauges::default());
        assert_eq!(s.publish_duration.counts[0], 1);
        assert_eq!(s.publish_duration.counts[1], 1);
        assert_eq!(s.publish_duration.counts[14], 1);
        assert_eq!(s.publish_duration.count, 3);
        let text = s.prometheus();
        let dest = r#"messaging_system="redis",messaging_destination_name="s\"1""#;
        assert!(text.contains(&format!(
            "messaging_client_sent_messages_total{{{dest}}} 3\n"
        )));
        assert!(text.contains(&format!(
            "messaging_client_sent_messages_total{{{dest},error_type=\"ERR_REDIS\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "messaging_client_operation_duration_seconds_bucket{{{dest},messaging_operation_name=\"publish\",le=\"0.01\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "messaging_client_operation_duration_seconds_bucket{{{dest},messaging_operation_name=\"publish\",le=\"+Inf\"}} 3\n"
        )));
    }
}
