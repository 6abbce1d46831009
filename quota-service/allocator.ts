// Lease allocation (DESIGN §6). A lease holds tokens granted against every budget matching the pod's
// scopes. Invariant per budget and window: consumed + outstanding grants ≤ limit, so global overspend is
// bounded by the error of the sidecars' estimates, never by how many sidecars there are. Grants are the
// smaller of what is asked and a demand-weighted fair share of half of what remains (a request that
// needs more than its share still gets its need while tokens are free), lower priority classes stop
// above their floor, and a window rollover voids what leases held of the old window.
//
// Ownership: every call names its caller's `owner` (the verified identity, see grpc-handlers.ts). A sidecar
// incarnation belongs to the owner that first used it, and so do the leases acquired with it: no other
// caller can renew, release or report on them. Reports are checked before anything is applied: a sequence
// may not jump more than MAX_SEQUENCE_GAP past the last one processed, a report's tokens and start time
// must be plausible, and usage well beyond what the incarnation's leases covered is flagged.
import { randomUUID } from 'node:crypto';
import { MAX_TAG_VALUE, MAX_TAGS, TAG_KEY } from '../proto/tags.js';
import type { Clock } from '../sidecar/clock.js';
import { invalidArgument, notFound, permissionDenied } from './errors.js';
import { isNamespaceName, isTeamName, scopeProblem, scopesOf, type Identity } from './scopes.js';
import type { BudgetRow, SqliteQuotaStore } from './store.js';
import { windowAt, windowBefore, type WindowName } from './windows.js';

export type PriorityClass = 'interactive' | 'background' | 'batch';

export interface UsageReport {
  sequence: number;
  tokens: number;
  startedAtMs: number;
  /** Attribution labels of the requests the report adds up (`x-llmgw-tags`). */
  tags?: Record<string, string>;
}

/** One window of a scope's consumption; with a tag key, also per value of that tag, most first. */
export interface WindowUsage {
  startMs: number;
  endMs: number;
  used: number;
  byTag?: { value: string; used: number }[];
}

export interface Grant {
  leaseId: string;
  granted: number;
  leaseTokens: number;
  unlimited: boolean;
  ttlMs: number;
  refreshAfterMs: number;
  /** Least tokens left in the current windows of the matching budgets (-1 when unlimited). */
  remaining: number;
  retryAfterMs: number;
  acked: number;
  /** Start of the newest window the lease's tokens belong to (0 when unlimited). */
  windowStartMs: number;
}

export interface BudgetView extends BudgetRow {
  used: number;
  outstanding: number;
  windowStartMs: number;
  windowEndMs: number;
}

export interface AllocatorOptions {
  clock: Clock;
  /** A lease lapses this long after its last renewal (default 30 s). */
  leaseTtlMs?: number;
  /** Grants aim to cover this much of a lease's recent demand (default 20 s). */
  horizonMs?: number;
  /** Told when an incarnation reports well beyond what its leases covered (see COVERAGE_*). */
  onOverReport?: (flag: OverReport) => void;
}

/** Usage reported by an incarnation beyond what its leases were granted (plus the margin). */
export interface OverReport {
  incarnation: string;
  owner: string;
  reportedTokens: number;
  coveredTokens: number;
}

/**
 * A report's sequence may be at most this far above the highest one processed for its incarnation (a
 * sidecar numbers its records 1, 2, 3, … and sends them in order, so real gaps are a handful). Without the
 * bound, one report with sequence 9e15 would make every later report of the incarnation count as a replay.
 */
export const MAX_SEQUENCE_GAP = 10_000;
/** One report adds up the requests of one class, model and second of one pod: more than this is refused. */
export const MAX_REPORT_TOKENS = 50_000_000;
/** A report may start at most this far in the future (clock skew between pod and service)… */
export const MAX_REPORT_SKEW_MS = 5 * 60_000;
/** …and at most this far in the past (an outbox kept through a long outage). */
export const MAX_REPORT_AGE_MS = 400 * 86_400_000;
/**
 * Reported usage is flagged (logged and counted, still charged) once it exceeds what the incarnation's
 * leases were granted × COVERAGE_FACTOR + COVERAGE_MARGIN_TOKENS: requests use more than they reserved
 * when their estimate was low, and a pod that lost the service spends up to its fail-open cap (100,000
 * tokens a minute by default) on no lease at all.
 */
