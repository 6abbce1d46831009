// The statements of a replica's call (replicated-allocator.ts): the namespaces it locks, then one call of
// llmgw_lock_and_load (the locks and the snapshot the call reads, snapshot-store.ts) and one of llmgw_apply
// (what the call changed), the functions of migration 2 (schema-v2.ts): five round trips per transaction
// with BEGIN and COMMIT, whatever the number of calls it carries and of scopes, windows, tags and models
// their reports touch.
import type { CoverageEntry } from '../coverage.js';
import { MAX_MODELS_PER_WINDOW, OTHER_MODEL, type BudgetRow, type LeaseRow, type TeamRow } from '../store.js';
import { windowAt, type WindowName } from '../windows.js';
import { PgQuotaRecords, type Queryable } from './pg-records.js';
import { windowKey, type Changes, type Snapshot, type WindowUsed } from './snapshot-store.js';

/** Advisory-lock keys: a seed of our own, so other users of hashtextextended cannot collide by design. */
const LOCK_SEED = 7411;

/** Where a lease lives: what a call naming only the lease locks. */
export interface LeaseHome {
  namespace: string;
  incarnation: string;
  expiresAtMs: number;
}

/**
 * The namespaces whose pods can share a budget with pods of `namespaces` and of the leases `leaseIds`:
 * themselves, and every namespace of a team that lists one of them (a team's budget is shared by its
 * namespaces); and each known lease's namespace and incarnation (an unknown lease has none).
 */
export async function relatedNamespaces(q: Queryable, namespaces: readonly string[], leaseIds: readonly string[] = []): Promise<{ namespaces: string[]; homes: Map<string, LeaseHome> }> {
  const { rows } = await q.query<{ related: string[]; homes: ({ id: string } & LeaseHome)[] }>({
    // Named: prepared once per connection, not parsed and planned at every call.
    name: 'llmgw_related_namespaces_of_leases',
    text: `WITH homes AS (SELECT id, namespace, incarnation, expires_at_ms FROM leases WHERE id = ANY($2::text[])),
      asked AS (SELECT unnest($1::text[]) AS namespace UNION SELECT namespace FROM homes)
    SELECT array(SELECT namespace FROM asked UNION SELECT t2.namespace FROM team_namespaces t1 JOIN team_namespaces t2 ON t1.team = t2.team
        WHERE t1.namespace IN (SELECT namespace FROM asked)) AS related,
      coalesce((SELECT json_agg(json_build_object('id', id, 'namespace', namespace, 'incarnation', incarnation, 'expiresAtMs', expires_at_ms)) FROM homes), '[]') AS homes`,
    values: [namespaces, leaseIds],
  });
  const r = rows[0]!;
  return { namespaces: [...r.related].sort(), homes: new Map(r.homes.map(({ id, ...home }) => [id, home])) };
}

export interface SnapshotScope {
  /** Lock these (namespaces, and `incarnation:<id>` keys) first; none for operator reads. */
  locks: readonly string[];
  /** Live leases of these namespaces (all live leases when undefined). */
  namespaces: readonly string[] | undefined;
  incarnations: readonly string[];
  now: number;
  /** Current windows to load beside every budget's (a budget the call is about to set). */
  windows?: readonly { scope: string; window: WindowName }[];
}

