// The allocator of one replica among several over one PostgreSQL database. Every call runs in a transaction
// that locks the namespaces whose pods can share a budget with the caller's (its own, and every namespace of
// its teams; transaction-scoped advisory locks, in sorted order) and the incarnations it reports for, loads
// what those namespaces' leases and the budgets' current windows hold (snapshot-store.ts), runs the very
// Allocator one replica over SQLite runs on those rows, and writes back what it changed before it commits.
// So two replicas never grant from one budget window at once (consumed + outstanding ≤ limit holds across
// replicas), a report is applied once whichever replica receives it (the sequence check and the
// consumption in one transaction, under the incarnation's lock), and a lease lives in the database: any
// replica renews or releases it, and a replica's death loses nothing.
//
// Lease calls that arrive while a replica's transactions run wait and go together into the next one: the
// locks of all of them, one snapshot, one Allocator that runs them in order, one write-back and one commit.
// A call alone costs what it did; under load the round trips and the commit are shared.
import { status } from '@grpc/grpc-js';
import type { Clock } from '../../common/clock.js';
import { Allocator, type AllocatorOptions, type AllocatorShared, type UsageReport, type WindowUsage } from '../allocator.js';
import { Coverage } from '../coverage.js';
import { QuotaError } from '../errors.js';
import type { IncarnationClaims } from '../ownership.js';
import type { QuotaAllocator } from '../quota-allocator.js';
import type { Identity } from '../scopes.js';
import { usageSpans, type UsageOptions } from '../usage-query.js';
import type { WindowName } from '../windows.js';
import type { PgQuotaStore } from './pg-store.js';
import type { Queryable } from './pg-records.js';
import { SnapshotStore, type Snapshot } from './snapshot-store.js';
import { flushChanges, lockAndLoad, relatedNamespaces, type SnapshotScope } from './snapshot-sql.js';

/** Incarnation locks are keyed apart from namespace locks. */
const INCARNATION = 'incarnation:';
/** Lease-call transactions a replica runs at once (each on a connection of the pool)… */
const MAX_BATCHES = 2;
/** …and the most calls one of them carries. */
const MAX_BATCH_CALLS = 64;

/** What a call locks: namespaces and incarnations it names, or the lease it names. */
type CallScope = { namespaces: readonly string[]; incarnations: readonly string[] } | { leaseId: string };

interface Pending {
  scope: CallScope;
  fn: (a: Allocator) => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** A call of a batch threw: the transaction is rolled back, and the others run again without it. */
class CallFailed extends Error {
  /** `late`: while the batch ran (after its locks), not on an unknown lease before them. */
  constructor(readonly late: boolean) {
    super('a call of the batch failed');
  }
}

/** No rows at all: what a call naming an unknown lease runs on. */
const emptySnapshot = (): Snapshot => ({ budgets: [], leases: [], teams: [], windows: new Map(), incarnations: new Map(), coverage: new Map() });

export class ReplicatedAllocator implements QuotaAllocator {
  /** New incarnations per pod and hour, as this replica counted them (an abuse bound: each replica allows its own). */
  private readonly claims: IncarnationClaims = new Map();
  private leaseCount = 0;
  /** Lease calls waiting for the next batch. */
  private readonly queue: Pending[] = [];
  private running = 0;

  constructor(
    private readonly store: PgQuotaStore,
    private readonly opts: AllocatorOptions,
    /** Told after this replica changed a budget (what is held of the budgets is stale). */
    private readonly onBudgetsChanged: () => void = () => undefined,
  ) {}

  get activeLeases(): number {
    return this.leaseCount;
  }

  acquire(req: Parameters<Allocator['acquire']>[0]) {
    return this.locked({ namespaces: [req.identity.namespace], incarnations: [req.incarnation] }, (a) => a.acquire(req));
  }

  renew(req: Parameters<Allocator['renew']>[0]) {
    return this.locked({ leaseId: req.leaseId }, (a) => a.renew(req));
  }

  release(leaseId: string, owner: string, reports: UsageReport[]) {
    return this.locked({ leaseId }, (a) => a.release(leaseId, owner, reports));
  }

  report(identity: Identity, owner: string, incarnation: string, reports: UsageReport[]) {
    return this.locked({ namespaces: [identity.namespace], incarnations: [incarnation] }, (a) => a.report(identity, owner, incarnation, reports));
  }

  // Operator calls: budgets are read at every grant, so a budget is written without locks; views read every live lease.
  async setBudget(...args: Parameters<Allocator['setBudget']>) {
    const [scope, window] = args;
    const view = await this.unlocked((a) => a.setBudget(...args), [{ scope, window }]);
    this.onBudgetsChanged();
    return view;
  }

  getBudgets(scope: string) {
    return this.unlocked((a) => a.getBudgets(scope));
  }

