// Typings of @hyvve/event-publisher. The event type list and payload interfaces come from
// lib/event-types.d.ts (generated from the platform's data by scripts/gen-event-types.js).
import type { EventTypes as EventTypesMap, EventType, PayloadOf } from './lib/event-types';
export type { EventType, PayloadOf, EventPayloadMap } from './lib/event-types';
export * from './lib/event-payloads';

/** The platform's event types by constant name (all 71). */
export declare const EventTypes: EventTypesMap;

/** Who publishes, for whom. */
export interface PublishContext {
  /** The tenant (workspace) the event belongs to. Required, non-empty. */
  tenantId: string;
  /** The acting user, or `'system'`. Required, non-empty. */
  userId: string;
  /** Ties related events together; a fresh CUID2 when missing or empty. */
  correlationId?: string;
  /** The publishing module; the publisher's `source` option (default `'platform'`) when missing or empty. */
  source?: string;
  /** A caller-chosen event id (URL-safe, at most 128 chars). Retrying a publish with the same id never duplicates the event. */
  eventId?: string;
}

/** One event of a batch. */
export interface BatchEvent<T extends string = string> {
  type: T;
  data: PayloadOf<T>;
  context: PublishContext;
}

/** A structured log record. */
export interface LogEntry {
  level: 'error' | 'warn' | 'info' | 'debug' | 'trace';
  /** ISO 8601 time of the record. */
  time: string;
  msg: string;
  eventId?: string;
  type?: string;
  correlationId?: string;
  tenantId?: string;
  streamId?: string;
  /** Number of events (batch records). */
  count?: number;
  /** Event ids of a batch, in input order. */
  eventIds?: string[];
  /** Error code (failure records). */
  code?: string;
  /** Error message with its cause (failure records). */
  error?: string;
}

/**
 * Log levels, from silent to verbose, or comma-separated `target=level` directives such as
 * `'info,sqlx=debug'`: a bare level applies to this package's own records, the drivers' records
 * (`sqlx`, `sqlx::query`) are off unless named. `'debug'` adds a record per group write with its
 * duration, `'trace'` one per stage.
 */
export type LogLevel = 'off' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | (string & {});

