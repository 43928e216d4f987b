//! The log records of a settled job: one per published event or batch, one per failure. The
//! field names are those of `logging::LogRecord` (`event_id` becomes `eventId` in JS).

use crate::errors::PublishError;
use crate::logging::Joined;
use crate::pipeline::group_commit::{Job, Writer};

/// The ids of a job's events, for `event_ids`.
fn ids(job: &Job) -> Vec<&str> {
    job.events.iter().map(|e| e.event_id.as_str()).collect()
}

impl Writer {
    /// Logs a published job; `stream_id` is its first event's entry ID.
    pub(crate) fn log_published(&self, job: &Job, stream_id: Option<&str>) {
        if job.batch {
            tracing::info!(
                count = job.events.len(),
                event_ids = %Joined(&ids(job)),
                "event batch published"
            );
        } else if let Some(e) = job.events.first() {
            tracing::info!(
                event_id = %e.event_id,
                event_type = %e.event_type,
                correlation_id = %e.correlation_id,
                tenant_id = %e.tenant_id,
                stream_id = stream_id,
                "event published"
            );
        }
    }

    pub(crate) fn log_outcome(&self, job: &Job, result: &Result<Vec<String>, PublishError>) {
        let Err(err) = result else { return };
        if job.batch {
            tracing::error!(
                code = err.code.as_str(),
                error = %err.message,
                count = job.events.len(),
                event_ids = %Joined(&ids(job)),
                "event batch failed"
            );
        } else if let Some(e) = job.events.first() {
            tracing::error!(
                code = err.code.as_str(),
                error = %err.message,
                event_id = %e.event_id,
                event_type = %e.event_type,
                correlation_id = %e.correlation_id,
                tenant_id = %e.tenant_id,
                "event publish failed"
            );
        }
    }
}
