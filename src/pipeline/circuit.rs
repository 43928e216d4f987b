//! A circuit breaker: after `threshold` consecutive infrastructure failures, publishes are
//! refused at once for `cooldown`; then a single trial publish decides whether to close again.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::errors::{Code, PublishError};

/// The breaker's state as `health()` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Publishing normally.
    Closed,
    /// Refusing publishes until the cooldown ends.
    Open,
    /// One trial publish is deciding.
    HalfOpen,
}

impl State {
    /// `closed`, `open` or `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

/// The breaker. A threshold of 0 disables it.
pub struct Circuit {
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    opened_at: Mutex<Option<Instant>>,
    trial_running: AtomicBool,
}

/// What a caller may do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Go ahead.
    Normal,
    /// Go ahead as the trial; report the outcome with `record(.., true)`.
    Trial,
}

impl Circuit {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Circuit {
            threshold,
            cooldown,
            failures: AtomicU32::new(0),
            opened_at: Mutex::new(None),
            trial_running: AtomicBool::new(false),
        }
    }

    /// Admits a publish, or refuses it with `ERR_CIRCUIT_OPEN`.
    pub fn admit(&self) -> Result<Admit, PublishError> {
        if self.threshold == 0 || self.failures.load(Ordering::Relaxed) < self.threshold {
            return Ok(Admit::Normal);
        }
        let opened = *self.opened_at.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = opened {
            let left = self.cooldown.saturating_sub(at.elapsed());
            if !left.is_zero() {
                return Err(self.refusal(left));
            }
        }
        if self
            .trial_running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Ok(Admit::Trial)
        } else {
            Err(self.refusal(Duration::ZERO))
        }
    }

    fn refusal(&self, left: Duration) -> PublishError {
        PublishError::new(
            Code::CircuitOpen,
            format!(
                "publishing is paused after {} consecutive Redis/Postgres failures; next trial in {} ms",
                self.failures.load(Ordering::Relaxed),
                left.as_millis()
            ),
        )
    }

    /// Records an outcome. Only infrastructure failures count; a success closes the breaker.
    pub fn record(&self, outcome: Result<(), Code>, trial: bool) {
        if self.threshold == 0 {
            return;
        }
        match outcome {
            Ok(()) => {
                self.failures.store(0, Ordering::Relaxed);
                *self.opened_at.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            Err(code) if code.is_infrastructure() => {
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= self.threshold {
                    *self.opened_at.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(Instant::now());
                }
            }
            Err(_) => {}
        }
        if trial {
            self.trial_running.store(false, Ordering::Release);
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        if self.threshold == 0 || self.failures.load(Ordering::Relaxed) < self.threshold {
            return State::Closed;
        }
        let opened = *self.opened_at.lock().unwrap_or_else(|e| e.into_inner());
        match opened {
            Some(at) if at.elapsed() < self.cooldown => State::Open,
            _ => State::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_trial_closes() {
        let c = Circuit::new(3, Duration::from_millis(30));
        for _ in 0..3 {
            assert_eq!(c.admit().unwrap(), Admit::Normal);
            c.record(Err(Code::Redis), false);
        }
        assert_eq!(c.state(), State::Open);
        assert_eq!(c.admit().unwrap_err().code, Code::CircuitOpen);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.admit().unwrap(), Admit::Trial);
        // Only one trial at a time.
        assert_eq!(c.admit().unwrap_err().code, Code::CircuitOpen);
        c.record(Ok(()), true);
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.admit().unwrap(), Admit::Normal);
    }

    #[test]
    fn failed_trial_reopens_and_bad_input_does_not_count() {
        let c = Circuit::new(1, Duration::from_millis(20));
        c.record(Err(Code::InvalidEvent), false);
        assert_eq!(c.state(), State::Closed);
        c.record(Err(Code::Database), false);
        assert_eq!(c.state(), State::Open);
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(c.admit().unwrap(), Admit::Trial);
        c.record(Err(Code::Timeout), true);
        assert_eq!(c.state(), State::Open);
    }

    #[test]
    fn disabled_with_zero() {
        let c = Circuit::new(0, Duration::from_millis(20));
        for _ in 0..10 {
            c.record(Err(Code::Redis), false);
        }
        assert_eq!(c.admit().unwrap(), Admit::Normal);
        assert_eq!(c.state(), State::Closed);
    }
}
