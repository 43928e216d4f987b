//! Writes `event_metadata` rows (docs/wire-contract.md): inserts them as PENDING with the entry ID
//! proposed for their event, patches the `stream_id` of the few whose append could not take the
//! proposal, deletes them when a publish is undone, and finds rows for reconciliation. Multi-row statements bind one array per column (`unnest`), so
//! a group of any size is one statement with a fixed number of parameters; a lone row's prepared
//! insert is `VALUES ($1, …)`. Statements run on the connection the previous one used when it is
//! free (`warm_connection`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgArguments, PgPool, PgQueryResult, PgRow};
use sqlx::{Execute, Executor, Postgres, Row};

use crate::errors::{Code, PublishError};
use crate::event::PreparedEvent;
use crate::metadata::sql_literal;
use crate::metadata::warm_connection::WarmConnection;

/// A prepared statement with its parameters bound.
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// The DDL of the platform's Prisma migration for `event_metadata` (never run unless asked).
pub const MIGRATION_SQL: &str = include_str!("../../migrations/0001_event_metadata.sql");

/// The DDL of the outbox table (`event_outbox`, docs/outbox.md), created by `migrate()`.
pub const OUTBOX_MIGRATION_SQL: &str = include_str!("../../migrations/0002_event_outbox.sql");

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

/// A statement over `unnest`-ed text arrays: `head` + the arrays + `tail`, either with the
/// arrays inline (`with_arrays`) or as parameters `$1::text[], …` (`bound`).
#[derive(Clone)]
struct Template {
    head: String,
    tail: String,
    bound: String,
    /// Sent as a prepared statement on a direct connection. Only the inserts are: their plan
    /// has no choice to make (rows from `unnest`, the unique index as the conflict arbiter), so
    /// the session's generic plan is right at any table size and costs no planning. Statements
    /// that find rows by `event_id` are planned for their values each time (inline literals):
    /// a generic plan for an array of unknown length could seq-scan a large table.
    prepare: bool,
    /// The same statement for one row, `VALUES ($1, …)`: what a prepared insert of a single
    /// event sends (no arrays to parse, no unnest, no sort).
    one: Option<String>,
}

impl Template {
    fn new(head: String, tail: &str, columns: usize) -> Self {
        let params: Vec<String> = (1..=columns).map(|i| format!("${i}::text[]")).collect();
        Template {
            bound: [head.as_str(), &params.join(", "), tail].concat(),
            head,
            tail: tail.to_string(),
            prepare: false,
            one: None,
        }
    }

    fn with_one_row(mut self, sql: String) -> Self {
        self.one = Some(sql);
        self
    }

    /// The prepared statement and its parameters: the single-row form when every column has one
    /// value, else one array per column.
    fn prepared_query<'q>(&'q self, columns: &[&'q [&'q str]]) -> PgQuery<'q> {
        match &self.one {
            Some(one) if columns.iter().all(|c| c.len() == 1) => columns
                .iter()
                .fold(sqlx::query(one).persistent(true), |q, c| q.bind(c[0])),
            _ => columns
                .iter()
                .fold(sqlx::query(&self.bound).persistent(true), |q, c| q.bind(*c)),
        }
    }

    fn prepared(mut self) -> Self {
        self.prepare = true;
        self
    }

    /// The statement with these columns as `unnest` arrays.
    fn with_arrays(&self, columns: &[&[&str]]) -> Result<String, PublishError> {
        let arrays = sql_literal::text_arrays(columns)?;
        Ok([self.head.as_str(), &arrays, &self.tail].concat())
    }
}

