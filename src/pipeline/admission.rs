//! Admission: the room a call holds from `admit` until its group settles. `InFlight` counts
//! admitted, unsettled events and the bytes held for them (for `maxInFlight`, `maxInFlightBytes`
//! and for `close()` to wait on); an `Admission` dropped unused gives its room back and ends a
//! circuit-breaker trial without counting it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::circuit::Circuit;
use crate::errors::Code;
use crate::event::PreparedEvent;

/// Counts events admitted but not yet settled, and the bytes held for them.
#[derive(Default)]
pub(crate) struct InFlight {
    pub(super) events: AtomicUsize,
    pub(super) bytes: AtomicUsize,
    pub(super) idle: Notify,
}

impl InFlight {
    /// `n` events holding `bytes` settled (or were never sent).
    pub(crate) fn done(&self, n: usize, bytes: usize) {
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        if self.events.fetch_sub(n, Ordering::AcqRel) == n {
            self.idle.notify_waiters();
            super::memory::idle();
        }
    }
}

/// Bytes counted per event besides its JSON: the ids and fields of a prepared event and the
/// allocations that hold them (docs/overload.md).
const EVENT_OVERHEAD_BYTES: usize = 512;
/// The envelope's own text around `data` and the fields (keys, generated ids, timestamp).
const ENVELOPE_TEXT_BYTES: usize = 256;

/// What `events` events are counted for at admission, from the sizes the caller passed (their
/// `data` and their other fields, in total): both twice (the copies JavaScript handed over and
/// the envelopes built from them exist together until the events are prepared), plus the
/// envelope text and the overhead per event.
pub(crate) fn admission_bytes(events: usize, data_len: usize, fields_len: usize) -> usize {
    2 * (data_len + fields_len) + events * (ENVELOPE_TEXT_BYTES + EVENT_OVERHEAD_BYTES)
}

/// What a prepared event holds until it settles: its envelope JSON and trace context (the
/// caller's copy of `data` is gone by then), plus the overhead.
pub(super) fn held_bytes(e: &PreparedEvent) -> usize {
    e.json.len() + e.trace_context.len() + EVENT_OVERHEAD_BYTES
}

/// Room reserved for `n` events holding `bytes` by `Publisher::admit`. Dropped unused (bad input,
/// a dropped call), it gives the room back and ends a circuit-breaker trial without counting it.
pub struct Admission {
    pub(super) in_flight: Arc<InFlight>,
    pub(super) circuit: Arc<Circuit>,
    pub(super) n: usize,
    pub(super) bytes: usize,
    pub(super) trial: bool,
}

impl Admission {
    /// Hands the reservation over to jobs; returns whether it is the circuit's trial.
    pub(super) fn take(&mut self) -> bool {
        self.n = 0;
        self.bytes = 0;
        std::mem::take(&mut self.trial)
    }

    /// Counts `bytes` instead of what admission counted, once the events are prepared (they hold
    /// less than the caller's copies and the envelopes together).
    pub(super) fn hold(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.in_flight
                .bytes
                .fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            self.bytes = bytes;
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.n > 0 || self.bytes > 0 {
            self.in_flight.done(self.n, self.bytes);
        }
        if self.trial {
            self.circuit.record(Err(Code::InvalidEvent), true);
        }
    }
}
