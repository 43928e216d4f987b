//! Group commit: concurrent `publish` calls queue up and go out together as one group (one
//! multi-row INSERT, one script call to Redis). A lone publish goes out at once: there is no
//! linger timer. The first caller that finds a free slot leads, writing groups until the queue
//! is empty; how a group is written is `group_write`'s concern.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::instrument::WithSubscriber;
use tracing::Dispatch;

use crate::errors::PublishError;
use crate::event::PreparedEvent;
use crate::metadata::MetadataStore;
use crate::metrics::{Metrics, Stage};
use crate::pipeline::admission::InFlight;
use crate::pipeline::circuit::Circuit;
use crate::stream::EntryIdClock;
use crate::stream::StreamWriter;

/// Most events coalesced into one group of single publishes (a batch is never split).
const MAX_GROUP_EVENTS: usize = 1024;

/// Longest wait for a group to fill up to the size of the previous one (never on the idle path:
/// after a group of one, the next group goes out at once).
const GATHER_WAIT: Duration = Duration::from_millis(1);

pub(crate) type Reply = oneshot::Sender<Result<Vec<String>, PublishError>>;

/// One caller's events: a single publish or a whole batch, settled together.
pub(crate) struct Job {
    pub(crate) events: Vec<PreparedEvent>,
    pub(crate) batch: bool,
    pub(crate) trial: bool,
    pub(crate) reply: Reply,
    /// When the caller's `timeoutMs` started.
    pub(crate) since: std::time::Instant,
}

/// Writes groups; shared by the leaders that take turns writing them.
pub(crate) struct Writer {
    pub(crate) stream: StreamWriter,
    /// The stream key (span and metric label).
    pub(crate) stream_name: String,
    pub(crate) metrics: Metrics,
    pub(crate) store: MetadataStore,
    /// The publisher's log dispatch; leaders' tasks carry it.
    pub(crate) dispatch: Dispatch,
    pub(crate) circuit: Arc<Circuit>,
    pub(crate) timeout: Duration,
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) queue: Mutex<Vec<Job>>,
    pub(crate) arrived: Notify,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) last_group_jobs: AtomicUsize,
    pub(crate) entry_ids: EntryIdClock,
    /// `EntryIds::Reserved`: rows are inserted with reserved entry IDs.
    pub(crate) reserve_ids: bool,
}

impl Writer {
    /// A writer with an empty queue; at most `pool_size` (and `MAX_GROUPS_IN_FLIGHT`) groups are
    /// written at once.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        stream: StreamWriter,
        stream_name: String,
        store: MetadataStore,
        dispatch: Dispatch,
        circuit: Arc<Circuit>,
        timeout: Duration,
        in_flight: Arc<InFlight>,
        pool_size: u32,
        entry_ids: EntryIdClock,
        reserve_ids: bool,
    ) -> Self {
        Writer {
            stream,
            metrics: Metrics::new(&stream_name),
            stream_name,
            store,
            dispatch,
            circuit,
            timeout,
            in_flight,
            queue: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            slots: Arc::new(Semaphore::new(
                pool_size.clamp(1, crate::config::MAX_GROUPS_IN_FLIGHT) as usize,
            )),
            last_group_jobs: AtomicUsize::new(1),
            entry_ids,
            reserve_ids,
        }
    }

    /// Queues a job and makes sure a leader will write it: the first caller that finds a free
    /// slot leads, writing groups until the queue is empty. No separate committer task, so a
    /// lone publish costs no extra thread hand-off.
    pub(crate) fn enqueue(self: &Arc<Self>, job: Job) {
        self.lock_queue().push(job);
        self.arrived.notify_one();
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            tokio::spawn(
                self.clone()
                    .lead(slot)
                    .with_subscriber(self.dispatch.clone()),
            );
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

    /// Runs one stage of a group write, timing it.
    pub(crate) async fn stage<T>(
        &self,
        stage: Stage,
        f: impl std::future::Future<Output = T>,
    ) -> T {
        let started = Instant::now();
        let out = f.await;
        self.metrics.stage(stage, started.elapsed());
        out
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
}