/** Options of {@link EventPublisher.connect}. Every field is optional. */
export interface PublisherOptions {
  /** `redis://` or `rediss://` URL. Default: `REDIS_URL`, else `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`, else `redis://127.0.0.1:6379`. */
  redisUrl?: string;
  /** PEM file of a CA to trust for `rediss://` (self-signed servers). */
  redisCaFile?: string;
  /**
   * Seed nodes of a Redis Cluster (`host:port` or `redis://`/`rediss://` URLs; `host:port` takes
   * the scheme and password of `redisUrl`). Not needed when `redisUrl` names any cluster node: a
   * cluster is detected at connect (`INFO cluster`). Default: `REDIS_CLUSTER_NODES` (comma-separated).
   */
  redisClusterNodes?: string[];
  /**
   * A primary managed by Redis Sentinel (ioredis's shape): the publisher asks the sentinels for the
   * current primary and asks again after a connection error or a `READONLY` reply (a failover).
   * Also as a URL: `redis+sentinel://[:password@]host:port[,host:port]/<name>[?sentinel_password=…]`.
   */
  redisSentinel?: {
    /** `host:port` of each sentinel. */
    sentinels: string[];
    /** The monitored primary's name (`sentinel monitor <name> …`). */
    name: string;
    /** Password of the primary and its replicas. */
    password?: string;
    /** Password of the sentinels. */
    sentinelPassword?: string;
  };
  /**
   * Replicas that must hold each append before a publish resolves (`WAIT n` on the stream's node
   * after the append). Fewer within `timeoutMs` rejects with `ERR_NOT_REPLICATED` (outcome unknown:
   * retry with the same `eventId`). Default: `EVENT_PUBLISHER_REPLICA_ACKS`, else 0 (no wait: a
   * failover may then lose entries the primary had acknowledged).
   */
  replicaAcks?: number;
  /** Postgres URL for publishing, with Prisma's parameters as Prisma means them (docs/configuration.md, "Database URL parameters"); may point at PgBouncer in any pool mode. Default: `DATABASE_URL`. */
  databaseUrl?: string;
  /** Postgres URL without a pooler, Prisma's `directUrl`: `migrate()` and `reconcile()` use it when given. Default: `DIRECT_URL`. */
  directUrl?: string;
  /** Stream key. Default `'hyvve:events:main'`. */
  stream?: string;
  /** Trimming on every write: by age (default 30 days, `MINID ~`) or by length (`MAXLEN ~`). */
  retention?: { maxAgeMs?: number; maxLen?: number };
  /** Default `source`. Default `'platform'`. */
  source?: string;
  /** Metadata table, optionally `schema.table`. Default `'event_metadata'`. */
  metadataTable?: string;
  /** Largest accepted `JSON.stringify(data)` in bytes. Default 1 MiB. */
  maxPayloadBytes?: number;
  /** Every publish settles within this many ms. Default 5000. */
  timeoutMs?: number;
  /** How long a caller-supplied `eventId` is remembered for deduplication, in ms. Default 600000 (10 minutes). */
  dedupWindowMs?: number;
  /** Most events waiting to be written; beyond it publishes reject with `ERR_OVERLOADED`. Default 10000. */
  maxInFlight?: number;
  /**
   * Most bytes the publisher holds for admitted, unsettled events: each event's envelope JSON
   * (which contains `JSON.stringify(data)`) and trace context, plus 768 bytes of envelope text and
   * bookkeeping; until an event is prepared its `data` and fields count twice (the copy handed over
   * by JavaScript beside the envelope). Beyond it a publish rejects at once with `ERR_OVERLOADED`
   * (definite: nothing of that call written); one call larger than the whole budget rejects with
   * `ERR_PAYLOAD_TOO_LARGE`. Default 134217728 (128 MiB): under a stalled Redis or Postgres the
   * process then grows by at most this plus a constant (measured ~50 MB: the copies of the
   * groups being written, V8's garbage; docs/overload.md), which a 512 MB container running an
   * API process can give. A publishBatch counts ~1.7 KiB per platform-size event (~600 bytes of
   * JSON) at admission, so at the default a batch of up to ~75,000 such events is admitted; a
   * larger one rejects `ERR_PAYLOAD_TOO_LARGE` (split it or raise this). `health()` and `stats()`
   * report `inFlightBytes`.
   */
  maxInFlightBytes?: number;
  /** Consecutive infrastructure failures that open the circuit breaker; 0 disables it. Default 5. */
  circuitThreshold?: number;
  /** How long an open circuit rejects before one trial publish, in ms. Default 1000. */
  circuitCooldownMs?: number;
  /** Receives structured log records instead of stderr. Errors it throws are ignored. */
  logger?: (entry: LogEntry) => void;
  /** A level or directives (see {@link LogLevel}). Default: env `EVENT_PUBLISHER_LOG`, else `'info'`. */
  logLevel?: LogLevel;
  /**
   * How entry IDs are chosen. `'reserved'` (default): taken from the Redis clock before the row
   * is written, so the row is inserted once with its final `stream_id` (Redis still checks each
   * ID; one it refuses falls back to `'server'` for that event). `'server'`: `XADD *` after the
   * row, then a second statement sets `stream_id`, like the platform's own publisher. See docs/guarantees.md, "What one publish writes".
   */
  entryIds?: 'reserved' | 'server';
  /**
   * With `@opentelemetry/api` installed and a span active, also write the W3C `traceparent` (and
   * `tracestate`, if any) of the publish's `send <stream>` span as a second field pair after
   * `event` in each stream entry, so a consumer can continue the trace. Default `false`: the
   * entry has exactly one field pair (docs/wire-contract.md). `fields[1]` is the event either way.
   */
  traceContext?: boolean;
  /**
   * Run the outbox relay in this publisher (docs/outbox.md): it appends events that were
   * committed through `stage()` and not dispatched (a process killed after its commit, Redis
   * down at the time). Default `true`; shared safely by every replica (`FOR UPDATE SKIP LOCKED`).
   */
  relay?: boolean;
  /** Time between the relay's passes, ms. Default 500. */
  relayIntervalMs?: number;
  /** How old (since staging) an undelivered outbox row must be before the relay takes it, ms. Default 1000. */
  relayGraceMs?: number;
}

