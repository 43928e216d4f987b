//! The log records of a settled job: one per published event or batch, one per failure.

use crate::errors::PublishError;
use crate::group_commit::{Job, Writer};
use crate::logging::{Level, LogRecord};

impl Writer {
    /// Logs a published job; `stream_id` is its first event's entry ID.
    pub(crate) fn log_published(&self, job: &Job, stream_id: Option<&str>) {
        if !self.log.enabled(Level::Info) {
            return;
        }
        if job.batch {
            let mut r = LogRecord::new(Level::Info, "event batch published");
            r.count = Some(job.events.len() as u32);
            r.event_ids = Some(job.events.iter().map(|e| e.event_id.clone()).collect());
            self.log.log(Level::Info, || r);
        } else if let Some(e) = job.events.first() {
            self.log.log(Level::Info, || {
                let mut r = LogRecord::new(Level::Info, "event published");
                r.event_id = Some(e.event_id.clone());
                r.event_type = Some(e.event_type.clone());
                r.correlation_id = Some(e.correlation_id.clone());
                r.tenant_id = Some(e.tenant_id.clone());
                r.stream_id = stream_id.map(str::to_string);
                r
            });
        }
    }

    pub(crate) fn log_outcome(&self, job: &Job, result: &Result<Vec<String>, PublishError>) {
        let Err(err) = result else { return };
        self.log.log(Level::Error, || {
            let what = if job.batch {
                "event batch failed"
            } else {
                "event publish failed"
            };
            let mut r = LogRecord::new(Level::Error, what);
            r.code = Some(err.code.as_str());
            r.error = Some(err.message.clone());
            if job.batch {
                r.count = Some(job.events.len() as u32);
                r.event_ids = Some(job.events.iter().map(|e| e.event_id.clone()).collect());
            } else if let Some(e) = job.events.first() {
                r.event_id = Some(e.event_id.clone());
                r.event_type = Some(e.event_type.clone());
                r.correlation_id = Some(e.correlation_id.clone());
                r.tenant_id = Some(e.tenant_id.clone());
            }
            r
        });
    }
}
