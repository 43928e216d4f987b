//! Writes stream entries: one Lua script call appends a whole group of events to the stream
//! atomically, deduplicates caller-supplied event ids, and trims the stream once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use crate::redis_connection::RedisLink;

use crate::config::{RedisConfig, Retention};
use crate::errors::PublishError;

/// Appends events, atomically for one call. KEYS[1] = stream, KEYS[2] = the group token's key,
/// then the dedup key of each event that has one (every key the script touches is declared, as
/// Redis asks of scripts, and all share the stream's hash slot). ARGV = trim kind ('MINID' or
/// 'MAXLEN'), trim argument (max age ms or max length), dedup TTL ms, dedup key prefix, group
/// token TTL ms, how far ahead of and behind the Redis clock a proposed ID may be (ms), '1' for a
/// repeated call of the same group (after a lost reply) or '', the earliest and the latest time
/// (ms) of the proposed IDs ('' and '' when none), then one (dedup key index in KEYS or '',
/// proposed entry ID, event JSON, trace context) quadruple per event. The trace context is
/// '' (the entry has the one `event` field pair) or `traceparent` [newline `tracestate`], written
/// as further field pairs after `event` (`traceContext: true`).
///
/// A dedup key already recorded returns its recorded entry ID instead of appending again. On a
/// repeated call, and for a dedup key index prefixed with '?' (a retry whose row exists), an
/// entry at the proposed ID that is this event (its JSON starts with the same `{"id":…`) counts
/// as appended: a proposed ID answers a retry by itself. Only when an entry could not take its
/// proposal (Redis assigned one) is the group's result recorded under its token, which a
/// repeated call returns whole. Each entry takes its proposed ID when Redis accepts it (greater
/// than the stream's last ID) and its time is within the bounds around the Redis clock, `*`
/// otherwise; the last append trims the stream (one XTRIM when it appended nothing). Returns the
/// Redis time (Unix µs) and the entry IDs in order.
const APPEND_LUA: &str = r#"
local stream = KEYS[1]
local again = ARGV[8] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = t[1] .. string.format('%06d', tonumber(t[2]))
if again then
  local done = redis.call('GET', KEYS[2])
  if done then return {now_us, cjson.decode(done)} end
end
local trim = false
if ARGV[1] == 'MINID' then
  local min = now - tonumber(ARGV[2])
  if min > 0 then trim = {'MINID', '~', string.format('%d', min)} end
else
  trim = {'MAXLEN', '~', ARGV[2]}
end
local latest = now + tonumber(ARGV[6])
local earliest = now - tonumber(ARGV[7])
-- The proposals' times lie between ARGV[9] and ARGV[10]: when both are within the bounds, no
-- entry's needs checking.
local lo, hi = tonumber(ARGV[9]), tonumber(ARGV[10])
local all_in = lo ~= nil and lo >= earliest and hi <= latest
local function in_bounds(proposed)
  if all_in then return true end
  local ms = tonumber(string.match(proposed, '^(%d+)%-%d+$'))
  return ms ~= nil and ms <= latest and ms >= earliest
