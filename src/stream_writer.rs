//! Writes stream entries: one Lua script call appends a whole group of events to the stream
//! atomically, deduplicates caller-supplied event ids, and trims the stream once.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use crate::config::{RedisConfig, Retention};
use crate::errors::PublishError;

/// Appends events, atomically for one call. KEYS[1] = stream. ARGV = trim kind ('MINID' or
/// 'MAXLEN'), trim argument (max age ms or max length), dedup TTL ms, dedup key prefix, group
/// token, group token TTL ms, then one (dedup id or '', event JSON) pair per event.
/// A dedup id already recorded returns its recorded entry ID instead of appending again; a group
/// token already recorded (a retry after a lost reply) returns the whole recorded result.
/// Returns the entry IDs in order.
const APPEND_LUA: &str = r#"
local stream = KEYS[1]
local prefix = ARGV[4]
local token = ARGV[5]
if token ~= '' then
  local done = redis.call('GET', prefix .. 'g:' .. token)
  if done then return cjson.decode(done) end
end
local out = {}
local n = (#ARGV - 6) / 2
for i = 1, n do
  local dedup = ARGV[5 + 2 * i]
  local id = false
  if dedup ~= '' then id = redis.call('GET', prefix .. dedup) end
  if not id then
    id = redis.call('XADD', stream, '*', 'event', ARGV[6 + 2 * i])
    if dedup ~= '' then redis.call('SET', prefix .. dedup, id, 'PX', ARGV[3]) end
  end
  out[i] = id
end
if ARGV[1] == 'MINID' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local min = now - tonumber(ARGV[2])
  if min > 0 then redis.call('XTRIM', stream, 'MINID', '~', string.format('%d', min)) end
else
  redis.call('XTRIM', stream, 'MAXLEN', '~', ARGV[2])
end
if token ~= '' then redis.call('SET', prefix .. 'g:' .. token, cjson.encode(out), 'PX', ARGV[6]) end
return out
"#;

/// One event to append: its JSON and, for caller-supplied ids, the id to deduplicate on.
pub struct Append<'a> {
    /// Event id to deduplicate on, or `None` (generated ids are unique already).
    pub dedup_id: Option<&'a str>,
    /// The envelope JSON.
    pub json: &'a str,
}

/// The Redis side of the publisher.
#[derive(Clone)]
pub struct StreamWriter {
    conn: ConnectionManager,
    stream: String,
    dedup_prefix: String,
    trim_kind: &'static str,
    trim_arg: String,
    dedup_ttl_ms: String,
    token_ttl_ms: String,
    append: Script,
    op_timeout: Duration,
}