export const COVERAGE_FACTOR = 1.25;
export const COVERAGE_MARGIN_TOKENS = 100_000;

export const DEFAULT_FLOORS = { batch: 0.5, background: 0.2 };

interface Lease {
  id: string;
  owner: string;
  identity: Identity;
  scopes: string[];
  priority: PriorityClass;
  incarnation: string;
  outstanding: number;
  demand: number;
  expiresAtMs: number;
  /** Budget key → start of the window `outstanding` belongs to. */
  windows: Record<string, number>;
}

const PRIORITIES: PriorityClass[] = ['interactive', 'background', 'batch'];
const MIN_DEMAND = 1;
/**
 * Leases together hold at most this fraction of what remains (by fair share); the rest stays free for
 * whichever sidecar runs dry first, so nearly all of a budget is usable before anyone is refused.
 */
const SHARE_OF_REMAINING = 0.5;
/** Grants cover at most this fraction of the time the budget would last at the current total demand. */
const RUNWAY_FRACTION = 0.05;
const key = (scope: string, window: WindowName): string => `${scope}|${window}`;
const NO_TEAMS: ReadonlySet<string> = new Set();
/** Start of the newest window the lease's grants belong to (0 before its first grant). */
const grantedSince = (lease: { windows: Record<string, number> }): number => Math.max(0, ...Object.values(lease.windows));

export class Allocator {
  private readonly budgets = new Map<string, BudgetRow>();
  private readonly leases = new Map<string, Lease>();
  /** scope → leases charged to it. */
  private readonly byScope = new Map<string, Set<Lease>>();
  private readonly used = new Map<string, number>();
  private readonly ackedBy = new Map<string, number>();
  private readonly owners = new Map<string, string>();
  /** namespace → the teams listing it. */
  private readonly teams = new Map<string, Set<string>>();
  /** incarnation → tokens its leases were granted and tokens it reported, since this process started. */
  private readonly coverage = new Map<string, { covered: number; reported: number; flagged: boolean }>();
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly horizonMs: number;

  constructor(
    private readonly store: SqliteQuotaStore,
    private readonly opts: AllocatorOptions,
  ) {
    this.clock = opts.clock;
    this.ttlMs = opts.leaseTtlMs ?? 30_000;
    this.horizonMs = opts.horizonMs ?? 20_000;
    for (const b of store.budgets()) this.budgets.set(key(b.scope, b.window), b);
    for (const t of store.teams()) this.teamSet(t.namespace).add(t.team);
    for (const row of store.leases()) {
      const identity = { namespace: row.namespace, service: row.service, pod: row.pod };
      this.index({
        id: row.id,
        owner: row.owner,
        identity,
        scopes: scopesOf(identity, this.teams.get(identity.namespace) ?? NO_TEAMS),
        priority: PRIORITIES[row.priority - 1] ?? 'interactive',
        incarnation: row.incarnation,
        outstanding: row.outstanding,
        demand: row.demand,
        expiresAtMs: row.expiresAtMs,
        windows: JSON.parse(row.windows) as Record<string, number>,
      });
    }
    this.sweep();
  }

  /** `owner`: the caller's verified identity, which the incarnation and the new lease belong to from now on. */
  acquire(req: { identity: Identity; owner: string; priority: PriorityClass; incarnation: string; need: number; demand: number }): Grant {
    if (req.identity.namespace === '') throw invalidArgument('identity.namespace is required');
    if (req.incarnation === '') throw invalidArgument('incarnation is required');
    const now = this.clock.now();
    this.sweep(now);
    this.claim(req.incarnation, req.owner, now);
    const lease: Lease = {
      id: randomUUID(),
      owner: req.owner,
      identity: req.identity,
      scopes: scopesOf(req.identity, this.teams.get(req.identity.namespace) ?? NO_TEAMS),
      priority: req.priority,
      incarnation: req.incarnation,
      outstanding: 0,
      demand: Math.max(MIN_DEMAND, req.demand),
      expiresAtMs: now + this.ttlMs,
      windows: {},
    };
    this.index(lease);
    return this.store.transaction(() => this.grant(lease, Math.max(0, req.need), now));
  }

