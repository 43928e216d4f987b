//! Keeps the connection the last publishing statement ran on for the next one. sqlx's pool hands
//! out idle connections first-in first-out, so one publish at a time went round all of its
//! connections, each server process woken cold in turn (sequential publishes, bench, medians of
//! 3: 1,554 events/s and Postgres CPU 213 µs/event with the pool of 10 used in turn, 1,744 and
//! 197 with this).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::Postgres;

/// How long a kept connection may sit unused and still be taken: one kept longer goes back to
/// the pool at the next checkout (where the pool's idle and lifetime rules see it again).
const KEEP_FOR: Duration = Duration::from_secs(1);

/// The kept connection and when it was kept.
type Kept = Option<(PoolConnection<Postgres>, Instant)>;

/// At most one connection of the pool, kept out of it between statements.
#[derive(Clone, Default)]
pub struct WarmConnection {
    slot: Arc<Slot>,
    /// Off for a pool of one (the kept connection would be the only one, and statements outside
    /// the publishing path would wait for it).
    enabled: bool,
}

impl WarmConnection {
    /// For a pool of `pool_size` connections.
    pub fn new(pool_size: u32) -> Self {
        WarmConnection {
            slot: Arc::default(),
            enabled: pool_size >= 2,
        }
    }

    /// The kept connection if there is one still fresh, else one from the pool.
    pub async fn checkout(&self, pool: &PgPool) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        if let Some((conn, at)) = self.lock().take() {
            if at.elapsed() < KEEP_FOR {
                return Ok(conn);
            }
        }
        pool.acquire().await
    }

    /// Keeps `conn` for the next statement when its statement succeeded and none is kept yet;
    /// else it goes back to the pool, or is closed after a failure (its session may be broken
    /// or read-only).
    pub fn checkin(&self, mut conn: PoolConnection<Postgres>, ok: bool) {
        if !ok {
            conn.close_on_drop();
            return;
        }
        if self.enabled {
            let mut slot = self.lock();
            if slot.is_none() {
                *slot = Some((conn, Instant::now()));
            }
        }
    }

    /// Gives the kept connection back to the pool (before the pool closes).
    pub fn release(&self) {
        self.lock().take();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.slot.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct Slot(Mutex<Kept>);

impl Drop for Slot {
    /// A publisher never closed is dropped when its process or worker exits, outside any Tokio
    /// runtime, where handing a connection back to its pool (a spawned task) panics: the kept
    /// connection's socket is then closed without the pool.
    fn drop(&mut self) {
        let kept = self.0.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((conn, _)) = kept {
            if tokio::runtime::Handle::try_current().is_err() {
                drop(conn.leak());
            }
        }
    }
}
