pub mod entry_ids;
pub mod keys;
pub mod link;
pub(crate) mod replica_wait;
pub mod writer;