  listBudgets() {
    return this.unlocked((a) => a.listBudgets());
  }

  async deleteBudget(...args: Parameters<Allocator['deleteBudget']>) {
    const n = await this.unlocked((a) => a.deleteBudget(...args));
    this.onBudgetsChanged();
    return n;
  }

  /** A team change locks the namespaces it had and gets (their leases are dropped and acquired anew). */
  async setTeam(team: string, namespaces: readonly string[]) {
    const had = await this.namespacesOf(team);
    return this.locked({ namespaces: [...had, ...namespaces], incarnations: [] }, (a) => a.setTeam(team, namespaces), true);
  }

  async deleteTeam(team: string) {
    const had = await this.namespacesOf(team);
    return this.locked({ namespaces: had, incarnations: [] }, (a) => a.deleteTeam(team), true);
  }

  listTeams() {
    return this.unlocked((a) => a.listTeams());
  }

  async usage(scope: string, window: WindowName, n: number, byTag?: string, more: UsageOptions = {}): Promise<WindowUsage[]> {
    const spans = usageSpans(scope, window, n, byTag, more, this.opts.clock.now());
    return Promise.all(
      spans.map(async (span): Promise<WindowUsage> => {
        const [{ costNano, ...kinds }, used, byTagRows, byModel, byScope] = await Promise.all([
          this.store.totals(scope, window, span.startMs),
          this.store.used(scope, window, span.startMs),
          byTag === undefined ? undefined : this.store.taggedUsage(scope, window, span.startMs, byTag),
          more.by === 'model' ? this.store.modelUsage(scope, window, span.startMs) : undefined,
          more.by === 'scope' ? this.store.scopesUnder(scope, window, span) : undefined,
        ]);
        const w: WindowUsage = { startMs: span.startMs, endMs: span.endMs, used, kinds, costNano };
        if (byTagRows !== undefined) w.byTag = byTagRows;
        if (byModel !== undefined) w.byModel = byModel;
        if (byScope !== undefined) w.byScope = byScope;
        return w;
      }),
    );
  }

  /** Deletes lapsed leases (any replica may: what they held is no longer outstanding) and counts the live ones. */
  async sweep(): Promise<number> {
    const now = this.opts.clock.now();
    const deleted = await this.store.inOneTransaction(async (q) => {
      const d = await q.query('DELETE FROM leases WHERE expires_at_ms <= $1', [now]);
      const live = await q.query<{ n: number }>('SELECT count(*)::bigint AS n FROM leases');
      this.leaseCount = live.rows[0]?.n ?? 0;
      return d.rowCount ?? 0;
    });
    return deleted;
  }

