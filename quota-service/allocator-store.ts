// What the allocator (and its ownership and team records) reads and writes, synchronously: the SQLite
// store itself (one replica), or, with several replicas over PostgreSQL, a snapshot of the rows a call
// touches, loaded under that call's locks and written back in its transaction (postgres/snapshot-store.ts).
import type { SqliteQuotaStore } from './store.js';

export type AllocatorStore = Pick<
  SqliteQuotaStore,
  | 'transaction'
  | 'budgets'
  | 'upsertBudget'
  | 'deleteBudget'
  | 'used'
  | 'costNano'
  | 'addUsage'
  | 'totals'
  | 'addTaggedUsage'
  | 'taggedUsage'
  | 'addModelUsage'
  | 'modelUsage'
  | 'scopesUnder'
  | 'leases'
  | 'saveLease'
  | 'deleteLease'
  | 'acked'
  | 'setAcked'
  | 'owner'
  | 'setOwner'
  | 'teams'
  | 'setTeam'
>;
