//! The `event_metadata` rows (Postgres): `store.rs` writes them (PENDING with the proposed entry
//! ID, `stream_id` fix-ups, deletes on undo, reconcile's reads), `connect.rs` opens the pools and
//! decides once whether statements may be prepared (a direct connection) or not (a pooler);
//! `sql_literal.rs` inlines values for poolers, `warm_connection.rs` keeps the last connection.

mod connect;
mod sql_literal;
mod store;
mod warm_connection;

pub(crate) use sql_literal::{push_text, text_arrays};
pub(crate) use store::{ExistingRow, MetadataStore, PendingRow};
