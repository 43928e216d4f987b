//! Whether and when a failed step is tried again.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::errors::PublishError;

/// Runs `op` until it succeeds, fails definitely, or `deadline` passes. Only failures whose
/// outcome is unknown are retried, unless `any_infrastructure` (for idempotent steps that must
/// not give up while a store restarts).
pub(crate) async fn retry<T, F, Fut>(
    deadline: Instant,
    any_infrastructure: bool,
    mut op: F,
) -> Result<T, PublishError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PublishError>>,
{
    let mut delay = Duration::from_millis(20);
    // Once an attempt may have taken effect, a later definite refusal does not undo that.
    let mut maybe_applied = false;
    loop {
        match op().await {
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
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(250));
            }
        }
    }
}
