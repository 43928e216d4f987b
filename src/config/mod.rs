//! Options and environment, resolved once at `connect()` into a validated [`Config`]:
//! `options.rs` is the JS shape, `redis.rs` every Redis input (URL, `REDIS_*`, Cluster, Sentinel,
//! TLS CA, `replicaAcks`), `database.rs` every Postgres input (Prisma's URL parameters, TLS,
//! PKCS#12 identity via `pkcs12.rs`, the table name); [`Config::resolve`] composes them. Only
//! this folder reads the environment; the stores receive resolved values.

mod database;
mod options;
mod pkcs12;
mod redis;

pub(crate) use redis::{SentinelConfig, Topology};

use std::time::Duration;

#[cfg(test)]
use sqlx::postgres::PgSslMode;

use crate::errors::PublishError;
pub(crate) use database::DatabaseConfig;
use database::{database_config, table_sql};
pub(crate) use options::Options;
pub(crate) use redis::RedisConfig;
use redis::{redis_config, replica_acks};

/// The default stream key (the platform's main stream).
pub const DEFAULT_STREAM: &str = "hyvve:events:main";
/// The default metadata table (created by Prisma).
pub const DEFAULT_TABLE: &str = "event_metadata";
/// 30 days, the platform's retention.
pub const DEFAULT_MAX_AGE_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// Most groups being written at once (bounded by the pool size). Measured here with 64 publishes
/// in flight: 1 group ≈ 6 k events/s, 4 ≈ 11–12 k, 8 ≈ 9 k (smaller groups, more commits).
pub(crate) const MAX_GROUPS_IN_FLIGHT: u32 = 4;

/// How the stream is trimmed on every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// `MINID ~ <now - ms>`: true time-based retention.
    MaxAgeMs(u64),
    /// `MAXLEN ~ n`: the original publisher's behaviour with n = 2,592,000.
    MaxLen(u64),
}

/// How entry IDs are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryIds {
    /// Reserved from the Redis clock before the row is written, so the row is inserted once
    /// with its final `stream_id`; an ID Redis no longer accepts falls back to `Server`.
    Reserved,
    /// `XADD *` after the row is written with '0-0', then a second statement sets `stream_id`
    /// (the platform's own two-step; one more commit per group).
    Server,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Redis target.
    pub redis: RedisConfig,
    /// Postgres target.
    pub database: DatabaseConfig,
    /// Stream key.
    pub stream: String,
    /// Trimming.
    pub retention: Retention,
    /// Default source.
    pub source: String,
    /// The table as a quoted SQL identifier, e.g. `"public"."event_metadata"`.
    pub table_sql: String,
    /// Payload limit in bytes.
    pub max_payload_bytes: usize,
    /// Time budget for one publish.
    pub timeout: Duration,
    /// Log filter (per target).
    pub log_filter: tracing_subscriber::filter::Targets,
    /// Deduplication window for caller-supplied ids.
    pub dedup_window_ms: u64,
    /// Queue bound.
    pub max_in_flight: usize,
    /// Byte budget for admitted, unsettled events (counted by `pipeline::admission`).
    pub max_in_flight_bytes: usize,
    /// Circuit breaker threshold (0 = off).
    pub circuit_threshold: u32,
    /// Circuit breaker cooldown.
    pub circuit_cooldown: Duration,
    /// How entry IDs are chosen.
    pub entry_ids: EntryIds,
    /// The outbox table (`event_outbox` in the metadata table's schema), quoted.
    pub outbox_table_sql: String,
    /// The outbox relay.
    pub relay: RelayConfig,
}

/// How the outbox relay runs (options `relay`, `relayIntervalMs`, `relayGraceMs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// Whether this publisher runs a relay at all (`relay: false` opts out).
    pub enabled: bool,
    /// Time between passes when there was nothing (more) to deliver.
    pub interval: Duration,
    /// Rows younger than this (by `created_at`, their stage time) are left to their writer's own
    /// dispatch: the relay is the fallback, not a second fast path.
    pub grace: Duration,
}

