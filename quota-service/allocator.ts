// Lease allocation (DESIGN §6). A lease holds tokens granted against every budget matching the pod's
// scopes. Invariant per budget and window: consumed + outstanding grants ≤ limit, so global overspend is
// bounded by the error of the sidecars' estimates, never by how many sidecars there are. A lease is topped
// up to its demand over a horizon, within a demand-weighted fair share of half of what remains
// (lease-sizing.ts; a request that needs more than its share still gets its need while tokens are free),
// lower priority classes stop above their floor, and a window rollover voids what leases held of the old
// window. Budgets are in tokens or in dollars (nano-USD, the usage priced by the service's own table): a
// lease holds a balance in each unit whose budgets match it, sized and bounded the same way (unit-grant.ts;
// a caller without USD leases gets no USD balance, and no grant once a USD window is spent for its class).
// A need that cannot be granted is refused with the budget that refused it and when it can be
// granted (refusal.ts); while one waits for tokens other leases of its class or a lower one hold, those
// leases get no top-ups and are told to give back what they hold. Each answer also tells the pod what it may spend if it loses the
// service (its fail-open allowance); what silent leases' pods may have spent that way is held back.
//
// Every call names its caller's `owner` (ownership.ts): leases and incarnations are the owner's alone.
// Reports are checked before anything is applied (report-checks.ts), and usage well beyond what an
// incarnation's leases covered is flagged (coverage.ts).
import { randomUUID } from 'node:crypto';
import type { Clock } from '../common/clock.js';
import { PriceIndex } from '../common/pricing/price-index.js';
import { SHIPPED_PRICES } from '../common/pricing/shipped-prices.js';
import { leaseFromRow, leaseRow, type Lease } from './lease-rows.js';
import { attributionTags } from './report-tags.js';
import { addKinds, noKinds, type TokenKinds } from '../proto/token-kinds.js';
import { Coverage, type OverReport } from './coverage.js';
import { invalidArgument, notFound, QuotaError } from './errors.js';
import { Ownership, UNVERIFIED, type IncarnationClaims } from './ownership.js';
import { readThrough } from './read-through.js';
import { decisive, type Refusal } from './refusal.js';
import { checkedReports } from './report-checks.js';
import { scopeProblem, scopesOf, type Identity } from './scopes.js';
import { Teams } from './teams.js';
import { status } from '@grpc/grpc-js';
import { priceReport } from './report-pricing.js';
import type { AllocatorStore } from './allocator-store.js';
import type { BudgetRow, BudgetUnit, ModelUsageRow, ScopeUsageRow } from './store.js';
import { usageSpans, type UsageOptions } from './usage-query.js';
import { windowAt, windows, type WindowName } from './windows.js';
import { DEFAULT_HORIZON_MS, MIN_DEMAND } from './lease-sizing.js';
import { emptyState, grantUnit, unitFailOpen, type PriorityClass, type UnitGrant, type UnitState } from './unit-grant.js';

export type { PriorityClass };

export interface UsageReport {
  sequence: number;
  tokens: number;
  /** The tokens by kind (all 0 from sidecars that predate them, or when unknown). */
  kinds?: TokenKinds;
  startedAtMs: number;
  /** Attribution labels of the requests the report adds up (`x-llmgw-tags`). */
  tags?: Record<string, string>;
  /** What served the requests, for pricing: the provider type ('' when not said)… */
  providerType?: string;
  /** …and the model (the upstream model, else the app's model name from sidecars that predate it). */
  model?: string;
}

/** One window of a scope's consumption; with a tag key, also per value of that tag, most first. */
export interface WindowUsage {
  startMs: number;
  endMs: number;
  used: number;
  /** `used` by kind, as the reports gave them. */
  kinds: TokenKinds;
  /** What `used` cost, in nano-USD, priced by the service's table when the reports arrived. */
  costNano: number;
  byTag?: { value: string; used: number; costNano: number }[];
  /** With `by: 'model'`: per model, most cost first. */
  byModel?: ModelUsageRow[];
  /** With `by: 'scope'`: the scope and each scope under it with usage, most cost first. */
  byScope?: ScopeUsageRow[];
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
  /** When a need was refused: after this long it can be granted (0: never by waiting, see `refusal`). */
  retryAfterMs: number;
  acked: number;
  /** Start of the newest window the lease's tokens belong to (0 when unlimited). */
  windowStartMs: number;
  /** Why a need was refused (nothing granted). */
  refusal?: Refusal;
  /** Another lease waits for tokens this one holds: its sidecar should give back what it holds unspent. */
  giveBack: boolean;
  priority: PriorityClass;
  /** The unspent balance the lease is sized for, before the fair-share cap (0 when unlimited). */
  targetTokens: number;
  /** End of the earliest of the lease's budget windows (epoch ms; 0 when unlimited). */
  windowEndMs: number;
  /** What the pod may spend beyond the lease while the service is out of reach, until `windowEndMs`… */
  failOpen: number;
  /** …and in each later window the outage lasts into. */
  failOpenNext: number;
  /** The lease's USD balance (nano-USD), when its sidecar keeps one and a USD budget matches. */
  usd?: UsdGrant;
}

