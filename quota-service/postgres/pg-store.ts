// The quota service's store in PostgreSQL, shared by several replicas: a bounded pool, the schema migrated
// at open, a readiness ping, and transactions that later code groups a report's sequence check and its
// consumption in (retried when PostgreSQL aborts one to keep concurrent ones serialisable or deadlock-free).
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { QuotaRecords, QuotaStore } from '../store-api.js';
import { migrate } from './migrations.js';
import { PgQuotaRecords, type Queryable } from './pg-records.js';
import { storeUnavailable } from './store-unavailable.js';

export interface PgStoreOptions {
  /** Connections per replica; default 10. */
  maxConnections?: number;
  /** Longest a statement may run (ms), enforced by the server; default 5000. */
  statementTimeoutMs?: number;
  /** Longest a connection may be waited for, new or from the pool (ms); default 5000. */
  connectTimeoutMs?: number;
  /** Errors of idle connections (the server restarted, the network broke); the pool replaces them. */
  onIdleError?: (err: Error) => void;
}

export type Isolation = 'read committed' | 'repeatable read' | 'serializable';

const BEGIN: Record<Isolation, string> = {
  'read committed': 'BEGIN ISOLATION LEVEL READ COMMITTED',
  'repeatable read': 'BEGIN ISOLATION LEVEL REPEATABLE READ',
  serializable: 'BEGIN ISOLATION LEVEL SERIALIZABLE',
};

/** serialization_failure and deadlock_detected: PostgreSQL aborted the transaction, which may simply run again. */
const RETRYABLE = new Set(['40001', '40P01']);
const TRANSACTION_ATTEMPTS = 5;

export class PgQuotaStore extends PgQuotaRecords implements QuotaStore {
  private constructor(private readonly pool: pg.Pool) {
    super(pool, (fn) => this.inTransaction('read committed', fn));
  }

  /** Connects to `url` (postgres://…) and migrates the schema; rejects when either fails. */
  static async open(url: string, opts: PgStoreOptions = {}): Promise<PgQuotaStore> {
    const pool = new pg.Pool({
      connectionString: url,
      max: opts.maxConnections ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      statement_timeout: opts.statementTimeoutMs ?? 5000,
      // A replica that stalls (or dies unseen) inside a transaction must not hold its row locks for long.
      idle_in_transaction_session_timeout: 10_000,
      application_name: 'llmgw-quota',
      types: { getTypeParser },
    });
    // Without a listener an idle connection's error would crash the process.
    pool.on('error', opts.onIdleError ?? (() => undefined));
    try {
      await migrate(pool);
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PgQuotaStore(pool);
  }

  /**
   * Runs `fn` with records bound to one transaction: committed when it resolves, rolled back when it
   * rejects. Run again from the start (up to 5 attempts) when PostgreSQL aborts it for a serialisation
   * failure or a deadlock, so `fn` must have no effect outside `tx`. `fn` must not use the store itself:
   * waiting for a second connection while holding one can exhaust the pool.
   */
  async transaction<T>(fn: (tx: QuotaRecords) => Promise<T>, isolation: Isolation = 'read committed'): Promise<T> {
    return this.inTransaction(isolation, (client) => fn(new PgQuotaRecords(client, (inner) => inner(client))));
  }

  /**
   * As transaction, with the transaction's connection itself, for statements of the caller's own (locks,
   * batched writes): the replicated allocator's calls (replicated-allocator.ts).
   */
  async inOneTransaction<T>(fn: (client: Queryable) => Promise<T>): Promise<T> {
    return this.inTransaction('read committed', fn);
  }

  /** One statement of the caller's own on the pool (outside any transaction). */
  query<R extends pg.QueryResultRow>(sql: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    return this.pool.query<R>(sql, values).catch((err: unknown) => {
      throw storeUnavailable(err) ?? err;
    });
  }

  async ping(timeoutMs = 1000): Promise<void> {
    const ac = new AbortController();
    const late = sleep(timeoutMs, undefined, { signal: ac.signal }).then(() => {
      throw new Error(`PostgreSQL did not answer within ${timeoutMs} ms`);
    });
    try {
      await Promise.race([this.pool.query('SELECT 1'), late]);
    } finally {
      ac.abort();
      late.catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private async inTransaction<T>(isolation: Isolation, fn: (client: Queryable) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        throw storeUnavailable(err) ?? err;
      }
      let broken = false;
      try {
        await client.query(BEGIN[isolation]);
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        // A connection that cannot even roll back is not given back to the pool.
        await client.query('ROLLBACK').catch(() => (broken = true));
        const code = (err as { code?: unknown }).code;
        if (attempt >= TRANSACTION_ATTEMPTS || typeof code !== 'string' || !RETRYABLE.has(code)) throw storeUnavailable(err) ?? err;
      } finally {
        client.release(broken);
      }
      // Apart a little, and a little more each time, so the transactions that collided do not collide again.
      await sleep(Math.random() * 10 * attempt);
    }
  }
}

/**
 * BIGINT (int8) columns as numbers, not pg's default strings: the store's counts stay below 2^53, and one
 * that does not is an error rather than a silently rounded number.
 */
function getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
  if (oid !== pg.types.builtins.INT8) return pg.types.getTypeParser(oid, format ?? 'text') as (value: string) => unknown;
  return (value: string) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n)) throw new RangeError(`PostgreSQL returned ${value}, beyond the integers a number holds exactly`);
    return n;
  };
}