/** What {@link EventPublisher.health} reports. */
export interface Health {
  redis: boolean;
  database: boolean;
  circuit: 'closed' | 'open' | 'half-open';
  /** Bytes held for admitted, unsettled events (counted against `maxInFlightBytes`). */
  inFlightBytes: number;
  /** The outbox of this publisher's stream: events committed and not yet appended, and the age of the oldest (ms). */
  outbox: { pending: number; oldestAgeMs: number };
}

/** What {@link EventPublisher.stage} returns: the ids, and the statement to run on the caller's transaction. */
export interface StagedEvents {
  /** The staged events' ids, in input order. */
  readonly eventIds: readonly string[];
  /** One SQL statement with one text parameter; run it with an adapter of `@hyvve/event-publisher/outbox`. */
  readonly statement: { readonly text: string; readonly values: readonly [string] };
}

/** What {@link EventPublisher.dispatch} did. */
export interface DispatchResult {
  /** Events appended by this call. */
  appended: number;
  /** Events it could not append (a store failed): they wait in the outbox for the relay. */
  deferred: number;
}

/**
 * What a {@link EventPublisher.transaction} callback publishes through: staged in its transaction.
 * `Tx` (the type of `tx`) is `any` unless given: `transaction<Item, PoolClient>(pool, …)`.
 */
export interface TransactionEvents<Tx> {
  /** The transaction: Prisma's interactive client, a pg `PoolClient`, a Kysely `Transaction`, a TypeORM `EntityManager`. */
  readonly tx: Tx;
  /** Stages one event; returns its id at once. Appended after the commit; gone if the transaction rolls back. */
  publish<T extends string>(type: T, data: PayloadOf<T>, context: PublishContext): string;
  /** Stages events that are appended together, in order; returns their ids. */
  publishBatch<const T extends readonly string[]>(events: { readonly [K in keyof T]: BatchEvent<T[K]> }): string[];
}

/** A database `transaction()` can open a transaction on (recognised by shape; no dependency on the libraries). */
export type OutboxDatabase =
  | { $transaction(...args: any[]): any }
  | { connect(...args: any[]): any; query(...args: any[]): any }
  | { transaction(...args: any[]): any; selectFrom(...args: any[]): any }
  | { transaction(...args: any[]): any; createQueryRunner(...args: any[]): any };

/** Options of {@link EventPublisher.transaction}: Prisma's `$transaction` options, and how long to wait for the append. */
export interface TransactionOptions {
  /** After the commit, wait at most this long for the events' append before resolving (the relay finishes what is left). Default 250. */
  dispatchWaitMs?: number;
  /** Prisma only: `$transaction`'s `maxWait`. */
  maxWait?: number;
  /** Prisma only: `$transaction`'s `timeout`. */
  timeout?: number;
  /** Prisma only: `$transaction`'s `isolationLevel`. */
  isolationLevel?: string;
}

/** What {@link EventPublisher.reconcile} did. */
export interface ReconcileResult {
  /** PENDING rows examined: created within `withinMs`, older than `olderThanMs`. */
  examined: number;
  /** Rows whose entry was found in the stream: their stream_id was set. */
  repaired: number;
  /** Rows with no entry: marked FAILED with last_error 'never published'. */
  failed: number;
}