/** A grant's USD part, as the token fields of Grant, in nano-USD. */
export interface UsdGrant {
  granted: number;
  lease: number;
  target: number;
  /** Least left in the current windows of the matching USD budgets. */
  remaining: number;
  failOpen: number;
  failOpenNext: number;
}

/** A lease's USD part of a call (nano-USD), from sidecars that keep a USD balance. */
export interface UsdAsk {
  need: number;
  demand: number;
  requestNano?: number;
  /** Renewals only. */
  unused?: number;
  inflight?: number;
}

export interface BudgetView extends BudgetRow {
  unit: BudgetUnit;
  /** In the budget's unit (nano-USD for USD budgets). */
  used: number;
  outstanding: number;
  /** What the current window's usage cost (nano-USD), and its tokens, whatever the unit. */
  usedNano: number;
  usedTokens: number;
  windowStartMs: number;
  windowEndMs: number;
}

export interface AllocatorOptions {
  clock: Clock;
  /** A lease lapses this long after its last renewal (default 30 s). */
  leaseTtlMs?: number;
  /** Leases are topped up to this much of their recent demand (default 10 s, see lease-sizing.ts). */
  horizonMs?: number;
  /** Told when an incarnation reports well beyond what its leases covered (see COVERAGE_*). */
  onOverReport?: (flag: OverReport) => void;
  /** The price table usage is charged by, read at each batch of reports (default: the shipped table). */
  prices?: () => PriceIndex;
  /** Tokens charged at the default price (a model the table does not price); `model` is bounded: the table's or `other`. */
  onUnpriced?: (model: string, tokens: number) => void;
  /** What a batch of reports cost (nano-USD), per scope that has a budget (operator-defined: a bounded set). */
  onCost?: (scope: string, costNano: number) => void;
  /**
   * What outlives one allocator: with several replicas, each call has an allocator of its own over the rows
   * it loaded, and these are the process's (default: this allocator's own).
   */
  shared?: AllocatorShared;
}

/** Per process: grants and reports per incarnation (coverage.ts), and new incarnations per pod and hour. */
export interface AllocatorShared {
  coverage: Coverage;
  claims: IncarnationClaims;
}

export const DEFAULT_FLOORS = { batch: 0.5, background: 0.2 };

/** Live leases one pod may hold (one per priority class and incarnation; a few more while they turn over). */
export const MAX_LEASES_PER_POD = 16;

/** A claim outlives the Retry-After its sidecar was given by this much (within its window), for the retry to arrive. */
const CLAIM_GRACE_MS = 5000;
const key = (scope: string, window: WindowName, unit: BudgetUnit = 'tokens'): string => (unit === 'usd' ? `${scope}|${window}|usd` : `${scope}|${window}`);
const keyOf = (b: BudgetRow): string => key(b.scope, b.window, b.unit);
/** Start of the newest window the lease's grants belong to (0 before its first grant). */
const grantedSince = (lease: { windows: Record<string, number> }): number => Math.max(0, ...Object.values(lease.windows));

export class Allocator {
  private readonly budgets = new Map<string, BudgetRow>();
  private readonly leases = new Map<string, Lease>();
  /** scope → leases charged to it. */
  private readonly byScope = new Map<string, Set<Lease>>();
  private readonly used = new Map<string, number>();
  /** As `used`, what the windows' usage cost (nano-USD). */
  private readonly usedNano = new Map<string, number>();
  private readonly ackedBy = new Map<string, number>();
  /** `owner/pod` → its live leases. */
  private readonly byPod = new Map<string, number>();
  private readonly ownership: Ownership;
  private readonly teams: Teams;
  private readonly coverage: Coverage;
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly horizonMs: number;
  private readonly prices: () => PriceIndex;
  private readonly onUnpriced: ((model: string, tokens: number) => void) | undefined;
  private readonly onCost: ((scope: string, costNano: number) => void) | undefined;

