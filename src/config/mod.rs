//! Options and environment, resolved once at `connect()` into a validated [`Config`].
//! Understands the platform's variables (COMPAT.md §5) and Prisma's `DATABASE_URL` parameters.

pub mod pkcs12;
pub mod redis;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
#[cfg(test)]
use sqlx::postgres::PgSslMode;

use crate::errors::{redact, PublishError};

/// The default stream key (the platform's main stream).
pub const DEFAULT_STREAM: &str = "hyvve:events:main";
/// The default metadata table (created by Prisma).
pub const DEFAULT_TABLE: &str = "event_metadata";
/// 30 days, the platform's retention.
pub const DEFAULT_MAX_AGE_MS: u64 = 30 * 24 * 60 * 60 * 1000;

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
    pub redis_sentinel: Option<crate::config::redis::SentinelOptions>,
    /// Replicas that must hold each append before a publish resolves (`WAIT`).
    pub replica_acks: Option<f64>,
    /// The environment to read defaults from; `None` reads the process environment. (Node
    /// passes `process.env`'s values, which a test runner may have changed without `setenv`.)
    pub env: Option<std::collections::HashMap<String, String>>,
}

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

/// Where and how to reach Postgres.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Driver options (Prisma-only parameters removed).
    pub connect: PgConnectOptions,
    /// Pool size (`connection_limit`, default 10).
    pub pool_size: u32,
    /// `pgbouncer=true` was given: no prepared statements (see `metadata_store`).
    pub pgbouncer: bool,
    /// `statement_cache_size` (default 100): prepared statements kept per connection when
    /// statements are prepared at all; 0 prepares none.
    pub statement_cache_size: usize,
    /// The URL without its password, for messages.
    pub display: String,
    /// `connect_timeout`: the longest a new connection may take (still bounded by `timeoutMs`).
    pub connect_timeout: Option<Duration>,
    /// `pool_timeout`: the longest a statement waits for a pooled connection (bounded likewise).
    pub pool_timeout: Option<Duration>,
    /// `socket_timeout`: the longest one statement may take (bounded likewise).
    pub socket_timeout: Option<Duration>,
    /// `directUrl` / `DIRECT_URL`: where migrate() and reconcile() go instead (no pooler).
    pub direct: Option<Box<DatabaseConfig>>,
}

/// Where and how to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// The URL as given (may hold a password; never printed).
    pub url: String,
    /// The URL without its password, for messages.
    pub display: String,
    /// `rediss://`.
    pub tls: bool,
    /// Extra CA to trust.
    pub ca_file: Option<String>,
    /// `url` came from `redisUrl` or `REDIS_URL` (not the local default).
    pub given: bool,
    /// The deployment (one node, Cluster seeds, Sentinel).
    pub topology: crate::config::redis::Topology,
    /// Replicas to wait for after each append (0: none).
    pub replica_acks: u32,
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
    /// Circuit breaker threshold (0 = off).
    pub circuit_threshold: u32,
    /// Circuit breaker cooldown.
    pub circuit_cooldown: Duration,
    /// How entry IDs are chosen.
    pub entry_ids: EntryIds,
}

/// Reads an environment variable (from the given map, else the process), empty meaning unset.
fn env_in(map: Option<&std::collections::HashMap<String, String>>, name: &str) -> Option<String> {
    match map {
        Some(m) => m.get(name).cloned(),
        None => std::env::var(name).ok(),
    }
    .filter(|v| !v.is_empty())
}

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
        redis.topology = crate::config::redis::resolve(
            redis.given.then_some(redis.url.as_str()),
            cluster_nodes,
            o.redis_sentinel,
        )?;
        redis.replica_acks = crate::config::redis::replica_acks(
            o.replica_acks,
            env("EVENT_PUBLISHER_REPLICA_ACKS"),
        )?;
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
        if source.is_empty() || source.len() > crate::event::validate::MAX_ID_LEN {
            return Err(PublishError::config("source must be 1 to 256 characters"));
        }
        let table_sql = table_sql(
            o.metadata_table.as_deref().unwrap_or(DEFAULT_TABLE),
            schema.as_deref(),
        )?;
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
        })
    }
}

