//! The napi surface: argument conversion in, error conversion out. `to_napi` is the one place
//! where a Rust error becomes a JS error; the JS wrapper (`index.js`) reads the stable code from
//! the `ERR_…: ` prefix of its message and throws an `EventPublisherError`.

mod completions;
mod packed_batch;

use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use tracing::instrument::WithSubscriber;

use crate::config::{Config, Options};
use crate::errors::PublishError;
use crate::event::envelope::{prepare_batch, EventInput, PreparedEvent};
use crate::logging::{LogRecord, LogSink, StderrSink};
use crate::pipeline::publisher::Publisher;
use completions::Completions;

fn to_napi(e: PublishError) -> Error {
    let prefix = if e.outcome_unknown { "?" } else { "" };
    Error::new(Status::GenericFailure, format!("{}{}", prefix, e))
}

/// Options as the JS wrapper passes them (`PublisherOptions` in index.d.ts, flattened by
/// `nativeOptions` in index.js): deserialized straight into [`Options`], so the fields are listed
/// once, in `config.rs`.
fn options(value: Option<serde_json::Value>) -> std::result::Result<Options, PublishError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(Options::default()),
        Some(v) => serde_json::from_value(v)
            .map_err(|e| PublishError::config(format!("invalid options: {e}"))),
    }
}

/// One event of a batch, with `data` already serialized by `JSON.stringify`.
#[napi(object)]
pub struct NativeEvent {
    #[napi(js_name = "type")]
    pub event_type: String,
    pub data: String,
    pub tenant_id: String,
    pub user_id: String,
    pub correlation_id: Option<String>,
    pub source: Option<String>,
    pub event_id: Option<String>,
    /// `traceparent` [`\n` `tracestate`] (`traceContext: true` with an active span).
    pub trace_context: Option<String>,
}

impl From<NativeEvent> for EventInput {
    fn from(e: NativeEvent) -> EventInput {
        EventInput {
            event_type: e.event_type,
            data_json: e.data,
            tenant_id: e.tenant_id,
            user_id: e.user_id,
            correlation_id: e.correlation_id,
            source: e.source,
            event_id: e.event_id,
            trace_context: e.trace_context,
        }
    }
}

/// Records waiting for a slow `logger` past this are dropped (and counted), never waited for.
const LOGGER_QUEUE: usize = 4096;

/// Weak: a logger never keeps the process alive. Non-blocking calls into a bounded queue: a slow
/// logger never stalls publishing.
///
/// Each record crosses as its JSON line (serialised here, parsed by `index.js` into the object
/// the user's `logger` receives): measured with callgrind, building the object property by
/// property through napi cost 21k instructions per record, the string and `JSON.parse` a fraction.
type LoggerFn = ThreadsafeFunction<String, (), String, Status, false, true, LOGGER_QUEUE>;

struct CallbackSink(LoggerFn);

impl LogSink for CallbackSink {
    fn write(&self, r: LogRecord) -> bool {
        let Ok(line) = serde_json::to_string(&r) else {
            return true;
        };
        // `Closing` (the environment is going away) is no drop worth counting.
        self.0.call(line, ThreadsafeFunctionCallMode::NonBlocking) != Status::QueueFull
    }
}

fn resolve(value: Option<serde_json::Value>) -> Result<Config> {
    install_crypto();
    Config::resolve(options(value).map_err(to_napi)?).map_err(to_napi)
}

/// rustls needs one process-wide crypto provider; both drivers use ring. Installing is
/// idempotent (a second call just reports that one exists).
fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Called (with no arguments) when finished publishes are ready to `drain()`. Weak: it never keeps
/// the process alive; `index.js` holds a ref'd timer while publishes are pending instead.
type WakeFn = ThreadsafeFunction<(), (), (), Status, false, true>;

/// Finished publishes as `drain()` hands them over: parallel arrays.
#[napi(object)]
pub struct Drained {
    /// The tickets `submit` was given.
    pub tickets: Vec<u32>,
    /// Whether each publish succeeded.
    pub ok: Vec<bool>,
    /// The event id, or the error (`ERR_…: message`, `?` first when the outcome is unknown).
    pub values: Vec<String>,
}

/// The native publisher; `index.js` wraps it as `EventPublisher`.
#[napi]
pub struct NativePublisher {
    inner: Publisher,
    completions: Arc<OnceLock<Completions>>,
}