/** A histogram's values: `counts[i]` counts values up to `bounds[i]`; the last count is above every bound. */
export interface HistogramStats {
  bounds: number[];
  /** Per bucket (not cumulative), one more than `bounds`. */
  counts: number[];
  count: number;
  sum: number;
}

/** What {@link EventPublisher.stats} reports (the same values as {@link EventPublisher.metrics}). */
export interface PublisherStats {
  /** `messaging.destination.name`. */
  stream: string;
  /** Messages written: `messaging.client.sent.messages` without `error.type`. */
  sentMessages: number;
  /** Messages that failed, by code (`error.type`); codes with none are left out. */
  failedMessages: { code: ErrorCode; count: number }[];
  /** `messaging.client.operation.duration` (seconds) of `publish` calls that were admitted. */
  publishDuration: HistogramStats;
  /** The same for `publishBatch`. */
  publishBatchDuration: HistogramStats;
  /** Events per group write. */
  groupEvents: HistogramStats;
  /** Each stage of a group write: its durations (seconds) and retries. */
  stages: { stage: 'insert_rows' | 'wait_append_order' | 'append' | 'update_stream_id' | 'undo'; duration: HistogramStats; retries: number }[];
  /** Events whose rows were deleted after a failed write. */
  undoneEvents: number;
  /** Entries that did not take their reserved ID (their row got a second statement). */
  notReservedEntries: number;
  /** Events admitted and not yet settled. */
  inFlightEvents: number;
  /** Bytes held for them, counted against `maxInFlightBytes` (Prometheus: `event_publisher_in_flight_bytes`). */
  inFlightBytes: number;
  /** Circuit breaker: 0 closed, 1 half-open, 2 open. */
  circuitState: 0 | 1 | 2;
  /** Log records dropped because the logger's queue was full. */
  droppedLogRecords: number;
  /** The transactional outbox (docs/outbox.md). */
  outbox: {
    /** Events of this stream committed to the outbox and not yet appended, at the relay's last look. */
    backlog: number;
    /** Age of the oldest of them then (ms since staging). */
    oldestAgeMs: number;
    /** Events appended by `dispatch()`. */
    dispatched: number;
    /** Events appended by the relay (recovered). */
    recovered: number;
    /** Events `dispatch()` left to the relay. */
    deferred: number;
    /** Events found already appended when delivered again (a lost acknowledgement). */
    alreadyAppended: number;
    /** Seconds from staging to the stream entry, by path. */
    stageToEntrySeconds: { dispatch: HistogramStats; relay: HistogramStats };
  };
}

/** Stable error codes. */
export type ErrorCode =
  | 'ERR_INVALID_EVENT'
  | 'ERR_PAYLOAD_TOO_LARGE'
  | 'ERR_REDIS'
  | 'ERR_DATABASE'
  | 'ERR_TIMEOUT'
  | 'ERR_CLOSED'
  | 'ERR_CONFIG'
  | 'ERR_CIRCUIT_OPEN'
  | 'ERR_OVERLOADED'
  | 'ERR_EVENT_ID_CONFLICT'
  | 'ERR_NOT_REPLICATED';

/** Every rejection of this package is one of these. */
export declare class EventPublisherError extends Error {
  /** Stable code to branch on. */
  readonly code: ErrorCode;
  /**
   * `false`: no entry and no row exist for the event ids this rejection is about, whichever
   * attempt (in this process) wrote them; `true`: they may exist, so retry with the same
   * `eventId` (docs/overload.md).
   */
  outcomeUnknown: boolean;
  /**
   * `publishBatch` of more than one part (over 500 events or 2 MiB of events) rejected after
   * its first parts were written: their ids, a prefix of the batch in input order, each event
   * complete as if resolved; the rejection (`code`, `outcomeUnknown`) is about the other events.
   * `[]` otherwise.
   */
  publishedIds: string[];
  constructor(code: ErrorCode, message: string);
}

