//! How one group is written, in order: reserve entry IDs → insert the rows (PENDING, with the
//! reserved IDs) → append the entries in one script call → set `stream_id` where an entry did not
//! take its reserved ID; and what is undone when a step fails. Retries are decided in `retry`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::field::Empty;
use tracing::Instrument;

use crate::errors::{Code, PublishError};
use crate::event::PreparedEvent;
use crate::logging::Joined;
use crate::metadata::ExistingRow;
use crate::metrics::Stage;
use crate::pipeline::group_commit::{Job, Writer};
use crate::pipeline::retry::retry;
use crate::stream::host_now_us;
use crate::stream::Append;

/// Rows per INSERT/UPDATE statement of a large group; chunks run on parallel connections.
const ROWS_PER_STATEMENT: usize = 250;
/// Longest wait of a group for the groups reserved before it to append (so entries go out in
/// the order of their proposed IDs). A group held up longer than this is overtaken: its entries
/// then get Redis-assigned IDs and its rows a second statement.
const APPEND_ORDER_WAIT: Duration = Duration::from_millis(5);

impl Writer {
    /// Writes a group: rows (with proposed entry IDs), entries, and the `stream_id` of any row
    /// whose entry could not take its proposal. Returns one result per job.
    pub(crate) async fn write(&self, jobs: &[Job]) -> Vec<Result<Vec<String>, PublishError>> {
        let events: usize = jobs.iter().map(|j| j.events.len()).sum();
        self.metrics.group(events);
        let span = tracing::debug_span!(
            "group_write",
            events,
            jobs = jobs.len(),
            stream = %self.stream_name,
            outcome = Empty
        );
        let results = self.write_stages(jobs).instrument(span.clone()).await;
        if !span.is_disabled() {
            let failed = results.iter().filter(|r| r.is_err()).count();
            let outcome = match results.iter().find_map(|r| r.as_ref().err()) {
                None => "ok".to_string(),
                Some(e) if failed == results.len() => format!("failed {}", e.code.as_str()),
                Some(_) => format!("{failed} of {} jobs failed", results.len()),
            };
            span.record("outcome", outcome.as_str());
        }
        results
    }

    async fn write_stages(&self, jobs: &[Job]) -> Vec<Result<Vec<String>, PublishError>> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let all: Vec<&PreparedEvent> = jobs.iter().flat_map(|j| j.events.iter()).collect();
        let fail_all = |e: PublishError| jobs.iter().map(|_| Err(e.clone())).collect();

        // 1. Rows first (PENDING, stream_id = the entry ID proposed for the event), so a consumer
        //    never sees an entry without its row. Idempotent, so an ambiguous failure is retried.
        let (proposed, turn) = if self.reserve_ids {
            let at = host_now_us() + self.entry_ids.lead_us();
            let (ids, turn) = self.entry_ids.reserve(all.len(), at);
            (ids, Some(turn))
        } else {
            (Vec::new(), None)
        };
        // With `entryIds: 'server'` nothing is reserved: rows say '0-0' until step 3.
        let rows: Vec<(&PreparedEvent, &str)> = all
            .iter()
            .copied()
            .zip(
                proposed
                    .iter()
                    .map(String::as_str)
                    .chain(std::iter::repeat("0-0")),
            )
            .collect();
        // A repeat follows an attempt whose commit may have gone through: it must find its rows.
        let inserted = retry(
            (&self.metrics, Stage::InsertRows),
            deadline,
            false,
            |again| self.insert_rows(&rows, again),
        )
        .instrument(tracing::trace_span!("insert_rows", rows = rows.len()));
        let existing = match self.stage(Stage::InsertRows, inserted).await {
            Ok(existing) => existing,
            Err(e) => {
                // A failed single statement inserted nothing, but a lost reply may hide a commit and
                // other chunks of a large group may have committed.
                if e.outcome_unknown || all.len() > ROWS_PER_STATEMENT {
                    self.undo_rows(&rows).await;
                }
                return fail_all(e);
            }
        };

        // A retried caller id that belongs to another event fails that caller only.
        let mut results: Vec<Option<Result<Vec<String>, PublishError>>> = vec![None; jobs.len()];
        if !existing.is_empty() {
            for (i, job) in jobs.iter().enumerate() {
                for e in &job.events {
                    let Some(row) = existing.get(&e.event_id) else {
                        continue;
                    };
                    if row.event_type != e.event_type || row.tenant_id != e.tenant_id {
                        results[i] = Some(Err(PublishError::new(
                            Code::EventIdConflict,
                            format!(
                                "eventId '{}' already belongs to a {} event of another tenant or type",
                                e.event_id, row.event_type
                            ),
                        )));
                    }
                }
            }
        }
        // Each live event with the stream id its row holds: the proposal, or an earlier call's.
        let mut live: Vec<(&PreparedEvent, &str)> = Vec::with_capacity(all.len());
        let mut conflicted: Vec<(&PreparedEvent, &str)> = Vec::new();
        let mut at = 0;
        for (job, result) in jobs.iter().zip(&results) {
            for e in &job.events {
                let row = &rows[at];
                at += 1;
                let held = existing.get(&e.event_id).map(|r| r.stream_id.as_str());
                if result.is_some() {
                    if held.is_none() {
                        conflicted.push(*row);
                    }
                } else {
                    live.push((e, held.unwrap_or(row.1)));
                }
            }
        }
        if !conflicted.is_empty() {
            self.undo_rows(&conflicted).await;
        }
        if live.is_empty() {
            // Every job already has its (conflict) result.
            return merge(results, Ok(Vec::new()));
        }

