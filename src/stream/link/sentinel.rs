//! Follows a Sentinel failover as it happens: a task subscribed to a sentinel's `+switch-master`
//! channel reports each new primary address of the watched name at once, so the link stops
//! writing to the demoted node instead of finding out from its `READONLY` replies or its close
//! (about 10 s after a `SENTINEL FAILOVER`, measured, when the old primary is converted).
//!
//! One sentinel at a time; when it goes away (closed, or no answer to a PING) the task moves to
//! the next one. After each subscription it also asks that sentinel for the current primary, so
//! a switch announced while no sentinel was being listened to is not missed. The task is only a
//! listener: it never holds anything a publish waits for, and it ends when its [`Watch`] is
//! dropped (it holds nothing that keeps the Node.js process alive).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisError};

use super::probed_stream::not_sent;
use crate::config::SentinelConfig;

/// The channel on which a sentinel announces `<name> <old-ip> <old-port> <new-ip> <new-port>`.
const CHANNEL: &str = "+switch-master";
/// How often the subscribed sentinel must answer a PING (a stopped sentinel sends no FIN).
const PING_EVERY: Duration = Duration::from_secs(1);
/// Pause after every sentinel of the list failed once, before going round again.
const ROUND_PAUSE: Duration = Duration::from_millis(500);

/// What the watcher calls with each primary address it learns: returns `None` once the link it
/// reports to is gone (the watcher then ends), else a future that applies the address.
pub type OnPrimary =
    Box<dyn Fn(String, u16) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> + Send + Sync>;

/// The running watcher; dropping it ends the task (and its sentinel connection).
pub struct Watch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching the sentinels of `cfg` for switches of `cfg.name`. `timeout` bounds each
/// connect and PING.
pub fn spawn(cfg: SentinelConfig, timeout: Duration, on_primary: OnPrimary) -> Watch {
    Watch {
        task: tokio::spawn(run(cfg, timeout, on_primary)),
    }
}

async fn run(cfg: SentinelConfig, timeout: Duration, on_primary: OnPrimary) {
    let mut failed_in_a_row = 0usize;
    for (host, port) in cfg.sentinels.iter().cycle() {
        match listen(&cfg, host, *port, timeout, &on_primary).await {
            Listened::LinkGone => return,
            Listened::Subscribed(e) => {
                failed_in_a_row = 0;
                tracing::debug!(%host, port, error = %e, "sentinel subscription ended; moving on");
            }
            Listened::Failed(e) => {
                failed_in_a_row += 1;
                tracing::debug!(%host, port, error = %e, "cannot subscribe to sentinel");
                if failed_in_a_row.is_multiple_of(cfg.sentinels.len()) {
                    tokio::time::sleep(ROUND_PAUSE).await;
                }
            }
        }
    }
}

enum Listened {
    /// The link is gone: stop.
    LinkGone,
    /// Was subscribed, then the sentinel went away.
    Subscribed(RedisError),
    /// Never got subscribed.
    Failed(RedisError),
}

/// Subscribes to one sentinel and reports switches until it goes away.
async fn listen(
    cfg: &SentinelConfig,
    host: &str,
    port: u16,
    timeout: Duration,
    on_primary: &OnPrimary,
) -> Listened {
    let bounded = |what: &'static str| {
        move |_| {
            RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "sentinel {what} took longer than {} ms",
                    timeout.as_millis()
                ),
            ))
        }
    };
    let subscribed = async {
        let client = Client::open(sentinel_info(cfg, host, port)?)?;
        let pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
            .await
            .map_err(bounded("connect"))??;
        let (mut sink, stream) = pubsub.split();
        tokio::time::timeout(timeout, sink.subscribe(CHANNEL))
            .await
            .map_err(bounded("SUBSCRIBE"))??;
        // Subscribed first, then asked: a switch after the answer arrives on the channel.
        let now = tokio::time::timeout(timeout, ask_sentinel(&client, &cfg.name))
            .await
            .map_err(bounded("SENTINEL get-master-addr-by-name"))??;
        Ok::<_, RedisError>((sink, stream, now))
    };
    let (mut sink, mut stream, now) = match subscribed.await {
        Ok(s) => s,
        Err(e) => return Listened::Failed(e),
    };
    if let Some((h, p)) = now {
        match on_primary(h, p) {
            Some(apply) => apply.await,
            None => return Listened::LinkGone,
        }
    }
    tracing::debug!(%host, port, "subscribed to the sentinel's {CHANNEL}");
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Listened::Subscribed(not_sent("the sentinel closed the connection"));
                };
                let payload: String = match msg.get_payload() {
                    Ok(p) => p,
                    Err(_) => continue,
                };
                let Some((h, p)) = switched_to(&payload, &cfg.name) else { continue };
                tracing::debug!(host = %h, port = p, "the sentinel announced a new primary");
                match on_primary(h, p) {
                    Some(apply) => apply.await,
                    None => return Listened::LinkGone,
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Listened::Subscribed(e),
                    Err(e) => return Listened::Subscribed(bounded("PING")(e)),
                }
            }
        }
    }
}

/// The connection info of one sentinel (with the sentinels' password).
pub fn sentinel_info(
    cfg: &SentinelConfig,
    host: &str,
    port: u16,
) -> Result<redis::ConnectionInfo, RedisError> {
    let info = ConnectionAddr::Tcp(host.to_string(), port).into_connection_info()?;
    Ok(match &cfg.sentinel_password {
        Some(p) => {
            info.set_redis_settings(redis::RedisConnectionInfo::default().set_password(p.clone()))
        }
        None => info,
    })
}

/// The new primary of a `+switch-master` payload, if it is about `name`.
fn switched_to(payload: &str, name: &str) -> Option<(String, u16)> {
    let f: Vec<&str> = payload.split_ascii_whitespace().collect();
    match f.as_slice() {
        [n, _, _, host, port] if *n == name => Some((host.to_string(), port.parse().ok()?)),
        _ => None,
    }
}

/// A client for the primary at `host:port` (with the primary's password).
pub(super) fn primary_client(
    s: &SentinelConfig,
    host: String,
    port: u16,
) -> Result<Client, RedisError> {
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
async fn ask_sentinel(sentinel: &Client, name: &str) -> Result<Option<(String, u16)>, RedisError> {
    let mut c = sentinel.get_multiplexed_async_connection().await?;
    redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(name)
        .query_async(&mut c)
        .await
}

/// Asks the sentinels, in turn, for the address of the primary `s.name`; returns a client for
/// it (with the primary's password).
pub(super) async fn sentinel_primary(
    s: &SentinelConfig,
    timeout: Duration,
) -> Result<Client, RedisError> {
    let mut last: Option<RedisError> = None;
    for (host, port) in &s.sentinels {
        let asked = async {
            let client = Client::open(sentinel_info(s, host, *port)?)?;
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

#[cfg(test)]
mod tests {
    use super::switched_to;

    #[test]
    fn switch_payload() {
        assert_eq!(
            switched_to("hyvve 127.0.0.1 7000 127.0.0.1 7001", "hyvve"),
            Some(("127.0.0.1".to_string(), 7001))
        );
        assert_eq!(
            switched_to("other 127.0.0.1 7000 127.0.0.1 7001", "hyvve"),
            None
        );
        assert_eq!(switched_to("hyvve 127.0.0.1 7000 127.0.0.1", "hyvve"), None);
        assert_eq!(
            switched_to("hyvve 127.0.0.1 7000 127.0.0.1 x", "hyvve"),
            None
        );
    }
}
