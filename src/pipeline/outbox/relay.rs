//! Delivery of committed outbox rows: `dispatch` (the publisher's own commits, at once) and the
//! relay (whatever was committed and not delivered: a process killed after its commit, a
//! dispatch that failed, Redis down). Both deliver the same way, in one short Postgres
//! transaction that holds the rows' locks while their entries are appended:
//!
//! 1. claim: `SELECT … FROM event_outbox … FOR UPDATE SKIP LOCKED` (rows not committed yet are
//!    invisible, rows another deliverer holds are skipped: never waited for, never taken twice);
//! 2. append them in one script call, a dedup key per event (`{stream}:dedup:<eventId>`), so an
//!    append whose acknowledgement was lost returns the first entry's ID when tried again;
//! 3. ack: delete the outbox rows and set each event_metadata row's `stream_id`, then COMMIT
//!    (asynchronous commit: losing it only means a deduplicated second append).
//!
//! Nothing here needs a session: no LISTEN, no session advisory lock, no session SET (only
//! `SET LOCAL`), so it works through PgBouncer in transaction mode.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sqlx::{Acquire, Row};
use tokio::sync::{oneshot, Notify, Semaphore};
use tracing::instrument::WithSubscriber;

use crate::config::RelayConfig;
use crate::errors::{Code, PublishError};
use crate::metrics::Histogram;
use crate::pipeline::group_commit::Writer;
use crate::stream::Append;

/// Most rows one delivery claims (a relay pass loops at once while its pages are full).
const PAGE: i64 = 500;
/// Most deliveries of dispatched events running at once (each holds a pooled connection).
const DISPATCH_SLOTS: usize = 2;

/// Which path delivered an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// `dispatch()` after the caller's commit.
    Dispatch,
    /// The relay (recovered).
    Relay,
}

/// The outbox's counters, for `stats()`/`metrics()`/`health()`.
pub struct OutboxMetrics {
    /// Events appended by `dispatch`.
    pub dispatched: AtomicU64,
    /// Events appended by the relay.
    pub recovered: AtomicU64,
    /// Events a `dispatch` left to the relay (a store failed, the circuit was open).
    pub deferred: AtomicU64,
    /// Entries found already appended (a lost acknowledgement, found by dedup key or search).
    pub already_appended: AtomicU64,
    /// Rows in the outbox at the relay's last look.
    pub backlog: AtomicU64,
    /// Age of the oldest of them then, ms (0 when none).
    pub oldest_age_ms: AtomicU64,
    /// Seconds from the row's stage (its `created_at`) to its entry, per path.
    pub stage_to_entry: [Histogram; 2],
}

/// Seconds: 1 ms … 60 s.
const LATENCY_BOUNDS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

impl Default for OutboxMetrics {
    fn default() -> Self {
        OutboxMetrics {
            dispatched: AtomicU64::new(0),
            recovered: AtomicU64::new(0),
            deferred: AtomicU64::new(0),
            already_appended: AtomicU64::new(0),
            backlog: AtomicU64::new(0),
            oldest_age_ms: AtomicU64::new(0),
            stage_to_entry: [
                Histogram::with_bounds(LATENCY_BOUNDS),
                Histogram::with_bounds(LATENCY_BOUNDS),
            ],
        }
    }
}

type Waiter = oneshot::Sender<Result<usize, PublishError>>;