  constructor(
    private readonly store: AllocatorStore,
    opts: AllocatorOptions,
  ) {
    this.clock = opts.clock;
    this.ttlMs = opts.leaseTtlMs ?? 30_000;
    this.horizonMs = opts.horizonMs ?? DEFAULT_HORIZON_MS;
    this.ownership = new Ownership(store, opts.clock, opts.shared?.claims);
    this.teams = new Teams(store);
    this.coverage = opts.shared?.coverage ?? new Coverage(opts.onOverReport);
    const shipped = opts.prices === undefined ? new PriceIndex(SHIPPED_PRICES) : undefined;
    this.prices = opts.prices ?? (() => shipped!);
    this.onUnpriced = opts.onUnpriced;
    this.onCost = opts.onCost;
    for (const b of store.budgets()) this.budgets.set(keyOf(b), b);
    for (const row of store.leases()) this.index(leaseFromRow(row, scopesOf({ namespace: row.namespace, service: row.service }, this.teams.of(row.namespace))));
    this.sweep();
  }

  /**
   * `owner`: the caller's verified identity, which the incarnation and the new lease belong to from now on.
   * `reports`: usage not delivered yet (spent while the service was out of reach), charged before the grant.
   */
  acquire(req: {
    identity: Identity;
    owner: string;
    priority: PriorityClass;
    incarnation: string;
    need: number;
    demand: number;
    requestTokens?: number;
    reports?: UsageReport[];
    /** From sidecars that keep a USD balance (absent: none is granted to it). */
    usd?: UsdAsk;
  }): Grant {
    if (req.identity.namespace === '') throw invalidArgument('identity.namespace is required');
    if (req.incarnation === '') throw invalidArgument('incarnation is required');
    const now = this.clock.now();
    this.sweep(now);
    const reports = checkedReports(req.reports ?? [], this.ackedOf(req.incarnation), now);
    this.ownership.claim(req.incarnation, req.owner, req.identity.pod);
    // A sidecar holds one lease per incarnation: a new one replaces it (its tokens go back first).
    for (const l of this.leases.values()) if (l.incarnation === req.incarnation) this.drop(l);
    if ((this.byPod.get(podKey(req.owner, req.identity)) ?? 0) >= MAX_LEASES_PER_POD) {
      throw new QuotaError(status.RESOURCE_EXHAUSTED, `this pod holds ${MAX_LEASES_PER_POD} leases already; release one first`);
    }
    const lease: Lease = {
      id: randomUUID(),
      owner: req.owner,
      identity: req.identity,
      scopes: scopesOf(req.identity, this.teams.of(req.identity.namespace)),
      priority: req.priority,
      incarnation: req.incarnation,
      outstanding: 0,
      demand: Math.max(MIN_DEMAND, req.demand),
      requestTokens: Math.max(0, req.requestTokens ?? 0),
      inflight: 0,
      expiresAtMs: now + this.ttlMs,
      windows: {},
      renewAtMs: now,
      renewal: 0,
      failOpen: 0,
      failOpenNext: 0,
      nano: req.usd === undefined ? undefined : { ...emptyState(), demand: Math.max(MIN_DEMAND, req.usd.demand), requestTokens: Math.max(0, req.usd.requestNano ?? 0) },
    };
    this.index(lease);
    return this.store.transaction(() => {
      if (reports.length > 0) this.apply(lease.scopes, lease.incarnation, reports, undefined);
      return this.grant(lease, Math.max(0, req.need), now, Math.max(0, req.usd?.need ?? 0));
    });
  }