/// The Postgres side of the publisher.
///
/// How the publishing statements are sent is decided once at connect (see [`decide`]): on a
/// connection straight to Postgres the inserts are named prepared statements on their generic
/// plan (`plan_cache_mode = force_generic_plan`, a startup option), and the statements that find
/// rows by `event_id` simple queries planned for their values (see [`Template::prepare`]); through a pooler
/// (PgBouncer refuses startup options; `pgbouncer=true`) they are simple queries with their
/// values inline (see [`sql_literal`]): nothing prepared, no session setting, planned for their
/// values every time, correct in any pool mode. The rare statements (reconcile, migrate, checks)
/// are always simple queries.
#[derive(Clone)]
pub struct MetadataStore {
    pool: PgPool,
    /// `directUrl`'s pool for migrate and reconcile, else a handle on `pool`.
    session: PgPool,
    /// Publishing statements are named prepared statements (a direct connection).
    pub(super) prepared: bool,
    insert: Template,
    insert_returning: Template,
    existing: Template,
    patch: Template,
    patch_locked: Template,
    delete: Template,
    mark_failed: Template,
    op_timeout: Duration,
    table_sql: String,
    /// The outbox table beside it (same schema), quoted.
    outbox_table_sql: String,
    /// What connect decided, for the connect log record.
    pub(super) description: String,
    /// Connections opened before this time (Unix ms) are discarded instead of reused: set when a
    /// statement fails in a way that sticks to the session (the database was read-only when the
    /// session began), so that recovery does not wait for the pool to age them out.
    pub(super) stale_before_ms: Arc<AtomicU64>,
    /// The publishing pool's connection kept for the next statement.
    pub(super) warm: WarmConnection,
}

impl MetadataStore {
    /// Runs a small read-only simple query on the warm connection (the one publishes use, when it
    /// is free), so a periodic reader such as the outbox relay wakes no other server process.
    pub(crate) async fn fetch_warm_raw(&self, sql: &str) -> Result<Vec<PgRow>, sqlx::Error> {
        self.fetch_warm(sqlx::raw_sql(sql)).await
    }

    /// The publishing pool, for the outbox's own transactions.
    pub(crate) fn publishing_pool(&self) -> &PgPool {
        &self.pool
    }

    /// What connect decided about statements and sessions, for a debug log record.
    pub fn description(&self) -> &str {
        &self.description
    }

    pub(super) fn with_pools(
        pool: PgPool,
        session: PgPool,
        table: &str,
        timeout: Duration,
    ) -> Self {
        let insert_head = format!(
            "INSERT INTO {table} (id, event_id, stream_id, type, source, tenant_id, correlation_id, created_at) \
             SELECT r.id, r.event_id, r.stream_id, r.type, r.source, r.tenant_id, r.correlation_id, (r.ts::timestamptz AT TIME ZONE 'UTC') \
             FROM unnest("
        );
        const INSERT_TAIL: &str =
            ") AS r(id, event_id, stream_id, type, source, tenant_id, correlation_id, ts) \
             ORDER BY r.event_id";
        // Only caller-supplied ids can have rows already. For generated ids a plain insert is
        // enough, and cheaper: ON CONFLICT probes the unique index before each row and logs a
        // confirm record after it (pg_stat_statements, a lone row: 9.1 -> 8.1 WAL records, as
        // the pg reference's plain insert). A repeat after a lost commit reply takes the ON
        // CONFLICT form, which finds the rows that commit wrote.
        const ON_CONFLICT: &str = " ON CONFLICT (event_id) DO NOTHING";
        // One row (a lone publish), as the arrays would give it.
        let insert_one = format!(
            "INSERT INTO {table} (id, event_id, stream_id, type, source, tenant_id, correlation_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, ($8::timestamptz AT TIME ZONE 'UTC'))"
        );
        MetadataStore {
            pool,
            session,
            prepared: false,
            insert: Template::new(insert_head.clone(), INSERT_TAIL, 8)
                .prepared()
                .with_one_row(insert_one.clone()),
            insert_returning: Template::new(
                insert_head,
                &format!("{INSERT_TAIL}{ON_CONFLICT} RETURNING event_id"),
                8,
            )
            .prepared()
            .with_one_row(format!("{insert_one}{ON_CONFLICT} RETURNING event_id")),
            existing: Template::new(
                format!(
                    "SELECT event_id, stream_id, type, tenant_id FROM {table} WHERE event_id = ANY("
                ),
                ")",
                1,
            ),
            // Rows are locked in event_id order (as the insert takes them), so two groups that
            // share event ids in different orders cannot deadlock.
            patch: Template::new(
                format!("UPDATE {table} AS m SET stream_id = u.stream_id FROM unnest("),
                ") AS u(event_id, stream_id) WHERE m.event_id = u.event_id",
                2,
            ),
            patch_locked: Template::new(
                "WITH u AS (SELECT * FROM unnest(".to_string(),
                &format!(
                    ") AS u(event_id, stream_id)), \
                     locked AS (SELECT m.id, u.stream_id FROM {table} AS m JOIN u ON m.event_id = u.event_id \
                     WHERE m.stream_id IS DISTINCT FROM u.stream_id ORDER BY m.event_id FOR UPDATE OF m) \
                     UPDATE {table} AS m SET stream_id = locked.stream_id FROM locked WHERE m.id = locked.id"
                ),
                2,
            ),
            delete: Template::new(
                format!("DELETE FROM {table} AS m USING unnest("),
                ") AS u(event_id, stream_id) WHERE m.event_id = u.event_id AND m.stream_id = u.stream_id",
                2,
            ),
            mark_failed: Template::new(
                format!(
                    "UPDATE {table} AS m SET status = 'FAILED', last_error = 'never published' FROM unnest("
                ),
                ") AS u(event_id, stream_id) \
                 WHERE m.event_id = u.event_id AND m.stream_id = u.stream_id AND m.status = 'PENDING'",
                2,
            ),
            op_timeout: timeout,
            table_sql: table.to_string(),
            outbox_table_sql: match table.rsplit_once('.') {
                Some((schema, _)) => format!("{schema}.\"event_outbox\""),
                None => "\"event_outbox\"".to_string(),
            },
            description: String::new(),
            stale_before_ms: Arc::new(AtomicU64::new(0)),
            warm: WarmConnection::default(),
        }
    }