  renew(req: { leaseId: string; owner: string; need: number; demand: number; reports: UsageReport[]; unused: number }): Grant {
    const now = this.clock.now();
    this.sweep(now);
    const lease = this.owned(req.leaseId, req.owner, '; acquire a new one');
    this.check(lease.incarnation, req.reports, now);
    return this.store.transaction(() => {
      this.apply(lease.scopes, lease.incarnation, req.reports, lease);
      lease.outstanding = Math.max(0, lease.outstanding - Math.max(0, req.unused));
      lease.demand = Math.max(MIN_DEMAND, req.demand);
      lease.expiresAtMs = now + this.ttlMs;
      return this.grant(lease, Math.max(0, req.need), now);
    });
  }

  release(leaseId: string, owner: string, reports: UsageReport[]): number {
    const lease = this.owned(leaseId, owner, '');
    this.check(lease.incarnation, reports, this.clock.now());
    return this.store.transaction(() => {
      const acked = this.apply(lease.scopes, lease.incarnation, reports, lease);
      this.drop(lease);
      return acked;
    });
  }

  /** Usage delivered without a lease (after a sidecar restart, or while renewing failed). */
  report(identity: Identity, owner: string, incarnation: string, reports: UsageReport[]): number {
    if (identity.namespace === '') throw invalidArgument('identity.namespace is required');
    if (incarnation === '') throw invalidArgument('incarnation is required');
    const now = this.clock.now();
    this.check(incarnation, reports, now);
    this.claim(incarnation, owner, now);
    const scopes = scopesOf(identity, this.teams.get(identity.namespace) ?? NO_TEAMS);
    return this.store.transaction(() => this.apply(scopes, incarnation, reports, undefined));
  }

  /** Replaces a team's namespaces; leases of the namespaces it gains or loses are dropped (re-acquired with their new scopes). */
  setTeam(team: string, namespaces: readonly string[]): { team: string; namespaces: string[] } {
    if (!isTeamName(team)) throw invalidArgument(`team "${team}" is not a valid team name`);
    const wanted = [...new Set(namespaces)].sort();
    if (wanted.length === 0) throw invalidArgument('a team needs at least one namespace (delete the team to remove it)');
    for (const ns of wanted) if (!isNamespaceName(ns)) throw invalidArgument(`"${ns}" is not a valid namespace name`);
    const before = this.namespacesOf(team);
    this.store.setTeam(team, wanted);
    this.remap(team, before, wanted);
    return { team, namespaces: wanted };
  }

  deleteTeam(team: string): number {
    const before = this.namespacesOf(team);
    if (before.length === 0) throw notFound(`no team ${team}`);
    this.store.setTeam(team, []);
    this.remap(team, before, []);
    return 1;
  }

  listTeams(): { team: string; namespaces: string[] }[] {
    const byTeam = new Map<string, string[]>();
    for (const [ns, teams] of this.teams) for (const t of teams) (byTeam.get(t) ?? byTeam.set(t, []).get(t)!).push(ns);
    return [...byTeam].map(([team, namespaces]) => ({ team, namespaces: namespaces.sort() })).sort((a, b) => a.team.localeCompare(b.team));
  }

  /** Drops lapsed leases; their unspent grants go back to their windows. */
  sweep(now = this.clock.now()): number {
    let n = 0;
    for (const lease of this.leases.values()) {
      if (lease.expiresAtMs <= now) {
        this.drop(lease);
        n++;
      }
    }
    return n;
  }

  get activeLeases(): number {
    return this.leases.size;
  }

