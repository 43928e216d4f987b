//! The HYVVE event publisher: a Node.js native addon. Folders in the order an event flows through
//! them; each folder's `mod.rs` says what it holds, and re-exports (`pub(crate) use`) what the
//! others may use. Layers point one way (checked by `npm run lint`: no import circles).
//!
//! ```text
//! index.js  publish(type, data, context) / publishBatch(events)
//!   │
//! binding/     the napi boundary, the only code that names napi: converts arguments, calls one
//!   │          pipeline method, converts the outcome back (`error.rs`: the one error point)
//! pipeline/    plain async Rust: `publisher.rs` admit (`admission.rs`, `circuit.rs`) → group
//!   │          commit (`group_commit.rs`: queue, leaders, groups) → `group_write.rs` (reserve an
//!   │          entry ID → insert the rows → append the entries → fix up `stream_id`; undo) with
//!   │          `retry.rs` deciding retries; `publish_log.rs` logs; `reconcile.rs` repairs
//!   ├─ event/      one event before anything is written: validation, ids, the envelope JSON
//!   ├─ metadata/   the `event_metadata` rows in Postgres: `store.rs` (statements),
//!   │              `connect.rs` (probe, prepared or not, pools)
//!   └─ stream/     the entries in the Redis Stream: `writer.rs` (+ `append_script.lua`),
//!        │         `entry_ids.rs`, `replica_wait.rs` (replicaAcks), `keys.rs` (dedup keys)
//!        └─ link/  how a command reaches a node and what an outage means: direct, Sentinel,
//!                  Cluster, the probed socket, TLS
//!
//! Once, at connect: config/ (options + environment → a validated `Config`, split by store).
//! Shared below everything: logging/, metrics.rs, errors.rs, clock.rs.
//! ```

#![deny(clippy::all)]
// One module style: a folder is `name/mod.rs` (tokio, sqlx, redis-rs), never `name.rs` beside it.
#![warn(clippy::self_named_module_files)]

mod binding;
mod clock;
mod config;
mod errors;
mod event;
mod logging;
mod metadata;
mod metrics;
mod pipeline;
mod stream;
