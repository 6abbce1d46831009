// The single replica's allocator over SQLite with group commits (group-commit.ts): every call runs on the
// in-memory Allocator at once and is answered after the turn's commit. When a commit fails, the calls of
// that turn are refused as UNAVAILABLE (a sidecar resends them: its reports stay in its outbox until
// acknowledged) and the Allocator is rebuilt from the file, so that memory never holds what the disk does
// not: a report counted only in memory would have its resend taken for a duplicate and be lost.
import type { Logger } from 'pino';
import { Allocator, type AllocatorOptions } from './allocator.js';
import { unavailable } from './errors.js';
import type { QuotaAllocator } from './quota-allocator.js';
import type { SqliteQuotaStore } from './store.js';
import type { Transactional } from './group-commit.js';

export interface GroupCommitted {
  /** What the gRPC handlers call: each call resolves once its writes are committed. */
  readonly allocator: QuotaAllocator;
  /** The Allocator in force, for synchronous reads (metrics, the usage page). */
  current(): Allocator;
}

const CALLS = ['acquire', 'renew', 'release', 'report', 'setBudget', 'getBudgets', 'listBudgets', 'deleteBudget', 'usage', 'setTeam', 'deleteTeam', 'listTeams', 'sweep'] as const;

/** `wrap`: around the store's transaction (tests count or fail its commits). */
export function groupCommitted(store: SqliteQuotaStore, options: AllocatorOptions, logger?: Logger, wrap?: (tx: Transactional) => Transactional): GroupCommitted {
  let current = new Allocator(store, options);
  store.groupCommits((err) => {
    logger?.error({ err }, 'the quota store could not commit; the calls of that turn are refused and the state is read again from the file');
    current = new Allocator(store, options);
  }, wrap);
  const refused = (err: unknown): never => {
    throw unavailable(`the quota service could not write its store (${err instanceof Error ? err.message : String(err)}); send the call again`);
  };
  const calls: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
  for (const name of CALLS) {
    calls[name] = async (...args) => {
      const result = (current[name] as (...a: unknown[]) => unknown)(...args);
      await store.durable().catch(refused);
      return result;
    };
  }
  const allocator = Object.defineProperty(calls, 'activeLeases', { get: () => current.activeLeases }) as unknown as QuotaAllocator;
  return { allocator, current: () => current };
}
