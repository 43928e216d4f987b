//! Writes stream entries: one Lua script call appends a whole group of events to the stream
//! atomically, deduplicates caller-supplied event ids, and trims the stream once.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use crate::config::{RedisConfig, Retention};
use crate::errors::PublishError;

/// Appends events, atomically for one call. KEYS[1] = stream, KEYS[2] = the group token's key,
/// then the dedup key of each event that has one (every key the script touches is declared, as
/// Redis asks of scripts, and all share the stream's hash slot). ARGV = trim kind ('MINID' or
/// 'MAXLEN'), trim argument (max age ms or max length), dedup TTL ms, dedup key prefix, group
/// token TTL ms, how far ahead of and behind the Redis clock a proposed ID may be (ms), then one
/// (dedup key index in KEYS or '', proposed entry ID, event JSON, trace context) quadruple per
/// event. The trace context is '' (the entry has the one `event` field pair) or `traceparent`
/// [newline `tracestate`], written as further field pairs after `event` (`traceContext: true`).
/// A dedup key already recorded returns its recorded entry ID instead of appending again; a dedup
/// key index prefixed with '?' (a retry whose row exists) also counts as recorded when the entry
/// at the proposed ID is this event. A group token already recorded (a retry after a lost reply)
/// returns the whole recorded result. Each entry takes its proposed ID when Redis accepts it
/// (greater than the stream's last ID) and its time is within the bounds around the Redis clock,
/// `*` otherwise. Returns the Redis time (Unix µs) and the entry IDs in order.
const APPEND_LUA: &str = r#"
local stream = KEYS[1]
local prefix = ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = t[1] .. string.format('%06d', tonumber(t[2]))
local done = redis.call('GET', KEYS[2])
if done then return {now_us, cjson.decode(done)} end
local latest = now + tonumber(ARGV[6])
local earliest = now - tonumber(ARGV[7])
local out = {}
local n = (#ARGV - 7) / 4
for i = 1, n do
  local dedup = ARGV[4 + 4 * i]
  local proposed = ARGV[5 + 4 * i]
  local json = ARGV[6 + 4 * i]
  local trace = ARGV[7 + 4 * i]
  local extra = {}
  if trace ~= '' then
    local nl = string.find(trace, '\n', 1, true)
    if nl then
      extra = {'traceparent', string.sub(trace, 1, nl - 1), 'tracestate', string.sub(trace, nl + 1)}
    else
      extra = {'traceparent', trace}
    end
  end
  local check = false
  if string.sub(dedup, 1, 1) == '?' then
    dedup = string.sub(dedup, 2)
    check = true
  end
  local key = false
  if dedup ~= '' then key = KEYS[tonumber(dedup)] end
  local id = false
  if key then id = redis.call('GET', key) end
  if not id and check and proposed ~= '' then
    local e = redis.call('XRANGE', stream, proposed, proposed)
    local needle = '{"id":"' .. string.sub(key, #prefix + 1) .. '"'
    if e[1] and e[1][2][1] == 'event' and string.sub(e[1][2][2], 1, #needle) == needle then
      id = proposed
    end
  end
  if not id then
    local ms = tonumber(string.match(proposed, '^(%d+)%-%d+$'))
    if ms and ms <= latest and ms >= earliest then
      local r = redis.pcall('XADD', stream, proposed, 'event', json, unpack(extra))
      if type(r) == 'string' then id = r end
    end
    if not id then id = redis.call('XADD', stream, '*', 'event', json, unpack(extra)) end
    if key then redis.call('SET', key, id, 'PX', ARGV[3]) end
  end
  out[i] = id
end
if ARGV[1] == 'MINID' then
  local min = now - tonumber(ARGV[2])
  if min > 0 then redis.call('XTRIM', stream, 'MINID', '~', string.format('%d', min)) end
else
  redis.call('XTRIM', stream, 'MAXLEN', '~', ARGV[2])
end
redis.call('SET', KEYS[2], cjson.encode(out), 'PX', ARGV[5])
return {now_us, out}
"#;

/// How far from its row's `created_at` an entry ID's time may be: entries appended with `*` are
/// stamped by the Redis clock, rows by the client's, so this allows for clock skew (plus the
/// publish's own time budget where that applies).
pub const SLACK_MS: i64 = 10_000;

/// How far a reserved entry ID's time may be ahead of the Redis clock when it is appended
/// (reservations follow the Redis clock, learned from each reply, so only estimation error and
/// clock steps get here). Outside the bounds Redis assigns the ID, as `XADD *` would: an entry's
/// ID then always tells the Redis time of its append within these bounds.
const MAX_AHEAD_MS: u64 = 20;
/// How far behind the Redis clock a reserved entry ID may be when it is appended (the row's
/// insert happens in between; a group held up longer falls back).
const MAX_BEHIND_MS: u64 = 100;

/// One event to append: its JSON, its proposed entry ID and, for caller-supplied ids, the id to
/// deduplicate on.
pub struct Append<'a> {
    /// Event id to deduplicate on, or `None` (generated ids are unique already).
    pub dedup_id: Option<&'a str>,
    /// A row for this caller-supplied id existed before this call: the entry at `proposed` may
    /// be this event's, appended by an earlier call.
    pub retried: bool,
    /// The entry ID the event's row holds, or "" (then Redis assigns one).
    pub proposed: &'a str,
    /// The envelope JSON.
    pub json: &'a str,
    /// `traceparent` [`\n` `tracestate`], or "" (the entry then has the `event` pair only).
    pub trace_context: &'a str,
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

    /// Appends `events` in one atomic script call; returns the Redis time (Unix µs) and their
    /// entry IDs in order (each the proposed ID unless it was refused). Calling it again with the
    /// same `token` (after a lost reply) returns the first call's IDs and appends nothing.
    pub async fn append(
        &self,
        token: &str,
        events: &[Append<'_>],
    ) -> Result<(u64, Vec<String>), PublishError> {
        let mut inv = self.append.key(&self.stream);
        inv.key(format!("{}g:{token}", self.dedup_prefix))
            .arg(self.trim_kind)
            .arg(&self.trim_arg)
            .arg(&self.dedup_ttl_ms)
            .arg(&self.dedup_prefix)
            .arg(&self.token_ttl_ms)
            .arg(MAX_AHEAD_MS)
            .arg(MAX_BEHIND_MS);
        let mut keys = 2;
        for e in events {
            match e.dedup_id {
                Some(id) => {
                    keys += 1;
                    inv.key(format!("{}{id}", self.dedup_prefix));
                    inv.arg(if e.retried {
                        format!("?{keys}")
                    } else {
                        keys.to_string()
                    });
                }
                None => {
                    inv.arg("");
                }
            }
            inv.arg(e.proposed).arg(e.json).arg(e.trace_context);
        }
        let mut conn = self.conn.clone();
        let (now, ids): (String, Vec<String>) = self
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
        Ok((now.parse().unwrap_or(0), ids))
    }

    /// The Redis clock, Unix µs.
    pub async fn time_us(&self) -> Result<u64, PublishError> {
        let mut conn = self.conn.clone();
        let (s, us): (u64, u64) = self
            .bounded("TIME", redis::cmd("TIME").query_async(&mut conn))
            .await?;
        Ok(s * 1_000_000 + us)
    }

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        matches!(tokio::time::timeout(self.op_timeout, ping).await, Ok(Ok(_)))
    }

    /// Whether the entry at each `(stream id, event id)` is that event's (for reconciliation: a
    /// row's `stream_id` is written before its entry, so it alone does not prove the append).
    pub async fn entries_hold(&self, rows: &[(&str, &str)]) -> Result<Vec<bool>, PublishError> {
        let mut pipe = redis::pipe();
        let mut asked = Vec::with_capacity(rows.len());
        for (stream_id, _) in rows {
            // '0-0' (and anything else that is no entry ID) cannot be an entry.
            let ok = crate::entry_ids::EntryId::parse(stream_id).is_some_and(|id| id.ms > 0);
            if ok {
                pipe.cmd("XRANGE")
                    .arg(&self.stream)
                    .arg(*stream_id)
                    .arg(*stream_id);
            }
            asked.push(ok);
        }
        let mut conn = self.conn.clone();
        let replies: Vec<redis::streams::StreamRangeReply> = if asked.iter().any(|a| *a) {
            self.bounded("XRANGE", pipe.query_async(&mut conn)).await?
        } else {
            Vec::new()
        };
        let mut replies = replies.into_iter();
        Ok(rows
            .iter()
            .zip(asked)
            .map(|((_, event_id), ok)| {
                ok && replies.next().is_some_and(|r| {
                    let needle = format!("{{\"id\":{}", json_string(event_id));
                    r.ids.first().is_some_and(|e| {
                        e.get::<String>("event")
                            .is_some_and(|j| j.starts_with(&needle))
                    })
                })
            })
            .collect())
    }

    /// Up to which time (ms) entries may be missing from the stream because they were trimmed or
    /// deleted: Redis 7's `max-deleted-entry-id`, else (Redis 6.2) the first entry's time. `None`
    /// when there is no stream at all (nothing to compare rows with).
    pub async fn removed_up_to_ms(&self) -> Result<Option<u64>, PublishError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("XINFO");
        cmd.arg("STREAM").arg(&self.stream);
        let info = cmd.query_async::<redis::Value>(&mut conn);
        let info = match tokio::time::timeout(self.op_timeout, info).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) if e.to_string().contains("no such key") => return Ok(None),
            Ok(Err(e)) => return Err(PublishError::redis("XINFO STREAM", &e)),
            Err(_) => {
                return Err(PublishError::timeout(
                    "Redis XINFO STREAM",
                    self.op_timeout.as_millis() as u64,
                ))
            }
        };
        if let Some(id) = info_field(&info, "max-deleted-entry-id") {
            return Ok(Some(
                crate::entry_ids::EntryId::parse(&id).map_or(0, |i| i.ms),
            ));
        }
        Ok(self.first_entry_ms().await?.or(Some(0)))
    }

    /// The millisecond part of the stream's first entry ID, or `None` for an empty stream.
    async fn first_entry_ms(&self) -> Result<Option<u64>, PublishError> {
        let mut conn = self.conn.clone();
        let first: redis::streams::StreamRangeReply = self
            .bounded(
                "XRANGE",
                redis::cmd("XRANGE")
                    .arg(&self.stream)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(first
            .ids
            .first()
            .and_then(|e| crate::entry_ids::EntryId::parse(&e.id))
            .map(|id| id.ms))
    }

    /// Looks for the entries of these events near the time their rows were made (for
    /// reconciliation of rows whose `stream_id` does not hold their entry: entries are found by
    /// the event id in their JSON). `rows` pairs an event id with its row's `created_at` in Unix
    /// ms. Returns event id → entry ID for those found. The rows' windows are merged, so each
    /// part of the stream is read once (in pages, to bound memory) whatever the number of rows.
    pub async fn find_entries(
        &self,
        rows: &[(&str, i64)],
    ) -> Result<HashMap<String, String>, PublishError> {
        let mut wanted: std::collections::HashSet<&str> = rows.iter().map(|(id, _)| *id).collect();
        let after = SLACK_MS + self.op_timeout.as_millis() as i64;
        let mut windows: Vec<(i64, i64)> = rows
            .iter()
            .map(|(_, ms)| ((ms - SLACK_MS).max(0), ms + after))
            .collect();
        windows.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (from, to) in windows {
            match merged.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => merged.push((from, to)),
            }
        }
        let mut found = HashMap::new();
        let mut conn = self.conn.clone();
        for (from_ms, to_ms) in merged {
            let mut from = format!("{from_ms}-0");
            let end = format!("{to_ms}-0");
            while !wanted.is_empty() {
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
                    let Some(id) = json.as_deref().and_then(envelope_event_id) else {
                        continue;
                    };
                    if let Some(id) = wanted.take(id) {
                        found.insert(id.to_string(), entry.id);
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

/// A string field of an `XINFO` reply (RESP2 flat array or RESP3 map).
fn info_field(v: &redis::Value, name: &str) -> Option<String> {
    use redis::Value;
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    match v {
        Value::Array(items) => items
            .chunks(2)
            .find(|kv| kv.len() == 2 && text(&kv[0]).as_deref() == Some(name))
            .and_then(|kv| text(&kv[1])),
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some(name))
            .and_then(|(_, v)| text(v)),
        _ => None,
    }
}

/// The event id at the start of an envelope JSON (`{"id":"…"`; ids need no escapes).
fn envelope_event_id(json: &str) -> Option<&str> {
    let rest = json.strip_prefix("{\"id\":\"")?;
    rest.split_once('"').map(|(id, _)| id)
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
    fn event_id_of_an_envelope() {
        assert_eq!(
            envelope_event_id(r#"{"id":"ev-1","type":"x"}"#),
            Some("ev-1")
        );
        assert_eq!(envelope_event_id(r#"{"type":"x","id":"ev-1"}"#), None);
        assert_eq!(envelope_event_id("not json"), None);
    }

    #[test]
    fn version_check() {
        assert!(check_version("# Server\r\nredis_version:7.0.15\r\n").is_ok());
        assert!(check_version("redis_version:6.2.0\r\n").is_ok());
        let e = check_version("redis_version:6.0.9\r\n").unwrap_err();
        assert!(e.message.contains("6.2"));
        assert!(check_version("").is_err());
    }
}