/** The locks, then everything a call's allocator can read, in one round trip (llmgw_lock_and_load). */
export async function lockAndLoad(q: Queryable, scope: SnapshotScope): Promise<Snapshot> {
  const extra = scope.windows ?? [];
  const starts = (['minute', 'hour', 'day', 'month'] as const).map((w) => windowAt(w, scope.now).startMs);
  const { rows } = await q.query<{ snapshot: { budgets: BudgetRow[]; leases: LeaseRow[]; teams: TeamRow[]; used: UsedRow[]; acked: AckedRow[] } }>({
    name: 'llmgw_lock_and_load',
    text: 'SELECT llmgw_lock_and_load($1::text[], $2::text[], $3::text[], $4::bigint, $5::bigint[], $6::text[], $7::text[], $8::bigint) AS snapshot',
    values: [[...new Set(scope.locks)].sort(), scope.namespaces ?? null, scope.incarnations, scope.now, starts, extra.map((w) => w.scope), extra.map((w) => w.window), LOCK_SEED],
  });
  const r = rows[0]!.snapshot;
  const windows = new Map<string, WindowUsed>();
  for (const b of [...r.budgets, ...extra]) windows.set(windowKey(b.scope, b.window, windowAt(b.window, scope.now).startMs), { used: 0, costNano: 0 });
  for (const u of r.used) windows.set(windowKey(u.scope, u.window, u.startMs), { used: u.used, costNano: u.costNano });
  const incarnations = new Map<string, { acked: number; owner: string }>();
  const coverage = new Map<string, CoverageEntry>();
  for (const i of scope.incarnations) incarnations.set(i, { acked: 0, owner: '' });
  for (const a of r.acked) {
    incarnations.set(a.incarnation, { acked: a.sequence, owner: a.owner });
    coverage.set(a.incarnation, { covered: a.covered < 0 ? Infinity : a.covered, reported: a.reported, flagged: a.flagged });
  }
  return { budgets: r.budgets, leases: r.leases, teams: r.teams, windows, incarnations, coverage };
}

interface UsedRow {
  scope: string;
  window: string;
  startMs: number;
  used: number;
  costNano: number;
}

interface AckedRow {
  incarnation: string;
  sequence: number;
  owner: string;
  covered: number;
  reported: number;
  flagged: boolean;
}

/**
 * Writes back what a call changed, in its transaction: operator changes (budgets, teams: rare) statement by
 * statement, everything else in one round trip (llmgw_apply). `now`: the call's instant.
 */
export async function flushChanges(q: Queryable, c: Changes, coverage: ReadonlyMap<string, CoverageEntry>, now: number): Promise<void> {
  const records = new PgQuotaRecords(q, (fn) => fn(q));
  for (const b of c.budgets.upsert) await records.upsertBudget(b);
  for (const d of c.budgets.delete) await records.deleteBudget(d.scope, d.window, d.unit);
  for (const t of c.teams) await records.setTeam(t.team, t.namespaces);
  const changes = {
    usage: summed(
      c.usage.map((u) => ({ scope: u.scope, window: u.window, startMs: u.startMs, endMs: u.endMs, tokens: u.tokens, costNano: u.costNano, ...u.kinds })),
      (u) => windowKey(u.scope, u.window, u.startMs),
      ['tokens', 'costNano', 'input', 'output', 'cachedInput', 'cacheWrite'],
    ),
    tagged: summed(c.tagged, (t) => `${windowKey(t.scope, t.window, t.startMs)}|${t.key}|${t.value}`, ['tokens', 'costNano']),
    models: c.models.map((m) => ({ scope: m.scope, window: m.window, startMs: m.startMs, endMs: m.endMs, provider: m.provider, model: m.model, tokens: m.tokens, ...m.totals })),
    deletedLeases: [...c.deletedLeases],
    savedLeases: [...c.savedLeases.values()],
    owners: [...c.owners].map(([incarnation, o]) => ({ incarnation, ...o })),
    acked: [...c.acked].map(([incarnation, a]) => ({ incarnation, ...a })),
    coverage: [...coverage].map(([incarnation, e]) => ({ incarnation, covered: Number.isFinite(e.covered) ? Math.round(e.covered) : -1, reported: Math.round(e.reported), flagged: e.flagged })),
  };
  await q.query({ name: 'llmgw_apply', text: 'SELECT llmgw_apply($1::jsonb, $2::bigint, $3::bigint, $4::text)', values: [JSON.stringify(changes), now, MAX_MODELS_PER_WINDOW - 1, OTHER_MODEL] });
}

/**
 * Rows of one key summed into one (the calls of a batch each add to the same windows): one INSERT … ON
 * CONFLICT DO UPDATE may not touch a row twice.
 */
function summed<R extends object>(rows: readonly R[], key: (r: R) => string, fields: readonly (keyof R & string)[]): R[] {
  const byKey = new Map<string, R>();
  for (const r of rows) {
    const k = key(r);
    const seen = byKey.get(k);
    if (seen === undefined) byKey.set(k, { ...r });
    else for (const f of fields) (seen[f] as number) += r[f] as number;
  }
  return [...byKey.values()];
}
