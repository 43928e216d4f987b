//! The socket under every connection whose outages are classified exactly: it knows whether the
//! server had already closed the connection before a write, and how many writes went out, so a
//! command that never reached a live server can be told from one whose reply was lost (redis-rs
//! reports both as the same "connection dropped" error). Over TLS the TLS stream sits on this
//! socket ([`super::tls`]), so the same holds.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisConnectionInfo, RedisError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What the socket wrapper saw, shared with the connection's owner.
#[derive(Default)]
pub struct Probe {
    /// The server closed the connection (EOF read or peeked), or a read or write failed.
    pub dead: AtomicBool,
    /// Writes that put at least one byte on the wire.
    writes: AtomicU64,
}

impl Probe {
    /// The count to pass to [`Probe::classify`] for a command about to be handed over.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    /// Marks the connection dead after `e`, a failure of a command handed over when the count
    /// was `writes_before`. When no byte went out since on a connection that is dead, and it was
    /// not a timeout, the command cannot have reached the server: that is [`not_sent`].
    pub fn classify(&self, writes_before: u64, e: RedisError) -> RedisError {
        if !connection_failed(&e) {
            return e;
        }
        self.dead.store(true, Ordering::Release);
        if !e.is_timeout() && self.writes() == writes_before {
            not_sent(&format!(
                "the connection was closed before the command was sent ({e})"
            ))
        } else {
            e
        }
    }
}

/// `e` says the connection failed (I/O, dropped, or unusable), not that the server answered.
pub fn connection_failed(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

/// The error of a command that was never written to a live connection: a connection refusal
/// (`is_connection_refusal()`), so it is classified as definite.
pub fn not_sent(why: &str) -> RedisError {
    RedisError::from(io::Error::new(
        io::ErrorKind::ConnectionRefused,
        why.to_string(),
    ))
}

/// A multiplexed connection to `host:port` on a [`ProbedStream`], with TLS over it when `tls` is
/// given (so the probe sees the TCP socket itself), and its probe (marked dead when the
/// connection's driver ends).
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<crate::stream::link::tls::Tls>,
    info: &RedisConnectionInfo,
    config: AsyncConnectionConfig,
) -> Result<(MultiplexedConnection, Arc<Probe>), RedisError> {
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let probe = Arc::new(Probe::default());
    let stream = ProbedStream {
        inner: tcp,
        probe: probe.clone(),
    };
    let conn = match tls {
        None => start(info, stream, config, &probe).await?,
        Some(tls) => {
            let stream = tls.connector.connect(tls.name, stream).await?;
            start(info, stream, config, &probe).await?
        }
    };
    Ok((conn, probe))
}

/// The multiplexed connection on `stream`, its driver spawned; `probe` is marked dead when the
/// driver ends.
async fn start<S>(
    info: &RedisConnectionInfo,
    stream: S,
    config: AsyncConnectionConfig,
    probe: &Arc<Probe>,
) -> Result<MultiplexedConnection, RedisError>
where
    S: Unpin + AsyncRead + AsyncWrite + Send + 'static,
{
    let (conn, driver) = MultiplexedConnection::new_with_config(info, stream, config).await?;
    let gone = probe.clone();
    tokio::spawn(async move {
        driver.await;
        gone.dead.store(true, Ordering::Release);
    });
    Ok(conn)
}

/// A TCP stream that, before each write, checks whether the server has closed the connection (a
/// FIN already received: Redis closes a socket only when it will read no more from it), refusing
/// the write then instead of sending bytes nobody will read; and counts the writes that went out.
struct ProbedStream {
    inner: TcpStream,
    probe: Arc<Probe>,
}

impl ProbedStream {
    /// Err when the peer has closed the connection (or it has failed), before anything is written.
    fn check_open(&self) -> io::Result<()> {
        let failed = match self.peer_closed() {
            Ok(false) => return Ok(()),
            Ok(true) => io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the server closed the connection",
            ),
            Err(e) => io::Error::new(io::ErrorKind::ConnectionRefused, e),
        };
        self.probe.dead.store(true, Ordering::Release);
        Err(failed)
    }

    /// On Linux, the TCP state: anything but ESTABLISHED means a FIN or RST came (or we closed).
    /// It holds even with unread bytes ahead of the FIN, e.g. a TLS close_notify, which a peek
    /// would take for a live connection.
    #[cfg(target_os = "linux")]
    fn peer_closed(&self) -> io::Result<bool> {
        match tcp_state(&self.inner) {
            Ok(state) => Ok(state != TCP_ESTABLISHED),
            Err(_) => self.peeked_eof(),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn peer_closed(&self) -> io::Result<bool> {
        self.peeked_eof()
    }

    /// A peek at the socket: EOF when the FIN is the next thing to read.
    fn peeked_eof(&self) -> io::Result<bool> {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        // The socket is non-blocking (tokio's), so the peek returns at once.
        match socket2::SockRef::from(&self.inner).peek(&mut buf) {
            Ok(n) => Ok(n == 0),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `write` on the socket unless the peer has closed it; a write that put bytes on the wire is
    /// counted, and a failed one marks the connection dead.
    fn probed_write(
        mut self: Pin<&mut Self>,
        write: impl FnOnce(Pin<&mut TcpStream>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check_open() {
            return Poll::Ready(Err(e));
        }
        let r = write(Pin::new(&mut self.inner));
        match &r {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.probe.writes.fetch_add(1, Ordering::AcqRel);
            }
            Poll::Ready(Err(_)) => self.probe.dead.store(true, Ordering::Release),
            _ => {}
        }
        r
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
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.probed_write(|s| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.probed_write(|s| s.poll_write_vectored(cx, bufs))
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

/// `TCP_ESTABLISHED` of Linux's `include/net/tcp_states.h` (libc has no constant for it).
#[cfg(target_os = "linux")]
const TCP_ESTABLISHED: u8 = 1;

/// `tcpi_state` of the socket's `TCP_INFO`.
#[cfg(target_os = "linux")]
fn tcp_state(socket: &TcpStream) -> io::Result<u8> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain integers, valid when zeroed; getsockopt writes at most `len`
    // bytes into it and the fd is open for as long as `socket` is borrowed.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(info.tcpi_state)
    }
}
