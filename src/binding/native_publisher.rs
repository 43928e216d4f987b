//! `NativePublisher`, the class `index.js` wraps as `EventPublisher`: each method converts its
//! arguments, calls one [`Publisher`] method and converts the outcome back.

use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use tracing::instrument::WithSubscriber;

use super::completions::Completions;
use super::error::{misuse, to_napi};
use super::options::resolve;
use super::packed_batch;
use crate::errors::PublishError;
use crate::event::EventInput;
use crate::logging::{LogRecord, LogSink, StderrSink};
use crate::pipeline::Publisher;

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

impl NativeEvent {
    /// The pipeline's input. (An inherent method, not `From`: the conversion belongs to the
    /// binding, and a trait impl on `EventInput` would read as the event module depending on it.)
    pub(super) fn into_input(self) -> EventInput {
        EventInput {
            event_type: self.event_type,
            data_json: self.data,
            tenant_id: self.tenant_id,
            user_id: self.user_id,
            correlation_id: self.correlation_id,
            source: self.source,
            event_id: self.event_id,
            trace_context: self.trace_context,
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

/// Called (with no arguments) when finished publishes are ready to `drain()`. Weak: it never keeps
/// the process alive; `index.js` holds a ref'd timer while publishes are pending instead.
type WakeFn = ThreadsafeFunction<(), (), (), Status, false, true>;

/// What `stage` returns: the events' ids and the statement (`text`, its one parameter `value`).
#[napi(object)]
pub struct StagedNative {
    /// The event ids, in input order.
    pub event_ids: Vec<String>,
    /// The SQL text.
    pub text: String,
    /// `$1`: a JSON document.
    pub value: String,
}

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
        let input = NativeEvent {
            event_type,
            data,
            tenant_id,
            user_id,
            correlation_id,
            source,
            event_id,
            trace_context,
        }
        .into_input();
        let write = self.inner.start_publish(input).map_err(to_napi)?;
        self.spawn_completion(ticket, write)
    }

    /// Starts publishing `count` events (atomically up to one part, see docs/overload.md), packed
    /// as [`packed_batch::unpack`] reads them (`packBatch` in index.js); the outcome arrives
    /// through `drain()` under `ticket`, the ids joined by `,` (ids are URL-safe, so never
    /// contain one).
    #[napi]
    pub fn submit_batch(
        &self,
        ticket: u32,
        count: u32,
        fields: String,
        data: String,
    ) -> Result<()> {
        let n = count as usize;
        let sizes = (data.len(), fields.len());
        let write = self
            .inner
            .start_publish_batch(n, sizes, move || packed_batch::unpack(n, &fields, &data))
            .map_err(to_napi)?;
        self.spawn_completion(ticket, async move { write.await.map(|ids| ids.join(",")) })
    }

    fn spawn_completion(
        &self,
        ticket: u32,
        work: impl std::future::Future<Output = std::result::Result<String, PublishError>>
            + Send
            + 'static,
    ) -> Result<()> {
        if self.completions.get().is_none() {
            return Err(misuse("listen() must be called first"));
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

    /// Prepares `count` events (packed as for `submit_batch`) as `publish` (`batch` false, one
    /// event) or `publishBatch` would, with no I/O, and returns their ids and the statement that
    /// stages them in the caller's transaction (docs/outbox.md).
    #[napi]
    pub fn stage(
        &self,
        count: u32,
        fields: String,
        data: String,
        batch: bool,
    ) -> Result<StagedNative> {
        let inputs = packed_batch::unpack(count as usize, &fields, &data).map_err(to_napi)?;
        let (event_ids, st) = self.inner.stage(inputs, batch).map_err(to_napi)?;
        Ok(StagedNative {
            event_ids,
            text: st.text,
            value: st.value,
        })
    }

    /// Appends the committed, undelivered ones of these staged events: `{ appended, deferred }`.
    /// Never rejects for a store failure (the relay delivers what was deferred).
    #[napi(
        catch_unwind,
        ts_return_type = "Promise<{ appended: number; deferred: number }>"
    )]
    pub async fn dispatch(&self, event_ids: Vec<String>) -> Result<serde_json::Value> {
        let (appended, deferred) = self.inner.dispatch_staged(event_ids).await;
        Ok(serde_json::json!({ "appended": appended, "deferred": deferred }))
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

    /// `{ redis, database, circuit, inFlightBytes, outbox }`.
    #[napi(
        catch_unwind,
        ts_return_type = "Promise<{ redis: boolean; database: boolean; circuit: string; inFlightBytes: number; outbox: { pending: number; oldestAgeMs: number } }>"
    )]
    pub async fn health(&self) -> Result<serde_json::Value> {
        let h = self.inner.health().await;
        Ok(serde_json::json!({
            "redis": h.redis,
            "database": h.database,
            "circuit": h.circuit,
            "inFlightBytes": h.in_flight_bytes,
                        "outbox": { "pending": h.outbox_pending, "oldestAgeMs": h.outbox_oldest_age_ms },
        }))
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
        serde_json::to_value(self.inner.stats()).map_err(misuse)
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
