// Lease allocation (DESIGN §6). A lease holds tokens granted against every budget matching the pod's
// scopes. Invariant per budget and window: consumed + outstanding grants ≤ limit, so global overspend is
// bounded by the error of the sidecars' estimates, never by how many sidecars there are. A lease is topped
// up to its demand over a horizon, within a demand-weighted fair share of half of what remains
// (lease-sizing.ts; a request that needs more than its share still gets its need while tokens are free),
// lower priority classes stop above their floor, and a window rollover voids what leases held of the old
// window. A need that cannot be granted is refused with the budget that refused it and when it can be
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
import { MAX_TAG_VALUE, MAX_TAGS, TAG_KEY } from '../proto/tags.js';
import { addKinds, noKinds, type TokenKinds } from '../proto/token-kinds.js';
import { Coverage, type OverReport } from './coverage.js';
import { invalidArgument, notFound, QuotaError } from './errors.js';
import { Ownership, UNVERIFIED } from './ownership.js';
import { readThrough } from './read-through.js';
import { decisive, refusalOf, type Holder, type Refusal } from './refusal.js';
import { checkedReports } from './report-checks.js';
import { scopeProblem, scopesOf, type Identity } from './scopes.js';
import { Teams } from './teams.js';
import { status } from '@grpc/grpc-js';
import { priceReport } from './report-pricing.js';
import type { BudgetRow, ModelUsageRow, ScopeUsageRow, SqliteQuotaStore } from './store.js';
import { windowAt, windowBefore, type WindowName } from './windows.js';
import { atRisk, DEFAULT_HORIZON_MS, failOpenAllowance, fairShare, MIN_DEMAND, targetOf, weightOf } from './lease-sizing.js';

export type PriorityClass = 'interactive' | 'background' | 'batch';

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
}

export const DEFAULT_FLOORS = { batch: 0.5, background: 0.2 };

/** Live leases one pod may hold (one per priority class and incarnation; a few more while they turn over). */
export const MAX_LEASES_PER_POD = 16;

interface Lease {
  id: string;
  owner: string;
  identity: Identity;
  scopes: string[];
  priority: PriorityClass;
  incarnation: string;
  outstanding: number;
  demand: number;
  /** The largest recent request estimate its sidecar saw (tokens). */
  requestTokens: number;
  /** Of `outstanding`, the estimates of requests still running, as its sidecar last said (not stored). */
  inflight: number;
  expiresAtMs: number;
  /** Budget key → start of the window `outstanding` belongs to. */
  windows: Record<string, number>;
  /** When its sidecar was told to renew. */
  renewAtMs: number;
  /** Its fail-open allowance in the window of `windows`, and in later ones (see lease-sizing.ts). */
  failOpen: number;
  failOpenNext: number;
  /** A need refused because other leases hold tokens of these budgets: they give back, not top up, meanwhile. */
  claim?: { keys: string[]; untilMs: number };
}

const PRIORITIES: PriorityClass[] = ['interactive', 'background', 'batch'];
/** A claim outlives the Retry-After its sidecar was given by this much (within its window), for the retry to arrive. */
const CLAIM_GRACE_MS = 5000;
const key = (scope: string, window: WindowName): string => `${scope}|${window}`;
/** Start of the newest window the lease's grants belong to (0 before its first grant). */
const grantedSince = (lease: { windows: Record<string, number> }): number => Math.max(0, ...Object.values(lease.windows));