  /**
   * Runs `fn` on an allocator over the rows of the call's namespaces (and those that share budgets with
   * them; a lease's own namespace and incarnation when the call names a lease), under their locks and those
   * of its incarnations, and writes back what it changed: one transaction, shared with the lease calls that
   * came meanwhile (see `pump`). `alone`: in a transaction of its own (team changes: they change what the
   * other calls of a batch would have to lock).
   */
  private locked<T>(scope: CallScope, fn: (a: Allocator) => T, alone = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const call: Pending = { scope, fn, resolve: resolve as (v: unknown) => void, reject };
      if (alone) {
        void this.runBatch([call]);
        return;
      }
      this.queue.push(call);
      if (this.queue.length === 1) setImmediate(() => this.pump());
    });
  }

  /**
   * Starts batches while fewer than MAX_BATCHES run: each takes the calls that waited (up to
   * MAX_BATCH_CALLS). A call alone when the service is quiet; under load, as many as came during the
   * batches before, for one transaction's round trips and one commit.
   */
  private pump(): void {
    while (this.running < MAX_BATCHES && this.queue.length > 0) {
      const calls = this.queue.splice(0, MAX_BATCH_CALLS);
      this.running++;
      void this.runBatch(calls).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  /**
   * The calls in one transaction, in order, on one Allocator (each sees what those before it did). A call
   * that throws rolls the transaction back, is answered with its error, and the others run again without
   * it: what it changed before it threw must not be written. Calls naming a lease that is unknown or
   * lapsed are answered before anything is locked. From a second failing call on, or when the batch fails
   * for a reason that is not the database's, the rest run one by one, so that no call's answer waits on a
   * chain of other callers' failures.
   */
  private async runBatch(calls: Pending[]): Promise<void> {
    let live = calls;
    let failedOnce = false;
    while (live.length > 0) {
      const failed = new Map<Pending, unknown>();
      try {
        const results = await this.store.inOneTransaction((q) => this.attempt(q, live, failed));
        live.forEach((c, i) => c.resolve(results[i]));
        return;
      } catch (err) {
        if (err instanceof CallFailed) {
          for (const [c, e] of failed) c.reject(e);
          live = live.filter((c) => !failed.has(c));
          if (err.late && failedOnce) return this.oneByOne(live);
          failedOnce ||= err.late;
          continue;
        }
        if (live.length > 1 && !(err instanceof QuotaError && err.code === status.UNAVAILABLE)) return this.oneByOne(live);
        for (const c of live) c.reject(err);
        return;
      }
    }
  }

  private async oneByOne(calls: readonly Pending[]): Promise<void> {
    await Promise.all(calls.map((c) => this.runBatch([c])));
  }

  private async attempt(q: Queryable, calls: readonly Pending[], failed: Map<Pending, unknown>): Promise<unknown[]> {
    const asked = calls.flatMap((c) => ('leaseId' in c.scope ? [] : c.scope.namespaces));
    const leaseIds = calls.flatMap((c) => ('leaseId' in c.scope ? [c.scope.leaseId] : []));
    const related = await relatedNamespaces(q, asked, leaseIds);
    const now = this.opts.clock.now();
    // A lease unknown or lapsed: the call fails as it would on any state (NOT_FOUND), so it is run on none.
    for (const c of calls) {
      if (!('leaseId' in c.scope) || (related.homes.get(c.scope.leaseId)?.expiresAtMs ?? -Infinity) > now) continue;
      try {
        c.fn(this.allocatorOver(new SnapshotStore(emptySnapshot()), now));
      } catch (err) {
        failed.set(c, err);
      }
    }
    if (failed.size > 0) throw new CallFailed(false);
    const own: string[] = [];
    const incarnations: string[] = [];
    for (const c of calls) {
      if ('leaseId' in c.scope) {
        const home = related.homes.get(c.scope.leaseId);
        if (home === undefined) continue;
        own.push(home.namespace);
        incarnations.push(home.incarnation);
      } else {
        own.push(...c.scope.namespaces);
        incarnations.push(...c.scope.incarnations);
      }
    }
    const locked = related.namespaces;
    const keys = [...locked, ...incarnations.map((i) => `${INCARNATION}${i}`)];
    let snap = await lockAndLoad(q, { locks: keys, namespaces: locked, incarnations, now });
    // A team listed one of these namespaces after the first read: lock its namespaces too and read again
    // (out of order: a deadlock this may cause is detected and the transaction retried).
    const more = relatedFromTeams(snap.teams, own).filter((ns) => !locked.includes(ns));
    if (more.length > 0) snap = await lockAndLoad(q, { locks: more, namespaces: [...locked, ...more], incarnations, now });
    return this.runOver(q, snap, now, (allocator) =>
      calls.map((c) => {
        try {
          return c.fn(allocator);
        } catch (err) {
          failed.set(c, err);
          throw new CallFailed(true);
        }
      }),
    );
  }

  /** Runs `fn` on an allocator over every live lease, without locks (operator reads, budget writes). */
  private unlocked<T>(fn: (a: Allocator) => T, windows: SnapshotScope['windows'] = []): Promise<T> {
    return this.store.inOneTransaction(async (q) => {
      const now = this.opts.clock.now();
      return this.runOver(q, await lockAndLoad(q, { locks: [], namespaces: undefined, incarnations: [], now, windows }), now, fn);
    });
  }

  /** Runs `fn` on an allocator over `snap` and writes back what it changed (in the caller's transaction). */
  private async runOver<T>(q: Queryable, snap: Snapshot, now: number, fn: (a: Allocator) => T): Promise<T> {
    const snapshot = new SnapshotStore(snap);
    const result = fn(this.allocatorOver(snapshot, now));
    await flushChanges(q, snapshot.changes, snapshot.coverage, now);
    return result;
  }

  private allocatorOver(snapshot: SnapshotStore, now: number): Allocator {
    // The call's instant, fixed: its snapshot holds the budgets' windows at that instant.
    const clock: Clock = { now: () => now, monotonic: () => this.opts.clock.monotonic() };
    // What the call's incarnations were granted and reported, whichever replicas granted and received it.
    const shared: AllocatorShared = { coverage: new Coverage(this.opts.onOverReport, snapshot.coverage), claims: this.claims };
    return new Allocator(snapshot, { ...this.opts, clock, shared });
  }

  private async namespacesOf(team: string): Promise<string[]> {
    const { rows } = await this.store.query<{ namespace: string }>('SELECT namespace FROM team_namespaces WHERE team = $1', [team]);
    return rows.map((r) => r.namespace);
  }
}

/** `namespaces` and every namespace of a team listing one of them, by the team rows read. */
function relatedFromTeams(teams: readonly { team: string; namespace: string }[], namespaces: readonly string[]): string[] {
  const own = new Set(namespaces);
  const shared = new Set(teams.filter((t) => own.has(t.namespace)).map((t) => t.team));
  return [...new Set([...namespaces, ...teams.filter((t) => shared.has(t.team)).map((t) => t.namespace)])];
}