/// The outbox side of one publisher.
pub struct Outbox {
    writer: Arc<Writer>,
    /// Quoted table names.
    outbox_table: String,
    metadata_table: String,
    /// `stream = '<this stream>'`: the rows this publisher delivers.
    this_stream: String,
    dedup_window_ms: u64,
    relay: RelayConfig,
    /// The metrics.
    pub metrics: OutboxMetrics,
    queue: Mutex<Vec<(Vec<String>, Waiter)>>,
    slots: Arc<Semaphore>,
    stopping: AtomicBool,
    stop: Notify,
    relay_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A claimed row.
struct Claimed {
    event_id: String,
    envelope: String,
    trace: String,
    created_ms: i64,
}

impl Outbox {
    /// The outbox of a connected publisher; starts the relay when enabled.
    pub fn start(
        writer: Arc<Writer>,
        metadata_table: &str,
        outbox_table: &str,
        dedup_window_ms: u64,
        relay: RelayConfig,
        stream: &str,
    ) -> Result<Arc<Outbox>, PublishError> {
        let mut this_stream = String::from("stream = ");
        crate::metadata::push_text(&mut this_stream, stream)?;
        let outbox = Arc::new(Outbox {
            this_stream,
            writer,
            outbox_table: outbox_table.to_string(),
            metadata_table: metadata_table.to_string(),
            dedup_window_ms,
            relay,
            metrics: OutboxMetrics::default(),
            queue: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(DISPATCH_SLOTS)),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
            relay_task: Mutex::new(None),
        });
        if relay.enabled {
            let o = outbox.clone();
            let dispatch = outbox.writer.dispatch.clone();
            let task = tokio::spawn(async move { o.relay_loop().await }.with_subscriber(dispatch));
            *outbox.relay_task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        }
        Ok(outbox)
    }