/// Reads an environment variable (from the given map, else the process), empty meaning unset.
fn env_in(map: Option<&std::collections::HashMap<String, String>>, name: &str) -> Option<String> {
    match map {
        Some(m) => m.get(name).cloned(),
        None => std::env::var(name).ok(),
    }
    .filter(|v| !v.is_empty())
}

/// 128 MiB: what a 512 MB container can give the publisher beside the API process it lives in
/// (Node and the application typically take 150–250 MB): at most this plus a constant of ~50 MB
/// (the copies of the groups being written, V8's garbage; docs/overload.md) whatever a store
/// does. With 512 KiB payloads ~250 events are held; a publishBatch counts ~1.7 KiB per
/// platform-size event at admission (its data and fields twice until prepared), so the largest
/// such batch admitted is ~75,000 events (a larger one is refused `ERR_PAYLOAD_TOO_LARGE`).
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: u64 = 128 << 20;

fn positive_int(name: &str, v: Option<f64>, default: u64) -> Result<u64, PublishError> {
    match v {
        None => Ok(default),
        Some(x) if x.is_finite() && x >= 1.0 && x.fract() == 0.0 && x <= 9.0e15 => Ok(x as u64),
        Some(x) => Err(PublishError::config(format!(
            "{name} must be a positive integer, got {x}"
        ))),
    }
}

fn non_negative_int(name: &str, v: Option<f64>, default: u64) -> Result<u64, PublishError> {
    match v {
        Some(0.0) => Ok(0),
        other => positive_int(name, other, default),
    }
}

impl Config {
    /// Resolves options against the environment and validates everything.
    pub fn resolve(o: Options) -> Result<Config, PublishError> {
        let env_map = o.env;
        let env = |name: &str| env_in(env_map.as_ref(), name);
        let mut redis = redis_config(o.redis_url, o.redis_ca_file, &env)?;
        let cluster_nodes = o.redis_cluster_nodes.or_else(|| {
            env("REDIS_CLUSTER_NODES").map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
        });
        redis.topology = redis::resolve(
            redis.given.then_some(redis.url.as_str()),
            cluster_nodes,
            o.redis_sentinel,
        )?;
        redis.replica_acks = replica_acks(o.replica_acks, env("EVENT_PUBLISHER_REPLICA_ACKS"))?;
        let database_url = o
            .database_url
            .or_else(|| env("DATABASE_URL"))
            .ok_or_else(|| {
                PublishError::config("no database URL: pass databaseUrl or set DATABASE_URL")
            })?;
        let (mut database, schema) = database_config(&database_url, "databaseUrl")?;
        if let Some(direct) = o.direct_url.or_else(|| env("DIRECT_URL")) {
            // The table (and its schema) come from databaseUrl; directUrl says only where.
            let (direct, _) = database_config(&direct, "directUrl")?;
            database.direct = Some(Box::new(direct));
        }
        let stream = o.stream.unwrap_or_else(|| DEFAULT_STREAM.to_string());
        validate_stream(&stream)?;
        let retention = match (o.retention_max_age_ms, o.retention_max_len) {
            (Some(_), Some(_)) => {
                return Err(PublishError::config(
                    "retention takes maxAgeMs or maxLen, not both",
                ))
            }
            (None, Some(n)) => Retention::MaxLen(positive_int("retention.maxLen", Some(n), 0)?),
            (age, None) => {
                Retention::MaxAgeMs(positive_int("retention.maxAgeMs", age, DEFAULT_MAX_AGE_MS)?)
            }
        };
        let source = o.source.unwrap_or_else(|| "platform".to_string());
        if source.is_empty() || source.len() > crate::event::MAX_ID_LEN {
            return Err(PublishError::config("source must be 1 to 256 characters"));
        }
        let table_sql = table_sql(
            o.metadata_table.as_deref().unwrap_or(DEFAULT_TABLE),
            schema.as_deref(),
        )?;
        // Beside the metadata table: the same schema.
        let outbox_table_sql = match table_sql.rsplit_once('.') {
            Some((schema, _)) => format!("{schema}.\"event_outbox\""),
            None => "\"event_outbox\"".to_string(),
        };
        let relay = RelayConfig {
            enabled: o.relay.unwrap_or(true),
            interval: Duration::from_millis(positive_int(
                "relayIntervalMs",
                o.relay_interval_ms,
                500,
            )?),
            grace: Duration::from_millis(non_negative_int("relayGraceMs", o.relay_grace_ms, 1000)?),
        };
        let log_filter = crate::logging::parse_filter(
            &o.log_level
                .or_else(|| env("EVENT_PUBLISHER_LOG"))
                .unwrap_or_else(|| "info".to_string()),
        )
        .map_err(PublishError::config)?;
        Ok(Config {
            redis,
            database,
            stream,
            retention,
            source,
            table_sql,
            max_payload_bytes: positive_int("maxPayloadBytes", o.max_payload_bytes, 1 << 20)?
                as usize,
            timeout: Duration::from_millis(positive_int("timeoutMs", o.timeout_ms, 5000)?),
            log_filter,
            dedup_window_ms: positive_int("dedupWindowMs", o.dedup_window_ms, 600_000)?,
            max_in_flight: positive_int("maxInFlight", o.max_in_flight, 10_000)? as usize,
            max_in_flight_bytes: positive_int(
                "maxInFlightBytes",
                o.max_in_flight_bytes,
                DEFAULT_MAX_IN_FLIGHT_BYTES,
            )? as usize,
            circuit_threshold: non_negative_int("circuitThreshold", o.circuit_threshold, 5)? as u32,
            circuit_cooldown: Duration::from_millis(positive_int(
                "circuitCooldownMs",
                o.circuit_cooldown_ms,
                1000,
            )?),
            entry_ids: match o.entry_ids.as_deref() {
                None | Some("reserved") => EntryIds::Reserved,
                Some("server") => EntryIds::Server,
                Some(other) => {
                    return Err(PublishError::config(format!(
                        "entryIds must be 'reserved' or 'server', got '{other}'"
                    )))
                }
            },
            outbox_table_sql,
            relay,
        })
    }
}

