//! Caller event ids whose last attempt in this process may have written (it was rejected with
//! `outcomeUnknown`) and that no later attempt has settled: a later rejection of such an id, by
//! whatever step (circuit breaker, in-flight bound, `close()`, a store's definite refusal), is
//! outcome-unknown too, because what the earlier attempt wrote may still be there. `outcomeUnknown`
//! then describes the event, not the attempt (docs/overload.md).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::errors::PublishError;

/// Most ids remembered at once (about 100 bytes each). Past it, ids of new ambiguous failures
/// are not remembered (their later refusals say what the attempt knows), and this is logged.
const MAX_IDS: usize = 100_000;

/// The ids, each with when its ambiguous failure happened; forgotten after the dedup window
/// (the append script's dedup key is gone then, so a retry is no longer recognised either).
pub(crate) struct MaybeWritten {
    ids: Mutex<HashMap<String, Instant>>,
    window: Duration,
}

impl MaybeWritten {
    /// Remembers ids for `window` (the dedup window).
    pub(crate) fn new(window: Duration) -> Self {
        MaybeWritten {
            ids: Mutex::new(HashMap::new()),
            window,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether no id awaits a retry: then no refusal needs its call's ids (a refused batch is
    /// not unpacked on the caller's thread just to find none).
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Makes `e` outcome-unknown when any of `ids` may have been written by an earlier attempt.
    pub(crate) fn describe<'a>(
        &self,
        mut e: PublishError,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> PublishError {
        if e.outcome_unknown {
            return e;
        }
        let map = self.lock();
        if map.is_empty() {
            return e;
        }
        let now = Instant::now();
        if ids
            .into_iter()
            .any(|id| map.get(id).is_some_and(|at| now - *at < self.window))
        {
            e.outcome_unknown = true;
            e.message.push_str(
                " (an earlier attempt with this eventId may have written it: retry with the same eventId)",
            );
        }
        e
    }

    /// Records a call's outcome for its caller ids: resolved ids are settled; the ids of an
    /// outcome-unknown rejection (but those it reports published) may have been written. A
    /// definite rejection changes nothing: an id already here stays (its earlier attempt's
    /// writes are not undone by a later refusal).
    pub(crate) fn record<'a>(
        &self,
        outcome: Result<(), &PublishError>,
        ids: impl IntoIterator<Item = &'a str>,
    ) {
        match outcome {
            Ok(()) => {
                let mut map = self.lock();
                if !map.is_empty() {
                    for id in ids {
                        map.remove(id);
                    }
                }
            }
            Err(e) if e.outcome_unknown => {
                let now = Instant::now();
                // A set, not a scan per id: a 100,000-event batch failing late would otherwise
                // compare billions of ids on the worker thread.
                let published: HashSet<&str> = e.published_ids.iter().map(String::as_str).collect();
                let mut map = self.lock();
                let mut full = false;
                for id in ids {
                    if published.contains(id) {
                        map.remove(id);
                        continue;
                    }
                    if map.len() >= MAX_IDS && !map.contains_key(id) {
                        let window = self.window;
                        map.retain(|_, at| now - *at < window);
                        if map.len() >= MAX_IDS {
                            full = true;
                            continue;
                        }
                    }
                    map.insert(id.to_string(), now);
                }
                drop(map);
                if full {
                    tracing::warn!(
                        "more than {MAX_IDS} event ids await a retry after an unknown outcome; \
                         later refusals of the others cannot say that an earlier attempt may have written them"
                    );
                }
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Code;

    #[test]
    fn a_refusal_after_an_unknown_outcome_is_unknown_until_resolved() {
        let m = MaybeWritten::new(Duration::from_secs(60));
        let open = || PublishError::new(Code::CircuitOpen, "open");
        assert!(!m.describe(open(), ["a"]).outcome_unknown);
        let mut lost = PublishError::new(Code::Redis, "lost");
        lost.outcome_unknown = true;
        m.record(Err(&lost), ["a"]);
        assert!(m.describe(open(), ["a"]).outcome_unknown);
        assert!(!m.describe(open(), ["b"]).outcome_unknown);
        // A definite refusal does not settle it.
        m.record(Err(&open()), ["a"]);
        assert!(m.describe(open(), ["x", "a"]).outcome_unknown);
        m.record(Ok(()), ["a"]);
        assert!(!m.describe(open(), ["a"]).outcome_unknown);
    }

    #[test]
    fn published_ids_of_a_failed_batch_are_settled_and_ids_expire() {
        let m = MaybeWritten::new(Duration::from_millis(30));
        let mut e = PublishError::new(Code::Timeout, "t");
        e.published_ids = vec!["p".into()];
        m.record(Err(&e), ["p", "q"]);
        let open = || PublishError::new(Code::Overloaded, "full");
        assert!(!m.describe(open(), ["p"]).outcome_unknown);
        assert!(m.describe(open(), ["q"]).outcome_unknown);
        std::thread::sleep(Duration::from_millis(40));
        assert!(!m.describe(open(), ["q"]).outcome_unknown);
    }
}