  setBudget(scope: string, window: WindowName, tokens: number, floors = DEFAULT_FLOORS): BudgetView {
    const problem = scopeProblem(scope);
    if (problem !== undefined) throw invalidArgument(`scope "${scope}": ${problem}`);
    if (!Number.isSafeInteger(tokens) || tokens <= 0) throw invalidArgument('tokens must be a positive integer');
    for (const [name, v] of Object.entries(floors)) {
      if (!(v >= 0 && v <= 1)) throw invalidArgument(`priority floor ${name} must be between 0 and 1`);
    }
    const row: BudgetRow = { scope, window, tokens, batchFloor: floors.batch, backgroundFloor: floors.background };
    this.store.upsertBudget(row);
    this.budgets.set(key(scope, window), row);
    return this.view(row, this.clock.now());
  }

  getBudgets(scope: string): BudgetView[] {
    const problem = scopeProblem(scope);
    if (problem !== undefined) throw invalidArgument(`scope "${scope}": ${problem}`);
    const now = this.clock.now();
    const found = [...this.budgets.values()].filter((b) => b.scope === scope).map((b) => this.view(b, now));
    if (found.length === 0) throw notFound(`no budget for ${scope}`);
    return found;
  }

  listBudgets(): BudgetView[] {
    const now = this.clock.now();
    return [...this.budgets.values()].sort((a, b) => a.scope.localeCompare(b.scope) || a.window.localeCompare(b.window)).map((b) => this.view(b, now));
  }

  deleteBudget(scope: string, window: WindowName | undefined): number {
    const n = this.store.deleteBudget(scope, window);
    if (n === 0) throw notFound(`no budget for ${scope}${window === undefined ? '' : ` (${window})`}`);
    for (const b of [...this.budgets.values()]) if (b.scope === scope && (window === undefined || b.window === window)) this.budgets.delete(key(b.scope, b.window));
    return n;
  }

  /** The last `n` windows of a scope's consumption, newest first, empty windows included. */
  usage(scope: string, window: WindowName, n: number, byTag?: string): WindowUsage[] {
    const problem = scopeProblem(scope);
    if (problem !== undefined) throw invalidArgument(`scope "${scope}": ${problem}`);
    if (byTag !== undefined && !TAG_KEY.test(byTag)) throw invalidArgument(`by_tag "${byTag}": a tag key is letters, digits and _.-/ (up to 64)`);
    const now = this.clock.now();
    return Array.from({ length: Math.max(1, Math.min(n, 1000)) }, (_, i) => {
      const span = windowBefore(window, now, i);
      const w: WindowUsage = { startMs: span.startMs, endMs: span.endMs, used: this.usedIn(scope, window, span.startMs) };
      if (byTag !== undefined) w.byTag = this.store.taggedUsage(scope, window, span.startMs, byTag);
      return w;
    });
  }