end
local out = {}
local assigned = false
local n = (#ARGV - 10) / 4
for i = 1, n do
  local at = 7 + 4 * i
  local dedup = ARGV[at]
  local proposed = ARGV[at + 1]
  local json = ARGV[at + 2]
  local trace = ARGV[at + 3]
  local check = again
  local key = false
  if dedup ~= '' then
    if string.byte(dedup, 1) == 63 then
      dedup = string.sub(dedup, 2)
      check = true
    end
    key = KEYS[tonumber(dedup)]
  end
  local id = false
  if key then id = redis.call('GET', key) end
  if not id and check and proposed ~= '' then
    local e = redis.call('XRANGE', stream, proposed, proposed)
    local needle = string.match(json, '^{"id":"[^"]*"')
    if needle and e[1] and e[1][2][1] == 'event' and string.sub(e[1][2][2], 1, #needle) == needle then
      id = proposed
    end
  end
  if not id then
    local last = i == n and trim
    if trace == '' and not last then
      -- The usual entry: one field pair, no trim; no argument table to build.
      if proposed ~= '' and in_bounds(proposed) then
        local r = redis.pcall('XADD', stream, proposed, 'event', json)
        if type(r) == 'string' then id = r end
      end
      if not id then
        id = redis.call('XADD', stream, '*', 'event', json)
        assigned = true
      end
    else
      local args = {stream}
      if last then
        args = {stream, trim[1], trim[2], trim[3]}
        trim = false
      end
      local a = #args + 1
      args[a + 1] = 'event'
      args[a + 2] = json
      if trace ~= '' then
        local nl = string.find(trace, '\n', 1, true)
        if nl then
          args[a + 3] = 'traceparent'
          args[a + 4] = string.sub(trace, 1, nl - 1)
          args[a + 5] = 'tracestate'
          args[a + 6] = string.sub(trace, nl + 1)
        else
          args[a + 3] = 'traceparent'
          args[a + 4] = trace
        end
      end
      if proposed ~= '' and in_bounds(proposed) then
        args[a] = proposed
        local r = redis.pcall('XADD', unpack(args))
        if type(r) == 'string' then id = r end
      end
      if not id then
        args[a] = '*'
        id = redis.call('XADD', unpack(args))
        assigned = true
      end
    end
    if key then redis.call('SET', key, id, 'PX', ARGV[3]) end
  end
  out[i] = id
end
if trim then redis.call('XTRIM', stream, trim[1], trim[2], trim[3]) end
if assigned then redis.call('SET', KEYS[2], cjson.encode(out), 'PX', ARGV[5]) end
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

impl Lanes {
    /// A free lane; there is one per group in flight, so this waits only if more groups than
    /// that append at once.
    async fn take(&self) -> LaneGuard<'_> {
        let permit = self
            .available
            .acquire()
            .await
            .expect("the lane semaphore is never closed");
        let link = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        LaneGuard {
            lanes: self,
            link,
            _permit: permit,
        }
    }
}

/// How late Redis may answer a WAIT that timed out: it checks blocked clients' timeouts between
/// event-loop turns, which an idle server takes every 1000/`hz` ms (100 ms at the default `hz`
/// 10; measured here: WAIT answers up to ~100 ms after its timeout with the replica stopped).
const WAIT_LATE_MS: u64 = 100;

/// WAIT's reply after an append, when one was sent: (replicas that acknowledged, its timeout ms).
fn wait_reply(
    replies: &mut impl Iterator<Item = redis::Value>,
    wait_ms: Option<u64>,
) -> Result<Option<(u64, u64)>, PublishError> {
    let Some(ms) = wait_ms else { return Ok(None) };
    let bad = |what: String| PublishError::new(crate::errors::Code::Redis, what);
    let acked: u64 = replies
        .next()
        .ok_or_else(|| bad("no reply to WAIT".into()))
        .and_then(|v| {
            redis::FromRedisValue::from_redis_value(v).map_err(|e| bad(format!("WAIT reply: {e}")))
        })?;
    Ok(Some((acked, ms)))
}

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

/// What one append call did.
pub struct Appended {
    /// The Redis time of the append, Unix µs.
    pub redis_us: u64,
    /// The events' entry IDs, in order.
    pub ids: Vec<String>,
    /// With `replicaAcks`: how many replicas acknowledged, and how long WAIT could take (ms).
    pub replicas: Option<(u64, u64)>,
}

/// The Redis side of the publisher.
#[derive(Clone)]
pub struct StreamWriter {
    conn: RedisLink,
    stream: String,
    dedup_prefix: String,
    trim_kind: &'static str,
    trim_arg: String,
    dedup_ttl_ms: String,
    token_ttl_ms: String,
    append_sha: String,
    op_timeout: Duration,
    replica_acks: u32,
    /// With `replicaAcks`: connections of their own for the appends (each followed by a WAIT),
    /// one per group in flight, so one group's WAIT never holds up another's append.
    wait_lanes: Option<Arc<Lanes>>,
}

/// Connections handed out one per append.
struct Lanes {
    free: std::sync::Mutex<Vec<RedisLink>>,
    available: tokio::sync::Semaphore,
}

/// A lane taken for one append; back in the pool when dropped.
struct LaneGuard<'a> {
    lanes: &'a Lanes,
    link: Option<RedisLink>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Drop for LaneGuard<'_> {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            self.lanes
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(link);
        }
    }
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
        let slot = crate::redis_keys::slot(stream);
        let (mut conn, kind) =
            tokio::time::timeout(timeout, RedisLink::connect(cfg, slot, timeout))
                .await
                .map_err(|_| {
                    PublishError::timeout(
                        &format!("connecting to Redis at {}", cfg.display),
                        timeout.as_millis() as u64,
                    )
                })??;
        tracing::debug!(topology = ?kind, "connected to Redis");

        let info: String = conn
            .query_at_stream(redis::cmd("INFO").arg("server"))
            .await
            .map_err(|e| PublishError::redis("INFO server", &e))?;
        check_version(&info)?;

        let (trim_kind, trim_arg) = match retention {
            Retention::MaxAgeMs(ms) => ("MINID", ms.to_string()),
            Retention::MaxLen(n) => ("MAXLEN", n.to_string()),
        };
        let append = Script::new(APPEND_LUA);
        // Loaded where the stream is; another node (after a failover) gets it by EVAL.
        conn.query_at_stream::<String>(redis::cmd("SCRIPT").arg("LOAD").arg(APPEND_LUA))
            .await
            .map_err(|e| PublishError::redis("SCRIPT LOAD", &e))?;
        let wait_lanes = if cfg.replica_acks > 0 {
            let n = crate::group_commit::MAX_GROUPS_IN_FLIGHT as usize;
            let links = conn.lanes(cfg, slot, timeout, n).await?;
            Some(Arc::new(Lanes {
                available: tokio::sync::Semaphore::new(links.len()),
                free: std::sync::Mutex::new(links),
            }))
        } else {
            None
        };
        Ok(StreamWriter {
            conn,
            // Every key the script touches hashes to the stream's cluster slot.
            dedup_prefix: crate::redis_keys::key_prefix(stream),
            stream: stream.to_string(),
            trim_kind,
            trim_arg,
            dedup_ttl_ms: dedup_window_ms.to_string(),
            // A group token only needs to outlive the retries of its own publish.
            token_ttl_ms: (2 * timeout.as_millis().max(5000)).to_string(),
            append_sha: append.get_hash().to_string(),
            op_timeout: timeout,
            replica_acks: cfg.replica_acks,
            wait_lanes,
        })
    }

    /// Appends `events` in one atomic script call; returns the Redis time (Unix µs) and their
    /// entry IDs in order (each the proposed ID unless it was refused). Calling it again with the
    /// same `token` (after a lost reply, `again`) returns the first call's IDs and appends
    /// nothing; the token is made on the first script call (a plain XADD needs none).
    pub async fn append(
        &self,
        token: &std::sync::OnceLock<String>,
        events: &[Append<'_>],
        wait_until: std::time::Instant,
        again: bool,
        redis_now_ms: Option<u64>,
    ) -> Result<Appended, PublishError> {
        if let Some(plain) = self.plain_append(events, again, redis_now_ms) {
            // None: the proposal was refused, the script assigns an ID.
            if let Some(appended) = self
                .append_plain(plain, events[0].proposed, wait_until)
                .await?
            {
                return Ok(appended);
            }
        }
        // EVALSHA, and on NOSCRIPT (a node that never saw the script: a restarted or promoted
        // one) EVAL with the whole script on that same node, routed by the same keys: never a
        // SCRIPT LOAD on every master, where one unreachable master would block a healthy shard.
        // With replicaAcks, WAIT goes in the same request: it counts the replicas holding this
        // connection's writes, so it must run on the connection (and node) of the append; sent
        // alone it could go out on a new connection after a reconnect and count nothing.
        let token = token.get_or_init(crate::ids::new_id).as_str();
        // The group-token key is this group's alone: what a Cluster's retries are watched by.
        let token_key = format!("{}g:{token}", self.dedup_prefix);
        let lane = self.lane().await;
        let mut conn = self.lane_conn(&lane);
        let wait_ms = self.wait_ms(wait_until);
        let request = |verb: &str, body: &str| {
            let mut pipe = redis::pipe();
            pipe.add_command(self.script_call(verb, body, &token_key, events, again));
            if let Some(ms) = wait_ms {
                pipe.cmd("WAIT").arg(self.replica_acks).arg(ms);
            }
            pipe
        };
        let evalsha = request("EVALSHA", &self.append_sha);
        let first = self
            .bounded_raw("XADD script", conn.query_watched(&evalsha, &token_key))
            .await?;
        let replies: Vec<redis::Value> = match first {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                let eval = request("EVAL", APPEND_LUA);
                self.bounded("XADD script", conn.query_watched(&eval, &token_key))
                    .await?
            }
            other => other.map_err(|e| PublishError::redis("XADD script", &e))?,
        };
        let mut replies = replies.into_iter();
        let bad = |what: String| PublishError::new(crate::errors::Code::Redis, what);
        let (now, ids): (String, Vec<String>) = replies
            .next()
            .ok_or_else(|| bad("no reply to the append script".into()))
            .and_then(|v| {
                redis::FromRedisValue::from_redis_value(v)
                    .map_err(|e| bad(format!("append script reply: {e}")))
            })?;
        if ids.len() != events.len() {
            return Err(bad(format!(
                "append script returned {} ids for {} events",
                ids.len(),
                events.len()
            )));
        }
        let replicas = wait_reply(&mut replies, wait_ms)?;
        Ok(Appended {
            redis_us: now.parse().unwrap_or(0),
            ids,
            replicas,
        })
    }

    /// The one plain `XADD` that can stand in for the script: a single event with a generated id
    /// (nothing to deduplicate) on its first call, its proposed ID within the bounds around the
    /// Redis clock as a fresh sync estimates it (the script's own check, made here). Returns the
    /// command, trimming as the script does. A script call costs Redis about four times the
    /// `XADD` it contains (commandstats: EVALSHA 65 µs per call against XADD 13 µs inside it).
    fn plain_append(
        &self,
        events: &[Append<'_>],
        again: bool,
        redis_now_ms: Option<u64>,
    ) -> Option<redis::Cmd> {
        let [e] = events else { return None };
        let now = redis_now_ms?;
        if again || e.dedup_id.is_some() || e.retried {
            return None;
        }
        let ms = crate::entry_ids::EntryId::parse(e.proposed)?.ms;
        if ms > now + MAX_AHEAD_MS || ms + MAX_BEHIND_MS < now {
            return None;
        }
        let mut c = redis::cmd("XADD");
        c.arg(&self.stream);
        if self.trim_kind == "MINID" {
            let max_age: u64 = self.trim_arg.parse().ok()?;
            if now > max_age {
                c.arg("MINID").arg("~").arg(now - max_age);
            }
        } else {
            c.arg("MAXLEN").arg("~").arg(&self.trim_arg);
        }
        c.arg(e.proposed).arg("event").arg(e.json);
        if !e.trace_context.is_empty() {
            match e.trace_context.split_once('\n') {
                Some((parent, state)) => c
                    .arg("traceparent")
                    .arg(parent)
                    .arg("tracestate")
                    .arg(state),
                None => c.arg("traceparent").arg(e.trace_context),
            };
        }
        Some(c)
    }

    /// Sends a [`Self::plain_append`] command (with WAIT after it, as the script call), whose
    /// proposed entry ID is `proposed`. `None` when Redis refused the proposed ID (the stream's
    /// last ID is not below it): nothing was appended, and the script then appends with an
    /// assigned ID.
    async fn append_plain(
        &self,
        xadd: redis::Cmd,
        proposed: &str,
        wait_until: std::time::Instant,
    ) -> Result<Option<Appended>, PublishError> {
        let lane = self.lane().await;
        let mut conn = self.lane_conn(&lane);
        let wait_ms = self.wait_ms(wait_until);
        let mut pipe = redis::pipe();
        pipe.add_command(xadd);
        if let Some(ms) = wait_ms {
            pipe.cmd("WAIT").arg(self.replica_acks).arg(ms);
        }
        let replies = match self
            .bounded_raw(
                "XADD",
                conn.query_watched::<Vec<redis::Value>>(&pipe, proposed),
            )
            .await?
        {
            Ok(r) => r,
            Err(e) if e.to_string().contains("equal or smaller") => return Ok(None),
            Err(e) => return Err(PublishError::redis("XADD", &e)),
        };
        let bad = |what: String| PublishError::new(crate::errors::Code::Redis, what);
        let mut replies = replies.into_iter();
        let id: String = replies
            .next()
            .ok_or_else(|| bad("no reply to XADD".into()))
            .and_then(|v| {
                redis::FromRedisValue::from_redis_value(v)
                    .map_err(|e| bad(format!("XADD reply: {e}")))
            })?;
        let replicas = wait_reply(&mut replies, wait_ms)?;
        Ok(Some(Appended {
            // No clock reading: the script calls (at least one a second) keep the estimate fresh.
            redis_us: 0,
            ids: vec![id],
            replicas,
        }))
    }

    /// With `replicaAcks`, a lane of its own for this append.
    async fn lane(&self) -> Option<LaneGuard<'_>> {
        match &self.wait_lanes {
            Some(lanes) => Some(lanes.take().await),
            None => None,
        }
    }

    /// The connection of a lane (or the shared one).
    fn lane_conn(&self, lane: &Option<LaneGuard<'_>>) -> RedisLink {
        lane.as_ref()
            .and_then(|l| l.link.clone())
            .unwrap_or_else(|| self.conn.clone())
    }

    /// The append script's call (`EVALSHA <sha>` or `EVAL <script>`) for one group: KEYS and ARGV
    /// as documented on [`APPEND_LUA`].
    fn script_call(
        &self,
        verb: &str,
        body: &str,
        token_key: &str,
        events: &[Append<'_>],
        again: bool,
    ) -> redis::Cmd {
        let dedup_keys = events.iter().filter(|e| e.dedup_id.is_some()).count();
        let mut c = redis::cmd(verb);
        c.arg(body)
            .arg(2 + dedup_keys)
            .arg(&self.stream)
            .arg(token_key);
        for id in events.iter().filter_map(|e| e.dedup_id) {
            c.arg(format!("{}{id}", self.dedup_prefix));
        }
        c.arg(self.trim_kind)
            .arg(&self.trim_arg)
            .arg(&self.dedup_ttl_ms)
            .arg(&self.dedup_prefix)
            .arg(&self.token_ttl_ms)
            .arg(MAX_AHEAD_MS)
            .arg(MAX_BEHIND_MS)
            .arg(if again { "1" } else { "" });
        // The range of the proposals' times, so the script checks the bounds once per group.
        let times = events
            .iter()
            .filter_map(|e| crate::entry_ids::EntryId::parse(e.proposed).map(|id| id.ms));
        match times.clone().min().zip(times.max()) {
            Some((lo, hi)) => c.arg(lo).arg(hi),
            None => c.arg("").arg(""),
        };
        let mut key = 2;
        for e in events {
            match e.dedup_id {
                Some(_) => {
                    key += 1;
                    c.arg(if e.retried {
                        format!("?{key}")
                    } else {
                        key.to_string()
                    });
                }
                None => {
                    c.arg("");
                }
            }
            c.arg(e.proposed).arg(e.json).arg(e.trace_context);
        }
        c
    }

    /// How long the WAIT after an append may take, `None` without `replicaAcks`. The callers'
    /// own timeoutMs started before this group did: the WAIT ends a little before `until`, so
    /// they get its answer rather than ERR_TIMEOUT, allowing for Redis answering it late
    /// ([`WAIT_LATE_MS`]), and never 0, which would block for ever.
    fn wait_ms(&self, until: std::time::Instant) -> Option<u64> {
        if self.replica_acks == 0 {
            return None;
        }
        let left = until
            .saturating_duration_since(std::time::Instant::now())
            .as_millis() as u64;
        Some(
            left.saturating_sub((left / 5).max(20) + WAIT_LATE_MS)
                .max(1),
        )
    }

    /// `ERR_NOT_REPLICATED` (outcome unknown: the entries are on the primary) when fewer than
    /// `replicaAcks` replicas acknowledged an append.
    pub fn check_replicas(&self, appended: &Appended) -> Result<(), PublishError> {
        let Some((acked, ms)) = appended.replicas else {
            return Ok(());
        };
        if acked >= u64::from(self.replica_acks) {
            return Ok(());
        }
        let mut e = PublishError::new(
            crate::errors::Code::NotReplicated,
            format!(
                "the entries are on the primary, but {acked} of the {} replicas asked for (replicaAcks) acknowledged them within {ms} ms; retry with the same eventId",
                self.replica_acks
            ),
        );
        e.outcome_unknown = true;
        Err(e)
    }

    /// Stops the connections' background work (the Sentinel watcher) and drops them.
    pub fn close(&self) {
        self.conn.close();
        if let Some(lanes) = &self.wait_lanes {
            for l in lanes.free.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                l.close();
            }
        }
    }

    /// The Redis clock, Unix µs.
    pub async fn time_us(&self) -> Result<u64, PublishError> {
        let mut conn = self.conn.clone();
        let time = redis::cmd("TIME");
        let (s, us): (u64, u64) = self.bounded("TIME", conn.query_at_stream(&time)).await?;
        Ok(s * 1_000_000 + us)
    }

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = conn.query_at_stream::<String>(&cmd);
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

    /// Like `bounded`, keeping the driver's error for the caller to look at.
    async fn bounded_raw<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<redis::RedisResult<T>, PublishError> {
        tokio::time::timeout(self.op_timeout, fut)
            .await
            .map_err(|_| {
                PublishError::timeout(&format!("Redis {what}"), self.op_timeout.as_millis() as u64)
            })
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
