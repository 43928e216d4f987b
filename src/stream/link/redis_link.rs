//! The one connection type the stream writer sends its commands on, whatever the topology, and
//! the exact classification of outages: a command that never reached a live connection fails as
//! a connection refusal (definite: nothing ran), unlike one that was sent and lost its reply.
//!
//! redis-rs reports both as the same "connection dropped" error, so connections (plain TCP, or
//! TLS over it: [`crate::stream::link::tls`]) are made here, on a socket wrapper
//! ([`crate::stream::link::probed_stream`]) that knows whether the server had already closed the connection
//! before a write and how many writes went out.
//!
//! Topologies: one node ([`DirectLink`] to a fixed address), a Sentinel-managed primary (a
//! [`DirectLink`] whose address is asked of the sentinels at each (re)connect, and which
//! reconnects after a `READONLY` reply: the node it talks to was demoted), and a Cluster
//! (redis-rs's `ClusterConnection`: MOVED/ASK, topology refresh, TRYAGAIN/CLUSTERDOWN retries).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    Client, Cmd, ConnectionAddr, FromRedisValue, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, Value,
};

use crate::config::redis::{SentinelConfig, Topology};
use crate::config::RedisConfig;
use crate::errors::PublishError;
use crate::stream::link::cluster_node::ClusterNode;

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
    /// outcome-unknown when any attempt may have run unanswered ([`crate::stream::link::sent_marks`]), and
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
        1 + crate::pipeline::group_commit::MAX_GROUPS_IN_FLIGHT as usize
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

pub use crate::stream::link::probed_stream::not_sent;
use crate::stream::link::probed_stream::Probe;

/// Multiplexed connections to a node, plain TCP or TLS (one per lane; lane 0 is the main one),
/// each reconnected on its next command once it is known dead (the server closed it, a write
/// failed, an I/O error came back, a Sentinel primary answered `READONLY`, or the sentinels
/// announced another primary).
#[derive(Clone)]
pub struct DirectLink {
    shared: Arc<Shared>,
    lane: usize,
}

/// Where a direct link connects.
pub enum Target {
    /// The node of this client's URL, and the TLS config for a `rediss://` one.
    Fixed(Client, Option<Arc<rustls::ClientConfig>>),
    /// The primary the sentinels name at each connect.
    Sentinel(SentinelConfig),
}

struct Shared {
    target: Target,
    connect_timeout: Duration,
    lanes: Vec<tokio::sync::Mutex<Option<Live>>>,
    /// The primary the Sentinel watcher learned last (a `+switch-master`): tried before asking
    /// the sentinels, which may not all have switched yet.
    announced: std::sync::Mutex<Option<(String, u16)>>,
    watch: std::sync::Mutex<Option<crate::stream::link::sentinel::Watch>>,
    closed: AtomicBool,
}

#[derive(Clone)]
struct Live {
    conn: MultiplexedConnection,
    probe: Arc<Probe>,
    addr: (String, u16),
}

impl DirectLink {
    /// Connects to `target`, within `connect_timeout`; `lanes` connections in all
    /// (the first one now, the others on first use). A Sentinel target is watched for failovers.
    pub async fn connect(
        target: Target,
        connect_timeout: Duration,
        lanes: usize,
    ) -> Result<Self, RedisError> {
        let sentinel = match &target {
            Target::Sentinel(s) => Some(s.clone()),
            Target::Fixed(..) => None,
        };
        let link = DirectLink {
            shared: Arc::new(Shared {
                target,
                connect_timeout,
                lanes: (0..lanes.max(1))
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
                announced: std::sync::Mutex::new(None),
                watch: std::sync::Mutex::new(None),
                closed: AtomicBool::new(false),
            }),
            lane: 0,
        };
        link.live().await?;
        if let Some(s) = sentinel {
            // Weak: the watcher must not keep the link (and its connections) alive.
            let weak = Arc::downgrade(&link.shared);
            let on_primary: crate::stream::link::sentinel::OnPrimary =
                Box::new(move |host, port| {
                    let shared = weak.upgrade()?;
                    Some(Box::pin(async move { shared.primary_is(host, port).await }))
                });
            let watch = crate::stream::link::sentinel::spawn(s, connect_timeout, on_primary);
            *lock(&link.shared.watch) = Some(watch);
        }
        Ok(link)
    }

