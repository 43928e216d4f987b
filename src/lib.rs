//! Node.js binding of the HYVVE event publisher. This file only converts arguments and errors;
//! the publishing logic lives in plain async Rust modules, testable with `cargo test`.

#![deny(clippy::all)]

pub mod circuit;
mod cluster_node;
pub mod completions;
pub mod config;
pub mod entry_ids;
pub mod envelope;
pub mod errors;
mod group_commit;
mod group_write;
pub mod ids;
pub mod log_bridge;
pub mod logging;
pub mod metadata_store;
pub mod metrics;
pub mod packed_batch;
pub mod pkcs12;
mod probed_stream;
mod publish_log;
pub mod publisher;
pub mod reconcile;
pub mod redis_connection;
pub mod redis_keys;
mod redis_tls;
pub mod redis_topology;
mod replica_wait;
mod retry;
mod sent_marks;
pub mod sentinel_watch;
pub mod sql_literal;
pub mod stream_writer;
pub mod validate;
mod warm_connection;

mod binding;
