//! The one connection type the stream writer sends its commands on, whatever the topology, and
//! the exact classification of outages: a command that never reached a live connection fails as
//! a connection refusal (definite: nothing ran), unlike one that was sent and lost its reply.
//!
//! redis-rs reports both as the same "connection dropped" error, so connections (plain TCP, or
//! TLS over it: [`super::tls`]) are made here, on a socket wrapper
//! ([`super::probed_stream`]) that knows whether the server had already closed the connection
//! before a write and how many writes went out.
//!
//! Topologies: one node ([`DirectLink`] to a fixed address), a Sentinel-managed primary (a
//! [`DirectLink`] whose address is asked of the sentinels at each (re)connect, and which
//! reconnects after a `READONLY` reply: the node it talks to was demoted), and a Cluster
//! (redis-rs's `ClusterConnection`: MOVED/ASK, topology refresh, TRYAGAIN/CLUSTERDOWN retries).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Client, Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, Value};

use super::cluster_node::ClusterNode;
use super::direct_link::{DirectLink, Target};
use super::probed_stream::not_sent;
use crate::config::RedisConfig;
use crate::config::Topology;
use crate::errors::Code;
use crate::errors::PublishError;

/// A connection to Redis, cheap to clone (clones share the underlying connection).
#[derive(Clone)]
pub enum RedisLink {
    /// One node (or the Sentinel primary), plain TCP or TLS, outages classified exactly.
    Direct(DirectLink),
    /// A Redis Cluster; `slot` is the stream's, where commands without keys are sent.
    Cluster(ClusterConnection<ClusterNode>, u16),
}

/// Which topology a link ended up on, for messages and health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One node.
    Standalone,
    /// A Redis Cluster.
    Cluster,
    /// The primary the sentinels name.
    Sentinel,
}

impl RedisLink {
    /// Connects to the deployment `cfg` describes, within `timeout`. A node given by URL that
    /// reports `cluster_enabled:1` is used as the seed of a Cluster connection. `slot` is the
    /// stream's cluster slot.
    pub async fn connect(
        cfg: &RedisConfig,
        slot: u16,
        timeout: Duration,
    ) -> Result<(RedisLink, Kind), PublishError> {
        let fail = |what: &str, e: &RedisError| PublishError::redis(what, e);
        match &cfg.topology {
            Topology::Cluster { seeds } => {
                let conn = cluster(cfg, seeds, timeout)
                    .await
                    .map_err(|e| fail("connect to the cluster seeds", &e))?;
                Ok((RedisLink::Cluster(conn, slot), Kind::Cluster))
            }
            Topology::Sentinel(s) => {
                let link = DirectLink::connect(Target::Sentinel(s.clone()), timeout, lanes(cfg))
                    .await
                    .map_err(|e| fail(&format!("connect via the sentinels of '{}'", s.name), &e))?;
                Ok((RedisLink::Direct(link), Kind::Sentinel))
            }
            Topology::Node => {
                let (client, tls) = node_client(cfg, &cfg.url)?;
                let what = format!("connect to {}", cfg.display);
                let mut link = RedisLink::Direct(
                    DirectLink::connect(Target::Fixed(client, tls), timeout, lanes(cfg))
                        .await
                        .map_err(|e| fail(&what, &e))?,
                );
                let info: String = redis::cmd("INFO")
                    .arg("cluster")
                    .query_async(&mut link)
                    .await
                    .map_err(|e| fail("INFO cluster", &e))?;
                if !info.lines().any(|l| l.trim() == "cluster_enabled:1") {
                    return Ok((link, Kind::Standalone));
                }
                tracing::debug!(url = %cfg.display, "redisUrl names a cluster node");
                let conn = cluster(cfg, std::slice::from_ref(&cfg.url), timeout)
                    .await
                    .map_err(|e| fail(&format!("connect to the cluster of {}", cfg.display), &e))?;
                Ok((RedisLink::Cluster(conn, slot), Kind::Cluster))
            }
        }
    }

