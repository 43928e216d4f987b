//! The public API of the publishing pipeline, plain async Rust (no napi): connect, admission
//! (in-flight bound, circuit breaker, close), publish and publishBatch, health, close.
//!
//! Where the rest lives: the queue and the forming of groups in `group_commit`, the write order
//! of a group (reserved ID → row → entry → `stream_id`, undo) in `group_write`, the retry decision
//! in `retry`, the repair of rows a crashed process left in `reconcile`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::instrument::WithSubscriber;
use tracing::Dispatch;

use super::admission::{admission_bytes, held_bytes, Admission, InFlight};
use super::maybe_written::MaybeWritten;
use crate::config::{Config, EntryIds};
use crate::errors::{Code, PublishError};
use crate::event::{EventInput, PreparedEvent};
use crate::logging::LogSink;
use crate::metadata::MetadataStore;
use crate::metrics::{Gauges, Operation, Snapshot};
use crate::pipeline::circuit::{Admit, Circuit};
use crate::pipeline::group_commit::{Job, Writer};
use crate::pipeline::outbox::{Outbox, StagedStatement, Stager};
use crate::stream::StreamWriter;
use crate::stream::{host_now_us, EntryIdClock};

/// What `health()` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Redis answered a PING.
    pub redis: bool,
    /// Postgres answered a `SELECT 1`.
    pub database: bool,
    /// `closed`, `open` or `half-open`.
    pub circuit: &'static str,
    /// Bytes held for admitted, unsettled events (against `maxInFlightBytes`).
    pub in_flight_bytes: u64,
    /// Outbox events of this stream committed and not yet appended.
    pub outbox_pending: u64,
    /// The age of the oldest of them, ms since staging.
    pub outbox_oldest_age_ms: u64,
}

/// A connected publisher. Cheap to clone; all clones share one set of connections.
#[derive(Clone)]
pub struct Publisher {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) writer: Arc<Writer>,
    in_flight: Arc<InFlight>,
    closed: AtomicBool,
    default_source: String,
    max_payload_bytes: usize,
    max_in_flight: usize,
    max_in_flight_bytes: usize,
    timeout: Duration,
    /// Caller event ids an earlier attempt may have written (see `maybe_written`).
    maybe_written: MaybeWritten,
    /// Log records the sink could not take (a full `logger` queue).
    pub(crate) dropped_logs: Arc<AtomicU64>,
    /// The staging statements.
    stager: Stager,
    /// Dispatch and the relay.
    pub(crate) outbox: Arc<Outbox>,
}

impl Publisher {
    /// Connects to Redis and Postgres and verifies both (Redis version, script load, the
    /// metadata table), and reads the Redis clock for reserved entry IDs.
    pub async fn connect(cfg: Config, sink: Arc<dyn LogSink>) -> Result<Publisher, PublishError> {
        let dropped_logs = Arc::new(AtomicU64::new(0));
        let dispatch = crate::logging::dispatch(cfg.log_filter.clone(), sink, dropped_logs.clone());
        Self::connect_inner(cfg, dispatch.clone(), dropped_logs)
            .with_subscriber(dispatch)
            .await
    }

