//! The options as JavaScript names them: the one shape the binding deserializes a JS object into.
//! Parsing and checking them is the job of the other files of `config/`.

/// What the caller may set; every field is optional and falls back to the environment or a
/// default. Mirrors `PublisherOptions` in `index.d.ts` (flattened: `retention.maxAgeMs` is
/// `retentionMaxAgeMs`); the binding deserializes the JS object into it by these names, in
/// camelCase. Unknown names are refused there (index.js names the option first).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Options {
    /// `redis://` or `rediss://` URL.
    pub redis_url: Option<String>,
    /// Postgres URL, Prisma parameters allowed.
    pub database_url: Option<String>,
    /// Postgres URL for sessions (migrate, reconcile), Prisma's `directUrl`; default `DIRECT_URL`.
    pub direct_url: Option<String>,
    /// Stream key.
    pub stream: Option<String>,
    /// Retention by age (ms) ...
    pub retention_max_age_ms: Option<f64>,
    /// ... or by length.
    pub retention_max_len: Option<f64>,
    /// Default `source`.
    pub source: Option<String>,
    /// Metadata table, optionally `schema.table`.
    pub metadata_table: Option<String>,
    /// Largest accepted serialized `data`.
    pub max_payload_bytes: Option<f64>,
    /// Every publish settles within this.
    pub timeout_ms: Option<f64>,
    /// A level (`off`, `error`, `warn`, `info`, `debug`, `trace`) or directives like
    /// `info,sqlx=debug` (see [`crate::logging::parse_filter`]).
    pub log_level: Option<String>,
    /// How long a caller-supplied `eventId` is remembered in Redis for deduplication.
    pub dedup_window_ms: Option<f64>,
    /// Most events waiting to be written before publishes are refused.
    pub max_in_flight: Option<f64>,
    /// Most bytes held for admitted, unsettled events (their envelopes and the copies counted
    /// with them) before publishes are refused.
    pub max_in_flight_bytes: Option<f64>,
    /// Consecutive infrastructure failures that open the circuit breaker (0 disables it).
    pub circuit_threshold: Option<f64>,
    /// How long an open circuit rejects before a trial publish.
    pub circuit_cooldown_ms: Option<f64>,
    /// PEM file of a CA to trust for `rediss://` (self-signed servers).
    pub redis_ca_file: Option<String>,
    /// `reserved` (default) or `server`: how entry IDs are chosen (see [`EntryIds`]).
    pub entry_ids: Option<String>,
    /// Seed nodes of a Redis Cluster (URLs or `host:port`).
    pub redis_cluster_nodes: Option<Vec<String>>,
    /// The Sentinel-managed primary to follow.
    pub redis_sentinel: Option<super::redis::SentinelOptions>,
    /// Replicas that must hold each append before a publish resolves (`WAIT`).
    pub replica_acks: Option<f64>,
    /// Whether this publisher runs the outbox relay (default true).
    pub relay: Option<bool>,
    /// Time between the relay's passes, ms (default 500).
    pub relay_interval_ms: Option<f64>,
    /// Age (since staging) before the relay takes an undelivered row, ms (default 1000).
    pub relay_grace_ms: Option<f64>,
    /// The environment to read defaults from; `None` reads the process environment. (Node
    /// passes `process.env`'s values, which a test runner may have changed without `setenv`.)
    pub env: Option<std::collections::HashMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_deserialize_from_the_js_names_and_refuse_unknown_ones() {
        let o: Options = serde_json::from_value(serde_json::json!({
            "redisUrl": "redis://h:1",
            "retentionMaxLen": 100,
            "logLevel": "info,sqlx=debug",
            "env": { "DATABASE_URL": "postgres://u@db/app" }
        }))
        .unwrap();
        assert_eq!(o.redis_url.as_deref(), Some("redis://h:1"));
        assert_eq!(o.retention_max_len, Some(100.0));
        assert_eq!(o.log_level.as_deref(), Some("info,sqlx=debug"));
        assert!(serde_json::from_value::<Options>(serde_json::json!({ "redisURL": "x" })).is_err());
    }
}
