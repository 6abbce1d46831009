// One undici keep-alive Pool per upstream origin, shared by every provider that points there and kept
// across config reloads; pools no config uses any more are closed once their requests finish.
import { Pool } from './undici-pool.js';

export interface PoolOptions {
  connections: number;
  connectTimeoutMs: number;
}

export class PoolRegistry {
  private readonly pools = new Map<string, Pool>();

  get(origin: string, opts: PoolOptions): Pool {
    const key = `${origin}|${opts.connections}|${opts.connectTimeoutMs}`;
    let pool = this.pools.get(key);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: opts.connections,
        connect: { timeout: opts.connectTimeoutMs },
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 600_000,
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  /**
   * Retires every pool not in `inUse`. A request that picked its provider just before a reload may not
   * have dispatched yet, so the close waits a grace period; close() itself lets running requests finish.
   */
  retainOnly(inUse: ReadonlySet<Pool>, graceMs = 30_000): void {
    for (const [key, pool] of this.pools) {
      if (!inUse.has(pool)) {
        this.pools.delete(key);
        setTimeout(() => pool.close().catch(() => undefined), graceMs).unref();
      }
    }
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}
