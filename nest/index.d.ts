// Typings of @hyvve/event-publisher/nest: the NestJS module and injectable service.
import type { DynamicModule, InjectionToken, ModuleMetadata, OnModuleDestroy, OnModuleInit, OptionalFactoryDependency, Type } from '@nestjs/common';
import type { BatchEvent, DispatchResult, Health, OutboxDatabase, PayloadOf, PublishContext, PublisherOptions, StagedEvents, TransactionEvents, TransactionOptions } from '../index.js';

/**
 * Options of {@link EventPublisherModule.forRoot}: the publisher's options (each defaults from the
 * environment) plus Nest-specific ones. Log records go to Nest's `Logger` (context
 * `EventPublisherService`) unless a `logger` function is given.
 */
export interface EventPublisherModuleOptions extends PublisherOptions {
  /** Register the module globally, so feature modules can inject `EventPublisherService` without importing it. */
  isGlobal?: boolean;
  /**
   * When a store is unreachable at bootstrap, start anyway instead of failing it: publishes reject
   * with an `EventPublisherError` (the connection error's code) until a background reconnect succeeds.
   * A configuration error (`ERR_CONFIG`) still fails the bootstrap. Default `false`.
   */
  startDegraded?: boolean;
  /** First delay between background reconnects in degraded mode, in ms (doubles up to `maxReconnectIntervalMs`). Default 1000. */
  reconnectIntervalMs?: number;
  /** Longest delay between background reconnects, in ms. Default 30000. */
  maxReconnectIntervalMs?: number;
}

/** A class that makes the module options (`forRootAsync({ useClass })` / `({ useExisting })`). */
export interface EventPublisherOptionsFactory {
  createEventPublisherOptions(): Omit<EventPublisherModuleOptions, 'isGlobal'> | Promise<Omit<EventPublisherModuleOptions, 'isGlobal'>>;
}

/**
 * Options of {@link EventPublisherModule.forRootAsync} (Nest's `ConfigurableModuleAsyncOptions`):
 * exactly one of `useFactory`, `useClass` or `useExisting`.
 */
export interface EventPublisherModuleAsyncOptions {
  /** Modules exporting the providers `inject` names (e.g. `ConfigModule`), or `useExisting`. */
  imports?: ModuleMetadata['imports'];
  /** Providers passed to `useFactory`, in order. */
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  /** Makes the options; `isGlobal` is read from these async options, not from the factory's result. */
  useFactory?: (...args: any[]) => Omit<EventPublisherModuleOptions, 'isGlobal'> | Promise<Omit<EventPublisherModuleOptions, 'isGlobal'>>;
  /** A class the module instantiates (with its own dependencies) and asks for the options. */
  useClass?: Type<EventPublisherOptionsFactory>;
  /** A provider of `EventPublisherOptionsFactory` that exists elsewhere (exported by a module in `imports`). */
  useExisting?: Type<EventPublisherOptionsFactory>;
  /** Register the module globally. */
  isGlobal?: boolean;
}

/** Options of {@link EventPublisherModule.forTest}: the publisher options that shape events (`source`, `stream`, `maxPayloadBytes`), and `isGlobal`. */
export interface EventPublisherTestModuleOptions extends PublisherOptions {
  /** Register the module globally. */
  isGlobal?: boolean;
}

/** What {@link EventPublisherService.health} reports: the stores' health and the service's state. */
export interface EventPublisherHealth extends Health {
  /** `ready` when connected; `degraded` while reconnecting in the background (stores then report `false`). */
  state: 'idle' | 'connecting' | 'ready' | 'degraded' | 'closed';
}

/** DI token of the module options (what `forRoot`/`forRootAsync` register). */
export declare const EVENT_PUBLISHER_OPTIONS: unique symbol;

/**
 * The platform's `EventPublisherService`, injectable under that class (the DI token). Connects on
 * module init, closes on module destroy; logs through Nest's `Logger` (context `EventPublisherService`).
 */
export declare class EventPublisherService implements OnModuleInit, OnModuleDestroy {
  /** Without options (e.g. listed directly in a module's `providers`) everything comes from the environment. */
  constructor(options?: EventPublisherModuleOptions);
  /** Publishes one event; resolves to its event id (not the stream id) once the row and the entry are written. */
  publish<T extends string>(type: T, data: PayloadOf<T>, context: PublishContext): Promise<string>;
  /** Publishes events atomically (all or none); resolves to their event ids in input order. */
  publishBatch(events: ReadonlyArray<BatchEvent>): Promise<string[]>;
  /** Whether each store answers now, the circuit breaker's state, and the service's state. */
  health(): Promise<EventPublisherHealth>;
  /** Connects to both stores; rejects with an `EventPublisherError` (failing the bootstrap) unless `startDegraded`. */
  onModuleInit(): Promise<void>;
  /** Waits for in-flight publishes, then closes the connections. */
  onModuleDestroy(): Promise<void>;
}

