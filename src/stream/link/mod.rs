//! How a command reaches a Redis node, and what an outage means: `redis_link.rs` is the one
//! connection type (direct or Cluster) and its pipeline-reply parsing; `direct_link.rs` one node
//! or the Sentinel primary in lanes; `sentinel.rs` asks and watches the sentinels;
//! `cluster_node.rs` a Cluster node's connection; `probed_stream.rs` the socket that tells "never
//! sent" from "sent, reply lost"; `sent_marks.rs` notes lost replies under redis-rs's retries;
//! `tls.rs` rustls on that socket.

mod cluster_node;
mod direct_link;
mod probed_stream;
mod redis_link;
mod sent_marks;
mod sentinel;
mod tls;

pub(crate) use redis_link::{next_reply, RedisLink};
