// Typings of @hyvve/event-publisher/testing: the in-memory publisher for unit tests.
import type { EventPublisher, ErrorCode, PublisherOptions } from '../index.js';

/** One published event: the stream entry as Redis would hold it and the row as event_metadata would. */
export interface PublishedEvent {
  /** The stream key (the `stream` option, default `'hyvve:events:main'`). */
  stream: string;
  /** The entry ID, `<ms>-<seq>`, increasing. */
  streamId: string;
  /** The entry's fields as XRANGE returns them: `['event', envelope]`. */
  fields: ['event', string];
  /** The envelope JSON, byte for byte what the real publisher would append. */
  envelope: string;
  /** The envelope parsed. */
  event: {
    id: string;
    type: string;
    source: string;
    timestamp: string;
    correlationId: string;
    tenantId: string;
    userId: string;
    version: '1.0';
    data: Record<string, unknown>;
  };
  /** The event_metadata row, as `pg` would return it. */
  row: {
    id: string;
    event_id: string;
    stream_id: string;
    type: string;
    source: string;
    tenant_id: string;
    correlation_id: string;
    status: 'PENDING';
    attempts: 0;
    last_error: null;
    processed_at: null;
    created_at: Date;
  };
}

/** What `failNext` takes besides the code. */
export interface FailNextOptions {
  /** The ambiguous case: the events are written and the error has `outcomeUnknown === true`. Default false (nothing written). */
  outcomeUnknown?: boolean;
  /** The error's message. Default `injected by failNext(<code>)`. */
  message?: string;
}

/**
 * The in-memory publisher: `publish`, `publishBatch`, `health`, `reconcile` and `close` as on
 * {@link EventPublisher}, with the same validation, errors and envelope bytes.
 */
export declare class TestPublisher implements Pick<EventPublisher, 'publish' | 'publishBatch' | 'health' | 'reconcile' | 'close'> {
  private constructor();
  publish: EventPublisher['publish'];
  publishBatch: EventPublisher['publishBatch'];
  health: EventPublisher['health'];
  reconcile: EventPublisher['reconcile'];
  close: EventPublisher['close'];
  /** What was published, in stream order (copies: changing them changes nothing). */
  published(): PublishedEvent[];
  /** Forgets everything published and the remembered eventIds. */
  clear(): void;
  /** The next publish that passes validation rejects with `code` (calls queue up, one per publish). */
  failNext(code: ErrorCode | (string & {}), options?: FailNextOptions): this;
  /** Every later publish waits `ms` before it is written; 0 restores immediate writes. */
  delay(ms: number): this;
}

/** An in-memory publisher; `options` as for `EventPublisher.connect` (`source`, `stream`, `maxPayloadBytes` matter; store URLs are unused). Throws `ERR_CONFIG` on bad options. */
export declare function createTestPublisher(options?: PublisherOptions): TestPublisher;