/** What {@link EventPublisherHealthIndicator.isHealthy} returns: terminus' `HealthIndicatorResult` shape. */
export type EventPublisherHealthResult<Key extends string = 'eventPublisher'> = {
  [K in Key]: EventPublisherHealth & { status: 'up' | 'down'; error?: string };
};

/**
 * A `@nestjs/terminus` health indicator (terminus is an optional peer): up when Redis and Postgres
 * answer, the circuit is not open and the service is ready; reports `redis`, `database`, `circuit`
 * and `state` either way. Provided and exported by {@link EventPublisherModule}.
 */
export declare class EventPublisherHealthIndicator {
  constructor(service: EventPublisherService);
  /** `{ [key]: { status: 'up' | 'down', redis, database, circuit, state } }` (key default `'eventPublisher'`). */
  isHealthy<Key extends string = 'eventPublisher'>(key?: Key): Promise<EventPublisherHealthResult<Key>>;
}

/** Options of {@link EventOutbox.publish} and {@link EventOutbox.withTransaction}. */
export interface EventOutboxHostOptions {
  /** `@nestjs-cls/transactional`'s connection name (several `ClsPluginTransactional`s). */
  connectionName?: string;
  /** Drizzle only: drizzle-orm's `sql` tag (the adapter builds the statement with it). */
  sql?: (strings: TemplateStringsArray, ...values: any[]) => any;
}

/**
 * The transactional outbox (docs/outbox.md), provided beside {@link EventPublisherService}: events
 * that commit with the business change they announce, appended after the commit.
 */
export declare class EventOutbox {
  constructor(service: EventPublisherService);
  /** Runs `fn` in a transaction of `db` (PrismaClient, pg Pool, Kysely, TypeORM DataSource); its events commit with it. */
  transaction<R, Tx = any>(db: OutboxDatabase, fn: (events: TransactionEvents<Tx>) => Promise<R>, options?: TransactionOptions): Promise<R>;
  /** `EventPublisher.stage` (throws `ERR_CLOSED` before the module initialised). */
  stage<T extends string>(type: T, data: PayloadOf<T>, context: PublishContext): StagedEvents;
  /** `EventPublisher.stageBatch`. */
  stageBatch(events: ReadonlyArray<BatchEvent>): StagedEvents;
  /** `EventPublisher.dispatch`. */
  dispatch(staged: StagedEvents | readonly StagedEvents[]): Promise<DispatchResult>;
  /**
   * With `@nestjs-cls/transactional`: stages the event on `TransactionHost.tx` of the active
   * `@Transactional()` transaction (rejects `ERR_CONFIG` outside one); resolves to its id.
   */
  publish<T extends string>(type: T, data: PayloadOf<T>, context: PublishContext, options?: EventOutboxHostOptions): Promise<string>;
  /** {@link publish} for several events, appended together. */
  publishBatch(events: ReadonlyArray<BatchEvent>, options?: EventOutboxHostOptions): Promise<string[]>;
  /** `TransactionHost.withTransaction(fn)`, then dispatches what {@link publish} staged in it, after the commit. */
  withTransaction<R>(fn: () => Promise<R>, options?: EventOutboxHostOptions & { dispatchWaitMs?: number }): Promise<R>;
}

/** The NestJS module providing {@link EventPublisherService}, {@link EventPublisherHealthIndicator} and {@link EventOutbox}. */
export declare class EventPublisherModule {
  /** Registers the service with these options (each defaults from the environment: `REDIS_URL`/`REDIS_HOST`…, `DATABASE_URL`). */
  static forRoot(options?: EventPublisherModuleOptions): DynamicModule;
  /** Registers the service with options from `useFactory` (e.g. from `ConfigService`), `useClass` or `useExisting`. */
  static forRootAsync(options: EventPublisherModuleAsyncOptions): DynamicModule;
  /**
   * For unit tests: the service backed by the in-memory publisher of `@hyvve/event-publisher/testing`
   * (no stores), also provided under its class `TestPublisher` (`moduleRef.get(TestPublisher).published()`).
   */
  static forTest(options?: EventPublisherTestModuleOptions): DynamicModule;
}
