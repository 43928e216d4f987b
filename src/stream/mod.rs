//! The entries (Redis Stream): `writer.rs` appends a group's entries with the trimming and the
//! dedup keys (`keys.rs`) through one script call (`append_script.lua`) or a plain XADD, and
//! reads for reconcile; `entry_ids.rs` reserves entry IDs from the Redis clock; `replica_wait.rs`
//! adds `WAIT` for `replicaAcks`; `link/` carries every command to a node.

mod entry_ids;
mod keys;
mod link;
mod replica_wait;
mod writer;

pub(crate) use entry_ids::{host_now_us, EntryIdClock};
pub(crate) use writer::{Append, StreamWriter, SLACK_MS};
