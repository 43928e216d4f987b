//! Connecting the Postgres side: a probe (so a refused connection is reported at once, not as a
//! pool timeout), the one-time decision whether publishing statements may be prepared (a direct
//! connection) or must be simple queries (a pooler such as PgBouncer), and the pools.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Row};

use super::store::MetadataStore;
use super::warm_connection::WarmConnection;
use crate::config::DatabaseConfig;
use crate::errors::PublishError;

/// The startup option of a direct connection's sessions: the prepared inserts run on their
/// generic plan from the first execution, never planned again (measured with
/// pg_stat_statements, sequential publishes: planning each insert cost 61 µs of 150).
const GENERIC_PLANS: (&str, &str) = ("plan_cache_mode", "force_generic_plan");

/// Checks, with one connection, that the server answers (so a refused or rejected connection
/// is reported as such, at once, not as a pool timeout).
async fn probe(cfg: &DatabaseConfig, timeout: Duration) -> Result<(), PublishError> {
    bounded_connect(cfg, timeout, async {
        let mut conn = cfg.connect.connect().await?;
        sqlx::Connection::ping(&mut conn).await?;
        sqlx::Connection::close(conn).await
    })
    .await
}

async fn bounded_connect<T>(
    cfg: &DatabaseConfig,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, PublishError> {
    let describe = |e: PublishError| {
        PublishError::new(e.code, format!("{} (database {})", e.message, cfg.display))
    };
    let limit = cfg.connect_timeout.map_or(timeout, |t| t.min(timeout));
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(describe(PublishError::database("connect", &e))),
        Err(_) => Err(describe(PublishError::timeout(
            "connecting to Postgres",
            limit.as_millis() as u64,
        ))),
    }
}

/// Decides, once, whether the publishing statements may be named prepared statements: only when
/// the server itself took `plan_cache_mode` as a startup option (so it is Postgres, not a pooler
/// that shares server connections between clients). PgBouncer refuses the option ("unsupported
/// startup parameter") or, configured to ignore it, leaves the setting at its default; with
/// `pgbouncer=true` nothing is tried. Returns the decision and why, for the connect log record.
async fn decide(
    cfg: &DatabaseConfig,
    timeout: Duration,
) -> Result<(bool, &'static str), PublishError> {
    if cfg.pgbouncer || cfg.statement_cache_size == 0 {
        probe(cfg, timeout).await?;
        return Ok((
            false,
            if cfg.pgbouncer {
                "the URL says pgbouncer=true"
            } else {
                "the URL says statement_cache_size=0"
            },
        ));
    }
    let with_option = cfg.connect.clone().options([GENERIC_PLANS]);
    let tried = bounded_connect(cfg, timeout, async {
        let mut conn = match with_option.connect().await {
            Ok(c) => c,
            Err(sqlx::Error::Database(d))
                if d.message().contains("unsupported startup parameter") =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        // A &str without arguments runs as a simple query.
        let mode: String = sqlx::Executor::fetch_one(&mut conn, "SHOW plan_cache_mode")
            .await?
            .try_get(0)?;
        sqlx::Connection::close(conn).await?;
        Ok(Some(mode))
    })
    .await?;
    match tried {
        Some(mode) if mode == GENERIC_PLANS.1 => Ok((
            true,
            "the server took plan_cache_mode as a startup option: a direct connection",
        )),
        Some(_) => Ok((
            false,
            "the server ignored the startup option plan_cache_mode: a pooler",
        )),
        None => {
            probe(cfg, timeout).await?;
            Ok((
                false,
                "the server refused startup options: a pooler such as PgBouncer",
            ))
        }
    }
}

fn pool(
    cfg: &DatabaseConfig,
    connect: PgConnectOptions,
    timeout: Duration,
    stale: Arc<AtomicU64>,
) -> PgPool {
    // While Postgres is down the pool retries refused connections until the acquire timeout:
    // by default keep that short so publishes fail fast (and the circuit breaker can open).
    let acquire = cfg
        .pool_timeout
        .map_or(timeout.min(Duration::from_secs(1)), |t| t.min(timeout));
    PgPoolOptions::new()
        .max_connections(cfg.pool_size)
        .min_connections(0)
        .acquire_timeout(acquire)
        .test_before_acquire(false)
        .before_acquire(move |_conn, meta| {
            let opened_ms = crate::clock::now_ms().saturating_sub(meta.age.as_millis() as u64);
            let keep = opened_ms > stale.load(Ordering::Relaxed);
            Box::pin(async move { Ok(keep) })
        })
        .connect_lazy_with(connect)
}

impl MetadataStore {
    /// Checks that Postgres (and the `directUrl` one, if given) answers, then opens the pools.
    pub async fn connect(
        cfg: &DatabaseConfig,
        table_sql: &str,
        timeout: Duration,
    ) -> Result<Self, PublishError> {
        let (prepared, why) = match &cfg.direct {
            Some(direct) => tokio::try_join!(decide(cfg, timeout), probe(direct, timeout))?.0,
            None => decide(cfg, timeout).await?,
        };
        let stale_before_ms = Arc::new(AtomicU64::new(0));
        let connect = if prepared {
            cfg.connect
                .clone()
                .options([GENERIC_PLANS])
                .statement_cache_capacity(cfg.statement_cache_size)
        } else {
            cfg.connect.clone()
        };
        let publishing = pool(cfg, connect, timeout, stale_before_ms.clone());
        let session = match &cfg.direct {
            Some(direct) => pool(
                direct,
                direct.connect.clone(),
                timeout,
                stale_before_ms.clone(),
            ),
            None => publishing.clone(),
        };
        let op_timeout = cfg.socket_timeout.map_or(timeout, |t| t.min(timeout));
        let mut store = MetadataStore::with_pools(publishing, session, table_sql, op_timeout);
        store.prepared = prepared;
        store.stale_before_ms = stale_before_ms;
        store.warm = WarmConnection::new(cfg.pool_size);
        store.description = format!(
            "{} because {why}; migrate and reconcile use {}",
            if prepared {
                "publishing statements: the inserts are prepared once per connection and never planned again (plan_cache_mode=force_generic_plan); updates and deletes are simple queries planned for their values"
            } else {
                "publishing statements are simple queries with inline values (nothing prepared, no session settings: safe through PgBouncer in any pool mode)"
            },
            match &cfg.direct {
                Some(d) => format!("directUrl {}", d.display),
                None => "databaseUrl".to_string(),
            }
        );
        Ok(store)
    }
}
