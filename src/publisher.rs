//! The publishing pipeline, plain async Rust (no napi): validation, group commit, the
//! reserved ID → row → entry (→ stream_id update if the ID was not taken) write order, undo on
//! failure, retries of ambiguous steps, and the lifecycle (close, health, reconcile).
//!
//! Concurrent `publish` calls are coalesced: while a group is being written, new events queue
//! up and go out together as the next group (one multi-row INSERT with the reserved entry IDs,
//! one script call to Redis). A lone publish goes out at once: there is no linger timer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::Mutex;

use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use crate::circuit::{Admit, Circuit};
use crate::config::{Config, EntryIds};
use crate::entry_ids::{host_now_us, EntryIdClock};
use crate::envelope::{EventInput, PreparedEvent};
use crate::errors::{Code, PublishError};
use crate::ids;
use crate::logging::{Level, LogRecord, LogSink, Logger};
use crate::metadata_store::{ExistingRow, MetadataStore, PendingRow};
use crate::stream_writer::{Append, StreamWriter, SLACK_MS};

/// Most events coalesced into one group of single publishes (a batch is never split).
const MAX_GROUP_EVENTS: usize = 1024;
/// Most groups being written at once (bounded by the pool size). Measured here with 64 publishes
/// in flight: 1 group ≈ 6 k events/s, 4 ≈ 11–12 k, 8 ≈ 9 k (smaller groups, more commits).
const MAX_GROUPS_IN_FLIGHT: u32 = 4;
/// Rows per INSERT/UPDATE statement of a large group; chunks run on parallel connections.
const ROWS_PER_STATEMENT: usize = 250;
/// Longest wait of a group for the groups reserved before it to append (so entries go out in
/// the order of their proposed IDs). A group held up longer than this is overtaken: its entries
/// then get Redis-assigned IDs and its rows a second statement.
const APPEND_ORDER_WAIT: Duration = Duration::from_millis(5);
/// Longest wait for a group to fill up to the size of the previous one (never on the idle path:
/// after a group of one, the next group goes out at once).
const GATHER_WAIT: Duration = Duration::from_millis(1);

/// What `health()` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Redis answered a PING.
    pub redis: bool,
    /// Postgres answered a `SELECT 1`.
    pub database: bool,
    /// `closed`, `open` or `half-open`.
    pub circuit: &'static str,
}

/// What `reconcile()` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// PENDING rows examined (created within the window, older than the cut-off).
    pub examined: u32,
    /// Rows whose entry exists after all: their `stream_id` was set.
    pub repaired: u32,
    /// Rows with no entry: marked FAILED, `last_error` 'never published'.
    pub failed: u32,
}

type Reply = oneshot::Sender<Result<Vec<String>, PublishError>>;

/// One caller's events: a single publish or a whole batch, settled together.
struct Job {
    events: Vec<PreparedEvent>,
    batch: bool,
    trial: bool,
    reply: Reply,
}

/// Counts events admitted but not yet settled, so `close()` can wait for them.
#[derive(Default)]
struct InFlight {
    events: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    fn done(&self, n: usize) {
        if self.events.fetch_sub(n, Ordering::AcqRel) == n {
            self.idle.notify_waiters();
        }
    }
}

/// Room reserved for `n` events by `Publisher::admit`. Dropped unused (bad input, a dropped
/// call), it gives the room back and ends a circuit-breaker trial without counting it.
pub struct Admission {
    in_flight: Arc<InFlight>,
    writer: Arc<Writer>,
    n: usize,
    trial: bool,
}

impl Admission {
    /// Hands the reservation over to a job; returns whether it is the circuit's trial.
    fn take(&mut self) -> bool {
        self.n = 0;
        std::mem::take(&mut self.trial)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.n > 0 {
            self.in_flight.done(self.n);
        }
        if self.trial {
            self.writer.circuit.record(Err(Code::InvalidEvent), true);
        }
    }
}