    async fn connect_inner(
        cfg: Config,
        dispatch: Dispatch,
        dropped_logs: Arc<AtomicU64>,
    ) -> Result<Publisher, PublishError> {
        let (stream, store) = tokio::try_join!(
            StreamWriter::connect(
                &cfg.redis,
                &cfg.stream,
                cfg.retention,
                cfg.dedup_window_ms,
                cfg.timeout
            ),
            async {
                let store =
                    MetadataStore::connect(&cfg.database, &cfg.table_sql, cfg.timeout).await?;
                store.check_table().await?;
                Ok(store)
            }
        )?;
        tracing::debug!(
            "connected to Redis {} and Postgres {}; {}",
            cfg.redis.display,
            cfg.database.display,
            store.description()
        );
        let entry_ids = EntryIdClock::default();
        let reserve_ids = cfg.entry_ids == EntryIds::Reserved;
        if reserve_ids {
            // Learn the Redis clock before the first reservation (every append refreshes it).
            let host = host_now_us();
            entry_ids.sync(stream.time_us().await?, host);
        }
        let in_flight = Arc::new(InFlight::default());
        let writer = Arc::new(Writer::new(
            stream,
            cfg.stream.clone(),
            store,
            dispatch,
            Arc::new(Circuit::new(cfg.circuit_threshold, cfg.circuit_cooldown)),
            cfg.timeout,
            in_flight.clone(),
            cfg.database.pool_size,
            entry_ids,
            reserve_ids,
        ));
        let outbox = Outbox::start(
            writer.clone(),
            &cfg.table_sql,
            &cfg.outbox_table_sql,
            cfg.dedup_window_ms,
            cfg.relay,
            &cfg.stream,
        )?;
        Ok(Publisher {
            inner: Arc::new(Inner {
                stager: Stager::new(&cfg.table_sql, &cfg.outbox_table_sql, &cfg.stream),
                outbox,
                writer,
                in_flight,
                closed: AtomicBool::new(false),
                default_source: cfg.source,
                max_payload_bytes: cfg.max_payload_bytes,
                max_in_flight: cfg.max_in_flight,
                max_in_flight_bytes: cfg.max_in_flight_bytes,
                timeout: cfg.timeout,
                maybe_written: MaybeWritten::new(Duration::from_millis(cfg.dedup_window_ms)),
                dropped_logs,
            }),
        })
    }

    /// Creates the metadata table in an empty database (Postgres only); returns whether it did.
    pub async fn migrate(cfg: Config) -> Result<bool, PublishError> {
        let store = MetadataStore::connect(&cfg.database, &cfg.table_sql, cfg.timeout).await?;
        let created = store.migrate().await;
        store.close().await;
        created
    }

    /// Starts a publish of one event: admits it now, in the caller's thread (so a publish made
    /// before `close()` is admitted before `close()` starts waiting), and returns the write, which
    /// resolves to the event id once its row and entry are both written. Refuses at once with
    /// `ERR_CLOSED`, `ERR_OVERLOADED`, `ERR_CIRCUIT_OPEN`, or `ERR_PAYLOAD_TOO_LARGE` when the
    /// event alone is larger than `maxInFlightBytes` (outcome-unknown when an earlier attempt with
    /// its eventId may have written it, see `maybe_written`).
    pub fn start_publish(
        &self,
        input: EventInput,
    ) -> Result<impl Future<Output = Result<String, PublishError>> + Send + 'static, PublishError>
    {
        let bytes = admission_bytes(1, input.data_json.len(), input.fields_len());
        let admission = self
            .admit(1, bytes)
            .map_err(|e| self.refused(e, input.event_id.as_deref()))?;
        let p = self.clone();
        Ok(async move { p.publish_admitted(admission, input).await })
    }

    /// Starts a publish of `count` events, admitted now as [`Self::start_publish`] does for the
    /// `data_len` bytes of their `data` and `fields_len` of their other fields; `unpack` yields
    /// the events on the worker (the binding's packed form is unpacked off the JS thread; on a
    /// refusal it is unpacked here, to say whether an earlier attempt may have written one of
    /// them). Up to one part (`batch_parts`) it is atomic; a larger batch goes out as consecutive
    /// parts (see `submit`). Resolves to their ids in input order.
    pub fn start_publish_batch(
        &self,
        count: usize,
        (data_len, fields_len): (usize, usize),
        unpack: impl FnOnce() -> Result<Vec<EventInput>, PublishError> + Send + 'static,
    ) -> Result<
        impl Future<Output = Result<Vec<String>, PublishError>> + Send + 'static,
        PublishError,
    > {
        let admission = match self.admit(count, admission_bytes(count, data_len, fields_len)) {
            Ok(a) => a,
            Err(e) if self.inner.maybe_written.is_empty() => return Err(e),
            Err(e) => {
                let ids: Vec<String> = unpack()
                    .map(|inputs| inputs.into_iter().filter_map(|i| i.event_id).collect())
                    .unwrap_or_default();
                return Err(self.refused(e, ids.iter().map(String::as_str)));
            }
        };
        let p = self.clone();
        Ok(async move { p.publish_batch_admitted(admission, unpack()?).await })
    }

