//! Hands finished publishes back to JavaScript in batches. A promise per call created by the
//! binding would cost a threadsafe-function setup and a wake-up of the JS thread per event; here
//! finished results queue up and one wake-up delivers all that are ready, so under load the JS
//! thread is woken once per group instead of once per event.

use std::sync::Mutex;

use crate::errors::PublishError;

/// A finished publish: the caller's ticket and its outcome.
pub type Completion = (u32, Result<String, PublishError>);

/// The queue of finished publishes, with the wake-up to call when it becomes non-empty.
pub struct Completions {
    ready: Mutex<Vec<Completion>>,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl Completions {
    /// An empty queue that calls `wake` whenever a result arrives in an empty queue.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Completions {
            ready: Mutex::new(Vec::new()),
            wake: Box::new(wake),
        }
    }

    /// Queues a result; wakes the consumer if it may be asleep (the queue was empty).
    pub fn push(&self, ticket: u32, result: Result<String, PublishError>) {
        let was_empty = {
            let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
            let was_empty = ready.is_empty();
            ready.push((ticket, result));
            was_empty
        };
        if was_empty {
            (self.wake)();
        }
    }

    /// Takes every queued result.
    pub fn drain(&self) -> Vec<Completion> {
        std::mem::take(&mut *self.ready.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn wakes_once_per_non_empty_transition() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        let c = Completions::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        c.push(1, Ok("a".into()));
        c.push(2, Ok("b".into()));
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        let got = c.drain();
        assert_eq!(got.iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![1, 2]);
        c.push(3, Err(PublishError::closed()));
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
        assert_eq!(c.drain().len(), 1);
        assert!(c.drain().is_empty());
    }
}
