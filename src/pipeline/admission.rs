//! Admission: the room a call holds from `admit` until its group settles. `InFlight` counts
//! admitted, unsettled events (for `maxInFlight` and for `close()` to wait on); an `Admission`
//! dropped unused gives its room back and ends a circuit-breaker trial without counting it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::circuit::Circuit;
use crate::errors::Code;

/// Counts events admitted but not yet settled, so `close()` can wait for them.
#[derive(Default)]
pub(crate) struct InFlight {
    pub(super) events: AtomicUsize,
    pub(super) idle: Notify,
}

impl InFlight {
    pub(crate) fn done(&self, n: usize) {
        if self.events.fetch_sub(n, Ordering::AcqRel) == n {
            self.idle.notify_waiters();
        }
    }
}

/// Room reserved for `n` events by `Publisher::admit`. Dropped unused (bad input, a dropped
/// call), it gives the room back and ends a circuit-breaker trial without counting it.
pub struct Admission {
    pub(super) in_flight: Arc<InFlight>,
    pub(super) circuit: Arc<Circuit>,
    pub(super) n: usize,
    pub(super) trial: bool,
}

impl Admission {
    /// Hands the reservation over to a job; returns whether it is the circuit's trial.
    pub(super) fn take(&mut self) -> bool {
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
            self.circuit.record(Err(Code::InvalidEvent), true);
        }
    }
}