  /** `inflight`: of what the lease holds, the estimates of the sidecar's running requests (sizing only). */
  renew(req: {
    leaseId: string;
    owner: string;
    need: number;
    demand: number;
    reports: UsageReport[];
    unused: number;
    requestTokens?: number;
    inflight?: number;
    /** From sidecars that keep a USD balance (absent: the lease has none from now on). */
    usd?: UsdAsk;
    /** The sidecar's renewal number (0 or absent: a sidecar that predates them). */
    renewal?: number;
  }): Grant {
    const now = this.clock.now();
    this.sweep(now);
    const lease = this.owned(req.leaseId, req.owner, '; acquire a new one');
    const reports = checkedReports(req.reports, this.ackedOf(lease.incarnation), now);
    // A renewal sent again (its first went to a replica that died after applying it): what it gives back
    // was taken already. (Its grant may be made twice: the lease then holds more than its sidecar knows,
    // which only spends less of the budget, until the lease is released or its window ends.)
    const renewal = req.renewal ?? 0;
    const again = renewal > 0 && renewal <= lease.renewal;
    if (renewal > lease.renewal) lease.renewal = renewal;
    return this.store.transaction(() => {
      this.apply(lease.scopes, lease.incarnation, reports, lease);
      if (!again) lease.outstanding = Math.max(0, lease.outstanding - Math.max(0, req.unused));
      lease.demand = Math.max(MIN_DEMAND, req.demand);
      lease.requestTokens = Math.max(0, req.requestTokens ?? 0);
      lease.inflight = Math.max(0, req.inflight ?? 0);
      lease.expiresAtMs = now + this.ttlMs;
      const usd = req.usd;
      if (usd === undefined) lease.nano = undefined;
      else {
        const n = (lease.nano ??= emptyState());
        if (!again) n.outstanding = Math.max(0, n.outstanding - Math.max(0, usd.unused ?? 0));
        n.demand = Math.max(MIN_DEMAND, usd.demand);
        n.requestTokens = Math.max(0, usd.requestNano ?? 0);
        n.inflight = Math.max(0, usd.inflight ?? 0);
      }
      return this.grant(lease, Math.max(0, req.need), now, Math.max(0, usd?.need ?? 0));
    });
  }

  release(leaseId: string, owner: string, reports: UsageReport[]): { acked: number; priority: PriorityClass } {
    const lease = this.owned(leaseId, owner, '');
    const checked = checkedReports(reports, this.ackedOf(lease.incarnation), this.clock.now());
    return this.store.transaction(() => {
      const acked = this.apply(lease.scopes, lease.incarnation, checked, lease);
      this.drop(lease);
      return { acked, priority: lease.priority };
    });
  }

  /** Usage delivered without a lease (after a sidecar restart, or while renewing failed). */
  report(identity: Identity, owner: string, incarnation: string, reports: UsageReport[]): number {
    if (identity.namespace === '') throw invalidArgument('identity.namespace is required');
    if (incarnation === '') throw invalidArgument('incarnation is required');
    const checked = checkedReports(reports, this.ackedOf(incarnation), this.clock.now());
    this.ownership.claim(incarnation, owner, identity.pod);
    const scopes = scopesOf(identity, this.teams.of(identity.namespace));
    return this.store.transaction(() => this.apply(scopes, incarnation, checked, undefined));
  }

  /** Replaces a team's namespaces; leases of the namespaces it gains or loses are dropped (re-acquired with their new scopes). */
  setTeam(team: string, namespaces: readonly string[]): { team: string; namespaces: string[] } {
    const r = this.teams.set(team, namespaces);
    this.dropLeasesOf(r.changed);
    return { team, namespaces: r.namespaces };
  }

  deleteTeam(team: string): number {
    this.dropLeasesOf(this.teams.delete(team));
    return 1;
  }