  private grant(lease: Lease, need: number, now: number): Grant {
    const budgets = this.budgetsOf(lease.scopes);
    const acked = this.ackedOf(lease.incarnation);
    const coverage = this.coverageOf(lease.incarnation);
    if (budgets.length === 0) {
      coverage.covered = Infinity;
      lease.outstanding = 0;
      this.save(lease);
      return { leaseId: lease.id, granted: 0, leaseTokens: 0, unlimited: true, ttlMs: this.ttlMs, refreshAfterMs: Math.floor(this.ttlMs / 3), remaining: -1, retryAfterMs: 0, acked, windowStartMs: 0 };
    }
    // What the lease held belongs to the windows it was granted in; a new window starts it at zero.
    const current: Record<string, number> = {};
    let stale = false;
    for (const b of budgets) {
      const k = key(b.scope, b.window);
      current[k] = windowAt(b.window, now).startMs;
      if (lease.windows[k] !== current[k]) stale = true;
    }
    if (stale) {
      lease.outstanding = 0;
      lease.windows = current;
    }

    let grant = Infinity;
    let remaining = Infinity;
    let windowEnd = Infinity;
    let exhaustedUntil = 0;
    for (const b of budgets) {
      const span = windowAt(b.window, now);
      windowEnd = Math.min(windowEnd, span.endMs);
      const left = Math.max(0, b.tokens - this.usedIn(b.scope, b.window, span.startMs));
      remaining = Math.min(remaining, left);
      const floor = b.tokens * (lease.priority === 'batch' ? b.batchFloor : lease.priority === 'background' ? b.backgroundFloor : 0);
      let others = 0;
      let demand = lease.demand;
      const k = key(b.scope, b.window);
      for (const other of this.byScope.get(b.scope) ?? []) {
        if (other === lease) continue;
        if (other.windows[k] === span.startMs) others += other.outstanding;
        demand += other.demand;
      }
      const free = left - others - lease.outstanding;
      const available = Math.max(0, free - floor);
      const share = Math.max(0, ((left - floor) * SHARE_OF_REMAINING * lease.demand) / demand - lease.outstanding);
      // Top the lease up to its demand over the horizon, or over a small part of the time the budget lasts
      // at the current total demand if that is shorter: tokens idle in one pod are tokens another is refused.
      const horizonMs = Math.min(this.horizonMs, (RUNWAY_FRACTION * 1000 * Math.max(0, left - floor)) / demand);
      const want = Math.max(need, Math.ceil((lease.demand * horizonMs) / 1000) - lease.outstanding);
      grant = Math.min(grant, available, Math.max(share, need), want);
      if (left - floor < Math.max(need, 1)) exhaustedUntil = Math.max(exhaustedUntil, span.endMs);
    }
    // A grant that cannot cover the waiting request would only strand tokens in this lease.
    grant = Math.floor(grant < need || !Number.isFinite(grant) ? 0 : grant);
    lease.outstanding += grant;
    coverage.covered += grant;
    this.save(lease);
    const ttlMs = Math.max(1, Math.min(this.ttlMs, windowEnd - now));
    let retryAfterMs = 0;
    if (grant === 0 && need > 0) retryAfterMs = exhaustedUntil > 0 ? exhaustedUntil - now : Math.min(1000, ttlMs);
    return {
      leaseId: lease.id,
      granted: grant,
      leaseTokens: lease.outstanding,
      unlimited: false,
      ttlMs,
      refreshAfterMs: Math.max(1, Math.floor(Math.min(this.ttlMs / 3, windowEnd - now))),
      remaining,
      retryAfterMs,
      acked,
      windowStartMs: grantedSince(lease),
    };
  }

  /** Refuses a batch of reports that no honest sidecar sends, before any of it is applied. */
  private check(incarnation: string, reports: UsageReport[], now: number): void {
    let last = this.ackedOf(incarnation);
    for (const r of [...reports].sort((a, b) => a.sequence - b.sequence)) {
      if (!Number.isSafeInteger(r.sequence) || r.sequence < 1) throw invalidArgument(`report sequence ${r.sequence} is not a positive integer`);
      if (!(r.tokens >= 0 && r.tokens <= MAX_REPORT_TOKENS)) throw invalidArgument(`report ${r.sequence}: tokens must be from 0 to ${MAX_REPORT_TOKENS}, got ${r.tokens}`);
      if (!(r.startedAtMs <= now + MAX_REPORT_SKEW_MS && r.startedAtMs >= now - MAX_REPORT_AGE_MS)) {
        throw invalidArgument(`report ${r.sequence}: started_at_ms ${r.startedAtMs} is more than 5 minutes ahead or 400 days behind the service's clock`);
      }
      if (r.sequence <= last) continue;
      if (r.sequence > last + MAX_SEQUENCE_GAP) {
        throw invalidArgument(`report sequence ${r.sequence} jumps more than ${MAX_SEQUENCE_GAP} past ${last}, the last one processed for this incarnation`);
      }
      last = r.sequence;
    }
  }

