pub mod circuit;
pub(crate) mod group_commit;
pub(crate) mod group_write;
pub(crate) mod publish_log;
pub mod publisher;
pub mod reconcile;
pub(crate) mod retry;