    /// A refusal at admission, about events with these caller ids: outcome-unknown when an
    /// earlier attempt with one of them may have written (`maybe_written`).
    fn refused<'a>(
        &self,
        e: PublishError,
        event_ids: impl IntoIterator<Item = &'a str>,
    ) -> PublishError {
        self.inner.maybe_written.describe(e, event_ids)
    }

    /// Reserves room for `n` events counted as `bytes` (`admission_bytes`), synchronously: the
    /// binding calls it in the caller's thread, so publishes made before `close()` are admitted
    /// before `close()` starts waiting. Refuses with `ERR_CLOSED`, `ERR_OVERLOADED`,
    /// `ERR_CIRCUIT_OPEN`, or `ERR_PAYLOAD_TOO_LARGE` for a call larger than the whole byte budget.
    fn admit(&self, n: usize, bytes: usize) -> Result<Admission, PublishError> {
        let admitted = self.try_admit(n, bytes);
        if let Err(e) = &admitted {
            self.inner.writer.metrics.sent(n, Some(e.code));
        }
        admitted
    }

    fn try_admit(&self, n: usize, bytes: usize) -> Result<Admission, PublishError> {
        let inner = &self.inner;
        if bytes > inner.max_in_flight_bytes {
            return Err(PublishError::new(
                Code::PayloadTooLarge,
                format!(
                    "this call needs {bytes} bytes while it waits to be written, more than the whole \
                     maxInFlightBytes ({}): split it; nothing was written",
                    inner.max_in_flight_bytes
                ),
            ));
        }
        // Count first, then check `closed`: `close()` sets `closed` and then waits for the count,
        // so an event is either refused here or waited for there.
        let before = inner.in_flight.events.fetch_add(n, Ordering::SeqCst);
        let before_bytes = inner.in_flight.bytes.fetch_add(bytes, Ordering::SeqCst);
        let mut admission = Admission {
            in_flight: inner.in_flight.clone(),
            circuit: inner.writer.circuit.clone(),
            n,
            bytes,
            trial: false,
        };
        if inner.closed.load(Ordering::SeqCst) {
            return Err(PublishError::closed());
        }
        super::memory::held(before_bytes + bytes);
        if before_bytes + bytes > inner.max_in_flight_bytes {
            return Err(PublishError::new(
                Code::Overloaded,
                format!(
                    "{before_bytes} bytes of events are already waiting to be written \
                     (maxInFlightBytes {}); nothing of this call was written",
                    inner.max_in_flight_bytes
                ),
            ));
        }
        if before + n > inner.max_in_flight && before > 0 {
            return Err(PublishError::new(
                Code::Overloaded,
                format!(
                    "{before} events are already waiting to be written (maxInFlight {})",
                    inner.max_in_flight
                ),
            ));
        }
        admission.trial = inner.writer.circuit.admit()? == Admit::Trial;
        Ok(admission)
    }

    /// `publish` after `admit(1)`.
    async fn publish_admitted(
        &self,
        admission: Admission,
        input: EventInput,
    ) -> Result<String, PublishError> {
        let dispatch = self.dispatch().clone();
        let started = Instant::now();
        let caller_id = input.event_id.clone();
        let result = async move {
            let mut admission = admission;
            let event = self.prepare(input)?;
            admission.hold(held_bytes(&event));
            let mut ids = self.submit(admission, vec![event], false).await?;
            Ok(ids.pop().unwrap_or_default())
        }
        .with_subscriber(dispatch)
        .await;
        let result = self.about_event_ids(result, caller_id.as_deref());
        self.count(Operation::Publish, 1, started, &result);
        result
    }

    /// Counts a settled call in the metrics.
    fn count<T>(&self, op: Operation, n: usize, started: Instant, r: &Result<T, PublishError>) {
        let m = &self.inner.writer.metrics;
        m.sent(n, r.as_ref().err().map(|e| e.code));
        m.operation(op, started.elapsed());
    }

    /// Every metric now (see `metrics`).
    pub fn stats(&self) -> Snapshot {
        let w = &self.inner.writer;
        let mut snapshot = w.metrics.snapshot(Gauges {
            in_flight_events: self.inner.in_flight.events.load(Ordering::Relaxed) as u64,
            in_flight_bytes: self.inner.in_flight.bytes.load(Ordering::Relaxed) as u64,
            circuit_state: match w.circuit.state() {
                crate::pipeline::circuit::State::Closed => 0,
                crate::pipeline::circuit::State::HalfOpen => 1,
                crate::pipeline::circuit::State::Open => 2,
            },
            dropped_log_records: self.inner.dropped_logs.load(Ordering::Relaxed),
        });
        let o = &self.inner.outbox.metrics;
        snapshot.outbox = o.snapshot();
        snapshot.outbox_prometheus = o.prometheus(&snapshot.stream);
        snapshot
    }

    /// The dispatch this publisher's records go through (attached to its futures and tasks).
    pub(crate) fn dispatch(&self) -> &Dispatch {
        &self.inner.writer.dispatch
    }

    /// `publish_batch` after `admit(inputs.len())`.
    async fn publish_batch_admitted(
        &self,
        admission: Admission,
        inputs: Vec<EventInput>,
    ) -> Result<Vec<String>, PublishError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let dispatch = self.dispatch().clone();
        let (started, n) = (Instant::now(), inputs.len());
        // Only caller ids can be retried by id; generated ones need no memory.
        let caller_ids: Vec<String> = inputs.iter().filter_map(|i| i.event_id.clone()).collect();
        let result = self
            .batch_inner(admission, inputs)
            .with_subscriber(dispatch)
            .await;
        let result = self.about_event_ids(result, caller_ids.iter().map(String::as_str));
        self.count(Operation::PublishBatch, n, started, &result);
        result
    }

    /// Makes a call's rejection describe its events (outcome-unknown when an earlier attempt
    /// may have written one of them) and remembers what this call leaves unknown.
    fn about_event_ids<'a, T>(
        &self,
        result: Result<T, PublishError>,
        caller_ids: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<T, PublishError> {
        let known = &self.inner.maybe_written;
        match result {
            Ok(v) => {
                known.record(Ok(()), caller_ids);
                Ok(v)
            }
            Err(e) => {
                let e = known.describe(e, caller_ids.clone());
                known.record(Err(&e), caller_ids);
                Err(e)
            }
        }
    }

    async fn batch_inner(
        &self,
        admission: Admission,
        inputs: Vec<EventInput>,
    ) -> Result<Vec<String>, PublishError> {
        let mut admission = admission;
        let events = crate::event::prepare_batch(
            inputs,
            &self.inner.default_source,
            self.inner.max_payload_bytes,
        )?;
        admission.hold(events.iter().map(held_bytes).sum());
        self.submit(admission, events, true).await
    }

    fn prepare(&self, input: EventInput) -> Result<PreparedEvent, PublishError> {
        PreparedEvent::prepare(
            input,
            &self.inner.default_source,
            self.inner.max_payload_bytes,
        )
    }

    /// Queues admitted events for a group and waits for their outcome, at most `timeoutMs`. A
    /// batch larger than one part goes out as consecutive parts (`batch_parts`), each as a batch
    /// of its own, each waited for at most `timeoutMs`; the first failure ends it, with the ids of
    /// the parts written before it in `published_ids` (docs/overload.md).
    async fn submit(
        &self,
        mut admission: Admission,
        events: Vec<PreparedEvent>,
        batch: bool,
    ) -> Result<Vec<String>, PublishError> {
        let (n, bytes) = (admission.n, admission.bytes);
        // From here the groups settle the admission (counts and circuit), not its Drop.
        let trial = admission.take();
        if !batch || super::batch_parts::fits_one(&events) {
            return self.submit_job(events, batch, trial, bytes).await;
        }
        let (mut left_n, mut left_bytes) = (n, bytes);
        let mut published: Vec<String> = Vec::with_capacity(n);
        let mut first = true;
        for part in super::batch_parts::split(events) {
            let part_bytes = part.iter().map(held_bytes).sum::<usize>().min(left_bytes);
            left_n -= part.len();
            left_bytes -= part_bytes;
            let trial = std::mem::take(&mut first) && trial;
            match self.submit_job(part, true, trial, part_bytes).await {
                Ok(ids) => published.extend(ids),
                Err(mut e) => {
                    // The parts never sent are settled here.
                    self.inner.in_flight.done(left_n, left_bytes);
                    if !published.is_empty() {
                        e.message = format!(
                            "{} (the first {} events of the batch were published: err.publishedIds; \
                             this error is about the others)",
                            e.message,
                            published.len()
                        );
                    }
                    e.published_ids = published;
                    return Err(e);
                }
            }
        }
        Ok(published)
    }

    /// One job (a single publish, a batch, or a part of one) queued for a group and waited for.
    async fn submit_job(
        &self,
        events: Vec<PreparedEvent>,
        batch: bool,
        trial: bool,
        bytes: usize,
    ) -> Result<Vec<String>, PublishError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            events,
            batch,
            trial,
            bytes,
            reply,
            since: std::time::Instant::now(),
        };
        self.inner.writer.enqueue(job);
        match tokio::time::timeout(self.inner.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PublishError::new(
                Code::Closed,
                "the publisher stopped before the event was written",
            )),
            Err(_) => Err(PublishError::timeout(
                "publish",
                self.inner.timeout.as_millis() as u64,
            )),
        }
    }

    /// Prepares events exactly as `publish` (one event) or `publishBatch` (`batch`) would, with
    /// no I/O, and returns their ids and the statement that stages them in the caller's own
    /// transaction.
    pub fn stage(
        &self,
        inputs: Vec<EventInput>,
        batch: bool,
    ) -> Result<(Vec<String>, StagedStatement), PublishError> {
        // Refused here, not in index.js, like every ERR_CLOSED since the outcome rule (issue 23).
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(PublishError::closed());
        }
        let events = crate::event::prepare_all(
            inputs,
            batch,
            &self.inner.default_source,
            self.inner.max_payload_bytes,
        )?;
        let statement = self.inner.stager.statement(&events);
        Ok((events.into_iter().map(|e| e.event_id).collect(), statement))
    }

    /// Appends the committed, undelivered ones of these staged events now: `(appended,
    /// deferred)`. Never fails for a store: what it could not deliver (`deferred`) stays in the
    /// outbox for the relay. Events not visible (not committed, rolled back, delivered
    /// already) are neither.
    pub async fn dispatch_staged(&self, event_ids: Vec<String>) -> (usize, usize) {
        let n = event_ids.len();
        if n == 0 {
            return (0, 0);
        }
        if self.inner.closed.load(Ordering::SeqCst) {
            return (0, n);
        }
        let outbox = self.inner.outbox.clone();
        match outbox
            .dispatch(event_ids)
            .with_subscriber(self.dispatch().clone())
            .await
        {
            Ok(k) => (k, 0),
            Err(e) => {
                self.inner
                    .outbox
                    .metrics
                    .deferred
                    .fetch_add(n as u64, Ordering::Relaxed);
                tracing::warn!(
                    code = e.code.as_str(),
                    error = %e.message,
                    events = n,
                    "outbox dispatch failed; the relay will deliver the events"
                );
                (0, n)
            }
        }
    }

    /// Whether each store answers now, the circuit breaker's state, and the outbox's backlog.
    pub async fn health(&self) -> Health {
        let w = &self.inner.writer;
        let (redis, database, _) =
            async { tokio::join!(w.stream.ping(), w.store.ping(), self.inner.outbox.look()) }
                .with_subscriber(w.dispatch.clone())
                .await;
        let m = &self.inner.outbox.metrics;
        Health {
            redis,
            database,
            circuit: w.circuit.state().as_str(),
            in_flight_bytes: self.inner.in_flight.bytes.load(Ordering::Relaxed) as u64,
            outbox_pending: m.backlog.load(Ordering::Relaxed),
            outbox_oldest_age_ms: m.oldest_age_ms.load(Ordering::Relaxed),
        }
    }

    /// Refuses new publishes, waits for the ones in flight, then closes the connections.
    /// Later calls reject with `ERR_CLOSED`; calling it again is harmless.
    pub async fn close(&self) {
        let inner = &self.inner;
        if inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        loop {
            let idle = inner.in_flight.idle.notified();
            if inner.in_flight.events.load(Ordering::SeqCst) == 0 {
                break;
            }
            // Bounded: every group finishes its retries and undo within a few timeouts.
            let _ = tokio::time::timeout(inner.timeout, idle).await;
        }
        inner.outbox.close().await;
        inner.writer.stream.close();
        inner.writer.store.close().await;
    }
}