impl StreamWriter {
    /// Connects (bounded by `timeout`), checks that the server is Redis 6.2 or newer (needed for
    /// `MINID` trimming), and loads the scripts.
    pub async fn connect(
        cfg: &RedisConfig,
        stream: &str,
        retention: Retention,
        dedup_window_ms: u64,
        timeout: Duration,
    ) -> Result<Self, PublishError> {
        let client = match &cfg.ca_file {
            Some(path) if cfg.tls => {
                let pem = std::fs::read(path).map_err(|e| {
                    PublishError::config(format!("cannot read the Redis CA file {path}: {e}"))
                })?;
                Client::build_with_tls(
                    cfg.url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            _ => Client::open(cfg.url.as_str()),
        }
        .map_err(|e| PublishError::config(format!("redisUrl {} is invalid: {e}", cfg.display)))?;
        let manager_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connecting = ConnectionManager::new_with_config(client, manager_cfg);
        let mut conn = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| {
                PublishError::timeout(
                    &format!("connecting to Redis at {}", cfg.display),
                    timeout.as_millis() as u64,
                )
            })?
            .map_err(|e| PublishError::redis(&format!("connect to {}", cfg.display), &e))?;

        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .map_err(|e| PublishError::redis("INFO server", &e))?;
        check_version(&info)?;

        let (trim_kind, trim_arg) = match retention {
            Retention::MaxAgeMs(ms) => ("MINID", ms.to_string()),
            Retention::MaxLen(n) => ("MAXLEN", n.to_string()),
        };
        let append = Script::new(APPEND_LUA);
        append
            .prepare_invoke()
            .load_async(&mut conn)
            .await
            .map_err(|e| PublishError::redis("SCRIPT LOAD", &e))?;
        Ok(StreamWriter {
            conn,
            // A hash tag keeps dedup keys in the stream's cluster slot.
            dedup_prefix: format!("{{{stream}}}:dedup:"),
            stream: stream.to_string(),
            trim_kind,
            trim_arg,
            dedup_ttl_ms: dedup_window_ms.to_string(),
            // A group token only needs to outlive the retries of its own publish.
            token_ttl_ms: (2 * timeout.as_millis().max(5000)).to_string(),
            append,
            op_timeout: timeout,
        })
    }

    /// Appends `events` in one atomic script call; returns their entry IDs in order. Calling it
    /// again with the same `token` (after a lost reply) returns the first call's IDs and appends
    /// nothing.
    pub async fn append(
        &self,
        token: &str,
        events: &[Append<'_>],
    ) -> Result<Vec<String>, PublishError> {
        let mut inv = self.append.key(&self.stream);
        inv.arg(self.trim_kind)
            .arg(&self.trim_arg)
            .arg(&self.dedup_ttl_ms)
            .arg(&self.dedup_prefix)
            .arg(token)
            .arg(&self.token_ttl_ms);
        for e in events {
            inv.arg(e.dedup_id.unwrap_or("")).arg(e.json);
        }
        let mut conn = self.conn.clone();
        let ids: Vec<String> = self
            .bounded("XADD script", inv.invoke_async(&mut conn))
            .await?;
        if ids.len() != events.len() {
            return Err(PublishError::new(
                crate::errors::Code::Redis,
                format!(
                    "append script returned {} ids for {} events",
                    ids.len(),
                    events.len()
                ),
            ));
        }
        Ok(ids)
    }

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        matches!(tokio::time::timeout(self.op_timeout, ping).await, Ok(Ok(_)))
    }

    /// Looks for the entries of these events near the time their rows were made (for
    /// reconciliation; rows say '0-0', so entries are found by the event id in their JSON).
    /// `rows` pairs an event id with its row's `created_at` in Unix ms. Returns event id →
    /// entry ID for those found.
    pub async fn find_entries(
        &self,
        rows: &[(String, i64)],
    ) -> Result<HashMap<String, String>, PublishError> {
        // Entries are stamped by the Redis clock shortly after the row by the client's: allow
        // for clock skew and the publish's own time budget. Read in pages to bound memory.
        const SLACK_MS: i64 = 10_000;
        let mut found = HashMap::new();
        let mut conn = self.conn.clone();
        for (event_id, created_ms) in rows {
            let mut from = format!("{}-0", (created_ms - SLACK_MS).max(0));
            let end = format!(
                "{}-0",
                created_ms + SLACK_MS + self.op_timeout.as_millis() as i64
            );
            let needle = format!("{{\"id\":{}", json_string(event_id));
            'pages: loop {
                let page: redis::streams::StreamRangeReply = self
                    .bounded(
                        "XRANGE",
                        redis::cmd("XRANGE")
                            .arg(&self.stream)
                            .arg(&from)
                            .arg(&end)
                            .arg("COUNT")
                            .arg(500)
                            .query_async(&mut conn),
                    )
                    .await?;
                let Some(last) = page.ids.last().map(|e| e.id.clone()) else {
                    break;
                };
                for entry in page.ids {
                    let json: Option<String> = entry.get("event");
                    if json.is_some_and(|j| j.starts_with(&needle)) {
                        found.insert(event_id.clone(), entry.id);
                        break 'pages;
                    }
                }
                from = format!("({last}");
            }
        }
        Ok(found)
    }

    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, PublishError> {
        match tokio::time::timeout(self.op_timeout, fut).await {
            Ok(r) => r.map_err(|e| PublishError::redis(what, &e)),
            Err(_) => Err(PublishError::timeout(
                &format!("Redis {what}"),
                self.op_timeout.as_millis() as u64,
            )),
        }
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::new();
    crate::envelope::push_json_string(&mut out, s);
    out
}

/// Refuses servers older than 6.2 (no `XADD … MINID`).
fn check_version(info: &str) -> Result<(), PublishError> {
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(str::trim)
        .unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (6, 2) {
        return Err(PublishError::config(format!(
            "Redis {version} is too old: the publisher needs Redis 6.2 or newer (XADD MINID trimming)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_check() {
        assert!(check_version("# Server\r\nredis_version:7.0.15\r\n").is_ok());
        assert!(check_version("redis_version:6.2.0\r\n").is_ok());
        let e = check_version("redis_version:6.0.9\r\n").unwrap_err();
        assert!(e.message.contains("6.2"));
        assert!(check_version("").is_err());
    }
}
