// The rows one call of a replica works on: loaded from PostgreSQL under the call's locks, read and
// written synchronously by an Allocator of its own (the same grant and report rules as one replica over
// SQLite), then written back in the call's transaction (flush). Reads of anything not loaded throw: the
// loader's job is to load everything the call can read, and a miss is a bug, never a silent zero.
import type { AllocatorStore } from '../allocator-store.js';
import type { CoverageEntry } from '../coverage.js';
import type { BudgetRow, BudgetUnit, LeaseRow, ModelUsageRow, ScopeUsageRow, TagUsageRow, TeamRow, WindowTotals } from '../store.js';
import type { WindowName } from '../windows.js';
import type { TokenKinds } from '../../proto/token-kinds.js';

/** A window's consumption as grants read it: tokens and what they cost (nano-USD). */
export interface WindowUsed {
  used: number;
  costNano: number;
}

export interface Snapshot {
  budgets: BudgetRow[];
  /** Live leases of the locked namespaces. */
  leases: LeaseRow[];
  /** The team rows of the locked namespaces' teams. */
  teams: TeamRow[];
  /** By `scope|window|startMs`: the windows grants can read (every budget's current one). */
  windows: Map<string, WindowUsed>;
  /** By incarnation: the highest sequence applied and the owner, for the incarnations the call names. */
  incarnations: Map<string, { acked: number; owner: string }>;
  /** By incarnation: what it was granted and reported (coverage.ts), for the same incarnations; updated in place by the call. */
  coverage: Map<string, CoverageEntry>;
}

/** What the call changed, in order of kind: written back by flush (postgres/flush.ts). */
export interface Changes {
  budgets: { upsert: BudgetRow[]; delete: { scope: string; window: WindowName | undefined; unit: BudgetUnit | undefined }[] };
  teams: { team: string; namespaces: readonly string[] }[];
  usage: { scope: string; window: WindowName; startMs: number; endMs: number; tokens: number; kinds: TokenKinds; costNano: number }[];
  tagged: { scope: string; window: WindowName; startMs: number; endMs: number; key: string; value: string; tokens: number; costNano: number }[];
  models: { scope: string; window: WindowName; startMs: number; endMs: number; provider: string; model: string; tokens: number; totals: WindowTotals }[];
  /** By id: the last saved state of each lease the call kept. */
  savedLeases: Map<string, LeaseRow>;
  deletedLeases: Set<string>;
  acked: Map<string, { sequence: number; seenMs: number }>;
  owners: Map<string, { owner: string; seenMs: number }>;
}

export const windowKey = (scope: string, window: string, startMs: number): string => `${scope}|${window}|${startMs}`;

export class SnapshotStore implements AllocatorStore {
  readonly changes: Changes = {
    budgets: { upsert: [], delete: [] },
    teams: [],
    usage: [],
    tagged: [],
    models: [],
    savedLeases: new Map(),
    deletedLeases: new Set(),
    acked: new Map(),
    owners: new Map(),
  };

  constructor(private readonly snap: Snapshot) {}

  /** The coverage entries of the call's incarnations: its allocator's coverage updates them, flush writes them. */
  get coverage(): Map<string, CoverageEntry> {
    return this.snap.coverage;
  }

  transaction<T>(fn: () => T): T {
    return fn();
  }

  budgets(): BudgetRow[] {
    return this.snap.budgets;
  }

  upsertBudget(b: BudgetRow): void {
    this.changes.budgets.upsert.push(b);
  }

  /** How many budgets it deletes, as the loaded rows say (the rows are deleted at flush). */
  deleteBudget(scope: string, window: WindowName | undefined, unit?: BudgetUnit): number {
    this.changes.budgets.delete.push({ scope, window, unit });
    return this.snap.budgets.filter((b) => b.scope === scope && (window === undefined || b.window === window) && (unit === undefined || b.unit === unit)).length;
  }

  used(scope: string, window: WindowName, startMs: number): number {
    return this.window(scope, window, startMs).used;
  }

  costNano(scope: string, window: WindowName, startMs: number): number {
    return this.window(scope, window, startMs).costNano;
  }

  /** Queued for flush, and counted at once in the loaded window: the call's own grant sees the usage it was just told of. */
  addUsage(scope: string, window: WindowName, startMs: number, endMs: number, tokens: number, kinds: TokenKinds, costNano: number): void {
    this.changes.usage.push({ scope, window, startMs, endMs, tokens, kinds, costNano });
    const loaded = this.snap.windows.get(windowKey(scope, window, startMs));
    if (loaded !== undefined) {
      loaded.used += tokens;
      loaded.costNano += costNano;
    }
  }

  addTaggedUsage(scope: string, window: WindowName, startMs: number, endMs: number, tag: { key: string; value: string }, tokens: number, costNano: number): void {
    this.changes.tagged.push({ scope, window, startMs, endMs, key: tag.key, value: tag.value, tokens, costNano });
  }

  addModelUsage(scope: string, window: WindowName, span: { startMs: number; endMs: number }, model: { provider: string; model: string }, tokens: number, totals: WindowTotals): void {
    this.changes.models.push({ scope, window, startMs: span.startMs, endMs: span.endMs, provider: model.provider, model: model.model, tokens, totals });
  }

  // Usage queries read PostgreSQL directly (replicated-allocator.ts), never a snapshot.
  totals(): WindowTotals {
    throw new Error('snapshot: window totals are read from the database, not from a snapshot');
  }
  taggedUsage(): TagUsageRow[] {
    throw new Error('snapshot: tagged usage is read from the database, not from a snapshot');
  }
  modelUsage(): ModelUsageRow[] {
    throw new Error('snapshot: model usage is read from the database, not from a snapshot');
  }
  scopesUnder(): ScopeUsageRow[] {
    throw new Error('snapshot: usage by scope is read from the database, not from a snapshot');
  }

  leases(): LeaseRow[] {
    return this.snap.leases;
  }

  saveLease(l: LeaseRow): void {
    this.changes.deletedLeases.delete(l.id);
    this.changes.savedLeases.set(l.id, l);
  }

  deleteLease(id: string): void {
    this.changes.savedLeases.delete(id);
    this.changes.deletedLeases.add(id);
  }

  acked(incarnation: string): number {
    return this.incarnation(incarnation).acked;
  }

  setAcked(incarnation: string, sequence: number, seenMs: number): void {
    this.incarnation(incarnation).acked = sequence;
    this.changes.acked.set(incarnation, { sequence, seenMs });
  }

  owner(incarnation: string): string {
    return this.incarnation(incarnation).owner;
  }

  setOwner(incarnation: string, owner: string, seenMs: number): void {
    this.incarnation(incarnation).owner = owner;
    this.changes.owners.set(incarnation, { owner, seenMs });
  }

  teams(): TeamRow[] {
    return this.snap.teams;
  }

  setTeam(team: string, namespaces: readonly string[]): void {
    this.changes.teams.push({ team, namespaces });
  }

  private window(scope: string, window: WindowName, startMs: number): WindowUsed {
    const w = this.snap.windows.get(windowKey(scope, window, startMs));
    if (w === undefined) throw new Error(`snapshot: the ${window} window of ${scope} at ${startMs} was not loaded`);
    return w;
  }

  private incarnation(incarnation: string): { acked: number; owner: string } {
    const i = this.snap.incarnations.get(incarnation);
    if (i === undefined) throw new Error(`snapshot: incarnation ${incarnation} was not loaded`);
    return i;
  }
}
