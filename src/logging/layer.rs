//! The `tracing` layer that turns a publisher's enabled events and spans into [`LogRecord`]s, and
//! [`dispatch`], which builds one per publisher.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use super::filter::OWN_TARGET;
use super::record::{LogRecord, LogSink};
use crate::clock::{iso_timestamp_ms, now_ms};

/// The publisher's dispatch: a registry with one [`RecordLayer`] behind `filter`. `dropped`
/// counts records the sink could not take.
/// While the dispatch lives, `log` records its filter wants are bridged to it.
pub fn dispatch(filter: Targets, sink: Arc<dyn LogSink>, dropped: Arc<AtomicU64>) -> Dispatch {
    let log_level = super::bridge::register(&filter);
    let layer = RecordLayer {
        sink,
        dropped,
        _log_level: log_level,
    };
    Dispatch::new(Registry::default().with(layer.with_filter(filter)))
}

/// Turns events (and, on close, spans with their duration) into [`LogRecord`]s.
pub struct RecordLayer {
    sink: Arc<dyn LogSink>,
    dropped: Arc<AtomicU64>,
    _log_level: super::bridge::LogLevelGuard,
}

impl RecordLayer {
    fn send(&self, record: LogRecord) {
        if !self.sink.write(record) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a span keeps until it closes: when it started and its fields as `k=v` text.
struct SpanTiming {
    start: Instant,
    fields: String,
}

impl<S> Layer<S> for RecordLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut v = SpanFields(String::new());
        attrs.record(&mut v);
        span.extensions_mut().insert(SpanTiming {
            start: Instant::now(),
            fields: v.0,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(t) = ext.get_mut::<SpanTiming>() {
            let mut v = SpanFields(std::mem::take(&mut t.fields));
            values.record(&mut v);
            t.fields = v.0;
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        // A bridged `log` record carries its real target and level in fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut r = LogRecord {
            level: level_str(*meta.level()),
            time: iso_timestamp_ms(now_ms()),
            ..Default::default()
        };
        let mut extra = String::new();
        event.record(&mut RecordFields {
            record: &mut r,
            extra: &mut extra,
        });
        if !meta.target().starts_with(OWN_TARGET) {
            // A driver's record: say whose it is.
            r.msg = format!("{}: {}", meta.target(), r.msg);
        }
        r.msg.push_str(&extra);
        self.send(r);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let ext = span.extensions();
        let Some(t) = ext.get::<SpanTiming>() else {
            return;
        };
        let meta = span.metadata();
        let ms = t.start.elapsed().as_secs_f64() * 1000.0;
        self.send(LogRecord {
            level: level_str(*meta.level()),
            time: iso_timestamp_ms(now_ms()),
            msg: format!("{} took {ms:.3} ms{}", meta.name(), t.fields),
            ..Default::default()
        });
    }
}

fn level_str(l: Level) -> &'static str {
    match l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Fills a record's known fields; any other field is appended to `msg` as ` k=v`.
struct RecordFields<'a> {
    record: &'a mut LogRecord,
    extra: &'a mut String,
}

impl RecordFields<'_> {
    fn text(&mut self, field: &Field, value: String) {
        let r = &mut *self.record;
        match field.name() {
            "message" => r.msg = value,
            "event_id" => r.event_id = Some(value),
            "event_type" => r.event_type = Some(value),
            "correlation_id" => r.correlation_id = Some(value),
            "tenant_id" => r.tenant_id = Some(value),
            "stream_id" => r.stream_id = Some(value),
            "code" => r.code = Some(value),
            "error" => r.error = Some(value),
            // Event ids never hold a comma (see validate::event_id).
            "event_ids" => r.event_ids = Some(value.split(',').map(str::to_string).collect()),
            "count" => r.count = value.parse().ok(),
            // A bridged `log` record's origin (`log.target` is in the metadata already).
            name if name.starts_with("log.") => {}
            name => {
                let _ = write!(self.extra, " {name}={value}");
            }
        }
    }
}

impl Visit for RecordFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.text(field, value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.text(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }
}

/// A span's fields as ` k=v` text.
struct SpanFields(String);

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

#[cfg(test)]
mod tests {
    use super::super::filter::parse_filter;
    use super::super::record::Joined;
    use super::*;
    use std::sync::Mutex;
    use tracing::dispatcher::with_default;

    /// Collects records, for tests.
    #[derive(Default)]
    pub struct Collect(pub Mutex<Vec<LogRecord>>);
    impl LogSink for Collect {
        fn write(&self, record: LogRecord) -> bool {
            self.0.lock().unwrap().push(record);
            true
        }
    }