  /** Charges reports not seen before to every scope and window; returns the highest sequence processed. */
  private apply(scopes: string[], incarnation: string, reports: UsageReport[], lease: Lease | undefined): number {
    let acked = this.ackedOf(incarnation);
    const sorted = [...reports].sort((a, b) => a.sequence - b.sequence);
    // One write per scope and window touched (and per tag value in it), however many reports arrive.
    const sums = new Map<string, WindowSum>();
    let reported = 0;
    for (const r of sorted) {
      if (r.sequence <= acked) continue;
      const tokens = Math.max(0, Math.round(r.tokens));
      reported += tokens;
      const tags = attributionTags(r.tags);
      for (const scope of scopes) {
        for (const w of ['minute', 'hour', 'day', 'month'] as const) {
          const span = windowAt(w, r.startedAtMs);
          const k = `${scope}|${w}|${span.startMs}`;
          let sum = sums.get(k);
          if (sum === undefined) sums.set(k, (sum = { scope, window: w, startMs: span.startMs, endMs: span.endMs, tokens: 0, byTag: new Map() }));
          sum.tokens += tokens;
          for (const tag of tags) {
            const t = sum.byTag.get(tag.pair);
            if (t === undefined) sum.byTag.set(tag.pair, { key: tag.key, value: tag.value, tokens });
            else t.tokens += tokens;
          }
        }
      }
      // Spending of an earlier window does not pay back what the lease holds of the current one.
      if (lease !== undefined && r.startedAtMs >= grantedSince(lease)) lease.outstanding = Math.max(0, lease.outstanding - tokens);
      acked = r.sequence;
    }
    for (const [k, s] of sums) {
      this.store.addUsage(s.scope, s.window, s.startMs, s.endMs, s.tokens);
      for (const t of s.byTag.values()) this.store.addTaggedUsage(s.scope, s.window, s.startMs, s.endMs, t, t.tokens);
      const cached = this.used.get(k);
      if (cached !== undefined) this.used.set(k, cached + s.tokens);
    }
    if (acked !== this.ackedOf(incarnation)) {
      this.store.setAcked(incarnation, acked, this.clock.now());
      this.ackedBy.set(incarnation, acked);
    }
    if (reported > 0 && this.budgetsOf(scopes).length > 0) this.flagOverReport(incarnation, lease?.owner ?? this.ownerOf(incarnation), reported);
    return acked;
  }

  private flagOverReport(incarnation: string, owner: string, tokens: number): void {
    const c = this.coverageOf(incarnation);
    c.reported += tokens;
    if (c.flagged || c.reported <= c.covered * COVERAGE_FACTOR + COVERAGE_MARGIN_TOKENS) return;
    c.flagged = true;
    this.opts.onOverReport?.({ incarnation, owner, reportedTokens: c.reported, coveredTokens: c.covered });
  }

  private coverageOf(incarnation: string): { covered: number; reported: number; flagged: boolean } {
    let c = this.coverage.get(incarnation);
    if (c === undefined) {
      if (this.coverage.size >= 100_000) this.coverage.clear();
      this.coverage.set(incarnation, (c = { covered: 0, reported: 0, flagged: false }));
    }
    return c;
  }

  /** The incarnation belongs to `owner` from now on, or already did; anybody else is refused. */
  private claim(incarnation: string, owner: string, now: number): void {
    const current = this.ownerOf(incarnation);
    if (current === owner) return;
    if (current !== '') throw permissionDenied(`incarnation ${incarnation} belongs to another identity`);
    this.store.setOwner(incarnation, owner, now);
    this.owners.set(incarnation, owner);
  }

  private ownerOf(incarnation: string): string {
    return readThrough(this.owners, incarnation, () => this.store.owner(incarnation));
  }

  /** The live lease `id` if `owner` holds it; NOT_FOUND (acquire anew) or PERMISSION_DENIED otherwise. */
  private owned(id: string, owner: string, hint: string): Lease {
    const lease = this.leases.get(id);
    if (lease === undefined) throw notFound(`lease ${id} is unknown or expired${hint}`);
    if (lease.owner !== owner) throw permissionDenied(`lease ${id} belongs to another identity`);
    return lease;
  }

  private budgetsOf(scopes: readonly string[]): BudgetRow[] {
    const out: BudgetRow[] = [];
    for (const scope of scopes) for (const b of this.budgets.values()) if (b.scope === scope) out.push(b);
    return out;
  }

