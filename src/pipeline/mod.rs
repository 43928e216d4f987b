//! Publishing, in plain async Rust (no napi), stage by stage: `publisher.rs` is the API
//! (connect, start a publish, health, stats, close); `admission.rs` holds a call's room
//! (`maxInFlight`), `circuit.rs` the breaker; `group_commit.rs` queues jobs and forms groups;
//! `group_write.rs` writes a group (reserve → rows → entries → `stream_id`; undo) and
//! `retry.rs` decides what is retried; `publish_log.rs` logs outcomes; `reconcile.rs` repairs
//! the rows a crashed process left.

mod admission;
mod circuit;
mod group_commit;
mod group_write;
mod outbox;
mod publish_log;
mod publisher;
mod reconcile;
mod retry;

pub(crate) use publisher::Publisher;