/** Publishes events to the Redis stream and the event_metadata table. */
export declare class EventPublisher {
  private constructor();
  /** Connects to both stores and verifies them, or rejects with a clear `EventPublisherError`. */
  static connect(options?: PublisherOptions): Promise<EventPublisher>;
  /** Creates the `event_metadata` table (Prisma's DDL) if it does not exist. Resolves to whether it created it. */
  static migrate(options?: Pick<PublisherOptions, 'databaseUrl' | 'directUrl' | 'timeoutMs'>): Promise<boolean>;
  /** Publishes one event; resolves to its event id once the row and the entry are both written. */
  publish<T extends string>(type: T, data: PayloadOf<T>, context: PublishContext): Promise<string>;
  /**
   * Publishes events; resolves to their ids in input order, `[]` for an empty array. Each event's
   * `data` is checked against its own `type`. Up to 500 events (and 2 MiB of events) are one
   * atomic part: all or none. A larger batch is written as consecutive atomic parts in input
   * order; if one fails, the parts before it stay written (`err.publishedIds`) and the ones after
   * it are not written (docs/overload.md).
   */
  publishBatch<const T extends readonly string[]>(
    events: { readonly [K in keyof T]: BatchEvent<T[K]> },
  ): Promise<string[]>;
  /**
   * Prepares one event exactly as `publish` would (same checks, ids, errors, envelope bytes),
   * synchronously and without I/O, for the caller's own transaction: run `statement` on it
   * (`@hyvve/event-publisher/outbox`), commit, then {@link dispatch} it (or let the relay).
   * Throws `ERR_INVALID_EVENT` / `ERR_PAYLOAD_TOO_LARGE` like `publish` rejects.
   */
  stage<T extends string>(type: T, data: PayloadOf<T>, context: PublishContext): StagedEvents;
  /** {@link stage} for several events, prepared as `publishBatch` prepares them; appended together, in order. */
  stageBatch<const T extends readonly string[]>(
    events: { readonly [K in keyof T]: BatchEvent<T[K]> },
  ): StagedEvents;
  /**
   * After the commit: appends the committed, not yet delivered ones of these staged events now.
   * Never rejects for a store failure (`deferred` events wait for the relay); before the commit
   * or after a rollback it appends nothing.
   */
  dispatch(staged: StagedEvents | readonly StagedEvents[]): Promise<DispatchResult>;
  /**
   * Runs `fn` in a transaction of `db` (a PrismaClient, a pg Pool, a Kysely instance or a TypeORM
   * DataSource); what `fn` publishes through `events` commits with it and is appended after the
   * commit. Resolves to `fn`'s result once committed.
   */
  transaction<R, Tx = any>(db: OutboxDatabase, fn: (events: TransactionEvents<Tx>) => Promise<R>, options?: TransactionOptions): Promise<R>;
  /** Whether each store answers now, the circuit breaker's state, and the outbox's backlog. */
  health(): Promise<Health>;
  /**
   * Settles rows a crashed process may have left without an entry (docs/guarantees.md, guarantee 9): PENDING rows
   * created between `withinMs` (default 24 h) and `olderThanMs` (default 60 s) ago whose
   * `stream_id` does not hold their entry.
   */
  reconcile(options?: { olderThanMs?: number; withinMs?: number }): Promise<ReconcileResult>;
  /**
   * The publisher's metrics in the Prometheus text format (`messaging_client_sent_messages_total`,
   * `messaging_client_operation_duration_seconds_bucket`, …; see docs/observability.md).
   */
  metrics(): Promise<string>;
  /** The publisher's metrics now, as an object. */
  stats(): PublisherStats;
  /** Waits for in-flight publishes, then closes connections. Later calls reject with `ERR_CLOSED`. */
  close(): Promise<void>;
}