/// The Redis URL: the option, else `REDIS_URL`, else `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`,
/// else the local default.
fn redis_config(
    url: Option<String>,
    ca_file: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RedisConfig, PublishError> {
    let given = url.is_some() || env("REDIS_URL").is_some();
    let url = match url.or_else(|| env("REDIS_URL")) {
        Some(u) => u,
        None => {
            let host = env("REDIS_HOST").unwrap_or_else(|| "127.0.0.1".into());
            let port = env("REDIS_PORT").unwrap_or_else(|| "6379".into());
            match env("REDIS_PASSWORD") {
                Some(p) => format!("redis://:{}@{host}:{port}/0", percent_encode(&p)),
                None => format!("redis://{host}:{port}/0"),
            }
        }
    };
    let base = |tls| RedisConfig {
        display: redact(&url),
        url: url.clone(),
        tls,
        ca_file: ca_file.clone(),
        topology: crate::config::redis::Topology::Node,
        replica_acks: 0,
        given,
    };
    // Parsed by redis_topology (its host list is no URL authority).
    if url.starts_with("redis+sentinel://") {
        return Ok(base(false));
    }
    let parsed = url::Url::parse(&url)
        .map_err(|e| PublishError::config(format!("redisUrl is not a valid URL ({e})")))?;
    let tls = match parsed.scheme() {
        "redis" => false,
        "rediss" => true,
        other => {
            return Err(PublishError::config(format!(
            "redisUrl must start with redis://, rediss:// or redis+sentinel://, got '{other}://'"
        )))
        }
    };
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(PublishError::config("redisUrl has no host"));
    }
    Ok(base(tls))
}

fn percent_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Parses a Postgres URL (`databaseUrl` or `directUrl`, named by `option` in messages) with
/// Prisma's parameters as Prisma means them (README "Database URL parameters"). Returns the
/// config and the `schema` parameter.
fn database_config(
    url: &str,
    option: &str,
) -> Result<(DatabaseConfig, Option<String>), PublishError> {
    let mut parsed = url::Url::parse(url)
        .map_err(|e| PublishError::config(format!("{option} is not a valid URL ({e})")))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(PublishError::config(format!(
            "{option} must start with postgres:// or postgresql://"
        )));
    }
    let bad = |k: &str, v: &str, want: &str| {
        PublishError::config(format!("{option} {k} must be {want}, got '{v}'"))
    };
    // Prisma's timeouts are whole seconds; 0 means "no limit" (timeoutMs still bounds all).
    let seconds = |k: &str, v: &str| -> Result<Option<Duration>, PublishError> {
        let n: u64 = v
            .parse()
            .map_err(|_| bad(k, v, "a whole number of seconds"))?;
        Ok((n > 0).then(|| Duration::from_secs(n)))
    };
    let mut pgbouncer = false;
    let mut schema = None;
    let mut pool_size = 10u32;
    let (mut connect_timeout, mut pool_timeout, mut socket_timeout) = (None, None, None);
    let mut ssl_mode: Option<String> = None;
    let mut statement_cache_size = 100usize;
    let mut strict = false;
    let mut ca_file: Option<String> = None;
    let (mut identity, mut identity_password): (Option<String>, Option<String>) = (None, None);
    // Passed to the driver as they are.
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "pgbouncer" => {
                pgbouncer = match v.as_ref() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad("pgbouncer", &v, "true or false")),
                }
            }
            "schema" => schema = Some(v.into_owned()),
            "connection_limit" => {
                pool_size = v
                    .parse()
                    .ok()
                    .filter(|n: &u32| *n >= 1)
                    .ok_or_else(|| bad("connection_limit", &v, "a positive integer"))?
            }
            "connect_timeout" => connect_timeout = seconds("connect_timeout", &v)?,
            "pool_timeout" => pool_timeout = seconds("pool_timeout", &v)?,
            "socket_timeout" => socket_timeout = seconds("socket_timeout", &v)?,
            // Prisma's prepared-statement cache per connection; 0: prepare nothing.
            "statement_cache_size" => {
                statement_cache_size = v
                    .parse::<usize>()
                    .map_err(|_| bad("statement_cache_size", &v, "a non-negative integer"))?
            }
            "sslmode" => match v.as_ref() {
                "disable" | "prefer" | "require" | "verify-ca" | "verify-full" => {
                    ssl_mode = Some(v.into_owned())
                }
                _ => {
                    return Err(bad(
                        "sslmode",
                        &v,
                        "disable, prefer, require, verify-ca or verify-full",
                    ))
                }
            },
            "sslaccept" => {
                strict = match v.as_ref() {
                    "strict" => true,
                    "accept_invalid_certs" => false,
                    _ => return Err(bad("sslaccept", &v, "strict or accept_invalid_certs")),
                }
            }
            // Prisma's sslcert is the CA certificate to trust (libpq's sslrootcert).
            "sslcert" | "sslrootcert" => ca_file = Some(v.into_owned()),
            // Prisma's client identity: a PKCS#12 file and its password.
            "sslidentity" => identity = Some(v.into_owned()),
            "sslpassword" => identity_password = Some(v.into_owned()),
            "sslkey" => {
                return Err(PublishError::config(format!(
                    "{option} sslkey: client certificates are not supported (in a Prisma URL sslcert is the CA to trust, not a client certificate)"
                )))
            }
            "application_name" | "options" | "host" | "port" | "user" | "password" | "dbname" => {
                kept.push((k.into_owned(), v.into_owned()))
            }
            other => {
                return Err(PublishError::config(format!(
                    "{option} has an unknown parameter '{other}'"
                )))
            }
        }
    }
    if pgbouncer && kept.iter().any(|(k, _)| k == "options") {
        return Err(PublishError::config(format!(
            "{option}: pgbouncer=true cannot be combined with 'options' (PgBouncer rejects startup options)"
        )));
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept.iter());
    }
    let display = redact(url);
    let mut connect = PgConnectOptions::from_str(parsed.as_str()).map_err(|e| {
        PublishError::config(format!("{option} is invalid ({})", redact(&e.to_string())))
    })?;
    // Prisma: sslmode prefer (the default) and require encrypt without checking the certificate
    // unless sslaccept=strict, which checks it and the host name (libpq's verify-full).
    use sqlx::postgres::PgSslMode as M;
    let mode = match (ssl_mode.as_deref(), strict) {
        (Some("disable"), _) => Some(M::Disable),
        (Some("verify-ca"), _) => Some(M::VerifyCa),
        (Some("verify-full"), _) | (_, true) => Some(M::VerifyFull),
        (Some("require"), false) => Some(M::Require),
        (Some(_), false) => Some(M::Prefer),
        // Neither given: the driver's default (PGSSLMODE, else prefer).
        (None, false) => None,
    };
    if let Some(mode) = mode {
        connect = connect.ssl_mode(mode);
    }
    connect = connect
        // PgBouncer refuses startup parameters outside its ignore_startup_parameters list, and
        // extra_float_digits is one (the metadata table has no floating-point columns).
        .extra_float_digits(None)
        // The probe and pooler connections prepare nothing; a direct connection's pool gets the
        // cache back when connect decides to prepare (metadata_store).
        .statement_cache_capacity(0);
    if let Some(ca) = ca_file {
        connect = connect.ssl_root_cert(ca);
    }
    match (identity, identity_password) {
        (Some(path), password) => {
            let id = crate::config::pkcs12::read_identity(
                option,
                &path,
                password.as_deref().unwrap_or(""),
            )?;
            connect = connect
                .ssl_client_cert_from_pem(id.certs)
                .ssl_client_key_from_pem(id.key);
        }
        (None, Some(_)) => {
            return Err(PublishError::config(format!(
                "{option} sslpassword is given without sslidentity"
            )))
        }
        (None, None) => {}
    }
    Ok((
        DatabaseConfig {
            connect,
            pool_size,
            pgbouncer,
            statement_cache_size,
            display,
            connect_timeout,
            pool_timeout,
            socket_timeout,
            direct: None,
        },
        schema,
    ))
}

fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `table` or `schema.table`, validated and quoted; never interpolated raw.
fn table_sql(table: &str, schema: Option<&str>) -> Result<String, PublishError> {
    let parts: Vec<&str> = table.split('.').collect();
    let ok = match parts.len() {
        1 | 2 => parts.iter().all(|p| is_identifier(p)),
        _ => false,
    };
    if !ok {
        return Err(PublishError::config(format!(
            "metadataTable '{table}' must be a table name or schema.table of letters, digits and '_'"
        )));
    }
    match (parts.as_slice(), schema) {
        ([s, t], _) => Ok(format!("\"{s}\".\"{t}\"")),
        ([t], Some(s)) => {
            if !is_identifier(s) {
                return Err(PublishError::config(format!(
                    "databaseUrl schema '{s}' must be letters, digits and '_'"
                )));
            }
            Ok(format!("\"{s}\".\"{t}\""))
        }
        ([t], None) => Ok(format!("\"{t}\"")),
        _ => unreachable!("checked above"),
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

    #[test]
    fn redis_url_from_parts_keeps_password_out_of_display() {
        let c = redis_config(Some("rediss://:s3cret@cache:6380/0".into()), None, &|_| {
            None
        })
        .unwrap();
        assert!(c.tls);
        assert!(!c.display.contains("s3cret"));
        assert!(c.url.contains("s3cret"));
    }
}