    /// The same link on lane `lane` (its own connection).
    fn lane(&self, lane: usize) -> DirectLink {
        DirectLink {
            shared: self.shared.clone(),
            lane: lane.min(self.shared.lanes.len() - 1),
        }
    }

    /// Ends the watcher and drops every lane's connection; later commands fail as never sent.
    fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        drop(lock(&self.shared.watch).take());
        for lane in &self.shared.lanes {
            if let Ok(mut current) = lane.try_lock() {
                *current = None;
            }
        }
    }

    /// The current connection, a new one when there is none or it is known dead.
    async fn live(&self) -> Result<Live, RedisError> {
        let mut current = self.shared.lanes[self.lane].lock().await;
        if self.shared.closed.load(Ordering::Acquire) {
            *current = None;
            return Err(not_sent("the publisher is closed"));
        }
        if let Some(live) = current.as_ref() {
            if !live.probe.dead.load(Ordering::Acquire) {
                return Ok(live.clone());
            }
            tracing::debug!("redis connection closed; reconnecting");
        }
        *current = None;
        let live = tokio::time::timeout(self.shared.connect_timeout, self.open())
            .await
            .map_err(|_| {
                not_sent(&format!(
                    "connecting took longer than {} ms",
                    self.shared.connect_timeout.as_millis()
                ))
            })??;
        *current = Some(live.clone());
        Ok(live)
    }

    async fn open(&self) -> Result<Live, RedisError> {
        let client = match &self.shared.target {
            Target::Fixed(client, tls) => return self.open_on(client.clone(), tls.as_ref()).await,
            Target::Sentinel(s) => {
                let announced = lock(&self.shared.announced).clone();
                if let Some((host, port)) = announced {
                    match self.open_on(primary_client(s, host, port)?, None).await {
                        Ok(live) => return Ok(live),
                        Err(e) => {
                            tracing::debug!(error = %e, "the announced primary failed; asking the sentinels");
                            lock(&self.shared.announced).take();
                        }
                    }
                }
                sentinel_primary(s, self.shared.connect_timeout).await?
            }
        };
        self.open_on(client, None).await
    }

    /// Connects to `client`'s node, over TLS with `tls` when its URL is `rediss://`.
    async fn open_on(
        &self,
        client: Client,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Live, RedisError> {
        let addr = client.get_connection_info().addr();
        let (host, port) = match addr {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                (host.clone(), *port)
            }
            _ => {
                return Err(RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "a direct link is TCP (plain or TLS)",
                )))
            }
        };
        // No response timeout of the driver's (500 ms by default): every command is bounded by
        // the caller's budget, and WAIT may rightly take longer.
        let (mut conn, probe) = crate::stream::link::probed_stream::connect(
            &host,
            port,
            crate::stream::link::tls::for_addr(addr, tls)?,
            client.get_connection_info().redis_settings(),
            redis::AsyncConnectionConfig::new().set_response_timeout(None),
        )
        .await?;
        if matches!(self.shared.target, Target::Sentinel(_)) {
            // Right after a failover a sentinel may name a node that is not yet promoted.
            let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
            let is_master = matches!(role.first(), Some(Value::BulkString(b)) if b == b"master");
            if !is_master {
                probe.dead.store(true, Ordering::Release);
                return Err(not_sent(&format!(
                    "the sentinels name {host}:{port}, which is not a primary (yet)"
                )));
            }
            tracing::debug!(%host, port, "connected to the primary the sentinels name");
        }
        Ok(Live {
            conn,
            probe,
            addr: (host, port),
        })
    }
    /// Runs `send` on the live connection; a failure that left the wire untouched on a dead
    /// connection becomes [`not_sent`].
    async fn run<T>(
        &self,
        send: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let live = self.live().await?;
        let writes = live.probe.writes();
        let mut conn = live.conn.clone();
        send(&mut conn).await.map_err(|e| {
            let e = live.probe.classify(writes, e);
            // A demoted primary: the next command asks the sentinels again. The command did not
            // run (READONLY), so it is retried like a conflict.
            if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly) {
                live.probe.dead.store(true, Ordering::Release);
            }
            e
        })
    }
}

