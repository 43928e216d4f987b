//! Whether and when a failed step is tried again.

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::errors::PublishError;
use crate::metrics::{Metrics, Stage};

/// Runs `op` until it succeeds, fails definitely, or `deadline` passes. Only failures whose
/// outcome is unknown are retried, unless `any_infrastructure` (for idempotent steps that must
/// not give up while a store restarts). `op` is told whether it is a repeat: one that follows an
/// attempt which may have taken effect must find what that attempt did.
pub(crate) async fn retry<T, F, Fut>(
    (metrics, stage): (&Metrics, Stage),
    deadline: Instant,
    any_infrastructure: bool,
    mut op: F,
) -> Result<T, PublishError>
where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = Result<T, PublishError>>,
{
    let mut delay = Duration::from_millis(20);
    // Once an attempt may have taken effect, a later definite refusal does not undo that.
    let mut maybe_applied = false;
    // Each retry (its wait and its attempt) is a span of its own.
    let mut span = tracing::Span::none();
    let mut attempt: u32 = 1;
    loop {
        match op(attempt > 1).instrument(span.clone()).await {
            Ok(v) => return Ok(v),
            Err(mut e) => {
                // Retry on this attempt's own uncertainty (a definite refusal after a lost reply
                // ends the loop at once); report the uncertainty of any attempt.
                let retryable = e.outcome_unknown
                    || e.retryable_conflict
                    || (any_infrastructure && e.code.is_infrastructure());
                maybe_applied |= e.outcome_unknown;
                e.outcome_unknown = maybe_applied;
                if !retryable || Instant::now() + delay >= deadline {
                    return Err(e);
                }
                attempt += 1;
                metrics.retry(stage);
                span = tracing::debug_span!(
                    "retry",
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    code = e.code.as_str()
                );
                tokio::time::sleep(delay).instrument(span.clone()).await;
                delay = (delay * 2).min(Duration::from_millis(250));
            }
        }
    }
}