  listTeams(): { team: string; namespaces: string[] }[] {
    return this.teams.list();
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

  /** `limit`: per window, in `unit` (nano-USD for a USD budget). */
  setBudget(scope: string, window: WindowName, limit: number, floors = DEFAULT_FLOORS, unit: BudgetUnit = 'tokens'): BudgetView {
    const problem = scopeProblem(scope);
    if (problem !== undefined) throw invalidArgument(`scope "${scope}": ${problem}`);
    if (!Number.isSafeInteger(limit) || limit <= 0) throw invalidArgument(unit === 'usd' ? 'nano_usd must be a positive integer (at most 2^53)' : 'tokens must be a positive integer');
    for (const [name, v] of Object.entries(floors)) {
      if (!(v >= 0 && v <= 1)) throw invalidArgument(`priority floor ${name} must be between 0 and 1`);
    }
    const row: BudgetRow = { scope, window, unit, tokens: limit, batchFloor: floors.batch, backgroundFloor: floors.background };
    this.store.upsertBudget(row);
    this.budgets.set(keyOf(row), row);
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
    return [...this.budgets.values()]
      .sort((a, b) => a.scope.localeCompare(b.scope) || a.window.localeCompare(b.window) || a.unit.localeCompare(b.unit))
      .map((b) => this.view(b, now));
  }

  /** Deletes the scope's budgets of `window` (undefined: every window) in `unit` (undefined: both units). */
  deleteBudget(scope: string, window: WindowName | undefined, unit?: BudgetUnit): number {
    const n = this.store.deleteBudget(scope, window, unit);
    if (n === 0) throw notFound(`no ${unit === 'usd' ? 'USD ' : unit === 'tokens' ? 'token ' : ''}budget for ${scope}${window === undefined ? '' : ` (${window})`}`);
    for (const b of [...this.budgets.values()]) {
      if (b.scope === scope && (window === undefined || b.window === window) && (unit === undefined || b.unit === unit)) this.budgets.delete(keyOf(b));
    }
    return n;
  }

  /**
   * The last `n` windows of a scope's consumption, newest first, empty windows included; with `sinceMs`,
   * every window from the one holding that instant instead (at most 1000). With a tag key, also per value
   * of that tag; with `by`, per model or per scope under it (`namespace/x` → `namespace/x/service/…`).
   */
  usage(scope: string, window: WindowName, n: number, byTag?: string, more: UsageOptions = {}): WindowUsage[] {
    return usageSpans(scope, window, n, byTag, more, this.clock.now()).map((span) => {
      const { costNano, ...kinds } = this.store.totals(scope, window, span.startMs);
      const w: WindowUsage = { startMs: span.startMs, endMs: span.endMs, used: this.usedIn(scope, window, span.startMs), kinds, costNano };
      if (byTag !== undefined) w.byTag = this.store.taggedUsage(scope, window, span.startMs, byTag);
      if (more.by === 'model') w.byModel = this.store.modelUsage(scope, window, span.startMs);
      if (more.by === 'scope') w.byScope = this.store.scopesUnder(scope, window, span);
      return w;
    });
  }

  private grant(lease: Lease, need: number, now: number, needNano = 0): Grant {
    const budgets = this.budgetsOf(lease.scopes);
    const acked = this.ackedOf(lease.incarnation);
    if (budgets.length === 0) {
      this.coverage.unlimited(lease.incarnation);
      lease.outstanding = 0;
      lease.claim = undefined;
      lease.failOpen = 0;
      lease.failOpenNext = 0;
      if (lease.nano !== undefined) lease.nano.outstanding = 0;
      const refreshAfterMs = Math.floor(this.ttlMs / 3);
      lease.renewAtMs = now + refreshAfterMs;
      this.save(lease);
      return {
        leaseId: lease.id,
        granted: 0,
        leaseTokens: 0,
        unlimited: true,
        ttlMs: this.ttlMs,
        refreshAfterMs,
        remaining: -1,
        retryAfterMs: 0,
        acked,
        windowStartMs: 0,
        giveBack: false,
        priority: lease.priority,
        targetTokens: 0,
        windowEndMs: 0,
        failOpen: 0,
        failOpenNext: 0,
      };
    }
    // What the lease held belongs to the windows it was granted in; a new window of any of its budgets
    // starts it at zero in both units (its sidecar voids its balances at the same boundary).
    const current: Record<string, number> = {};
    let stale = false;
    const tokenBudgets: { b: BudgetRow; key: string; used: number }[] = [];
    const usdBudgets: { b: BudgetRow; key: string; used: number }[] = [];
    for (const b of budgets) {
      const k = keyOf(b);
      const start = windowAt(b.window, now).startMs;
      current[k] = start;
      if (lease.windows[k] !== start) stale = true;
      if (b.unit === 'usd') usdBudgets.push({ b, key: k, used: this.usedNanoIn(b.scope, b.window, start) });
      else tokenBudgets.push({ b, key: k, used: this.usedIn(b.scope, b.window, start) });
    }
    if (stale) {
      lease.outstanding = 0;
      if (lease.nano !== undefined) lease.nano.outstanding = 0;
      lease.windows = current;
    }
    const others = (scope: string): Iterable<Lease> => this.byScope.get(scope) ?? [];
    // Each input written out, not spread from a common one: objects made by a spread here outlived
    // young-generation collections (promoted, then dropped by a full one).
    const grantOf = (state: UnitState, unitBudgets: typeof tokenBudgets, stateOf: (l: Lease) => UnitState | undefined, unitNeed: number): UnitGrant =>
      grantUnit({ lease, others, now, horizonMs: this.horizonMs, state, budgets: unitBudgets, stateOf, need: unitNeed });
    // Tokens: against the token budgets (none: topped up to the lease's target with no limit).
    const t = grantOf(lease, tokenBudgets, (l) => l, need);
    // Dollars: a lease that keeps a USD balance is granted from the USD budgets like tokens; one that keeps
    // none (an older sidecar) gets nothing while a USD budget's window is spent (or held) for its class.
    let u: UnitGrant | undefined;
    let blocked = false;
    if (usdBudgets.length > 0) {
      const stateOf = (l: Lease): UnitState | undefined => l.nano;
      if (lease.nano !== undefined) u = grantOf(lease.nano, usdBudgets, stateOf, needNano);
      else {
        u = grantOf(emptyState(), usdBudgets, stateOf, 1);
        blocked = u.refusals.length > 0;
      }
    }
    const refusals = [...t.refusals, ...(u !== undefined && (lease.nano !== undefined || need > 0) ? u.refusals : [])];
    const windowEnd = Math.min(t.windowEnd, u?.windowEnd ?? Infinity);
    // A grant that cannot cover the waiting request would only strand tokens (or dollars) in this lease.
    const refused = refusals.length > 0 || blocked;
    const grant = refused || t.grant < need || !Number.isFinite(t.grant) ? 0 : Math.floor(t.grant);
    const grantNano = refused || u === undefined || lease.nano === undefined || u.grant < needNano || !Number.isFinite(u.grant) ? 0 : Math.floor(u.grant);
    let refusal: Refusal | undefined;
    if ((need > 0 || needNano > 0) && refusals.length > 0) {
      refusal = decisive(refusals);
      // Waiting only for what other leases hold: claim it, so they give it back instead of topping up (in
      // this window only: a new one starts with nothing held).
      const held = refusals.every((r) => r.reason === 'held');
      lease.claim = held ? { keys: refusals.map((r) => key(r.scope, r.window, r.unit)), untilMs: Math.min(refusal.retryAtMs + CLAIM_GRACE_MS, windowEnd) } : undefined;
    } else if (need > 0 || needNano > 0) {
      lease.claim = undefined;
    }
    lease.outstanding += grant;
    this.coverage.granted(lease.incarnation, grant);
    const tokensOpen = unitFailOpen(t, lease, windowEnd);
    lease.failOpen = tokensOpen.failOpen;
    lease.failOpenNext = tokensOpen.failOpenNext;
    let usd: UsdGrant | undefined;
    if (lease.nano !== undefined && u !== undefined) {
      const n = lease.nano;
      n.outstanding += grantNano;
      const open = unitFailOpen(u, n, windowEnd);
      n.failOpen = open.failOpen;
      n.failOpenNext = open.failOpenNext;
      usd = { granted: grantNano, lease: n.outstanding, target: u.target, remaining: u.remaining, failOpen: open.failOpen, failOpenNext: open.failOpenNext };
    } else if (lease.nano !== undefined) {
      lease.nano.outstanding = 0;
    }
    const ttlMs = Math.max(1, Math.min(this.ttlMs, windowEnd - now));
    const refreshAfterMs = Math.max(1, Math.floor(Math.min(this.ttlMs / 3, windowEnd - now)));
    lease.renewAtMs = now + refreshAfterMs;
    this.save(lease);
    const g: Grant = {
      leaseId: lease.id,
      granted: grant,
      leaseTokens: lease.outstanding,
      unlimited: false,
      ttlMs,
      refreshAfterMs,
      remaining: Number.isFinite(t.remaining) ? t.remaining : -1,
      retryAfterMs: refusal === undefined || refusal.reason === 'exceeds' ? 0 : Math.max(1, refusal.retryAtMs - now),
      acked,
      windowStartMs: grantedSince(lease),
      giveBack: (t.contended || u?.contended === true) && (lease.outstanding > 0 || (lease.nano?.outstanding ?? 0) > 0),
      priority: lease.priority,
      targetTokens: t.target,
      windowEndMs: windowEnd,
      failOpen: tokensOpen.failOpen,
      failOpenNext: tokensOpen.failOpenNext,
    };
    if (refusal !== undefined) g.refusal = refusal;
    if (usd !== undefined) g.usd = usd;
    return g;
  }

  /** Charges checked reports (in sequence order) not seen before to every scope and window; returns the highest sequence processed. */
  private apply(scopes: string[], incarnation: string, sorted: UsageReport[], lease: Lease | undefined): number {
    let acked = this.ackedOf(incarnation);
    // One write per scope and window touched (and per tag value and model in it), however many reports arrive.
    // Flat maps, one entry per row written: two maps per window sum cost more, and kept more of a call's
    // objects past young-generation collections (`npm run bench:quota-alloc` shows what a renewal keeps).
    const sums = new Map<string, WindowSum>();
    const byModel = new Map<string, ModelSum>();
    const byTag = new Map<string, TagSum>();
    let reported = 0;
    let batchCost = 0;
    const prices = this.prices();
    for (const r of sorted) {
      if (r.sequence <= acked) continue;
      const tokens = Math.max(0, Math.round(r.tokens));
      reported += tokens;
      const tags = attributionTags(r.tags);
      const kinds = r.kinds ?? noKinds();
      const { model, costNano: cost, unpriced } = priceReport(prices, r, tokens);
      batchCost += cost;
      if (unpriced !== undefined && tokens > 0) this.onUnpriced?.(unpriced, tokens);
      const modelKey = `${model.provider}\n${model.model}`;
      for (const scope of scopes) {
        for (const w of windows) {
          const span = windowAt(w, r.startedAtMs);
          const k = `${scope}|${w}|${span.startMs}`;
          let sum = sums.get(k);
          if (sum === undefined) sums.set(k, (sum = { scope, window: w, startMs: span.startMs, endMs: span.endMs, tokens: 0, kinds: noKinds(), costNano: 0 }));
          sum.tokens += tokens;
          sum.costNano += cost;
          addKinds(sum.kinds, kinds);
          for (const tag of tags) {
            const tk = `${k}|${tag.pair}`;
            const t = byTag.get(tk);
            if (t === undefined) byTag.set(tk, { sum, key: tag.key, value: tag.value, tokens, costNano: cost });
            else {
              t.tokens += tokens;
              t.costNano += cost;
            }
          }
          const mk = `${k}|${modelKey}`;
          const m = byModel.get(mk);
          if (m === undefined) {
            // Written out, not spread from `kinds`: an object made by a spread here outlived young-generation collections.
            const totals = { input: kinds.input, output: kinds.output, cachedInput: kinds.cachedInput, cacheWrite: kinds.cacheWrite, costNano: cost };
            byModel.set(mk, { sum, provider: model.provider, model: model.model, tokens, totals });
          } else {
            m.tokens += tokens;
            addKinds(m.totals, kinds);
            m.totals.costNano += cost;
          }
        }
      }
      // Spending of an earlier window does not pay back what the lease holds of the current one. Its USD
      // balance pays what this service's table says the report cost, whatever its sidecar priced it at.
      if (lease !== undefined && r.startedAtMs >= grantedSince(lease)) {
        lease.outstanding = Math.max(0, lease.outstanding - tokens);
        if (lease.nano !== undefined) lease.nano.outstanding = Math.max(0, lease.nano.outstanding - cost);
      }
      acked = r.sequence;
    }
    for (const [k, s] of sums) {
      this.store.addUsage(s.scope, s.window, s.startMs, s.endMs, s.tokens, s.kinds, s.costNano);
      const cached = this.used.get(k);
      if (cached !== undefined) this.used.set(k, cached + s.tokens);
      const cachedNano = this.usedNano.get(k);
      if (cachedNano !== undefined) this.usedNano.set(k, cachedNano + s.costNano);
    }
    for (const t of byTag.values()) this.store.addTaggedUsage(t.sum.scope, t.sum.window, t.sum.startMs, t.sum.endMs, t, t.tokens, t.costNano);
    for (const m of byModel.values()) this.store.addModelUsage(m.sum.scope, m.sum.window, m.sum, m, m.tokens, m.totals);
    if (acked !== this.ackedOf(incarnation)) {
      this.store.setAcked(incarnation, acked, this.clock.now());
      this.ackedBy.set(incarnation, acked);
    }
    const budgeted = scopes.filter((scope) => this.budgetsOf([scope]).length > 0);
    if (batchCost > 0 && this.onCost !== undefined) for (const scope of budgeted) this.onCost(scope, batchCost);
    if (reported > 0 && budgeted.length > 0) this.coverage.reported(incarnation, lease?.owner ?? this.ownership.current(incarnation), reported);
    return acked;
  }

  /** The live lease `id` if `owner` holds it; NOT_FOUND (acquire anew) or PERMISSION_DENIED otherwise. */
  private owned(id: string, owner: string, hint: string): Lease {
    const lease = this.leases.get(id);
    if (lease === undefined) throw notFound(`lease ${id} is unknown or expired${hint}`);
    this.ownership.check(lease.owner, owner, `lease ${id}`);
    return lease;
  }

  private budgetsOf(scopes: readonly string[]): BudgetRow[] {
    const out: BudgetRow[] = [];
    for (const scope of scopes) for (const b of this.budgets.values()) if (b.scope === scope) out.push(b);
    return out;
  }

  private usedIn(scope: string, window: WindowName, startMs: number): number {
    return readThrough(this.used, `${scope}|${window}|${startMs}`, () => this.store.used(scope, window, startMs));
  }

  /** What a window's usage cost (nano-USD), as USD budgets count it. */
  private usedNanoIn(scope: string, window: WindowName, startMs: number): number {
    return readThrough(this.usedNano, `${scope}|${window}|${startMs}`, () => this.store.costNano(scope, window, startMs));
  }

  private ackedOf(incarnation: string): number {
    return readThrough(this.ackedBy, incarnation, () => this.store.acked(incarnation));
  }

  private view(b: BudgetRow, now: number): BudgetView {
    const span = windowAt(b.window, now);
    const unit = b.unit;
    const k = keyOf(b);
    let outstanding = 0;
    for (const l of this.byScope.get(b.scope) ?? []) if (l.windows[k] === span.startMs) outstanding += unit === 'usd' ? (l.nano?.outstanding ?? 0) : l.outstanding;
    const usedNano = this.usedNanoIn(b.scope, b.window, span.startMs);
    const usedTokens = this.usedIn(b.scope, b.window, span.startMs);
    return { ...b, unit, used: unit === 'usd' ? usedNano : usedTokens, usedNano, usedTokens, outstanding, windowStartMs: span.startMs, windowEndMs: span.endMs };
  }

  /** Drops the leases of these namespaces: their sidecars acquire anew, with their new scopes. */
  private dropLeasesOf(namespaces: ReadonlySet<string>): void {
    for (const lease of [...this.leases.values()]) if (namespaces.has(lease.identity.namespace)) this.drop(lease);
  }

  private index(lease: Lease): void {
    this.leases.set(lease.id, lease);
    const pod = podKey(lease.owner, lease.identity);
    this.byPod.set(pod, (this.byPod.get(pod) ?? 0) + 1);
    for (const s of lease.scopes) {
      let set = this.byScope.get(s);
      if (set === undefined) this.byScope.set(s, (set = new Set()));
      set.add(lease);
    }
  }

  private drop(lease: Lease): void {
    this.leases.delete(lease.id);
    const pod = podKey(lease.owner, lease.identity);
    const n = (this.byPod.get(pod) ?? 1) - 1;
    if (n > 0) this.byPod.set(pod, n);
    else this.byPod.delete(pod);
    for (const s of lease.scopes) this.byScope.get(s)?.delete(lease);
    this.store.deleteLease(lease.id);
  }

  private save(lease: Lease): void {
    this.store.saveLease(leaseRow(lease));
  }
}

const podKey = (owner: string, identity: Identity): string => `${owner === UNVERIFIED ? identity.namespace : owner}/${identity.pod}`;

/** What a batch of reports adds to one scope's window, in all and per tag value. */
interface WindowSum {
  scope: string;
  window: WindowName;
  startMs: number;
  endMs: number;
  tokens: number;
  kinds: TokenKinds;
  costNano: number;
}

/** A window sum's share by `key=value`. */
interface TagSum {
  sum: WindowSum;
  key: string;
  value: string;
  tokens: number;
  costNano: number;
}

/** A window sum's share by provider type and model. */
interface ModelSum {
  sum: WindowSum;
  provider: string;
  model: string;
  tokens: number;
  totals: TokenKinds & { costNano: number };
}
