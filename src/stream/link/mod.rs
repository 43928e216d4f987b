pub(crate) mod cluster_node;
pub(crate) mod probed_stream;
pub mod redis_link;
pub(crate) mod sent_marks;
pub mod sentinel;
pub(crate) mod tls;
