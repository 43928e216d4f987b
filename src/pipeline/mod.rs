//! Publishing, in plain async Rust (no napi), stage by stage: `publisher.rs` is the API
//! (connect, start a publish, health, stats, close); `admission.rs` holds a call's room
//! (`maxInFlight`, `maxInFlightBytes`; `memory.rs` gives memory back after a burst),
//! `circuit.rs` the breaker, `maybe_written.rs` the caller ids an earlier attempt may have
//! written (so a rejection describes the event); `batch_parts.rs` cuts a large batch into parts;
//! `group_commit.rs` queues jobs and forms groups;
//! `group_write.rs` writes a group (reserve → rows → entries → `stream_id`; undo) and
//! `retry.rs` decides what is retried; `publish_log.rs` logs outcomes; `reconcile.rs` repairs
//! the rows a crashed process left; `outbox/` stages events in the caller's transaction and
//! delivers committed ones (dispatch and the relay).

mod admission;
mod batch_parts;
mod circuit;
mod group_commit;
mod group_write;
mod maybe_written;
mod memory;
mod outbox;
mod publish_log;
mod publisher;
mod reconcile;
mod retry;

pub(crate) use publisher::Publisher;
