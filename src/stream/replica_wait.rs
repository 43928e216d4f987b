//! `replicaAcks`: each append is followed by `WAIT n <ms>` in the same request, on a connection
//! of its own (a lane), and the publish is acknowledged only when `n` replicas hold its entries.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::config::RedisConfig;
use crate::errors::{Code, PublishError};
use crate::stream::link::next_reply;
use crate::stream::link::RedisLink;

/// How late Redis may answer a WAIT that timed out: it checks blocked clients' timeouts between
/// event-loop turns, which an idle server takes every 1000/`hz` ms (100 ms at the default `hz`
/// 10; measured here: WAIT answers up to ~100 ms after its timeout with the replica stopped).
const WAIT_LATE_MS: u64 = 100;

/// The replica acknowledgement asked for (`replicaAcks`), and the lanes its WAITs run on.
#[derive(Clone)]
pub struct ReplicaWait {
    acks: u32,
    /// Connections of their own for the appends (each followed by a WAIT), one per group in
    /// flight, so one group's WAIT never holds up another's append. `None` without `replicaAcks`.
    lanes: Option<Arc<Lanes>>,
}

/// Connections handed out one per append.
struct Lanes {
    free: Mutex<Vec<RedisLink>>,
    available: Semaphore,
}

/// The connection one append goes out on: a lane of its own with `replicaAcks` (back in the pool
/// when dropped), else the shared one.
pub struct AppendConn<'a> {
    /// The connection to send on.
    pub link: RedisLink,
    lane: Option<(&'a Lanes, SemaphorePermit<'a>)>,
}

impl Drop for AppendConn<'_> {
    fn drop(&mut self) {
        if let Some((lanes, _permit)) = &self.lane {
            lanes
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.link.clone());
        }
    }
}

impl ReplicaWait {
    /// With `replicaAcks` ≥ 1, opens one lane per group that can be in flight beside `conn`.
    pub async fn connect(
        conn: &RedisLink,
        cfg: &RedisConfig,
        slot: u16,
        timeout: Duration,
    ) -> Result<Self, PublishError> {
        let lanes = if cfg.replica_acks > 0 {
            let n = crate::config::MAX_GROUPS_IN_FLIGHT as usize;
            let links = conn.lanes(cfg, slot, timeout, n).await?;
            Some(Arc::new(Lanes {
                available: Semaphore::new(links.len()),
                free: Mutex::new(links),
            }))
        } else {
            None
        };
        Ok(ReplicaWait {
            acks: cfg.replica_acks,
            lanes,
        })
    }

    /// The connection for one append: a free lane (waiting only if more groups than lanes append
    /// at once), or `shared` without `replicaAcks`.
    pub async fn conn(&self, shared: &RedisLink) -> AppendConn<'_> {
        let Some(lanes) = &self.lanes else {
            return AppendConn {
                link: shared.clone(),
                lane: None,
            };
        };
        let permit = lanes
            .available
            .acquire()
            .await
            .expect("the lane semaphore is never closed");
        // A permit always finds a link (as many permits as links); the shared one otherwise.
        match lanes.free.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            Some(link) => AppendConn {
                link,
                lane: Some((lanes, permit)),
            },
            None => AppendConn {
                link: shared.clone(),
                lane: None,
            },
        }
    }

    /// Adds the WAIT to an append's request; returns its timeout (ms), `None` without
    /// `replicaAcks`. The callers' own timeoutMs started before this group did: the WAIT ends a
    /// little before `until`, so they get its answer rather than ERR_TIMEOUT, allowing for Redis
    /// answering it late ([`WAIT_LATE_MS`]), and never 0, which would block for ever.
    pub fn add_wait(&self, pipe: &mut redis::Pipeline, until: Instant) -> Option<u64> {
        if self.acks == 0 {
            return None;
        }
        let left = until.saturating_duration_since(Instant::now()).as_millis() as u64;
        let ms = left
            .saturating_sub((left / 5).max(20) + WAIT_LATE_MS)
            .max(1);
        pipe.cmd("WAIT").arg(self.acks).arg(ms);
        Some(ms)
    }

    /// WAIT's reply after an append, when one was sent: (replicas that acknowledged, its
    /// timeout ms).
    pub fn reply(
        replies: &mut impl Iterator<Item = redis::Value>,
        wait_ms: Option<u64>,
    ) -> Result<Option<(u64, u64)>, PublishError> {
        let Some(ms) = wait_ms else { return Ok(None) };
        let acked: u64 = next_reply(replies, "WAIT")?;
        Ok(Some((acked, ms)))
    }

    /// `ERR_NOT_REPLICATED` (outcome unknown: the entries are on the primary) when fewer than
    /// `replicaAcks` replicas acknowledged an append.
    pub fn check(&self, replicas: Option<(u64, u64)>) -> Result<(), PublishError> {
        let Some((acked, ms)) = replicas else {
            return Ok(());
        };
        if acked >= u64::from(self.acks) {
            return Ok(());
        }
        let mut e = PublishError::new(
            Code::NotReplicated,
            format!(
                "the entries are on the primary, but {acked} of the {} replicas asked for (replicaAcks) acknowledged them within {ms} ms; retry with the same eventId",
                self.acks
            ),
        );
        e.outcome_unknown = true;
        Err(e)
    }

    /// Stops the lanes' background work and drops them.
    pub fn close(&self) {
        if let Some(lanes) = &self.lanes {
            for l in lanes.free.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                l.close();
            }
        }
    }
}
