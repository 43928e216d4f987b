//! Writes stream entries: one Lua script call appends a whole group of events to the stream
//! atomically, deduplicates caller-supplied event ids, and trims the stream once.

use std::collections::HashMap;
use std::time::Duration;

use redis::Script;

use crate::stream::link::{next_reply, RedisLink};

use crate::config::{RedisConfig, Retention};
use crate::errors::{Code, PublishError};
use crate::stream::replica_wait::ReplicaWait;

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
const APPEND_LUA: &str = include_str!("append_script.lua");

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
    /// `replicaAcks`: the WAIT after each append, and the connections it runs on.
    replicas: ReplicaWait,
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
        let slot = crate::stream::keys::slot(stream);
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
        let replicas = ReplicaWait::connect(&conn, cfg, slot, timeout).await?;
        Ok(StreamWriter {
            conn,
            // Every key the script touches hashes to the stream's cluster slot.
            dedup_prefix: crate::stream::keys::key_prefix(stream),
            stream: stream.to_string(),
            trim_kind,
            trim_arg,
            dedup_ttl_ms: dedup_window_ms.to_string(),
            // A group token only needs to outlive the retries of its own publish.
            token_ttl_ms: (2 * timeout.as_millis().max(5000)).to_string(),
            append_sha: append.get_hash().to_string(),
            op_timeout: timeout,
            replicas,
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
        let token = token.get_or_init(crate::event::new_id).as_str();
        // The group-token key is this group's alone: what a Cluster's retries are watched by.
        let token_key = format!("{}g:{token}", self.dedup_prefix);
        let lane = self.replicas.conn(&self.conn).await;
        let mut conn = lane.link.clone();
        let request = |verb: &str, body: &str| {
            let mut pipe = redis::pipe();
            pipe.add_command(self.script_call(verb, body, &token_key, events, again));
            let wait_ms = self.replicas.add_wait(&mut pipe, wait_until);
            (pipe, wait_ms)
        };
        let (evalsha, mut wait_ms) = request("EVALSHA", &self.append_sha);
        let first = self
            .bounded_raw("XADD script", conn.query_watched(&evalsha, &token_key))
            .await?;
        let replies: Vec<redis::Value> = match first {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                let (eval, eval_wait_ms) = request("EVAL", APPEND_LUA);
                wait_ms = eval_wait_ms;
                self.bounded("XADD script", conn.query_watched(&eval, &token_key))
                    .await?
            }
            other => other.map_err(|e| PublishError::redis("XADD script", &e))?,
        };
        let mut replies = replies.into_iter();
        let (now, ids): (String, Vec<String>) = next_reply(&mut replies, "the append script")?;
        if ids.len() != events.len() {
            return Err(PublishError::new(
                Code::Redis,
                format!(
                    "append script returned {} ids for {} events",
                    ids.len(),
                    events.len()
                ),
            ));
        }
        let replicas = ReplicaWait::reply(&mut replies, wait_ms)?;
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
        let ms = crate::stream::entry_ids::EntryId::parse(e.proposed)?.ms;
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
        let lane = self.replicas.conn(&self.conn).await;
        let mut conn = lane.link.clone();
        let mut pipe = redis::pipe();
        pipe.add_command(xadd);
        let wait_ms = self.replicas.add_wait(&mut pipe, wait_until);
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
        let mut replies = replies.into_iter();
        let id: String = next_reply(&mut replies, "XADD")?;
        let replicas = ReplicaWait::reply(&mut replies, wait_ms)?;
        Ok(Some(Appended {
            // No clock reading: the script calls (at least one a second) keep the estimate fresh.
            redis_us: 0,
            ids: vec![id],
            replicas,
        }))
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
            .filter_map(|e| crate::stream::entry_ids::EntryId::parse(e.proposed).map(|id| id.ms));
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

    /// `ERR_NOT_REPLICATED` (outcome unknown: the entries are on the primary) when fewer than
    /// `replicaAcks` replicas acknowledged an append.
    pub fn check_replicas(&self, appended: &Appended) -> Result<(), PublishError> {
        self.replicas.check(appended.replicas)
    }

    /// Stops the connections' background work (the Sentinel watcher) and drops them.
    pub fn close(&self) {
        self.conn.close();
        self.replicas.close();
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
            let ok =
                crate::stream::entry_ids::EntryId::parse(stream_id).is_some_and(|id| id.ms > 0);
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
                crate::stream::entry_ids::EntryId::parse(&id).map_or(0, |i| i.ms),
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
            .and_then(|e| crate::stream::entry_ids::EntryId::parse(&e.id))
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
    crate::event::push_json_string(&mut out, s);
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