        // 2. Entries, in one atomic script call, each at its row's stream id when Redis accepts
        //    it. A lost reply is retried as a repeated call: entries found at their proposed IDs,
        //    or the result recorded under the group's token (when Redis assigned some IDs), are
        //    the first call's, not appended twice. Retried caller ids are deduplicated.
        // Made on the first script call only: a lone event's plain XADD needs no token.
        let token = std::sync::OnceLock::new();
        let appends: Vec<Append> = live
            .iter()
            .map(|(e, held)| Append {
                dedup_id: e.caller_event_id.then_some(e.event_id.as_str()),
                retried: existing.contains_key(&e.event_id),
                // '0-0' (`entryIds: 'server'`, rows of older versions) is no ID to append at.
                proposed: if *held == "0-0" { "" } else { held },
                json: &e.json,
                trace_context: &e.trace_context,
            })
            .collect();
        if let Some(turn) = &turn {
            let wait = turn
                .wait(APPEND_ORDER_WAIT)
                .instrument(tracing::trace_span!("wait_append_order"));
            self.stage(Stage::WaitAppendOrder, wait).await;
            self.entry_ids
                .record_lead(started.elapsed().as_micros() as u64);
        }
        // With replicaAcks, the WAIT in the append's request ends before the first caller's
        // timeoutMs does (a WAIT holds up the connection's later commands, so groups queued
        // behind one start late).
        let callers =
            (jobs.iter().map(|j| j.since).min().unwrap_or(deadline) + self.timeout).min(deadline);
        // A repeated call (after a lost reply) checks for the first call's entries.
        let append = retry((&self.metrics, Stage::Append), deadline, false, |again| {
            let redis_now = self.entry_ids.redis_now_ms(host_now_us());
            self.stream
                .append(&token, &appends, callers, again, redis_now)
        })
        .instrument(tracing::trace_span!("append", entries = appends.len()));
        let appended = self.stage(Stage::Append, append).await;
        drop(turn);
        let (entry_ids, replicated) = match appended {
            Ok(a) => {
                self.entry_ids.sync(a.redis_us, host_now_us());
                let replicated = self.stream.check_replicas(&a);
                (a.ids, replicated)
            }
            Err(e) => {
                // Definite: nothing was appended, so this call's rows go. Unknown even after
                // retries: the rows stay PENDING for a retry with the same eventId or reconcile().
                if !e.outcome_unknown {
                    let fresh: Vec<(&PreparedEvent, &str)> = live
                        .iter()
                        .copied()
                        .filter(|(ev, _)| !existing.contains_key(&ev.event_id))
                        .collect();
                    self.undo_rows(&fresh).await;
                }
                return merge(results, Err(e));
            }
        };

        // 3. Rows whose entry did not take the row's id (another producer got ahead, the clock
        //    ran ahead of Redis's, or a retry's entry is older) get the real one. The entries are
        //    out and consumers may have read them, so they are never taken back: the patch
        //    (idempotent) is retried through any failure until the deadline. If it still fails,
        //    the caller gets an outcome-unknown error; a retry with the same eventId completes it,
        //    and reconcile() repairs the row.
        let (mut patch_ev, mut patch_st) = (Vec::new(), Vec::new());
        let mut shared_ids = false;
        for ((e, held), id) in live.iter().zip(&entry_ids) {
            if id != held {
                self.entry_ids.observe(id);
                patch_ev.push(e.event_id.as_str());
                patch_st.push(id.as_str());
                shared_ids |= e.caller_event_id;
            }
        }
        if !patch_ev.is_empty() {
            if self.reserve_ids {
                self.metrics.not_reserved(patch_ev.len());
            }
            let patch = retry(
                (&self.metrics, Stage::UpdateStreamId),
                deadline,
                true,
                |_| self.patch_rows(&patch_ev, &patch_st, shared_ids),
            )
            .instrument(tracing::trace_span!(
                "update_stream_id",
                rows = patch_ev.len()
            ));
            let patched = self.stage(Stage::UpdateStreamId, patch).await;
            if let Err(e) = patched {
                let mut e = PublishError::new(
                    e.code,
                    format!(
                        "the event is in the stream but its row's stream_id could not be set ({}); \
                         retry with the same eventId, or reconcile() repairs it",
                        e.message
                    ),
                );
                e.outcome_unknown = true;
                return merge(results, Err(e));
            }
        }

