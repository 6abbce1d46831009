// The allocator as the gRPC handlers, the metrics and the usage page use it: one replica's Allocator over
// SQLite (synchronous), or the replicated allocator over PostgreSQL (every call a transaction).
import type { Allocator, BudgetView, Grant, WindowUsage } from './allocator.js';

type MaybePromise<T> = T | Promise<T>;
type Async<F> = F extends (...args: infer A) => infer R ? (...args: A) => MaybePromise<R> : never;

export interface QuotaAllocator {
  acquire: Async<Allocator['acquire']>;
  renew: Async<Allocator['renew']>;
  release: Async<Allocator['release']>;
  report: Async<Allocator['report']>;
  setBudget: Async<Allocator['setBudget']>;
  getBudgets: Async<Allocator['getBudgets']>;
  listBudgets: Async<Allocator['listBudgets']>;
  deleteBudget: Async<Allocator['deleteBudget']>;
  usage: Async<Allocator['usage']>;
  setTeam: Async<Allocator['setTeam']>;
  deleteTeam: Async<Allocator['deleteTeam']>;
  listTeams: Async<Allocator['listTeams']>;
  /** Drops lapsed leases; returns how many. */
  sweep: Async<Allocator['sweep']>;
  /** Live leases (with several replicas: as of the last sweep). */
  readonly activeLeases: number;
}

export type { BudgetView, Grant, WindowUsage };