export class Allocator {
  private readonly budgets = new Map<string, BudgetRow>();
  private readonly leases = new Map<string, Lease>();
  /** scope → leases charged to it. */
  private readonly byScope = new Map<string, Set<Lease>>();
  private readonly used = new Map<string, number>();
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
    private readonly store: SqliteQuotaStore,
    opts: AllocatorOptions,
  ) {
    this.clock = opts.clock;
    this.ttlMs = opts.leaseTtlMs ?? 30_000;
    this.horizonMs = opts.horizonMs ?? DEFAULT_HORIZON_MS;
    this.ownership = new Ownership(store, opts.clock);
    this.teams = new Teams(store);
    this.coverage = new Coverage(opts.onOverReport);
    const shipped = opts.prices === undefined ? new PriceIndex(SHIPPED_PRICES) : undefined;
    this.prices = opts.prices ?? (() => shipped!);
    this.onUnpriced = opts.onUnpriced;
    this.onCost = opts.onCost;
    for (const b of store.budgets()) this.budgets.set(key(b.scope, b.window), b);
    for (const row of store.leases()) {
      const identity = { namespace: row.namespace, service: row.service, pod: row.pod };
      this.index({
        id: row.id,
        owner: row.owner,
        identity,
        scopes: scopesOf(identity, this.teams.of(identity.namespace)),
        priority: PRIORITIES[row.priority - 1] ?? 'interactive',
        incarnation: row.incarnation,
        outstanding: row.outstanding,
        demand: row.demand,
        requestTokens: row.requestTokens,
        inflight: 0,
        expiresAtMs: row.expiresAtMs,
        windows: JSON.parse(row.windows) as Record<string, number>,
        // Rows from before renewal times were kept: their expiry.
        renewAtMs: row.renewAtMs > 0 ? row.renewAtMs : row.expiresAtMs,
        failOpen: row.failOpen,
        failOpenNext: row.failOpenNext,
      });
    }
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
      failOpen: 0,
      failOpenNext: 0,
    };
    this.index(lease);
    return this.store.transaction(() => {
      if (reports.length > 0) this.apply(lease.scopes, lease.incarnation, reports, undefined);
      return this.grant(lease, Math.max(0, req.need), now);
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
  }): Grant {
    const now = this.clock.now();
    this.sweep(now);
    const lease = this.owned(req.leaseId, req.owner, '; acquire a new one');
    const reports = checkedReports(req.reports, this.ackedOf(lease.incarnation), now);
    return this.store.transaction(() => {
      this.apply(lease.scopes, lease.incarnation, reports, lease);
      lease.outstanding = Math.max(0, lease.outstanding - Math.max(0, req.unused));
      lease.demand = Math.max(MIN_DEMAND, req.demand);
      lease.requestTokens = Math.max(0, req.requestTokens ?? 0);
      lease.inflight = Math.max(0, req.inflight ?? 0);
      lease.expiresAtMs = now + this.ttlMs;
      return this.grant(lease, Math.max(0, req.need), now);
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

  /**
   * The last `n` windows of a scope's consumption, newest first, empty windows included; with `sinceMs`,
   * every window from the one holding that instant instead (at most 1000). With a tag key, also per value
   * of that tag; with `by`, per model or per scope under it (`namespace/x` → `namespace/x/service/…`).
   */
  usage(scope: string, window: WindowName, n: number, byTag?: string, more: { by?: 'model' | 'scope'; sinceMs?: number } = {}): WindowUsage[] {
    const problem = scopeProblem(scope);
    if (problem !== undefined) throw invalidArgument(`scope "${scope}": ${problem}`);
    if (byTag !== undefined && !TAG_KEY.test(byTag)) throw invalidArgument(`by_tag "${byTag}": a tag key is letters, digits and _.-/ (up to 64)`);
    const now = this.clock.now();
    const since = more.sinceMs ?? 0;
    if (since > now) throw invalidArgument('since_ms is in the future');
    const count = since > 0 ? windowsSince(window, now, since) : Math.max(1, Math.min(n, 1000));
    return Array.from({ length: count }, (_, i) => {
      const span = windowBefore(window, now, i);
      const { costNano, ...kinds } = this.store.totals(scope, window, span.startMs);
      const w: WindowUsage = { startMs: span.startMs, endMs: span.endMs, used: this.usedIn(scope, window, span.startMs), kinds, costNano };
      if (byTag !== undefined) w.byTag = this.store.taggedUsage(scope, window, span.startMs, byTag);
      if (more.by === 'model') w.byModel = this.store.modelUsage(scope, window, span.startMs);
      if (more.by === 'scope') w.byScope = this.store.scopesUnder(scope, window, span);
      return w;
    });
  }

  private grant(lease: Lease, need: number, now: number): Grant {
    const budgets = this.budgetsOf(lease.scopes);
    const acked = this.ackedOf(lease.incarnation);
    if (budgets.length === 0) {
      this.coverage.unlimited(lease.incarnation);
      lease.outstanding = 0;
      lease.claim = undefined;
      lease.failOpen = 0;
      lease.failOpenNext = 0;
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

    const weight = weightOf(lease);
    const target = targetOf(lease, this.horizonMs);
    // What the sidecar can still spend: running requests' estimates are held, but not spendable.
    const spendable = Math.max(0, lease.outstanding - lease.inflight);
    let grant = Infinity;
    let remaining = Infinity;
    let windowEnd = Infinity;
    let contended = false;
    const refusals: Refusal[] = [];
    const seen: { b: BudgetRow; endMs: number; left: number; floor: number; weights: number }[] = [];
    for (const b of budgets) {
      const span = windowAt(b.window, now);
      windowEnd = Math.min(windowEnd, span.endMs);
      const left = Math.max(0, b.tokens - this.usedIn(b.scope, b.window, span.startMs));
      remaining = Math.min(remaining, left);
      const floor = b.tokens * (lease.priority === 'batch' ? b.batchFloor : lease.priority === 'background' ? b.backgroundFloor : 0);
      let others = 0;
      let weights = weight;
      let claimed = false;
      const k = key(b.scope, b.window);
      // Leases of this class or a lower one give back what they hold when this one waits for it; what
      // higher classes hold is theirs (and their claims are not this lease's to serve).
      const holders: Holder[] = [];
      let higher = 0;
      const rank = PRIORITIES.indexOf(lease.priority);
      for (const other of this.byScope.get(b.scope) ?? []) {
        if (other === lease) continue;
        const held = (other.windows[k] === span.startMs ? other.outstanding : 0) + atRisk(other, k, span.startMs, now);
        others += held;
        const otherRank = PRIORITIES.indexOf(other.priority);
        if (otherRank < rank) higher += held;
        else if (held > 0) holders.push({ outstanding: held, renewAtMs: other.renewAtMs, expiresAtMs: other.expiresAtMs });
        weights += weightOf(other);
        // A claim of this lease's class or a higher one: this lease holds what it waits for.
        if (otherRank <= rank && other.claim !== undefined && other.claim.untilMs > now && other.claim.keys.includes(k)) claimed = true;
      }
      const free = left - others - lease.outstanding;
      const available = Math.max(0, free - floor);
      if (claimed) {
        // Another lease waits for what leases hold of this budget: what comes back is for it, not for top-ups.
        contended = true;
        grant = Math.min(grant, available, need);
      } else {
        // Top the lease up to its target from what its sidecar can spend, within its share of what remains.
        const share = Math.max(0, fairShare(left, floor, weight, weights) - lease.outstanding);
        const want = Math.max(need, target - spendable);
        grant = Math.min(grant, available, Math.max(share, need), want);
      }
      if (need > available) {
        refusals.push(refusalOf(b, { priority: lease.priority, floor, left: left - higher, own: lease.outstanding, available, need, windowEndMs: span.endMs, holders, now }));
      }
      seen.push({ b, endMs: span.endMs, left, floor, weights });
    }
    // A grant that cannot cover the waiting request would only strand tokens in this lease.
    grant = Math.floor(grant < need || !Number.isFinite(grant) ? 0 : grant);
    let refusal: Refusal | undefined;
    if (need > 0 && grant === 0 && refusals.length > 0) {
      refusal = decisive(refusals);
      // Waiting only for what other leases hold: claim it, so they give it back instead of topping up (in
      // this window only: a new one starts with nothing held).
      const held = refusals.every((r) => r.reason === 'held');
      lease.claim = held ? { keys: refusals.map((r) => key(r.scope, r.window)), untilMs: Math.min(refusal.retryAtMs + CLAIM_GRACE_MS, windowEnd) } : undefined;
    } else if (need > 0) {
      lease.claim = undefined;
    }
    lease.outstanding += grant;
    this.coverage.granted(lease.incarnation, grant);
    // What the pod may spend if it loses the service: what the lease lacks of its fair share (floors kept),
    // and its share of a whole window later (budgets whose window outlasts the earliest keep the former).
    let failOpen = Infinity;
    let failOpenNext = Infinity;
    for (const s of seen) {
      const allowance = failOpenAllowance(s.left, s.floor, weight, s.weights, lease.outstanding);
      failOpen = Math.min(failOpen, allowance);
      failOpenNext = Math.min(failOpenNext, s.endMs === windowEnd ? failOpenAllowance(s.b.tokens, s.floor, weight, s.weights, 0) : allowance);
    }
    lease.failOpen = failOpen;
    lease.failOpenNext = failOpenNext;
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
      remaining,
      retryAfterMs: refusal === undefined || refusal.reason === 'exceeds' ? 0 : Math.max(1, refusal.retryAtMs - now),
      acked,
      windowStartMs: grantedSince(lease),
      giveBack: contended && lease.outstanding > 0,
      priority: lease.priority,
      targetTokens: target,
      windowEndMs: windowEnd,
      failOpen,
      failOpenNext,
    };
    if (refusal !== undefined) g.refusal = refusal;
    return g;
  }

  /** Charges checked reports (in sequence order) not seen before to every scope and window; returns the highest sequence processed. */
  private apply(scopes: string[], incarnation: string, sorted: UsageReport[], lease: Lease | undefined): number {
    let acked = this.ackedOf(incarnation);
    // One write per scope and window touched (and per tag value and model in it), however many reports arrive.
    const sums = new Map<string, WindowSum>();
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
        for (const w of ['minute', 'hour', 'day', 'month'] as const) {
          const span = windowAt(w, r.startedAtMs);
          const k = `${scope}|${w}|${span.startMs}`;
          let sum = sums.get(k);
          if (sum === undefined) {
            sums.set(k, (sum = { scope, window: w, startMs: span.startMs, endMs: span.endMs, tokens: 0, kinds: noKinds(), costNano: 0, byTag: new Map(), byModel: new Map() }));
          }
          sum.tokens += tokens;
          sum.costNano += cost;
          addKinds(sum.kinds, kinds);
          for (const tag of tags) {
            const t = sum.byTag.get(tag.pair);
            if (t === undefined) sum.byTag.set(tag.pair, { key: tag.key, value: tag.value, tokens, costNano: cost });
            else {
              t.tokens += tokens;
              t.costNano += cost;
            }
          }
          const m = sum.byModel.get(modelKey);
          if (m === undefined) sum.byModel.set(modelKey, { ...model, tokens, totals: { ...kinds, costNano: cost } });
          else {
            m.tokens += tokens;
            addKinds(m.totals, kinds);
            m.totals.costNano += cost;
          }
        }
      }
      // Spending of an earlier window does not pay back what the lease holds of the current one.
      if (lease !== undefined && r.startedAtMs >= grantedSince(lease)) lease.outstanding = Math.max(0, lease.outstanding - tokens);
      acked = r.sequence;
    }
    for (const [k, s] of sums) {
      this.store.addUsage(s.scope, s.window, s.startMs, s.endMs, s.tokens, s.kinds, s.costNano);
      for (const t of s.byTag.values()) this.store.addTaggedUsage(s.scope, s.window, s.startMs, s.endMs, t, t.tokens, t.costNano);
      for (const m of s.byModel.values()) this.store.addModelUsage(s.scope, s.window, s, m, m.tokens, m.totals);
      const cached = this.used.get(k);
      if (cached !== undefined) this.used.set(k, cached + s.tokens);
    }
    if (acked !== this.ackedOf(incarnation)) {
      this.store.setAcked(incarnation, acked, this.clock.now());
      this.ackedBy.set(incarnation, acked);
    }
    if (batchCost > 0 && this.onCost !== undefined) for (const scope of scopes) if (this.budgetsOf([scope]).length > 0) this.onCost(scope, batchCost);
    if (reported > 0 && this.budgetsOf(scopes).length > 0) this.coverage.reported(incarnation, lease?.owner ?? this.ownership.current(incarnation), reported);
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

  private ackedOf(incarnation: string): number {
    return readThrough(this.ackedBy, incarnation, () => this.store.acked(incarnation));
  }

  private view(b: BudgetRow, now: number): BudgetView {
    const span = windowAt(b.window, now);
    let outstanding = 0;
    for (const l of this.byScope.get(b.scope) ?? []) if (l.windows[key(b.scope, b.window)] === span.startMs) outstanding += l.outstanding;
    return { ...b, used: this.usedIn(b.scope, b.window, span.startMs), outstanding, windowStartMs: span.startMs, windowEndMs: span.endMs };
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
    this.store.saveLease({
      id: lease.id,
      ...lease.identity,
      team: '',
      priority: PRIORITIES.indexOf(lease.priority) + 1,
      incarnation: lease.incarnation,
      outstanding: lease.outstanding,
      demand: lease.demand,
      requestTokens: lease.requestTokens,
      expiresAtMs: lease.expiresAtMs,
      renewAtMs: lease.renewAtMs,
      windows: JSON.stringify(lease.windows),
      owner: lease.owner,
      failOpen: lease.failOpen,
      failOpenNext: lease.failOpenNext,
    });
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
  /** By `key=value`. */
  byTag: Map<string, { key: string; value: string; tokens: number; costNano: number }>;
  /** By provider type and model. */
  byModel: Map<string, { provider: string; model: string; tokens: number; totals: TokenKinds & { costNano: number } }>;
}

/** How many `window`s from the one holding `sinceMs` to the one holding `now` (1 to 1000). */
function windowsSince(window: WindowName, now: number, sinceMs: number): number {
  let n = 1;
  for (let span = windowAt(window, now); n < 1000 && span.startMs > sinceMs; n++) span = windowAt(window, span.startMs - 1);
  return n;
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
