import { Inject, Injectable, Module, OnApplicationShutdown, type DynamicModule } from '@nestjs/common';
import { Pool } from 'pg';

/** DI token of the approvals' own Postgres pool (the platform uses Prisma; `pg` keeps the example small). */
export const PG_POOL = Symbol('PG_POOL');

/** The example's own table; the test setup creates it (`ensureApprovalItemsTable`). */
export const APPROVAL_ITEMS_DDL = `
CREATE TABLE IF NOT EXISTS approval_items (
  id               TEXT PRIMARY KEY,
  workspace_id     TEXT NOT NULL,
  type             TEXT NOT NULL,
  title            TEXT NOT NULL,
  status           TEXT NOT NULL,
  priority         TEXT NOT NULL DEFAULT 'medium',
  confidence_score INTEGER NOT NULL,
  recommendation   TEXT NOT NULL,
  assigned_to_id   TEXT,
  requested_by     TEXT NOT NULL,
  due_at           TIMESTAMPTZ NOT NULL,
  source_module    TEXT,
  source_id        TEXT,
  escalated_at     TIMESTAMPTZ,
  escalated_to_id  TEXT,
  resolved_by_id   TEXT,
  resolved_at      TIMESTAMPTZ,
  resolution_notes TEXT,
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
)`;

/** A row of `approval_items` as `pg` returns it (timestamps are `Date`s). */
export interface ApprovalItemRow {
  id: string;
  workspace_id: string;
  type: string;
  title: string;
  status: 'pending' | 'auto_approved' | 'approved' | 'rejected' | 'cancelled';
  priority: 'low' | 'medium' | 'high' | 'urgent';
  confidence_score: number;
  recommendation: 'approve' | 'review' | 'full_review';
  assigned_to_id: string | null;
  requested_by: string;
  due_at: Date;
  source_module: string | null;
  source_id: string | null;
  escalated_at: Date | null;
  escalated_to_id: string | null;
  resolved_by_id: string | null;
  resolved_at: Date | null;
  resolution_notes: string | null;
  created_at: Date;
}

/** Creates `approval_items` if missing (safe when several processes race to do it). */
export async function ensureApprovalItemsTable(pool: Pool): Promise<void> {
  try {
    await pool.query(APPROVAL_ITEMS_DDL);
  } catch (err) {
    // Two concurrent CREATE TABLE IF NOT EXISTS can collide on the catalog: the table exists then.
    const code = (err as { code?: string }).code;
    if (code !== '23505' && code !== '42P07') throw err;
  }
}

@Injectable()
class PoolCloser implements OnApplicationShutdown {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end();
  }
}

@Module({})
export class DatabaseModule {
  /** A global `PG_POOL` on `databaseUrl` (default `DATABASE_URL`), ended on shutdown. */
  static forRoot(databaseUrl: string | undefined = process.env.DATABASE_URL): DynamicModule {
    return {
      module: DatabaseModule,
      global: true,
      providers: [{ provide: PG_POOL, useFactory: () => new Pool({ connectionString: databaseUrl, max: 4 }) }, PoolCloser],
      exports: [PG_POOL],
    };
  }
}
