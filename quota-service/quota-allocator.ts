// The allocator as the gRPC handlers, the metrics and the usage page use it: one replica's Allocator over
// SQLite (synchronous), or the replicated allocator over PostgreSQL (every call a transaction).
import type { Allocator } from './allocator.js';

type MaybePromise<T> = T | Promise<T>;
type Async<F> = F extends (...args: infer A) => infer R ? (...args: A) => MaybePromise<R> : never;

/** The calls both allocators answer (sweep: drops lapsed leases and returns how many). */
export const QUOTA_CALLS = ['acquire', 'renew', 'release', 'report', 'setBudget', 'getBudgets', 'listBudgets', 'deleteBudget', 'usage', 'setTeam', 'deleteTeam', 'listTeams', 'sweep'] as const;
type Calls = (typeof QUOTA_CALLS)[number];

export type QuotaAllocator = { [K in Calls]: Async<Allocator[K]> } & {
  /** Live leases (with several replicas: as of the last sweep). */
  readonly activeLeases: number;
};
