//! A connection to one node (fixed, or the primary the sentinels name), plain TCP or TLS, in
//! lanes, each reconnected on its next command once it is known dead. Commands that never
//! reached a live connection fail as [`not_sent`] (definite: nothing ran).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Client, Cmd, ConnectionAddr, Pipeline, RedisError, RedisFuture, Value};

use super::probed_stream::{not_sent, Probe};
use super::sentinel::{primary_client, sentinel_primary};
use crate::config::SentinelConfig;

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
    pub(super) fn lane(&self, lane: usize) -> DirectLink {
        DirectLink {
            shared: self.shared.clone(),
            lane: lane.min(self.shared.lanes.len() - 1),
        }
    }

    /// Ends the watcher and drops every lane's connection; later commands fail as never sent.
    pub(super) fn close(&self) {
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
