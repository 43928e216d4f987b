//! Writes `event_metadata` rows (COMPAT.md §3): inserts them as PENDING with the entry ID
//! proposed for their event, patches the `stream_id` of the few whose append could not take the
//! proposal, deletes them when a publish is undone, and finds rows for reconciliation. Multi-row statements bind one array per column (`unnest`), so
//! a group of any size is one statement with a fixed number of parameters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Row};

use crate::config::DatabaseConfig;
use crate::envelope::PreparedEvent;
use crate::errors::{Code, PublishError};

/// The DDL of the platform's Prisma migration for `event_metadata` (never run unless asked).
pub const MIGRATION_SQL: &str = include_str!("../migrations/0001_event_metadata.sql");

/// What the insert found for each event id that already had a row (a retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingRow {
    /// Its `stream_id` (the ID proposed or taken by the earlier call; '0-0' from older versions).
    pub stream_id: String,
    /// Its type and tenant, to detect an id reused for another event.
    pub event_type: String,
    /// Tenant.
    pub tenant_id: String,
}

/// A PENDING row, as reconciliation examines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    /// Its event id.
    pub event_id: String,
    /// Its `stream_id`.
    pub stream_id: String,
    /// Its `created_at`, Unix ms.
    pub created_ms: i64,
}

/// The Postgres side of the publisher.
#[derive(Clone)]
pub struct MetadataStore {
    pool: PgPool,
    persistent: bool,
    insert_sql: String,
    existing_sql: String,
    patch_sql: String,
    patch_locked_sql: String,
    delete_sql: String,
    op_timeout: Duration,
    table_sql: String,
    /// Connections opened before this time (Unix ms) are discarded instead of reused: set when a
    /// statement fails in a way that sticks to the session (the database was read-only when the
    /// session began), so that recovery does not wait for the pool to age them out.
    stale_before_ms: Arc<AtomicU64>,
}