    /// Appends the committed ones of `event_ids` now; resolves to how many this call appended.
    /// Rows not visible (not committed yet, rolled back, delivered already) are skipped.
    pub async fn dispatch(self: &Arc<Self>, event_ids: Vec<String>) -> Result<usize, PublishError> {
        if event_ids.is_empty() {
            return Ok(0);
        }
        let (tx, rx) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((event_ids, tx));
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            let o = self.clone();
            tokio::spawn(
                async move {
                    o.lead().await;
                    drop(slot);
                    // A call queued after the last look, while the slot was still held.
                    if !o.queue.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
                        if let Ok(slot) = o.slots.clone().try_acquire_owned() {
                            o.lead().await;
                            drop(slot);
                        }
                    }
                }
                .with_subscriber(self.writer.dispatch.clone()),
            );
        }
        rx.await.unwrap_or_else(|_| {
            Err(PublishError::new(
                Code::Closed,
                "the publisher stopped before the events were dispatched",
            ))
        })
    }

    /// Delivers queued dispatches, all queued calls together, until the queue is empty.
    async fn lead(&self) {
        loop {
            let jobs: Vec<(Vec<String>, Waiter)> =
                std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
            if jobs.is_empty() {
                return;
            }
            let ids: Vec<&str> = jobs
                .iter()
                .flat_map(|(ids, _)| ids.iter().map(String::as_str))
                .collect();
            let result = self.deliver_guarded(Claim::Ids(&ids), Path::Dispatch).await;
            match result {
                Ok(appended) => {
                    for (ids, waiter) in jobs {
                        let n = ids
                            .iter()
                            .filter(|id| appended.contains(id.as_str()))
                            .count();
                        let _ = waiter.send(Ok(n));
                    }
                }
                Err(e) => {
                    for (_, waiter) in jobs {
                        let _ = waiter.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// A delivery through the circuit breaker, bounded by `timeoutMs`.
    async fn deliver_guarded(
        &self,
        claim: Claim<'_>,
        path: Path,
    ) -> Result<std::collections::HashSet<String>, PublishError> {
        let w = &self.writer;
        let trial = w.circuit.admit()? == crate::pipeline::circuit::Admit::Trial;
        let result = match tokio::time::timeout(w.timeout, self.deliver(claim, path)).await {
            Ok(r) => r,
            Err(_) => Err(PublishError::timeout(
                "outbox delivery",
                w.timeout.as_millis() as u64,
            )),
        };
        w.circuit
            .record(result.as_ref().map(|_| ()).map_err(|e| e.code), trial);
        result
    }

    /// Claims rows, appends them, acknowledges them, in one transaction. Returns the event ids
    /// delivered (appended now, or found appended by an earlier attempt).
    async fn deliver(
        &self,
        claim: Claim<'_>,
        path: Path,
    ) -> Result<std::collections::HashSet<String>, PublishError> {
        let w = &self.writer;
        let mut conn = w
            .store
            .publishing_pool()
            .acquire()
            .await
            .map_err(|e| db("outbox claim", e))?;
        let mut tx = conn.begin().await.map_err(|e| db("outbox claim", e))?;
        let order = "ORDER BY o.created_at, o.stage_id, o.position FOR UPDATE OF o SKIP LOCKED";
        let cols = "o.event_id, o.envelope, COALESCE(o.trace, ''), (extract(epoch FROM o.created_at) * 1000)::int8";
        let table = &self.outbox_table;
        let sql = match claim {
            Claim::Ids(ids) => format!(
                "SET LOCAL synchronous_commit = off; \
                 SELECT {cols} FROM {table} AS o WHERE o.event_id = ANY({}) {order}",
                crate::metadata::text_arrays(&[ids])?
            ),
            // Whole stages (a batch is appended together): every row of the stages of the
            // oldest due rows.
            Claim::Due => format!(
                "SET LOCAL synchronous_commit = off; \
                 SELECT {cols} FROM {table} AS o WHERE o.stage_id IN (SELECT d.stage_id FROM {table} AS d \
                 WHERE d.{} AND d.created_at < clock_timestamp() - {}::int8 * INTERVAL '1 millisecond' \
                 ORDER BY d.created_at LIMIT {PAGE}) AND o.{} {order}",
                self.this_stream,
                self.relay.grace.as_millis(),
                self.this_stream
            ),
        };
        let c: &mut sqlx::PgConnection = &mut tx;
        let rows = sqlx::Executor::fetch_all(c, sqlx::raw_sql(&sql))
            .await
            .map_err(|e| db("outbox claim", e))?;
        let claimed: Vec<Claimed> = rows
            .iter()
            .map(|r| {
                Ok(Claimed {
                    event_id: r.try_get(0)?,
                    envelope: r.try_get(1)?,
                    trace: r.try_get(2)?,
                    created_ms: r.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| db("outbox claim", e))?;
        if claimed.is_empty() {
            // Nothing visible: not committed, rolled back, or delivered. Ends the transaction.
            tx.rollback().await.map_err(|e| db("outbox claim", e))?;
            return Ok(Default::default());
        }

        // Rows older than the dedup window may have been appended by an attempt whose
        // acknowledgement was lost and whose dedup key has expired since: look for their entries
        // by event id near their stage time before appending.
        let now_ms = crate::clock::now_ms() as i64;
        let stale: Vec<(&str, i64)> = claimed
            .iter()
            .filter(|c| now_ms - c.created_ms > self.dedup_window_ms as i64 / 2)
            .map(|c| (c.event_id.as_str(), c.created_ms))
            .collect();
        let found = if stale.is_empty() {
            Default::default()
        } else {
            w.stream.find_entries(&stale).await?
        };
        let to_append: Vec<&Claimed> = claimed
            .iter()
            .filter(|c| !found.contains_key(&c.event_id))
            .collect();
        let mut ids: std::collections::HashMap<&str, String> =
            found.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        self.metrics
            .already_appended
            .fetch_add(found.len() as u64, Ordering::Relaxed);
        if !to_append.is_empty() {
            let appends: Vec<Append> = to_append
                .iter()
                .map(|c| Append {
                    dedup_id: Some(c.event_id.as_str()),
                    retried: false,
                    proposed: "",
                    json: &c.envelope,
                    trace_context: &c.trace,
                })
                .collect();
            let token = std::sync::OnceLock::new();
            let deadline = Instant::now() + w.timeout;
            let appended = crate::pipeline::retry::retry(
                (&w.metrics, crate::metrics::Stage::Append),
                deadline,
                false,
                |again| w.stream.append(&token, &appends, deadline, again, None),
            )
            .await?;
            w.stream.check_replicas(&appended)?;
            w.entry_ids
                .sync(appended.redis_us, crate::stream::host_now_us());
            for (c, id) in to_append.iter().zip(appended.ids) {
                ids.insert(c.event_id.as_str(), id);
            }
        }
        let (event_ids, stream_ids): (Vec<&str>, Vec<&str>) = claimed
            .iter()
            .filter_map(|c| {
                ids.get(c.event_id.as_str())
                    .map(|s| (c.event_id.as_str(), s.as_str()))
            })
            .unzip();
        let ack = format!(
            "WITH u AS (SELECT * FROM unnest({}) AS u(event_id, stream_id)), \
             d AS (DELETE FROM {} AS o USING u WHERE o.event_id = u.event_id RETURNING o.event_id) \
             UPDATE {} AS m SET stream_id = u.stream_id FROM u JOIN d ON d.event_id = u.event_id \
             WHERE m.event_id = u.event_id",
            crate::metadata::text_arrays(&[&event_ids, &stream_ids])?,
            self.outbox_table,
            self.metadata_table
        );
        let c: &mut sqlx::PgConnection = &mut tx;
        sqlx::Executor::execute(c, sqlx::raw_sql(&ack))
            .await
            .map_err(|e| db("outbox acknowledgement", e))?;
        tx.commit()
            .await
            .map_err(|e| db("outbox acknowledgement", e))?;
        // Only now is delivery counted: a failed acknowledgement is tried again (deduplicated).
        let now_ms = crate::clock::now_ms() as i64;
        let (counter, hist) = match path {
            Path::Dispatch => (&self.metrics.dispatched, &self.metrics.stage_to_entry[0]),
            Path::Relay => (&self.metrics.recovered, &self.metrics.stage_to_entry[1]),
        };
        counter.fetch_add(to_append.len() as u64, Ordering::Relaxed);
        for c in &claimed {
            hist.observe((now_ms - c.created_ms).max(0) as f64 / 1000.0);
        }
        tracing::debug!(
            events = claimed.len(),
            path = ?path,
            "outbox events delivered"
        );
        Ok(claimed.into_iter().map(|c| c.event_id).collect())
    }

    /// Every `interval`: delivers due rows (page after page while pages are full), and records
    /// the backlog. One cheap query when idle.
    async fn relay_loop(self: Arc<Self>) {
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let due = match self.look().await {
                Ok(due) => due,
                Err(e) => {
                    tracing::debug!(code = e.code.as_str(), error = %e.message, "outbox relay could not look");
                    false
                }
            };
            if due {
                loop {
                    match self.deliver_guarded(Claim::Due, Path::Relay).await {
                        Ok(n) if n.len() as i64 >= PAGE => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(code = e.code.as_str(), error = %e.message, "outbox relay could not deliver; will try again");
                            break;
                        }
                    }
                }
            }
            let stop = self.stop.notified();
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let _ = tokio::time::timeout(self.relay.interval, stop).await;
        }
    }

    /// The backlog (size, oldest age) now, recorded in the metrics; whether any row is due.
    pub async fn look(&self) -> Result<bool, PublishError> {
        let sql = format!(
            "SELECT count(*)::int8, COALESCE((extract(epoch FROM clock_timestamp() - min(created_at)) * 1000)::int8, 0) FROM {} WHERE {}",
            self.outbox_table, self.this_stream
        );
        let row = tokio::time::timeout(self.writer.timeout, self.writer.store.fetch_warm_raw(&sql))
            .await
            .map_err(|_| {
                PublishError::timeout("outbox backlog", self.writer.timeout.as_millis() as u64)
            })?
            .map_err(|e| PublishError::database("outbox backlog", &e))?;
        let (n, age): (i64, i64) = match row.first() {
            Some(r) => (r.try_get(0).unwrap_or(0), r.try_get(1).unwrap_or(0)),
            None => (0, 0),
        };
        self.metrics
            .backlog
            .store(n.max(0) as u64, Ordering::Relaxed);
        self.metrics
            .oldest_age_ms
            .store(age.max(0) as u64, Ordering::Relaxed);
        Ok(n > 0 && age >= self.relay.grace.as_millis() as i64)
    }

    /// Stops the relay and waits for queued dispatches (`close()`).
    pub async fn close(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
        let task = self
            .relay_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = task {
            let _ = t.await;
        }
        // Dispatches in flight finish on their own (bounded by timeoutMs).
        let _ = tokio::time::timeout(
            self.writer.timeout,
            self.slots.acquire_many(DISPATCH_SLOTS as u32),
        )
        .await;
    }
}

fn db(what: &str, e: sqlx::Error) -> PublishError {
    PublishError::database(what, &e)
}

/// Which rows a delivery claims.
enum Claim<'a> {
    /// These events' rows (a dispatch).
    Ids(&'a [&'a str]),
    /// The oldest rows past the grace (the relay).
    Due,
}

impl OutboxMetrics {
    /// The values as `stats().outbox` shows them.
    pub fn snapshot(&self) -> serde_json::Value {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "backlog": l(&self.backlog),
            "oldestAgeMs": l(&self.oldest_age_ms),
            "dispatched": l(&self.dispatched),
            "recovered": l(&self.recovered),
            "deferred": l(&self.deferred),
            "alreadyAppended": l(&self.already_appended),
            "stageToEntrySeconds": {
                "dispatch": self.stage_to_entry[0].snapshot(),
                "relay": self.stage_to_entry[1].snapshot(),
            },
        })
    }

    /// The Prometheus text of the outbox's metrics, labelled like the publisher's.
    pub fn prometheus(&self, stream: &str) -> String {
        use crate::metrics::{escape, header, histogram, MESSAGING_SYSTEM};
        use std::fmt::Write;
        let mut o = String::with_capacity(2048);
        let dest = format!(
            "messaging_system=\"{MESSAGING_SYSTEM}\",messaging_destination_name=\"{}\"",
            escape(stream)
        );
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        header(
            &mut o,
            "event_publisher_outbox_pending_events",
            "gauge",
            "Events committed to the outbox and not yet appended, at the relay's last look.",
        );
        let _ = writeln!(
            o,
            "event_publisher_outbox_pending_events{{{dest}}} {}",
            l(&self.backlog)
        );
        header(
            &mut o,
            "event_publisher_outbox_oldest_pending_seconds",
            "gauge",
            "Age of the oldest of them (since staging).",
        );
        let _ = writeln!(
            o,
            "event_publisher_outbox_oldest_pending_seconds{{{dest}}} {}",
            l(&self.oldest_age_ms) as f64 / 1000.0
        );
        header(&mut o, "event_publisher_outbox_delivered_events_total", "counter", "Outbox events appended, by path: dispatch (after the caller's commit) or relay (recovered).");
        let _ = writeln!(
            o,
            "event_publisher_outbox_delivered_events_total{{{dest},path=\"dispatch\"}} {}",
            l(&self.dispatched)
        );
        let _ = writeln!(
            o,
            "event_publisher_outbox_delivered_events_total{{{dest},path=\"relay\"}} {}",
            l(&self.recovered)
        );
        header(
            &mut o,
            "event_publisher_outbox_deferred_events_total",
            "counter",
            "Events a dispatch left to the relay (a store failed).",
        );
        let _ = writeln!(
            o,
            "event_publisher_outbox_deferred_events_total{{{dest}}} {}",
            l(&self.deferred)
        );
        header(
            &mut o,
            "event_publisher_outbox_stage_to_entry_seconds",
            "histogram",
            "Time from staging (in the caller's transaction) to the stream entry, by path.",
        );
        for (path, h) in ["dispatch", "relay"].iter().zip(&self.stage_to_entry) {
            histogram(
                &mut o,
                "event_publisher_outbox_stage_to_entry_seconds",
                &format!("{dest},path=\"{path}\""),
                &h.snapshot(),
            );
        }
        o
    }
}
