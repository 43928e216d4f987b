//! The one connection type the stream writer sends its commands on, whatever the topology, and
//! the exact classification of outages: a command that never reached a live connection fails as
//! a connection refusal (definite: nothing ran), unlike one that was sent and lost its reply.
//!
//! redis-rs reports both as the same "connection dropped" error, so plain TCP connections are
//! made here, on a socket wrapper ([`ProbedStream`]) that knows whether the server had already
//! closed the connection before a write and how many writes went out.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::{Client, Cmd, ConnectionAddr, Pipeline, RedisError, RedisFuture, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection to Redis, cheap to clone (clones share the underlying connection).
#[derive(Clone)]
pub enum RedisLink {
    /// Plain TCP to one node, outages classified exactly.
    Direct(DirectLink),
    /// TLS to one node through redis-rs's reconnecting manager (its I/O errors stay ambiguous).
    Managed(ConnectionManager),
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisLink::Direct(c) => c.req_packed_command(cmd),
            RedisLink::Managed(c) => c.req_packed_command(cmd),
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
            RedisLink::Managed(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisLink::Direct(c) => c.get_db(),
            RedisLink::Managed(c) => c.get_db(),
        }
    }
}

/// The error of a command that was never written to a live connection: a connection refusal
/// (`is_connection_refusal()`), so it is classified as definite.
pub fn not_sent(why: &str) -> RedisError {
    RedisError::from(io::Error::new(
        io::ErrorKind::ConnectionRefused,
        why.to_string(),
    ))
}

/// One multiplexed connection to a node over plain TCP, reconnected on the next command once it
/// is known dead (the server closed it, a write failed, or an I/O error came back).
#[derive(Clone)]
pub struct DirectLink {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    host: String,
    port: u16,
    connect_timeout: Duration,
    current: tokio::sync::Mutex<Option<Live>>,
}

#[derive(Clone)]
struct Live {
    conn: MultiplexedConnection,
    probe: Arc<Probe>,
}

/// What the socket wrapper saw, shared with the link.
#[derive(Default)]
struct Probe {
    /// The server closed the connection (EOF read or peeked), or a read or write failed.
    dead: AtomicBool,
    /// Writes that put at least one byte on the wire.
    writes: AtomicU64,
}

impl DirectLink {
    /// Connects to the node `client` names (plain TCP), within `connect_timeout`.
    pub async fn connect(client: Client, connect_timeout: Duration) -> Result<Self, RedisError> {
        let (host, port) = match client.get_connection_info().addr() {
            ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
            _ => {
                return Err(RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "a direct link is plain TCP",
                )))
            }
        };
        let link = DirectLink {
            shared: Arc::new(Shared {
                client,
                host,
                port,
                connect_timeout,
                current: tokio::sync::Mutex::new(None),
            }),
        };
        link.live().await?;
        Ok(link)
    }

    /// The current connection, a new one when there is none or it is known dead.
    async fn live(&self) -> Result<Live, RedisError> {
        let mut current = self.shared.current.lock().await;
        if let Some(live) = current.as_ref() {
            if !live.probe.dead.load(Ordering::Acquire) {
                return Ok(live.clone());
            }
            tracing::debug!(
                port = self.shared.port,
                "redis connection closed; reconnecting"
            );
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
        let tcp = TcpStream::connect((self.shared.host.as_str(), self.shared.port)).await?;
        tcp.set_nodelay(true)?;
        let probe = Arc::new(Probe::default());
        let stream = ProbedStream {
            inner: tcp,
            probe: probe.clone(),
        };
        let info = self.shared.client.get_connection_info().redis_settings();
        let (conn, driver) = MultiplexedConnection::new_with_config(
            info,
            stream,
            redis::AsyncConnectionConfig::new(),
        )
        .await?;
        let gone = probe.clone();
        tokio::spawn(async move {
            driver.await;
            gone.dead.store(true, Ordering::Release);
        });
        Ok(Live { conn, probe })
    }

    /// Runs `send` on the live connection; a failure that left the wire untouched on a dead
    /// connection becomes [`not_sent`].
    async fn run<T>(
        &self,
        send: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let live = self.live().await?;
        let writes = live.probe.writes.load(Ordering::Acquire);
        let mut conn = live.conn.clone();
        match send(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e)
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() =>
            {
                live.probe.dead.store(true, Ordering::Release);
                // No byte went out after the command was handed over and the connection was dead:
                // the command cannot have reached the server.
                if !e.is_timeout() && live.probe.writes.load(Ordering::Acquire) == writes {
                    Err(not_sent(&format!(
                        "the connection was closed before the command was sent ({e})"
                    )))
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }
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
        self.shared
            .client
            .get_connection_info()
            .redis_settings()
            .db()
    }
}

/// A TCP stream that, before each write, peeks whether the server has closed the connection (a
/// FIN already received: Redis closes a socket only when it will read no more from it), refusing
/// the write then instead of sending bytes nobody will read; and counts the writes that went out.
struct ProbedStream {
    inner: TcpStream,
    probe: Arc<Probe>,
}

impl ProbedStream {
    /// Err when the peer has closed the connection (or it has failed), before anything is written.
    fn check_open(&self) -> io::Result<()> {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        // The socket is non-blocking (tokio's), so the peek returns at once.
        match socket2::SockRef::from(&self.inner).peek(&mut buf) {
            Ok(0) => {
                self.probe.dead.store(true, Ordering::Release);
                Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "the server closed the connection",
                ))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => {
                self.probe.dead.store(true, Ordering::Release);
                Err(io::Error::new(io::ErrorKind::ConnectionRefused, e))
            }
        }
    }

    fn wrote(&self, r: &Poll<io::Result<usize>>) {
        match r {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.probe.writes.fetch_add(1, Ordering::AcqRel);
            }
            Poll::Ready(Err(_)) => self.probe.dead.store(true, Ordering::Release),
            _ => {}
        }
    }
}

impl AsyncRead for ProbedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                self.probe.dead.store(true, Ordering::Release);
            }
            Poll::Ready(Err(_)) => self.probe.dead.store(true, Ordering::Release),
            _ => {}
        }
        r
    }
}

impl AsyncWrite for ProbedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check_open() {
            return Poll::Ready(Err(e));
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check_open() {
            return Poll::Ready(Err(e));
        }
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
