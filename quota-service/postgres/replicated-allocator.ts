// The allocator of one replica among several over one PostgreSQL database. Every call is one transaction:
// it locks the namespaces whose pods can share a budget with the caller's (its own, and every namespace of
// its teams; transaction-scoped advisory locks, in sorted order) and the incarnations it reports for, loads
// what those namespaces' leases and the budgets' current windows hold (snapshot-store.ts), runs the very
// Allocator one replica over SQLite runs on those rows, and writes back what it changed before it commits.
// So two replicas never grant from one budget window at once (consumed + outstanding ≤ limit holds across
// replicas), a report is applied once whichever replica receives it (the sequence check and the
// consumption in one transaction, under the incarnation's lock), and a lease lives in the database: any
// replica renews or releases it, and a replica's death loses nothing.
import type { Clock } from '../../common/clock.js';
import { Allocator, type AllocatorOptions, type AllocatorShared, type UsageReport, type WindowUsage } from '../allocator.js';
import { Coverage } from '../coverage.js';
import type { IncarnationClaims } from '../ownership.js';
import type { QuotaAllocator } from '../quota-allocator.js';
import type { Identity } from '../scopes.js';
import { usageSpans, type UsageOptions } from '../usage-query.js';
import type { WindowName } from '../windows.js';
import type { PgQuotaStore } from './pg-store.js';
import type { Queryable } from './pg-records.js';
import { SnapshotStore } from './snapshot-store.js';
import { flushChanges, lockAndLoad, relatedNamespaces, type SnapshotScope } from './snapshot-sql.js';

/** Incarnation locks are keyed apart from namespace locks. */
const INCARNATION = 'incarnation:';

export class ReplicatedAllocator implements QuotaAllocator {
  /** New incarnations per pod and hour, as this replica counted them (an abuse bound: each replica allows its own). */
  private readonly claims: IncarnationClaims = new Map();
  private leaseCount = 0;

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
    return this.locked({ namespaces: [...had, ...namespaces], incarnations: [] }, (a) => a.setTeam(team, namespaces));
  }

  async deleteTeam(team: string) {
    const had = await this.namespacesOf(team);
    return this.locked({ namespaces: had, incarnations: [] }, (a) => a.deleteTeam(team));
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
   * of its incarnations, and writes back what it changed: one transaction.
   */
  private locked<T>(call: { namespaces: readonly string[]; incarnations: readonly string[] } | { leaseId: string }, fn: (a: Allocator) => T): Promise<T> {
    return this.store.inOneTransaction(async (q) => {
      const asked = 'leaseId' in call ? [] : call.namespaces;
      const related = await relatedNamespaces(q, asked, 'leaseId' in call ? call.leaseId : undefined);
      const own = 'leaseId' in call ? (related.home === undefined ? [] : [related.home.namespace]) : call.namespaces;
      const incarnations = 'leaseId' in call ? (related.home === undefined ? [] : [related.home.incarnation]) : call.incarnations;
      const locked = related.namespaces;
      const now = this.opts.clock.now();
      const keys = [...locked, ...incarnations.map((i) => `${INCARNATION}${i}`)];
      let snap = await lockAndLoad(q, { locks: keys, namespaces: locked, incarnations, now });
      // A team listed one of these namespaces after the first read: lock its namespaces too and read again
      // (out of order: a deadlock this may cause is detected and the transaction retried).
      const more = relatedFromTeams(snap.teams, own).filter((ns) => !locked.includes(ns));
      if (more.length > 0) snap = await lockAndLoad(q, { locks: more, namespaces: [...locked, ...more], incarnations, now });
      return this.run(q, new SnapshotStore(snap), now, fn);
    });
  }

  /** Runs `fn` on an allocator over every live lease, without locks (operator reads, budget writes). */
  private unlocked<T>(fn: (a: Allocator) => T, windows: SnapshotScope['windows'] = []): Promise<T> {
    return this.store.inOneTransaction(async (q) => {
      const now = this.opts.clock.now();
      return this.run(q, new SnapshotStore(await lockAndLoad(q, { locks: [], namespaces: undefined, incarnations: [], now, windows })), now, fn);
    });
  }

  private async run<T>(q: Queryable, snapshot: SnapshotStore, now: number, fn: (a: Allocator) => T): Promise<T> {
    // The call's instant, fixed: its snapshot holds the budgets' windows at that instant.
    const clock: Clock = { now: () => now, monotonic: () => this.opts.clock.monotonic() };
    // What the call's incarnations were granted and reported, whichever replicas granted and received it.
    const shared: AllocatorShared = { coverage: new Coverage(this.opts.onOverReport, snapshot.coverage), claims: this.claims };
    const result = fn(new Allocator(snapshot, { ...this.opts, clock, shared }));
    await flushChanges(q, snapshot.changes, snapshot.coverage, now);
    return result;
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