fn validate_stream(stream: &str) -> Result<(), PublishError> {
    if stream.is_empty()
        || stream.len() > 256
        || stream.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(PublishError::config(
            "stream must be 1 to 256 characters without spaces or control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Code;

    fn opts(db: &str) -> Options {
        Options {
            redis_url: Some("redis://127.0.0.1:6379".into()),
            database_url: Some(db.into()),
            ..Default::default()
        }
    }

    #[test]
    fn prisma_parameters_are_understood() {
        let c = Config::resolve(opts(
            "postgresql://app:pw@db.internal:6432/hyvve?pgbouncer=true&schema=tenant_a&connection_limit=3&sslmode=require",
        ))
        .unwrap();
        assert!(c.database.pgbouncer);
        assert_eq!(c.database.pool_size, 3);
        assert_eq!(c.table_sql, "\"tenant_a\".\"event_metadata\"");
        assert!(matches!(
            c.database.connect.get_ssl_mode(),
            PgSslMode::Require
        ));
        assert_eq!(c.database.connect.get_port(), 6432);
        assert_eq!(c.database.connect.get_database(), Some("hyvve"));
        assert!(!c.database.display.contains("pw"));
    }

    /// The README's parameter table, row by row.
    #[test]
    fn prisma_parameter_table() {
        let db = |q: &str| Config::resolve(opts(&format!("postgres://u@h:5432/d?{q}")));
        let ok = |q: &str| db(q).unwrap().database;
        // Never a startup parameter PgBouncer refuses by default, whatever the URL says.
        for q in ["", "pgbouncer=true", "pgbouncer=false"] {
            let c = ok(q).connect;
            assert_eq!(c.get_options(), None, "{q}");
            assert!(format!("{c:?}").contains("extra_float_digits: None"), "{q}");
        }
        assert!(ok("pgbouncer=true").pgbouncer);
        assert!(!ok("pgbouncer=false").pgbouncer);
        assert_eq!(ok("connection_limit=4").pool_size, 4);
        assert_eq!(
            ok("connect_timeout=3").connect_timeout,
            Some(Duration::from_secs(3))
        );
        assert_eq!(ok("connect_timeout=0").connect_timeout, None);
        assert_eq!(
            ok("pool_timeout=2").pool_timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            ok("socket_timeout=7").socket_timeout,
            Some(Duration::from_secs(7))
        );
        assert_eq!(ok("statement_cache_size=0").statement_cache_size, 0);
        assert_eq!(ok("").statement_cache_size, 100);
        assert_eq!(
            ok("application_name=svc").connect.get_application_name(),
            Some("svc")
        );
        // TLS as Prisma means it: sslcert is the CA; sslaccept=strict verifies the certificate
        // and host name; without it prefer/require encrypt without checking.
        let mode = |q: &str| ok(q).connect.get_ssl_mode();
        assert!(matches!(mode("sslmode=require"), PgSslMode::Require));
        assert!(matches!(mode("sslmode=disable"), PgSslMode::Disable));
        assert!(matches!(
            mode("sslmode=require&sslaccept=strict"),
            PgSslMode::VerifyFull
        ));
        assert!(matches!(
            mode("sslmode=require&sslaccept=accept_invalid_certs"),
            PgSslMode::Require
        ));
        assert!(matches!(mode("sslmode=prefer"), PgSslMode::Prefer));
        assert!(matches!(mode("sslmode=verify-ca"), PgSslMode::VerifyCa));
        let c = ok("sslmode=require&sslcert=/tmp/ca.pem&sslaccept=strict");
        assert!(format!("{:?}", c.connect).contains("/tmp/ca.pem"));
        // Refused with the parameter named, ERR_CONFIG.
        for (q, named) in [
            ("pgbouncer=yes", "pgbouncer"),
            ("connect_timeout=1.5", "connect_timeout"),
            ("pool_timeout=-1", "pool_timeout"),
            ("socket_timeout=x", "socket_timeout"),
            ("statement_cache_size=-1", "statement_cache_size"),
            ("sslaccept=maybe", "sslaccept"),
            ("sslmode=allow", "sslmode"),
            (
                "sslidentity=/nonexistent/id.p12&sslpassword=pw",
                "sslidentity",
            ),
            ("sslpassword=pw", "sslpassword"),
            ("sslkey=client.key", "sslkey"),
            ("pgbouncer=true&options=-c%20x%3Dy", "options"),
        ] {
            let e = db(q).unwrap_err();
            assert_eq!(e.code, Code::Config, "{q}");
            assert!(e.message.contains(named), "{q}: {}", e.message);
            assert!(!e.message.contains("pw"), "{q}: {}", e.message);
        }
    }

    #[test]
    fn direct_url_from_option_or_environment() {
        let mut o = opts("postgres://u@pooler:6432/d?pgbouncer=true&schema=s");
        o.direct_url = Some("postgres://u:secret@db:5432/d?sslmode=disable".into());
        let c = Config::resolve(o).unwrap();
        let d = c.database.direct.as_ref().unwrap();
        assert_eq!(d.connect.get_host(), "db");
        assert!(!d.display.contains("secret"));
        assert_eq!(c.table_sql, "\"s\".\"event_metadata\"");
        let env: std::collections::HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u@pooler:6432/d"),
            ("DIRECT_URL", "postgres://u@db:5432/d"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = Config::resolve(Options {
            env: Some(env),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.database.direct.unwrap().connect.get_port(), 5432);
        let mut o = opts("postgres://h/d");
        o.direct_url = Some("postgres://h/d?frobnicate=1".into());
        let e = Config::resolve(o).unwrap_err();
        assert!(e.message.contains("directUrl") && e.message.contains("frobnicate"));
        assert!(Config::resolve(opts("postgres://h/d"))
            .unwrap()
            .database
            .direct
            .is_none());
    }

    #[test]
    fn unknown_parameters_are_rejected_by_name() {
        let e = Config::resolve(opts("postgres://h/db?frobnicate=1")).unwrap_err();
        assert_eq!(e.code, Code::Config);
        assert!(e.message.contains("frobnicate"));
        let e = Config::resolve(opts("postgres://h/db?connection_limit=zero")).unwrap_err();
        assert!(e.message.contains("connection_limit"));
    }

    #[test]
    fn defaults() {
        let c = Config::resolve(opts("postgres://127.0.0.1/test")).unwrap();
        assert_eq!(c.stream, DEFAULT_STREAM);
        assert_eq!(c.retention, Retention::MaxAgeMs(DEFAULT_MAX_AGE_MS));
        assert_eq!(c.table_sql, "\"event_metadata\"");
        assert_eq!(c.timeout, Duration::from_millis(5000));
        assert_eq!(c.max_payload_bytes, 1 << 20);
        assert_eq!(c.database.pool_size, 10);
        assert_eq!(c.source, "platform");
    }

    #[test]
    fn bad_options() {
        let mut o = opts("postgres://127.0.0.1/test");
        o.metadata_table = Some("event_metadata; drop table x".into());
        assert_eq!(Config::resolve(o).unwrap_err().code, Code::Config);
        let mut o = opts("postgres://127.0.0.1/test");
        o.metadata_table = Some("audit.events".into());
        assert_eq!(
            Config::resolve(o).unwrap().table_sql,
            "\"audit\".\"events\""
        );
        let mut o = opts("postgres://127.0.0.1/test");
        o.redis_url = Some("http://x".into());
        assert_eq!(Config::resolve(o).unwrap_err().code, Code::Config);
        let mut o = opts("postgres://127.0.0.1/test");
        o.timeout_ms = Some(-1.0);
        assert!(Config::resolve(o)
            .unwrap_err()
            .message
            .contains("timeoutMs"));
        let mut o = opts("postgres://127.0.0.1/test");
        o.retention_max_len = Some(2_592_000.0);
        assert_eq!(
            Config::resolve(o).unwrap().retention,
            Retention::MaxLen(2_592_000)
        );
        let mut o = opts("postgres://127.0.0.1/test");
        o.retention_max_len = Some(5.0);
        o.retention_max_age_ms = Some(5.0);
        assert_eq!(Config::resolve(o).unwrap_err().code, Code::Config);
        let mut o = opts("mysql://127.0.0.1/test");
        o.stream = Some("a b".into());
        assert_eq!(Config::resolve(o).unwrap_err().code, Code::Config);
    }

    #[test]
    fn environment_defaults() {
        let env: std::collections::HashMap<String, String> = [
            ("REDIS_HOST", "cache.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", "p@ss word"),
            ("DATABASE_URL", "postgres://u@db/app"),
            ("EVENT_PUBLISHER_LOG", "warn"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = Config::resolve(Options {
            env: Some(env.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.redis.url, "redis://:p%40ss%20word@cache.internal:6380/0");
        assert!(!c.redis.display.contains("p%40ss"));
        assert_eq!(c.database.connect.get_host(), "db");
        assert!(c
            .log_filter
            .would_enable("hyvve_event_publisher::x", &tracing::Level::WARN));
        assert!(!c
            .log_filter
            .would_enable("hyvve_event_publisher::x", &tracing::Level::INFO));
        let mut with_url = env;
        with_url.insert("REDIS_URL".into(), "redis://other:1".into());
        let c = Config::resolve(Options {
            env: Some(with_url),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.redis.url, "redis://other:1");
        let e = Config::resolve(Options {
            env: Some(Default::default()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.message.contains("DATABASE_URL"));
    }
}