    /// Further connections to the same deployment, `n` of them, each with a command stream of
    /// its own (for appends followed by `WAIT`, which holds up the commands behind it on its
    /// connection). A direct link's lanes share its target and Sentinel watcher and connect on
    /// first use; the other kinds connect anew.
    pub async fn lanes(
        &self,
        cfg: &RedisConfig,
        slot: u16,
        timeout: Duration,
        n: usize,
    ) -> Result<Vec<RedisLink>, PublishError> {
        match self {
            RedisLink::Direct(d) => Ok((1..=n)
                .map(|lane| RedisLink::Direct(d.lane(lane)))
                .collect()),
            _ => {
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(Box::pin(RedisLink::connect(cfg, slot, timeout)).await?.0);
                }
                Ok(out)
            }
        }
    }

    /// Stops what runs in the background (the Sentinel watcher) and drops the direct link's
    /// connections; a command after this fails as never sent.
    pub fn close(&self) {
        if let RedisLink::Direct(d) = self {
            d.close();
        }
    }

    /// Runs `pipe`, an append whose argument `marker` is unique to it. On a Cluster, where
    /// redis-rs retries by itself and only the last attempt's error comes back, a failure is
    /// outcome-unknown when any attempt may have run unanswered ([`super::sent_marks`]), and
    /// definite (never sent) when none did and the last one lost its connection.
    pub async fn query_watched<T: FromRedisValue>(
        &mut self,
        pipe: &Pipeline,
        marker: &str,
    ) -> Result<T, RedisError> {
        if !matches!(self, RedisLink::Cluster(..)) {
            return pipe.query_async(self).await;
        }
        let watch = crate::stream::link::sent_marks::watch(marker);
        match pipe.query_async(self).await {
            Err(e) if watch.maybe_sent() && !crate::stream::link::sent_marks::reply_lost(&e) => {
                Err(RedisError::from(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!("an earlier attempt lost its reply; the last one: {e}"),
                )))
            }
            Err(e)
                if !watch.maybe_sent()
                    && !e.is_timeout()
                    && (crate::stream::link::probed_stream::connection_failed(&e)
                        || e.kind() == redis::ErrorKind::ClusterConnectionNotFound) =>
            {
                Err(not_sent(&format!("no node received the command ({e})")))
            }
            other => other,
        }
    }

    /// Runs a command that names no key on the node that holds the stream (its shard's master
    /// on a Cluster), e.g. `TIME`, `PING`, `WAIT`, `SCRIPT LOAD`.
    pub async fn query_at_stream<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, RedisError> {
        match self {
            RedisLink::Cluster(c, slot) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(*slot, SlotAddr::Master),
                ));
                let v = c.route_command(cmd.clone(), route).await?;
                Ok(T::from_redis_value(v)?)
            }
            other => cmd.query_async(other).await,
        }
    }
}

/// How many connections a direct link keeps: the main one, plus one per group in flight when
/// appends are followed by `WAIT` (see [`RedisLink::lanes`]).
fn lanes(cfg: &RedisConfig) -> usize {
    if cfg.replica_acks > 0 {
        1 + crate::config::MAX_GROUPS_IN_FLIGHT as usize
    } else {
        1
    }
}

/// A client for one node's URL, and its TLS config (the CA file's when there is one).
fn node_client(
    cfg: &RedisConfig,
    url: &str,
) -> Result<(Client, Option<Arc<rustls::ClientConfig>>), PublishError> {
    let invalid =
        |e: RedisError| PublishError::config(format!("redisUrl {} is invalid: {e}", cfg.display));
    let client = Client::open(url).map_err(invalid)?;
    if !cfg.tls {
        return Ok((client, None));
    }
    let pem = match &cfg.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            PublishError::config(format!("cannot read the Redis CA file {path}: {e}"))
        })?),
        None => None,
    };
    let tls = crate::stream::link::tls::client_config(pem.as_deref()).map_err(invalid)?;
    Ok((client, Some(tls)))
}

/// A Cluster connection from `seeds`; its own retries (MOVED/ASK, TRYAGAIN, CLUSTERDOWN, a
/// failover's refresh) are bounded by the caller's time budget.
async fn cluster(
    cfg: &RedisConfig,
    seeds: &[String],
    timeout: Duration,
) -> Result<ClusterConnection<ClusterNode>, RedisError> {
    let mut b = redis::cluster::ClusterClientBuilder::new(seeds.iter().map(String::as_str))
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(12)
        .min_retry_wait(20)
        .max_retry_wait(250);
    if let (Some(path), true) = (&cfg.ca_file, cfg.tls) {
        let pem = std::fs::read(path)?;
        crate::stream::link::tls::cluster_uses_ca(&pem)?;
        b = b.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        });
    }
    crate::stream::link::cluster_node::allow_connect_time(timeout);
    b.build()?
        .get_async_generic_connection::<ClusterNode>()
        .await
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisLink::Direct(c) => c.req_packed_command(cmd),
            RedisLink::Cluster(c, _) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisLink::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            RedisLink::Cluster(c, _) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisLink::Direct(c) => c.get_db(),
            RedisLink::Cluster(c, _) => c.get_db(),
        }
    }
}

/// The next reply of a pipeline, as `T`; `what` names the command in the error.
pub(crate) fn next_reply<T: redis::FromRedisValue>(
    replies: &mut impl Iterator<Item = redis::Value>,
    what: &str,
) -> Result<T, PublishError> {
    let bad = |m: String| PublishError::new(Code::Redis, m);
    let v = replies
        .next()
        .ok_or_else(|| bad(format!("no reply to {what}")))?;
    redis::FromRedisValue::from_redis_value(v).map_err(|e| bad(format!("{what} reply: {e}")))
}
