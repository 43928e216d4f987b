//! Proposes stream entry IDs before the append, so that each row can be inserted with its final
//! `stream_id` and no second statement has to patch it in.
//!
//! An ID is `<ms>-<seq>` with `ms` from the Redis clock (this host's clock plus the offset seen in
//! the last reply from Redis), strictly increasing within the process. `seq` starts at the
//! microsecond within that millisecond times 2^20, so that reservations of several processes in
//! one millisecond are ordered by when they were made, as their appends mostly are (with `seq`
//! from 0 in each process, two publishers on one stream refused each other's IDs 82% of the time,
//! one publish at a time each; measured). The append script takes a reserved ID only if Redis
//! accepts it (greater than the stream's last ID) and its time is within a few ms of the Redis
//! clock; otherwise it appends with `*` and the publisher updates the row (the slow path).
//! Several publishers on one stream stay correct: an ID another producer has overtaken simply
//! falls back. IDs are reserved ahead of now by the time a reservation recently took to reach
//! its append (see [`EntryIdClock::lead_us`]): with two processes on one stream, 64 in flight
//! each, that cut the entries not at their reserved ID from 91% to 41% (four processes: 99% to
//! 68%; measured with bench/multiprocess.js).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// A stream entry ID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntryId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl EntryId {
    /// Parses `<ms>-<seq>`.
    pub fn parse(s: &str) -> Option<EntryId> {
        let (ms, seq) = s.split_once('-')?;
        Some(EntryId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// `seq` of the first ID reserved at microsecond `u` of a millisecond: `u << SEQ_SHIFT` (room for
/// 2^20 IDs per microsecond before the next one's range).
const SEQ_SHIFT: u32 = 20;

/// This host's clock, Unix µs: the wall clock read once, then advanced by the monotonic clock, so
/// a step of the wall clock (NTP, an operator) never moves proposals away from the Redis clock
/// between two syncs with it.
pub fn host_now_us() -> u64 {
    static ANCHOR: std::sync::OnceLock<(std::time::Instant, u64)> = std::sync::OnceLock::new();
    let (at, wall_us) = ANCHOR.get_or_init(|| {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        (std::time::Instant::now(), wall)
    });
    wall_us + at.elapsed().as_micros() as u64
}

/// The longest lead a reservation takes (a slow spell of Postgres must not push proposals beyond
/// what the append script accepts ahead of the Redis clock, 20 ms).
pub const MAX_LEAD_US: u64 = 10_000;

/// How recent the last sync with the Redis clock must be for [`EntryIdClock::redis_now_ms`] to
/// answer (the estimate then drifts by the monotonic clock's rate error only).
const FRESH_SYNC_US: u64 = 1_000_000;

/// Hands out increasing entry IDs, and turns to append them in the order they were handed out
/// (groups are written concurrently, and a group whose IDs another group's entries have
/// overtaken would have to fall back).
#[derive(Default)]
pub struct EntryIdClock {
    state: Mutex<ClockState>,
    turn_changed: Notify,
    /// Redis clock minus this host's, in µs.
    offset_us: AtomicI64,
    /// This host's clock at the last sync, Unix µs (0: never synced).
    synced_at_us: std::sync::atomic::AtomicU64,
    /// Moving average of the time from reservation to append, µs.
    lead_us: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct ClockState {
    /// The last ID handed out or seen in the stream.
    last: EntryId,
    /// Tickets handed out so far.
    tickets: u64,
    /// Tickets below this one have appended (or given up, or been overtaken).
    turn: u64,
    /// Finished tickets above `turn`.
    finished: std::collections::BTreeSet<u64>,
}

/// A reservation's place in the append order. Dropping it ends its turn.
pub struct Turn<'a> {
    clock: &'a EntryIdClock,
    ticket: u64,
}

impl EntryIdClock {
    /// Records the Redis clock (`redis_us`, Unix µs) as read when this host's clock said
    /// `host_us`.
    pub fn sync(&self, redis_us: u64, host_us: u64) {
        if redis_us > 0 {
            self.offset_us
                .store(redis_us as i64 - host_us as i64, Ordering::Relaxed);
            self.synced_at_us.store(host_us, Ordering::Relaxed);
        }
    }

    /// Records how long a reservation took to reach its append (µs; a sample above
    /// [`MAX_LEAD_US`] counts as that).
    pub fn record_lead(&self, us: u64) {
        let us = us.min(MAX_LEAD_US);
        let old = self.lead_us.load(Ordering::Relaxed);
        // Racing updates may drop a sample: an average does not need them all.
        self.lead_us
            .store(old - old / 8 + us / 8, Ordering::Relaxed);
    }

    /// How far ahead of now to reserve: the recent average time from reservation to append
    /// (µs), so that an ID tells when its entry will be appended rather than when its rows were
    /// sent. Several publishers on one stream then propose in about the order they append, and an
    /// entry another one appended with `*` (at the Redis time of its append) does not overtake
    /// proposals still on their way.
    pub fn lead_us(&self) -> u64 {
        self.lead_us.load(Ordering::Relaxed)
    }

    /// The Redis clock (Unix ms) at `host_us`, when the last sync is at most a second old.
    pub fn redis_now_ms(&self, host_us: u64) -> Option<u64> {
        let synced = self.synced_at_us.load(Ordering::Relaxed);
        if synced == 0 || host_us.saturating_sub(synced) > FRESH_SYNC_US {
            return None;
        }
        Some(self.redis_us(host_us) / 1000)
    }

    /// The Redis clock (Unix µs) at `host_us`, from the last sync's offset.
    fn redis_us(&self, host_us: u64) -> u64 {
        (host_us as i64 + self.offset_us.load(Ordering::Relaxed)).max(0) as u64
    }

    /// Reserves `n` consecutive IDs after everything handed out or observed, at the Redis time
    /// that corresponds to `host_us` (Unix µs) or later, with the turn at which to append them.
    pub fn reserve(&self, n: usize, host_us: u64) -> (Vec<String>, Turn<'_>) {
        let now_us = self.redis_us(host_us);
        let at = EntryId {
            ms: now_us / 1000,
            seq: (now_us % 1000) << SEQ_SHIFT,
        };
        let mut st = self.lock();
        let ticket = st.tickets;
        st.tickets += 1;
        let turn = Turn {
            clock: self,
            ticket,
        };
        if n == 0 {
            return (Vec::new(), turn);
        }
        let next = EntryId {
            ms: st.last.ms,
            seq: st.last.seq + 1,
        };
        let first = at.max(next);
        let out = (0..n as u64)
            .map(|i| {
                EntryId {
                    ms: first.ms,
                    seq: first.seq + i,
                }
                .to_string()
            })
            .collect();
        st.last = EntryId {
            ms: first.ms,
            seq: first.seq + n as u64 - 1,
        };
        (out, turn)
    }

    /// Raises the floor to an ID the stream holds (an append that did not take a proposal), so
    /// that later proposals are above it.
    pub fn observe(&self, id: &str) {
        if let Some(id) = EntryId::parse(id) {
            let mut st = self.lock();
            if id > st.last {
                st.last = id;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finish(&self, ticket: u64) {
        let mut st = self.lock();
        if ticket < st.turn {
            return; // overtaken already
        }
        st.finished.insert(ticket);
        let before = st.turn;
        while st.finished.first() == Some(&st.turn) {
            st.finished.pop_first();
            st.turn += 1;
        }
        if st.turn != before {
            drop(st);
            self.turn_changed.notify_waiters();
        }
    }
}

impl Turn<'_> {
    /// Waits until every earlier reservation has appended or given up, at most `max`; after that
    /// this one goes first, and the late ones fall back to Redis-assigned IDs.
    pub async fn wait(&self, max: Duration) {
        let clock = self.clock;
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let changed = clock.turn_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if clock.lock().turn >= self.ticket {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let mut st = clock.lock();
                if st.turn < self.ticket {
                    st.turn = self.ticket;
                    st.finished.retain(|t| *t >= self.ticket);
                }
                return;
            }
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.clock.finish(self.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(c: &EntryIdClock, n: usize, now: u64) -> Vec<String> {
        c.reserve(n, now).0
    }

    const M: u64 = 1 << SEQ_SHIFT;

    #[test]
    fn increasing_within_and_across_reservations() {
        let c = EntryIdClock::default();
        // Host time in µs; no offset yet.
        assert_eq!(ids(&c, 3, 1_000_000), ["1000-0", "1000-1", "1000-2"]);
        // Same microsecond, or a clock that went back: continue the sequence.
        assert_eq!(ids(&c, 2, 1_000_000), ["1000-3", "1000-4"]);
        assert_eq!(ids(&c, 1, 990_000), ["1000-5"]);
        // Later in the same millisecond: seq tells the microsecond.
        assert_eq!(ids(&c, 1, 1_000_007), [format!("1000-{}", 7 * M)]);
        assert_eq!(ids(&c, 1, 1_001_000), ["1001-0"]);
        assert!(ids(&c, 0, 1_002_000).is_empty());
        assert_eq!(ids(&c, 1, 1_002_000), ["1002-0"]);
    }

    #[test]
    fn two_clocks_in_one_millisecond_order_by_microsecond() {
        let (a, b) = (EntryIdClock::default(), EntryIdClock::default());
        let first = EntryId::parse(&ids(&a, 10, 5_000_100)[9]).unwrap();
        let later = EntryId::parse(&ids(&b, 1, 5_000_101)[0]).unwrap();
        assert!(later > first);
    }

    #[test]
    fn observed_ids_raise_the_floor() {
        let c = EntryIdClock::default();
        c.observe("5000-7");
        assert_eq!(ids(&c, 1, 4_000_000), ["5000-8"]);
        c.observe("100-0"); // lower: ignored
        c.observe("garbage");
        assert_eq!(ids(&c, 1, 4_000_000), ["5000-9"]);
        // Reservations follow the Redis clock.
        c.sync(10_250_000, 10_000_000);
        assert_eq!(ids(&c, 1, 10_000_000), ["10250-0"]);
        c.sync(9_900_000, 10_000_000);
        assert_eq!(ids(&c, 1, 10_200_000), ["10250-1"]); // 10_100 < floor: the floor goes on
        assert_eq!(ids(&c, 1, 10_400_000), ["10300-0"]);
        assert_eq!(EntryId::parse("12-3"), Some(EntryId { ms: 12, seq: 3 }));
        assert!(EntryId::parse("12").is_none());
    }

    #[test]
    fn the_lead_follows_recent_samples_within_its_cap() {
        let c = EntryIdClock::default();
        assert_eq!(c.lead_us(), 0);
        for _ in 0..64 {
            c.record_lead(2_000);
        }
        assert!((1_900..=2_000).contains(&c.lead_us()), "{}", c.lead_us());
        for _ in 0..64 {
            c.record_lead(5_000_000); // a stalled insert counts as the cap
        }
        assert!(c.lead_us() <= MAX_LEAD_US);
        assert!(c.lead_us() > MAX_LEAD_US - 200, "{}", c.lead_us());
    }

    #[tokio::test]
    async fn turns_follow_the_reservation_order() {
        let c: &'static EntryIdClock = Box::leak(Box::default());
        let (_, a) = c.reserve(1, 1);
        let (_, b) = c.reserve(1, 1);
        let (_, d) = c.reserve(1, 1);
        let long = Duration::from_secs(5);
        // The first goes at once; the second waits until the first is done.
        tokio::time::timeout(Duration::from_millis(100), a.wait(long))
            .await
            .expect("first turn");
        let second = tokio::spawn(async move {
            b.wait(Duration::from_secs(5)).await;
            drop(b);
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!second.is_finished());
        drop(a);
        tokio::time::timeout(Duration::from_millis(500), second)
            .await
            .expect("second turn after the first")
            .unwrap();
        tokio::time::timeout(Duration::from_millis(100), d.wait(long))
            .await
            .expect("third turn");
    }

    #[tokio::test]
    async fn a_late_turn_is_overtaken_after_the_bound() {
        let c = EntryIdClock::default();
        let (_, a) = c.reserve(1, 1);
        let (_, b) = c.reserve(1, 1);
        let (_, d) = c.reserve(1, 1);
        let t = std::time::Instant::now();
        b.wait(Duration::from_millis(30)).await; // `a` never finishes in time
        assert!(t.elapsed() >= Duration::from_millis(30));
        drop(b);
        // `a` was overtaken: the next one does not wait for it.
        tokio::time::timeout(Duration::from_millis(10), d.wait(Duration::from_secs(5)))
            .await
            .expect("not held up by the overtaken turn");
        drop(a);
        drop(d);
        assert_eq!(c.lock().turn, 3);
        assert!(c.lock().finished.is_empty());
    }
}