#[napi]
impl NativePublisher {
    /// Connects and verifies both stores.
    #[napi(
        catch_unwind,
        ts_args_type = "options?: Record<string, unknown> | undefined | null, logger?: ((line: string) => void) | undefined | null"
    )]
    pub async fn connect(
        options: Option<serde_json::Value>,
        logger: Option<LoggerFn>,
    ) -> Result<NativePublisher> {
        let cfg = resolve(options)?;
        let sink: Arc<dyn LogSink> = match logger {
            Some(f) => Arc::new(CallbackSink(f)),
            None => Arc::new(StderrSink),
        };
        let inner = Publisher::connect(cfg, sink).await.map_err(to_napi)?;
        Ok(NativePublisher {
            inner,
            completions: Arc::new(OnceLock::new()),
        })
    }

    /// Registers the function called when finished publishes are ready to `drain()`.
    #[napi]
    pub fn listen(&self, on_ready: WakeFn) {
        let _ = self.completions.set(Completions::new(move || {
            on_ready.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }));
    }

    /// Starts publishing one event; its outcome arrives through `drain()` under `ticket`.
    /// `data` is `JSON.stringify(data)`.
    #[allow(clippy::too_many_arguments)]
    #[napi]
    pub fn submit(
        &self,
        ticket: u32,
        event_type: String,
        data: String,
        tenant_id: String,
        user_id: String,
        correlation_id: Option<String>,
        source: Option<String>,
        event_id: Option<String>,
        trace_context: Option<String>,
    ) -> Result<()> {
        let admission = self.inner.admit(1).map_err(to_napi)?;
        let input = EventInput::from(NativeEvent {
            event_type,
            data,
            tenant_id,
            user_id,
            correlation_id,
            source,
            event_id,
            trace_context,
        });
        let p = self.inner.clone();
        self.spawn_completion(
            ticket,
            async move { p.publish_admitted(admission, input).await },
        )
    }

    /// Starts publishing `count` events atomically, packed as [`packed_batch::unpack`] reads
    /// them (`packBatch` in index.js); the outcome arrives through `drain()` under `ticket`, the
    /// ids joined by `,` (ids are URL-safe, so never contain one).
    #[napi]
    pub fn submit_batch(
        &self,
        ticket: u32,
        count: u32,
        fields: String,
        data: String,
    ) -> Result<()> {
        let admission = self.inner.admit(count as usize).map_err(to_napi)?;
        let p = self.inner.clone();
        self.spawn_completion(ticket, async move {
            let inputs = packed_batch::unpack(count as usize, &fields, &data)?;
            p.publish_batch_admitted(admission, inputs)
                .await
                .map(|ids| ids.join(","))
        })
    }

    fn spawn_completion(
        &self,
        ticket: u32,
        work: impl std::future::Future<Output = std::result::Result<String, PublishError>>
            + Send
            + 'static,
    ) -> Result<()> {
        if self.completions.get().is_none() {
            return Err(Error::new(
                Status::GenericFailure,
                "listen() must be called first",
            ));
        }
        let completions = self.completions.clone();
        napi::bindgen_prelude::spawn(async move {
            let result = work.await;
            if let Some(c) = completions.get() {
                c.push(ticket, result);
            }
        });
        Ok(())
    }

    /// Takes every finished publish.
    #[napi]
    pub fn drain(&self) -> Drained {
        let done = self
            .completions
            .get()
            .map(Completions::drain)
            .unwrap_or_default();
        let mut out = Drained {
            tickets: Vec::with_capacity(done.len()),
            ok: Vec::with_capacity(done.len()),
            values: Vec::with_capacity(done.len()),
        };
        for (ticket, result) in done {
            out.tickets.push(ticket);
            out.ok.push(result.is_ok());
            out.values.push(match result {
                Ok(id) => id,
                Err(e) => to_napi(e).reason,
            });
        }
        out
    }

    /// Creates the metadata table in an empty database; resolves to whether it did.
    #[napi(
        catch_unwind,
        ts_args_type = "options?: Record<string, unknown> | undefined | null"
    )]
    pub async fn migrate(options: Option<serde_json::Value>) -> Result<bool> {
        let cfg = resolve(options)?;
        Publisher::migrate(cfg).await.map_err(to_napi)
    }

    /// `{ redis, database, circuit }`.
    #[napi(
        catch_unwind,
        ts_return_type = "Promise<{ redis: boolean; database: boolean; circuit: string }>"
    )]
    pub async fn health(&self) -> Result<serde_json::Value> {
        let h = self.inner.health().await;
        Ok(serde_json::json!({ "redis": h.redis, "database": h.database, "circuit": h.circuit }))
    }

    /// Settles PENDING rows created between `within_ms` and `older_than_ms` ago whose stream_id
    /// does not hold their entry.
    #[napi(
        catch_unwind,
        ts_return_type = "Promise<{ examined: number; repaired: number; failed: number }>"
    )]
    pub async fn reconcile(&self, older_than_ms: f64, within_ms: f64) -> Result<serde_json::Value> {
        let r = self
            .inner
            .reconcile(older_than_ms.max(0.0) as u64, within_ms.max(0.0) as u64)
            .with_subscriber(self.inner.dispatch().clone())
            .await
            .map_err(to_napi)?;
        Ok(
            serde_json::json!({ "examined": r.examined, "repaired": r.repaired, "failed": r.failed }),
        )
    }

    /// The publisher's metrics in the Prometheus text format (see README "Observability").
    #[napi(catch_unwind)]
    pub async fn metrics(&self) -> Result<String> {
        Ok(self.inner.stats().prometheus())
    }

    /// The publisher's metrics as an object (`PublisherStats` in index.d.ts).
    #[napi(ts_return_type = "PublisherStats")]
    pub fn stats(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self.inner.stats())
            .map_err(|e| Error::new(Status::GenericFailure, e.to_string()))
    }

    /// Waits for in-flight publishes, then closes connections.
    #[napi(catch_unwind)]
    pub async fn close(&self) -> Result<()> {
        self.inner
            .close()
            .with_subscriber(self.inner.dispatch().clone())
            .await;
        Ok(())
    }
}

