//! The Postgres inputs: `databaseUrl` / `directUrl` (`DATABASE_URL`, `DIRECT_URL`) with Prisma's
//! URL parameters as Prisma means them, TLS and a PKCS#12 client identity, and the metadata table
//! name, quoted. Parsed here, apart from the store that connects with them (`metadata/`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::errors::{redact, PublishError};

/// Where and how to reach Postgres.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Driver options (Prisma-only parameters removed).
    pub connect: PgConnectOptions,
    /// Pool size (`connection_limit`, default 10).
    pub pool_size: u32,
    /// `pgbouncer=true` was given: no prepared statements (see `metadata/connect.rs`).
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

/// Parses a Postgres URL (`databaseUrl` or `directUrl`, named by `option` in messages) with
/// Prisma's parameters as Prisma means them (README "Database URL parameters"). Returns the
/// config and the `schema` parameter.
pub(super) fn database_config(
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
        // cache back when connect decides to prepare (metadata/connect.rs).
        .statement_cache_capacity(0);
    if let Some(ca) = ca_file {
        connect = connect.ssl_root_cert(ca);
    }
    match (identity, identity_password) {
        (Some(path), password) => {
            let id =
                super::pkcs12::read_identity(option, &path, password.as_deref().unwrap_or(""))?;
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
pub(super) fn table_sql(table: &str, schema: Option<&str>) -> Result<String, PublishError> {
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