    fn collect(spec: &str) -> (Dispatch, Arc<Collect>) {
        let sink = Arc::new(Collect::default());
        let d = dispatch(
            parse_filter(spec).unwrap(),
            sink.clone(),
            Arc::new(AtomicU64::new(0)),
        );
        (d, sink)
    }

    #[test]
    fn a_bare_level_filters_own_records_and_drivers_stay_off() {
        let (d, sink) = collect("warn");
        with_default(&d, || {
            tracing::info!(event_id = %panic_if_built(), "must not be built");
            tracing::error!(code = "ERR_REDIS", "boom");
            tracing::error!(target: "sqlx::query", "a driver's record");
        });
        let got = sink.0.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].msg, "boom");
        assert_eq!(got[0].level, "error");
        assert_eq!(got[0].code.as_deref(), Some("ERR_REDIS"));
    }

    fn panic_if_built() -> &'static str {
        panic!("a disabled record's fields were built")
    }

    #[test]
    fn directives_switch_on_a_driver_and_off_turns_everything_off() {
        let (d, sink) = collect("off,sqlx=debug");
        with_default(&d, || {
            tracing::error!("own, off");
            tracing::debug!(target: "sqlx::query", rows_affected = 1u64, "summary");
            tracing::trace!(target: "sqlx::query", "too fine");
        });
        let got = sink.0.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].msg, "sqlx::query: summary rows_affected=1");
        let (d, sink) = collect("off");
        with_default(&d, || tracing::error!("nothing"));
        assert!(sink.0.lock().unwrap().is_empty());
    }

    #[test]
    fn record_fields_map_to_the_js_shape() {
        let (d, sink) = collect("info");
        with_default(&d, || {
            tracing::info!(
                event_id = "e1",
                event_type = "a.b",
                correlation_id = "c",
                tenant_id = "t",
                stream_id = "1-0",
                "event published"
            );
            let ids = ["x", "y"];
            tracing::info!(count = 2u32, event_ids = %Joined(&ids), "event batch published");
        });
        let got = sink.0.lock().unwrap();
        let v = serde_json::to_value(&got[0]).unwrap();
        assert_eq!(v["eventId"], "e1");
        assert_eq!(v["type"], "a.b");
        assert_eq!(v["correlationId"], "c");
        assert_eq!(v["tenantId"], "t");
        assert_eq!(v["streamId"], "1-0");
        assert_eq!(v["level"], "info");
        assert_eq!(v["msg"], "event published");
        assert!(v.get("count").is_none());
        assert_eq!(got[1].count, Some(2));
        assert_eq!(got[1].event_ids, Some(vec!["x".into(), "y".into()]));
    }

    #[test]
    fn two_dispatches_keep_their_own_records_and_spans_report_durations() {
        let (a, sa) = collect("info");
        let (b, sb) = collect("debug");
        with_default(&a, || tracing::debug!("a: not wanted"));
        with_default(&b, || {
            let span = tracing::debug_span!(
                "group_write",
                events = 3u64,
                outcome = tracing::field::Empty
            );
            let _g = span.enter();
            span.record("outcome", "ok");
            tracing::debug!("b: wanted");
        });
        assert!(sa.0.lock().unwrap().is_empty());
        let got = sb.0.lock().unwrap();
        assert_eq!(got[0].msg, "b: wanted");
        assert!(
            got[1].msg.starts_with("group_write took ")
                && got[1].msg.ends_with(" events=3 outcome=ok"),
            "{}",
            got[1].msg
        );
    }

    #[test]
    fn log_records_reach_the_current_dispatch_through_its_filter() {
        let (d, sink) = collect("info,redis=debug");
        let (quiet, quiet_sink) = collect("info");
        with_default(&d, || {
            // Raised while a dispatch wants redis' debug records.
            assert!(log::max_level() >= log::LevelFilter::Debug);
            log::debug!(target: "redis::cluster", "reconnected to {}", "n1");
            log::trace!(target: "redis::cluster", "too fine");
            log::error!(target: "other_crate", "not named");
        });
        with_default(
            &quiet,
            || log::error!(target: "redis::cluster", "not wanted here"),
        );
        log::error!(target: "redis::cluster", "no current dispatch: nowhere");
        let got = sink.0.lock().unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].level, "debug");
        assert_eq!(got[0].msg, "redis::cluster: reconnected to n1");
        assert!(quiet_sink.0.lock().unwrap().is_empty());
    }

    #[test]
    fn a_full_sink_counts_drops() {
        struct Full;
        impl LogSink for Full {
            fn write(&self, _: LogRecord) -> bool {
                false
            }
        }
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dispatch(
            parse_filter("info").unwrap(),
            Arc::new(Full),
            dropped.clone(),
        );
        with_default(&d, || {
            tracing::info!("one");
            tracing::info!("two");
        });
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
    }
}