impl Shared {
    /// The sentinels name `host:port` as the primary now: remembered for the next connect, and
    /// every lane connected elsewhere is marked dead, so its next command reconnects there
    /// (commands already sent on it finish there: a demoted node refuses or, with replicaAcks,
    /// cannot have them acknowledged).
    async fn primary_is(&self, host: String, port: u16) {
        let addr = (host, port);
        *lock(&self.announced) = Some(addr.clone());
        for lane in &self.lanes {
            let current = lane.lock().await;
            if let Some(live) = current.as_ref() {
                if live.addr != addr && !live.probe.dead.swap(true, Ordering::AcqRel) {
                    tracing::debug!(
                        old = %format!("{}:{}", live.addr.0, live.addr.1),
                        new = %format!("{}:{}", addr.0, addr.1),
                        "the sentinels switched the primary; reconnecting"
                    );
                }
            }
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A client for the primary at `host:port` (with the primary's password).
fn primary_client(s: &SentinelConfig, host: String, port: u16) -> Result<Client, RedisError> {
    let node = ConnectionAddr::Tcp(host, port).into_connection_info()?;
    let node = match &s.password {
        Some(pw) => {
            node.set_redis_settings(redis::RedisConnectionInfo::default().set_password(pw.clone()))
        }
        None => node,
    };
    Client::open(node)
}

/// `SENTINEL get-master-addr-by-name` of one sentinel.
pub(crate) async fn ask_sentinel(
    sentinel: &Client,
    name: &str,
) -> Result<Option<(String, u16)>, RedisError> {
    let mut c = sentinel.get_multiplexed_async_connection().await?;
    redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(name)
        .query_async(&mut c)
        .await
}

/// Asks the sentinels, in turn, for the address of the primary `s.name`; returns a client for
/// it (with the primary's password).
async fn sentinel_primary(s: &SentinelConfig, timeout: Duration) -> Result<Client, RedisError> {
    let mut last: Option<RedisError> = None;
    for (host, port) in &s.sentinels {
        let asked = async {
            let client = Client::open(crate::stream::link::sentinel::sentinel_info(
                s, host, *port,
            )?)?;
            ask_sentinel(&client, &s.name).await
        };
        match tokio::time::timeout(timeout, asked).await {
            Ok(Ok(Some((h, p)))) => return primary_client(s, h, p),
            Ok(Ok(None)) => {
                last = Some(not_sent(&format!(
                    "sentinel {host}:{port} does not know a primary named '{}'",
                    s.name
                )))
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(not_sent(&format!("sentinel {host}:{port} did not answer"))),
        }
    }
    // The command was not sent to any primary.
    Err(not_sent(&format!(
        "no sentinel named the primary '{}' ({})",
        s.name,
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

impl ConnectionLike for DirectLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { self.run(async |c| c.req_packed_command(cmd).await).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.run(async |c| c.req_packed_commands(pipeline, offset, count).await)
                .await
        })
    }

    fn get_db(&self) -> i64 {
        match &self.shared.target {
            Target::Fixed(c, _) => c.get_connection_info().redis_settings().db(),
            Target::Sentinel(_) => 0,
        }
    }
}