    /// Inserts one PENDING row per event, each with the entry ID proposed for it, in one
    /// statement (one commit). Returns the caller-supplied ids that already had a row (retries),
    /// with what those rows hold; every other event now has its row. `again`: a repeat after an
    /// attempt whose commit reply was lost, so rows of generated ids may exist too: those are this
    /// call's own (a generated id is no one else's), found and counted as inserted.
    pub async fn insert_pending(
        &self,
        rows: &[(&PreparedEvent, &str)],
        again: bool,
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
        let col_refs: Vec<&[&str]> = cols.iter().map(Vec::as_slice).collect();
        if !again && !events.clone().any(|e| e.caller_event_id) {
            // Generated ids cannot have rows yet: a count is enough, no ids to send back.
            let done = self
                .execute("insert event_metadata", &self.insert, &col_refs)
                .await?
                .rows_affected() as usize;
            if done == n {
                return Ok(HashMap::new());
            }
            return Err(PublishError::new(
                Code::Database,
                format!("inserted {done} of {n} event_metadata rows"),
            ));
        }
        let inserted: Vec<String> = self
            .fetch("insert event_metadata", &self.insert_returning, &col_refs)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()
            .map_err(|e| PublishError::database("insert event_metadata", &e))?;
        if inserted.len() == n {
            return Ok(HashMap::new());
        }
        // Only retries get here: look up the caller ids' rows that were already there.
        let inserted: std::collections::HashSet<&str> =
            inserted.iter().map(String::as_str).collect();
        let missing: Vec<&str> = events
            .filter(|e| e.caller_event_id)
            .map(|e| e.event_id.as_str())
            .filter(|id| !inserted.contains(id))
            .collect();
        if missing.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self
            .fetch("read event_metadata", &self.existing, &[&missing])
            .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let text = |i: usize| {
                r.try_get::<String, _>(i)
                    .map_err(|e| PublishError::database("read event_metadata", &e))
            };
            out.insert(
                text(0)?,
                ExistingRow {
                    stream_id: text(1)?,
                    event_type: text(2)?,
                    tenant_id: text(3)?,
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
        let template = if shared_ids {
            &self.patch_locked
        } else {
            &self.patch
        };
        self.execute(
            "update event_metadata.stream_id",
            template,
            &[event_ids, stream_ids],
        )
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
        self.execute(
            "delete event_metadata",
            &self.delete,
            &[event_ids, stream_ids],
        )
        .await
        .map(|r| r.rows_affected())
    }

    /// PENDING rows created between `within_ms` and `older_than_ms` ago, after `after`
    /// (`(created_at in Unix ms, event_id)`, exclusive), oldest first, at most `limit`: the rows
    /// a crashed process may have left without an entry. Read through `directUrl` when given.
    pub async fn pending_rows(
        &self,
        older_than_ms: u64,
        within_ms: u64,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<PendingRow>, PublishError> {
        // No cursor: just before the epoch, so every row comes after it.
        let (after_ms, after_id) = after.unwrap_or((-1, ""));
        let mut after_lit = String::new();
        sql_literal::push_text(&mut after_lit, after_id)?;
        let (older, within) = (
            older_than_ms.min(i64::MAX as u64 / 4),
            within_ms.min(i64::MAX as u64 / 4),
        );
        // Integer milliseconds both ways, so the keyset cursor is exact.
        // A row whose event waits in the outbox (committed, not yet appended) is the relay's, not
        // a crashed publish's: never examined here. The table may not exist (no migrate() since).
        let outbox: Option<String> = self
            .bounded("find pending rows", async {
                sqlx::raw_sql(&format!(
                    "SELECT to_regclass('{}')::text",
                    self.outbox_table_sql.replace('\'', "''")
                ))
                .fetch_one(&self.session)
                .await?
                .try_get(0)
            })
            .await?;
        let not_staged = match outbox {
            Some(_) => format!(
                "AND NOT EXISTS (SELECT 1 FROM {} AS o WHERE o.event_id = m.event_id) ",
                self.outbox_table_sql
            ),
            None => String::new(),
        };
        let sql = format!(
            "SELECT event_id, stream_id, (extract(epoch FROM created_at) * 1000)::int8 AS created_ms FROM {} AS m \
             WHERE status = 'PENDING' {not_staged}\
             AND created_at < (now() AT TIME ZONE 'UTC') - {older}::int8 * INTERVAL '1 millisecond' \
             AND created_at >= (now() AT TIME ZONE 'UTC') - {within}::int8 * INTERVAL '1 millisecond' \
             AND (created_at, event_id) > (TIMESTAMP 'epoch' + ({after_ms})::int8 * INTERVAL '1 millisecond', {after_lit}::text) \
             ORDER BY created_at, event_id LIMIT {limit}",
            self.table_sql
        );
        let rows = self
            .bounded("find pending rows", async {
                sqlx::raw_sql(&sql).fetch_all(&self.session).await
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingRow {
                    event_id: r.try_get(0)?,
                    stream_id: r.try_get(1)?,
                    created_ms: r.try_get(2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| PublishError::database("find pending rows", &e))
    }

    /// Marks these rows FAILED with `last_error` 'never published', if they are still PENDING
    /// with the `stream_id` that was examined.
    pub async fn mark_never_published(
        &self,
        event_ids: &[&str],
        stream_ids: &[&str],
    ) -> Result<u64, PublishError> {
        let sql = self.mark_failed.with_arrays(&[event_ids, stream_ids])?;
        self.bounded("mark rows failed", async {
            sqlx::raw_sql(&sql).execute(&self.session).await
        })
        .await
        .map(|r| r.rows_affected())
    }

    /// Whether Postgres answers now.
    pub async fn ping(&self) -> bool {
        self.bounded("ping", async {
            sqlx::raw_sql("SELECT 1").execute(&self.pool).await
        })
        .await
        .is_ok()
    }

    /// Checks that the metadata table exists, with a hint when it does not.
    pub async fn check_table(&self) -> Result<(), PublishError> {
        let sql = format!("SELECT 1 FROM {} LIMIT 0", self.table_sql);
        self.bounded("check table", async {
            sqlx::raw_sql(&sql).execute(&self.pool).await
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
    /// Runs through `directUrl` when given.
    pub async fn migrate(&self) -> Result<bool, PublishError> {
        if self.table_sql != "\"event_metadata\"" {
            return Err(PublishError::config(
                "migrate() creates the default \"event_metadata\" table only",
            ));
        }
        let exists: Option<String> = self
            .bounded("migrate", async {
                sqlx::raw_sql("SELECT to_regclass('event_metadata')::text")
                    .fetch_one(&self.session)
                    .await?
                    .try_get(0)
            })
            .await?;
        let outbox: Option<String> = self
            .bounded("migrate", async {
                sqlx::raw_sql("SELECT to_regclass('event_outbox')::text")
                    .fetch_one(&self.session)
                    .await?
                    .try_get(0)
            })
            .await?;
        if exists.is_some() && outbox.is_some() {
            return Ok(false);
        }
        // One multi-statement simple query runs as one transaction (so on one server connection,
        // even through a transaction-mode pooler): the advisory lock serialises concurrent
        // migrations (parallel test workers), the DO blocks re-check under it. The outbox table
        // is additive: created beside an existing event_metadata too.
        let sql = format!(
            "SELECT pg_advisory_xact_lock(7243001); \
             DO $migration$ BEGIN IF to_regclass('event_metadata') IS NULL THEN {MIGRATION_SQL} END IF; END $migration$; \
             DO $outbox$ BEGIN IF to_regclass('event_outbox') IS NULL THEN {OUTBOX_MIGRATION_SQL} END IF; END $outbox$;"
        );
        self.bounded("migrate", async {
            sqlx::raw_sql(&sql).execute(&self.session).await
        })
        .await?;
        Ok(exists.is_none())
    }

    /// Closes the pool after its connections are returned.
    pub async fn close(&self) {
        self.warm.release();
        self.pool.close().await;
        self.session.close().await;
    }

    /// Runs a publishing statement on the publishing pool, as connect decided: bound to a named
    /// prepared statement, or as a simple query with the arrays inline.
    async fn execute(
        &self,
        what: &str,
        t: &Template,
        columns: &[&[&str]],
    ) -> Result<PgQueryResult, PublishError> {
        if self.prepared && t.prepare {
            // Built outside the future: a closure over borrowed columns inside it would make
            // the future's Send bound higher-ranked (which napi's spawn cannot prove).
            let q = t.prepared_query(columns);
            self.bounded(what, self.execute_warm(q)).await
        } else {
            let sql = t.with_arrays(columns)?;
            self.bounded(what, self.execute_warm(sqlx::raw_sql(&sql)))
                .await
        }
    }

    /// As [`Self::execute`], for a statement that returns rows.
    async fn fetch(
        &self,
        what: &str,
        t: &Template,
        columns: &[&[&str]],
    ) -> Result<Vec<PgRow>, PublishError> {
        if self.prepared && t.prepare {
            let q = t.prepared_query(columns);
            self.bounded(what, self.fetch_warm(q)).await
        } else {
            let sql = t.with_arrays(columns)?;
            self.bounded(what, self.fetch_warm(sqlx::raw_sql(&sql)))
                .await
        }
    }

    /// Runs a statement on the connection the last one ran on when it is free (see
    /// [`WarmConnection`]), else on one from the pool.
    async fn execute_warm<'q>(
        &self,
        statement: impl Execute<'q, Postgres> + 'q,
    ) -> Result<PgQueryResult, sqlx::Error> {
        let mut conn = self.warm.checkout(&self.pool).await?;
        let result = conn.execute(statement).await;
        self.warm.checkin(conn, result.is_ok());
        result
    }

    /// As [`Self::execute_warm`], for a statement that returns rows.
    async fn fetch_warm<'q>(
        &self,
        statement: impl Execute<'q, Postgres> + 'q,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let mut conn = self.warm.checkout(&self.pool).await?;
        let result = conn.fetch_all(statement).await;
        self.warm.checkin(conn, result.is_ok());
        result
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
                            .store(crate::clock::now_ms(), Ordering::Relaxed);
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
