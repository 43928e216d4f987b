//! The connection redis-rs's Cluster connection keeps to each node: on a
//! [`super::probed_stream`] socket (plain TCP, or TLS over it: [`super::tls`]), so a
//! command that never reached a live node fails as never sent, and every command whose attempt
//! ended without a reply (it may have run) is noted in [`super::sent_marks`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::Connect;
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, Value,
};

use crate::stream::link::probed_stream::{not_sent, Probe};

/// How long a node's TCP connect may take: the longest `timeoutMs` of the process's Cluster
/// publishers (redis-rs hands [`Connect`] no way to read its own connection timeout).
static CONNECT_TIMEOUT_MS: AtomicU64 = AtomicU64::new(0);

/// Raises the node connect timeout to at least `timeout`.
pub fn allow_connect_time(timeout: Duration) {
    CONNECT_TIMEOUT_MS.fetch_max(timeout.as_millis() as u64, Ordering::AcqRel);
}

/// One node's connection, cheap to clone (clones share it).
#[derive(Clone)]
pub struct ClusterNode {
    conn: MultiplexedConnection,
    /// `None` on redis-rs's own connection (a Unix socket, or TLS whose CA this process cannot
    /// tell: see [`super::tls::cluster_config`]): every I/O failure is noted.
    probe: Option<Arc<Probe>>,
}

impl Connect for ClusterNode {
    fn connect_with_config<'a, T>(info: T, config: AsyncConnectionConfig) -> RedisFuture<'a, Self>
    where
        T: IntoConnectionInfo + Send + 'a,
    {
        async move {
            let info = info.into_connection_info()?;
            // Over TLS, the config of the node's CA (see redis_tls::cluster_config).
            let tls = crate::stream::link::tls::cluster_config(info.addr());
            let (host, port) = match (info.addr(), &tls) {
                (ConnectionAddr::Tcp(host, port), _)
                | (ConnectionAddr::TcpTls { host, port, .. }, Some(_)) => (host.clone(), *port),
                _ => {
                    let conn = MultiplexedConnection::connect_with_config(info, config).await?;
                    return Ok(ClusterNode { conn, probe: None });
                }
            };
            let limit = Duration::from_millis(CONNECT_TIMEOUT_MS.load(Ordering::Acquire).max(1));
            let tls = crate::stream::link::tls::for_addr(info.addr(), tls.as_ref())?;
            let connect = crate::stream::link::probed_stream::connect(
                &host,
                port,
                tls,
                info.redis_settings(),
                config,
            );
            let (conn, probe) = tokio::time::timeout(limit, connect).await.map_err(|_| {
                not_sent(&format!(
                    "connecting to {host}:{port} took longer than {} ms",
                    limit.as_millis()
                ))
            })??;
            Ok(ClusterNode {
                conn,
                probe: Some(probe),
            })
        }
        .boxed()
    }
}

impl ClusterNode {
    /// Runs `send`; notes `cmds` when it failed without a reply unless they were never sent.
    async fn run<'a, T>(
        &'a mut self,
        cmds: impl IntoIterator<Item = &'a Cmd>,
        send: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let writes = self.probe.as_ref().map(|p| p.writes());
        let result = send(&mut self.conn).await;
        let result = match (result, &self.probe, writes) {
            (Err(e), Some(probe), Some(before)) => Err(probe.classify(before, e)),
            (other, ..) => other,
        };
        if let Err(e) = &result {
            if crate::stream::link::sent_marks::reply_lost(e) {
                crate::stream::link::sent_marks::note(cmds);
            }
        }
        result
    }
}

impl ConnectionLike for ClusterNode {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            self.run([cmd], async |c| c.req_packed_command(cmd).await)
                .await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.run(pipeline.cmd_iter(), async |c| {
                c.req_packed_commands(pipeline, offset, count).await
            })
            .await
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}