  private teamSet(namespace: string): Set<string> {
    let set = this.teams.get(namespace);
    if (set === undefined) this.teams.set(namespace, (set = new Set()));
    return set;
  }

  private namespacesOf(team: string): string[] {
    return [...this.teams].filter(([, teams]) => teams.has(team)).map(([ns]) => ns);
  }

  /** Applies a team's new namespaces in memory and drops the leases whose scopes changed. */
  private remap(team: string, before: readonly string[], after: readonly string[]): void {
    for (const ns of before) this.teams.get(ns)?.delete(team);
    for (const ns of after) this.teamSet(ns).add(team);
    const changed = new Set([...before.filter((ns) => !after.includes(ns)), ...after.filter((ns) => !before.includes(ns))]);
    for (const lease of [...this.leases.values()]) if (changed.has(lease.identity.namespace)) this.drop(lease);
  }

  private usedIn(scope: string, window: WindowName, startMs: number): number {
    return readThrough(this.used, `${scope}|${window}|${startMs}`, () => this.store.used(scope, window, startMs));
  }

  private ackedOf(incarnation: string): number {
    return readThrough(this.ackedBy, incarnation, () => this.store.acked(incarnation));
  }

  private view(b: BudgetRow, now: number): BudgetView {
    const span = windowAt(b.window, now);
    let outstanding = 0;
    for (const l of this.byScope.get(b.scope) ?? []) if (l.windows[key(b.scope, b.window)] === span.startMs) outstanding += l.outstanding;
    return { ...b, used: this.usedIn(b.scope, b.window, span.startMs), outstanding, windowStartMs: span.startMs, windowEndMs: span.endMs };
  }

  private index(lease: Lease): void {
    this.leases.set(lease.id, lease);
    for (const s of lease.scopes) {
      let set = this.byScope.get(s);
      if (set === undefined) this.byScope.set(s, (set = new Set()));
      set.add(lease);
    }
  }

  private drop(lease: Lease): void {
    this.leases.delete(lease.id);
    for (const s of lease.scopes) this.byScope.get(s)?.delete(lease);
    this.store.deleteLease(lease.id);
  }

  private save(lease: Lease): void {
    this.store.saveLease({
      id: lease.id,
      ...lease.identity,
      team: '',
      priority: PRIORITIES.indexOf(lease.priority) + 1,
      incarnation: lease.incarnation,
      outstanding: lease.outstanding,
      demand: lease.demand,
      expiresAtMs: lease.expiresAtMs,
      windows: JSON.stringify(lease.windows),
      owner: lease.owner,
    });
  }
}

/**
 * A value from a cache of the store, read from the store on a miss. The store is always written first,
 * so the cache may be dropped at any time: past 100,000 keys (windows, and every new pod's incarnations
 * keep adding them) it starts again empty.
 */
function readThrough<T>(cache: Map<string, T>, key: string, load: () => T): T {
  let v = cache.get(key);
  if (v === undefined) {
    if (cache.size >= 100_000) cache.clear();
    v = load();
    cache.set(key, v);
  }
  return v;
}

/** What a batch of reports adds to one scope's window, in all and per tag value. */
interface WindowSum {
  scope: string;
  window: WindowName;
  startMs: number;
  endMs: number;
  tokens: number;
  /** By `key=value`. */
  byTag: Map<string, { key: string; value: string; tokens: number }>;
}

/**
 * The report's tags that are kept: well-formed ones, at most 16. A report with others is still charged in
 * full (refusing it would leave the sidecar resending it forever); only their attribution is lost.
 */
function attributionTags(tags: Record<string, string> | undefined): { key: string; value: string; pair: string }[] {
  if (tags === undefined) return [];
  const out: { key: string; value: string; pair: string }[] = [];
  for (const [key, value] of Object.entries(tags)) {
    if (out.length === MAX_TAGS) break;
    if (TAG_KEY.test(key) && typeof value === 'string' && value.length <= MAX_TAG_VALUE) out.push({ key, value, pair: `${key}=${value}` });
  }
  return out;
}
