//! Repair of rows a crashed process may have left: PENDING rows whose `stream_id` holds no entry.

use crate::errors::PublishError;
use crate::metadata::PendingRow;
use crate::pipeline::publisher::Publisher;
use crate::stream::SLACK_MS;

/// What `reconcile()` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// PENDING rows examined (created within the window, older than the cut-off).
    pub examined: u32,
    /// Rows whose entry exists after all: their `stream_id` was set.
    pub repaired: u32,
    /// Rows with no entry: marked FAILED, `last_error` 'never published'.
    pub failed: u32,
}

impl Publisher {
    /// Settles rows a crashed process may have left without an entry: PENDING rows created
    /// between `within_ms` and `older_than_ms` ago whose `stream_id` does not hold their entry.
    /// A row whose entry is in the stream elsewhere gets that `stream_id`; a row without an entry
    /// is marked FAILED with `last_error` 'never published'. Rows older than the stream's first
    /// entry (their entry may have been trimmed) are left alone.
    pub async fn reconcile(
        &self,
        older_than_ms: u64,
        within_ms: u64,
    ) -> Result<ReconcileReport, PublishError> {
        const PAGE: i64 = 1000;
        let w = &self.inner.writer;
        let mut report = ReconcileReport::default();
        // Rows from before the last trimmed or deleted entry may have lost their entry to
        // trimming: those are left alone. Without a stream there is nothing to compare with.
        let Some(removed_ms) = w.stream.removed_up_to_ms().await? else {
            return Ok(report);
        };
        let mut after: Option<(i64, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(ms, id)| (*ms, id.as_str()));
            let page = w
                .store
                .pending_rows(older_than_ms, within_ms, cursor, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.created_ms, last.event_id.clone()));
            report.examined += page.len() as u32;
            let pairs: Vec<(&str, &str)> = page
                .iter()
                .map(|r| (r.stream_id.as_str(), r.event_id.as_str()))
                .collect();
            let held = w.stream.entries_hold(&pairs).await?;
            let unheld: Vec<&PendingRow> = page
                .iter()
                .zip(held)
                .filter(|(r, held)| !held && r.created_ms - SLACK_MS > removed_ms as i64)
                .map(|(r, _)| r)
                .collect();
            if unheld.is_empty() {
                continue;
            }
            let wanted: Vec<(&str, i64)> = unheld
                .iter()
                .map(|r| (r.event_id.as_str(), r.created_ms))
                .collect();
            let found = w.stream.find_entries(&wanted).await?;
            let (mut ev, mut st) = (Vec::new(), Vec::new());
            let (mut never_ev, mut never_st) = (Vec::new(), Vec::new());
            for r in unheld {
                match found.get(r.event_id.as_str()) {
                    Some(sid) => {
                        ev.push(r.event_id.as_str());
                        st.push(sid.as_str());
                    }
                    None => {
                        never_ev.push(r.event_id.as_str());
                        never_st.push(r.stream_id.as_str());
                    }
                }
            }
            if !ev.is_empty() {
                w.store.set_stream_ids(&ev, &st, true).await?;
                report.repaired += ev.len() as u32;
            }
            if !never_ev.is_empty() {
                report.failed += w.store.mark_never_published(&never_ev, &never_st).await? as u32;
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        Ok(report)
    }
}