impl MetadataStore {
    /// Opens the pool after checking, with one direct connection, that the server answers (so a
    /// refused or rejected connection is reported as such, at once, not as a pool timeout).
    pub async fn connect(
        cfg: &DatabaseConfig,
        table_sql: &str,
        timeout: Duration,
    ) -> Result<Self, PublishError> {
        let probe = async {
            let mut conn = cfg.connect.connect().await?;
            sqlx::Connection::ping(&mut conn).await?;
            sqlx::Connection::close(conn).await
        };
        let describe = |e: PublishError| {
            PublishError::new(e.code, format!("{} (database {})", e.message, cfg.display))
        };
        match tokio::time::timeout(timeout, probe).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(describe(PublishError::database("connect", &e))),
            Err(_) => {
                return Err(describe(PublishError::timeout(
                    "connecting to Postgres",
                    timeout.as_millis() as u64,
                )))
            }
        }
        // While Postgres is down the pool retries refused connections until the acquire timeout:
        // keep that short so publishes fail fast (and the circuit breaker can open).
        let stale_before_ms = Arc::new(AtomicU64::new(0));
        let stale = stale_before_ms.clone();
        let pool = PgPoolOptions::new()
            .max_connections(cfg.pool_size)
            .min_connections(0)
            .acquire_timeout(timeout.min(Duration::from_secs(1)))
            .test_before_acquire(false)
            .before_acquire(move |_conn, meta| {
                let opened_ms =
                    crate::envelope::now_ms().saturating_sub(meta.age.as_millis() as u64);
                let keep = opened_ms > stale.load(Ordering::Relaxed);
                Box::pin(async move { Ok(keep) })
            })
            .connect_lazy_with(cfg.connect.clone());
        let mut store = MetadataStore::with_pool(pool, !cfg.pgbouncer, table_sql, timeout);
        store.stale_before_ms = stale_before_ms;
        Ok(store)
    }

    fn with_pool(pool: PgPool, persistent: bool, table: &str, timeout: Duration) -> Self {
        MetadataStore {
            pool,
            persistent,
            insert_sql: format!(
                "INSERT INTO {table} (id, event_id, stream_id, type, source, tenant_id, correlation_id, created_at) \
                 SELECT r.id, r.event_id, r.stream_id, r.type, r.source, r.tenant_id, r.correlation_id, (r.ts::timestamptz AT TIME ZONE 'UTC') \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) \
                 AS r(id, event_id, stream_id, type, source, tenant_id, correlation_id, ts) \
                 ORDER BY r.event_id \
                 ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
            ),
            existing_sql: format!(
                "SELECT event_id, stream_id, type, tenant_id FROM {table} WHERE event_id = ANY($1::text[])"
            ),
            // Rows are locked in event_id order (as the insert takes them), so two groups that
            // share event ids in different orders cannot deadlock.
            patch_sql: format!(
                "UPDATE {table} AS m SET stream_id = u.stream_id \
                 FROM unnest($1::text[], $2::text[]) AS u(event_id, stream_id) \
                 WHERE m.event_id = u.event_id"
            ),
            patch_locked_sql: format!(
                "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[]) AS u(event_id, stream_id)), \
                 locked AS (SELECT m.id, u.stream_id FROM {table} AS m JOIN u ON m.event_id = u.event_id \
                 WHERE m.stream_id IS DISTINCT FROM u.stream_id ORDER BY m.event_id FOR UPDATE OF m) \
                 UPDATE {table} AS m SET stream_id = locked.stream_id FROM locked WHERE m.id = locked.id"
            ),
            delete_sql: format!(
                "DELETE FROM {table} AS m USING unnest($1::text[], $2::text[]) AS u(event_id, stream_id) \
                 WHERE m.event_id = u.event_id AND m.stream_id = u.stream_id"
            ),
            op_timeout: timeout,
            table_sql: table.to_string(),
            stale_before_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Inserts one PENDING row per event, each with the entry ID proposed for it, in one
    /// statement (one commit). Returns the event ids that already had a row (retries of
    /// caller-supplied ids), with what those rows hold; every other event now has a fresh row.
    pub async fn insert_pending(
        &self,
        rows: &[(&PreparedEvent, &str)],
    ) -> Result<HashMap<String, ExistingRow>, PublishError> {
        let n = rows.len();
        let events = rows.iter().map(|(e, _)| *e);
        let mut cols: [Vec<&str>; 8] = std::array::from_fn(|_| Vec::with_capacity(n));
        for (e, stream_id) in rows {
            cols[0].push(&e.row_id);
            cols[1].push(&e.event_id);
            cols[2].push(stream_id);
            cols[3].push(&e.event_type);
            cols[4].push(&e.source);
            cols[5].push(&e.tenant_id);
            cols[6].push(&e.correlation_id);
            cols[7].push(&e.timestamp);
        }
        // One array per column: the statement has eight parameters whatever the group size.
        let bind = |sql| {
            let q = sqlx::query(sql).persistent(self.persistent);
            cols.iter().fold(q, |q, col| q.bind(col))
        };
        if !events.clone().any(|e| e.caller_event_id) {
            // Generated ids cannot have rows yet: a count is enough, no ids to send back.
            let sql = self.insert_sql.trim_end_matches(" RETURNING event_id");
            let done = self
                .bounded("insert event_metadata", async {
                    bind(sql)
                        .execute(&self.pool)
                        .await
                        .map(|r| r.rows_affected() as usize)
                })
                .await?;
            if done == n {
                return Ok(HashMap::new());
            }
            return Err(PublishError::new(
                Code::Database,
                format!("inserted {done} of {n} event_metadata rows"),
            ));
        }
        let inserted: Vec<String> = self
            .bounded("insert event_metadata", async {
                let rows = bind(&self.insert_sql).fetch_all(&self.pool).await?;
                Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
            })
            .await?;
        if inserted.len() == n {
            return Ok(HashMap::new());
        }
        // Only retries get here: look up the rows that were already there.
        let inserted: std::collections::HashSet<&str> =
            inserted.iter().map(String::as_str).collect();
        let missing: Vec<&str> = events
            .map(|e| e.event_id.as_str())
            .filter(|id| !inserted.contains(id))
            .collect();
        let rows = self
            .bounded("read event_metadata", async {
                sqlx::query(&self.existing_sql)
                    .persistent(self.persistent)
                    .bind(&missing)
                    .fetch_all(&self.pool)
                    .await
            })
            .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            out.insert(
                r.get::<String, _>(0),
                ExistingRow {
                    stream_id: r.get(1),
                    event_type: r.get(2),
                    tenant_id: r.get(3),
                },
            );
        }
        Ok(out)
    }

    /// Sets each row's `stream_id` to its entry ID, in one statement (one commit). With
    /// `shared_ids` (caller-supplied ids, which a concurrent retry may also be writing) the rows
    /// are locked in `event_id` order first; generated ids belong to this group alone.
    pub async fn set_stream_ids(
        &self,
        event_ids: &[&str],
        stream_ids: &[&str],
        shared_ids: bool,
    ) -> Result<(), PublishError> {
        let sql = if shared_ids {
            &self.patch_locked_sql
        } else {
            &self.patch_sql
        };
        self.bounded("update event_metadata.stream_id", async {
            sqlx::query(sql)
                .persistent(self.persistent)
                .bind(event_ids)
                .bind(stream_ids)
                .execute(&self.pool)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Deletes the rows of an undone publish: rows of these event ids that still hold the entry
    /// ID this publish proposed (a row written by another call is never deleted).
    pub async fn delete(
        &self,
        event_ids: &[&str],
        stream_ids: &[&str],
    ) -> Result<u64, PublishError> {
        self.bounded("delete event_metadata", async {
            sqlx::query(&self.delete_sql)
                .persistent(self.persistent)
                .bind(event_ids)
                .bind(stream_ids)
                .execute(&self.pool)
                .await
        })
        .await
        .map(|r| r.rows_affected())
    }

    /// PENDING rows created between `within_ms` and `older_than_ms` ago, after `after`
    /// (`(created_at in Unix ms, event_id)`, exclusive), oldest first, at most `limit`: the rows
    /// a crashed process may have left without an entry.
    pub async fn pending_rows(
        &self,
        older_than_ms: u64,
        within_ms: u64,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<PendingRow>, PublishError> {
        // Integer milliseconds both ways, so the keyset cursor is exact.
        let sql = format!(
            "SELECT event_id, stream_id, (extract(epoch FROM created_at) * 1000)::int8 AS created_ms FROM {} \
             WHERE status = 'PENDING' \
             AND created_at < (now() AT TIME ZONE 'UTC') - $1::int8 * INTERVAL '1 millisecond' \
             AND created_at >= (now() AT TIME ZONE 'UTC') - $2::int8 * INTERVAL '1 millisecond' \
             AND (created_at, event_id) > (TIMESTAMP 'epoch' + $3::int8 * INTERVAL '1 millisecond', $4::text) \
             ORDER BY created_at, event_id LIMIT $5",
            self.table_sql
        );
        // No cursor: just before the epoch, so every row comes after it.
        let (after_ms, after_id) = after.unwrap_or((-1, ""));
        self.bounded("find pending rows", async {
            sqlx::query_as::<_, (String, String, i64)>(&sql)
                .persistent(self.persistent)
                .bind(older_than_ms.min(i64::MAX as u64 / 4) as i64)
                .bind(within_ms.min(i64::MAX as u64 / 4) as i64)
                .bind(after_ms)
                .bind(after_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
        })
        .await
        .map(|rows| {
            rows.into_iter()
                .map(|(event_id, stream_id, created_ms)| PendingRow {
                    event_id,
                    stream_id,
                    created_ms,
                })
                .collect()
        })
    }

    /// Marks these rows FAILED with `last_error` 'never published', if they are still PENDING
    /// with the `stream_id` that was examined.
    pub async fn mark_never_published(
        &self,
        event_ids: &[&str],
        stream_ids: &[&str],
    ) -> Result<u64, PublishError> {
        let sql = format!(
            "UPDATE {} AS m SET status = 'FAILED', last_error = 'never published' \
             FROM unnest($1::text[], $2::text[]) AS u(event_id, stream_id) \
             WHERE m.event_id = u.event_id AND m.stream_id = u.stream_id AND m.status = 'PENDING'",
            self.table_sql
        );
        self.bounded("mark rows failed", async {
            sqlx::query(&sql)
                .persistent(self.persistent)
                .bind(event_ids)
                .bind(stream_ids)
                .execute(&self.pool)
                .await
        })
        .await
        .map(|r| r.rows_affected())
    }

    /// Whether Postgres answers now.
    pub async fn ping(&self) -> bool {
        self.bounded("ping", async {
            sqlx::query("SELECT 1")
                .persistent(self.persistent)
                .execute(&self.pool)
                .await
        })
        .await
        .is_ok()
    }

    /// Checks that the metadata table exists, with a hint when it does not.
    pub async fn check_table(&self) -> Result<(), PublishError> {
        let sql = format!("SELECT 1 FROM {} LIMIT 0", self.table_sql);
        self.bounded("check table", async {
            sqlx::query(&sql)
                .persistent(self.persistent)
                .execute(&self.pool)
                .await
        })
        .await
        .map(|_| ())
        .map_err(|e| {
            PublishError::new(
                e.code,
                format!(
                    "{}; the metadata table {} must exist (create it with migrate())",
                    e.message, self.table_sql
                ),
            )
        })
    }

    /// Creates the enum, the table and its indexes when the table does not exist yet; returns
    /// whether it created them. Only for an empty database: an existing table is left alone.
    pub async fn migrate(&self) -> Result<bool, PublishError> {
        if self.table_sql != "\"event_metadata\"" {
            return Err(PublishError::config(
                "migrate() creates the default \"event_metadata\" table only",
            ));
        }
        let exists: Option<String> = self
            .bounded("migrate", async {
                sqlx::query_scalar("SELECT to_regclass('event_metadata')::text")
                    .persistent(false)
                    .fetch_one(&self.pool)
                    .await
            })
            .await?;
        if exists.is_some() {
            return Ok(false);
        }
        // One multi-statement simple query runs as one transaction: the advisory lock serialises
        // concurrent migrations (parallel test workers), the DO block re-checks under it.
        let sql = format!(
            "SELECT pg_advisory_xact_lock(7243001); \
             DO $migration$ BEGIN IF to_regclass('event_metadata') IS NULL THEN {MIGRATION_SQL} END IF; END $migration$;"
        );
        self.bounded("migrate", async {
            sqlx::raw_sql(&sql).execute(&self.pool).await
        })
        .await?;
        Ok(true)
    }

    /// Closes the pool after its connections are returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, PublishError> {
        match tokio::time::timeout(self.op_timeout, fut).await {
            Ok(r) => r.map_err(|e| {
                // 25006 read_only_sql_transaction: the session started while the database was
                // read-only and stays so; retire every connection opened until now.
                if let sqlx::Error::Database(d) = &e {
                    if d.code().as_deref() == Some("25006") {
                        self.stale_before_ms
                            .store(crate::envelope::now_ms(), Ordering::Relaxed);
                    }
                }
                PublishError::database(what, &e)
            }),
            Err(_) => Err(PublishError::new(
                Code::Timeout,
                format!(
                    "Postgres {what} did not finish within {} ms",
                    self.op_timeout.as_millis()
                ),
            )),
        }
    }
}