/// One event as the publisher would write it: the stream entry's `event` field and the row's
/// columns (for `@hyvve/event-publisher/testing`).
#[napi(object)]
// Only JS calls it: a `cargo test` build (no napi registration) sees no user.
#[cfg_attr(test, allow(dead_code))]
pub struct PreparedEntry {
    /// The envelope JSON, byte for byte what the stream entry's `event` field would hold.
    pub envelope: String,
    /// The event id.
    pub event_id: String,
    /// Whether the caller chose the event id (then retries are deduplicated by it).
    pub caller_event_id: bool,
    /// The row's primary key.
    pub row_id: String,
    /// The event type.
    #[napi(js_name = "type")]
    pub event_type: String,
    /// The source after defaulting.
    pub source: String,
    /// The tenant.
    pub tenant_id: String,
    /// The correlation id after defaulting.
    pub correlation_id: String,
    /// The envelope's timestamp, also the row's `created_at`.
    pub timestamp: String,
}

/// Resolves `options` and prepares `events` with the publisher's own validation and envelope
/// code, touching no store: the in-memory test publisher's core. `batch` prepares them as
/// `publishBatch` does, otherwise as `publish` (one event). Store URLs are not needed
/// (placeholders stand in for them when absent), the environment is not read.
#[napi(
    ts_args_type = "options: Record<string, unknown> | undefined | null, events: Array<NativeEvent>, batch: boolean"
)]
#[cfg_attr(test, allow(dead_code))]
pub fn prepare_events(
    options: Option<serde_json::Value>,
    events: Vec<NativeEvent>,
    batch: bool,
) -> Result<Vec<PreparedEntry>> {
    let mut o = self::options(options).map_err(to_napi)?;
    o.env = None;
    o.redis_url
        .get_or_insert_with(|| "redis://127.0.0.1:6379".into());
    o.database_url
        .get_or_insert_with(|| "postgres://127.0.0.1:5432/test".into());
    let cfg = Config::resolve(o).map_err(to_napi)?;
    let inputs = events.into_iter().map(EventInput::from).collect();
    let prepared = if batch {
        prepare_batch(inputs, &cfg.source, cfg.max_payload_bytes)
    } else {
        inputs
            .into_iter()
            .map(|i| PreparedEvent::prepare(i, &cfg.source, cfg.max_payload_bytes))
            .collect()
    }
    .map_err(to_napi)?;
    Ok(prepared
        .into_iter()
        .map(|e| PreparedEntry {
            envelope: e.json,
            event_id: e.event_id,
            caller_event_id: e.caller_event_id,
            row_id: e.row_id,
            event_type: e.event_type,
            source: e.source,
            tenant_id: e.tenant_id,
            correlation_id: e.correlation_id,
            timestamp: e.timestamp,
        })
        .collect())
}

/// One Tokio worker thread unless `EVENT_PUBLISHER_THREADS=n` asks for more (napi's default is
/// one per CPU). Measured (bench, package, medians of 3, 2 CPUs): one worker against two cost Node
/// 191 against 220 µs of CPU per sequential publish (fewer hand-offs between threads), at the same
/// events/s sequentially, at 64 in flight and in batches of 1,000.
#[napi_derive::module_init]
fn init_runtime() {
    let workers = std::env::var("EVENT_PUBLISHER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1);
    if let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}