/// Writes groups; shared by the leaders that take turns writing them.
struct Writer {
    stream: StreamWriter,
    store: MetadataStore,
    log: Logger,
    circuit: Circuit,
    timeout: Duration,
    in_flight: Arc<InFlight>,
    queue: Mutex<Vec<Job>>,
    arrived: Notify,
    slots: Arc<Semaphore>,
    last_group_jobs: AtomicUsize,
    entry_ids: EntryIdClock,
    /// `EntryIds::Reserved`: rows are inserted with reserved entry IDs.
    reserve_ids: bool,
}

/// A connected publisher. Cheap to clone; all clones share one set of connections.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Arc<Writer>,
    in_flight: Arc<InFlight>,
    closed: AtomicBool,
    default_source: String,
    max_payload_bytes: usize,
    max_in_flight: usize,
    timeout: Duration,
}

impl Publisher {
    /// Connects to Redis and Postgres and verifies both (Redis version, script load, the
    /// metadata table), and reads the Redis clock for reserved entry IDs.
    pub async fn connect(cfg: Config, sink: Arc<dyn LogSink>) -> Result<Publisher, PublishError> {
        let log = Logger::new(cfg.log_level, sink);
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
        log.log(Level::Debug, || {
            LogRecord::new(
                Level::Debug,
                format!(
                    "connected to Redis {} and Postgres {}",
                    cfg.redis.display, cfg.database.display
                ),
            )
        });
        let entry_ids = EntryIdClock::default();
        let reserve_ids = cfg.entry_ids == EntryIds::Reserved;
        if reserve_ids {
            // Learn the Redis clock before the first reservation (every append refreshes it).
            let host = host_now_us();
            entry_ids.sync(stream.time_us().await?, host);
        }
        let in_flight = Arc::new(InFlight::default());
        let writer = Arc::new(Writer {
            stream,
            store,
            log,
            circuit: Circuit::new(cfg.circuit_threshold, cfg.circuit_cooldown),
            timeout: cfg.timeout,
            in_flight: in_flight.clone(),
            queue: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            slots: Arc::new(Semaphore::new(
                cfg.database.pool_size.clamp(1, MAX_GROUPS_IN_FLIGHT) as usize,
            )),
            last_group_jobs: AtomicUsize::new(1),
            entry_ids,
            reserve_ids,
        });
        Ok(Publisher {
            inner: Arc::new(Inner {
                writer,
                in_flight,
                closed: AtomicBool::new(false),
                default_source: cfg.source,
                max_payload_bytes: cfg.max_payload_bytes,
                max_in_flight: cfg.max_in_flight,
                timeout: cfg.timeout,
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

    /// Publishes one event; resolves to its event id once its row and entry are both written.
    pub async fn publish(&self, input: EventInput) -> Result<String, PublishError> {
        let admission = self.admit(1)?;
        self.publish_admitted(admission, input).await
    }

    /// Publishes events atomically; resolves to their ids in input order.
    pub async fn publish_batch(
        &self,
        inputs: Vec<EventInput>,
    ) -> Result<Vec<String>, PublishError> {
        let admission = self.admit(inputs.len())?;
        self.publish_batch_admitted(admission, inputs).await
    }

    /// Reserves room for `n` events, synchronously: the binding calls it in the caller's thread,
    /// so publishes made before `close()` are admitted before `close()` starts waiting. Refuses
    /// with `ERR_CLOSED`, `ERR_OVERLOADED` or `ERR_CIRCUIT_OPEN`.
    pub fn admit(&self, n: usize) -> Result<Admission, PublishError> {
        let inner = &self.inner;
        // Count first, then check `closed`: `close()` sets `closed` and then waits for the count,
        // so an event is either refused here or waited for there.
        let before = inner.in_flight.events.fetch_add(n, Ordering::SeqCst);
        let mut admission = Admission {
            in_flight: inner.in_flight.clone(),
            writer: inner.writer.clone(),
            n,
            trial: false,
        };
        if inner.closed.load(Ordering::SeqCst) {
            return Err(PublishError::closed());
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
    pub async fn publish_admitted(
        &self,
        admission: Admission,
        input: EventInput,
    ) -> Result<String, PublishError> {
        let event = self.prepare(input)?;
        let mut ids = self.submit(admission, vec![event], false).await?;
        Ok(ids.pop().unwrap_or_default())
    }

    /// `publish_batch` after `admit(inputs.len())`.
    pub async fn publish_batch_admitted(
        &self,
        admission: Admission,
        inputs: Vec<EventInput>,
    ) -> Result<Vec<String>, PublishError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let mut events = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.into_iter().enumerate() {
            events
                .push(self.prepare(input).map_err(|e| {
                    PublishError::new(e.code, format!("events[{i}].{}", e.message))
                })?);
        }
        let mut seen = std::collections::HashSet::new();
        for (i, e) in events.iter().enumerate() {
            if e.caller_event_id && !seen.insert(e.event_id.as_str()) {
                return Err(PublishError::invalid(
                    &format!("events[{i}].context.eventId"),
                    "repeats an eventId earlier in the same batch",
                ));
            }
        }
        self.submit(admission, events, true).await
    }

    fn prepare(&self, input: EventInput) -> Result<PreparedEvent, PublishError> {
        PreparedEvent::prepare(
            input,
            &self.inner.default_source,
            self.inner.max_payload_bytes,
        )
    }

    /// Queues admitted events for a group and waits for their outcome, at most `timeoutMs`.
    async fn submit(
        &self,
        mut admission: Admission,
        events: Vec<PreparedEvent>,
        batch: bool,
    ) -> Result<Vec<String>, PublishError> {
        let (reply, rx) = oneshot::channel();
        // From here the group settles the admission (counts and circuit), not its Drop.
        let trial = admission.take();
        let job = Job {
            events,
            batch,
            trial,
            reply,
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

    /// Whether each store answers now, and the circuit breaker's state.
    pub async fn health(&self) -> Health {
        let w = &self.inner.writer;
        let (redis, database) = tokio::join!(w.stream.ping(), w.store.ping());
        Health {
            redis,
            database,
            circuit: w.circuit.state().as_str(),
        }
    }

    /// Settles rows a crashed process may have left without an entry: PENDING rows created
    /// between `within_ms` and `older_than_ms` ago whose `stream_id` does not hold their entry.
    /// A row whose entry is in the stream elsewhere gets that `stream_id`; a row without an entry
    /// is marked FAILED with `last_error` 'never published'. Rows older than the stream's first
    /// entry (their entry may have been trimmed) are left alone.
    pub async fn reconcile(
        &self,
        older_than_ms: u64,
        within_ms: u64,
    ) -> Result<ReconcileReport, PublishError> {
        const PAGE: i64 = 1000;
        let w = &self.inner.writer;
        let mut report = ReconcileReport::default();
        // Rows from before the last trimmed or deleted entry may have lost their entry to
        // trimming: those are left alone. Without a stream there is nothing to compare with.
        let Some(removed_ms) = w.stream.removed_up_to_ms().await? else {
            return Ok(report);
        };
        let mut after: Option<(i64, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(ms, id)| (*ms, id.as_str()));
            let page = w
                .store
                .pending_rows(older_than_ms, within_ms, cursor, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.created_ms, last.event_id.clone()));
            report.examined += page.len() as u32;
            let pairs: Vec<(&str, &str)> = page
                .iter()
                .map(|r| (r.stream_id.as_str(), r.event_id.as_str()))
                .collect();
            let held = w.stream.entries_hold(&pairs).await?;
            let unheld: Vec<&PendingRow> = page
                .iter()
                .zip(held)
                .filter(|(r, held)| !held && r.created_ms - SLACK_MS > removed_ms as i64)
                .map(|(r, _)| r)
                .collect();
            if unheld.is_empty() {
                continue;
            }
            let wanted: Vec<(&str, i64)> = unheld
                .iter()
                .map(|r| (r.event_id.as_str(), r.created_ms))
                .collect();
            let found = w.stream.find_entries(&wanted).await?;
            let (mut ev, mut st) = (Vec::new(), Vec::new());
            let (mut never_ev, mut never_st) = (Vec::new(), Vec::new());
            for r in unheld {
                match found.get(r.event_id.as_str()) {
                    Some(sid) => {
                        ev.push(r.event_id.as_str());
                        st.push(sid.as_str());
                    }
                    None => {
                        never_ev.push(r.event_id.as_str());
                        never_st.push(r.stream_id.as_str());
                    }
                }
            }
            if !ev.is_empty() {
                w.store.set_stream_ids(&ev, &st, true).await?;
                report.repaired += ev.len() as u32;
            }
            if !never_ev.is_empty() {
                report.failed += w.store.mark_never_published(&never_ev, &never_st).await? as u32;
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        Ok(report)
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
        inner.writer.store.close().await;
    }
}

impl Writer {
    /// Queues a job and makes sure a leader will write it: the first caller that finds a free
    /// slot leads, writing groups until the queue is empty. No separate committer task, so a
    /// lone publish costs no extra thread hand-off.
    fn enqueue(self: &Arc<Self>, job: Job) {
        self.lock_queue().push(job);
        self.arrived.notify_one();
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            tokio::spawn(self.clone().lead(slot));
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<Job>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn lead(self: Arc<Self>, slot: OwnedSemaphorePermit) {
        let mut slot = Some(slot);
        loop {
            let jobs = self.gather().await;
            if !jobs.is_empty() {
                self.write_group(jobs).await;
                continue;
            }
            // Give the slot back, then look once more: a job queued after `gather` saw an empty
            // queue, while this slot was still held, would otherwise wait for the next caller.
            drop(slot.take());
            if self.lock_queue().is_empty() {
                return;
            }
            match self.slots.clone().try_acquire_owned() {
                Ok(s) => slot = Some(s),
                Err(_) => return, // another leader has it
            }
        }
    }

    /// Takes the queued jobs as the next group. Under load (the previous group had several
    /// jobs) it waits up to `GATHER_WAIT` for as many jobs as last time, so that a burst of
    /// callers released together goes out together instead of as one straggler plus the rest.
    async fn gather(&self) -> Vec<Job> {
        let expected = self.last_group_jobs.load(Ordering::Relaxed);
        if expected > 1 {
            let until = Instant::now() + GATHER_WAIT;
            loop {
                let queued = self.lock_queue().len();
                if queued == 0 || queued >= expected {
                    break;
                }
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let _ = tokio::time::timeout(until - now, self.arrived.notified()).await;
            }
        }
        let mut queue = self.lock_queue();
        let mut count = 0;
        let mut take = 0;
        for job in queue.iter() {
            if take > 0 && count + job.events.len() > MAX_GROUP_EVENTS {
                break;
            }
            count += job.events.len();
            take += 1;
        }
        let jobs: Vec<Job> = queue.drain(..take).collect();
        drop(queue);
        if !jobs.is_empty() {
            self.last_group_jobs.store(jobs.len(), Ordering::Relaxed);
        }
        jobs
    }

    async fn write_group(&self, jobs: Vec<Job>) {
        let results = self.write(&jobs).await;
        for (job, result) in jobs.into_iter().zip(results) {
            self.circuit
                .record(result.as_ref().map(|_| ()).map_err(|e| e.code), job.trial);
            self.log_outcome(&job, &result);
            self.in_flight.done(job.events.len());
            // The caller may have timed out already; the outcome is logged either way.
            let _ = job.reply.send(result);
        }
    }

    /// Writes a group: rows (with proposed entry IDs), entries, and the `stream_id` of any row
    /// whose entry could not take its proposal. Returns one result per job.
    async fn write(&self, jobs: &[Job]) -> Vec<Result<Vec<String>, PublishError>> {
        let deadline = Instant::now() + self.timeout;
        let all: Vec<&PreparedEvent> = jobs.iter().flat_map(|j| j.events.iter()).collect();
        let fail_all = |e: PublishError| jobs.iter().map(|_| Err(e.clone())).collect();

        // 1. Rows first (PENDING, stream_id = the entry ID proposed for the event), so a consumer
        //    never sees an entry without its row. Idempotent, so an ambiguous failure is retried.
        let (proposed, turn) = if self.reserve_ids {
            let (ids, turn) = self.entry_ids.reserve(all.len(), host_now_us());
            (ids, Some(turn))
        } else {
            (Vec::new(), None)
        };
        // With `entryIds: 'server'` nothing is reserved: rows say '0-0' until step 3.
        let rows: Vec<(&PreparedEvent, &str)> = all
            .iter()
            .copied()
            .zip(
                proposed
                    .iter()
                    .map(String::as_str)
                    .chain(std::iter::repeat("0-0")),
            )
            .collect();
        let existing = match retry(deadline, false, || self.insert_rows(&rows)).await {
            Ok(existing) => existing,
            Err(e) => {
                // A failed single statement inserted nothing, but a lost reply may hide a commit and
                // other chunks of a large group may have committed.
                if e.outcome_unknown || all.len() > ROWS_PER_STATEMENT {
                    self.undo_rows(&rows).await;
                }
                return fail_all(e);
            }
        };

        // A retried caller id that belongs to another event fails that caller only.
        let mut results: Vec<Option<Result<Vec<String>, PublishError>>> = vec![None; jobs.len()];
        if !existing.is_empty() {
            for (i, job) in jobs.iter().enumerate() {
                for e in &job.events {
                    let Some(row) = existing.get(&e.event_id) else {
                        continue;
                    };
                    if row.event_type != e.event_type || row.tenant_id != e.tenant_id {
                        results[i] = Some(Err(PublishError::new(
                            Code::EventIdConflict,
                            format!(
                                "eventId '{}' already belongs to a {} event of another tenant or type",
                                e.event_id, row.event_type
                            ),
                        )));
                    }
                }
            }
        }
        // Each live event with the stream id its row holds: the proposal, or an earlier call's.
        let mut live: Vec<(&PreparedEvent, &str)> = Vec::with_capacity(all.len());
        let mut conflicted: Vec<(&PreparedEvent, &str)> = Vec::new();
        let mut at = 0;
        for (job, result) in jobs.iter().zip(&results) {
            for e in &job.events {
                let row = &rows[at];
                at += 1;
                let held = existing.get(&e.event_id).map(|r| r.stream_id.as_str());
                if result.is_some() {
                    if held.is_none() {
                        conflicted.push(*row);
                    }
                } else {
                    live.push((e, held.unwrap_or(row.1)));
                }
            }
        }
        if !conflicted.is_empty() {
            self.undo_rows(&conflicted).await;
        }
        if live.is_empty() {
            // Every job already has its (conflict) result.
            return merge(results, Ok(Vec::new()));
        }

        // 2. Entries, in one atomic script call, each at its row's stream id when Redis accepts
        //    it. A lost reply is retried with the same token, which returns the first call's ids
        //    instead of appending twice. Retried caller ids are deduplicated.
        let token = ids::new_id();
        let appends: Vec<Append> = live
            .iter()
            .map(|(e, held)| Append {
                dedup_id: e.caller_event_id.then_some(e.event_id.as_str()),
                retried: existing.contains_key(&e.event_id),
                // '0-0' (`entryIds: 'server'`, rows of older versions) is no ID to append at.
                proposed: if *held == "0-0" { "" } else { held },
                json: &e.json,
            })
            .collect();
        if let Some(turn) = &turn {
            turn.wait(APPEND_ORDER_WAIT).await;
        }
        let appended = retry(deadline, false, || self.stream.append(&token, &appends)).await;
        drop(turn);
        let entry_ids = match appended {
            Ok((redis_us, ids)) => {
                self.entry_ids.sync(redis_us, host_now_us());
                ids
            }
            Err(e) => {
                // Definite: nothing was appended, so this call's rows go. Unknown even after
                // retries: the rows stay PENDING for a retry with the same eventId or reconcile().
                if !e.outcome_unknown {
                    let fresh: Vec<(&PreparedEvent, &str)> = live
                        .iter()
                        .copied()
                        .filter(|(ev, _)| !existing.contains_key(&ev.event_id))
                        .collect();
                    self.undo_rows(&fresh).await;
                }
                return merge(results, Err(e));
            }
        };

        // 3. Rows whose entry did not take the row's id (another producer got ahead, the clock
        //    ran ahead of Redis's, or a retry's entry is older) get the real one. The entries are
        //    out and consumers may have read them, so they are never taken back: the patch
        //    (idempotent) is retried through any failure until the deadline. If it still fails,
        //    the caller gets an outcome-unknown error; a retry with the same eventId completes it,
        //    and reconcile() repairs the row.
        let (mut patch_ev, mut patch_st) = (Vec::new(), Vec::new());
        let mut shared_ids = false;
        for ((e, held), id) in live.iter().zip(&entry_ids) {
            if id != held {
                self.entry_ids.observe(id);
                patch_ev.push(e.event_id.as_str());
                patch_st.push(id.as_str());
                shared_ids |= e.caller_event_id;
            }
        }
        if !patch_ev.is_empty() {
            let patched = retry(deadline, true, || {
                self.patch_rows(&patch_ev, &patch_st, shared_ids)
            })
            .await;
            if let Err(e) = patched {
                let mut e = PublishError::new(
                    e.code,
                    format!(
                        "the event is in the stream but its row's stream_id could not be set ({}); \
                         retry with the same eventId, or reconcile() repairs it",
                        e.message
                    ),
                );
                e.outcome_unknown = true;
                return merge(results, Err(e));
            }
        }

        // `entry_ids` follows `live`: the events of the jobs without a result, in order.
        let mut out = Vec::with_capacity(jobs.len());
        let mut at = 0;
        for (r, job) in results.into_iter().zip(jobs) {
            out.push(r.unwrap_or_else(|| {
                self.log_published(job, entry_ids.get(at).map(String::as_str));
                at += job.events.len();
                Ok(job.events.iter().map(|e| e.event_id.clone()).collect())
            }));
        }
        out
    }

    /// Inserts the rows, large groups as parallel statements of `ROWS_PER_STATEMENT` rows on
    /// separate connections (a failed chunk fails the step; `write` then undoes every chunk).
    async fn insert_rows(
        &self,
        rows: &[(&PreparedEvent, &str)],
    ) -> Result<HashMap<String, ExistingRow>, PublishError> {
        if rows.len() <= ROWS_PER_STATEMENT {
            return self.store.insert_pending(rows).await;
        }
        // Chunks cover disjoint ranges of event ids, so parallel statements of two groups that
        // share ids take their row locks in one global order and cannot deadlock.
        let mut sorted = rows.to_vec();
        sorted.sort_unstable_by(|a, b| a.0.event_id.cmp(&b.0.event_id));
        let parts = futures_util::future::join_all(
            sorted
                .chunks(ROWS_PER_STATEMENT)
                .map(|c| self.store.insert_pending(c)),
        )
        .await;
        let mut existing = HashMap::new();
        let mut failure: Option<PublishError> = None;
        for part in parts {
            match part {
                Ok(m) => existing.extend(m),
                // Prefer reporting a definite failure: it decides whether `write` undoes.
                Err(e) => {
                    if failure.as_ref().is_none_or(|f| f.outcome_unknown) {
                        failure = Some(e);
                    }
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(existing),
        }
    }

    /// Sets the rows' stream ids, large groups as parallel statements.
    async fn patch_rows(
        &self,
        event_ids: &[&str],
        stream_ids: &[&str],
        shared_ids: bool,
    ) -> Result<(), PublishError> {
        if event_ids.len() <= ROWS_PER_STATEMENT {
            return self
                .store
                .set_stream_ids(event_ids, stream_ids, shared_ids)
                .await;
        }
        // Sorted by event id, for the same reason as the insert.
        let mut pairs: Vec<(&str, &str)> = event_ids
            .iter()
            .copied()
            .zip(stream_ids.iter().copied())
            .collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let (event_ids, stream_ids): (Vec<&str>, Vec<&str>) = pairs.into_iter().unzip();
        futures_util::future::try_join_all(
            event_ids
                .chunks(ROWS_PER_STATEMENT)
                .zip(stream_ids.chunks(ROWS_PER_STATEMENT))
                .map(|(e, s)| self.store.set_stream_ids(e, s, shared_ids)),
        )
        .await
        .map(|_| ())
    }

    /// Deletes rows of an undone publish (best effort: a failure is logged; `reconcile()` finds
    /// what is left).
    async fn undo_rows(&self, rows: &[(&PreparedEvent, &str)]) {
        if rows.is_empty() {
            return;
        }
        let ids: Vec<&str> = rows.iter().map(|(e, _)| e.event_id.as_str()).collect();
        let stream_ids: Vec<&str> = rows.iter().map(|(_, s)| *s).collect();
        if let Err(e) = self.store.delete(&ids, &stream_ids).await {
            self.log.log(Level::Error, || {
                let mut r = LogRecord::new(
                    Level::Error,
                    "could not delete the rows of a failed publish; reconcile() will mark them FAILED",
                );
                r.code = Some(e.code.as_str());
                r.error = Some(e.message.clone());
                r.event_ids = Some(ids.iter().map(|s| s.to_string()).collect());
                r
            });
        }
    }

    /// Logs a published job; `stream_id` is its first event's entry ID.
    fn log_published(&self, job: &Job, stream_id: Option<&str>) {
        if !self.log.enabled(Level::Info) {
            return;
        }
        if job.batch {
            let mut r = LogRecord::new(Level::Info, "event batch published");
            r.count = Some(job.events.len() as u32);
            r.event_ids = Some(job.events.iter().map(|e| e.event_id.clone()).collect());
            self.log.log(Level::Info, || r);
        } else if let Some(e) = job.events.first() {
            self.log.log(Level::Info, || {
                let mut r = LogRecord::new(Level::Info, "event published");
                r.event_id = Some(e.event_id.clone());
                r.event_type = Some(e.event_type.clone());
                r.correlation_id = Some(e.correlation_id.clone());
                r.tenant_id = Some(e.tenant_id.clone());
                r.stream_id = stream_id.map(str::to_string);
                r
            });
        }
    }

    fn log_outcome(&self, job: &Job, result: &Result<Vec<String>, PublishError>) {
        let Err(err) = result else { return };
        self.log.log(Level::Error, || {
            let what = if job.batch {
                "event batch failed"
            } else {
                "event publish failed"
            };
            let mut r = LogRecord::new(Level::Error, what);
            r.code = Some(err.code.as_str());
            r.error = Some(err.message.clone());
            if job.batch {
                r.count = Some(job.events.len() as u32);
                r.event_ids = Some(job.events.iter().map(|e| e.event_id.clone()).collect());
            } else if let Some(e) = job.events.first() {
                r.event_id = Some(e.event_id.clone());
                r.event_type = Some(e.event_type.clone());
                r.correlation_id = Some(e.correlation_id.clone());
                r.tenant_id = Some(e.tenant_id.clone());
            }
            r
        });
    }
}

/// Fills every job that has no result yet with `outcome`.
fn merge(
    results: Vec<Option<Result<Vec<String>, PublishError>>>,
    outcome: Result<Vec<String>, PublishError>,
) -> Vec<Result<Vec<String>, PublishError>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| outcome.clone()))
        .collect()
}

/// Runs `op` until it succeeds, fails definitely, or `deadline` passes. Only failures whose
/// outcome is unknown are retried, unless `any_infrastructure` (for idempotent steps that must
/// not give up while a store restarts).
async fn retry<T, F, Fut>(
    deadline: Instant,
    any_infrastructure: bool,
    mut op: F,
) -> Result<T, PublishError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PublishError>>,
{
    let mut delay = Duration::from_millis(20);
    // Once an attempt may have taken effect, a later definite refusal does not undo that.
    let mut maybe_applied = false;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(mut e) => {
                // Retry on this attempt's own uncertainty (a definite refusal after a lost reply
                // ends the loop at once); report the uncertainty of any attempt.
                let retryable = e.outcome_unknown
                    || e.retryable_conflict
                    || (any_infrastructure && e.code.is_infrastructure());
                maybe_applied |= e.outcome_unknown;
                e.outcome_unknown = maybe_applied;
                if !retryable || Instant::now() + delay >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(250));
            }
        }
    }
}