        // 4. With `replicaAcks`, resolve only once enough replicas hold the entries (a failover
        //    cannot lose them then). Fewer in time: outcome unknown, the rows stay as they are.
        if let Err(e) = replicated {
            return merge(results, Err(e));
        }

        // `entry_ids` follows `live`: the events of the jobs without a result, in order.
        let mut out = Vec::with_capacity(jobs.len());
        let mut at = 0;
        for (r, job) in results.into_iter().zip(jobs) {
            out.push(r.unwrap_or_else(|| {
                self.log_published(job, entry_ids.get(at).map(String::as_str));
                at += job.events.len();
                Ok(job.events.iter().map(|e| e.event_id.clone()).collect())
            }));
        }
        out
    }

    /// Inserts the rows, large groups as parallel statements of `ROWS_PER_STATEMENT` rows on
    /// separate connections (a failed chunk fails the step; `write` then undoes every chunk).
    async fn insert_rows(
        &self,
        rows: &[(&PreparedEvent, &str)],
        again: bool,
    ) -> Result<HashMap<String, ExistingRow>, PublishError> {
        if rows.len() <= ROWS_PER_STATEMENT {
            return self.store.insert_pending(rows, again).await;
        }
        // Chunks cover disjoint ranges of event ids, so parallel statements of two groups that
        // share ids take their row locks in one global order and cannot deadlock.
        let mut sorted = rows.to_vec();
        sorted.sort_unstable_by(|a, b| a.0.event_id.cmp(&b.0.event_id));
        let parts = futures_util::future::join_all(
            sorted
                .chunks(ROWS_PER_STATEMENT)
                .map(|c| self.store.insert_pending(c, again)),
        )
        .await;
        let mut existing = HashMap::new();
        let mut failure: Option<PublishError> = None;
        for part in parts {
            match part {
                Ok(m) => existing.extend(m),
                // Prefer reporting a definite failure: it decides whether `write` undoes.
                Err(e) => {
                    if failure.as_ref().is_none_or(|f| f.outcome_unknown) {
                        failure = Some(e);
                    }
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(existing),
        }
    }

    /// Sets the rows' stream ids, large groups as parallel statements.
    async fn patch_rows(
        &self,
        event_ids: &[&str],
        stream_ids: &[&str],
        shared_ids: bool,
    ) -> Result<(), PublishError> {
        if event_ids.len() <= ROWS_PER_STATEMENT {
            return self
                .store
                .set_stream_ids(event_ids, stream_ids, shared_ids)
                .await;
        }
        // Sorted by event id, for the same reason as the insert.
        let mut pairs: Vec<(&str, &str)> = event_ids
            .iter()
            .copied()
            .zip(stream_ids.iter().copied())
            .collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let (event_ids, stream_ids): (Vec<&str>, Vec<&str>) = pairs.into_iter().unzip();
        futures_util::future::try_join_all(
            event_ids
                .chunks(ROWS_PER_STATEMENT)
                .zip(stream_ids.chunks(ROWS_PER_STATEMENT))
                .map(|(e, s)| self.store.set_stream_ids(e, s, shared_ids)),
        )
        .await
        .map(|_| ())
    }

    /// Deletes rows of an undone publish (best effort: a failure is logged; `reconcile()` finds
    /// what is left).
    async fn undo_rows(&self, rows: &[(&PreparedEvent, &str)]) {
        if rows.is_empty() {
            return;
        }
        let ids: Vec<&str> = rows.iter().map(|(e, _)| e.event_id.as_str()).collect();
        let stream_ids: Vec<&str> = rows.iter().map(|(_, s)| *s).collect();
        let delete = self
            .store
            .delete(&ids, &stream_ids)
            .instrument(tracing::debug_span!("undo", rows = ids.len()));
        let deleted = self.stage(Stage::Undo, delete).await;
        if deleted.is_ok() {
            self.metrics.undone(ids.len());
        }
        if let Err(e) = deleted {
            tracing::error!(
                code = e.code.as_str(),
                error = %e.message,
                event_ids = %Joined(&ids),
                "could not delete the rows of a failed publish; reconcile() will mark them FAILED"
            );
        }
    }
}

/// Fills every job that has no result yet with `outcome`.
fn merge(
    results: Vec<Option<Result<Vec<String>, PublishError>>>,
    outcome: Result<Vec<String>, PublishError>,
) -> Vec<Result<Vec<String>, PublishError>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| outcome.clone()))
        .collect()
}
